package probetest

import (
	"crypto/tls"
	"net/netip"
	"testing"
	"time"

	"github.com/ipsecpath/ipsecpath/testlab"
)

// ServeTLSIn listens on addr (TCP over IPv4) inside node of lab l and serves TLS with cfg
// there, as ServeTLS does, until stop is called or the test ends.
func ServeTLSIn(t testing.TB, l *testlab.Lab, node string, addr netip.AddrPort, cfg *tls.Config, hold time.Duration) (stop func()) {
	t.Helper()
	return ServeTLS(t, l.ListenIn(t, node, "tcp4", addr.String()), cfg, hold)
}

// ServeRsp has ca issue a server certificate for hsm.lab.example at the lab's rsp address,
// valid from an hour ago to an hour ahead, and serves TLS with it on rsp's port (as
// ServeTLSIn, each connection held up to hold) until stop is called or the test ends.
func (ca *CA) ServeRsp(t testing.TB, l *testlab.Lab, port uint16, hold time.Duration) (stop func()) {
	t.Helper()
	rsp := l.Addr(testlab.NodeRsp)
	srv := ca.Issue(t, "hsm.lab.example", time.Now().Add(-time.Hour), time.Now().Add(time.Hour), []netip.Addr{rsp}, nil, false)
	return ServeTLSIn(t, l, testlab.NodeRsp, netip.AddrPortFrom(rsp, port), &tls.Config{Certificates: []tls.Certificate{srv}}, hold)
}
