package report_test

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/ipsecpath/ipsecpath/report"
	"github.com/ipsecpath/ipsecpath/report/htmltest"
	"github.com/ipsecpath/ipsecpath/testlab"
)

// rowGeometry is evaluated in the page: for each result row, where its line ends and how
// (class of the mark), and the x of every hop of the path, in the SVGs' shared units.
const rowGeometry = `(() => {
  const nodes = [...document.querySelectorAll('svg[aria-label^="the path"] g.node circle')].map(c => +c.getAttribute('cx'));
  const rows = [...document.querySelectorAll('tr.row')].map(tr => {
    const l = tr.querySelector('td.path line.ok, td.path line.dead, td.path line.lost');
    return {probe: tr.dataset.probe, dir: tr.dataset.direction, verdict: tr.dataset.verdict,
      mark: l ? l.getAttribute('class') : 'none', x2: l ? +l.getAttribute('x2') : -1,
      cross: !!tr.querySelector('td.path line.x'), visible: tr.getBoundingClientRect().height > 0};
  });
  return {nodes, rows};
})()`

// printedEvidence switches the page to print media and counts the evidence lists that
// are laid out (visible) then, against all of them.
const printedEvidence = `(() => {
  const sheetHasPrint = [...document.styleSheets].some(s => [...s.cssRules].some(r => r.media && r.media.mediaText === 'print'));
  window.dispatchEvent(new Event('beforeprint'));
  const lists = [...document.querySelectorAll('details ul')];
  const shown = lists.filter(u => u.getBoundingClientRect().height > 0).length;
  document.querySelectorAll('details').forEach(d => { d.open = false; }); // as a reader finds them
  return {blocks: sheetHasPrint ? lists.length : 0, shown};
})()`

type geometry struct {
	Nodes []float64
	Rows  []struct {
		Probe, Dir, Verdict, Mark string
		X2                        float64
		Cross, Visible            bool
	}
}

// openReport renders r to HTML, opens it in headless Chromium, keeps the screenshot and
// the PDF as artefacts (path logged), and fails on any console error or network request.
func openReport(t *testing.T, r *report.Report, name string) geometry {
	t.Helper()
	testlab.RequireTools(t, htmltest.Chromium)
	dir, err := htmltest.ArtefactDir()
	if err != nil {
		t.Fatal(err)
	}
	page := filepath.Join(dir, name+".html")
	f, err := os.Create(page)
	if err != nil {
		t.Fatal(err)
	}
	if err := r.WriteHTML(f, report.HTMLOptions{}); err != nil {
		t.Fatal(err)
	}
	f.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	p, err := htmltest.Open(ctx, page, rowGeometry, printedEvidence)
	if err != nil {
		t.Fatalf("chromium: %v", err)
	}
	if len(p.ConsoleErrors) > 0 {
		t.Errorf("console errors: %q", p.ConsoleErrors)
	}
	if len(p.Requests) > 0 {
		t.Errorf("the page made network requests: %q", p.Requests)
	}
	png, pdf := filepath.Join(dir, name+".png"), filepath.Join(dir, name+".pdf")
	if err := os.WriteFile(png, p.Screenshot, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(pdf, p.PDF, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, name+"-print.png"), p.PrintShot, 0o644); err != nil {
		t.Fatal(err)
	}
	if len(p.Screenshot) < 1000 || !strings.HasPrefix(string(p.PDF), "%PDF") {
		t.Errorf("screenshot %d bytes, PDF starts %q", len(p.Screenshot), p.PDF[:min(len(p.PDF), 8)])
	}
	t.Logf("screenshot %s, printed %s (%d bytes)", png, pdf, len(p.PDF))
	var g geometry
	if err := json.Unmarshal(p.Eval[0], &g); err != nil {
		t.Fatal(err)
	}
	var ev struct{ Blocks, Shown int }
	if err := json.Unmarshal(p.Eval[1], &ev); err != nil {
		t.Fatal(err)
	}
	if ev.Blocks == 0 || ev.Shown != ev.Blocks {
		t.Errorf("with print media %d of %d evidence blocks are shown: printing must open them all", ev.Shown, ev.Blocks)
	}
	if len(g.Rows) != len(r.Results) {
		t.Errorf("%d rows in the page, %d results", len(g.Rows), len(r.Results))
	}
	return g
}

