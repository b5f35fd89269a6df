#!/usr/bin/env bash
# bench/check.sh — time `ipsecpath check` against the manual method it replaces, on the same
# lab, in the same run, and print the ratio.
#
# For each profile in $PROFILES (default: "clean frag-drop"; frag-drop fails about half the
# probes) it brings up a lab without gateways (`ipsecpath lab up --no-gateways`), starts
# `ipsecpath responder` on rsp, and then times:
#
#   check   `ipsecpath check 203.0.113.10 --agent … --json` from ini: every probe class, both
#           directions, one verdict each, and every failing row traced hop by hop. Run $RUNS
#           times (default 3); the median is kept.
#   verdicts the same with --no-trace: the verdicts alone, which is all the manual method
#           below gives (it does not localise); timed and reported beside the full check.
#   manual  what the troubleshooting guides have an engineer do, forward (ini → rsp, tcpdump
#           on rsp) and then reverse (rsp → ini, tcpdump on ini): ping -s 5000 (and a small
#           ping to compare), hping3 UDP 500 and UDP 4500 small and IP-fragmented (-f -m 1280),
#           hping3 raw IP protocol 50 and 51 small and fragmented, nc -z to TCP 445 and 1792,
#           then stop tcpdump and count per protocol what arrived. Commands run one after the
#           other, as a person runs them; the person's own time (reading, comparing) is not
#           counted, so the ratio is a lower bound.
#
# Needs root, the binary (make build → bin/ipsecpath, or BIN=…), hping3, tcpdump, nc, ping.
# Everything it starts it stops by recorded pid, and every lab it builds it tears down.
set -euo pipefail

cd "$(dirname "$0")/.."
. bench/lib.bash
PROFILES=${PROFILES:-clean frag-drop}
RUNS=${RUNS:-3}
NAME=hb$$

bench_setup hping3 tcpdump nc ping

agent_key

# start_tcpdump NODE FILE PEER: capture everything from PEER in NODE, in the background
# (pid in TCPDUMP, recorded for cleanup); returns once it listens.
start_tcpdump() {
	ip netns exec "ipl-$LAB-$1" tcpdump -i any -n -U --immediate-mode -w "$2" "src host $3" >/dev/null 2>"$2.err" &
	TCPDUMP=$!
	PIDS+=("$TCPDUMP")
	for _ in $(seq 100); do grep -q listening "$2.err" 2>/dev/null && break; sleep 0.02; done
}

# manual FROM TO DST OUT: the manual method in one direction; what arrived goes to OUT.
manual() {
	local from=ipl-$LAB-$1 dst=$3 cap=$W/$1.pcap iface=wan0 pid
	start_tcpdump "$2" "$cap" "$(addr "$1")"
	pid=$TCPDUMP
	ip netns exec "$from" ping -c 1 -W 2 -s 56 "$dst" >/dev/null 2>&1 || true
	ip netns exec "$from" ping -c 1 -W 2 -s 5000 "$dst" >/dev/null 2>&1 || true
	for port in 500 4500; do
		ip netns exec "$from" hping3 -q -I $iface -2 -s $port -k -p $port -d 100 -c 1 "$dst" >/dev/null 2>&1 || true
		ip netns exec "$from" hping3 -q -I $iface -2 -s $port -k -p $port -d 3000 -f -m 1280 -c 1 "$dst" >/dev/null 2>&1 || true
	done
	for proto in 50 51; do
		ip netns exec "$from" hping3 -q -I $iface -0 -H $proto -d 100 -c 1 "$dst" >/dev/null 2>&1 || true
		ip netns exec "$from" hping3 -q -I $iface -0 -H $proto -d 3000 -f -m 1280 -c 1 "$dst" >/dev/null 2>&1 || true
	done
	for port in 445 1792; do
		ip netns exec "$from" nc -z -w 2 "$dst" $port >/dev/null 2>&1 || true
	done
	sleep 0.2 # let the last packets land before stopping the capture
	kill "$pid"; wait "$pid" 2>/dev/null || true
	# What arrived, per protocol, first fragments and later ones apart: what a person reads.
	local line=""
	for f in "icmp" "udp port 500" "udp port 4500" "ip proto 50" "ip proto 51" "tcp port 445" "tcp port 1792" "ip[6:2] & 0x1fff != 0"; do
		line+="$(printf '%s=%s ' "${f// /_}" "$(tcpdump -r "$cap" -n "$f" 2>/dev/null | wc -l)")"
	done
	echo "$line" >"$4"
}

addr() { case $1 in ini) echo $INI ;; rsp) echo $RSP ;; esac; }

printf '%-12s %10s %-22s %10s %8s %12s %8s\n' profile check_ms "verdicts (pass/fail)" manual_ms ratio no_trace_ms ratio
for prof in $PROFILES; do
	LAB=$NAME-${prof//-/}
	lab_up "$prof" "$W/labup.$prof"
	start_agent "$W/responder.$prof"

	times=()
	for i in $(seq "$RUNS"); do
		s=$(date +%s%N)
		rc=0
		ip netns exec "ipl-$LAB-ini" "$BIN" check "$RSP" --agent "$RSP:7500" --key-file "$W/key" --json >"$W/check.$prof.json" || rc=$?
		times+=("$(ms "$s")")
		[ "$rc" -le 1 ] || { echo "check failed (exit $rc)" >&2; exit 1; }
	done
	med=$(printf '%s\n' "${times[@]}" | sort -n | sed -n "$(( (RUNS + 1) / 2 ))p")
	nt=()
	for i in $(seq "$RUNS"); do
		s=$(date +%s%N)
		rc=0
		ip netns exec "ipl-$LAB-ini" "$BIN" check "$RSP" --agent "$RSP:7500" --key-file "$W/key" --json --no-trace >"$W/check-nt.$prof.json" || rc=$?
		nt+=("$(ms "$s")")
		[ "$rc" -le 1 ] || { echo "check --no-trace failed (exit $rc)" >&2; exit 1; }
	done
	ntmed=$(printf '%s\n' "${nt[@]}" | sort -n | sed -n "$(( (RUNS + 1) / 2 ))p")
	verdicts=$(python3 -c 'import json,sys; s=json.load(open(sys.argv[1]))["summary"]; print("%d/%d" % (s["pass"], s["fail"]))' "$W/check.$prof.json")

	s=$(date +%s%N)
	manual ini rsp "$RSP" "$W/fwd"
	manual rsp ini "$INI" "$W/rev"
	mt=$(ms "$s")
	fwd=$(cat "$W/fwd") rev=$(cat "$W/rev")
	ratio=$(python3 -c "print(f'{$mt/$med:.1f}x')")
	ntratio=$(python3 -c "print(f'{$mt/$ntmed:.1f}x')")
	printf '%-12s %10s %-22s %10s %8s %12s %8s\n' "$prof" "$med" "$verdicts" "$mt" "$ratio" "$ntmed" "$ntratio"
	echo "    check runs (ms): ${times[*]}; --no-trace: ${nt[*]}"
	echo "    manual forward, seen on rsp: $fwd"
	echo "    manual reverse, seen on ini: $rev"
	python3 -c 'import json,sys
r=json.load(open(sys.argv[1]))
bad=["%s/%s=%s" % (x["probe"], x["direction"][0], x["verdict"]) for x in r["results"] if x["verdict"]!="pass"]
print("    check says:", " ".join(bad) if bad else "everything passes")' "$W/check.$prof.json"
	cleanup
done
