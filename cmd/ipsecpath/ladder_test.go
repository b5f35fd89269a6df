package main

import (
	"bytes"
	"context"
	"crypto/tls"
	"net"
	"net/netip"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/ipsecpath/ipsecpath/probe"
	"github.com/ipsecpath/ipsecpath/probe/probetest"
	"github.com/ipsecpath/ipsecpath/report"
	"github.com/ipsecpath/ipsecpath/testlab"
)

func TestLadderBadInput(t *testing.T) {
	refusesAll(t, "ladder", []usageCase{
		{"", nil, "want one TARGET"},
		{"", []string{"203.0.113.10", "--dns", "nope"}, `--dns "nope": want an IPv4 address`},
		{"", []string{"203.0.113.10", "--tcp-port", "0"}, "--tcp-port 0: want 1-65535"},
		{"", []string{"224.0.0.1"}, "multicast address refused"},
	})
	refusesAll(t, "check", []usageCase{
		{"", []string{"203.0.113.10", "--ca", "x.pem"}, "--ca, --client-cert and --sni are for tls probes"},
		{"", []string{"203.0.113.10", "--tls", "1792", "--client-cert", "c.pem"}, "--client-cert and --client-key go together"},
		{"", []string{"203.0.113.10", "--tls", "99999"}, `--tls: bad TCP port "99999"`},
		{"", []string{"203.0.113.10", "--tls", "443", "--proxy", "socks5://192.0.2.1:1080"}, "only http:// CONNECT proxies"},
		{"", []string{"203.0.113.10", "--tls", "443", "--ca", "/nonexistent/ca.pem"}, "--ca: open /nonexistent/ca.pem"},
	})
}

