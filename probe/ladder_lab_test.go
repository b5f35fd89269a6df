package probe_test

import (
	"context"
	"net"
	"net/netip"
	"os"
	"strings"
	"testing"

	"golang.org/x/net/dns/dnsmessage"

	"github.com/ipsecpath/ipsecpath/probe"
	"github.com/ipsecpath/ipsecpath/report"
	"github.com/ipsecpath/ipsecpath/testlab"
)

// ladderIn runs the ladder inside node.
func ladderIn(t *testing.T, l *testlab.Lab, node string, cfg probe.LadderConfig) (*report.Ladder, netip.Addr) {
	t.Helper()
	var lad *report.Ladder
	var addr netip.Addr
	err := l.Do(node, func() error {
		var err error
		lad, addr, err = probe.RunLadder(context.Background(), cfg)
		return err
	})
	if err != nil {
		t.Fatalf("ladder: %v", err)
	}
	var b strings.Builder
	_ = report.WriteLadderText(&b, lad)
	t.Logf("ladder from %s:\n%s", node, b.String())
	return lad, addr
}

// labExec runs a command in a lab node and fails the test when it fails.
func labExec(t *testing.T, l *testlab.Lab, node string, argv ...string) string {
	t.Helper()
	return l.ExecIn(t, node, argv...)
}

func rungs(l *report.Ladder) map[string]report.Rung {
	m := map[string]report.Rung{}
	for _, r := range l.Rungs {
		m[r.Rung] = r
	}
	return m
}

// TestLadderLabUnderlayDead: r1, ini's default gateway, drops everything from ini. The
// ladder must name the gateway as the first failing rung and stop there.
func TestLadderLabUnderlayDead(t *testing.T) {
	testlab.RequireRoot(t)
	t.Parallel()
	l := testlab.ForTest(t, testlab.Spec{Profile: "underlay-dead", NoGateways: true})
	lad, _ := ladderIn(t, l, testlab.NodeIni, probe.LadderConfig{Target: l.Addr(testlab.NodeRsp).String()})
	var names []string
	for _, r := range lad.Rungs {
		names = append(names, r.Rung+"="+string(r.Verdict))
	}
	if got := strings.Join(names, " "); got != "loopback=pass route=pass gateway=dead" {
		t.Errorf("rungs %q, want loopback=pass route=pass gateway=dead (and no target rung)", got)
	}
	g := rungs(lad)["gateway"]
	if g.Addr != "198.51.100.1" || strings.Join(g.Tried, ",") != "echo,tcp:1792,udp:33434" {
		t.Errorf("gateway rung: %+v", g)
	}
	if want := "The default gateway 198.51.100.1 does not answer: fix the underlay first"; !strings.Contains(lad.Stop, want) {
		t.Errorf("stop %q, want it to say %q", lad.Stop, want)
	}
}

