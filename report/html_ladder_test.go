package report

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/ipsecpath/ipsecpath/report/htmltest"
	"github.com/ipsecpath/ipsecpath/testlab"
)

// selfContained fails t when page names a resource outside itself (as TestHTMLSelfContained).
func selfContained(t *testing.T, page string) {
	t.Helper()
	for _, re := range []string{`(?i)\bsrc\s*=`, `(?i)\bhref\s*=\s*"(?:[^#"]|$)`, `(?i)url\(\s*['"]?(?:[^d'"]|d[^a])`, `(?i)@import`, `(?i)https?://(?:[^w]|w[^w]|ww[^w]|www[^.]|www\.[^w])`} {
		if m := regexp.MustCompile(re).FindString(page); m != "" {
			t.Errorf("page refers outside itself: %q matches %s", m, re)
		}
	}
}

func ladderReport(stop bool) *Report {
	r := New("203.0.113.10", "", time.Date(2026, 11, 29, 9, 0, 0, 0, time.UTC))
	r.Ladder = &Ladder{Target: "203.0.113.10", Rungs: []Rung{
		{Rung: "loopback", Addr: "127.0.0.1", Verdict: RungPass, Detail: "127.0.0.1 answers ICMP echo (0.1 ms)."},
		{Rung: "route", Addr: "203.0.113.10", Verdict: RungPass, Detail: "203.0.113.10 is reached via the default gateway 198.51.100.1 on wan0 (source 198.51.100.10)."},
		{Rung: "gateway", Addr: "198.51.100.1", Verdict: RungDead, Detail: "The default gateway 198.51.100.1 does not answer <at all>."},
	}, Preflight: &Preflight{Sockets: []LocalSocket{}, Firewall: []FirewallRule{}, FirewallChecked: true,
		Notes: []string{"charon (pid 42) holds UDP 500 here."}}}
	if stop {
		r.Ladder.Stop = "The default gateway 198.51.100.1 does not answer: fix the underlay first (every IPsec probe would fail behind it)."
	} else {
		r.Ladder.Rungs[2].Verdict, r.Ladder.Rungs[2].Detail = RungEchoFiltered, "198.51.100.1 does not answer ICMP echo but answered a TCP SYN."
		r.Ladder.Rungs = append(r.Ladder.Rungs, Rung{Rung: "target", Addr: "203.0.113.10", Verdict: RungPass, Detail: "203.0.113.10 answers ICMP echo (1.2 ms)."})
		r.Add(Result{Probe: "tls:443", Direction: Forward, Verdict: Blocked, Detail: "The TLS server refused the handshake with the alert unknown_ca.",
			Evidence: Evidence{DestPort: 443, Answer: "tls-alert", TLS: &TLS{Step: "handshake", Alert: "unknown_ca", SNI: "vpn.example",
				ClientHelloSize: 517, Version: "TLS 1.3", Subject: "CN=vpn.example", Issuer: "CN=Lab CA",
				NotBefore: "2026-01-01T00:00:00Z", NotAfter: "2027-01-01T00:00:00Z", Proxy: "192.0.2.8:3128", ProxyStatus: "HTTP/1.1 200 Connection established"}}})
		r.Add(Result{Probe: "ike", Direction: Forward, Verdict: Pass, Detail: "IKE arrived.", Evidence: Evidence{Answer: "ike-sa-init"}})
	}
	r.Finish(r.Started.Add(3 * time.Second))
	return r
}

// TestHTMLLadder: the page shows the ladder first (a row per rung, failed rungs red), the
// preflight, and TLS evidence under its result; a stopped ladder makes the page FAIL (no
// probe ran, so no verdict failed) with the stop sentence, and no path or result rows.
func TestHTMLLadder(t *testing.T) {
	var buf bytes.Buffer
	if err := ladderReport(false).WriteHTML(&buf, HTMLOptions{}); err != nil {
		t.Fatal(err)
	}
	page := buf.String()
	selfContained(t, page)
	for _, want := range []string{
		`<h2>Ladder toward 203.0.113.10</h2>`,
		`<tr class="rung pass" data-rung="loopback" data-verdict="pass">`,
		`<tr class="rung pass" data-rung="gateway" data-verdict="echo-filtered">`,
		`<tr class="rung pass" data-rung="target" data-verdict="pass">`,
		`charon (pid 42) holds UDP 500 here.`,
		`<li>tls step reached: handshake</li>`,
		`<li>tls alert from the server: unknown_ca</li>`,
		`<li>server certificate: &#34;CN=vpn.example&#34; issued by &#34;CN=Lab CA&#34;, valid 2026-01-01T00:00:00Z to 2027-01-01T00:00:00Z</li>`,
		`<li>proxy: 192.0.2.8:3128 answered &#34;HTTP/1.1 200 Connection established&#34;</li>`,
		`<li>client hello: 517 bytes</li>`,
		`data-probe="tls:443" data-direction="forward" data-verdict="blocked"`,
		`<h2>The path</h2>`,
		`<span class="badge fail">FAIL</span>`,
	} {
		if !strings.Contains(page, want) {
			t.Errorf("page lacks %q", want)
		}
	}
	if strings.Contains(page, "box stop") {
		t.Error("a ladder that did not stop shows a stop box")
	}

	buf.Reset()
	stopped := ladderReport(true)
	if err := stopped.WriteHTML(&buf, HTMLOptions{}); err != nil {
		t.Fatal(err)
	}
	page = buf.String()
	selfContained(t, page)
	for _, want := range []string{
		`<span class="badge fail">FAIL (underlay dead)</span>`,
		`<tr class="rung fail" data-rung="gateway" data-verdict="dead">`,
		`does not answer &lt;at all&gt;.`,
		`<div class="box stop"><strong>The default gateway 198.51.100.1 does not answer: fix the underlay first`,
		`No probe was sent: the ladder found the underlay dead.`,
	} {
		if !strings.Contains(page, want) {
			t.Errorf("stopped page lacks %q", want)
		}
	}
	if strings.Contains(page, "<h2>The path</h2>") || strings.Contains(page, `<tr class="row `) {
		t.Error("a stopped ladder's page draws a path or result rows: no probe was sent")
	}
	if dir := os.Getenv("IPSECPATH_HTML_DIR"); dir != "" {
		os.WriteFile(filepath.Join(dir, "ladder-stopped.html"), buf.Bytes(), 0o644)
	}
}

