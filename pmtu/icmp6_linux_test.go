//go:build linux

package pmtu

import (
	"context"
	"testing"
	"time"

	"github.com/ipsecpath/ipsecpath/testlab"
)

// inScratchNetns runs fn on a locked thread in a new network namespace with only a loopback
// (up, at the given MTU), and deletes the namespace afterwards (it is unnamed: it dies with
// its last reference). Traffic stays on that loopback.
func inScratchNetns(t *testing.T, loMTU int, fn func()) {
	t.Helper()
	testlab.InScratchNetns(t, func() {
		if err := testlab.LoopbackUp(loMTU); err != nil {
			t.Errorf("loopback: %v", err)
			return
		}
		fn()
	})
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
