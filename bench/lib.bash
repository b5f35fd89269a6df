# Shared set-up of the bench scripts that build a lab (sourced, not run: not *.sh, so the
# Makefile's bench loop does not pick it up), from the repository's top directory.
#
# BIN is the binary (default bin/ipsecpath, built if missing); INI and RSP are the lab's
# initiator and target addresses.
BIN=${BIN:-bin/ipsecpath}
INI=198.51.100.10
RSP=203.0.113.10
#
# bench_setup TOOL...: needs root and each TOOL, builds $BIN if missing, makes a work
# directory W, and on exit stops every pid in PIDS (recorded by the caller), tears down the
# lab named in LAB, and removes W.

bench_setup() {
	local me=${0##*/}
	[ "$(id -u)" = 0 ] || { echo "bench/$me: needs root (network namespaces, raw sockets)" >&2; exit 2; }
	for t in "$@"; do
		command -v "$t" >/dev/null || { echo "bench/$me: $t not found (make deps installs it)" >&2; exit 2; }
	done
	[ -x "$BIN" ] || go build -o "$BIN" ./cmd/ipsecpath
	W=$(mktemp -d "/tmp/ipt-bench-${me%.sh}.XXXXXX")
	PIDS=()
	LAB=""
	trap 'cleanup; rm -rf "$W"' EXIT
}

# cleanup stops the recorded pids and tears down the lab; the scripts also call it between
# profiles.
cleanup() {
	for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
	for p in "${PIDS[@]}"; do wait "$p" 2>/dev/null || true; done
	PIDS=()
	[ -n "$LAB" ] && "$BIN" lab down "$LAB" >/dev/null 2>&1 || true
	LAB=""
}

# ms START_NS: milliseconds since START_NS (date +%s%N).
ms() { echo $(( ($(date +%s%N) - $1) / 1000000 )); }

# lab_up PROFILE LOG: brings up the lab named in LAB, without gateways, with PROFILE; its
# output goes to LOG, shown on stderr (and the script ends) if it fails.
lab_up() {
	"$BIN" lab up --no-gateways --profile "$1" --name "$LAB" >"$2" 2>&1 || { cat "$2" >&2; exit 1; }
}

# agent_key: a fresh 32-byte agent key in $W/key, mode 600.
agent_key() {
	head -c 32 /dev/urandom >"$W/key"
	chmod 600 "$W/key"
}

# start_agent LOG: starts `ipsecpath responder` in the lab's rsp on $RSP:7500 with $W/key
# (stderr to LOG), records its pid in PIDS, and returns once it accepts connections.
start_agent() {
	ip netns exec "ipl-$LAB-rsp" "$BIN" responder --listen "$RSP:7500" --key-file "$W/key" 2>"$1" &
	PIDS+=("$!")
	for _ in $(seq 100); do ip netns exec "ipl-$LAB-rsp" nc -z "$RSP" 7500 2>/dev/null && break; sleep 0.05; done
}