// TestSurveyHTML: a row per target and direction, a cell per probe with its verdict,
// failures red, each target's status, what failed, escaped, nothing fetched.
func TestSurveyHTML(t *testing.T) {
	s := surveyFixture()
	s.Targets[3].Error = `agent <198.51.100.99>:7500: connection refused`
	var buf bytes.Buffer
	if err := s.WriteHTML(&buf); err != nil {
		t.Fatal(err)
	}
	page := buf.String()
	selfContained(t, page)
	if n := strings.Count(page, `<tr class="target"`); n != 5 {
		t.Errorf("%d matrix rows, want 5 (lab-a both ways, lab-b, nobody, the error)", n)
	}
	for _, want := range []string{
		`<span class="badge fail">FAIL</span>`,
		`<th class="probe">ike</th><th class="probe">ike-frag</th><th class="probe">esp</th>`,
		`data-target="203.0.113.10" data-direction="forward" data-status="fail"><td class="probe">lab-a 203.0.113.10</td><td>→</td><td class="cell pass" data-probe="ike" data-verdict="pass">pass</td><td class="cell fail" data-probe="ike-frag" data-verdict="frag-dropped">FRAG</td><td class="cell none" data-probe="esp">-</td><td class="status fail">FAIL: 2 failed</td>`,
		`data-direction="reverse" data-status="fail"><td class="probe"></td><td>←</td>`,
		`<td class="status fail">SILENT: nothing came back`,
		`lab-a 203.0.113.10: ike-frag reverse frag-dropped: Fragments die on the way back.`,
		`agent &lt;198.51.100.99&gt;:7500: connection refused`,
		`1 pass, 1 fail, 1 silent, 1 error`,
	} {
		if !strings.Contains(page, want) {
			t.Errorf("survey page lacks %q", want)
		}
	}
	if strings.Contains(page, "<198.51.100.99>") {
		t.Error("an error is not escaped")
	}
}

// TestLadderSurveyHTMLChromium: the ladder pages (stopped, and with TLS evidence) and the
// survey page load in headless Chromium with no console error and no request, and show
// every rung and every matrix row.
func TestLadderSurveyHTMLChromium(t *testing.T) {
	testlab.RequireTools(t, htmltest.Chromium)
	dir, err := htmltest.ArtefactDir()
	if err != nil {
		t.Fatal(err)
	}
	const shown = `(() => {
  const vis = sel => [...document.querySelectorAll(sel)].filter(e => e.getBoundingClientRect().height > 0).length;
  return {rungs: vis('tr.rung'), stop: vis('.box.stop'), rows: vis('tr.row'), targets: vis('tr.target'), red: vis('td.cell.fail')};
})()`
	type counts struct{ Rungs, Stop, Rows, Targets, Red int }
	open := func(name string, write func(f *os.File) error) counts {
		t.Helper()
		page := filepath.Join(dir, name+".html")
		f, err := os.Create(page)
		if err != nil {
			t.Fatal(err)
		}
		if err := write(f); err != nil {
			t.Fatal(err)
		}
		f.Close()
		ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
		defer cancel()
		p, err := htmltest.Open(ctx, page, shown)
		if err != nil {
			t.Fatalf("chromium: %v", err)
		}
		if len(p.ConsoleErrors) > 0 || len(p.Requests) > 0 {
			t.Errorf("%s: console errors %q, requests %q", name, p.ConsoleErrors, p.Requests)
		}
		if err := os.WriteFile(filepath.Join(dir, name+".png"), p.Screenshot, 0o644); err != nil {
			t.Fatal(err)
		}
		var c counts
		if err := json.Unmarshal(p.Eval[0], &c); err != nil {
			t.Fatal(err)
		}
		t.Logf("%s: %+v (screenshot %s)", name, c, filepath.Join(dir, name+".png"))
		return c
	}
	if c := open("ladder-stopped", func(f *os.File) error { return ladderReport(true).WriteHTML(f, HTMLOptions{}) }); c != (counts{Rungs: 3, Stop: 1}) {
		t.Errorf("stopped ladder page shows %+v; want 3 rungs, the stop box, no result row", c)
	}
	if c := open("ladder-tls", func(f *os.File) error { return ladderReport(false).WriteHTML(f, HTMLOptions{}) }); c != (counts{Rungs: 4, Rows: 2}) {
		t.Errorf("ladder and tls page shows %+v; want 4 rungs and 2 result rows", c)
	}
	if c := open("survey", func(f *os.File) error { return surveyFixture().WriteHTML(f) }); c != (counts{Targets: 5, Red: 3}) {
		t.Errorf("survey page shows %+v; want 5 matrix rows, 3 red cells (lab-a's FRAG both ways, nobody's DROP)", c)
	}
}
