#!/usr/bin/env bash
# bench/trace.sh — `ipsecpath trace` against the tracers an engineer already has, on the same
# lab profiles, in the same run: do they agree where both answer, and what does each cost in
# time and packets.
#
# For each profile in $PROFILES (default "clean esp-drop frag-drop") it brings up a lab
# without gateways (nothing listens on rsp: UDP and TCP probes that arrive draw rsp's own
# port unreachable or reset, which every tracer counts as arrival) and runs, from ini toward
# rsp, one after the other:
#
#   traceroute -n -P 50        vs  ipsecpath trace --probe esp      (raw ESP)
#   traceroute -n -U -p 500    vs  ipsecpath trace --probe ike      (UDP 500, fixed port)
#   traceroute -n -U -p 500 … 3000  vs  ipsecpath trace --probe ike-frag  (3000 bytes: the kernel
#                              fragments traceroute's datagram; ours cuts its own 1280-byte ones)
#   traceroute -n -T -p 445    vs  ipsecpath trace --probe tcp:445  (TCP SYN)
#   scamper trace -P udp-paris -d 500  vs  ipsecpath trace --probe ike
#
# Each tool runs with its defaults (ipsecpath: 30 hops, 2 s timeout, 100 packets/s;
# traceroute: 3 queries per hop, 16 in flight, waits up to 5 s; scamper: 2 attempts, 5 s wait,
# gap limit 5), one-ended; each run is cut off after $CAP seconds (default 60: its time then
# reads as about 60000 ms, its packet count as what it printed so far); no agent (traceroute
# cannot use one).
# Printed per pair: the hops where both got an answer and how many of them name the same
# address ("agree"), whether each reached rsp, wall time of each and the ratio, packets sent
# by each and the ratio (ipsecpath counts its references and every fragment).
#
# Needs root, traceroute, scamper, jq and the binary (make build → bin/ipsecpath, or BIN=…).
# Every lab it builds it tears down, also when it fails.
set -euo pipefail

cd "$(dirname "$0")/.."
. bench/lib.bash
PROFILES=${PROFILES:-clean esp-drop frag-drop}
NAME=ht$$
# CAP bounds each tool's run, in seconds: traceroute -P 50 sends one probe at a time and waits
# 5 s for each silent one (a path that drops ESP after hop 1 takes about 7 minutes).
CAP=${CAP:-60}

bench_setup traceroute scamper jq

now() { date +%s%N; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (b > 0) printf "%.2f", a / b; else print "-" }'; }

# ours ID OUT: ipsecpath trace of probe ID; "ttl addr" lines in OUT.hops, reached (yes/no) in
# OUT.far, packets in OUT.n, milliseconds in OUT.ms.
ours() {
	local t0
	t0=$(now)
	ip netns exec "ipl-$LAB-ini" "$BIN" trace "$RSP" --probe "$1" --json >"$2.json" 2>"$2.err" || true
	ms "$t0" >"$2.ms"
	jq -r '.trace.forward.hops[] | select(.addr != null) | "\(.ttl) \(.addr)"' "$2.json" >"$2.hops"
	jq -r 'if .trace.forward.far_end then "yes" else "no" end' "$2.json" >"$2.far"
	jq -r '.trace.forward.probes' "$2.json" >"$2.n"
}

# theirs OUT ARGS…: traceroute with ARGS (then the target, then $TRLEN, its packet length,
# when set); the same files as ours.
theirs() {
	local out=$1 t0
	shift
	t0=$(now)
	# shellcheck disable=SC2086 # TRLEN is empty or one number
	timeout "$CAP" ip netns exec "ipl-$LAB-ini" traceroute -n "$@" "$RSP" ${TRLEN:-} >"$out.txt" 2>"$out.err" || true
	ms "$t0" >"$out.ms"
	# " 2  192.0.2.66  0.014 ms …": the first address of each answered hop.
	awk 'NR > 1 && $2 != "*" { print $1, $2 } NR > 1 && $2 == "*" { for (i = 3; i <= NF; i++) if ($i ~ /^[0-9.]+$/ && $i ~ /\./) { print $1, $i; break } }' "$out.txt" >"$out.hops"
	if grep -q " $RSP" "$out.hops"; then echo yes; else echo no; fi >"$out.far"
	# traceroute sends 3 queries per TTL line it prints.
	echo $(( 3 * $(awk 'NR > 1 && $1 ~ /^[0-9]+$/' "$out.txt" | wc -l) )) >"$out.n"
}

# scamp OUT: scamper's Paris UDP trace to port 500; the same files.
scamp() {
	local out=$1 t0
	t0=$(now)
	timeout "$CAP" ip netns exec "ipl-$LAB-ini" scamper -O json -c "trace -P udp-paris -d 500" -i "$RSP" >"$out.json" 2>"$out.err" || true
	ms "$t0" >"$out.ms"
	jq -r 'select(.type == "trace") | .hops[]? | "\(.probe_ttl) \(.addr)"' "$out.json" | sort -un -k1,1 >"$out.hops"
	if grep -q " $RSP" "$out.hops"; then echo yes; else echo no; fi >"$out.far"
	jq -r 'select(.type == "trace") | .probe_count' "$out.json" >"$out.n"
}

# compare NAME A B: one line of the table.
compare() {
	local both agree
	both=$(join <(sort -k1,1 "$2.hops") <(sort -k1,1 "$3.hops") | wc -l)
	agree=$(join <(sort -k1,1 "$2.hops") <(sort -k1,1 "$3.hops") | awk '$2 == $3' | wc -l)
	printf '%-18s %-26s %7s %4s/%-4s %9s %9s %6s %7s %7s %6s\n' "$PROF" "$1" "$agree/$both" \
		"$(cat "$2.far")" "$(cat "$3.far")" "$(cat "$2.ms")" "$(cat "$3.ms")" "$(ratio "$(cat "$2.ms")" "$(cat "$3.ms")")" \
		"$(cat "$2.n")" "$(cat "$3.n")" "$(ratio "$(cat "$2.n")" "$(cat "$3.n")")"
	if [ "$agree" != "$both" ]; then
		echo "  disagreement ($1): ipsecpath vs other, per TTL:" >&2
		join <(sort -k1,1 "$2.hops") <(sort -k1,1 "$3.hops") | awk '$2 != $3' >&2
	fi
}

printf '%-18s %-26s %7s %9s %9s %9s %6s %7s %7s %6s\n' profile "pair (ipsecpath vs other)" agree "reached" ours_ms other_ms t_rat ours_n other_n n_rat
for PROF in $PROFILES; do
	LAB=$NAME-${PROF//-/}
	lab_up "$PROF" "$W/labup.$PROF"
	d=$W/$PROF
	mkdir -p "$d"
	ours esp "$d/esp"
	theirs "$d/tr-esp" -P 50
	compare "esp / traceroute -P 50" "$d/esp" "$d/tr-esp"
	ours ike "$d/ike"
	theirs "$d/tr-ike" -U -p 500
	compare "ike / traceroute -U 500" "$d/ike" "$d/tr-ike"
	ours ike-frag "$d/ikef"
	TRLEN=3000 theirs "$d/tr-ikef" -U -p 500
	compare "ike-frag / traceroute -U 3000" "$d/ikef" "$d/tr-ikef"
	ours tcp:445 "$d/tcp"
	theirs "$d/tr-tcp" -T -p 445
	compare "tcp:445 / traceroute -T" "$d/tcp" "$d/tr-tcp"
	scamp "$d/sc-ike"
	compare "ike / scamper udp-paris" "$d/ike" "$d/sc-ike"
	cleanup
done
