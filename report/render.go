package report

import (
	"fmt"
	"io"
	"strconv"
	"strings"
	"time"
)

// The output formats Render knows. The names are what --format takes.
const (
	FormatText     = "text"     // an aligned table for a terminal
	FormatJSON     = "json"     // the JSON contract (WriteJSON)
	FormatMarkdown = "markdown" // a table and the evidence of failures, for a ticket
	FormatJUnit    = "junit"    // JUnit XML: one testcase per probe and direction, for CI
	// FormatHTML (html.go) is a self-contained page with the path drawn.
)

// Formats lists the formats Render accepts, in the order help texts name them.
var Formats = []string{FormatText, FormatJSON, FormatMarkdown, FormatJUnit, FormatHTML}

// CheckFormat returns nil if format is one Render accepts, and otherwise an error that
// lists the valid ones.
func CheckFormat(format string) error {
	for _, f := range Formats {
		if format == f {
			return nil
		}
	}
	return fmt.Errorf("report: unknown format %q (valid: %s)", format, strings.Join(Formats, ", "))
}

// Render writes r to w in format (one of Formats). The text form has no colour; use
// WriteText for that.
func Render(w io.Writer, r *Report, format string) error {
	if err := CheckFormat(format); err != nil {
		return err
	}
	if r == nil {
		return fmt.Errorf("report: render %s: no report", format)
	}
	switch format {
	case FormatText:
		return r.WriteText(w, TextOptions{})
	case FormatJSON:
		return r.WriteJSON(w)
	case FormatMarkdown:
		return r.WriteMarkdown(w)
	case FormatHTML:
		return r.WriteHTML(w, HTMLOptions{})
	default: // FormatJUnit; CheckFormat ruled out the rest
		return r.WriteJUnit(w)
	}
}

// Bracketed reports whether h carries a traced bracket (last hop reached, first missed).
func (h *Hop) Bracketed() bool {
	return h != nil && h.Bracket != nil && (h.LastReached != nil || h.FirstMissed != nil)
}

// String gives a hop as a network engineer reads it: "hop 2 (192.0.2.66)", or
// "hop 2 (no answer)" when the router there stayed silent, "about hop 2 (estimated from the
// TTL)" when only a packet's TTL placed it.
func (h *Hop) String() string {
	if h == nil {
		return ""
	}
	if h.Bracketed() {
		b := h.Bracket
		if b.LastReached == nil {
			return "between hop 0 (the sender) and " + b.FirstMissed.String()
		}
		return b.Between()
	}
	if h.Estimated && h.Addr == "" {
		return "about hop " + strconv.Itoa(h.TTL) + " (estimated from the TTL)"
	}
	if h.Addr == "" {
		return "hop " + strconv.Itoa(h.TTL) + " (no answer)"
	}
	if h.Estimated {
		return "about hop " + strconv.Itoa(h.TTL) + " (" + h.Addr + ", estimated from the TTL)"
	}
	return "hop " + strconv.Itoa(h.TTL) + " (" + h.Addr + ")"
}

// String gives one fragment as "offset+length", with " MF" when more fragments follow,
// and the TTL and DF the agent saw when known: "1480+1480 MF ttl 62".
func (f Fragment) String() string {
	var b strings.Builder
	b.WriteString(strconv.Itoa(f.Offset))
	b.WriteByte('+')
	b.WriteString(strconv.Itoa(f.Length))
	if f.More {
		b.WriteString(" MF")
	}
	if f.DF {
		b.WriteString(" DF")
	}
	if f.TTL != 0 {
		b.WriteString(" ttl ")
		b.WriteString(strconv.Itoa(f.TTL))
	}
	return b.String()
}

// fragmentList joins fragments for one evidence line: "3: 0+1480 MF, 1480+1480 MF, 2960+48".
func fragmentList(fs []Fragment) string {
	parts := make([]string, len(fs))
	for i, f := range fs {
		parts[i] = f.String()
	}
	return strconv.Itoa(len(fs)) + ": " + strings.Join(parts, ", ")
}

