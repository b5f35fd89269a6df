# Shared set-up of the bench scripts that build a lab (sourced, not run: not *.sh, so the
# Makefile's bench loop does not pick it up). The caller sets BIN.
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
