//go:build linux

package pmtu_test

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/ipsecpath/ipsecpath/pmtu"
	"github.com/ipsecpath/ipsecpath/testlab"
)

// Bounds the lab runs must stay within (the figures are what a run takes on the lab, with
// room): sizes, packets, and seconds per discovery.
const (
	labMaxProbes = 24
	labMaxTime   = 5 * time.Second
)

// discoverIn runs Discover with the real ICMP prober from node toward target.
func discoverIn(t *testing.T, l *testlab.Lab, node string, target netip.Addr, o pmtu.Options) *pmtu.Result {
	t.Helper()
	return discoverWith(t, l, node, target, o, func() (prober, error) { return pmtu.NewICMPProber(target) })
}

// prober is a real prober: it holds sockets.
type prober interface {
	pmtu.Prober
	Close() error
}

// discoverWith runs Discover with the prober open opens in node.
func discoverWith(t *testing.T, l *testlab.Lab, node string, target netip.Addr, o pmtu.Options, open func() (prober, error)) *pmtu.Result {
	t.Helper()
	var p prober
	if err := l.Do(node, func() error {
		var err error
		p, err = open()
		return err
	}); err != nil {
		t.Fatalf("open prober toward %s in %s: %v", target, node, err)
	}
	defer p.Close()
	o.Logf = t.Logf
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	res, err := pmtu.Discover(ctx, p, o)
	if err != nil {
		t.Fatalf("Discover %s → %s: %v", node, target, err)
	}
	t.Logf("%s → %s: mtu %d exact %v signalled %v blackhole %+v; %d probes, %d sizes, %v",
		node, target, res.MTU, res.Exact, res.Signalled, res.Blackhole, res.Probes, res.Sizes, res.Elapsed.Round(time.Millisecond))
	if res.Probes > labMaxProbes || res.Sizes > pmtu.DefaultMaxSizes || res.Elapsed > labMaxTime {
		t.Errorf("over the bounds: %d probes (≤ %d), %d sizes (≤ %d), %v (≤ %v)",
			res.Probes, labMaxProbes, res.Sizes, pmtu.DefaultMaxSizes, res.Elapsed, labMaxTime)
	}
	return res
}

func TestLabICMP(t *testing.T) {
	testlab.RequireRoot(t)
	t.Run("clean", func(t *testing.T) {
		l := testlab.ForTest(t, testlab.Spec{Profile: "clean", NoGateways: true})
		res := discoverIn(t, l, "ini", l.Addr("rsp"), pmtu.Options{})
		if res.MTU != 1500 || !res.Exact || res.Blackhole != nil {
			t.Errorf("clean: mtu %d exact %v blackhole %+v; want 1500, exact, none", res.MTU, res.Exact, res.Blackhole)
		}
		// The other way, from rsp toward ini (what the agent's reverse probes cross).
		rev := discoverIn(t, l, "rsp", l.Addr("ini"), pmtu.Options{})
		if rev.MTU != 1500 || rev.Blackhole != nil {
			t.Errorf("clean reverse: mtu %d blackhole %+v", rev.MTU, rev.Blackhole)
		}
	})
	t.Run("mtu1400", func(t *testing.T) {
		l := testlab.ForTest(t, testlab.Spec{Profile: "mtu1400", NoGateways: true})
		res := discoverIn(t, l, "ini", l.Addr("rsp"), pmtu.Options{})
		if res.MTU != 1400 || !res.Exact || !res.Signalled || res.Blackhole != nil {
			t.Errorf("mtu1400: mtu %d exact %v signalled %v blackhole %+v", res.MTU, res.Exact, res.Signalled, res.Blackhole)
		}
		if res.ICMPFrom != netip.MustParseAddr("198.51.100.1") || res.ICMPMTU != 1400 {
			t.Errorf("frag-needed from %v mtu %d; want r1 198.51.100.1, 1400", res.ICMPFrom, res.ICMPMTU)
		}
		// ini's kernel now caches path MTU 1400 toward rsp. The prober's socket ignores that
		// cache (IP_PMTUDISC_PROBE): a second run measures the path again, in 3 probes, and is
		// not refused with EMSGSIZE from memory.
		again := discoverIn(t, l, "ini", l.Addr("rsp"), pmtu.Options{})
		if again.MTU != 1400 || again.Probes != 3 || again.ICMPFrom != netip.MustParseAddr("198.51.100.1") {
			t.Errorf("second run: mtu %d in %d probes, frag-needed from %v: want 1400 in 3 from r1", again.MTU, again.Probes, again.ICMPFrom)
		}
	})
	t.Run("mtu1300-blackhole", func(t *testing.T) {
		l := testlab.ForTest(t, testlab.Spec{Profile: "mtu1300-blackhole", NoGateways: true})
		res := discoverIn(t, l, "ini", l.Addr("rsp"), pmtu.Options{})
		if res.MTU != 1300 || !res.Exact || res.Signalled || res.Blackhole == nil {
			t.Fatalf("mtu1300-blackhole: mtu %d exact %v signalled %v blackhole %+v", res.MTU, res.Exact, res.Signalled, res.Blackhole)
		}
		want := pmtu.Blackhole{Size: 1301,
			Last: pmtu.Hop{TTL: 1, Addr: netip.MustParseAddr("198.51.100.1")},
			Next: pmtu.Hop{TTL: 2, Addr: netip.MustParseAddr("192.0.2.66")}, Sure: true}
		if *res.Blackhole != want {
			t.Errorf("black hole %+v, want %+v (dies on the r1–r2 link)", *res.Blackhole, want)
		}
	})
}

