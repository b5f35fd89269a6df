package probe

import (
	"context"
	"net"
	"net/netip"
	"testing"
	"time"
)

// TestServicePlanRun: the TCP connects of ProxyTCP come first, then the TLS handshakes, each
// from Base with its own port, every one giving its result (here toward a closed loopback
// port, Base without a proxy).
func TestServicePlanRun(t *testing.T) {
	ln, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := ln.Addr().(*net.TCPAddr).Port
	ln.Close()
	p := ServicePlan{Base: ServiceConfig{Target: netip.MustParseAddr("127.0.0.1")}, ProxyTCP: []int{port}, TLSPorts: []int{port, port}}
	rs := p.Run(context.Background(), 2*time.Second)
	want := []ID{TCP(port), TLS(port), TLS(port)}
	if len(rs) != len(want) {
		t.Fatalf("%d results, want %d: %+v", len(rs), len(want), rs)
	}
	for i, r := range rs {
		if r.Probe != string(want[i]) || r.Evidence.DestPort != port || r.Verdict == "" {
			t.Errorf("result %d: %s port %d verdict %q, want %s", i, r.Probe, r.Evidence.DestPort, r.Verdict, want[i])
		}
	}
}
