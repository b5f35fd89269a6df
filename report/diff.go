package report

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"strconv"
	"strings"
	"time"
)

// ChangeKind says how a (probe, direction) result moved between two runs.
type ChangeKind string

const (
	Regression ChangeKind = "regression"  // passed before, failed after (Verdict.Failed)
	Fix        ChangeKind = "fix"         // failed before, passes after
	Changed    ChangeKind = "changed"     // another verdict change: dropped → blocked, pass → skipped, …
	OnlyBefore ChangeKind = "only-before" // in the first run only: not run after the change
	OnlyAfter  ChangeKind = "only-after"  // in the second run only: new probe or direction
)

// Change is one (probe, direction) whose verdict differs between the runs, or that only
// one run has. An empty Before or After means that run had no such result.
type Change struct {
	Kind      ChangeKind `json:"kind"`
	Probe     string     `json:"probe"`
	Direction Direction  `json:"direction"`
	Before    Verdict    `json:"before,omitempty"`
	After     Verdict    `json:"after,omitempty"`
	Detail    string     `json:"detail,omitempty"` // the later run's detail (the earlier's for OnlyBefore)
	Hop       *Hop       `json:"hop,omitempty"`    // where the later run localised the fault
}

// PMTUChange is a path MTU that differs between the runs in one direction. Before or After
// is nil when that run did not measure it. It is a regression when a PMTU black hole
// appeared (none before, one after): a smaller MTU alone is reported but is not one, since
// with working ICMP "fragmentation needed" hosts adapt to it.
type PMTUChange struct {
	Direction  Direction `json:"direction"`
	Before     *PathMTU  `json:"before,omitempty"`
	After      *PathMTU  `json:"after,omitempty"`
	Regression bool      `json:"regression"`
}

// RunInfo identifies one of the two runs of a diff.
type RunInfo struct {
	Target  string    `json:"target"`
	Agent   string    `json:"agent,omitempty"`
	Started time.Time `json:"started"`
	Summary Summary   `json:"summary"`
}

// DiffResult is what changed between two runs, matched by (probe, direction). Its JSON
// form is what `ipsecpath diff --json` prints.
type DiffResult struct {
	Before      RunInfo      `json:"before"`
	After       RunInfo      `json:"after"`
	Regression  bool         `json:"regression"` // any regression, in a result or the path MTU
	Regressions []Change     `json:"regressions"`
	Fixes       []Change     `json:"fixes"`
	Changed     []Change     `json:"changed"`
	OnlyBefore  []Change     `json:"only_before"`
	OnlyAfter   []Change     `json:"only_after"`
	Unchanged   int          `json:"unchanged"` // results with the same verdict in both runs
	PMTU        []PMTUChange `json:"pmtu_changes"`
}

// resultKey matches results across runs: the n-th result for a (probe, direction) in one
// run meets the n-th in the other (a run normally has at most one).
type resultKey struct {
	probe string
	dir   Direction
	n     int
}

func keyed(results []Result) ([]resultKey, map[resultKey]*Result) {
	keys := make([]resultKey, 0, len(results))
	m := make(map[resultKey]*Result, len(results))
	seen := map[resultKey]int{}
	for i := range results {
		res := &results[i]
		base := resultKey{probe: res.Probe, dir: res.Direction}
		k := base
		k.n = seen[base]
		seen[base]++
		keys = append(keys, k)
		m[k] = res
	}
	return keys, m
}

