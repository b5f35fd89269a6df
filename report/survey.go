package report

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"strings"
	"time"
)

// TargetStatus is what a survey says about one target as a whole.
type TargetStatus string

const (
	// TargetPass: the check ran and no verdict failed.
	TargetPass TargetStatus = "pass"
	// TargetFail: the check ran and at least one verdict failed (the matrix says which).
	TargetFail TargetStatus = "fail"
	// TargetSilent: the check ran and nothing at all came back, neither from the target nor
	// from a device on the path (no answer, no ICMP error, no reset, nothing the agent saw):
	// the host is down, the address is wrong, or every probe is filtered without a word.
	TargetSilent TargetStatus = "silent"
	// TargetError: the check could not run (agent unreachable or refusing the key, no route,
	// no privilege); Error says why.
	TargetError TargetStatus = "error"
)

// Failed reports whether s counts as a failed target (the survey then exits 1).
func (s TargetStatus) Failed() bool { return s != TargetPass }

// Survey is the result of `ipsecpath survey`: one check per target, run in parallel.
type Survey struct {
	Tool       string         `json:"tool"`
	Version    string         `json:"version"`
	Kind       string         `json:"kind"` // always "survey"
	Started    time.Time      `json:"started"`
	DurationMs int64          `json:"duration_ms"`
	Parallel   int            `json:"parallel"`          // checks that ran at once, at most
	Pace       int            `json:"pace"`              // packets/s all checks together send, at most
	TargetPace int            `json:"target_pace"`       // packets/s each check was given
	Targets    []SurveyTarget `json:"targets"`           // in the order of the targets file
	Summary    SurveySummary  `json:"summary"`           // targets per status
	OutDir     string         `json:"out_dir,omitempty"` // where the per-target reports went
}

// SurveyTarget is one line of the targets file and what its check found.
type SurveyTarget struct {
	Label  string       `json:"label,omitempty"`
	Target string       `json:"target"`
	Agent  string       `json:"agent,omitempty"`
	Netns  string       `json:"netns,omitempty"` // the network namespace the check ran in
	Status TargetStatus `json:"status"`
	Error  string       `json:"error,omitempty"` // why the check could not run (status error)
	File   string       `json:"file,omitempty"`  // its report for `ipsecpath diff` (--out-dir)
	Report *Report      `json:"report,omitempty"`
}

// Name is how the matrix names t: its label and address, or the address alone.
func (t *SurveyTarget) Name() string {
	if t.Label == "" {
		return t.Target
	}
	return t.Label + " " + t.Target
}

// SurveySummary counts targets per status.
type SurveySummary struct {
	Targets int `json:"targets"`
	Pass    int `json:"pass"`
	Fail    int `json:"fail"`
	Silent  int `json:"silent"`
	Error   int `json:"error"`
}

// Failed reports whether any target failed.
func (s *Survey) Failed() bool {
	for _, t := range s.Targets {
		if t.Status.Failed() {
			return true
		}
	}
	return false
}

// Summarize recounts the summary.
func (s *Survey) Summarize() {
	sum := SurveySummary{Targets: len(s.Targets)}
	for _, t := range s.Targets {
		switch t.Status {
		case TargetPass:
			sum.Pass++
		case TargetFail:
			sum.Fail++
		case TargetSilent:
			sum.Silent++
		case TargetError:
			sum.Error++
		}
	}
	s.Summary = sum
}

// StatusOf judges a finished check's report as a whole: silent when nothing came back at
// all, fail when a verdict failed, else pass.
func StatusOf(r *Report) TargetStatus {
	if r == nil {
		return TargetError
	}
	if Silent(r) {
		return TargetSilent
	}
	if r.Failed() {
		return TargetFail
	}
	return TargetPass
}

// Silent reports whether nothing at all came back during r's run: no result passed, no
// answer, ICMP error or reset was recorded, the agent saw nothing, and no path MTU was
// measured. A run whose probes were all skipped is not silent (nothing was asked).
func Silent(r *Report) bool {
	asked := false
	for _, res := range r.Results {
		switch res.Verdict {
		case Pass, Blocked, FragDropped, Partial:
			return false // each of these rests on something that came back or arrived
		case Dropped:
			asked = true
		}
		e := res.Evidence
		if e.ICMP != nil || e.Answer != "" || e.AnsweredBy != "" || len(e.FragmentsSeen) > 0 || (e.AgentSaw != nil && *e.AgentSaw) {
			return false
		}
	}
	if r.PMTU != nil && ((r.PMTU.Forward != nil && r.PMTU.Forward.MTU > 0) || (r.PMTU.Reverse != nil && r.PMTU.Reverse.MTU > 0)) {
		return false
	}
	return asked
}