// TestHTMLChromiumFragDrop: the frag-drop report with the brackets a trace gives (r2 drops
// every fragment, both ways) draws every fragmented row dead on r2's side of the path:
// forward rows end with a cross after hop 1 and before hop 2 (r2), reverse rows after the
// responder and before hop 2; the unfragmented rows reach the far end.
func TestHTMLChromiumFragDrop(t *testing.T) {
	r := readTestdata(t, "frag-drop-traced.json")
	g := openReport(t, r, "frag-drop-traced")
	if len(g.Nodes) != 4 {
		t.Fatalf("path nodes at %v: want initiator, hop 1, hop 2, responder", g.Nodes)
	}
	r1, r2, rsp := g.Nodes[1], g.Nodes[2], g.Nodes[3]
	dead := 0
	for _, row := range g.Rows {
		switch {
		case row.Verdict == "frag-dropped" && row.Dir == "forward":
			dead++
			if row.Mark != "dead" || !row.Cross || !(row.X2 > r1 && row.X2 < r2) || !row.Visible {
				t.Errorf("%s forward: %+v; want a cross between hop 1 (%v) and hop 2 (%v)", row.Probe, row, r1, r2)
			}
		case row.Verdict == "frag-dropped":
			dead++
			if row.Mark != "dead" || !row.Cross || !(row.X2 > r2 && row.X2 < rsp) || !row.Visible {
				t.Errorf("%s reverse: %+v; want a cross between the responder (%v) and hop 2 (%v)", row.Probe, row, rsp, r2)
			}
		case row.Verdict == "pass" && row.Mark != "ok":
			t.Errorf("%s %s passed but is drawn %s", row.Probe, row.Dir, row.Mark)
		}
	}
	if dead < 8 {
		t.Errorf("%d frag-dropped rows drawn, want the 8 fragmented probes (4 protocols, 2 directions) at least", dead)
	}
}

// TestChromiumDetects: the browser harness is not blind: a page that logs an error, throws
// and fetches an image (from a closed loopback port) is reported as doing so.
func TestChromiumDetects(t *testing.T) {
	testlab.RequireTools(t, htmltest.Chromium)
	page := filepath.Join(t.TempDir(), "bad.html")
	bad := `<!DOCTYPE html><html><body><img src="http://127.0.0.1:9/x.png"><script>console.error("boom"); throw new Error("thrown");</script></body></html>`
	if err := os.WriteFile(page, []byte(bad), 0o644); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	p, err := htmltest.Open(ctx, page)
	if err != nil {
		t.Fatal(err)
	}
	joined := strings.Join(p.ConsoleErrors, "\n")
	if !strings.Contains(joined, "boom") || !strings.Contains(joined, "thrown") {
		t.Errorf("console errors %q: want boom and thrown", p.ConsoleErrors)
	}
	if len(p.Requests) != 1 || p.Requests[0] != "http://127.0.0.1:9/x.png" {
		t.Errorf("requests %q: want the image", p.Requests)
	}
}

// TestDiffHTMLChromium: the diff page (before: the one-ended run, after: the traced
// frag-drop run) loads with no console error and no request, one row per change.
func TestDiffHTMLChromium(t *testing.T) {
	testlab.RequireTools(t, htmltest.Chromium)
	before, after := readTestdata(t, "frag-drop.json"), readTestdata(t, "frag-drop-traced.json")
	d := report.Diff(before, after)
	dir, err := htmltest.ArtefactDir()
	if err != nil {
		t.Fatal(err)
	}
	page := filepath.Join(dir, "diff.html")
	f, err := os.Create(page)
	if err != nil {
		t.Fatal(err)
	}
	if err := d.WriteHTML(f); err != nil {
		t.Fatal(err)
	}
	f.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	p, err := htmltest.Open(ctx, page, `document.querySelectorAll('tr.change').length`)
	if err != nil {
		t.Fatal(err)
	}
	if len(p.ConsoleErrors) > 0 || len(p.Requests) > 0 {
		t.Errorf("console errors %q, requests %q", p.ConsoleErrors, p.Requests)
	}
	want := len(d.Regressions) + len(d.Fixes) + len(d.Changed) + len(d.OnlyBefore) + len(d.OnlyAfter)
	if got := string(p.Eval[0]); got != strconv.Itoa(want) || want == 0 {
		t.Errorf("%s change rows, want %d", got, want)
	}
	png := filepath.Join(dir, "diff.png")
	if err := os.WriteFile(png, p.Screenshot, 0o644); err != nil {
		t.Fatal(err)
	}
	t.Logf("screenshot %s", png)
}

// readTestdata reads the report in testdata/name.
func readTestdata(t *testing.T, name string) *report.Report {
	t.Helper()
	f, err := os.Open(filepath.Join("testdata", name))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	r, err := report.ReadJSON(f)
	if err != nil {
		t.Fatalf("%s: %v", name, err)
	}
	return r
}