// TestLabTCP: the same three paths measured with TCP-sized probes toward port 445 (the MTU
// profiles filter no TCP): rsp's kernel answers each unsolicited ACK with a reset, routers
// answer with frag-needed or, for the black hole, nothing.
func TestLabTCP(t *testing.T) {
	testlab.RequireRoot(t)
	for _, c := range []struct {
		profile   string
		mtu       int
		signalled bool
		blackhole *pmtu.Blackhole
	}{
		{"clean", 1500, false, nil},
		{"mtu1400", 1400, true, nil},
		{"mtu1300-blackhole", 1300, false, &pmtu.Blackhole{Size: 1301,
			Last: pmtu.Hop{TTL: 1, Addr: netip.MustParseAddr("198.51.100.1")},
			Next: pmtu.Hop{TTL: 2, Addr: netip.MustParseAddr("192.0.2.66")}, Sure: true}},
	} {
		t.Run(c.profile, func(t *testing.T) {
			l := testlab.ForTest(t, testlab.Spec{Profile: c.profile, NoGateways: true})
			rsp := l.Addr("rsp")
			res := discoverWith(t, l, "ini", rsp, pmtu.Options{}, func() (prober, error) {
				return pmtu.NewTCPProber(rsp, pmtu.DefaultTCPPort)
			})
			if res.MTU != c.mtu || !res.Exact || res.Signalled != c.signalled {
				t.Errorf("mtu %d exact %v signalled %v; want %d, exact, signalled %v", res.MTU, res.Exact, res.Signalled, c.mtu, c.signalled)
			}
			switch {
			case c.blackhole == nil && res.Blackhole != nil:
				t.Errorf("black hole %+v, want none", *res.Blackhole)
			case c.blackhole != nil && (res.Blackhole == nil || *res.Blackhole != *c.blackhole):
				t.Errorf("black hole %+v, want %+v (dies on the r1–r2 link)", res.Blackhole, *c.blackhole)
			}
			if c.signalled && (res.ICMPFrom != netip.MustParseAddr("198.51.100.1") || res.ICMPMTU != 1400) {
				t.Errorf("frag-needed from %v mtu %d; want r1 198.51.100.1, 1400", res.ICMPFrom, res.ICMPMTU)
			}
			for _, s := range res.Steps {
				if s.Outcome == "arrived" && s.From != rsp {
					t.Errorf("step %+v: arrival from someone other than rsp", s)
				}
			}
		})
	}
	t.Run("closed-target", func(t *testing.T) {
		// A target that does not exist: nothing resets, the smallest probe gets no answer.
		l := testlab.ForTest(t, testlab.Spec{Profile: "clean", NoGateways: true})
		var p *pmtu.TCPProber
		if err := l.Do("ini", func() error {
			var err error
			p, err = pmtu.NewTCPProber(netip.MustParseAddr("203.0.113.99"), pmtu.DefaultTCPPort)
			return err
		}); err != nil {
			t.Fatal(err)
		}
		defer p.Close()
		_, err := pmtu.Discover(context.Background(), p, pmtu.Options{Timeout: 200 * time.Millisecond})
		if !errors.Is(err, pmtu.ErrNoAnswer) {
			t.Errorf("Discover toward nobody: %v, want ErrNoAnswer", err)
		}
	})
}