// Diff compares two runs. Results are matched by (probe, direction): pass → a failed
// verdict is a regression, a failed verdict → pass a fix, any other verdict change is
// "changed", and results in one run only are listed as such. Lists keep the order of the
// later run (OnlyBefore: of the earlier). A nil report counts as a run with no results.
func Diff(before, after *Report) DiffResult {
	if before == nil {
		before = &Report{}
	}
	if after == nil {
		after = &Report{}
	}
	d := DiffResult{
		Before:      RunInfo{Target: before.Target, Agent: before.Agent, Started: before.Started, Summary: summarize(before.Results)},
		After:       RunInfo{Target: after.Target, Agent: after.Agent, Started: after.Started, Summary: summarize(after.Results)},
		Regressions: []Change{}, Fixes: []Change{}, Changed: []Change{},
		OnlyBefore: []Change{}, OnlyAfter: []Change{}, PMTU: []PMTUChange{},
	}
	bKeys, bRes := keyed(before.Results)
	aKeys, aRes := keyed(after.Results)
	for _, k := range aKeys {
		a := aRes[k]
		c := Change{Probe: a.Probe, Direction: a.Direction, After: a.Verdict, Detail: a.Detail, Hop: a.Hop}
		b, ok := bRes[k]
		switch {
		case !ok:
			c.Kind = OnlyAfter
			d.OnlyAfter = append(d.OnlyAfter, c)
			continue
		case b.Verdict == a.Verdict:
			d.Unchanged++
			continue
		}
		c.Before = b.Verdict
		switch {
		case b.Verdict == Pass && a.Verdict.Failed():
			c.Kind = Regression
			d.Regressions = append(d.Regressions, c)
		case b.Verdict.Failed() && a.Verdict == Pass:
			c.Kind = Fix
			d.Fixes = append(d.Fixes, c)
		default:
			c.Kind = Changed
			d.Changed = append(d.Changed, c)
		}
	}
	for _, k := range bKeys {
		if _, ok := aRes[k]; ok {
			continue
		}
		b := bRes[k]
		d.OnlyBefore = append(d.OnlyBefore, Change{Kind: OnlyBefore, Probe: b.Probe, Direction: b.Direction,
			Before: b.Verdict, Detail: b.Detail, Hop: b.Hop})
	}
	var bp, ap PMTU
	if before.PMTU != nil {
		bp = *before.PMTU
	}
	if after.PMTU != nil {
		ap = *after.PMTU
	}
	for _, p := range []struct {
		dir  Direction
		b, a *PathMTU
	}{{Forward, bp.Forward, ap.Forward}, {Reverse, bp.Reverse, ap.Reverse}} {
		if samePathMTU(p.b, p.a) {
			continue
		}
		reg := p.a != nil && p.a.Blackhole && (p.b == nil || !p.b.Blackhole)
		d.PMTU = append(d.PMTU, PMTUChange{Direction: p.dir, Before: p.b, After: p.a, Regression: reg})
	}
	d.Regression = len(d.Regressions) > 0
	for _, p := range d.PMTU {
		d.Regression = d.Regression || p.Regression
	}
	return d
}

// samePathMTU compares what matters of a path MTU: the MTU, the black hole and its hop.
// The number of probes spent finding it does not count.
func samePathMTU(a, b *PathMTU) bool {
	if a == nil || b == nil {
		return a == b
	}
	if a.MTU != b.MTU || a.Blackhole != b.Blackhole {
		return false
	}
	return sameHop(a.Hop, b.Hop)
}

// sameHop compares two hops by value, brackets included.
func sameHop(a, b *Hop) bool {
	if a == nil || b == nil {
		return a == b
	}
	return a.TTL == b.TTL && a.Addr == b.Addr && a.Estimated == b.Estimated &&
		sameHop(a.LastReached, b.LastReached) && sameHop(a.FirstMissed, b.FirstMissed)
}

// WriteJSON writes d indented, with a final newline.
func (d *DiffResult) WriteJSON(w io.Writer) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	if err := enc.Encode(d); err != nil {
		return fmt.Errorf("report: write diff json: %w", err)
	}
	return nil
}

