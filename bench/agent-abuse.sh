#!/usr/bin/env bash
# bench/agent-abuse.sh — the far-end agent under abuse: its resident memory while
# SESSIONS authenticated sessions (default 32) observe and PACKETS junk packets (default
# 10^6) arrive at RATE packets/s (default 30000), and after the sessions end.
#
# The agent (`ipsecpath responder`) and the load (bench/agentabuse) run in a network
# namespace of their own (ipt-abuse-PID, loopback only, with PEERS addresses of 192.0.2.0/24
# on it): every packet stays in it. The junk
# is what anyone can send an agent without the key: ICMP errors from random sources quoting
# a packet to the initiator, non-first fragments from the initiator's address with random
# IP IDs, ESP without a probe marker, and ESP with a forged probe marker (the last kind is
# indistinguishable from probes: budgets bound it). The sessions come from PEERS local
# addresses (default 4: the agent takes at most 8 sessions per initiator address), and each
# junk packet reaches the capture of every session of its address.
#
# Prints the agent's RSS idle, with the sessions, at the end of the flood (and its VmHWM),
# and every 0.5 s for AFTER (default 5s) after the sessions end. Goal: VmHWM < 64 MiB.
#
# Needs root. BIN (default bin/ipsecpath) and GEN (default: built from bench/agentabuse) can
# point at binaries of another tree to measure it the same way (both ends must speak the
# same control protocol).
set -euo pipefail

cd "$(dirname "$0")/.."
BIN=${BIN:-bin/ipsecpath}
SESSIONS=${SESSIONS:-32}
PACKETS=${PACKETS:-1000000}
RATE=${RATE:-30000}
AFTER=${AFTER:-5s}

[ "$(id -u)" = 0 ] || { echo "bench/agent-abuse.sh: needs root (network namespace, raw sockets)" >&2; exit 2; }

W=$(mktemp -d /tmp/ipt-agent-abuse.XXXXXX)
NS=ipt-abuse-$$
AGENT=""
cleanup() {
	if [ -n "$AGENT" ] && kill -0 "$AGENT" 2>/dev/null; then
		kill "$AGENT"
		wait "$AGENT" 2>/dev/null || true
	fi
	ip netns del "$NS" 2>/dev/null || true
	rm -rf "$W"
}
trap cleanup EXIT

[ -x "$BIN" ] || go build -o "$BIN" ./cmd/ipsecpath
GEN=${GEN:-$W/agentabuse}
[ -x "$GEN" ] || go build -o "$GEN" ./bench/agentabuse

head -c 32 /dev/urandom >"$W/key"
chmod 600 "$W/key"
ip netns add "$NS"
ip -n "$NS" link set lo up
PEERS=${PEERS:-4}
PEERLIST=""
for i in $(seq "$PEERS"); do
	ip -n "$NS" addr add "192.0.2.$((200 + i))/32" dev lo
	PEERLIST="$PEERLIST${PEERLIST:+,}192.0.2.$((200 + i))"
done
# `ip netns exec` execs the command: $! is the agent's pid.
ip netns exec "$NS" "$BIN" responder --listen 0.0.0.0:7500 --key-file "$W/key" 2>"$W/agent.log" &
AGENT=$!
for _ in $(seq 100); do
	grep -q "listening" "$W/agent.log" 2>/dev/null && break
	sleep 0.1
done
grep -q "listening" "$W/agent.log" || { cat "$W/agent.log" >&2; echo "bench/agent-abuse.sh: the agent did not start" >&2; exit 1; }

echo "agent: $("$BIN" version 2>/dev/null || echo "$BIN"), $SESSIONS sessions, $PACKETS junk packets at $RATE/s"
ip netns exec "$NS" "$GEN" -port 7500 -peers "$PEERLIST" -key "$W/key" -pid "$AGENT" \
	-sessions "$SESSIONS" -packets "$PACKETS" -rate "$RATE" -after "$AFTER"
echo "agent log (last lines):"
tail -n 3 "$W/agent.log"
