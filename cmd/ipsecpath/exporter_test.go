package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/ipsecpath/ipsecpath/testlab"
)

func TestExporterBadInput(t *testing.T) {
	dir := t.TempDir()
	bad := testlab.WriteFile(t, filepath.Join(dir, "bad.yml"), []byte("modules: {a: {colour: red}}\n"), 0o644)
	refusesAll(t, "exporter", []usageCase{
		{"", []string{"--config", filepath.Join(dir, "none.yml")}, "no such file"},
		{"", []string{"--config", bad}, "colour"},
		{"", []string{"--allow", "example.com"}, "--allow \"example.com\""},
		{"", []string{"extra"}, "unexpected argument"},
		{"", []string{"--listen", "127.0.0.1:99999"}, "--listen"},
	})
}

// startProc starts cmd, records its pid, and stops it (SIGTERM, then SIGKILL after 10 s)
// when the test ends.
func startProc(t *testing.T, cmd *exec.Cmd) {
	t.Helper()
	if err := cmd.Start(); err != nil {
		t.Fatalf("start %s: %v", cmd.Path, err)
	}
	pid := cmd.Process.Pid
	done := make(chan struct{})
	go func() { cmd.Wait(); close(done) }()
	t.Cleanup(func() {
		syscall.Kill(pid, syscall.SIGTERM)
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			syscall.Kill(pid, syscall.SIGKILL)
			<-done
		}
	})
}

