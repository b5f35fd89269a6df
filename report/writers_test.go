package report

import (
	"bytes"
	"encoding/xml"
	"html/template"
	"os"
	"strings"
	"testing"
	"time"
)

// TestWritePage: a page that fails to render writes nothing, and each failure names the
// page it was rendering.
func TestWritePage(t *testing.T) {
	page := template.Must(template.New("t").Parse(`<p>{{.Name}}</p>`))
	var b bytes.Buffer
	if err := writePage(&b, page, struct{ Name string }{"x & y"}, "test html"); err != nil {
		t.Fatal(err)
	}
	if got, want := b.String(), "<p>x &amp; y</p>"; got != want {
		t.Errorf("page %q, want %q", got, want)
	}
	b.Reset()
	err := writePage(&b, page, struct{ Other int }{}, "test html") // no field Name: fails midway
	if err == nil || !strings.HasPrefix(err.Error(), "report: render test html: ") {
		t.Errorf("render error %v, want one starting with %q", err, "report: render test html: ")
	}
	if b.Len() != 0 {
		t.Errorf("a page that failed to render wrote %q", b.String())
	}
	err = writePage(&failWriter{}, page, struct{ Name string }{"x"}, "test html")
	if err == nil || err.Error() != "report: write test html: "+os.ErrClosed.Error() {
		t.Errorf("write error %v, want %q", err, "report: write test html: "+os.ErrClosed.Error())
	}
}

// TestWriteJUnitDocument: both JUnit forms (the check's and stateful's) are one XML
// declaration, the indented suites, and a newline; a writer that fails, at any byte, gives
// an error naming the junit write.
func TestWriteJUnitDocument(t *testing.T) {
	check := New("203.0.113.10", "", time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC))
	check.Results = []Result{{Probe: "esp", Direction: Forward, Verdict: Dropped, Detail: "ESP dropped."}}
	for _, r := range []*Report{check, statefulSample()} {
		var b bytes.Buffer
		if err := r.WriteJUnit(&b); err != nil {
			t.Fatal(err)
		}
		out := b.String()
		if !strings.HasPrefix(out, xml.Header+"<testsuites ") || !strings.HasSuffix(out, "</testsuites>\n") {
			t.Errorf("junit document not framed as declaration, suites, newline:\n%s", out)
		}
		if !strings.Contains(out, "\n  <testsuite ") {
			t.Errorf("junit suites not indented by two spaces:\n%s", out)
		}
		var s JUnitSuites
		if err := xml.Unmarshal(b.Bytes(), &s); err != nil || len(s.Suites) != 1 {
			t.Errorf("junit does not read back as one suite (%v):\n%s", err, out)
		}
		for _, n := range []int{0, len(xml.Header), b.Len() - 1} {
			err := r.WriteJUnit(&failWriter{n: n})
			if err == nil || !strings.HasPrefix(err.Error(), "report: write junit: ") {
				t.Errorf("writer failing after %d of %d bytes: error %v, want one naming the junit write", n, b.Len(), err)
			}
		}
	}
}
