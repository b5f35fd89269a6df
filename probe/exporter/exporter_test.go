package exporter

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ipsecpath/ipsecpath/probe"
	"github.com/ipsecpath/ipsecpath/report"
	"github.com/ipsecpath/ipsecpath/testlab"
)

// fakeReport is a check's report with a passing ike, a frag-dropped ike-frag, a skipped
// esp and a path MTU.
func fakeReport(target netip.Addr) *report.Report {
	r := report.New(target.String(), "", time.Now())
	r.Add(report.Result{Probe: "ike", Direction: report.Forward, Verdict: report.Pass, Evidence: report.Evidence{RTTms: 2.5}})
	r.Add(report.Result{Probe: "ike-frag", Direction: report.Forward, Verdict: report.FragDropped})
	r.Add(report.Result{Probe: "esp", Direction: report.Forward, Verdict: report.Skipped})
	r.Add(report.Result{Probe: "ike", Direction: report.Reverse, Verdict: report.Pass})
	r.PMTU = &report.PMTU{Forward: &report.PathMTU{MTU: 1400}}
	return r
}

func scrape(t *testing.T, url string, timeout string) (int, string) {
	t.Helper()
	req, _ := http.NewRequest("GET", url, nil)
	if timeout != "" {
		req.Header.Set("X-Prometheus-Scrape-Timeout-Seconds", timeout)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

func TestProbeMetrics(t *testing.T) {
	var got probe.CheckConfig
	check := func(_ context.Context, cfg probe.CheckConfig) (*report.Report, error) {
		got = cfg
		return fakeReport(cfg.Target), nil
	}
	srv := httptest.NewServer(New(DefaultConfig(), check, t.Logf).Handler())
	defer srv.Close()
	code, body := scrape(t, srv.URL+"/probe?target=192.0.2.7", "3")
	if code != 200 {
		t.Fatalf("status %d: %s", code, body)
	}
	for _, want := range []string{
		"ipsecpath_check_success 1",
		`ipsecpath_probe_success{direction="forward",probe="ike"} 1`,
		`ipsecpath_probe_success{direction="forward",probe="ike-frag"} 0`,
		`ipsecpath_probe_success{direction="reverse",probe="ike"} 1`,
		`ipsecpath_probe_verdict{direction="forward",probe="ike-frag",verdict="frag-dropped"} 1`,
		`ipsecpath_probe_verdict{direction="forward",probe="ike-frag",verdict="pass"} 0`,
		`ipsecpath_probe_verdict{direction="forward",probe="esp",verdict="skipped"} 1`,
		`ipsecpath_path_mtu_bytes{direction="forward"} 1400`,
		`ipsecpath_rtt_seconds{probe="ike"} 0.0025`,
		"ipsecpath_probe_duration_seconds ",
	} {
		if !strings.Contains(body, want) {
			t.Errorf("metrics lack %q:\n%s", want, body)
		}
	}
	if strings.Contains(body, `ipsecpath_probe_success{direction="forward",probe="esp"}`) {
		t.Errorf("a skipped probe has a success series")
	}
	// The scrape timeout (3 s) less the offset and the run's overhead bounds the wait.
	if got.Target != netip.MustParseAddr("192.0.2.7") || got.Timeout > 1500*time.Millisecond || got.Timeout < 1400*time.Millisecond || got.Agent != "" {
		t.Errorf("check config %+v, want target 192.0.2.7, timeout 1.5s (less the time to start), no agent", got)
	}
	if _, err := exec.LookPath("promtool"); err == nil || testlab.InCI() {
		cmd := exec.Command("promtool", "check", "metrics")
		cmd.Stdin = strings.NewReader(body)
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Errorf("promtool check metrics: %v\n%s", err, out)
		}
		_, own := scrape(t, srv.URL+"/metrics", "")
		cmd = exec.Command("promtool", "check", "metrics")
		cmd.Stdin = strings.NewReader(own)
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Errorf("promtool check metrics (/metrics): %v\n%s", err, out)
		}
		if !strings.Contains(own, `ipsecpath_exporter_scrapes_total{module="default",result="ok"} 1`) {
			t.Errorf("/metrics lacks the scrape count:\n%s", own)
		}
	}
}