// TestLabLibipsecOverhead checks the overhead arithmetic against strongSwan's kernel-libipsec
// in the lab: the tunnel lan-a ↔ lan-b runs ESP aes128gcm16 in UDP 4500 (libipsec always
// encapsulates), tunnel mode, IPv4 in IPv4. A DF echo of S bytes from lan-a to lan-b must
// cross r1 as one UDP 4500 datagram of Encap.WireSize(S) bytes; and the path MTU from
// lan-a through the tunnel is ipsec0's MTU, 1400, announced by ini.
func TestLabLibipsecOverhead(t *testing.T) {
	testlab.RequireRoot(t)
	testlab.RequireTools(t, "tcpdump")
	l := testlab.ForTest(t, testlab.Spec{Profile: "clean"})
	if !l.TunnelUp() {
		t.Fatalf("tunnel not up: %v", l.TunnelErr())
	}
	enc := pmtu.Encap{Suite: pmtu.ESPAESGCM16, Mode: pmtu.Tunnel, NATT: true, Outer: 4}
	lanB := netip.MustParseAddr("192.0.2.130")
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	tcpd, err := l.Start(ctx, "r1", "tcpdump", "-n", "-l", "-v", "-i", "any", "udp port 4500 and greater 600")
	if err != nil {
		t.Fatal(err)
	}
	defer tcpd.Stop()
	// tcpdump says "listening on any" once its socket is open; a probe sent before would be
	// missed (a fixed 500 ms was not always enough under load).
	for !strings.Contains(string(tcpd.Output()), "listening on") {
		select {
		case <-ctx.Done():
			t.Fatalf("tcpdump in r1 not listening: %v\n%s", ctx.Err(), tcpd.Output())
		case <-time.After(20 * time.Millisecond):
		}
	}

	sizes := []int{601, 1000, 1337, 1338, 1400}
	var p *pmtu.ICMPProber
	if err := l.Do("lan-a", func() error {
		var err error
		p, err = pmtu.NewICMPProber(lanB)
		return err
	}); err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	for _, s := range sizes {
		r, err := p.Probe(ctx, pmtu.Request{Size: s, TTL: 64, Timeout: 2 * time.Second})
		if err != nil || r.Outcome != pmtu.Arrived {
			t.Fatalf("%d-byte echo through the tunnel: %+v, %v", s, r, err)
		}
	}
	res, err := pmtu.Discover(ctx, p, pmtu.Options{})
	if err != nil {
		t.Fatal(err)
	}
	if res.MTU != 1400 || !res.Signalled || res.ICMPFrom != netip.MustParseAddr("192.0.2.1") {
		t.Errorf("through the tunnel: mtu %d signalled %v from %v; want 1400 (ipsec0) from ini 192.0.2.1", res.MTU, res.Signalled, res.ICMPFrom)
	}
	// Every echo was answered, so each one crossed r1; wait until tcpdump has printed them
	// all (it may lag behind under load) before stopping it, or until the test's deadline.
	want := make([]string, len(sizes))
	for i, s := range sizes {
		w, err := enc.WireSize(s)
		if err != nil {
			t.Fatal(err)
		}
		want[i] = fmt.Sprintf("length %d)", w)
	}
	printed := func() bool {
		out := string(tcpd.Output())
		for _, w := range want {
			if !strings.Contains(out, w) {
				return false
			}
		}
		return true
	}
	for !printed() && ctx.Err() == nil {
		select {
		case <-ctx.Done():
		case <-time.After(20 * time.Millisecond):
		}
	}
	tcpd.Stop()
	out := string(tcpd.Output())
	for _, s := range sizes {
		w, err := enc.WireSize(s)
		if err != nil {
			t.Fatal(err)
		}
		// tcpdump -v: "IP (tos 0x0, ttl 64, id …, offset 0, flags [DF], proto UDP (17), length 1464)"
		// for ini → rsp; the echo reply comes back the same size.
		if !strings.Contains(out, fmt.Sprintf("length %d)", w)) {
			t.Errorf("%d-byte inner packet: no %d-byte UDP 4500 packet at r1; capture:\n%s", s, w, out)
		} else {
			t.Logf("inner %d bytes → %d on the wire (+%d), as computed", s, w, w-s)
		}
	}
}