// TestLadderLab climbs the ladder of a clean lab by name (a DNS server the test runs in
// rsp), then against faults made with plain nftables, not lab profiles: echo filtered on
// the way to the target, a router that rejects one address, a name that does not exist.
func TestLadderLab(t *testing.T) {
	testlab.RequireRoot(t)
	t.Parallel()
	l := testlab.ForTest(t, testlab.Spec{NoGateways: true})
	rsp := l.Addr(testlab.NodeRsp)
	dnsServe(t, l, testlab.NodeRsp, netip.AddrPortFrom(rsp, 53), map[string]netip.Addr{"hsm.lab.example.": rsp})

	t.Run("clean by name", func(t *testing.T) {
		lad, addr := ladderIn(t, l, testlab.NodeIni, probe.LadderConfig{Target: "hsm.lab.example", DNSServer: rsp})
		if addr != rsp || lad.Resolved != rsp.String() || lad.Stop != "" {
			t.Errorf("resolved %v (%q), stop %q", addr, lad.Resolved, lad.Stop)
		}
		var names []string
		for _, r := range lad.Rungs {
			names = append(names, r.Rung+"="+string(r.Verdict))
		}
		if got := strings.Join(names, " "); got != "loopback=pass dns=pass route=pass gateway=pass target=pass" {
			t.Errorf("rungs %q", got)
		}
		if r := rungs(lad)["target"]; r.AnsweredBy != "echo-reply" {
			t.Errorf("target answered by %q", r.AnsweredBy)
		}
	})
	t.Run("unknown name", func(t *testing.T) {
		lad, addr := ladderIn(t, l, testlab.NodeIni, probe.LadderConfig{Target: "nope.lab.example", DNSServer: rsp})
		d := rungs(lad)["dns"]
		if addr.IsValid() || d.Verdict != report.RungError || d.AnsweredBy != "dns-nxdomain" || !strings.Contains(lad.Stop, "could not be resolved") {
			t.Errorf("dns rung %+v, stop %q", d, lad.Stop)
		}
	})
	t.Run("dns server not serving", func(t *testing.T) {
		// r2 is alive but runs no DNS server: it answers port unreachable
		lad, _ := ladderIn(t, l, testlab.NodeIni, probe.LadderConfig{Target: "hsm.lab.example", DNSServer: l.Addr(testlab.NodeR2)})
		d := rungs(lad)["dns"]
		if d.Verdict != report.RungError || d.AnsweredBy != "icmp-port-unreachable" || !strings.Contains(d.Detail, "no DNS server listens") {
			t.Errorf("dns rung %+v", d)
		}
	})
	t.Run("echo filtered", func(t *testing.T) {
		l.NftIn(t, testlab.NodeR2, "table ip scratch_echo {\n chain scratch {\n  type filter hook forward priority 0; policy accept;\n  icmp type echo-request drop\n }\n}\n")
		defer labExec(t, l, testlab.NodeR2, "nft", "delete", "table", "ip", "scratch_echo")
		lad, _ := ladderIn(t, l, testlab.NodeIni, probe.LadderConfig{Target: rsp.String()})
		r := rungs(lad)["target"]
		if r.Verdict != report.RungEchoFiltered || r.AnsweredBy != "tcp-rst" || lad.Stop != "" || lad.Failed() {
			t.Errorf("target rung %+v, stop %q", r, lad.Stop)
		}
		if g := rungs(lad)["gateway"]; g.Verdict != report.RungPass {
			t.Errorf("gateway %+v", g)
		}
	})
	t.Run("echo and tcp filtered, udp answers", func(t *testing.T) {
		l.NftIn(t, testlab.NodeR2, "table ip scratch_tcp {\n chain scratch {\n  type filter hook forward priority 0; policy accept;\n  icmp type echo-request drop\n  meta l4proto tcp drop\n }\n}\n")
		defer labExec(t, l, testlab.NodeR2, "nft", "delete", "table", "ip", "scratch_tcp")
		lad, _ := ladderIn(t, l, testlab.NodeIni, probe.LadderConfig{Target: rsp.String()})
		if r := rungs(lad)["target"]; r.Verdict != report.RungEchoFiltered || r.AnsweredBy != "icmp-port-unreachable" {
			t.Errorf("target rung %+v", r)
		}
	})
	t.Run("blackhole route", func(t *testing.T) {
		// ini's own blackhole for lan-b (LAN traffic only crosses inside the tunnel)
		lad, _ := ladderIn(t, l, testlab.NodeIni, probe.LadderConfig{Target: "192.0.2.130"})
		r := rungs(lad)["route"]
		if r.Verdict != report.RungNoRoute || !strings.Contains(r.Detail, "blackhole route for 192.0.2.128/26") || !strings.Contains(lad.Stop, "Fix the routing first") {
			t.Errorf("route rung %+v, stop %q", r, lad.Stop)
		}
	})
	t.Run("no route back", func(t *testing.T) {
		// from lan-a, r1 is one router away but has no route back to lan-a's subnet
		lad, _ := ladderIn(t, l, testlab.NodeLanA, probe.LadderConfig{Target: "198.51.100.1"})
		g, tg := rungs(lad)["gateway"], rungs(lad)["target"]
		if g.Addr != "192.0.2.1" || g.Verdict != report.RungPass || tg.Verdict != report.RungDead || !strings.Contains(tg.Detail, "missing route back") || lad.Stop != "" {
			t.Errorf("gateway %+v, target %+v, stop %q", g, tg, lad.Stop)
		}
	})
	t.Run("router rejects the target", func(t *testing.T) {
		other := netip.MustParseAddr("203.0.113.99")
		l.NftIn(t, testlab.NodeR2, "table ip scratch_rej {\n chain scratch {\n  type filter hook forward priority 0; policy accept;\n  ip daddr 203.0.113.99 reject with icmp type host-unreachable\n }\n}\n")
		defer labExec(t, l, testlab.NodeR2, "nft", "delete", "table", "ip", "scratch_rej")
		lad, _ := ladderIn(t, l, testlab.NodeIni, probe.LadderConfig{Target: other.String()})
		r := rungs(lad)["target"]
		if r.Verdict != report.RungUnreachable || r.From != "192.0.2.66" || !strings.Contains(r.Detail, "192.0.2.66") {
			t.Errorf("target rung %+v", r)
		}
		if lad.Stop != "" {
			t.Errorf("a dead target must not stop the check: %q", lad.Stop)
		}
	})
}

