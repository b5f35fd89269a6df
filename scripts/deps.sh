#!/usr/bin/env bash
# deps.sh PKG…: install the Debian packages that are not installed yet. As root it runs
# apt-get; otherwise it names what is missing and carries on (tests that need it skip,
# except under CI=true, where they fail).
set -eu
missing=()
for p in "$@"; do
	dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
[ ${#missing[@]} -eq 0 ] && exit 0
if [ "$(id -u)" != 0 ]; then
	echo "deps: not root, cannot install: ${missing[*]} (lab tests will skip)" >&2
	exit 0
fi
echo "deps: installing ${missing[*]}" >&2
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
