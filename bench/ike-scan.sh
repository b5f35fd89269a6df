#!/usr/bin/env bash
# ike-scan.sh: time `ipsecpath ike` against ike-scan asking the same questions of the same
# lab gateway (strongSwan on rsp), and print the ratio ours/theirs per target.
#   answered: one question (IKEv1 Main Mode on 500) and all four (IKEv1/IKEv2 on 500/4500);
#   silent:   the same four on a udp500-drop lab, where UDP 500 gets no answer.
# The questions are stateless on both sides (ike-scan's default proposals are refused with
# NO-PROPOSAL-CHOSEN / INVALID_KE_PAYLOAD; ipsecpath --stateless), so strongSwan's per-peer
# limit of half-open SAs never interferes. Needs root, ip, nft, strongSwan and ike-scan.
# Usage: bench/ike-scan.sh [RUNS]   (IPSECPATH=/path/to/binary to skip the build)
set -eu
runs=${1:-10}
cd "$(dirname "$0")/.."
if [ "$(id -u)" != 0 ]; then echo "ike-scan.sh: needs root (lab namespaces): skipped"; exit 0; fi
for t in ike-scan ip nft swanctl; do
	command -v "$t" >/dev/null || { echo "ike-scan.sh: $t missing (make deps): skipped"; exit 0; }
done
tmp=$(mktemp -d)
bin=${IPSECPATH:-$tmp/ipsecpath}
[ -n "${IPSECPATH:-}" ] || go build -o "$bin" ./cmd/ipsecpath
labs=()
cleanup() {
	for l in "${labs[@]}"; do "$bin" lab down "$l" >/dev/null 2>&1 || true; done
	rm -rf "$tmp"
}
trap cleanup EXIT INT TERM

now() { date +%s%N; }
# mean_ms NAME CMD...: run CMD $runs times in the lab's ini namespace, print the mean in ms.
mean_ms() {
	local ns=$1; shift
	local t0 t1 total=0 i
	for i in $(seq "$runs"); do
		t0=$(now)
		ip netns exec "$ns" "$@" >/dev/null 2>&1 || true
		t1=$(now)
		total=$((total + (t1 - t0) / 1000))
	done
	echo $((total / runs / 1000))
}
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (b == 0) b = 1; printf "%.2f", a / b }'; }

scan4() { # the four questions, one ike-scan run each, as a person would type them
	ike-scan --sport=0 -M "$1"
	ike-scan -M --nat-t --sport=0 "$1"
	ike-scan --sport=0 --ikev2 "$1"
	ike-scan --ikev2 --nat-t --sport=0 "$1"
}
export -f scan4

report() { # report SCENARIO OURS_MS THEIRS_MS
	printf '%-34s ipsecpath %6d ms   ike-scan %6d ms   ratio %s\n' "$1" "$2" "$3" "$(ratio "$2" "$3")"
}

clean=ikeb$$c
drop=ikeb$$d
labs+=("$clean")
"$bin" lab up --profile clean --name "$clean" >/dev/null
ns=ipl-$clean-ini
target=203.0.113.10
# Sanity: both tools get an answer before anything is timed.
ip netns exec "$ns" ike-scan --sport=0 -M "$target" | grep -q 'returned notify\|Handshake returned' || { echo "ike-scan got no answer"; exit 1; }
ip netns exec "$ns" "$bin" ike "$target" --stateless --search=false >/dev/null || { echo "ipsecpath ike got no answer"; exit 1; }

echo "ike-scan.sh: $runs runs each, lab profile clean then udp500-drop, target $target"
o=$(mean_ms "$ns" "$bin" ike "$target" --stateless --search=false --version 1 --port 500)
s=$(mean_ms "$ns" ike-scan --sport=0 -M "$target")
report "1 question, answered" "$o" "$s"
o=$(mean_ms "$ns" "$bin" ike "$target" --stateless --search=false)
s=$(mean_ms "$ns" bash -c "scan4 $target")
report "4 questions, answered" "$o" "$s"
"$bin" lab down "$clean" >/dev/null

labs+=("$drop")
"$bin" lab up --profile udp500-drop --name "$drop" >/dev/null 2>&1
ns=ipl-$drop-ini
runs=$(( runs < 3 ? runs : 3 ))
o=$(mean_ms "$ns" "$bin" ike "$target" --stateless --search=false)
s=$(mean_ms "$ns" bash -c "scan4 $target")
report "4 questions, UDP 500 silent" "$o" "$s"
o=$(mean_ms "$ns" "$bin" ike "$target" --stateless --search=false --version 1 --port 500)
s=$(mean_ms "$ns" ike-scan --sport=0 -M "$target")
report "1 question, silent" "$o" "$s"
echo "(ratio < 1: ipsecpath is faster. A silent exchange waits 0.5+0.75+1.125 s in both tools; ipsecpath asks its questions at once.)"