// TestPreflightLab binds UDP 500 inside ini before the preflight runs, and adds a local
// firewall rule in ini that drops NAT-T on the way out.
func TestPreflightLab(t *testing.T) {
	testlab.RequireRoot(t)
	t.Parallel()
	l := testlab.ForTest(t, testlab.Spec{NoGateways: true})
	l.ListenPacketIn(t, testlab.NodeIni, "udp4", "0.0.0.0:500") // held until the test ends
	l.NftIn(t, testlab.NodeIni, "table ip localfw {\n chain out {\n  type filter hook output priority 0; policy accept;\n  udp dport 4500 counter drop\n }\n}\n")
	rsp := l.Addr(testlab.NodeRsp)
	var pre *report.Preflight
	if err := l.Do(testlab.NodeIni, func() error {
		pre = probe.RunPreflight(context.Background(), rsp, probe.DefaultIDs(probe.DefaultTCPPorts))
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	t.Logf("preflight notes:\n%s", strings.Join(pre.Notes, "\n"))
	comm, _ := os.ReadFile("/proc/self/comm")
	if len(pre.Sockets) != 1 || pre.Sockets[0].Port != 500 || pre.Sockets[0].PID != os.Getpid() || pre.Sockets[0].Process != strings.TrimSpace(string(comm)) {
		t.Errorf("sockets %+v, want UDP 500 held by pid %d (%s)", pre.Sockets, os.Getpid(), comm)
	}
	if !strings.Contains(strings.Join(pre.Notes, "\n"), "held by "+strings.TrimSpace(string(comm))) {
		t.Errorf("notes do not name the process: %q", pre.Notes)
	}
	found := false
	for _, r := range pre.Firewall {
		if r.Hook == "output" && r.Certain && strings.Contains(r.Rule, "udp dport 4500") && strings.Join(r.Probes, ",") == "natt,natt-frag" {
			found = true
		}
	}
	if !pre.FirewallChecked || !found {
		t.Errorf("firewall %+v (checked %v), want the udp 4500 rule catching natt, natt-frag", pre.Firewall, pre.FirewallChecked)
	}
	// rsp's own table holds nothing: the host's rules never leak into the namespace's view
	if err := l.Do(testlab.NodeRsp, func() error {
		pre = probe.RunPreflight(context.Background(), l.Addr(testlab.NodeIni), nil)
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if len(pre.Sockets) != 0 || len(pre.Firewall) != 0 {
		t.Errorf("rsp: sockets %+v firewall %+v, want none", pre.Sockets, pre.Firewall)
	}
}

// dnsServe runs a small authoritative DNS server on addr inside node until the test ends:
// A records from names, NXDOMAIN for anything else.
func dnsServe(t *testing.T, l *testlab.Lab, node string, addr netip.AddrPort, names map[string]netip.Addr) {
	t.Helper()
	var c net.PacketConn
	if err := l.Do(node, func() error {
		var err error
		c, err = net.ListenPacket("udp4", addr.String())
		return err
	}); err != nil {
		t.Fatalf("dns server in %s: %v", node, err)
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		buf := make([]byte, 1500)
		for {
			n, from, err := c.ReadFrom(buf)
			if err != nil {
				return
			}
			var p dnsmessage.Parser
			h, err := p.Start(buf[:n])
			if err != nil {
				continue
			}
			q, err := p.Question()
			if err != nil {
				continue
			}
			resp := dnsmessage.Message{Header: dnsmessage.Header{ID: h.ID, Response: true, Authoritative: true}, Questions: []dnsmessage.Question{q}}
			if a, ok := names[q.Name.String()]; ok && q.Type == dnsmessage.TypeA {
				resp.Answers = []dnsmessage.Resource{{Header: dnsmessage.ResourceHeader{Name: q.Name, Type: dnsmessage.TypeA, Class: dnsmessage.ClassINET, TTL: 60},
					Body: &dnsmessage.AResource{A: a.As4()}}}
			} else {
				resp.RCode = dnsmessage.RCodeNameError
			}
			b, err := resp.Pack()
			if err == nil {
				_, _ = c.WriteTo(b, from)
			}
		}
	}()
	t.Cleanup(func() { c.Close(); <-done })
}
