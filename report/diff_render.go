package report

import (
	"bufio"
	"fmt"
	"html/template"
	"io"
	"strings"
)

// DiffFormats lists the forms a diff renders in (DiffResult.Render).
var DiffFormats = []string{FormatText, FormatJSON, FormatMarkdown, FormatHTML}

// ErrDifferentTargets is returned by CheckComparable for runs against different targets.
var ErrDifferentTargets = fmt.Errorf("the two runs probed different targets")

// CheckComparable refuses two runs that do not describe the same path: their targets
// differ. Verdicts of two different paths say nothing about a change.
func CheckComparable(before, after *Report) error {
	if before != nil && after != nil && before.Target != after.Target {
		return fmt.Errorf("%w (%s before, %s after)", ErrDifferentTargets, oneLine(before.Target), oneLine(after.Target))
	}
	return nil
}

// Render writes d in format, one of DiffFormats.
func (d *DiffResult) Render(w io.Writer, format string) error {
	switch format {
	case FormatText:
		return d.WriteText(w)
	case FormatJSON:
		return d.WriteJSON(w)
	case FormatMarkdown:
		return d.WriteMarkdown(w)
	case FormatHTML:
		return d.WriteHTML(w)
	}
	return fmt.Errorf("report: diff: unknown format %q (valid: %s)", format, strings.Join(DiffFormats, ", "))
}

// diffSection is one list of changes as the renderers title it.
type diffSection struct {
	Title   string
	Class   string
	Changes []Change
}

func (d *DiffResult) sections() []diffSection {
	return []diffSection{
		{"Regressions (passed before, fail now)", "fail", d.Regressions},
		{"Fixes (failed before, pass now)", "pass", d.Fixes},
		{"Changed", "skip", d.Changed},
		{"Only before (not run after)", "skip", d.OnlyBefore},
		{"Only after (new)", "skip", d.OnlyAfter},
	}
}

func (d *DiffResult) notes() []string {
	var n []string
	if d.Before.Target != d.After.Target {
		n = append(n, "the two runs probed different targets")
	}
	if (d.Before.Agent == "") != (d.After.Agent == "") {
		n = append(n, "only one run had an agent: reverse results and agent-based verdicts do not compare")
	}
	return n
}

func (d *DiffResult) word() string {
	if d.Regression {
		return "REGRESSION"
	}
	return "NO REGRESSION"
}

// WriteMarkdown writes d for a ticket: the outcome, the two runs, then one table per
// non-empty list of changes and the path MTU changes.
func (d *DiffResult) WriteMarkdown(w io.Writer) error {
	bw := bufio.NewWriter(w)
	fmt.Fprintf(bw, "## ipsecpath diff: %s\n\n", d.word())
	fmt.Fprintf(bw, "- before: %s, started %s, %s\n", mdCode(d.Before.Target), stamp(d.Before.Started), summaryLine(d.Before.Summary))
	fmt.Fprintf(bw, "- after: %s, started %s, %s\n", mdCode(d.After.Target), stamp(d.After.Started), summaryLine(d.After.Summary))
	for _, n := range d.notes() {
		fmt.Fprintf(bw, "- note: %s\n", mdText(n))
	}
	for _, s := range d.sections() {
		if len(s.Changes) == 0 {
			continue
		}
		fmt.Fprintf(bw, "\n### %s\n\n| Probe | Direction | Before | After | Detail |\n|---|---|---|---|---|\n", s.Title)
		for _, c := range s.Changes {
			after := mdText(orDash(c.After))
			if c.After.Failed() {
				after = "**" + after + "**"
			}
			fmt.Fprintf(bw, "| %s | %s | %s | %s | %s |\n", mdCode(c.Probe), mdText(string(c.Direction)), mdText(orDash(c.Before)), after,
				mdText(resultDetail(&Result{Detail: c.Detail, Hop: c.Hop})))
		}
	}
	if len(d.PMTU) > 0 {
		fmt.Fprint(bw, "\n### Path MTU\n\n| Direction | Before | After | Regression |\n|---|---|---|---|\n")
		for _, p := range d.PMTU {
			reg := "no"
			if p.Regression {
				reg = "**yes**"
			}
			fmt.Fprintf(bw, "| %s | %s | %s | %s |\n", p.Direction, mdText(p.Before.String()), mdText(p.After.String()), reg)
		}
	}
	fmt.Fprintf(bw, "\n%d unchanged.\n", d.Unchanged)
	if err := bw.Flush(); err != nil {
		return fmt.Errorf("report: write diff markdown: %w", err)
	}
	return nil
}

