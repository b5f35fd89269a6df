#!/usr/bin/env bash
# m-scratch-path.sh: a path that is not the lab's, to test ipsecpath against faults it was
# not designed around (plain nftables, other addresses, three routers).
#
#   sudo scripts/m-scratch-path.sh FAULT [CMD ...]
#
# Builds five network namespaces m<PID>-{ini,r1,r2,r3,far}:
#
#   ini 198.51.100.130/29 — .129 r1 192.0.2.193/29 — .194 r2 192.0.2.201/29 — .202 r3
#       203.0.113.129/29 — .130 far
#
# (RFC 5737 documentation addresses, none of the lab's subnets; no namespace has a route to
# the host), starts `bin/ipsecpath responder` in far with a fresh key file (mode 600),
# applies FAULT with plain nftables/ip, then runs CMD inside ini (default: an interactive
# shell) with TARGET, AGENT, KEY and NS (the namespace prefix) in its environment.
# `ip netns exec $NS-r2 nft list ruleset` shows the fault. On exit, error or signal a trap
# kills every pid the script started and deletes every namespace it made.
#
# Faults:
#   clean            nothing
#   frag-fwd         r2 drops IP fragments coming from r1 (forward only)
#   udp4500-unreach  r1 rejects UDP 4500 with ICMP port unreachable (both ways)
#   esp-rev          r3 drops ESP coming from far (reverse only)
#   tcp445-reset     r2 answers TCP 445 with a reset (both ways)
#   mtu1280-bh       r2—r3 link MTU 1280, r2 sends no frag-needed (a PMTU black hole)
#   mtu1280-bh-quiet the same, and r2 sends no ICMP errors at all (no time exceeded either)
#   no-ttl-exceeded  r2 sends no ICMP time exceeded
#   far-udp500       far's own input firewall drops UDP 500 (a local cause, not the path)
#   stateful-udp5    r2 tracks UDP, forgets it after 5 s idle, lets only ini open a flow
#   echo-r1          r1 drops ICMP echo requests to itself and through it
#
# Example: sudo scripts/m-scratch-path.sh frag-fwd sh -c 'bin/ipsecpath check $TARGET --agent $AGENT --key-file $KEY'
#
# Traps met here: far runs no IKE daemon, so a check without --agent lives on far's kernel
# ICMP port unreachables, which Linux rate-limits per destination (a burst of 6, then about
# one a second): runs back to back see silence that is not the path's. The chain names are
# mfwd/mout/min/mpre because nft takes "fwd" as a keyword.
set -euo pipefail

FAULT=${1:?usage: $0 FAULT [CMD ...]}
shift
ROOT=$(cd "$(dirname "$0")/.." && pwd)
BIN=${BIN:-$ROOT/bin/ipsecpath}
[ -x "$BIN" ] || { echo "$0: $BIN missing: run make build" >&2; exit 2; }
[ "$(id -u)" = 0 ] || { echo "$0: needs root (network namespaces)" >&2; exit 2; }

NS=m$$
W=$(mktemp -d /tmp/m-scratch.XXXXXX)
PIDS=()
NODES=(ini r1 r2 r3 far)

cleanup() {
	set +e
	for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null; done
	for p in "${PIDS[@]}"; do wait "$p" 2>/dev/null; done
	for n in "${NODES[@]}"; do ip netns del "$NS-$n" 2>/dev/null; done
	rm -rf "$W"
}
trap cleanup EXIT
trap 'exit 130' INT TERM HUP

x() { local n=$1; shift; ip netns exec "$NS-$n" "$@"; }

for n in "${NODES[@]}"; do
	ip netns add "$NS-$n"
	x "$n" ip link set lo up
done
# link A B ADDR_A ADDR_B (/29 each): veth named after the peer
link() {
	ip link add "$2" netns "$NS-$1" type veth peer name "$1" netns "$NS-$2"
	x "$1" ip addr add "$3/29" dev "$2"
	x "$2" ip addr add "$4/29" dev "$1"
	x "$1" ip link set "$2" up
	x "$2" ip link set "$1" up
}
link ini r1 198.51.100.130 198.51.100.129
link r1 r2 192.0.2.193 192.0.2.194
link r2 r3 192.0.2.201 192.0.2.202
link r3 far 203.0.113.129 203.0.113.130
for r in r1 r2 r3; do x "$r" sysctl -qw net.ipv4.ip_forward=1; done
x ini ip route add default via 198.51.100.129
x r1 ip route add 203.0.113.128/29 via 192.0.2.194
x r1 ip route add 192.0.2.200/29 via 192.0.2.194
x r2 ip route add 198.51.100.128/29 via 192.0.2.193
x r2 ip route add 203.0.113.128/29 via 192.0.2.202
x r3 ip route add 198.51.100.128/29 via 192.0.2.201
x r3 ip route add 192.0.2.192/29 via 192.0.2.201
x far ip route add default via 203.0.113.129

