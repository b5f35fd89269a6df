#!/usr/bin/env bash
# bench/jitter.sh — does `ipsecpath check` call a probe dropped that was only late? On the
# scratch path (scripts/m-scratch-path.sh: three routers, other addresses, not the lab), for
# each fault in $FAULTS (default "clean jitter300 jitter300-frag-fwd"; lossy works too) and each binary in
# $BINS (default bin/ipsecpath; give two to compare, e.g. BINS="bin/ipsecpath /tmp/new"), it
# runs `check TARGET --agent … --json $ARGS` $RUNS times (default 5; ARGS e.g. "--probes
# ike,natt,esp,ah,tcp" to leave out the forms that need the agent's announce round trip) and
# prints per fault and binary:
#
#   wall_ms     median, min and max wall time of one check (process start to exit)
#   false       false drops: probe/direction results that are not "pass" on a path that
#               carries them (everything on clean and jitter300; everything but the forward
#               fragmented forms on jitter300-frag-fwd), summed over the runs
#   missed      forward fragmented forms on jitter300-frag-fwd that were not "frag-dropped"
#               (the fault the path does have, not called), summed over the runs
#
# and under each row which probe/direction the false drops were (with their verdicts;
# "(unsent)" when the JSON records no attempt: the probe never left, it was not lost), and
# the RTT a ping of 20 saw through the path before the checks. The JSON of every run stays in
# $OUT (default a fresh /tmp/ipt-bench-jitter.XXXXXX, printed at the end) as evidence.
#
# jitter300 is about 300 ms ± 100 ms of RTT, made by a userspace delay box in r2 (this kernel
# has no netem; see the script's "Delay"): it keeps packet order per destination. Figures
# are counts and times for a person to read; nothing here is a pass/fail assertion.
#
# Needs root, python3 and the binaries (make build → bin/ipsecpath). The scratch script stops
# every pid it starts and deletes its namespaces, also on error or Ctrl-C.
set -euo pipefail

cd "$(dirname "$0")/.."
FAULTS=${FAULTS:-clean jitter300 jitter300-frag-fwd}
BINS=${BINS:-bin/ipsecpath}
RUNS=${RUNS:-5}
[ "$(id -u)" = 0 ] || { echo "bench/jitter.sh: needs root (network namespaces, raw sockets)" >&2; exit 2; }
command -v python3 >/dev/null || { echo "bench/jitter.sh: python3 not found" >&2; exit 2; }
for b in $BINS; do
	if [ ! -x "$b" ]; then
		[ "$b" = bin/ipsecpath ] || { echo "bench/jitter.sh: $b missing" >&2; exit 2; }
		go build -o "$b" ./cmd/ipsecpath
	fi
done
OUT=${OUT:-$(mktemp -d /tmp/ipt-bench-jitter.XXXXXX)}
mkdir -p "$OUT"

# The runs, inside the scratch path's ini: a ping for the RTT, then RUNS checks, each one's
# JSON in $OUT/TAG.N.json and its wall time (ms) and exit code in $OUT/TAG.times.
# shellcheck disable=SC2016 # expanded inside ini, where the scratch script sets them
RUN='ping -q -c 20 -i 0.1 "$TARGET" | tail -1 >"$OUT/$TAG.ping"
for i in $(seq "$RUNS"); do
	s=$(date +%s%N); rc=0
	"$CHECK" check "$TARGET" --agent "$AGENT" --key-file "$KEY" --json $ARGS >"$OUT/$TAG.$i.json" || rc=$?
	echo "$(( ($(date +%s%N) - s) / 1000000 )) $rc" >>"$OUT/$TAG.times"
done'

printf '%-20s %-28s %18s %6s %7s\n' fault binary "wall_ms med/min/max" false missed
for fault in $FAULTS; do
	for b in $BINS; do
		tag=$fault.$(echo "$b" | tr -c 'A-Za-z0-9\n' _)
		rm -f "$OUT/$tag".*
		# the responder in far is the same binary as the check
		BIN=$b OUT=$OUT TAG=$tag RUNS=$RUNS ARGS=${ARGS:-} CHECK=$(realpath "$b") \
			scripts/m-scratch-path.sh "$fault" bash -c "$RUN" >"$OUT/$tag.log" 2>&1 ||
			{ echo "bench/jitter.sh: $fault with $b failed:" >&2; cat "$OUT/$tag.log" >&2; exit 1; }
		python3 - "$OUT" "$tag" "$fault" "$b" "$RUNS" <<-'E'
		import json, sys
		out, tag, fault, binary, runs = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4], int(sys.argv[5])
		frag = {"ike-frag", "natt-frag", "esp-frag", "ah-frag", "icmp-large"}
		times, false, missed, which = [], 0, 0, {}
		for line in open(f"{out}/{tag}.times"):
		    ms, rc = map(int, line.split())
		    if rc > 1:
		        sys.exit(f"bench/jitter.sh: check exited {rc} on {fault}")
		    times.append(ms)
		for i in range(1, runs + 1):
		    for r in json.load(open(f"{out}/{tag}.{i}.json"))["results"]:
		        dropped_here = fault.endswith("frag-fwd") and r["direction"] == "forward" and r["probe"] in frag
		        if dropped_here and r["verdict"] != "frag-dropped":
		            missed += 1
		        if not dropped_here and r["verdict"] != "pass":
		            false += 1
		            k = "%s/%s=%s" % (r["probe"], r["direction"][:3], r["verdict"])
		            if not r.get("evidence", {}).get("attempts"):
		                k += "(unsent)"  # no attempt recorded: the probe never left
		            which[k] = which.get(k, 0) + 1
		times.sort()
		wall = "%d/%d/%d" % (times[len(times) // 2], times[0], times[-1])
		print("%-20s %-28s %18s %6d %7d" % (fault, binary[-28:], wall, false, missed))
		print("    ping:", open(f"{out}/{tag}.ping").read().strip())
		if which:
		    print("    false drops:", " ".join("%s×%d" % kv for kv in sorted(which.items())))
		E
	done
done
echo "JSON of every run: $OUT"
