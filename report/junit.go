package report

import (
	"encoding/xml"
	"fmt"
	"io"
	"strconv"
	"strings"
)

// JUnit XML, as CI systems (Jenkins, GitLab, GitHub test reporters) read it. The element and
// attribute names follow the common JUnit schema; these types are also what tests decode
// back with encoding/xml.

// JUnitSuites is the document element: one suite per report.
type JUnitSuites struct {
	XMLName  xml.Name     `xml:"testsuites"`
	Name     string       `xml:"name,attr"`
	Tests    int          `xml:"tests,attr"`
	Failures int          `xml:"failures,attr"`
	Errors   int          `xml:"errors,attr"`
	Skipped  int          `xml:"skipped,attr"`
	Time     string       `xml:"time,attr"`
	Suites   []JUnitSuite `xml:"testsuite"`
}

// JUnitSuite is one run against one target.
type JUnitSuite struct {
	Name       string          `xml:"name,attr"`
	Tests      int             `xml:"tests,attr"`
	Failures   int             `xml:"failures,attr"`
	Errors     int             `xml:"errors,attr"`
	Skipped    int             `xml:"skipped,attr"`
	Time       string          `xml:"time,attr"`
	Timestamp  string          `xml:"timestamp,attr,omitempty"`
	Properties []JUnitProperty `xml:"properties>property,omitempty"`
	Cases      []JUnitCase     `xml:"testcase"`
}

// JUnitProperty is a name/value fact about the run: target, agent, version, path MTU.
type JUnitProperty struct {
	Name  string `xml:"name,attr"`
	Value string `xml:"value,attr"`
}

// JUnitCase is one probe in one direction: classname "ipsecpath.forward" or
// "ipsecpath.reverse", name the probe id.
type JUnitCase struct {
	ClassName string         `xml:"classname,attr"`
	Name      string         `xml:"name,attr"`
	Time      string         `xml:"time,attr,omitempty"`
	Failure   *JUnitProblem  `xml:"failure,omitempty"`
	Error     *JUnitProblem  `xml:"error,omitempty"`
	Skipped   *JUnitSkipped  `xml:"skipped,omitempty"`
	SystemOut *JUnitCharData `xml:"system-out,omitempty"`
}

// JUnitProblem is a failure (the path broke the probe) or an error (the probe could not
// run): message is the detail, type the verdict, the text the hop and evidence lines.
type JUnitProblem struct {
	Message string `xml:"message,attr"`
	Type    string `xml:"type,attr"`
	Text    string `xml:",cdata"`
}

// JUnitSkipped marks a probe that was not run; message says why.
type JUnitSkipped struct {
	Message string `xml:"message,attr,omitempty"`
}

// JUnitCharData is element text, used for the evidence of passed probes. Element texts are
// written as CDATA so that the evidence keeps one line per fact when read raw.
type JUnitCharData struct {
	Text string `xml:",cdata"`
}

