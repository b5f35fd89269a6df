package main

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/ipsecpath/ipsecpath/report"
)

// writeReport writes r as JSON into dir/name and returns the path.
func writeReport(t *testing.T, dir, name string, r *report.Report) string {
	t.Helper()
	var buf bytes.Buffer
	if err := r.WriteJSON(&buf); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, name)
	if err := os.WriteFile(path, buf.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

func TestDiffCommand(t *testing.T) {
	dir := t.TempDir()
	good := sampleReport() // esp pass, esp-frag frag-dropped
	fixed := sampleReport()
	fixed.Results[1].Verdict = report.Pass
	fixed.Results[1].Detail = "ESP fragments arrived."
	broken := sampleReport()
	broken.Results[0].Verdict = report.Dropped
	broken.Results[0].Detail = "ESP never reached the agent."

	goodPath := writeReport(t, dir, "good.json", good)
	fixedPath := writeReport(t, dir, "fixed.json", fixed)
	brokenPath := writeReport(t, dir, "broken.json", broken)

	code, out, errOut := runCLI(t, "diff", goodPath, goodPath)
	if code != exitOK || !strings.Contains(out, "NO REGRESSION") || errOut != "" {
		t.Errorf("same run: exit %d\n%s%s", code, out, errOut)
	}
	code, out, _ = runCLI(t, "diff", goodPath, fixedPath)
	if code != exitOK || !strings.Contains(out, "FIXES") || !strings.Contains(out, "frag-dropped -> pass") {
		t.Errorf("a fix: exit %d\n%s", code, out)
	}
	code, out, _ = runCLI(t, "diff", goodPath, brokenPath)
	if code != exitFail || !strings.Contains(out, "REGRESSIONS") || !strings.Contains(out, "  esp  forward  pass -> dropped  ESP never reached the agent.") {
		t.Errorf("a regression: exit %d\n%s", code, out)
	}
	code, out, _ = runCLI(t, "diff", "--json", goodPath, brokenPath)
	var d report.DiffResult
	if err := json.Unmarshal([]byte(out), &d); err != nil || code != exitFail || !d.Regression || len(d.Regressions) != 1 {
		t.Errorf("--json: exit %d, err %v, %+v\n%s", code, err, d, out)
	}
}

func TestDiffCommandBadInput(t *testing.T) {
	dir := t.TempDir()
	good := writeReport(t, dir, "good.json", sampleReport())
	write := func(name, content string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	notJSON := write("notes.txt", "this is not json\n")
	otherTool := write("other.json", `{"tool":"nmap","results":[]}`)
	badVerdict := write("verdict.json", `{"tool":"ipsecpath","results":[{"probe":"esp","direction":"forward","verdict":"maybe"}]}`)
	truncated := write("cut.json", `{"tool":"ipsecpath","results":[{"probe":"esp",`)
	cases := []struct {
		args []string
		want string // in the one line on stderr
	}{
		{[]string{"diff"}, "want two files"},
		{[]string{"diff", good}, "want two files"},
		{[]string{"diff", good, good, good}, "got 3 argument"},
		{[]string{"diff", filepath.Join(dir, "missing.json"), good}, "missing.json: no such file or directory"},
		{[]string{"diff", good, dir}, dir + ": read: "},
		{[]string{"diff", notJSON, good}, "notes.txt: report: read json: invalid character"},
		{[]string{"diff", good, otherTool}, `other.json: report: read json: not an ipsecpath result (tool "nmap")`},
		{[]string{"diff", good, badVerdict}, `verdict.json: report: read json: result 0 (esp): unknown verdict "maybe"`},
		{[]string{"diff", good, truncated}, "cut.json: report: read json: unexpected EOF"},
		{[]string{"diff", "--bogus", good, good}, "unknown flag: --bogus"},
	}
	for _, c := range cases {
		code, out, errOut := runCLI(t, c.args...)
		if code != exitUsage || out != "" || !strings.Contains(errOut, c.want) ||
			!strings.HasPrefix(errOut, "ipsecpath diff: ") || strings.Count(errOut, "\n") != 1 {
			t.Errorf("%q: exit %d, stdout %q, stderr %q; want exit 2 and one line containing %q", c.args[1:], code, out, errOut, c.want)
		}
	}
	code, out, _ := runCLI(t, "diff", "--help")
	if code != exitOK || !strings.Contains(out, "REGRESSIONS") || !strings.Contains(out, "Examples:") {
		t.Errorf("--help: exit %d\n%s", code, out)
	}
}

// TestDiffFormats: the same difference in text, JSON, Markdown and HTML names the same
// regression; runs against different targets are refused unless --force.
func TestDiffFormats(t *testing.T) {
	dir := t.TempDir()
	good := writeReport(t, dir, "good.json", sampleReport())
	broken := sampleReport()
	broken.Results[0].Verdict = report.Dropped
	broken.Results[0].Detail = "ESP <never> reached the agent."
	brokenPath := writeReport(t, dir, "broken.json", broken)
	for format, want := range map[string][]string{
		"text":     {"REGRESSIONS", "esp  forward  pass -> dropped  ESP <never> reached the agent."},
		"json":     {`"regression": true`, `"after": "dropped"`},
		"markdown": {"## ipsecpath diff: REGRESSION", "### Regressions", "| `esp` | forward | pass | **dropped** | ESP &lt;never> reached the agent. |"},
		"html":     {"<!DOCTYPE html>", `<tr class="change" data-probe="esp" data-direction="forward">`, "ESP &lt;never&gt; reached the agent.", `<span class="badge fail">REGRESSION</span>`},
	} {
		code, out, errs := runCLI(t, "diff", "--format", format, good, brokenPath)
		if code != exitFail || errs != "" {
			t.Errorf("--format %s: exit %d, stderr %q", format, code, errs)
		}
		for _, w := range want {
			if !strings.Contains(out, w) {
				t.Errorf("--format %s lacks %q:\n%s", format, w, out)
			}
		}
	}
	if code, _, errs := runCLI(t, "diff", "--format", "junit", good, good); code != exitUsage || !strings.Contains(errs, `unknown format "junit"`) {
		t.Errorf("--format junit: exit %d, %q", code, errs)
	}
	if code, _, errs := runCLI(t, "diff", "--json", "--format", "html", good, good); code != exitUsage || !strings.Contains(errs, "contradict") {
		t.Errorf("--json --format html: exit %d, %q", code, errs)
	}
	other := sampleReport()
	other.Target = "198.51.100.7"
	otherPath := writeReport(t, dir, "other.json", other)
	code, out, errs := runCLI(t, "diff", good, otherPath)
	if code != exitUsage || out != "" || strings.Count(errs, "\n") != 1 || !strings.Contains(errs, "different targets") || !strings.Contains(errs, "--force") {
		t.Errorf("different targets: exit %d, stdout %q, stderr %q; want exit 2, one line naming --force", code, out, errs)
	}
	code, out, _ = runCLI(t, "diff", "--force", good, otherPath)
	if code != exitOK || !strings.Contains(out, "note: the two runs probed different targets") {
		t.Errorf("--force: exit %d\n%s", code, out)
	}
}