// WriteJSON writes the survey in its JSON form, indented, with a final newline.
func (s *Survey) WriteJSON(w io.Writer) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	if err := enc.Encode(s); err != nil {
		return fmt.Errorf("report: write survey json: %w", err)
	}
	return nil
}

// matrixCell abbreviates a verdict for the matrix; failures in capitals.
var matrixCell = map[Verdict]string{
	Pass: "pass", Dropped: "DROP", Blocked: "BLOCK", FragDropped: "FRAG", Partial: "PART",
	Error: "ERR", Skipped: "skip",
}

// matrixLegend explains matrixCell.
const matrixLegend = "pass: arrived · DROP: dropped (silence) · BLOCK: refused (ICMP error or reset) · " +
	"FRAG: frag-dropped · PART: some fragments lost · ERR: could not run · skip: skipped · -: not asked"

// surveyRow is one line of the matrix: a target in one direction.
type surveyRow struct {
	t     *SurveyTarget
	dir   Direction
	cells map[string]Verdict
}

// matrix returns the probe columns (in the order the reports list them) and the rows: per
// target its forward row, and its reverse row when it has reverse results.
func (s *Survey) matrix() ([]string, []surveyRow) {
	var cols []string
	seen := map[string]bool{}
	var rows []surveyRow
	for i := range s.Targets {
		t := &s.Targets[i]
		fwd := surveyRow{t: t, dir: Forward, cells: map[string]Verdict{}}
		rev := surveyRow{t: t, dir: Reverse, cells: map[string]Verdict{}}
		if t.Report != nil {
			for _, res := range t.Report.Results {
				if !seen[res.Probe] {
					seen[res.Probe] = true
					cols = append(cols, res.Probe)
				}
				if res.Direction == Reverse {
					rev.cells[res.Probe] = res.Verdict
				} else {
					fwd.cells[res.Probe] = res.Verdict
				}
			}
		}
		rows = append(rows, fwd)
		if len(rev.cells) > 0 {
			rows = append(rows, rev)
		}
	}
	return cols, rows
}

// statusText is the last column of a target's first row.
func statusText(t *SurveyTarget) string {
	switch t.Status {
	case TargetSilent:
		return "SILENT: nothing came back from the target or the path (host down, wrong address, or filtered without a word)"
	case TargetError:
		return "ERROR: the check could not run: " + oneLine(t.Error)
	case TargetFail:
		n := 0
		if t.Report != nil {
			n = t.Report.Summary.Fail
		}
		return fmt.Sprintf("FAIL: %d failed", n)
	}
	return "pass"
}

func arrow(d Direction) string {
	if d == Reverse {
		return "←"
	}
	return "→"
}

