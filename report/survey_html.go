package report

import (
	"fmt"
	"html/template"
	"io"
	"strconv"
)

// WriteHTML writes the survey as one self-contained page in the report's style: the
// matrix (a row per target and direction, a column per probe, each cell the verdict,
// failures in red), each target's status, then what failed and why. Nothing is fetched.
func (s *Survey) WriteHTML(w io.Writer) error {
	s.Summarize()
	cols, rows := s.matrix()
	v := surveyHTMLView{CSS: htmlCSS, Cols: cols, Legend: matrixLegend, OutDir: s.OutDir,
		Title:   "ipsecpath survey: " + strconv.Itoa(s.Summary.Targets) + " targets",
		Outcome: "PASS", OutcomeClass: "pass",
		Facts: [][2]string{
			{"started", stamp(s.Started) + ", took " + duration(s.DurationMs)},
			{"pace", fmt.Sprintf("at most %d checks at once, %d packets/s in all (%d per target)", s.Parallel, s.Pace, s.TargetPace)},
			{"version", s.Tool + " " + s.Version},
			{"summary", fmt.Sprintf("%d pass, %d fail, %d silent, %d error", s.Summary.Pass, s.Summary.Fail, s.Summary.Silent, s.Summary.Error)},
		}}
	if s.Failed() {
		v.Outcome, v.OutcomeClass = "FAIL", "fail"
	}
	for i, r := range rows {
		hr := surveyHTMLRow{Target: r.t.Target, Direction: string(r.dir), Arrow: arrow(r.dir), Status: string(r.t.Status)}
		if i == 0 || rows[i-1].t != r.t {
			hr.Name, hr.StatusText = r.t.Name(), statusText(r.t)
			hr.StatusClass = "pass"
			if r.t.Status.Failed() {
				hr.StatusClass = "fail"
			}
		}
		for _, c := range cols {
			cell := surveyHTMLCell{Probe: c, Text: "-", Class: "none"}
			if vd, ok := r.cells[c]; ok {
				cell.Verdict, cell.Text, cell.Class = string(vd), matrixCell[vd], verdictClass(vd)
			}
			hr.Cells = append(hr.Cells, cell)
		}
		v.Rows = append(v.Rows, hr)
	}
	for i := range s.Targets {
		v.Failures = append(v.Failures, failureLines(&s.Targets[i])...)
	}
	return writePage(w, surveyPage, v, "survey html")
}

type surveyHTMLView struct {
	CSS                          template.CSS
	Title, Outcome, OutcomeClass string
	Facts                        [][2]string
	Cols                         []string
	Rows                         []surveyHTMLRow
	Legend, OutDir               string
	Failures                     []string
}

type surveyHTMLRow struct {
	Name, Target, Direction, Arrow  string
	Status, StatusText, StatusClass string
	Cells                           []surveyHTMLCell
}

type surveyHTMLCell struct {
	Probe, Verdict, Text, Class string
}

var surveyPage = template.Must(template.New("survey").Parse(`<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta http-equiv="Content-Security-Policy" content="default-src 'none'; style-src 'unsafe-inline'">
<title>{{.Title}}: {{.Outcome}}</title>
<style>
{{.CSS}}
td.cell { font-family: ui-monospace, monospace; text-align: center; }
td.cell.fail, td.cell.err { color: var(--fail); font-weight: 700; }
td.cell.pass { color: var(--pass); }
td.cell.skip, td.cell.none { color: var(--skip); }
td.status.fail { color: var(--fail); }
</style>
</head>
<body>
<h1>{{.Title}} <span class="badge {{.OutcomeClass}}">{{.Outcome}}</span></h1>
<dl class="facts">{{range .Facts}}<dt>{{index . 0}}</dt><dd>{{index . 1}}</dd>{{end}}</dl>
<h2>Matrix</h2>
<table class="matrix">
<thead><tr><th>Target</th><th>Dir</th>{{range .Cols}}<th class="probe">{{.}}</th>{{end}}<th>Status</th></tr></thead>
<tbody>
{{range .Rows}}<tr class="target" data-target="{{.Target}}" data-direction="{{.Direction}}" data-status="{{.Status}}"><td class="probe">{{.Name}}</td><td>{{.Arrow}}</td>{{range .Cells}}<td class="cell {{.Class}}" data-probe="{{.Probe}}"{{if .Verdict}} data-verdict="{{.Verdict}}"{{end}}>{{.Text}}</td>{{end}}<td class="status {{.StatusClass}}">{{.StatusText}}</td></tr>
{{end}}</tbody>
</table>
<p class="legend">{{.Legend}}</p>
{{if .Failures}}<h2>What failed</h2><ul class="failures">{{range .Failures}}<li>{{.}}</li>{{end}}</ul>{{end}}
{{if .OutDir}}<p class="legend">Reports per target (for ipsecpath diff) in {{.OutDir}}</p>{{end}}
</body>
</html>
`))
