#!/usr/bin/env bash
# bench/pmtu.sh — path MTU tools side by side, on the same lab profiles, in the same run:
# tracepath, scamper (trace -M: traceroute, then its PMTUD) and `ipsecpath pmtu`.
# Each tool runs $RUNS times (default 3) per profile; medians are printed.
#
# For each profile in $PROFILES (default "clean mtu1400 mtu1300-blackhole") it brings up a lab
# without gateways (`ipsecpath lab up --no-gateways --name pb<pid>`) and, from ini toward rsp
# (203.0.113.10), runs each tool once:
#
#   tracepath  tracepath -n -m $HOPS 203.0.113.10          (HOPS default 5: the lab has 3)
#   scamper    scamper -O text -c "trace -M" -i 203.0.113.10
#   ipsecpath  ipsecpath pmtu 203.0.113.10 --json
#
# Before each run ini's route cache is flushed (a path MTU learnt by the previous tool must
# not help the next). Probes are the packets ini sends toward 203.0.113.10 while the tool
# runs, counted by an nftables counter in r1's prerouting hook (scamper sends some probes
# through a packet socket, which ini's own output hook never sees). Time is the tool's wall
# clock, process start included; for ipsecpath the start-up of the binary alone (`ipsecpath
# version`) and its own search time (elapsed_ms of its JSON) are printed too.
#
# Found: the path MTU each reports; black hole: whether it says large packets vanish without
# ICMP (tracepath has no such notion: it reports what ICMP tells it), and where.
# Ratios: other tool's time (and probes) divided by ipsecpath's.
#
# Needs root, tracepath, scamper, nft, jq; the binary (make build → bin/ipsecpath, or BIN=…).
# Every lab it builds it tears down, also when interrupted.
set -euo pipefail

cd "$(dirname "$0")/.."
. bench/lib.bash
PROFILES=${PROFILES:-clean mtu1400 mtu1300-blackhole}
HOPS=${HOPS:-5}
RUNS=${RUNS:-3}
TIMEOUT=${TIMEOUT:-180}
NAME=pb$$
TARGET=$RSP

bench_setup tracepath scamper nft jq

ns() { ip netns exec "ipl-$NAME-ini" "$@"; }
r1() { ip netns exec "ipl-$NAME-r1" "$@"; }
now() { date +%s.%N; }

# counter: packets from ini toward the target that reached r1 since the last reset.
counter_setup() {
	r1 nft -f - <<EOF
table ip pmtubench {
	counter probes { }
	chain pre {
		type filter hook prerouting priority -500; policy accept;
		ip saddr $INI ip daddr $TARGET counter name probes
	}
}
EOF
}
counter_reset() { r1 nft reset counter ip pmtubench probes >/dev/null; }
counter_read() { r1 nft -j list counter ip pmtubench probes | jq '.nftables[] | select(.counter) | .counter.packets'; }

# run TOOL CMD…: runs CMD in ini, leaves output in $W/TOOL.out, sets SECS and PROBES.
run() {
	local tool=$1
	shift
	ns ip route flush cache
	counter_reset
	local t0 t1
	t0=$(now)
	ns timeout "$TIMEOUT" "$@" >"$W/$tool.out" 2>"$W/$tool.err" || true
	t1=$(now)
	SECS=$(echo "$t1 - $t0" | bc -l)
	PROBES=$(counter_read)
}

startup() {
	local t0 t1
	t0=$(now)
	ns "$BIN" version >/dev/null
	t1=$(now)
	echo "$t1 - $t0" | bc -l
}

median() { printf '%s\n' "$@" | sort -g | awk '{v[NR]=$1} END {print v[int((NR+1)/2)]}'; }