// WriteText writes d for a person: the two runs, then regressions, fixes, other changes,
// probes in one run only and path MTU changes, each a section with aligned columns
// (probe, direction, before → after, detail) that is left out when empty, and a last
// line that starts with REGRESSION or NO REGRESSION.
func (d *DiffResult) WriteText(w io.Writer) error {
	bw := bufio.NewWriter(w)
	fmt.Fprintf(bw, "before: target %s, started %s, %s\n", oneLine(d.Before.Target), stamp(d.Before.Started), summaryLine(d.Before.Summary))
	fmt.Fprintf(bw, "after:  target %s, started %s, %s\n", oneLine(d.After.Target), stamp(d.After.Started), summaryLine(d.After.Summary))
	if d.Before.Target != d.After.Target {
		fmt.Fprintln(bw, "note: the two runs probed different targets")
	}
	if (d.Before.Agent == "") != (d.After.Agent == "") {
		fmt.Fprintln(bw, "note: only one run had an agent: reverse results and agent-based verdicts do not compare")
	}
	sections := []struct {
		title   string
		changes []Change
	}{
		{"REGRESSIONS (passed before, fail now)", d.Regressions},
		{"FIXES (failed before, pass now)", d.Fixes},
		{"CHANGED", d.Changed},
		{"ONLY BEFORE (not run after)", d.OnlyBefore},
		{"ONLY AFTER (new)", d.OnlyAfter},
	}
	for _, s := range sections {
		if len(s.changes) == 0 {
			continue
		}
		fmt.Fprintf(bw, "\n%s\n", s.title)
		writeChanges(bw, s.changes)
	}
	if len(d.PMTU) > 0 {
		fmt.Fprintln(bw, "\nPATH MTU")
		for _, p := range d.PMTU {
			mark := " "
			if p.Regression {
				mark = "!"
			}
			fmt.Fprintf(bw, "%s %-8s  %s -> %s\n", mark, p.Direction, p.Before.String(), p.After.String())
		}
	}
	word := "NO REGRESSION"
	if d.Regression {
		word = "REGRESSION"
	}
	pmtuRegs := 0
	for _, p := range d.PMTU {
		if p.Regression {
			pmtuRegs++
		}
	}
	counts := []string{plural(len(d.Regressions)+pmtuRegs, "regression", "regressions"), plural(len(d.Fixes), "fix", "fixes")}
	for _, c := range []struct {
		n         int
		one, many string
	}{{len(d.Changed), "changed", "changed"}, {len(d.OnlyBefore), "only before", "only before"},
		{len(d.OnlyAfter), "only after", "only after"}, {len(d.PMTU), "path MTU change", "path MTU changes"},
		{d.Unchanged, "unchanged", "unchanged"}} {
		if c.n > 0 {
			counts = append(counts, plural(c.n, c.one, c.many))
		}
	}
	fmt.Fprintf(bw, "\n%s: %s\n", word, strings.Join(counts, ", "))
	if err := bw.Flush(); err != nil {
		return fmt.Errorf("report: write diff: %w", err)
	}
	return nil
}

// writeChanges prints one aligned line per change: probe, direction, before -> after, detail.
func writeChanges(w io.Writer, cs []Change) {
	wp, wd, wv := 0, 0, 0
	verdicts := make([]string, len(cs))
	for i, c := range cs {
		verdicts[i] = orDash(c.Before) + " -> " + orDash(c.After)
		wp = max(wp, len(oneLine(c.Probe)))
		wd = max(wd, len(oneLine(string(c.Direction))))
		wv = max(wv, len(verdicts[i]))
	}
	for i, c := range cs {
		d := resultDetail(&Result{Detail: c.Detail, Hop: c.Hop})
		line := "  " + pad(oneLine(c.Probe), wp) + "  " + pad(oneLine(string(c.Direction)), wd) + "  " + pad(verdicts[i], wv) + "  " + d
		fmt.Fprintln(w, strings.TrimRight(line, " "))
	}
}

func orDash(v Verdict) string {
	if v == "" {
		return "-"
	}
	return oneLine(string(v))
}

func plural(n int, one, many string) string {
	if n == 1 {
		return "1 " + one
	}
	return strconv.Itoa(n) + " " + many
}
