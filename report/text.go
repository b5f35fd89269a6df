package report

import (
	"bufio"
	"fmt"
	"io"
	"strings"
	"unicode/utf8"
)

// TextOptions changes how WriteText prints. The zero value is plain text.
type TextOptions struct {
	// Color marks verdicts with ANSI colours (red failed, green pass, yellow skipped). Only
	// for a terminal: never set it when the output goes to a file or a pipe.
	Color bool
}

// ANSI escape sequences used when TextOptions.Color is set.
const (
	ansiRed    = "\x1b[31m"
	ansiGreen  = "\x1b[32m"
	ansiYellow = "\x1b[33m"
	ansiReset  = "\x1b[0m"
)

// textRow is one line of the table: a probe with its forward and reverse results side by side.
type textRow struct {
	probe string
	fwd   *Result
	rev   *Result
}

func (tr *textRow) results() []*Result {
	var rs []*Result
	if tr.fwd != nil {
		rs = append(rs, tr.fwd)
	}
	if tr.rev != nil {
		rs = append(rs, tr.rev)
	}
	return rs
}

func (tr *textRow) failed() bool {
	for _, res := range tr.results() {
		if res.Verdict.Failed() {
			return true
		}
	}
	return false
}

// details are the detail lines of a row: those of the directions that did not pass, or the
// first direction's when all passed. With both directions present each line names its own.
func (tr *textRow) details() []string {
	rs := tr.results()
	var pick []*Result
	for _, res := range rs {
		if res.Verdict != Pass {
			pick = append(pick, res)
		}
	}
	if len(pick) == 0 && len(rs) > 0 {
		pick = rs[:1]
	}
	var lines []string
	for _, res := range pick {
		d := resultDetail(res)
		if d == "" {
			continue
		}
		if len(rs) > 1 {
			d = string(res.Direction) + ": " + d
		}
		lines = append(lines, d)
	}
	return lines
}

// textRows groups results into rows by probe, keeping the order of first appearance, then
// moves the rows with a failed verdict to the front (their order kept). A second result for
// a (probe, direction) already in a row starts a new row; a result whose direction is
// neither forward nor reverse gets a row of its own, labelled with that direction.
func textRows(results []Result) []*textRow {
	var rows []*textRow
	open := map[string]*textRow{} // probe → the latest row for it
	for i := range results {
		res := &results[i]
		switch res.Direction {
		case Forward, Reverse:
		default:
			rows = append(rows, &textRow{probe: oneLine(res.Probe + " (" + string(res.Direction) + ")"), fwd: res})
			continue
		}
		tr := open[res.Probe]
		if tr == nil || (res.Direction == Forward && tr.fwd != nil) || (res.Direction == Reverse && tr.rev != nil) {
			tr = &textRow{probe: oneLine(res.Probe)}
			open[res.Probe] = tr
			rows = append(rows, tr)
		}
		if res.Direction == Forward {
			tr.fwd = res
		} else {
			tr.rev = res
		}
	}
	sorted := make([]*textRow, 0, len(rows))
	for _, tr := range rows {
		if tr.failed() {
			sorted = append(sorted, tr)
		}
	}
	for _, tr := range rows {
		if !tr.failed() {
			sorted = append(sorted, tr)
		}
	}
	return sorted
}