// WriteHTML writes d as one self-contained page (the report's style, no fetches).
func (d *DiffResult) WriteHTML(w io.Writer) error {
	type row struct {
		Probe, Direction, Before, After, AfterClass, Detail string
	}
	type sec struct {
		Title, Class string
		Rows         []row
	}
	type pm struct {
		Direction, Before, After string
		Regression               bool
	}
	v := struct {
		CSS             template.CSS
		Word, WordClass string
		Before, After   string
		Notes           []string
		Sections        []sec
		PMTU            []pm
		Unchanged       int
	}{CSS: htmlCSS, Word: d.word(), WordClass: "pass", Unchanged: d.Unchanged,
		Before: fmt.Sprintf("%s, started %s, %s", d.Before.Target, stamp(d.Before.Started), summaryLine(d.Before.Summary)),
		After:  fmt.Sprintf("%s, started %s, %s", d.After.Target, stamp(d.After.Started), summaryLine(d.After.Summary)),
		Notes:  d.notes()}
	if d.Regression {
		v.WordClass = "fail"
	}
	for _, s := range d.sections() {
		if len(s.Changes) == 0 {
			continue
		}
		x := sec{Title: s.Title, Class: s.Class}
		for _, c := range s.Changes {
			x.Rows = append(x.Rows, row{Probe: c.Probe, Direction: string(c.Direction), Before: orDash(c.Before), After: orDash(c.After),
				AfterClass: verdictClass(c.After), Detail: resultDetail(&Result{Detail: c.Detail, Hop: c.Hop})})
		}
		v.Sections = append(v.Sections, x)
	}
	for _, p := range d.PMTU {
		v.PMTU = append(v.PMTU, pm{string(p.Direction), p.Before.String(), p.After.String(), p.Regression})
	}
	return writePage(w, diffPage, v, "diff html")
}

var diffPage = template.Must(template.New("diff").Parse(`<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta http-equiv="Content-Security-Policy" content="default-src 'none'; style-src 'unsafe-inline'">
<title>ipsecpath diff: {{.Word}}</title>
<style>
{{.CSS}}
</style>
</head>
<body>
<h1>ipsecpath diff <span class="badge {{.WordClass}}">{{.Word}}</span></h1>
<dl class="facts"><dt>before</dt><dd>{{.Before}}</dd><dt>after</dt><dd>{{.After}}</dd>{{range .Notes}}<dt>note</dt><dd>{{.}}</dd>{{end}}</dl>
{{range .Sections}}<h2>{{.Title}}</h2>
<table><thead><tr><th>Probe</th><th>Direction</th><th>Before</th><th>After</th><th>Detail</th></tr></thead><tbody>
{{range .Rows}}<tr class="change" data-probe="{{.Probe}}" data-direction="{{.Direction}}"><td class="probe">{{.Probe}}</td><td>{{.Direction}}</td><td>{{.Before}}</td><td><span class="badge {{.AfterClass}}">{{.After}}</span></td><td>{{.Detail}}</td></tr>
{{end}}</tbody></table>
{{end}}{{if .PMTU}}<h2>Path MTU</h2>
<table><thead><tr><th>Direction</th><th>Before</th><th>After</th><th></th></tr></thead><tbody>
{{range .PMTU}}<tr><td>{{.Direction}}</td><td>{{.Before}}</td><td>{{.After}}</td><td>{{if .Regression}}<span class="badge fail">regression</span>{{end}}</td></tr>
{{end}}</tbody></table>
{{end}}<p>{{.Unchanged}} unchanged.</p>
</body>
</html>
`))