// String gives a path MTU as "1400, black hole from hop 2 (192.0.2.66)".
func (p *PathMTU) String() string {
	if p == nil {
		return "not measured"
	}
	s := strconv.Itoa(p.MTU)
	if p.Unfinished != "" {
		return "at least " + s + " (search unfinished)"
	}
	if p.Blackhole {
		s += ", black hole"
		switch {
		case p.Hop.Bracketed():
			s += " " + p.Hop.String() // "between 198.51.100.1 (hop 1) and hop 2 (address unknown)"
		case p.Hop != nil:
			s += " from " + p.Hop.String()
		}
	}
	return s
}

// pmtuLine gives both directions of a path MTU in one line, or "" when none was measured.
func pmtuLine(p *PMTU) string {
	if p == nil || (p.Forward == nil && p.Reverse == nil) {
		return ""
	}
	var parts []string
	if p.Forward != nil {
		parts = append(parts, "forward "+p.Forward.String())
	}
	if p.Reverse != nil {
		parts = append(parts, "reverse "+p.Reverse.String())
	}
	return strings.Join(parts, "; ")
}

// Lines lists what a verdict rests on, one "name: value" line per measured field, in the
// order an engineer checks them. Fields that were not measured give no line.
func (e Evidence) Lines() []string {
	var l []string
	add := func(name, value string) { l = append(l, name+": "+value) }
	if e.Size > 0 {
		add("size", strconv.Itoa(e.Size)+" bytes on the wire")
	}
	switch {
	case e.SourcePort > 0 && e.DestPort > 0:
		add("ports", strconv.Itoa(e.SourcePort)+" -> "+strconv.Itoa(e.DestPort))
	case e.DestPort > 0:
		add("destination port", strconv.Itoa(e.DestPort))
	case e.SourcePort > 0:
		add("source port", strconv.Itoa(e.SourcePort))
	}
	if e.Attempts > 0 {
		add("attempts", strconv.Itoa(e.Attempts))
	}
	if e.FragmentSize > 0 {
		add("largest fragment", strconv.Itoa(e.FragmentSize)+" bytes")
	}
	if len(e.FragmentsSent) > 0 {
		add("fragments sent", fragmentList(e.FragmentsSent))
	}
	if len(e.FragmentsSeen) > 0 {
		add("fragments seen", fragmentList(e.FragmentsSeen))
	}
	if e.AgentSaw != nil {
		if *e.AgentSaw {
			add("agent saw it", "yes")
		} else {
			add("agent saw it", "no")
		}
	}
	if e.ICMP != nil {
		s := "type " + strconv.Itoa(e.ICMP.Type) + " code " + strconv.Itoa(e.ICMP.Code)
		if e.ICMP.From != "" {
			s += " from " + e.ICMP.From
		}
		if e.ICMP.MTU > 0 {
			s += ", next-hop MTU " + strconv.Itoa(e.ICMP.MTU)
		}
		if e.ICMP.Text != "" {
			s += " (" + e.ICMP.Text + ")"
		}
		add("icmp", s)
	}
	if e.Answer != "" || e.AnsweredBy != "" {
		s := e.Answer
		if s == "" {
			s = "answer"
		}
		if e.AnsweredBy != "" {
			s += " from " + e.AnsweredBy
		}
		add("answer", s)
	}
	if e.RTTms > 0 {
		add("rtt", strconv.FormatFloat(e.RTTms, 'f', -1, 64)+" ms")
	}
	if e.ResponderAddr != "" {
		add("responder", e.ResponderAddr)
	}
	if e.Compared != "" {
		add("compared with", e.Compared)
	}
	if e.Inferred != "" {
		add("inferred", e.Inferred)
	}
	if e.ProbeID != 0 {
		add("probe nonce", fmt.Sprintf("0x%08x", e.ProbeID))
	}
	if e.Extra != "" {
		add("note", e.Extra)
	}
	return append(l, e.TLS.lines()...)
}