// JUnit builds the JUnit document for r: one testcase per result. Dropped, blocked,
// frag-dropped and partial are failures, error is an error, skipped is <skipped/>; a
// failure's message is the detail, its type the verdict, its text the hop and evidence.
func (r *Report) JUnit() *JUnitSuites {
	secs := strconv.FormatFloat(float64(r.DurationMs)/1000, 'f', 3, 64)
	suite := JUnitSuite{
		Name: xmlSafe("ipsecpath " + r.Target),
		Time: secs,
		Properties: []JUnitProperty{
			{Name: "target", Value: xmlSafe(r.Target)},
			{Name: "agent", Value: xmlSafe(r.Agent)},
			{Name: "version", Value: xmlSafe(r.Version)},
		},
		Cases: make([]JUnitCase, 0, len(r.Results)),
	}
	if !r.Started.IsZero() {
		suite.Timestamp = r.Started.UTC().Format("2006-01-02T15:04:05")
	}
	if r.PMTU != nil && r.PMTU.Forward != nil {
		suite.Properties = append(suite.Properties, JUnitProperty{Name: "pmtu.forward", Value: xmlSafe(r.PMTU.Forward.String())})
	}
	if r.PMTU != nil && r.PMTU.Reverse != nil {
		suite.Properties = append(suite.Properties, JUnitProperty{Name: "pmtu.reverse", Value: xmlSafe(r.PMTU.Reverse.String())})
	}
	if c, ok := ladderCase(r.Ladder); ok {
		suite.Tests++
		if c.Failure != nil {
			suite.Failures++
		}
		suite.Cases = append(suite.Cases, c)
	}
	for i := range r.Results {
		res := &r.Results[i]
		c := JUnitCase{ClassName: xmlSafe("ipsecpath." + string(res.Direction)), Name: xmlSafe(res.Probe)}
		if res.Evidence.RTTms > 0 {
			c.Time = strconv.FormatFloat(res.Evidence.RTTms/1000, 'f', 6, 64)
		}
		var body []string
		if res.Hop != nil {
			body = append(body, "hop: "+res.Hop.String())
		}
		body = append(body, res.Evidence.Lines()...)
		text := xmlSafe(strings.Join(body, "\n"))
		detail := xmlSafe(oneLine(res.Detail))
		suite.Tests++
		switch {
		case res.Verdict == Skipped:
			suite.Skipped++
			c.Skipped = &JUnitSkipped{Message: detail}
		case res.Verdict == Error:
			suite.Errors++
			c.Error = &JUnitProblem{Message: detail, Type: string(res.Verdict), Text: text}
		case res.Verdict.Failed():
			suite.Failures++
			c.Failure = &JUnitProblem{Message: detail, Type: xmlSafe(string(res.Verdict)), Text: text}
		case res.Verdict == Pass:
			if text != "" || detail != "" {
				c.SystemOut = &JUnitCharData{Text: strings.TrimSpace(detail + "\n" + text)}
			}
		default: // not a contract verdict: say so rather than call it a pass
			suite.Errors++
			c.Error = &JUnitProblem{Message: "unknown verdict " + strconv.Quote(string(res.Verdict)), Type: "error", Text: text}
		}
		suite.Cases = append(suite.Cases, c)
	}
	return &JUnitSuites{Name: "ipsecpath", Tests: suite.Tests, Failures: suite.Failures, Errors: suite.Errors,
		Skipped: suite.Skipped, Time: secs, Suites: []JUnitSuite{suite}}
}

// WriteJUnit writes r as a JUnit XML document (see JUnit), with an XML declaration.
func (r *Report) WriteJUnit(w io.Writer) error {
	if r.Stateful != nil {
		return writeJUnit(w, r.statefulJUnit())
	}
	return writeJUnit(w, r.JUnit())
}

// writeJUnit writes doc as an indented XML document: the XML declaration, the suites, a
// final newline.
func writeJUnit(w io.Writer, doc *JUnitSuites) error {
	if _, err := io.WriteString(w, xml.Header); err != nil {
		return fmt.Errorf("report: write junit: %w", err)
	}
	enc := xml.NewEncoder(w)
	enc.Indent("", "  ")
	if err := enc.Encode(doc); err != nil {
		return fmt.Errorf("report: write junit: %w", err)
	}
	if err := enc.Close(); err != nil {
		return fmt.Errorf("report: write junit: %w", err)
	}
	if _, err := io.WriteString(w, "\n"); err != nil {
		return fmt.Errorf("report: write junit: %w", err)
	}
	return nil
}

// xmlSafe drops what XML 1.0 cannot carry at all (most control characters, invalid UTF-8,
// U+FFFE/U+FFFF), which encoding/xml would otherwise write as U+FFFD or reject on reading.
func xmlSafe(s string) string {
	return strings.Map(func(r rune) rune {
		switch {
		case r == '\t' || r == '\n' || r == '\r':
			return r
		case r < 0x20, r == 0xFFFE, r == 0xFFFF:
			return -1
		}
		return r
	}, strings.ToValidUTF8(s, ""))
}
