#!/usr/bin/env bash
# fuzz-all.sh DURATION: run every Fuzz target of every package for DURATION each.
# A crasher is written to the package's testdata/fuzz and fails the run.
set -eu
t=${1:-4s}
n=0
for pkg in $(go list ./...); do
	for f in $(go test -list '^Fuzz' "$pkg" 2>/dev/null | grep '^Fuzz' || true); do
		echo "fuzz $pkg $f ($t)"
		go test -run '^$' -fuzz "^${f}\$" -fuzztime "$t" "$pkg" >/tmp/ipsecpath-fuzz.$$ 2>&1 || {
			cat /tmp/ipsecpath-fuzz.$$; rm -f /tmp/ipsecpath-fuzz.$$; exit 1; }
		n=$((n+1))
	done
done
rm -f /tmp/ipsecpath-fuzz.$$
echo "fuzz: $n targets ran for $t each"
