package probe

import (
	"context"
	"errors"
	"net"
	"net/netip"
	"strings"
	"sync"
	"testing"
)

// dialFrom connects to the agent from a chosen loopback source address.
func dialFrom(t *testing.T, addr string, src netip.Addr, key []byte) *AgentClient {
	t.Helper()
	d := net.Dialer{LocalAddr: &net.TCPAddr{IP: src.AsSlice()}, Timeout: DialTimeout}
	c, err := d.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return &AgentClient{addr: addr, key: append([]byte(nil), key...), conn: c}
}

// TestAgentBusyIsNotBadKey: an agent with no room says "busy" (every slot holds a session,
// or the initiator's address holds MaxSessionsPerPeer), which the initiator reports as busy,
// never as a wrong key; a wrong key is still reported as such; room comes back when a
// session ends; another address is not held back by one address's sessions.
func TestAgentBusyIsNotBadKey(t *testing.T) {
	ctx := context.Background()
	t.Run("every slot taken", func(t *testing.T) {
		fx := startAgent(t, func(c *ResponderConfig) { c.MaxConns = 2 })
		a, b := dial(t, fx.addr, testKey), dial(t, fx.addr, testKey)
		for _, c := range []*AgentClient{a, b} {
			if _, err := c.Hello(ctx); err != nil {
				t.Fatal(err)
			}
		}
		_, err := dial(t, fx.addr, testKey).Hello(ctx)
		if !errors.Is(err, ErrAgentBusy) || errors.Is(err, ErrAgentRejected) || !strings.Contains(err.Error(), "connection slots") {
			t.Fatalf("third session on a 2-slot agent: %v, want ErrAgentBusy", err)
		}
		_, err = dial(t, fx.addr, []byte("not the agent's key, but long enough")).Hello(ctx)
		if !errors.Is(err, ErrAgentBusy) {
			t.Fatalf("wrong key on a full agent: %v, want busy (it is never asked)", err)
		}
		a.Stop(ctx)
		waitFor(t, "a slot", func() bool {
			_, err := dial(t, fx.addr, testKey).Hello(ctx)
			return err == nil
		})
	})
	t.Run("per initiator address", func(t *testing.T) {
		fx := startAgent(t, nil)
		one := netip.MustParseAddr("127.0.0.1")
		for i := range MaxSessionsPerPeer {
			if _, err := dialFrom(t, fx.addr, one, testKey).Hello(ctx); err != nil {
				t.Fatalf("session %d: %v", i+1, err)
			}
		}
		_, err := dialFrom(t, fx.addr, one, testKey).Hello(ctx)
		if !errors.Is(err, ErrAgentBusy) || errors.Is(err, ErrAgentRejected) || !strings.Contains(err.Error(), "limit per initiator") {
			t.Fatalf("session %d from one address: %v, want ErrAgentBusy", MaxSessionsPerPeer+1, err)
		}
		if _, err := dialFrom(t, fx.addr, netip.MustParseAddr("127.0.0.2"), testKey).Hello(ctx); err != nil {
			t.Fatalf("another address while the first holds its quota: %v", err)
		}
	})
	t.Run("wrong key", func(t *testing.T) {
		fx := startAgent(t, nil)
		_, err := dial(t, fx.addr, []byte("not the agent's key, but long enough")).Hello(ctx)
		if !errors.Is(err, ErrAgentRejected) || errors.Is(err, ErrAgentBusy) {
			t.Fatalf("wrong key: %v, want ErrAgentRejected", err)
		}
	})
}

