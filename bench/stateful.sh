#!/usr/bin/env bash
# bench/stateful.sh — time `ipsecpath stateful` against the manual way of finding a stateful
# device's UDP idle timer, on the same lab, in the same run, and print the ratio.
#
# Lab: stateful-udp without gateways (r1 forgets UDP flows ini opened after 10 s idle). The
# question, for UDP 500 and UDP 4500: after how long a silence does a packet from the far
# side (a rekey started by rsp) stop getting through, to within about a second?
#
#   tool    `ipsecpath stateful 203.0.113.10 --protocols udp500,udp4500 --max-idle $MAXIDLE`
#           from ini, the agent on rsp.
#   manual  what an engineer does by hand, one idle time after the other, one protocol after
#           the other: open a flow from ini (hping3, UDP from a fresh source port to 500 or
#           4500), wait the idle time, send from rsp back to that port (hping3), and look in a
#           tcpdump on ini whether it arrived. Idle times: every $STEP s up to $MAXIDLE until
#           one dies, then halving the bracket until it is at most 1 s wide. Only the
#           commands and the waiting are timed, not the person's reading, so the ratio is a
#           lower bound.
#
# Needs root, the binary (make build → bin/ipsecpath, or BIN=…), hping3, tcpdump, nc.
# Everything it starts it stops by recorded pid, and the lab it builds it tears down.
set -euo pipefail

cd "$(dirname "$0")/.."
. bench/lib.bash
MAXIDLE=${MAXIDLE:-30}
STEP=${STEP:-5}
NAME=hs$$

bench_setup hping3 tcpdump nc python3

agent_key

LAB=$NAME
lab_up stateful-udp "$W/labup"
start_agent "$W/responder"

# The tool.
s=$(date +%s%N)
rc=0
ip netns exec "ipl-$LAB-ini" "$BIN" stateful "$RSP" --agent "$RSP:7500" --key-file "$W/key" \
	--protocols udp500,udp4500 --max-idle "${MAXIDLE}s" --json >"$W/tool.json" || rc=$?
tool_ms=$(ms "$s")
[ "$rc" -le 1 ] || { echo "ipsecpath stateful failed (exit $rc)" >&2; exit 1; }

# The manual way. One tcpdump on ini for the whole run: UDP from rsp.
ip netns exec "ipl-$LAB-ini" tcpdump -i any -n -U --immediate-mode -w "$W/ini.pcap" "udp and src host $RSP" >/dev/null 2>"$W/tcpdump.err" &
TCPDUMP=$!
PIDS+=("$TCPDUMP")
for _ in $(seq 100); do grep -q listening "$W/tcpdump.err" 2>/dev/null && break; sleep 0.02; done

SPORT=41000
# try PORT IDLE SPORT: one manual test from our source port SPORT (fresh for every test);
# prints 1 if the far side's packet arrived after IDLE s.
try() {
	local port=$1 idle=$2 sp=$3
	ip netns exec "ipl-$LAB-ini" hping3 -q -I wan0 -2 -s "$sp" -k -p "$port" -d 40 -c 1 "$RSP" >/dev/null 2>&1 || true
	sleep "$idle"
	ip netns exec "ipl-$LAB-rsp" hping3 -q -I wan0 -2 -s "$port" -k -p "$sp" -d 40 -c 1 "$INI" >/dev/null 2>&1 || true
	sleep 1 # let it land, as a person waits for tcpdump to show it
	if [ "$(tcpdump -r "$W/ini.pcap" -n "udp dst port $sp" 2>/dev/null | wc -l)" -gt 0 ]; then echo 1; else echo 0; fi
}

s=$(date +%s%N)
manual=""
for port in 500 4500; do
	lo=0 hi=0 tests=0
	for idle in $(seq "$STEP" "$STEP" "$MAXIDLE"); do
		tests=$((tests + 1)); SPORT=$((SPORT + 1))
		if [ "$(try "$port" "$idle" "$SPORT")" = 1 ]; then lo=$idle; else hi=$idle; break; fi
	done
	if [ "$hi" != 0 ]; then
		while python3 -c "import sys; sys.exit(0 if $hi - $lo > 1 else 1)"; do
			mid=$(python3 -c "print(round(($lo + $hi) / 2, 2))")
			tests=$((tests + 1)); SPORT=$((SPORT + 1))
			if [ "$(try "$port" "$mid" "$SPORT")" = 1 ]; then lo=$mid; else hi=$mid; fi
		done
		manual+="udp$port: ${lo}-${hi} s ($tests tests); "
	else
		manual+="udp$port: none up to ${lo} s ($tests tests); "
	fi
done
manual_ms=$(ms "$s")

tool=$(python3 -c 'import json,sys
r=json.load(open(sys.argv[1]))["stateful"]
print("; ".join("%s: %s" % (k, ("%g-%g s" % (v["survived_s"], v["died_s"])) if v["timer_found"] else ("none up to %g s" % v["survived_s"])) + " (%d flows)" % v["flows"] for k, v in sorted(r.items())))' "$W/tool.json")
ratio=$(python3 -c "print(f'{$manual_ms/$tool_ms:.1f}x')")
printf '%-8s %10s  %s\n' method ms result
printf '%-8s %10s  %s\n' tool "$tool_ms" "$tool"
printf '%-8s %10s  %s\n' manual "$manual_ms" "$manual"
echo "ratio (manual / tool): $ratio, --max-idle ${MAXIDLE}s"