func TestProbeFailedRun(t *testing.T) {
	check := func(context.Context, probe.CheckConfig) (*report.Report, error) {
		return nil, &probe.CheckError{Err: io.ErrUnexpectedEOF}
	}
	srv := httptest.NewServer(New(DefaultConfig(), check, t.Logf).Handler())
	defer srv.Close()
	code, body := scrape(t, srv.URL+"/probe?target=192.0.2.7&module=default", "")
	if code != 200 || !strings.Contains(body, "ipsecpath_check_success 0") || strings.Contains(body, "ipsecpath_probe_success{") {
		t.Errorf("a check that could not run: %d\n%s", code, body)
	}
}

func TestProbeRefused(t *testing.T) {
	cfg := DefaultConfig()
	cfg.Allow = []netip.Prefix{netip.MustParsePrefix("203.0.113.0/24")}
	called := false
	check := func(_ context.Context, cfg probe.CheckConfig) (*report.Report, error) {
		called = true
		return fakeReport(cfg.Target), nil
	}
	srv := httptest.NewServer(New(cfg, check, t.Logf).Handler())
	defer srv.Close()
	for _, c := range []struct {
		query, timeout string
		code           int
		want           string
	}{
		{"target=192.0.2.7", "", 403, "not in the exporter's allow-list"},
		{"target=224.0.0.1", "", 403, "multicast"},
		{"target=255.255.255.255", "", 403, "broadcast"},
		{"target=example.com", "", 400, "not an IPv4 address"},
		{"target=203.0.113.10&module=nope", "", 400, "unknown module"},
		{"target=203.0.113.10", "1", 400, "scrape timeout too short"},
		{"target=203.0.113.10", "x", 400, "bad X-Prometheus-Scrape-Timeout-Seconds"},
	} {
		code, body := scrape(t, srv.URL+"/probe?"+c.query, c.timeout)
		if code != c.code || !strings.Contains(body, c.want) {
			t.Errorf("%s: %d %q, want %d %q", c.query, code, body, c.code, c.want)
		}
	}
	if called {
		t.Error("a refused scrape ran a check")
	}
	if code, _ := scrape(t, srv.URL+"/probe?target=203.0.113.10", ""); code != 200 || !called {
		t.Errorf("an allowed target: %d, check called %v", code, called)
	}
}

// TestProbeShared: scrapes of one target and module that arrive while its check runs get
// that check's result: one run. A scrape of the same target with another module waits
// until the first run ended (runs toward one target never overlap).
func TestProbeShared(t *testing.T) {
	cfg := DefaultConfig()
	cfg.Modules["other"] = &Module{Name: "other", Timeout: time.Second}
	var mu sync.Mutex
	calls, running, most := 0, 0, 0
	started := make(chan struct{}, 4)
	release := make(chan struct{})
	check := func(_ context.Context, cc probe.CheckConfig) (*report.Report, error) {
		mu.Lock()
		calls++
		running++
		most = max(most, running)
		mu.Unlock()
		started <- struct{}{}
		<-release
		mu.Lock()
		running--
		mu.Unlock()
		return fakeReport(cc.Target), nil
	}
	ex := New(cfg, check, t.Logf)
	srv := httptest.NewServer(ex.Handler())
	defer srv.Close()
	var wg sync.WaitGroup
	bodies := make([]string, 3)
	for i, q := range []string{"module=default", "module=default", "module=other"} {
		if i == 1 {
			<-started // the first run is under way
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, bodies[i] = scrape(t, srv.URL+"/probe?target=192.0.2.7&"+q, "20")
		}()
	}
	// Wait until the second scrape joined the first run, then let the runs finish.
	deadline := time.Now().Add(15 * time.Second)
	for {
		_, own := scrape(t, srv.URL+"/metrics", "")
		if strings.Contains(own, `ipsecpath_exporter_shared_scrapes_total{module="default"} 1`) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the second scrape never joined the run:\n%s", own)
		}
		time.Sleep(20 * time.Millisecond)
	}
	close(release)
	wg.Wait()
	if calls != 2 || most != 1 {
		t.Errorf("%d checks ran (want 2: one shared by the default scrapes, one for other), at most %d at once (want 1)", calls, most)
	}
	for i, b := range bodies {
		if !strings.Contains(b, "ipsecpath_check_success 1") {
			t.Errorf("scrape %d: %s", i, b)
		}
	}
	ex.mu.Lock()
	left := len(ex.targets) + len(ex.inflight)
	ex.mu.Unlock()
	if left != 0 {
		t.Errorf("%d target locks or runs left after every run ended (the maps must not grow with every target ever scraped)", left)
	}
}