# one_run TOOL PROFILE: runs TOOL once and sets MTU, BH, WHERE, SECS, PROBES (and SEARCH for
# ipsecpath: its own measured search time, seconds).
one_run() {
	local tool=$1
	case $tool in
	tracepath)
		# The last "pmtu N" it prints; it has no notion of a black hole: it reports what ICMP
		# tells it.
		run tracepath tracepath -n -m "$HOPS" "$TARGET"
		MTU=$(grep -o 'pmtu [0-9]*' "$W/tracepath.out" | tail -1 | awk '{print $2}')
		BH=no WHERE="-"
		grep -q reached "$W/tracepath.out" || WHERE="target not reached"
		;;
	scamper)
		# The MTU of the last hop; "[*mtu: N]" marks an MTU inferred without an ICMP
		# packet-too-big (its black-hole inference), from the first hop that shows it.
		run scamper scamper -O text -c "trace -M" -i "$TARGET"
		MTU=$(grep -o 'mtu: [0-9]*' "$W/scamper.out" | tail -1 | awk '{print $2}')
		BH=no WHERE="-"
		if grep -q '\*mtu' "$W/scamper.out"; then
			BH=yes WHERE="at hop $(grep -m1 '\*mtu' "$W/scamper.out" | awk '{print $1" ("$2")"}')"
		fi
		;;
	ipsecpath)
		run ipsecpath "$BIN" pmtu "$TARGET" --json
		local j=$W/ipsecpath.out
		MTU=$(jq '.pmtu.forward.mtu' "$j")
		BH=$(jq -r 'if .pmtu.forward.blackhole then "yes" else "no" end' "$j")
		WHERE=$(jq -r '.search.forward.blackhole // empty | "after hop \(.last.ttl) (\(.last.addr)), before hop \(.next.ttl) (\(.next.addr))"' "$j")
		WHERE=${WHERE:--}
		SEARCH=$(jq '.search.forward.elapsed_ms / 1000' "$j")
		;;
	esac
}

printf '%-18s %-10s %6s  %-9s %-52s %6s %8s\n' profile tool mtu blackhole where probes seconds
declare -A T P S U
for prof in $PROFILES; do
	LAB=$NAME
	lab_up "$prof" "$W/labup.$prof"
	counter_setup
	for tool in tracepath scamper ipsecpath; do
		secs=() probes=() search=() ups=()
		for ((i = 0; i < RUNS; i++)); do
			one_run "$tool"
			secs+=("$SECS") probes+=("$PROBES")
			if [ "$tool" = ipsecpath ]; then
				search+=("$SEARCH") ups+=("$(startup)")
			fi
		done
		T[$prof.$tool]=$(median "${secs[@]}") P[$prof.$tool]=$(median "${probes[@]}")
		extra=""
		if [ "$tool" = ipsecpath ]; then
			S[$prof]=$(median "${search[@]}") U[$prof]=$(median "${ups[@]}")
			extra=$(printf '  (search %.1f ms; start-up of the binary %.3f s)' "$(echo "${S[$prof]} * 1000" | bc -l)" "${U[$prof]}")
		fi
		printf '%-18s %-10s %6s  %-9s %-52s %6s %8.3f%s\n' "$prof" "$tool" "${MTU:-?}" "$BH" "$WHERE" "${P[$prof.$tool]}" "${T[$prof.$tool]}" "$extra"
	done
	cleanup
done

echo
echo "ratios, other tool / ipsecpath (> 1: ipsecpath is faster or sends fewer probes). 'wall'"
echo "compares whole processes; 'search' compares the other tool's whole process with"
echo "ipsecpath's own search, without the start-up of its binary:"
for prof in $PROFILES; do
	for tool in tracepath scamper; do
		printf '  %-18s %-10s wall %8.2f   search %8.2f   probes %6.2f\n' "$prof" "$tool" \
			"$(echo "${T[$prof.$tool]} / ${T[$prof.ipsecpath]}" | bc -l)" \
			"$(echo "${T[$prof.$tool]} / (${S[$prof]} + 0.0005)" | bc -l)" \
			"$(echo "${P[$prof.$tool]} / ${P[$prof.ipsecpath]}" | bc -l)"
	done
done
