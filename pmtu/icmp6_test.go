package pmtu

import (
	"context"
	"net/netip"
	"runtime"
	"testing"
	"time"

	"github.com/ipsecpath/ipsecpath/probe/wire"
	"github.com/ipsecpath/ipsecpath/testlab"
	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
)

// Hand-built ICMPv6 messages (RFC 4443), ICMPv6 header first, for a probe with echo id
// 0x4242 seq 7 to ::1 (the only IPv6 address a test may probe). The quoted packet is the
// IPv6 header (version 6, payload length, next header 58, hop limit, src, dst) and our echo
// request header.
var (
	quoted6 = unhex(`6000 0000 05b0 3a40
		0000 0000 0000 0000 0000 0000 0000 0001
		0000 0000 0000 0000 0000 0000 0000 0001
		8000 0000 4242 0007`)
	// Packet Too Big, MTU 1400 (0x578), from a router.
	golden6PTB = append(unhex(`0200 0000 0000 0578`), quoted6...)
	// Time Exceeded, hop limit exceeded in transit.
	golden6TimeExceeded = append(unhex(`0300 0000 0000 0000`), quoted6...)
	// Echo Reply with our id and seq.
	golden6EchoReply = unhex(`8100 0000 4242 0007 6970 7365 6370 6174`)
)

var (
	lo6     = netip.MustParseAddr("::1")
	router6 = netip.MustParseAddr("fe80::1")
)

func TestParseICMPv6Golden(t *testing.T) {
	id := echoID{ID: 0x4242, Seq: 7}
	tests := []struct {
		name string
		from netip.Addr
		b    []byte
		want Reply
	}{
		{"packet-too-big", router6, golden6PTB, Reply{Outcome: FragNeeded, From: router6, MTU: 1400, Type: 2}},
		{"time-exceeded", router6, golden6TimeExceeded, Reply{Outcome: TimeExceeded, From: router6, Type: 3}},
		{"echo-reply", lo6, golden6EchoReply, Reply{Outcome: Arrived, From: lo6}},
	}
	for _, tc := range tests {
		got, err := parseICMPv6(tc.from, lo6, tc.b, id)
		if err != nil || got != tc.want {
			t.Errorf("%s: %+v, %v; want %+v", tc.name, got, err, tc.want)
		}
	}
	mod := func(b []byte, i int, v byte) []byte {
		c := append([]byte(nil), b...)
		c[i] = v
		return c
	}
	for name, b := range map[string][]byte{
		"other seq":        mod(golden6PTB, 8+40+7, 8),
		"other id":         mod(golden6PTB, 8+40+4, 0),
		"quotes udp":       mod(golden6PTB, 8+6, 17),
		"quotes ipv4":      mod(golden6PTB, 8, 0x45),
		"other dst":        mod(golden6PTB, 8+39, 2),
		"quotes reply":     mod(golden6PTB, 8+40, wire.ICMP6EchoReply),
		"truncated":        golden6PTB[:8+40+7],
		"redirect":         mod(golden6PTB, 0, 137),
		"reply other seq":  mod(golden6EchoReply, 7, 8),
		"icmpv4 echo type": mod(golden6EchoReply, 0, 0),
	} {
		if r, err := parseICMPv6(router6, lo6, b, id); err == nil {
			t.Errorf("%s: parsed as %+v", name, r)
		}
	}
	// A reply must come from the target itself.
	if _, err := parseICMPv6(router6, lo6, golden6EchoReply, id); err == nil {
		t.Error("echo reply from a router accepted")
	}
}

func FuzzParseICMPv6(f *testing.F) {
	f.Add(golden6PTB)
	f.Add(golden6TimeExceeded)
	f.Add(golden6EchoReply)
	f.Fuzz(func(t *testing.T, b []byte) {
		r, err := parseICMPv6(router6, lo6, b, echoID{ID: 0x4242, Seq: 7})
		if err == nil && r.Outcome == Arrived {
			t.Fatalf("echo reply accepted from a router: %+v", r)
		}
		if err == nil && len(b) < 8+40+8 {
			t.Fatalf("error accepted from %d bytes", len(b))
		}
	})
}

// inScratchNetns runs fn on a locked thread in a new network namespace with only a loopback
// (up, at the given MTU), and deletes the namespace afterwards (it is unnamed: it dies with
// its last reference). Traffic stays on that loopback.
func inScratchNetns(t *testing.T, loMTU int, fn func()) {
	t.Helper()
	testlab.RequireRoot(t)
	done := make(chan struct{})
	go func() {
		defer close(done)
		runtime.LockOSThread() // never unlocked: the thread exits with the goroutine
		orig, err := netns.Get()
		if err != nil {
			t.Errorf("netns: %v", err)
			return
		}
		defer orig.Close()
		ns, err := netns.New()
		if err != nil {
			t.Errorf("netns: new: %v", err)
			return
		}
		defer ns.Close()
		defer netns.Set(orig)
		lo, err := netlink.LinkByName("lo")
		if err == nil {
			err = netlink.LinkSetMTU(lo, loMTU)
		}
		if err == nil {
			err = netlink.LinkSetUp(lo)
		}
		if err != nil {
			t.Errorf("loopback: %v", err)
			return
		}
		fn()
	}()
	<-done
}

// TestICMPv6Loopback probes ::1 in a scratch namespace: with a 1500-byte loopback the
// 1500-byte probe comes back; with a 1400-byte loopback the kernel refuses bigger packets
// (don't-fragment) and the search settles on the interface's 1400 in 3 probes.
func TestICMPv6Loopback(t *testing.T) {
	for _, c := range []struct {
		loMTU, want, probes int
		signalled           bool
	}{{1500, 1500, 2, false}, {1400, 1400, 3, true}} {
		inScratchNetns(t, c.loMTU, func() {
			p, err := NewICMPProber(lo6)
			if err != nil {
				t.Errorf("NewICMPProber(::1): %v", err)
				return
			}
			defer p.Close()
			ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
			defer cancel()
			res, err := Discover(ctx, p, Options{Min: 1280})
			if err != nil {
				t.Errorf("lo mtu %d: %v", c.loMTU, err)
				return
			}
			if res.MTU != c.want || !res.Exact || res.Probes != c.probes || res.Signalled != c.signalled || res.Blackhole != nil {
				t.Errorf("lo mtu %d: mtu %d exact %v probes %d signalled %v bh %+v; want %d in %d, signalled %v",
					c.loMTU, res.MTU, res.Exact, res.Probes, res.Signalled, res.Blackhole, c.want, c.probes, c.signalled)
			}
			t.Logf("lo mtu %d: ::1 path MTU %d in %d probes (signalled %v), %v", c.loMTU, res.MTU, res.Probes, res.Signalled, res.Elapsed)
			// TTL 1 toward ::1 still arrives: there is no router in between.
			r, err := p.Probe(ctx, Request{Size: 1280, TTL: 1, Timeout: time.Second})
			if err != nil || r.Outcome != Arrived {
				t.Errorf("hop limit 1 to ::1: %+v, %v", r, err)
			}
		})
	}
}