nft_in() { x "$1" nft -f -; }
case $FAULT in
clean) ;;
frag-fwd)
	nft_in r2 <<-'E'
	table inet m {
		chain mfwd {
			type filter hook forward priority 0;
			iifname "r1" ip frag-off & 0x3fff != 0 counter drop
		}
	}
	E
	;;
udp4500-unreach)
	nft_in r1 <<-'E'
	table inet m {
		chain mfwd {
			type filter hook forward priority 0;
			udp dport 4500 counter reject with icmp type port-unreachable
		}
	}
	E
	;;
esp-rev)
	nft_in r3 <<-'E'
	table inet m {
		chain mfwd {
			type filter hook forward priority 0;
			iifname "far" meta l4proto esp counter drop
		}
	}
	E
	;;
tcp445-reset)
	nft_in r2 <<-'E'
	table inet m {
		chain mfwd {
			type filter hook forward priority 0;
			tcp dport 445 counter reject with tcp reset
		}
	}
	E
	;;
mtu1280-bh)
	x r2 ip link set r3 mtu 1280
	x r3 ip link set r2 mtu 1280
	nft_in r2 <<-'E'
	table inet m {
		chain mout {
			type filter hook output priority 0;
			icmp type destination-unreachable icmp code frag-needed counter drop
		}
	}
	E
	;;
mtu1280-bh-quiet)
	x r2 ip link set r3 mtu 1280
	x r3 ip link set r2 mtu 1280
	nft_in r2 <<-'E'
	table inet m {
		chain mout {
			type filter hook output priority 0;
			icmp type { destination-unreachable, time-exceeded } counter drop
		}
	}
	E
	;;
no-ttl-exceeded)
	nft_in r2 <<-'E'
	table inet m {
		chain mout {
			type filter hook output priority 0;
			icmp type time-exceeded counter drop
		}
	}
	E
	;;
far-udp500)
	nft_in far <<-'E'
	table inet m {
		chain min {
			type filter hook input priority 0;
			udp dport 500 counter drop
		}
	}
	E
	;;
stateful-udp5)
	nft_in r2 <<-'E'
	table inet m {
		ct timeout udp5 {
			protocol udp
			l3proto ip
			policy = { unreplied: 5, replied: 5 }
		}
		chain mpre {
			type filter hook prerouting priority -300;
			meta l4proto udp ct timeout set "udp5"
		}
		chain mfwd {
			type filter hook forward priority 0;
			ct state established,related accept
			meta l4proto udp iifname "r1" accept
			meta l4proto udp counter drop
		}
	}
	E
	;;
echo-r1)
	nft_in r1 <<-'E'
	table inet m {
		chain min {
			type filter hook input priority 0;
			icmp type echo-request counter drop
		}
		chain mfwd {
			type filter hook forward priority 0;
			icmp type echo-request counter drop
		}
	}
	E
	;;
*) echo "$0: unknown fault $FAULT" >&2; exit 2 ;;
esac

KEY=$W/agent.key
head -c 32 /dev/urandom >"$KEY"
chmod 600 "$KEY"
# not through x(): a function in the background is a subshell, and $! would be its pid, not
# the responder's; `ip netns exec` execs, so here $! is the responder itself
ip netns exec "$NS-far" "$BIN" responder --listen 203.0.113.130:7500 --key-file "$KEY" >"$W/responder.log" 2>&1 &
PIDS+=($!)
for _ in $(seq 50); do
	x far ss -ltn 2>/dev/null | grep -q 203.0.113.130:7500 && break
	sleep 0.1
done
x far ss -ltn | grep -q 203.0.113.130:7500 || { echo "$0: responder did not listen:" >&2; cat "$W/responder.log" >&2; exit 2; }

export TARGET=203.0.113.130 AGENT=203.0.113.130:7500 KEY NS
rc=0
if [ $# = 0 ]; then
	x ini bash -i || rc=$? # in the foreground: it reads the terminal
else
	# in the background, so that a signal to this script runs the trap at once
	ip netns exec "$NS-ini" "$@" &
	PIDS+=($!)
	wait "$!" || rc=$?
fi
if [ -n "${SHOW_RESPONDER:-}" ]; then cat "$W/responder.log" >&2; fi
exit $rc
