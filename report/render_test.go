package report

import (
	"bytes"
	"encoding/xml"
	"flag"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"strings"
	"testing"
	"time"
)

var update = flag.Bool("update", false, "rewrite the testdata/*.golden files from the current output")

// goldenReports are the runs the golden files are made from: one with an agent (both
// directions, every kind of verdict, a localised hop, a PMTU black hole) and one without.
var goldenReports = []string{"frag-drop", "one-ended"}

func loadReport(t testing.TB, name string) *Report {
	t.Helper()
	f, err := os.Open(filepath.Join("testdata", name+".json"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	r, err := ReadJSON(f)
	if err != nil {
		t.Fatalf("%s: %v", name, err)
	}
	return r
}

// checkGolden compares got with testdata/file, or rewrites the file under -update.
func checkGolden(t *testing.T, file string, got []byte) {
	t.Helper()
	path := filepath.Join("testdata", file)
	if *update {
		if err := os.WriteFile(path, got, 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run 'go test ./report -run %s -update' to create it)", err, t.Name())
	}
	if !bytes.Equal(got, want) {
		t.Errorf("%s differs from the output (go test ./report -update rewrites it)\n--- got\n%s\n--- want\n%s", path, got, want)
	}
}

func TestRenderGolden(t *testing.T) {
	for _, name := range goldenReports {
		for _, format := range []string{FormatText, FormatMarkdown, FormatJUnit} {
			t.Run(name+"/"+format, func(t *testing.T) {
				var buf bytes.Buffer
				if err := Render(&buf, loadReport(t, name), format); err != nil {
					t.Fatal(err)
				}
				checkGolden(t, name+"."+format+".golden", buf.Bytes())
			})
		}
	}
}

var ansi = regexp.MustCompile("\x1b\\[[0-9;]*m")

func TestTextColour(t *testing.T) {
	r := loadReport(t, "frag-drop")
	var plain, coloured bytes.Buffer
	if err := r.WriteText(&plain, TextOptions{}); err != nil {
		t.Fatal(err)
	}
	if err := r.WriteText(&coloured, TextOptions{Color: true}); err != nil {
		t.Fatal(err)
	}
	if bytes.Contains(plain.Bytes(), []byte("\x1b")) {
		t.Error("plain text holds an escape sequence")
	}
	for _, want := range []string{ansiRed + "frag-dropped" + ansiReset, ansiGreen + "pass" + ansiReset, ansiYellow + "skipped" + ansiReset, ansiRed + "FAIL" + ansiReset} {
		if !strings.Contains(coloured.String(), want) {
			t.Errorf("coloured text lacks %q", want)
		}
	}
	// colour changes nothing but the escapes: the columns stay aligned
	if got := ansi.ReplaceAllString(coloured.String(), ""); got != plain.String() {
		t.Errorf("coloured text without its escapes differs from the plain text:\n%s\n---\n%s", got, plain.String())
	}
}

func TestTextLayout(t *testing.T) {
	r := New("203.0.113.10", "203.0.113.10:7500", time.Date(2026, 11, 23, 9, 0, 0, 0, time.UTC))
	add := func(probe string, dir Direction, v Verdict, detail string) {
		r.Add(Result{Probe: probe, Direction: dir, Verdict: v, Detail: detail})
	}
	add("ike", Forward, Pass, "ok")
	add("natt", Reverse, Dropped, "reverse natt dropped")
	add("natt", Forward, Pass, "forward natt ok")
	add("ike", Forward, Blocked, "a second ike run\nwith a newline and an \x1b[2J escape")
	add("tcp:445", Forward, Skipped, "not asked for")
	add("odd", "sideways", Pass, "unknown direction")
	var buf bytes.Buffer
	if err := r.WriteText(&buf, TextOptions{}); err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(buf.String(), "\n")
	var table []string
	for i, l := range lines {
		if strings.HasPrefix(l, "   PROBE") {
			for _, row := range lines[i:] {
				if row == "" {
					break
				}
				table = append(table, row)
			}
			break
		}
	}
	want := []string{
		"   PROBE           FORWARD  REVERSE  DETAIL",
		"!  natt            pass     dropped  reverse: reverse natt dropped",
		"!  ike             blocked  -        a second ike run with a newline and an  [2J escape",
		"   ike             pass     -        ok",
		"   tcp:445         skipped  -        not asked for",
		"   odd (sideways)  pass     -        unknown direction",
	}
	if !reflect.DeepEqual(table, want) {
		t.Errorf("table:\n%s\nwant:\n%s", strings.Join(table, "\n"), strings.Join(want, "\n"))
	}
	if !strings.HasSuffix(buf.String(), "\nFAIL: 2 failed, 3 passed, 1 skipped\n") {
		t.Errorf("summary line wrong:\n%s", buf.String())
	}

	empty := New("203.0.113.10", "", time.Time{})
	buf.Reset()
	if err := empty.WriteText(&buf, TextOptions{}); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(buf.String(), "no probe ran") || !strings.Contains(buf.String(), "PASS: 0 failed") {
		t.Errorf("empty report:\n%s", buf.String())
	}
}

// unescapedPipes counts the cell separators of a Markdown table row.
func unescapedPipes(row string) int {
	n := 0
	for i := 0; i < len(row); i++ {
		switch row[i] {
		case '\\':
			i++
		case '|':
			n++
		}
	}
	return n
}

func TestMarkdownEscapes(t *testing.T) {
	r := New("203.0.113.10", "", time.Time{})
	r.Add(Result{Probe: "esp|x", Direction: Forward, Verdict: Dropped,
		Detail:   "a | pipe, a *star*, <b>html</b>, [link](x), `code`\nand a newline",
		Evidence: Evidence{Extra: "evidence with | and\nnewline"}})
	var buf bytes.Buffer
	if err := r.WriteMarkdown(&buf); err != nil {
		t.Fatal(err)
	}
	out := buf.String()
	rows := 0
	for _, l := range strings.Split(out, "\n") {
		if strings.HasPrefix(l, "|") {
			rows++
			if n := unescapedPipes(l); n != 6 {
				t.Errorf("row has %d cell separators, want 6: %s", n, l)
			}
		}
	}
	if rows != 3 {
		t.Errorf("%d table rows, want header, rule and one result:\n%s", rows, out)
	}
	for _, bad := range []string{"<b>", " *star*", "[link](x)"} {
		if strings.Contains(out, bad) {
			t.Errorf("markup %q got through:\n%s", bad, out)
		}
	}
	if !strings.Contains(out, "- note: evidence with \\| and newline") {
		t.Errorf("evidence line not escaped onto one line:\n%s", out)
	}
}

func TestJUnitParsesBack(t *testing.T) {
	r := loadReport(t, "frag-drop")
	// hostile text must still give well-formed XML
	r.Add(Result{Probe: "ike\x00]]>", Direction: Forward, Verdict: Partial, Detail: "bad \xff utf-8 and \x07 bell ]]> end",
		Evidence: Evidence{Extra: "cdata end ]]> inside, <tag> & amp"}})
	var buf bytes.Buffer
	if err := r.WriteJUnit(&buf); err != nil {
		t.Fatal(err)
	}
	var doc JUnitSuites
	if err := xml.Unmarshal(buf.Bytes(), &doc); err != nil {
		t.Fatalf("junit output is not XML: %v\n%s", err, buf.String())
	}
	if len(doc.Suites) != 1 {
		t.Fatalf("%d suites, want 1", len(doc.Suites))
	}
	s := doc.Suites[0]
	var fail, errs, skip int
	for _, res := range r.Results {
		switch {
		case res.Verdict == Skipped:
			skip++
		case res.Verdict == Error:
			errs++
		case res.Verdict.Failed():
			fail++
		}
	}
	if s.Tests != len(r.Results) || s.Failures != fail || s.Errors != errs || s.Skipped != skip || len(s.Cases) != len(r.Results) {
		t.Errorf("suite counts tests=%d failures=%d errors=%d skipped=%d cases=%d, want %d %d %d %d %d",
			s.Tests, s.Failures, s.Errors, s.Skipped, len(s.Cases), len(r.Results), fail, errs, skip, len(r.Results))
	}
	if doc.Tests != s.Tests || doc.Failures != s.Failures {
		t.Errorf("testsuites totals %d/%d differ from the suite's %d/%d", doc.Tests, doc.Failures, s.Tests, s.Failures)
	}
	for i, c := range s.Cases {
		res := r.Results[i]
		if c.ClassName != "ipsecpath."+string(res.Direction) {
			t.Errorf("case %d classname %q", i, c.ClassName)
		}
		switch {
		case res.Verdict == Pass:
			if c.Failure != nil || c.Error != nil || c.Skipped != nil {
				t.Errorf("case %d (%s %s) pass but marked %+v", i, res.Probe, res.Direction, c)
			}
		case res.Verdict == Skipped:
			if c.Skipped == nil || c.Skipped.Message != res.Detail {
				t.Errorf("case %d skipped: %+v", i, c.Skipped)
			}
		case res.Verdict == Error:
			if c.Error == nil || c.Error.Message != res.Detail {
				t.Errorf("case %d error: %+v", i, c.Error)
			}
		default:
			if c.Failure == nil || c.Failure.Type != string(res.Verdict) {
				t.Fatalf("case %d (%s %s %s): failure %+v", i, res.Probe, res.Direction, res.Verdict, c.Failure)
			}
			if i < len(r.Results)-1 && c.Failure.Message != res.Detail {
				t.Errorf("case %d failure message %q, want the detail %q", i, c.Failure.Message, res.Detail)
			}
			for _, l := range res.Evidence.Lines() {
				if i < len(r.Results)-1 && !strings.Contains(c.Failure.Text, l) {
					t.Errorf("case %d failure text lacks evidence %q:\n%s", i, l, c.Failure.Text)
				}
			}
			if res.Hop != nil && !strings.Contains(c.Failure.Text, "hop: "+res.Hop.String()) {
				t.Errorf("case %d failure text lacks the hop:\n%s", i, c.Failure.Text)
			}
		}
	}
	last := s.Cases[len(s.Cases)-1]
	if last.Name != "ike]]>" || last.Failure == nil || !strings.Contains(last.Failure.Text, "cdata end ]]> inside, <tag> & amp") {
		t.Errorf("hostile case did not survive: %+v", last)
	}
}

func TestJSONRoundTrip(t *testing.T) {
	for _, name := range goldenReports {
		r := loadReport(t, name)
		var buf bytes.Buffer
		if err := Render(&buf, r, FormatJSON); err != nil {
			t.Fatal(err)
		}
		back, err := ReadJSON(&buf)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if !reflect.DeepEqual(back, r) {
			t.Errorf("%s: round trip changed the report:\n got %+v\nwant %+v", name, back, r)
		}
	}
}

func TestRenderRejects(t *testing.T) {
	err := Render(&bytes.Buffer{}, loadReport(t, "one-ended"), "yaml")
	if err == nil || !strings.Contains(err.Error(), "text, json, markdown, junit") {
		t.Errorf("unknown format: %v", err)
	}
	if err := Render(&bytes.Buffer{}, nil, FormatText); err == nil {
		t.Error("nil report rendered")
	}
	for _, f := range Formats {
		if err := CheckFormat(f); err != nil {
			t.Errorf("CheckFormat(%q): %v", f, err)
		}
	}
}

// FuzzRender feeds arbitrary JSON through ReadJSON and every renderer: no panic, JUnit
// stays well-formed XML, the text (without colour) and Markdown never carry control
// characters other than newlines, and every Markdown table row has exactly six separators.
func FuzzRender(f *testing.F) {
	for _, name := range goldenReports {
		b, err := os.ReadFile(filepath.Join("testdata", name+".json"))
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	f.Add([]byte(`{"tool":"ipsecpath","results":[{"probe":"a|b\u0000","direction":"x\n","verdict":"pass","detail":"]]>\u001b[31m","hop":{"ttl":-1}}]}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		r, err := ReadJSON(bytes.NewReader(data))
		if err != nil {
			return
		}
		for _, format := range Formats {
			var buf bytes.Buffer
			if err := Render(&buf, r, format); err != nil {
				t.Fatalf("%s: %v", format, err)
			}
			out := buf.String()
			switch format {
			case FormatJUnit:
				var doc JUnitSuites
				if err := xml.Unmarshal(buf.Bytes(), &doc); err != nil {
					t.Fatalf("junit is not XML: %v\n%s", err, out)
				}
			case FormatText, FormatMarkdown:
				for _, c := range out {
					if (c < 0x20 && c != '\n') || c == 0x7f {
						t.Fatalf("%s output holds control character %q:\n%q", format, c, out)
					}
				}
				if format == FormatMarkdown {
					for _, l := range strings.Split(out, "\n") {
						if strings.HasPrefix(l, "|") && unescapedPipes(l) != 6 {
							t.Fatalf("markdown row with %d separators: %s", unescapedPipes(l), l)
						}
					}
				}
			}
		}
		d := Diff(r, r)
		if d.Regression || d.Unchanged != len(r.Results) {
			t.Fatalf("a run diffed with itself: regression %v, unchanged %d of %d", d.Regression, d.Unchanged, len(r.Results))
		}
	})
}

func BenchmarkRender(b *testing.B) {
	r := loadReport(b, "frag-drop")
	for _, format := range Formats {
		b.Run(format, func(b *testing.B) {
			b.ReportAllocs()
			var buf bytes.Buffer
			for b.Loop() {
				buf.Reset()
				if err := Render(&buf, r, format); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// TestHopAndPathMTUStrings: a hop placed only by a packet's TTL reads as an estimate, and a
// path MTU search that did not settle reads as a lower bound, never as a finding.
func TestHopAndPathMTUStrings(t *testing.T) {
	for _, c := range []struct {
		got, want string
	}{
		{(&Hop{TTL: 2, Addr: "192.0.2.66"}).String(), "hop 2 (192.0.2.66)"},
		{(&Hop{TTL: 2}).String(), "hop 2 (no answer)"},
		{(&Hop{TTL: 2, Estimated: true}).String(), "about hop 2 (estimated from the TTL)"},
		{(&PathMTU{MTU: 1300, Blackhole: true, Hop: &Hop{TTL: 1, Addr: "203.0.113.1"}}).String(), "1300, black hole from hop 1 (203.0.113.1)"},
		{(&PathMTU{MTU: 1300, Unfinished: "time budget of 2s spent"}).String(), "at least 1300 (search unfinished)"},
	} {
		if c.got != c.want {
			t.Errorf("%q, want %q", c.got, c.want)
		}
	}
}