func TestParseConfig(t *testing.T) {
	dir := t.TempDir()
	key := filepath.Join(dir, "k")
	os.WriteFile(key, []byte("0123456789abcdef0123"), 0o600)
	c, err := ParseConfig([]byte(`allow: [203.0.113.0/24, 198.51.100.7]
max_concurrent: 2
modules:
  default: {timeout: 3s}
  agent: {agent_port: 7500, key_file: `+key+`, probes: [ike, ike-frag], pace: 50, netns: ipl-x-ini}
`), probe.LoadKey)
	if err != nil {
		t.Fatal(err)
	}
	m := c.Modules["agent"]
	if len(c.Allow) != 2 || c.MaxConcurrent != 2 || c.Modules["default"].Timeout != 3*time.Second ||
		m.AgentPort != 7500 || len(m.Key) != 20 || len(m.Probes) != 2 || m.Netns != "ipl-x-ini" {
		t.Errorf("config %+v, agent module %+v", c, m)
	}
	cc := m.checkConfig(netip.MustParseAddr("203.0.113.10"), time.Second)
	if cc.Agent != "203.0.113.10:7500" || cc.Timeout != time.Second || cc.Pace != 50 {
		t.Errorf("check config %+v", cc)
	}
	if c.Allowed(netip.MustParseAddr("198.51.100.7")) != nil || c.Allowed(netip.MustParseAddr("198.51.100.8")) == nil {
		t.Error("allow-list of one address")
	}
	for _, bad := range []struct{ in, want string }{
		{"modules: {a: {colour: red}}", "colour"},
		{"modules: {}", "no modules"},
		{"allow: [example.com]\nmodules: {a: {}}", "want an IPv4 address or prefix"},
		{"allow: ['2001:db8::/32']\nmodules: {a: {}}", "only IPv4"},
		{"modules: {a: {agent_port: 7500}}", "needs key_file"},
		{"modules: {a: {key_file: " + key + "}}", "without agent_port"},
		{"modules: {a: {agent_port: 7500, key_file: /nonexistent}}", "key file"},
		{"modules: {a: {timeout: 2h}}", "timeout"},
		{"modules: {a: {probes: [bogus]}}", "unknown probe"},
		{"modules: {a: {netns: ../x}}", "not a namespace name"},
		{"modules: {'a b': {}}", "module name"},
		{"max_concurrent: 0\nmodules: {a: {pace: -1}}", "pace"},
	} {
		if _, err := ParseConfig([]byte(bad.in), probe.LoadKey); err == nil || !strings.Contains(err.Error(), bad.want) {
			t.Errorf("%q: %v, want an error with %q", bad.in, err, bad.want)
		}
	}
}

func FuzzParseConfig(f *testing.F) {
	f.Add("allow: [203.0.113.0/24]\nmodules:\n  default: {timeout: 2s, probes: [ike]}\n")
	f.Add("modules: {a: {agent_port: 7500, key_file: k, netns: x}}\n")
	f.Fuzz(func(t *testing.T, in string) {
		c, err := ParseConfig([]byte(in), func(string) ([]byte, error) { return make([]byte, 32), nil })
		if err != nil {
			return
		}
		if len(c.Modules) == 0 || c.MaxConcurrent < 1 {
			t.Fatalf("accepted %+v", c)
		}
		for _, m := range c.Modules {
			if (m.AgentPort == 0) != (m.KeyFile == "") || m.Timeout <= 0 || m.Timeout > probe.MaxCheckTimeout {
				t.Fatalf("accepted module %+v", m)
			}
		}
	})
}