// lines lists a tls probe's handshake evidence, one "name: value" line per field seen.
func (t *TLS) lines() []string {
	if t == nil {
		return nil
	}
	var l []string
	add := func(name, value string) { l = append(l, name+": "+value) }
	add("tls step reached", t.Step)
	if t.Proxy != "" {
		s := t.Proxy
		if t.ProxyStatus != "" {
			s += " answered " + strconv.Quote(t.ProxyStatus)
		}
		add("proxy", s)
	}
	if t.SNI != "" {
		add("sni", t.SNI)
	}
	if t.ClientHelloSize > 0 {
		add("client hello", strconv.Itoa(t.ClientHelloSize)+" bytes")
	}
	if t.Version != "" || t.Cipher != "" {
		add("tls", strings.TrimSpace(t.Version+" "+t.Cipher))
	}
	if t.Alert != "" {
		add("tls alert from the server", t.Alert)
	}
	if t.Subject != "" || t.Issuer != "" {
		s := strconv.Quote(t.Subject)
		if t.Issuer != "" {
			s += " issued by " + strconv.Quote(t.Issuer)
		}
		if t.NotBefore != "" || t.NotAfter != "" {
			s += ", valid " + t.NotBefore + " to " + t.NotAfter
		}
		add("server certificate", s)
	}
	if t.VerifyError != "" {
		add("certificate refused by us", t.VerifyError)
	}
	if t.ResetTTL > 0 {
		add("reset arrived with ttl", strconv.Itoa(t.ResetTTL))
	}
	return l
}

// summarize counts r's verdicts without touching r (renderers must not change what they print).
func summarize(results []Result) Summary {
	var s Summary
	for _, res := range results {
		switch {
		case res.Verdict == Pass:
			s.Pass++
		case res.Verdict == Skipped:
			s.Skipped++
		case res.Verdict.Failed():
			s.Fail++
		}
	}
	return s
}

// summaryLine gives the counts as "2 failed, 9 passed, 1 skipped", naming failures first.
func summaryLine(s Summary) string {
	return strconv.Itoa(s.Fail) + " failed, " + strconv.Itoa(s.Pass) + " passed, " +
		strconv.Itoa(s.Skipped) + " skipped"
}

// outcome is the one-word outcome of a run: FAIL when any verdict failed, else PASS.
func outcome(s Summary) string {
	if s.Fail > 0 {
		return "FAIL"
	}
	return "PASS"
}

// duration gives a run's duration in milliseconds the way people say it: "850 ms", "1.84 s".
func duration(ms int64) string {
	if ms < 1000 {
		return strconv.FormatInt(ms, 10) + " ms"
	}
	return strconv.FormatFloat(float64(ms)/1000, 'f', 2, 64) + " s"
}

// stamp formats the start of a run in UTC, to the second.
func stamp(t time.Time) string {
	if t.IsZero() {
		return "unknown"
	}
	return t.UTC().Format("2006-01-02 15:04:05 UTC")
}

// resultDetail is a result's detail with the hop appended when the fault was localised.
func resultDetail(res *Result) string {
	d := oneLine(res.Detail)
	if res.Hop != nil {
		h := res.Hop.String()
		if !strings.HasPrefix(h, "between ") && !strings.HasPrefix(h, "after ") {
			h = "at " + h
		}
		if d == "" {
			return h
		}
		return d + " [" + h + "]"
	}
	return d
}

// oneLine makes s fit on one line: control characters (newlines, escapes) become spaces,
// so that a detail can neither break a table nor smuggle terminal escapes into it.
func oneLine(s string) string {
	s = strings.Map(func(r rune) rune {
		if r < 0x20 || r == 0x7f {
			return ' '
		}
		return r
	}, s)
	return strings.TrimSpace(s)
}