// WriteText writes r as a table a network engineer reads on a terminal: a header line
// (target, agent, start, duration), one row per probe with the forward and reverse
// verdicts side by side and the detail of what failed, failing rows first and marked
// with "!", then the path MTU and a one-line summary ending in PASS or FAIL. A "-" means
// the probe was not run in that direction (no agent: the reverse direction is not tested).
func (r *Report) WriteText(w io.Writer, opt TextOptions) error {
	if r.Stateful != nil {
		return r.writeStatefulText(w)
	}
	bw := bufio.NewWriter(w)
	agent := r.Agent
	if agent == "" {
		agent = "none (one-ended: the reverse direction is not tested)"
	}
	fmt.Fprintf(bw, "target %s, agent %s\nstarted %s, took %s\n", oneLine(r.Target), oneLine(agent), stamp(r.Started), duration(r.DurationMs))
	writeNATText(bw, r.NAT)
	fmt.Fprintln(bw)
	if r.Ladder != nil {
		if err := WriteLadderText(bw, r.Ladder); err != nil {
			return err
		}
		fmt.Fprintln(bw)
	}

	rows := textRows(r.Results)
	if len(rows) == 0 {
		fmt.Fprintln(bw, "no probe ran")
	} else {
		wp, wf, wr := len("PROBE"), len("FORWARD"), len("REVERSE")
		for _, tr := range rows {
			wp = max(wp, utf8.RuneCountInString(tr.probe))
			wf = max(wf, len(verdictCell(tr.fwd)))
			wr = max(wr, len(verdictCell(tr.rev)))
		}
		indent := 3 + wp + 2 + wf + 2 + wr + 2
		fmt.Fprintf(bw, "   %s  %s  %s  DETAIL\n", pad("PROBE", wp), pad("FORWARD", wf), pad("REVERSE", wr))
		for _, tr := range rows {
			mark := "   "
			if tr.failed() {
				mark = paint(opt, ansiRed, "!") + "  "
			}
			line := mark + pad(tr.probe, wp) + "  " + cell(opt, tr.fwd, wf) + "  " + cell(opt, tr.rev, wr)
			details := tr.details()
			if len(details) == 0 {
				fmt.Fprintln(bw, strings.TrimRight(line, " "))
				continue
			}
			fmt.Fprintf(bw, "%s  %s\n", line, details[0])
			for _, d := range details[1:] {
				fmt.Fprintf(bw, "%s%s\n", strings.Repeat(" ", indent), d)
			}
		}
	}
	fmt.Fprintln(bw)
	if l := pmtuLine(r.PMTU); l != "" {
		fmt.Fprintf(bw, "path MTU: %s\n", l)
	}
	writeTraceText(bw, r.Trace)
	s := summarize(r.Results)
	word := outcome(s)
	if r.ladderStopped() {
		fmt.Fprintf(bw, "%s: the underlay is dead (see the ladder above); no probe was sent\n", paint(opt, ansiRed, "FAIL"))
	} else if s.Fail > 0 {
		word = paint(opt, ansiRed, word)
		fmt.Fprintf(bw, "%s: %s\n", word, summaryLine(s))
	} else {
		word = paint(opt, ansiGreen, word)
		fmt.Fprintf(bw, "%s: %s\n", word, summaryLine(s))
	}
	if err := bw.Flush(); err != nil {
		return fmt.Errorf("report: write text: %w", err)
	}
	return nil
}

// verdictCell is the text of one verdict cell: the verdict, or "-" when not run that way.
func verdictCell(res *Result) string {
	if res == nil {
		return "-"
	}
	return oneLine(string(res.Verdict))
}

// cell pads a verdict cell to width, colouring the verdict (not the padding) if asked.
func cell(opt TextOptions, res *Result, width int) string {
	s := verdictCell(res)
	padding := strings.Repeat(" ", width-len(s))
	if res == nil {
		return s + padding
	}
	switch {
	case res.Verdict == Pass:
		s = paint(opt, ansiGreen, s)
	case res.Verdict == Skipped:
		s = paint(opt, ansiYellow, s)
	case res.Verdict.Failed():
		s = paint(opt, ansiRed, s)
	}
	return s + padding
}

func paint(opt TextOptions, colour, s string) string {
	if !opt.Color {
		return s
	}
	return colour + s + ansiReset
}

func pad(s string, width int) string {
	if n := utf8.RuneCountInString(s); n < width {
		return s + strings.Repeat(" ", width-n)
	}
	return s
}
