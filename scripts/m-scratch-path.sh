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
#   jitter300        r2 delays every packet it forwards, each way on its own, by a normal
#                    draw of mean 150 ms and deviation 50 ms (0 to 300 ms): RTT about 300 ms,
#                    ± about 100 ms (20 pings through it: min 140–240, avg 260–340, max
#                    380–520, mdev 45–85 ms); order is kept per destination (see "Delay")
#   jitter300-frag-fwd  the same, and r2 drops IP fragments coming from r1 (forward only)
#   lossy            r2 drops 2 % of the packets it forwards, at random, both ways (nft numgen)
#
# Delay: this kernel has no netem (CONFIG_NET_SCH_NETEM, FQ and ETF are off), so the jitter
# faults put a userspace delay box in r2: a TUN device d0, policy routing that sends what
# arrives from r1 or r3 into d0, and a python3 process (its pid recorded like the responder's)
# that writes each packet back into d0 after its delay, from where r2 forwards it as usual.
# DELAY_MS and JITTER_MS (one way, defaults 150 and 50) and LOSS_PCT (default 0) override the
# draw. Unlike netem's plain jitter, the box never reorders: a packet leaves no sooner than
# the one before it to the same destination, so the fault is "slow and variable", not also
# "reordered" (which would change what a fragment or retry probe measures); a burst therefore
# takes the largest of its draws. r2 decrements the TTL twice (once into d0, once out), so a
# hop count through r2 is one more than the routers. The box prints what it applied to
# $W/delaybox.log (shown with SHOW_RESPONDER=1).
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

# delay_r2 DELAY_MS JITTER_MS LOSS_PCT: the userspace delay box in r2 (see "Delay" above).
delay_r2() {
	cat >"$W/delaybox.py" <<-'E'
	import fcntl, heapq, os, random, select, signal, struct, sys, time
	dev, delay, jitter, loss = sys.argv[1], float(sys.argv[2]) / 1e3, float(sys.argv[3]) / 1e3, float(sys.argv[4])
	fd = os.open("/dev/net/tun", os.O_RDWR)
	fcntl.ioctl(fd, 0x400454CA, struct.pack("16sH", dev.encode(), 0x0001 | 0x1000))  # TUNSETIFF, IFF_TUN|IFF_NO_PI
	os.set_blocking(fd, False)
	rng = random.Random()
	queue, last, seq, stats, stop = [], {}, 0, {}, []
	signal.signal(signal.SIGTERM, lambda *_: stop.append(1))
	signal.signal(signal.SIGINT, lambda *_: stop.append(1))
	while not stop:
	    wait = max(0.0, queue[0][0] - time.monotonic()) if queue else 0.5
	    ready = select.select([fd], [], [], wait)[0]
	    now = time.monotonic()
	    while ready:
	        try:
	            pkt = os.read(fd, 65535)
	        except BlockingIOError:
	            break
	        if len(pkt) < 20 or pkt[0] >> 4 != 4:
	            continue  # IPv4 only: the path carries nothing else
	        dst = pkt[16:20]
	        st = stats.setdefault(dst, [0, 0, 0.0, 1e9, 0.0])  # packets, lost, sum, min, max
	        st[0] += 1
	        if rng.random() * 100 < loss:
	            st[1] += 1
	            continue
	        d = min(max(rng.gauss(delay, jitter), 0.0), delay + 3 * jitter)
	        out = max(now + d, last.get(dst, 0.0))  # never before the previous packet to dst
	        last[dst] = out
	        st[2] += out - now
	        st[3], st[4] = min(st[3], out - now), max(st[4], out - now)
	        heapq.heappush(queue, (out, seq, pkt))
	        seq += 1
	    now = time.monotonic()
	    while queue and queue[0][0] <= now:
	        os.write(fd, heapq.heappop(queue)[2])
	for dst, (n, lost, tot, lo, hi) in sorted(stats.items()):
	    kept = max(n - lost, 1)
	    print("to %s: %d packets, %d lost, delay min/avg/max %.0f/%.0f/%.0f ms" % (
	        ".".join(map(str, dst)), n, lost, lo * 1e3 if n > lost else 0, tot / kept * 1e3, hi * 1e3), file=sys.stderr)
	E
	# not through x(): $! must be python's pid (ip netns exec execs)
	ip netns exec "$NS-r2" python3 "$W/delaybox.py" d0 "$1" "$2" "$3" 2>"$W/delaybox.log" &
	DELAYBOX=$!
	PIDS+=($!)
	for _ in $(seq 50); do x r2 ip link show d0 >/dev/null 2>&1 && break; sleep 0.1; done
	x r2 ip link show d0 >/dev/null 2>&1 || { echo "$0: delay box did not start:" >&2; cat "$W/delaybox.log" >&2; exit 2; }
	x r2 sysctl -qw net.ipv6.conf.d0.disable_ipv6=1
	x r2 ip link set d0 up
	for i in all default d0 r1 r3; do x r2 sysctl -qw "net.ipv4.conf.$i.rp_filter=0"; done
	x r2 ip route add default dev d0 table 100
	x r2 ip rule add iif r1 lookup 100 pref 100
	x r2 ip rule add iif r3 lookup 100 pref 100
}

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
jitter300)
	delay_r2 "${DELAY_MS:-150}" "${JITTER_MS:-50}" "${LOSS_PCT:-0}"
	;;
jitter300-frag-fwd)
	delay_r2 "${DELAY_MS:-150}" "${JITTER_MS:-50}" "${LOSS_PCT:-0}"
	nft_in r2 <<-'E'
	table inet m {
		chain mfwd {
			type filter hook forward priority 0;
			iifname "r1" ip frag-off & 0x3fff != 0 counter drop
		}
	}
	E
	;;
lossy)
	nft_in r2 <<-'E'
	table inet m {
		chain mfwd {
			type filter hook forward priority 0;
			numgen random mod 100 < 2 counter drop
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
if [ -n "${SHOW_RESPONDER:-}" ]; then
	cat "$W/responder.log" >&2
	if [ -n "${DELAYBOX:-}" ]; then # the box prints its figures when it stops
		kill "$DELAYBOX" 2>/dev/null && wait "$DELAYBOX" 2>/dev/null
		cat "$W/delaybox.log" >&2
	fi
fi
exit $rc
