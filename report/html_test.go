package report

import (
	"bytes"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"
)

// TestHTMLSelfContained: the page names no resource outside itself (no src=, href= or
// url() that is not a fragment or data:, no @import), escapes what the report says, and has
// a row per result with its verdict, an evidence block for every result with evidence, the
// path MTU and the advice.
func TestHTMLSelfContained(t *testing.T) {
	r := loadReport(t, "frag-drop")
	r.Results[0].Detail = `<script>alert("x")</script> & more`
	var buf bytes.Buffer
	if err := r.WriteHTML(&buf, HTMLOptions{Advice: []string{"clamp the TCP MSS to 1360 <bytes>"}}); err != nil {
		t.Fatal(err)
	}
	page := buf.String()
	for _, re := range []string{`(?i)\bsrc\s*=`, `(?i)\bhref\s*=\s*"(?:[^#"]|$)`, `(?i)url\(\s*['"]?(?:[^d'"]|d[^a])`, `(?i)@import`, `(?i)https?://(?:[^w]|w[^w]|ww[^w]|www[^.]|www\.[^w])`} {
		if m := regexp.MustCompile(re).FindString(page); m != "" {
			t.Errorf("page refers outside itself: %q matches %s", m, re)
		}
	}
	if strings.Contains(page, `<script>alert`) || !strings.Contains(page, `&lt;script&gt;alert`) {
		t.Error("a detail is not escaped")
	}
	if n := strings.Count(page, `<tr class="row `); n != len(r.Results) {
		t.Errorf("%d rows for %d results", n, len(r.Results))
	}
	withEvidence := 0
	for _, res := range r.Results {
		if len(res.Evidence.Lines()) > 0 {
			withEvidence++
		}
		if !strings.Contains(page, `data-probe="`+res.Probe+`" data-direction="`+string(res.Direction)+`" data-verdict="`+string(res.Verdict)+`"`) {
			t.Errorf("no row for %s %s %s", res.Probe, res.Direction, res.Verdict)
		}
	}
	if n := strings.Count(page, "<details>"); n != withEvidence {
		t.Errorf("%d evidence blocks, %d results with evidence", n, withEvidence)
	}
	for _, want := range []string{"Path MTU", "forward 1400, black hole from hop 2 (192.0.2.66)", "clamp the TCP MSS to 1360 &lt;bytes&gt;", "@media print", "192.0.2.66"} {
		if !strings.Contains(page, want) {
			t.Errorf("page lacks %q", want)
		}
	}
	if dir := os.Getenv("IPSECPATH_HTML_DIR"); dir != "" {
		os.WriteFile(filepath.Join(dir, "frag-drop.html"), buf.Bytes(), 0o644)
	}
}

// TestHTMLPathGeometry: the drawing ends each row where the report says it died.
func TestHTMLPathGeometry(t *testing.T) {
	r := New("203.0.113.10", "203.0.113.10:7500", time.Date(2026, 11, 23, 9, 0, 0, 0, time.UTC))
	seen := []Fragment{{Offset: 0, Length: 100, TTL: 62}}
	r.Add(Result{Probe: "esp", Direction: Forward, Verdict: Pass, Evidence: Evidence{FragmentsSeen: seen}})
	r.Add(Result{Probe: "esp-frag", Direction: Forward, Verdict: FragDropped,
		Hop: &Hop{LastReached: &Hop{TTL: 1, Addr: "198.51.100.1"}, FirstMissed: &Hop{TTL: 2, Addr: "192.0.2.66"}}})
	r.Add(Result{Probe: "esp-frag", Direction: Reverse, Verdict: FragDropped,
		Hop: &Hop{FirstMissed: &Hop{TTL: 1, Addr: "203.0.113.1"}}})
	r.Add(Result{Probe: "ah", Direction: Forward, Verdict: Blocked, Hop: &Hop{TTL: 1, Addr: "198.51.100.1"}})
	r.Add(Result{Probe: "natt", Direction: Forward, Verdict: Dropped})
	v := buildHTMLView(r, HTMLOptions{})
	if len(v.Nodes) != 4 || v.Nodes[1].Addr != "198.51.100.1" || v.Nodes[2].Addr != "192.0.2.66 / 203.0.113.1" {
		t.Fatalf("nodes %+v: want initiator, r1, r2 (both its addresses), responder", v.Nodes)
	}
	x := func(i int) int { return v.Nodes[i].X }
	rows := map[string]*htmlLine{}
	for _, row := range v.Rows {
		rows[row.Probe+" "+row.Direction] = row.Line
	}
	check := func(name string, ok bool) {
		if !ok {
			t.Errorf("%s: %+v", name, rows[name])
		}
	}
	l := rows["esp forward"]
	check("esp forward", l.Pass && l.X1 == x(0) && l.X2 == x(3))
	l = rows["esp-frag forward"]
	check("esp-frag forward", l.Dead && l.X2 > x(1) && l.X2 < x(2) && l.BracketX == x(2))
	l = rows["esp-frag reverse"]
	check("esp-frag reverse", l.Dead && l.X1 == x(3) && l.X2 < x(3) && l.X2 > x(2) && l.BracketX == x(2))
	l = rows["ah forward"]
	check("ah forward", l.Bar && l.X2 == x(1))
	l = rows["natt forward"]
	check("natt forward", l.Lost && l.X2 < x(3) && l.X2 > x(2))
}