// freePort returns a loopback port nothing listens on right now.
func freePort(t *testing.T) string {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

// promSample is one series of a Prometheus instant query.
type promSample struct {
	Metric map[string]string `json:"metric"`
	Value  [2]any            `json:"value"`
}

func promQuery(t *testing.T, prom, q string) []promSample {
	t.Helper()
	resp, err := http.Get("http://" + prom + "/api/v1/query?query=" + url.QueryEscape(q))
	if err != nil {
		t.Fatalf("query %s: %v", q, err)
	}
	defer resp.Body.Close()
	var r struct {
		Status string `json:"status"`
		Data   struct {
			Result []promSample `json:"result"`
		} `json:"data"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&r); err != nil || r.Status != "success" {
		t.Fatalf("query %s: %v, status %q", q, err, r.Status)
	}
	return r.Data.Result
}

// TestExporterPrometheus: a real Prometheus (Debian's) scrapes `ipsecpath exporter` with
// the scrape config of examples/prometheus.yml (intervals shortened, addresses of a lab),
// its alerting rules loaded. The exporter checks from the lab's ini (module netns): rsp with
// the agent (module agent) and r2 one-ended (module default). Prometheus's HTTP API then has
// ipsecpath_probe_success for both targets; after r2 gets the frag-drop profile's rules, a
// later scrape shows ike-frag's success toward rsp going from 1 to 0. promtool accepts a
// /probe answer of the exporter.
func TestExporterPrometheus(t *testing.T) {
	testlab.RequireRoot(t)
	testlab.RequireTools(t, "prometheus", "promtool")
	l := testlab.ForTest(t, testlab.Spec{Profile: "clean", NoGateways: true})
	dir := t.TempDir()
	_, key := labAgentKey(t, l, dir)
	rsp, r2 := l.Addr("rsp").String(), l.Addr("r2").String()

	cfg := fmt.Sprintf("allow: [203.0.113.0/24]\nmodules:\n  default: {netns: %s, probes: [ike, icmp-large]}\n  agent: {agent_port: 7500, key_file: %s, netns: %s}\n",
		l.Namespace("ini"), key, l.Namespace("ini"))
	cfgFile := testlab.WriteFile(t, filepath.Join(dir, "exporter.yml"), []byte(cfg), 0o644)
	bin := buildBinary(t)
	ex := exec.Command(bin, "exporter", "--listen", "127.0.0.1:0", "--config", cfgFile)
	stderr, err := ex.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	startProc(t, ex)
	exAddr := ""
	logLines := make(chan string, 100)
	go func() {
		sc := bufio.NewScanner(stderr)
		for sc.Scan() {
			select {
			case logLines <- sc.Text():
			default:
			}
		}
		close(logLines)
	}()
	for line := range logLines {
		t.Logf("exporter: %s", line)
		if _, rest, ok := strings.Cut(line, "listening on "); ok {
			exAddr, _, _ = strings.Cut(rest, ";")
			break
		}
	}
	if exAddr == "" {
		t.Fatal("the exporter did not start")
	}
	go func() {
		for range logLines { // keep draining; the log is not checked here
		}
	}()

	// The example scrape config, made to run here.
	example, err := os.ReadFile(filepath.Join("..", "..", "examples", "prometheus.yml"))
	if err != nil {
		t.Fatal(err)
	}
	promCfg := string(example)
	for _, r := range [][2]string{
		{"scrape_interval: 60s", "scrape_interval: 3s"},
		{"scrape_timeout: 15s", "scrape_timeout: 3s"},
		{"evaluation_interval: 60s", "evaluation_interval: 3s"},
		{"          - 203.0.113.10\n          - 198.51.100.7\n", "          - " + r2 + "\n"},
		{"          - 203.0.113.20\n", "          - " + rsp + "\n"},
		{"127.0.0.1:9877", exAddr},
	} {
		if !strings.Contains(promCfg, r[0]) {
			t.Fatalf("examples/prometheus.yml no longer holds %q", r[0])
		}
		promCfg = strings.ReplaceAll(promCfg, r[0], r[1])
	}
	os.WriteFile(filepath.Join(dir, "prometheus.yml"), []byte(promCfg), 0o644)
	rules, err := os.ReadFile(filepath.Join("..", "..", "examples", "ipsecpath-rules.yml"))
	if err != nil {
		t.Fatal(err)
	}
	os.WriteFile(filepath.Join(dir, "ipsecpath-rules.yml"), rules, 0o644)
	prom := freePort(t)
	pcmd := exec.Command("prometheus", "--config.file="+filepath.Join(dir, "prometheus.yml"),
		"--storage.tsdb.path="+filepath.Join(dir, "tsdb"), "--web.listen-address="+prom, "--log.level=warn")
	var plog bytes.Buffer
	pcmd.Stdout, pcmd.Stderr = &plog, &plog
	startProc(t, pcmd)
	defer func() {
		if t.Failed() {
			t.Logf("prometheus log:\n%s", plog.String())
		}
	}()

	// wait polls query until ok accepts its result, for at most d.
	wait := func(what, query string, d time.Duration, ok func([]promSample) bool) []promSample {
		t.Helper()
		end := time.Now().Add(d)
		var last []promSample
		for time.Now().Before(end) {
			if resp, err := http.Get("http://" + prom + "/-/ready"); err == nil {
				io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				if resp.StatusCode == 200 {
					last = promQuery(t, prom, query)
					if ok(last) {
						return last
					}
				}
			}
			time.Sleep(500 * time.Millisecond)
		}
		t.Fatalf("%s: not within %s; last result of %s: %+v", what, d, query, last)
		return nil
	}
	value := func(s promSample) string { v, _ := s.Value[1].(string); return v }
	at := func(s promSample) float64 { v, _ := s.Value[0].(float64); return v }

	got := wait("ipsecpath_probe_success for both targets", `ipsecpath_probe_success{direction="forward"}`, 90*time.Second, func(r []promSample) bool {
		inst := map[string]bool{}
		for _, s := range r {
			inst[s.Metric["instance"]] = true
		}
		return inst[rsp] && inst[r2]
	})
	for _, s := range got {
		t.Logf("%s %s %s %s = %s", s.Metric["job"], s.Metric["instance"], s.Metric["probe"], s.Metric["direction"], value(s))
	}
	q := fmt.Sprintf(`ipsecpath_probe_success{instance=%q,probe="ike-frag",direction="forward"}`, rsp)
	wait("ike-frag passing on the clean lab", q, 30*time.Second, func(r []promSample) bool { return len(r) == 1 && value(r[0]) == "1" })

	// The path changes: r2 now drops every fragment (the frag-drop profile's ruleset).
	p, ok := testlab.ProfileByName("frag-drop")
	if !ok {
		t.Fatal("no frag-drop profile")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if out, err := l.ExecInput(ctx, "r2", strings.NewReader(p.Rules["r2"]), "nft", "-f", "-"); err != nil {
		t.Fatalf("nft on r2: %v: %s", err, out)
	}
	switched := float64(time.Now().UnixMilli()) / 1000
	r := wait("ike-frag failing after the switch", q, 60*time.Second, func(r []promSample) bool {
		return len(r) == 1 && value(r[0]) == "0" && at(r[0]) > switched
	})
	t.Logf("after the switch: %s = %s", q, value(r[0]))
	vq := fmt.Sprintf(`ipsecpath_probe_verdict{instance=%q,probe="ike-frag",direction="forward",verdict="frag-dropped"}`, rsp)
	if v := promQuery(t, prom, vq); len(v) != 1 || value(v[0]) != "1" {
		t.Errorf("%s: %+v, want 1", vq, v)
	}
	if v := promQuery(t, prom, fmt.Sprintf(`ipsecpath_probe_success{instance=%q,probe="ike",direction="forward"}`, rsp)); len(v) != 1 || value(v[0]) != "1" {
		t.Errorf("ike (unfragmented) after the switch: %+v, want 1", v)
	}
	// Prometheus loaded the example's alerting rules.
	resp, err := http.Get("http://" + prom + "/api/v1/rules")
	if err != nil {
		t.Fatal(err)
	}
	rb, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if !bytes.Contains(rb, []byte(`"name":"IPsecPathProbeRegressed"`)) || bytes.Contains(rb, []byte(`"health":"err"`)) {
		t.Errorf("rules: %s", rb)
	}

	// promtool accepts what the exporter answers.
	req, _ := http.NewRequest("GET", "http://"+exAddr+"/probe?module=agent&target="+rsp, nil)
	req.Header.Set("X-Prometheus-Scrape-Timeout-Seconds", "5")
	resp, err = http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	cmd := exec.Command("promtool", "check", "metrics")
	cmd.Stdin = bytes.NewReader(body)
	if out, err := cmd.CombinedOutput(); err != nil || !bytes.Contains(body, []byte("ipsecpath_check_success 1")) {
		t.Errorf("promtool check metrics: %v\n%s\n%s", err, out, body)
	}
}

// TestExporterNotPrivileged: as user nobody without CAP_NET_RAW the exporter does not start:
// one line, exit 2 (not a server whose every scrape fails).
func TestExporterNotPrivileged(t *testing.T) {
	testlab.RequireRoot(t) // to become nobody
	dir, bin := copyTestBinary(t)
	code, stdout, stderr := runAsNobody(t, dir, bin, "exporter", "--listen", "127.0.0.1:0")
	oneLine(t, code, stdout, stderr, "needs root or CAP_NET_RAW")
}