// runIn runs the CLI inside a lab node.
func runIn(t *testing.T, l *testlab.Lab, node string, args ...string) (int, string, string) {
	t.Helper()
	var out, errb bytes.Buffer
	var code int
	if err := l.Do(node, func() error {
		ctx, cancel := context.WithTimeout(context.Background(), cliTimeout)
		defer cancel()
		code = run(ctx, args, &out, &errb)
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	t.Logf("ipsecpath %s: exit %d\n%s%s", strings.Join(args, " "), code, out.String(), errb.String())
	validateOutputs(t, args, code, out.String())
	return code, out.String(), errb.String()
}

// TestCheckLadderCLILab: on underlay-dead, check stops after the ladder with one sentence
// and exit 1, sending no probe; `ladder` alone says the same.
func TestCheckLadderCLILab(t *testing.T) {
	testlab.RequireRoot(t)
	t.Parallel()
	l := testlab.ForTest(t, testlab.Spec{Profile: "underlay-dead", NoGateways: true})
	rsp := l.Addr(testlab.NodeRsp).String()
	code, out, errs := runIn(t, l, testlab.NodeIni, "check", rsp, "--probes", "ike,esp")
	const stop = "The default gateway 198.51.100.1 does not answer: fix the underlay first"
	if code != exitFail || !strings.Contains(out, stop) || !strings.Contains(out, "gateway   198.51.100.1    dead") || strings.Contains(out, "esp ") {
		t.Errorf("check: exit %d, stdout:\n%s\nstderr %q", code, out, errs)
	}
	code, out, _ = runIn(t, l, testlab.NodeIni, "check", rsp, "--probes", "ike", "--json")
	rep, err := report.ReadJSON(strings.NewReader(out))
	if err != nil || code != exitFail || rep.Ladder == nil || !strings.Contains(rep.Ladder.Stop, stop) || len(rep.Results) != 0 {
		t.Errorf("check --json: exit %d, err %v, report %+v", code, err, rep)
	}
	code, out, _ = runIn(t, l, testlab.NodeIni, "ladder", rsp)
	if code != exitFail || !strings.Contains(out, stop) || strings.Count(out, "    pass    ") != 2 {
		t.Errorf("ladder: exit %d:\n%s", code, out)
	}
	// --no-ladder: the probes run, and fail on the path
	code, out, _ = runIn(t, l, testlab.NodeIni, "check", rsp, "--probes", "ike", "--no-ladder", "--timeout", "1s")
	if code != exitFail || strings.Contains(out, "Ladder") || !strings.Contains(out, "dropped") {
		t.Errorf("--no-ladder: exit %d:\n%s", code, out)
	}
}

// TestCheckPreflightCLILab: a UDP 500 socket held in ini and ini's own nftables rule that
// drops NAT-T on the way out. The preflight names the process, and the natt row is an
// error blaming this host, not a path verdict; tls:1792 runs beside the raw probes with a
// lab CA (a TLS server in rsp).
func TestCheckPreflightCLILab(t *testing.T) {
	testlab.RequireRoot(t)
	t.Parallel()
	l := testlab.ForTest(t, testlab.Spec{NoGateways: true})
	dir := t.TempDir()
	agent, key := labAgentKey(t, l, dir)
	caFile := tlsOnRsp(t, l, dir)

	l.ListenPacketIn(t, testlab.NodeIni, "udp4", "0.0.0.0:500") // held until the test ends
	l.NftIn(t, testlab.NodeIni, "table ip localfw {\n chain out {\n  type filter hook output priority 0; policy accept;\n  udp dport 4500 drop\n }\n}\n")
	code, out, errs := runIn(t, l, testlab.NodeIni, "check", l.Addr(testlab.NodeRsp).String(), "--agent", agent, "--key-file", key,
		"--probes", "ike,natt", "--tls", "1792", "--ca", caFile, "--json")
	rep, err := report.ReadJSON(strings.NewReader(out))
	if err != nil {
		t.Fatalf("exit %d, %v, stderr %q", code, err, errs)
	}
	if code != exitFail {
		t.Errorf("exit %d, want 1 (natt cannot leave this host)", code)
	}
	comm, _ := os.ReadFile("/proc/self/comm")
	pre := rep.Ladder.Preflight
	if pre == nil || len(pre.Sockets) != 1 || pre.Sockets[0].PID != os.Getpid() || pre.Sockets[0].Process != strings.TrimSpace(string(comm)) {
		t.Errorf("preflight sockets: %+v", pre)
	}
	got := map[string]report.Result{}
	for _, r := range rep.Results {
		got[string(r.Direction)+" "+r.Probe] = r
	}
	if r := got["forward natt"]; r.Verdict != report.Error || !strings.Contains(r.Detail, "This host's own firewall drops it before it leaves") {
		t.Errorf("forward natt: %s: %s", r.Verdict, r.Detail)
	}
	if r := got["forward tls:1792"]; r.Verdict != report.Pass || r.Evidence.TLS == nil || r.Evidence.TLS.Step != "done" {
		t.Errorf("forward tls:1792: %s: %s", r.Verdict, r.Detail)
	}
	if r := got["forward ike"]; r.Verdict != report.Pass {
		t.Errorf("forward ike: %s: %s", r.Verdict, r.Detail)
	}
}

// tlsOnRsp runs a TLS server on rsp:1792 with a fresh lab CA and returns the CA's PEM file.
func tlsOnRsp(t *testing.T, l *testlab.Lab, dir string) string {
	t.Helper()
	ca := probetest.NewCA(t, "lab CA")
	ca.ServeRsp(t, l, 1792, 5*time.Second)
	return ca.WriteCA(t, dir)
}

// TestCheckTLSFlagsLoopback runs check's tls probe against a TLS server on 127.0.0.1 that
// wants a client certificate: --ca, --client-cert/--client-key and --sni are read from PEM
// files and used (no root: --no-ladder and only a tls probe, which needs no raw socket).
func TestCheckTLSFlagsLoopback(t *testing.T) {
	dir := t.TempDir()
	ca := probetest.NewCA(t, "lab CA")
	issue := func(name string, client bool) tls.Certificate {
		return ca.Issue(t, name, time.Now().Add(-time.Hour), time.Now().Add(time.Hour), nil, []string{name}, client)
	}
	srv := issue("hsm.lab.example", false)
	clientCrt, clientKey := probetest.WriteCert(t, dir, "luna-client", issue("luna-client", true))
	caFile := ca.WriteCA(t, dir)

	ln, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	probetest.ServeTLS(t, ln, &tls.Config{Certificates: []tls.Certificate{srv}, ClientAuth: tls.RequireAndVerifyClientCert, ClientCAs: ca.Pool}, 5*time.Second)
	port := strings.TrimPrefix(ln.Addr().String(), "127.0.0.1:")
	code, out, errs := runCLI(t, "check", "127.0.0.1", "--no-ladder", "--probes", "tls:"+port, "--ca", caFile,
		"--client-cert", clientCrt, "--client-key", clientKey, "--sni", "hsm.lab.example", "--json")
	rep, err := report.ReadJSON(strings.NewReader(out))
	if err != nil || code != exitOK || len(rep.Results) != 1 || rep.Results[0].Verdict != report.Pass {
		t.Fatalf("exit %d, %v, stdout %s, stderr %q", code, err, out, errs)
	}
	code, out, _ = runCLI(t, "check", "127.0.0.1", "--no-ladder", "--probes", "tls:"+port, "--ca", caFile, "--sni", "hsm.lab.example", "--json")
	rep, err = report.ReadJSON(strings.NewReader(out))
	if err != nil || code != exitFail || rep.Results[0].Evidence.TLS == nil || rep.Results[0].Evidence.TLS.Alert != "certificate_required" {
		t.Errorf("no client certificate: exit %d, %v, %s", code, err, out)
	}
}

// TestPlanServicesProxy: HTTPS_PROXY carries tls probes only; --proxy also turns tcp:PORT
// into CONNECTs; NO_PROXY exempts the target.
func TestPlanServicesProxy(t *testing.T) {
	tgt := netip.MustParseAddr("203.0.113.10")
	plan := func(proxyFlag string) *servicePlan {
		t.Helper()
		fs := newFlags(commands["check"])
		sf := addServiceFlags(fs)
		args := []string{"--tls", "443"}
		if proxyFlag != "" {
			args = append(args, "--proxy", proxyFlag)
		}
		if err := fs.Parse(args); err != nil {
			t.Fatal(err)
		}
		sp, err := planServices(sf, tgt, "ike,tcp:445", []probe.ID{probe.IKE, probe.TCP(445)})
		if err != nil {
			t.Fatal(err)
		}
		return sp
	}
	for _, v := range []string{"HTTPS_PROXY", "https_proxy", "NO_PROXY", "no_proxy"} {
		t.Setenv(v, "")
	}
	t.Setenv("HTTPS_PROXY", "http://198.51.100.1:3128")
	sp := plan("")
	if sp.Base.Proxy == nil || sp.Base.Proxy.Host != "198.51.100.1:3128" || len(sp.ProxyTCP) != 0 || len(sp.rawIDs) != 2 {
		t.Errorf("HTTPS_PROXY: proxy %v, proxied tcp %v, raw %v", sp.Base.Proxy, sp.ProxyTCP, sp.rawIDs)
	}
	sp = plan("http://198.51.100.1:8888")
	if sp.Base.Proxy.Host != "198.51.100.1:8888" || len(sp.ProxyTCP) != 1 || sp.ProxyTCP[0] != 445 || len(sp.rawIDs) != 1 {
		t.Errorf("--proxy: proxy %v, proxied tcp %v, raw %v", sp.Base.Proxy, sp.ProxyTCP, sp.rawIDs)
	}
	t.Setenv("NO_PROXY", "203.0.113.0/24")
	if sp = plan(""); sp.Base.Proxy != nil {
		t.Errorf("NO_PROXY lists the target: proxy %v", sp.Base.Proxy)
	}
}

// TestLadderNotPrivileged runs as user nobody: `ladder` and a tls-only check say the ladder
// needs CAP_NET_RAW (exit 2, one line); with --no-ladder the tls probe runs unprivileged and
// says it could not tell who sent the reset (no raw socket to read its TTL).
func TestLadderNotPrivileged(t *testing.T) {
	testlab.RequireRoot(t) // to become nobody
	dir, bin := copyTestBinary(t)
	ln, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := strings.TrimPrefix(ln.Addr().String(), "127.0.0.1:")
	ln.Close() // a closed port: connect is refused with a reset
	code, out, errs := runAsNobody(t, dir, bin, "ladder", "127.0.0.1")
	if code != exitUsage || out != "" || errs != "ipsecpath ladder: needs root or CAP_NET_RAW for its raw ICMP socket (run as root, or setcap cap_net_raw+ep on the binary)\n" {
		t.Errorf("ladder: exit %d, stdout %q, stderr %q", code, out, errs)
	}
	code, out, errs = runAsNobody(t, dir, bin, "check", "127.0.0.1", "--probes", "tls:"+port)
	if code != exitUsage || out != "" || errs != "ipsecpath check: the ladder needs root or CAP_NET_RAW (a raw ICMP socket): run as root, or skip it with --no-ladder\n" {
		t.Errorf("check: exit %d, stdout %q, stderr %q", code, out, errs)
	}
	code, out, errs = runAsNobody(t, dir, bin, "check", "127.0.0.1", "--probes", "tls:"+port, "--no-ladder", "--json")
	rep, err := report.ReadJSON(strings.NewReader(out))
	if err != nil || code != exitFail || len(rep.Results) != 1 || rep.Results[0].Verdict != report.Blocked ||
		!strings.Contains(rep.Results[0].Detail, "who sent it is unknown") {
		t.Errorf("check --no-ladder: exit %d, %v, stdout %s, stderr %q", code, err, out, errs)
	}
}