// WriteText writes the matrix (target × probe, → forward and ← reverse rows), then one line
// per failed verdict with its detail, and per target that could not run, why.
func (s *Survey) WriteText(w io.Writer) error {
	bw := bufio.NewWriter(w)
	s.Summarize()
	fmt.Fprintf(bw, "ipsecpath survey: %d targets, %s: %d pass, %d fail, %d silent, %d error (at most %d at once, %d packets/s in all)\n\n",
		s.Summary.Targets, duration(s.DurationMs), s.Summary.Pass, s.Summary.Fail, s.Summary.Silent, s.Summary.Error, s.Parallel, s.Pace)
	cols, rows := s.matrix()
	nameW := len("TARGET")
	for _, r := range rows {
		nameW = max(nameW, len([]rune(r.t.Name())))
	}
	widths := make([]int, len(cols))
	for i, c := range cols {
		widths[i] = max(len(c), 5)
	}
	var line strings.Builder
	line.WriteString(pad("TARGET", nameW) + "  DIR")
	for i, c := range cols {
		line.WriteString("  " + pad(c, widths[i]))
	}
	fmt.Fprintf(bw, "%s  STATUS\n", line.String())
	for i, r := range rows {
		name := r.t.Name()
		if i > 0 && rows[i-1].t == r.t {
			name = ""
		}
		line.Reset()
		line.WriteString(pad(name, nameW) + "  " + pad(arrow(r.dir), 3))
		for j, c := range cols {
			cell := "-"
			if v, ok := r.cells[c]; ok {
				cell = matrixCell[v]
			}
			line.WriteString("  " + pad(cell, widths[j]))
		}
		if name != "" {
			line.WriteString("  " + statusText(r.t))
		}
		fmt.Fprintln(bw, strings.TrimRight(line.String(), " "))
	}
	fmt.Fprintf(bw, "\n%s\n", matrixLegend)
	first := true
	for i := range s.Targets {
		t := &s.Targets[i]
		for _, l := range failureLines(t) {
			if first {
				fmt.Fprint(bw, "\nWhat failed:\n")
				first = false
			}
			fmt.Fprintf(bw, "  %s\n", l)
		}
	}
	if s.OutDir != "" {
		fmt.Fprintf(bw, "\nReports per target (for 'ipsecpath diff') in %s\n", s.OutDir)
	}
	return bw.Flush()
}

// failureLines are the lines explaining t's failure: one per failed verdict, or why it
// could not run, or that it was silent.
func failureLines(t *SurveyTarget) []string {
	switch t.Status {
	case TargetError:
		return []string{fmt.Sprintf("%s: the check could not run: %s", t.Name(), oneLine(t.Error))}
	case TargetSilent:
		return []string{fmt.Sprintf("%s: silent: no probe drew any answer or ICMP error; check the address, whether the host is up, and the filters on the way", t.Name())}
	case TargetPass:
		return nil
	}
	var out []string
	for _, res := range t.Report.Results {
		if !res.Verdict.Failed() {
			continue
		}
		l := fmt.Sprintf("%s: %s %s %s: %s", t.Name(), res.Probe, res.Direction, res.Verdict, resultDetail(&res))
		out = append(out, oneLine(l))
	}
	return out
}

// WriteMarkdown writes the matrix as a GitHub-flavoured Markdown table, then the failures.
func (s *Survey) WriteMarkdown(w io.Writer) error {
	bw := bufio.NewWriter(w)
	s.Summarize()
	fmt.Fprintf(bw, "## ipsecpath survey: %d targets, %d pass, %d fail, %d silent, %d error\n\n",
		s.Summary.Targets, s.Summary.Pass, s.Summary.Fail, s.Summary.Silent, s.Summary.Error)
	fmt.Fprintf(bw, "- started: %s, took %s\n- at most %d checks at once, %d packets/s in all (%d per target)\n- version: %s\n\n",
		stamp(s.Started), duration(s.DurationMs), s.Parallel, s.Pace, s.TargetPace, mdText(s.Version))
	cols, rows := s.matrix()
	fmt.Fprint(bw, "| Target | Dir |")
	for _, c := range cols {
		fmt.Fprintf(bw, " %s |", mdCode(c))
	}
	fmt.Fprint(bw, " Status |\n|---|---|")
	fmt.Fprint(bw, strings.Repeat("---|", len(cols)+1)+"\n")
	for i, r := range rows {
		name := mdText(r.t.Name())
		status := mdText(statusText(r.t))
		if i > 0 && rows[i-1].t == r.t {
			name, status = "", ""
		}
		fmt.Fprintf(bw, "| %s | %s |", name, arrow(r.dir))
		for _, c := range cols {
			v, ok := r.cells[c]
			switch {
			case !ok:
				fmt.Fprint(bw, " - |")
			case v.Failed():
				fmt.Fprintf(bw, " **%s** |", matrixCell[v])
			default:
				fmt.Fprintf(bw, " %s |", matrixCell[v])
			}
		}
		fmt.Fprintf(bw, " %s |\n", status)
	}
	fmt.Fprintf(bw, "\n%s\n", mdText(matrixLegend))
	first := true
	for i := range s.Targets {
		for _, l := range failureLines(&s.Targets[i]) {
			if first {
				fmt.Fprint(bw, "\n### What failed\n\n")
				first = false
			}
			fmt.Fprintf(bw, "- %s\n", mdText(l))
		}
	}
	return bw.Flush()
}