// TestAgentHelloFloodLocksNobodyOut: one key holder sending tens of thousands of requests
// in a burst (control protocol 1 kept every nonce for 60 s in a cache of 16,384 shared by
// everyone, and then refused every initiator, who was told "wrong key") leaves the agent
// serving others.
func TestAgentHelloFloodLocksNobodyOut(t *testing.T) {
	fx := startAgent(t, nil)
	ctx := context.Background()
	const conns, each = 4, 5000
	var wg sync.WaitGroup
	errs := make(chan error, conns)
	for range conns {
		c := dial(t, fx.addr, testKey)
		wg.Go(func() {
			for range each {
				if _, err := c.Hello(ctx); err != nil {
					errs <- err
					return
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatalf("flooding key holder refused: %v", err)
	}
	if _, err := dial(t, fx.addr, testKey).Hello(ctx); err != nil {
		t.Fatalf("another initiator after %d hellos: %v", conns*each, err)
	}
}

// markerSeen returns n ESP probe packets (first fragments with a marker) from src.
func markerSeen(t testing.TB, src, dst netip.Addr, n int) []Seen {
	t.Helper()
	nonces, err := NewNonces(n)
	if err != nil {
		t.Fatal(err)
	}
	out := make([]Seen, 0, n)
	for _, nc := range nonces {
		out = append(out, buildSeen(t, ESP, src, dst, nc)...)
	}
	return out
}

// TestAgentKeepsOnlyItsOwn: what a session keeps is bounded for the agent as a whole and
// per initiator address, not only per session; ICMP errors quoting packets to the initiator
// that are not the session's reverse probes, and non-first fragments whose IP ID the
// initiator did not announce, are not kept at all (anyone can send those); a session that
// ends gives its room back.
func TestAgentKeepsOnlyItsOwn(t *testing.T) {
	fx := startAgent(t, nil)
	ctx := context.Background()
	lo, lo2 := netip.MustParseAddr("127.0.0.1"), netip.MustParseAddr("127.0.0.2")
	// Junk: errors from random routers quoting a packet to the initiator, and fragments.
	var junk []Seen
	var pk Packets
	for i := range 2000 {
		if err := Build(ESP, BuildParams{Src: lo, Dst: lo, Nonce: 0x01000001 + uint32(i)<<8}, &pk); err != nil {
			t.Fatal(err)
		}
		from := netip.AddrFrom4([4]byte{198, 18, byte(i >> 8), byte(i)})
		junk = append(junk, Seen{Src: from, Dst: lo, Proto: 1, Head: append([]byte{3, 13, 0, 0, 0, 0, 0, 0}, pk.Wire[0][:28]...)})
		junk = append(junk, Seen{Src: lo, Dst: lo, Proto: 50, IPID: uint16(i + 1), Offset: 1480, TotalLen: 1500})
	}
	const sessions = 5 // 5 × MaxSessionSeen is more than MaxPeerSeen
	var cs []*AgentClient
	for range sessions {
		c := dialFrom(t, fx.addr, lo, testKey)
		if err := c.StartObserving(ctx); err != nil {
			t.Fatal(err)
		}
		cs = append(cs, c)
	}
	fx.capt.inject(junk...)
	fx.capt.inject(markerSeen(t, lo, lo, MaxSessionSeen)...)
	kept, lost, other := 0, 0, 0
	for _, c := range cs {
		var rep *AgentReport
		var err error
		waitFor(t, "drained", func() bool {
			rep, err = c.Report(ctx)
			return err != nil || len(rep.Seen)+rep.Lost+rep.Other == len(junk)+MaxSessionSeen
		})
		if err != nil {
			t.Fatal(err)
		}
		kept, lost, other = kept+len(rep.Seen), lost+rep.Lost, other+rep.Other
		for _, s := range rep.Seen {
			if s.Proto != ProtoESP || s.Offset != 0 {
				t.Fatalf("kept junk: %+v", s)
			}
		}
	}
	t.Logf("%d sessions from one address: kept %d, lost %d, other %d", sessions, kept, lost, other)
	if other != sessions*len(junk) {
		t.Fatalf("%d packets counted as other, want all %d junk packets", other, sessions*len(junk))
	}
	if kept != MaxPeerSeen || lost != sessions*MaxSessionSeen-MaxPeerSeen {
		t.Fatalf("one address's sessions kept %d packets and lost %d, want the per-address budget %d and the rest lost", kept, lost, MaxPeerSeen)
	}
	// Another address still has room.
	c2 := dialFrom(t, fx.addr, lo2, testKey)
	if err := c2.StartObserving(ctx); err != nil {
		t.Fatal(err)
	}
	probes := markerSeen(t, lo2, lo, 100)
	fx.capt.inject(probes...)
	waitFor(t, "the other address's packets", func() bool {
		rep, err := c2.Report(ctx)
		return err == nil && len(rep.Seen) == len(probes)
	})
	for _, c := range append(cs, c2) {
		c.Stop(ctx)
	}
	waitFor(t, "budgets given back", func() bool {
		fx.r.mu.Lock()
		defer fx.r.mu.Unlock()
		return fx.r.kept == 0 && len(fx.r.keptPeer) == 0
	})
}
