package probe_test

import (
	"context"
	"crypto/tls"
	"math/big"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/ipsecpath/ipsecpath/probe"
	"github.com/ipsecpath/ipsecpath/probe/probetest"
	"github.com/ipsecpath/ipsecpath/report"
	"github.com/ipsecpath/ipsecpath/testlab"
)

// newCA is a test CA (probetest.CA).
func newCA(t *testing.T, cn string) *probetest.CA { return probetest.NewCA(t, cn) }

// tlsServe runs a Go crypto/tls server on addr inside node until stop is called (or the test
// ends): it completes handshakes, then holds each connection until the client closes it.
func tlsServe(t *testing.T, l *testlab.Lab, node string, addr netip.AddrPort, cfg *tls.Config) (stop func()) {
	t.Helper()
	return probetest.ServeTLSIn(t, l, node, addr, cfg, 10*time.Second)
}

// serviceFromIni runs a service probe inside ini.
func serviceFromIni(t *testing.T, l *testlab.Lab, cfg probe.ServiceConfig) report.Result {
	t.Helper()
	var r report.Result
	if err := l.Do(testlab.NodeIni, func() error {
		r = probe.ServiceProbe(context.Background(), cfg)
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	t.Logf("%s: %s — %s (tls %+v)", r.Probe, r.Verdict, r.Detail, r.Evidence.TLS)
	return r
}

// tlsProbeOfRsp builds a lab of profile (in parallel with other tests) with a TLS server on
// rsp:1792 whose certificate a lab CA issued, and returns the tls:1792 probe of it from ini
// (that CA trusted, timeout as given).
func tlsProbeOfRsp(t *testing.T, profile string, timeout time.Duration) report.Result {
	t.Helper()
	testlab.RequireRoot(t)
	t.Parallel()
	l := testlab.ForTest(t, testlab.Spec{Profile: profile, NoGateways: true})
	ca := newCA(t, "ipsecpath lab CA")
	ca.ServeRsp(t, l, 1792, 10*time.Second)
	return serviceFromIni(t, l, probe.ServiceConfig{Target: l.Addr(testlab.NodeRsp), Port: 1792, TLS: true, RootCAs: ca.Pool, Timeout: timeout})
}

// TestTLSLab runs tls:1792 against a Go TLS server in rsp with a lab CA: it passes with that
// CA, and names each failure: the server wants a client certificate from another CA
// (unknown_ca), an expired server certificate, an unknown CA, a wrong name, nothing
// listening (the target's own reset).
func TestTLSLab(t *testing.T) {
	testlab.RequireRoot(t)
	t.Parallel()
	l := testlab.ForTest(t, testlab.Spec{NoGateways: true})
	rsp := l.Addr(testlab.NodeRsp)
	at := netip.AddrPortFrom(rsp, 1792)
	ca, other := newCA(t, "ipsecpath lab CA"), newCA(t, "another CA")
	now := time.Now()
	srv := ca.Issue(t, "hsm.lab.example", now.Add(-time.Hour), now.Add(12*time.Hour), []netip.Addr{rsp}, []string{"hsm.lab.example"}, false)
	client := ca.Issue(t, "luna-client", now.Add(-time.Hour), now.Add(12*time.Hour), nil, nil, true)
	base := probe.ServiceConfig{Target: rsp, Port: 1792, TLS: true, RootCAs: ca.Pool, Timeout: 4 * time.Second}

	t.Run("passes with the lab CA", func(t *testing.T) {
		stop := tlsServe(t, l, testlab.NodeRsp, at, &tls.Config{Certificates: []tls.Certificate{srv}})
		defer stop()
		r := serviceFromIni(t, l, base)
		if r.Verdict != report.Pass || r.Evidence.TLS.Step != "done" || r.Evidence.TLS.Subject == "" || r.Probe != "tls:1792" {
			t.Errorf("%s: %s %+v", r.Verdict, r.Detail, r.Evidence.TLS)
		}
	})
	t.Run("client certificate from another CA: unknown_ca", func(t *testing.T) {
		stop := tlsServe(t, l, testlab.NodeRsp, at, &tls.Config{Certificates: []tls.Certificate{srv}, ClientAuth: tls.RequireAndVerifyClientCert, ClientCAs: other.Pool})
		defer stop()
		c := base
		c.Certificate = &client
		r := serviceFromIni(t, l, c)
		if r.Verdict != report.Blocked || r.Evidence.TLS.Alert != "unknown_ca" || !strings.Contains(r.Detail, "unknown_ca") {
			t.Errorf("%s: %s %+v", r.Verdict, r.Detail, r.Evidence.TLS)
		}
		// the same over TLS 1.2, where the alert ends the client's own handshake
		stop()
		stop = tlsServe(t, l, testlab.NodeRsp, at, &tls.Config{Certificates: []tls.Certificate{srv}, ClientAuth: tls.RequireAndVerifyClientCert, ClientCAs: other.Pool, MaxVersion: tls.VersionTLS12})
		defer stop()
		if r := serviceFromIni(t, l, c); r.Evidence.TLS.Alert != "unknown_ca" {
			t.Errorf("TLS 1.2: %s: %s %+v", r.Verdict, r.Detail, r.Evidence.TLS)
		}
	})
	t.Run("expired server certificate", func(t *testing.T) {
		expired := ca.Issue(t, "hsm.lab.example", now.Add(-48*time.Hour), now.Add(-24*time.Hour), []netip.Addr{rsp}, nil, false)
		stop := tlsServe(t, l, testlab.NodeRsp, at, &tls.Config{Certificates: []tls.Certificate{expired}})
		defer stop()
		r := serviceFromIni(t, l, base)
		ev := r.Evidence.TLS
		if r.Verdict != report.Blocked || ev.VerifyError != "expired" || ev.Step != "verify" || !strings.Contains(r.Detail, "expired") ||
			!strings.Contains(r.Detail, "hsm.lab.example") || ev.NotAfter != expired.Leaf.NotAfter.UTC().Format(time.RFC3339) {
			t.Errorf("%s: %s %+v", r.Verdict, r.Detail, ev)
		}
	})
	t.Run("server certificate not yet valid", func(t *testing.T) {
		future := ca.Issue(t, "hsm.lab.example", now.Add(2*time.Hour), now.Add(20*time.Hour), []netip.Addr{rsp}, nil, false)
		stop := tlsServe(t, l, testlab.NodeRsp, at, &tls.Config{Certificates: []tls.Certificate{future}})
		defer stop()
		r := serviceFromIni(t, l, base)
		if r.Evidence.TLS.VerifyError != "not-yet-valid" || !strings.Contains(r.Detail, "not valid yet") || !strings.Contains(r.Detail, "clocks") {
			t.Errorf("%s: %s %+v", r.Verdict, r.Detail, r.Evidence.TLS)
		}
	})
	t.Run("unknown authority and wrong name", func(t *testing.T) {
		stop := tlsServe(t, l, testlab.NodeRsp, at, &tls.Config{Certificates: []tls.Certificate{srv}})
		defer stop()
		c := base
		c.RootCAs = other.Pool
		if r := serviceFromIni(t, l, c); r.Evidence.TLS.VerifyError != "unknown-authority" {
			t.Errorf("other CA: %s: %s", r.Verdict, r.Detail)
		}
		c = base
		c.ServerName = "wrong.lab.example"
		if r := serviceFromIni(t, l, c); r.Evidence.TLS.VerifyError != "name-mismatch" || r.Evidence.TLS.SNI != "wrong.lab.example" {
			t.Errorf("wrong name: %s: %s", r.Verdict, r.Detail)
		}
		c.ServerName = "hsm.lab.example"
		if r := serviceFromIni(t, l, c); r.Verdict != report.Pass {
			t.Errorf("right name: %s: %s", r.Verdict, r.Detail)
		}
	})
	t.Run("nothing listens: the target's own reset", func(t *testing.T) {
		r := serviceFromIni(t, l, base)
		if r.Verdict != report.Blocked || r.Evidence.TLS.ResetTTL != 62 || r.Hop != nil || !strings.Contains(r.Detail, "itself") {
			t.Errorf("%s: %s (hop %+v, tls %+v, inferred %q)", r.Verdict, r.Detail, r.Hop, r.Evidence.TLS, r.Evidence.Inferred)
		}
	})
}

// TestTLSLabReset: r2 resets TCP 1792 in the target's name. The verdict names the reset and
// says it came from a device before the target (hop 2, estimated from its TTL), while the
// TLS server on rsp is up.
func TestTLSLabReset(t *testing.T) {
	r := tlsProbeOfRsp(t, "tcp1792-reset", 4*time.Second)
	if r.Verdict != report.Blocked || r.Evidence.TLS.ResetTTL != 63 || r.Hop == nil || r.Hop.TTL != 2 || !strings.Contains(r.Detail, "not by the target") {
		t.Errorf("%s: %s (hop %+v, tls %+v, inferred %q)", r.Verdict, r.Detail, r.Hop, r.Evidence.TLS, r.Evidence.Inferred)
	}
}

// TestServiceProbeLoopback needs no root: a TLS server on 127.0.0.1 names its refusals by
// alert (this also guards how crypto/tls reports a received alert, which we read by kind).
func TestServiceProbeLoopback(t *testing.T) {
	lo := netip.MustParseAddr("127.0.0.1")
	ca, other := newCA(t, "ipsecpath lab CA"), newCA(t, "another CA")
	now := time.Now()
	srv := ca.Issue(t, "localhost", now.Add(-time.Hour), now.Add(time.Hour), []netip.Addr{lo}, nil, false)
	client := ca.Issue(t, "luna-client", now.Add(-time.Hour), now.Add(time.Hour), nil, nil, true)
	for _, c := range []struct {
		name      string
		server    *tls.Config
		cert      *tls.Certificate
		verdict   report.Verdict
		alert     string
		maxServer uint16
	}{
		{"pass", &tls.Config{Certificates: []tls.Certificate{srv}}, nil, report.Pass, "", 0},
		{"unknown_ca tls1.3", &tls.Config{Certificates: []tls.Certificate{srv}, ClientAuth: tls.RequireAndVerifyClientCert, ClientCAs: other.Pool}, &client, report.Blocked, "unknown_ca", 0},
		{"unknown_ca tls1.2", &tls.Config{Certificates: []tls.Certificate{srv}, ClientAuth: tls.RequireAndVerifyClientCert, ClientCAs: other.Pool, MaxVersion: tls.VersionTLS12}, &client, report.Blocked, "unknown_ca", 0},
		{"certificate_required", &tls.Config{Certificates: []tls.Certificate{srv}, ClientAuth: tls.RequireAndVerifyClientCert, ClientCAs: ca.Pool}, nil, report.Blocked, "certificate_required", 0},
		{"client cert accepted", &tls.Config{Certificates: []tls.Certificate{srv}, ClientAuth: tls.RequireAndVerifyClientCert, ClientCAs: ca.Pool}, &client, report.Pass, "", 0},
	} {
		t.Run(c.name, func(t *testing.T) {
			ln, err := net.Listen("tcp4", "127.0.0.1:0")
			if err != nil {
				t.Fatal(err)
			}
			probetest.ServeTLS(t, ln, c.server, 5*time.Second)
			port := ln.Addr().(*net.TCPAddr).Port
			r := probe.ServiceProbe(context.Background(), probe.ServiceConfig{Target: lo, Port: port, TLS: true, RootCAs: ca.Pool, Certificate: c.cert, Timeout: 3 * time.Second})
			if r.Verdict != c.verdict || r.Evidence.TLS.Alert != c.alert {
				t.Errorf("%s (alert %q): %s; want %s, alert %q", r.Verdict, r.Evidence.TLS.Alert, r.Detail, c.verdict, c.alert)
			}
			// an accepted client certificate is known by the ticket sent after judging it,
			// not by a timeout
			if c.name == "client cert accepted" && !strings.Contains(r.Detail, "accepted our client certificate (it sent a session ticket") {
				t.Errorf("accepted: %s", r.Detail)
			}
		})
	}
}

// startTinyproxy runs Debian's tinyproxy inside node with its own configuration (extra
// lines appended), listening on addr, by the lab's recorded pid; it waits until ini can
// connect to it.
func startTinyproxy(t *testing.T, l *testlab.Lab, node string, addr netip.AddrPort, extra ...string) {
	t.Helper()
	testlab.RequireTools(t, "tinyproxy")
	dir := t.TempDir()
	if err := os.Chmod(dir, 0o777); err != nil { // tinyproxy drops to nobody and logs here
		t.Fatal(err)
	}
	conf := filepath.Join(dir, "tinyproxy.conf")
	lines := []string{"User nobody", "Group nogroup", "Listen " + addr.Addr().String(), "Port " + strconvItoa(int(addr.Port())),
		"Timeout 10", "LogFile \"" + filepath.Join(dir, "tinyproxy.log") + "\"", "LogLevel Info", "MaxClients 10",
		"Allow 198.51.100.0/24"}
	lines = append(lines, extra...)
	if err := os.WriteFile(conf, []byte(strings.Join(lines, "\n")+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	p, err := l.Start(ctx, node, "tinyproxy", "-d", "-c", conf)
	if err != nil {
		cancel()
		t.Fatal(err)
	}
	t.Cleanup(func() {
		cancel()
		_ = p.Stop()
		if t.Failed() {
			b, _ := os.ReadFile(filepath.Join(dir, "tinyproxy.log"))
			t.Logf("tinyproxy log:\n%s\noutput:\n%s", b, p.Output())
		}
	})
	deadline := time.Now().Add(10 * time.Second)
	for {
		var err error
		_ = l.Do(testlab.NodeIni, func() error {
			var c net.Conn
			if c, err = net.DialTimeout("tcp4", addr.String(), time.Second); err == nil {
				c.Close()
			}
			return nil
		})
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("tinyproxy in %s did not come up on %s: %v\n%s", node, addr, err, p.Output())
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func strconvItoa(i int) string { return big.NewInt(int64(i)).String() }

// TestTLSLabProxy: tinyproxy on r1 carries tls:443 from ini to a TLS server on rsp; a
// tinyproxy that allows CONNECT only to 8443 refuses (the proxy's own status line is the
// verdict); with r2 resetting 443 behind the proxy, the failure is the path behind it.
func TestTLSLabProxy(t *testing.T) {
	testlab.RequireRoot(t)
	t.Parallel()
	l := testlab.ForTest(t, testlab.Spec{NoGateways: true})
	rsp := l.Addr(testlab.NodeRsp)
	ca := newCA(t, "ipsecpath lab CA")
	srv := ca.Issue(t, "updates.lab.example", time.Now().Add(-time.Hour), time.Now().Add(time.Hour), []netip.Addr{rsp}, []string{"updates.lab.example"}, false)
	tlsServe(t, l, testlab.NodeRsp, netip.AddrPortFrom(rsp, 443), &tls.Config{Certificates: []tls.Certificate{srv}})
	r1 := netip.MustParseAddr("198.51.100.1")
	good, refusing := netip.AddrPortFrom(r1, 8888), netip.AddrPortFrom(r1, 8889)
	startTinyproxy(t, l, testlab.NodeR1, good, "ConnectPort 443")
	startTinyproxy(t, l, testlab.NodeR1, refusing, "ConnectPort 8443")
	base := probe.ServiceConfig{Target: rsp, Port: 443, TLS: true, RootCAs: ca.Pool, Timeout: 4 * time.Second}

	c := base
	c.Proxy, _ = probe.ProxyFor("http://"+good.String(), rsp, 443)
	r := serviceFromIni(t, l, c)
	if r.Verdict != report.Pass || r.Evidence.TLS.Proxy != good.String() || !strings.Contains(r.Evidence.TLS.ProxyStatus, "200") || !strings.Contains(r.Detail, "through the proxy") {
		t.Errorf("through tinyproxy: %s: %s %+v", r.Verdict, r.Detail, r.Evidence.TLS)
	}
	c.TLS = false // a proxied tcp:443 probe: CONNECT alone
	if r := serviceFromIni(t, l, c); r.Verdict != report.Pass || r.Probe != "tcp:443" {
		t.Errorf("tcp through tinyproxy: %s: %s", r.Verdict, r.Detail)
	}

	c = base
	c.Proxy, _ = probe.ProxyFor("http://"+refusing.String(), rsp, 443)
	r = serviceFromIni(t, l, c)
	if r.Verdict != report.Blocked || !strings.Contains(r.Evidence.TLS.ProxyStatus, "403") || !strings.Contains(r.Detail, "refused to CONNECT") {
		t.Errorf("refusing tinyproxy: %s: %s %+v", r.Verdict, r.Detail, r.Evidence.TLS)
	}

	l.NftIn(t, testlab.NodeR2, "table ip scratch_443 {\n chain scratch {\n  type filter hook forward priority 0; policy accept;\n  tcp dport 443 reject with tcp reset\n }\n}\n")
	c = base
	c.Proxy, _ = probe.ProxyFor("http://"+good.String(), rsp, 443)
	r = serviceFromIni(t, l, c)
	if r.Verdict != report.Blocked || !strings.Contains(r.Detail, "could not reach") || !strings.HasPrefix(r.Evidence.Answer, "proxy 5") {
		t.Errorf("path behind the proxy broken: %s: %s %+v", r.Verdict, r.Detail, r.Evidence.TLS)
	}
}

// TestTLSLabLargeClientHello: on mtu1300-blackhole (r1—r2 MTU 1300, no ICMP fragmentation
// needed) TCP connects, but our full ClientHello (with its post-quantum key share, more
// than 1300 bytes in a full-size segment) vanishes; a small one is answered. The verdict
// calls it a fragment/MSS problem, not TLS.
func TestTLSLabLargeClientHello(t *testing.T) {
	r := tlsProbeOfRsp(t, "mtu1300-blackhole", 6*time.Second)
	if r.Evidence.TLS.ClientHelloSize <= 1300 {
		t.Fatalf("this Go's default ClientHello is %d bytes: it fits the 1300-byte path, so the test shows nothing; make it larger (more ALPN protocols)", r.Evidence.TLS.ClientHelloSize)
	}
	if r.Verdict != report.Dropped || !strings.Contains(r.Detail, "fragment/MSS problem") || !strings.Contains(r.Evidence.Extra, "answered=true") || !strings.Contains(r.Detail, "TCP segments up to 14") {
		t.Errorf("%s: %s (extra %q)", r.Verdict, r.Detail, r.Evidence.Extra)
	}
}
