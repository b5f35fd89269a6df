#!/usr/bin/env bash
# bench/ladder.sh — time the triage ladder and a TLS verdict (`ipsecpath check --probes
# tls:1792 --ca CA`, whose first step is the ladder) against the manual way, on the same
# lab, in the same run, and print the ratio.
#
# For each profile in $PROFILES (default "clean underlay-dead tcp1792-reset") it brings up a
# lab without gateways, starts `openssl s_server` on rsp:1792 with a fresh lab CA (by
# recorded pid), and times:
#
#   ipsecpath  `ipsecpath check 203.0.113.10 --probes tls:1792 --ca ca.pem --json` from ini:
#              loopback, route, gateway and target rungs, the local preflight, then the TLS
#              handshake with a verdict. Run $RUNS times (default 3); the median is kept.
#   manual     what the guides have an engineer do: ping -c 4 127.0.0.1, ping -c 4 the
#              gateway, ping -c 4 the target, then openssl s_client -connect …:1792 -CAfile
#              ca.pem -verify_return_error. Commands run one after the other, as a person
#              runs them; reading and comparing their output is not counted, so the ratio is
#              a lower bound.
#
# Needs root, the binary (make build → bin/ipsecpath, or BIN=…), openssl and ping.
# Everything it starts it stops by recorded pid, and every lab it builds it tears down.
set -euo pipefail

cd "$(dirname "$0")/.."
. bench/lib.bash
PROFILES=${PROFILES:-clean underlay-dead tcp1792-reset}
RUNS=${RUNS:-3}
NAME=hl$$
GW=198.51.100.1

bench_setup openssl ping python3

# A lab CA and a server certificate for rsp's address (EC P-256: quick).
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 2 -subj "/CN=ipsecpath bench CA" \
	-keyout "$W/ca.key" -out "$W/ca.pem" >/dev/null 2>&1
openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -subj "/CN=hsm.lab.example" \
	-keyout "$W/srv.key" -out "$W/srv.csr" >/dev/null 2>&1
printf 'subjectAltName=IP:%s\nextendedKeyUsage=serverAuth\n' "$RSP" >"$W/ext"
openssl x509 -req -in "$W/srv.csr" -CA "$W/ca.pem" -CAkey "$W/ca.key" -CAcreateserial -days 1 \
	-extfile "$W/ext" -out "$W/srv.pem" >/dev/null 2>&1


printf '%-15s %12s %-28s %10s %8s\n' profile ipsecpath_ms verdict manual_ms ratio
for prof in $PROFILES; do
	LAB=$NAME-${prof//-/}
	lab_up "$prof" "$W/labup.$prof"
	ip netns exec "ipl-$LAB-rsp" openssl s_server -accept "$RSP:1792" -cert "$W/srv.pem" -key "$W/srv.key" \
		-naccept 1000 -quiet </dev/null >"$W/s_server.$prof" 2>&1 &
	PIDS+=("$!")
	for _ in $(seq 100); do ip netns exec "ipl-$LAB-rsp" ss -ltn "sport = :1792" | grep -q LISTEN && break; sleep 0.05; done

	times=()
	for i in $(seq "$RUNS"); do
		s=$(date +%s%N)
		rc=0
		ip netns exec "ipl-$LAB-ini" "$BIN" check "$RSP" --probes tls:1792 --ca "$W/ca.pem" --json >"$W/check.$prof.json" || rc=$?
		times+=("$(ms "$s")")
		[ "$rc" -le 1 ] || { echo "check failed (exit $rc)" >&2; exit 1; }
	done
	med=$(printf '%s\n' "${times[@]}" | sort -n | sed -n "$(( (RUNS + 1) / 2 ))p")
	verdict=$(python3 -c 'import json,sys
r=json.load(open(sys.argv[1]))
l=r.get("ladder") or {}
if l.get("stop"): print("stopped at " + [x["rung"] for x in l["rungs"] if x["verdict"] not in ("pass","echo-filtered")][0]); sys.exit()
print(", ".join("%s %s" % (x["probe"], x["verdict"]) for x in r["results"]))' "$W/check.$prof.json")

	s=$(date +%s%N)
	ip netns exec "ipl-$LAB-ini" ping -c 4 -W 1 127.0.0.1 >"$W/m.lo" 2>&1 || true
	ip netns exec "ipl-$LAB-ini" ping -c 4 -W 1 "$GW" >"$W/m.gw" 2>&1 || true
	ip netns exec "ipl-$LAB-ini" ping -c 4 -W 1 "$RSP" >"$W/m.rsp" 2>&1 || true
	timeout 20 ip netns exec "ipl-$LAB-ini" openssl s_client -connect "$RSP:1792" -CAfile "$W/ca.pem" \
		-verify_return_error </dev/null >"$W/m.tls" 2>&1 || true
	mt=$(ms "$s")
	ratio=$(python3 -c "print(f'{$mt/max($med,1):.1f}x')")
	printf '%-15s %12s %-28s %10s %8s\n' "$prof" "$med" "$verdict" "$mt" "$ratio"
	echo "    ipsecpath runs (ms): ${times[*]}"
	echo "    manual: gateway $(grep -o '[0-9]* received' "$W/m.gw" || echo '?'), target $(grep -o '[0-9]* received' "$W/m.rsp" || echo '?'), s_client: $(grep -m1 -oE 'Verify return code: [0-9]+ \([^)]*\)|connect:errno=[0-9]+|Connection refused|errno=[0-9]+' "$W/m.tls" || echo 'no verdict line')"
	cleanup
done
