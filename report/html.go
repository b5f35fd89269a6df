package report

import (
	"bytes"
	"fmt"
	"html/template"
	"io"
	"strconv"
	"strings"
)

// FormatHTML is the --format name of the HTML report.
const FormatHTML = "html"

// HTMLOptions adds to the HTML report what only some commands have. The zero value draws
// the report alone.
type HTMLOptions struct {
	// Title is the page's heading ("" → "ipsecpath TARGET").
	Title string
	// Advice lines are shown in their own box under the path MTU (pmtu's tunnel sizing,
	// stateful's timer advice).
	Advice []string
	// Sections are further command-specific blocks (a heading and preformatted lines),
	// shown after the results, e.g. the IKE proposals a gateway chose.
	Sections []HTMLSection
}

// HTMLSection is one extra block of the HTML report.
type HTMLSection struct {
	Title string
	Lines []string
}

// initialTTL is the TTL every ipsecpath probe leaves with (probe.DefaultTTL): a probe seen
// with TTL t at the far end crossed initialTTL−t routers.
const initialTTL = 64

// WriteHTML writes r as one self-contained HTML page (inline CSS and SVG, no script from
// elsewhere, no font or image fetched): the path drawn as a row of hops from the initiator
// to the responder; one line per probe and direction, from the end that sent it to where
// it died (to the far end when it passed, to the bracket or the refusing hop when it was
// localised, dashed with a question mark when it was not); the verdict's sentence beside
// it, the evidence under a click (<details>), the path MTU and the advice. The triage
// ladder, when the run has one, comes first: a row per rung, its stop sentence (then no
// path and no result rows: no probe was sent) and the local preflight. Printing the
// page (to PDF) opens every evidence block and keeps rows whole.
func (r *Report) WriteHTML(w io.Writer, opt HTMLOptions) error {
	if r == nil {
		return fmt.Errorf("report: render html: no report")
	}
	v := buildHTMLView(r, opt)
	return writePage(w, htmlPage, v, "html")
}

// writePage renders page with v into memory, then writes it to w in one piece, so a page
// that fails to render writes nothing. what names the page in errors ("html", "diff html").
func writePage(w io.Writer, page *template.Template, v any, what string) error {
	var buf bytes.Buffer
	if err := page.Execute(&buf, v); err != nil {
		return fmt.Errorf("report: render %s: %w", what, err)
	}
	if _, err := w.Write(buf.Bytes()); err != nil {
		return fmt.Errorf("report: write %s: %w", what, err)
	}
	return nil
}

// Geometry of the path drawing (SVG user units).
const (
	svgW      = 600
	svgMargin = 40
	svgRowH   = 34
)

type htmlView struct {
	CSS                          template.CSS
	Title, Outcome, OutcomeClass string
	Facts                        [][2]string
	Nodes                        []htmlNode
	Rows                         []htmlRow
	PMTU                         string
	Advice                       []string
	Sections                     []HTMLSection
	Width, RowH, PathH           int
	Localised                    bool
	Ladder                       *htmlLadder
}

// htmlLadder is the triage ladder as the page shows it: a row per rung, the local
// preflight's findings, and the stop sentence when the underlay was found dead.
type htmlLadder struct {
	Target, Resolved string
	Rungs            []htmlRung
	Preflight        []string
	Stop             string
}

type htmlRung struct {
	Rung, Addr, Verdict, Class, Detail string
}

func buildHTMLLadder(l *Ladder) *htmlLadder {
	if l == nil {
		return nil
	}
	h := &htmlLadder{Target: l.Target, Stop: oneLine(l.Stop)}
	if l.Resolved != l.Target {
		h.Resolved = l.Resolved
	}
	for _, g := range l.Rungs {
		class := "pass"
		switch {
		case g.Verdict.Failed():
			class = "fail"
		case g.Verdict == RungSkipped:
			class = "skip"
		}
		h.Rungs = append(h.Rungs, htmlRung{Rung: g.Rung, Addr: g.Addr, Verdict: string(g.Verdict), Class: class, Detail: oneLine(g.Detail)})
	}
	if p := l.Preflight; p != nil {
		for _, n := range p.Notes {
			h.Preflight = append(h.Preflight, oneLine(n))
		}
		if !p.FirewallChecked && p.FirewallNote != "" {
			h.Preflight = append(h.Preflight, oneLine(p.FirewallNote))
		}
	}
	return h
}

type htmlNode struct {
	X           int
	Label, Addr string
	End         bool
}

type htmlRow struct {
	Probe, Direction, Verdict, Class string
	Detail, Where                    string
	Evidence                         []string
	Line                             *htmlLine
	NotRun                           bool
}

// htmlLine is a row's drawing: from X1 to X2; Dead marks where it died (X2) with a cross,
// Bar a refusal (ICMP error, reset) with a bar, Lost a death not localised (dashed, "?").
type htmlLine struct {
	X1, X2, Y       int
	Pass, Dead, Bar bool
	Lost            bool
	ArrowLeft       bool
	BracketX        int // the first hop not reached, when a bracket localised it (0: none)
}

// pathHops works out how many routers the path has and what each is called, from what the
// report holds: hops and brackets of results (forward TTLs count from the initiator,
// reverse from the responder), ICMP errors, the path MTU's hop, and the TTL fragments
// arrived with at either end.
func pathHops(r *Report) (n int, fwd map[int]string, rev map[int]string) {
	fwd, rev = map[int]string{}, map[int]string{}
	noteAt := func(d Direction, ttl int, addr string) {
		if ttl <= 0 || ttl > 64 {
			return
		}
		n = max(n, ttl-1) // a hop at TTL t has t-1 routers before it at least
		if addr == "" {
			return
		}
		if d == Reverse {
			rev[ttl] = addr
		} else {
			fwd[ttl] = addr
		}
	}
	note := func(d Direction, h *Hop) {
		if h != nil {
			noteAt(d, h.TTL, h.Addr)
		}
	}
	noteRef := func(d Direction, h *HopRef) {
		if h != nil {
			noteAt(d, h.TTL, h.Addr)
		}
	}
	for i := range r.Results {
		res := &r.Results[i]
		if h := res.Hop; h != nil {
			note(res.Direction, h)
			if b := h.Bracket; b != nil {
				noteRef(res.Direction, b.LastReached)
				noteRef(res.Direction, b.FirstMissed)
				if b.LastReached != nil {
					n = max(n, b.LastReached.TTL)
				}
			}
		}
		for _, f := range res.Evidence.FragmentsSeen {
			if f.TTL > 0 && f.TTL < initialTTL {
				n = max(n, initialTTL-f.TTL)
			}
		}
	}
	if r.PMTU != nil {
		if r.PMTU.Forward != nil {
			note(Forward, r.PMTU.Forward.Hop)
		}
		if r.PMTU.Reverse != nil {
			note(Reverse, r.PMTU.Reverse.Hop)
		}
	}
	// A router that answered is a router: a hop at TTL t with an address is router t.
	for t := range fwd {
		n = max(n, t)
	}
	for t := range rev {
		n = max(n, t)
	}
	return min(n, 32), fwd, rev
}

func buildHTMLView(r *Report, opt HTMLOptions) *htmlView {
	s := summarize(r.Results)
	v := &htmlView{CSS: htmlCSS, Title: opt.Title, Outcome: outcome(s), Width: svgW, RowH: svgRowH, PathH: 64,
		Advice: opt.Advice, Sections: opt.Sections, PMTU: pmtuLine(r.PMTU)}
	if v.Title == "" {
		v.Title = "ipsecpath " + r.Target
	}
	v.OutcomeClass = "pass"
	if s.Fail > 0 {
		v.OutcomeClass = "fail"
	}
	v.Ladder = buildHTMLLadder(r.Ladder)
	if r.ladderStopped() {
		v.Outcome, v.OutcomeClass = "FAIL (underlay dead)", "fail"
	}
	agent := "none (one-ended: the reverse direction is not tested)"
	if r.Agent != "" {
		agent = r.Agent
	}
	v.Facts = [][2]string{{"target", r.Target}, {"agent", agent}, {"started", stamp(r.Started) + ", took " + duration(r.DurationMs)},
		{"version", r.Tool + " " + r.Version}, {"summary", summaryLine(s)}}
	if n := r.NAT; n != nil {
		nat := "none: " + oneLine(n.Detail)
		if n.Detected {
			nat = oneLine(n.Detail)
		}
		v.Facts = append(v.Facts, [2]string{"NAT", nat})
		if n.Advice != "" {
			v.Facts = append(v.Facts, [2]string{"NAT advice", oneLine(n.Advice)})
		}
	}

	n, fwd, rev := pathHops(r)
	col := func(i int) int { return svgMargin + i*(svgW-2*svgMargin)/(n+1) }
	v.Nodes = append(v.Nodes, htmlNode{X: col(0), Label: "initiator", End: true})
	for t := 1; t <= n; t++ {
		nd := htmlNode{X: col(t), Label: "hop " + strconv.Itoa(t)}
		var addrs []string
		if a := fwd[t]; a != "" {
			addrs = append(addrs, a)
		}
		if a := rev[n+1-t]; a != "" && a != fwd[t] {
			addrs = append(addrs, a)
		}
		nd.Addr = strings.Join(addrs, " / ")
		v.Nodes = append(v.Nodes, nd)
	}
	v.Nodes = append(v.Nodes, htmlNode{X: col(n + 1), Label: "responder", Addr: r.Target, End: true})

	// Column of a hop TTL in a direction (forward counts from the initiator, reverse from
	// the responder).
	at := func(d Direction, ttl int) int {
		ttl = min(max(ttl, 0), n+1)
		if d == Reverse {
			return col(n + 1 - ttl)
		}
		return col(ttl)
	}
	byAddr := func(d Direction, addr string) int {
		m := fwd
		if d == Reverse {
			m = rev
		}
		for t, a := range m {
			if a == addr {
				return t
			}
		}
		return 0
	}
	for _, res := range failedFirst(r.Results) {
		row := htmlRow{Probe: res.Probe, Direction: string(res.Direction), Verdict: string(res.Verdict),
			Class: verdictClass(res.Verdict), Detail: oneLine(res.Detail), Evidence: res.Evidence.Lines()}
		if res.Hop != nil {
			row.Where = res.Hop.String()
			if !strings.HasPrefix(row.Where, "between ") && !strings.HasPrefix(row.Where, "after ") {
				row.Where = "at " + row.Where
			}
		}
		if res.Verdict == Skipped || res.Verdict == Error {
			row.NotRun = true
			v.Rows = append(v.Rows, row)
			continue
		}
		ln := &htmlLine{Y: svgRowH / 2, ArrowLeft: res.Direction == Reverse}
		ln.X1 = at(res.Direction, 0)
		goal := at(res.Direction, n+1)
		h := res.Hop
		switch {
		case res.Verdict == Pass:
			ln.X2, ln.Pass = goal, true
		case h.Bracketed():
			last := 0
			if h.LastReached != nil {
				last = h.LastReached.TTL
			}
			first := last + 1
			if h.FirstMissed != nil && h.FirstMissed.TTL > last {
				first = h.FirstMissed.TTL
			}
			// It died after last and before first: the cross sits just short of first.
			xl, xf := at(res.Direction, last), at(res.Direction, first)
			ln.X2, ln.Dead, ln.BracketX = xf-(xf-xl)/4, true, xf
			v.Localised = true
		case h != nil && (h.TTL > 0 || byAddr(res.Direction, h.Addr) > 0):
			t := h.TTL
			if t == 0 {
				t = byAddr(res.Direction, h.Addr)
			}
			ln.X2 = at(res.Direction, t)
			if res.Verdict == Blocked {
				ln.Bar = true
			} else {
				ln.Dead = true
			}
			v.Localised = true
		default:
			ln.X2, ln.Lost = goal-(goal-ln.X1)/12, true
			row.Where = "lost somewhere between the two ends: not localised"
		}
		row.Line = ln
		v.Rows = append(v.Rows, row)
	}
	return v
}

func verdictClass(v Verdict) string {
	switch {
	case v == Pass:
		return "pass"
	case v == Skipped:
		return "skip"
	case v == Error:
		return "err"
	}
	return "fail"
}

var htmlPage = template.Must(template.New("page").Funcs(template.FuncMap{"add": func(a, b int) int { return a + b }}).Parse(`<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta http-equiv="Content-Security-Policy" content="default-src 'none'; style-src 'unsafe-inline'; script-src 'unsafe-inline'; img-src data:">
<title>{{.Title}}: {{.Outcome}}</title>
<style>
{{.CSS}}
</style>
</head>
<body>
<h1>{{.Title}} <span class="badge {{.OutcomeClass}}">{{.Outcome}}</span></h1>
<dl class="facts">{{range .Facts}}<dt>{{index . 0}}</dt><dd>{{index . 1}}</dd>{{end}}</dl>
{{if .PMTU}}<div class="box"><strong>Path MTU</strong>: {{.PMTU}}</div>{{end}}
{{if .Advice}}<div class="box"><strong>Advice</strong><ul>{{range .Advice}}<li>{{.}}</li>{{end}}</ul></div>{{end}}
{{with .Ladder}}<h2>Ladder toward {{.Target}}{{if .Resolved}} ({{.Resolved}}){{end}}</h2>
<table class="ladder">
<thead><tr><th>Rung</th><th>Address</th><th>Verdict</th><th>What it means</th></tr></thead>
<tbody>
{{range .Rungs}}<tr class="rung {{.Class}}" data-rung="{{.Rung}}" data-verdict="{{.Verdict}}"><td class="probe">{{.Rung}}</td><td class="probe">{{if .Addr}}{{.Addr}}{{else}}-{{end}}</td><td><span class="badge {{.Class}}">{{.Verdict}}</span></td><td>{{.Detail}}</td></tr>
{{end}}</tbody>
</table>
{{if .Stop}}<div class="box stop"><strong>{{.Stop}}</strong></div>{{end}}
{{if .Preflight}}<div class="box"><strong>Local preflight (this host)</strong><ul class="preflight">{{range .Preflight}}<li>{{.}}</li>{{end}}</ul></div>{{end}}
{{end}}{{if and .Ladder .Ladder.Stop}}<p class="legend">No probe was sent: the ladder found the underlay dead.</p>{{else}}<h2>The path</h2>
<svg viewBox="0 0 {{.Width}} {{.PathH}}" role="img" aria-label="the path from the initiator to the responder">
<line class="wire" x1="{{(index .Nodes 0).X}}" y1="22" x2="{{(index .Nodes (len .Nodes | add -1)).X}}" y2="22"/>
{{range .Nodes}}<g class="node{{if .End}} end{{end}}"><circle cx="{{.X}}" cy="22" r="7"/><text x="{{.X}}" y="44">{{.Label}}</text>{{if .Addr}}<text class="addr" x="{{.X}}" y="58">{{.Addr}}</text>{{end}}</g>
{{end}}</svg>
<p class="legend">Each row below is one probe in one direction on this path: forward rows run from the initiator (left) to the responder, reverse rows from the responder back. A green line arrived; a red line ends where the probe died: a cross where it was lost{{if .Localised}} (just before the first hop it did not reach){{end}}, a bar where a device refused it, and a dashed line with a question mark when it was lost somewhere on the way and not localised.</p>
<h2>Results</h2>
<table>
<thead><tr><th>Probe</th><th>Direction</th><th>Verdict</th><th class="path"><svg viewBox="0 0 {{.Width}} 18" role="img" aria-label="hops of the path">{{range .Nodes}}<text class="hdr" x="{{.X}}" y="13">{{.Label}}</text>{{end}}</svg></th><th>What it means</th></tr></thead>
<tbody>
{{range .Rows}}<tr class="row {{.Class}}" data-probe="{{.Probe}}" data-direction="{{.Direction}}" data-verdict="{{.Verdict}}">
<td class="probe">{{.Probe}}</td><td>{{.Direction}}</td><td><span class="badge {{.Class}}">{{.Verdict}}</span></td>
<td class="path">{{if .NotRun}}<div class="notrun">not run</div>{{else}}{{with .Line}}<svg viewBox="0 0 {{$.Width}} {{$.RowH}}" role="img" aria-label="{{if .Pass}}arrived{{else}}died{{end}}">
{{range $.Nodes}}<line class="tick" x1="{{.X}}" y1="8" x2="{{.X}}" y2="26"/>{{end}}
{{if .Pass}}<line class="ok" x1="{{.X1}}" y1="{{.Y}}" x2="{{.X2}}" y2="{{.Y}}"/>{{if .ArrowLeft}}<polygon fill="#1a7f37" points="{{.X2}},{{.Y}} {{.X2 | add 9}},{{.Y | add -5}} {{.X2 | add 9}},{{.Y | add 5}}"/>{{else}}<polygon fill="#1a7f37" points="{{.X2}},{{.Y}} {{.X2 | add -9}},{{.Y | add -5}} {{.X2 | add -9}},{{.Y | add 5}}"/>{{end}}{{end}}
{{if .Dead}}<line class="dead" x1="{{.X1}}" y1="{{.Y}}" x2="{{.X2}}" y2="{{.Y}}"/><line class="x" x1="{{.X2 | add -6}}" y1="{{.Y | add -6}}" x2="{{.X2 | add 6}}" y2="{{.Y | add 6}}"/><line class="x" x1="{{.X2 | add -6}}" y1="{{.Y | add 6}}" x2="{{.X2 | add 6}}" y2="{{.Y | add -6}}"/>{{if .BracketX}}<line class="bracket" x1="{{.BracketX}}" y1="3" x2="{{.BracketX}}" y2="31"/>{{end}}{{end}}
{{if .Bar}}<line class="dead" x1="{{.X1}}" y1="{{.Y}}" x2="{{.X2}}" y2="{{.Y}}"/><line class="bar" x1="{{.X2}}" y1="{{.Y | add -9}}" x2="{{.X2}}" y2="{{.Y | add 9}}"/>{{end}}
{{if .Lost}}<line class="lost" x1="{{.X1}}" y1="{{.Y}}" x2="{{.X2}}" y2="{{.Y}}"/><text class="q" x="{{.X2 | add (or (and .ArrowLeft -14) 4)}}" y="{{.Y | add 5}}">?</text>{{end}}
</svg>{{end}}{{end}}</td>
<td>{{.Detail}}{{if .Where}}<div class="where">{{.Where}}</div>{{end}}{{if .Evidence}}<details><summary>evidence</summary><ul>{{range .Evidence}}<li>{{.}}</li>{{end}}</ul></details>{{end}}</td>
</tr>
{{end}}</tbody>
</table>
{{end}}{{range .Sections}}<h2>{{.Title}}</h2><div class="box"><pre>{{range .Lines}}{{.}}
{{end}}</pre></div>{{end}}
<script>window.addEventListener("beforeprint", function () { document.querySelectorAll("details").forEach(function (d) { d.open = true; }); });</script>
</body>
</html>
`))

// htmlCSS is the style sheet of every HTML page (the report, the diff), inlined.
const htmlCSS = template.CSS(`:root { --pass: #1a7f37; --fail: #cf222e; --skip: #6e7781; --err: #9a6700; --ink: #1f2328; --line: #d0d7de; }
* { box-sizing: border-box; }
body { font: 14px/1.45 system-ui, -apple-system, "Segoe UI", sans-serif; color: var(--ink); margin: 24px auto; max-width: 1200px; padding: 0 16px; }
h1 { font-size: 22px; margin: 0 0 8px; }
h2 { font-size: 16px; margin: 24px 0 8px; }
.badge { display: inline-block; padding: 1px 8px; border-radius: 10px; color: #fff; font-weight: 600; font-size: 12px; }
.badge.pass { background: var(--pass); } .badge.fail { background: var(--fail); } .badge.skip { background: var(--skip); } .badge.err { background: var(--err); }
dl.facts { display: grid; grid-template-columns: max-content 1fr; gap: 2px 12px; margin: 8px 0 16px; }
dl.facts dt { color: #59636e; } dl.facts dd { margin: 0; font-family: ui-monospace, monospace; }
table { border-collapse: collapse; width: 100%; }
th, td { text-align: left; vertical-align: top; padding: 4px 6px; border-bottom: 1px solid var(--line); }
th { font-size: 12px; color: #59636e; font-weight: 600; }
td.probe { font-family: ui-monospace, monospace; white-space: nowrap; }
td.path { width: 42%; padding: 0; }
svg { display: block; width: 100%; height: auto; }
.node circle { fill: #fff; stroke: #59636e; stroke-width: 2; }
.node.end circle { fill: #59636e; }
.node text { font: 11px system-ui, sans-serif; fill: #1f2328; text-anchor: middle; }
.node text.addr { fill: #59636e; font-family: ui-monospace, monospace; font-size: 10px; }
.wire { stroke: var(--line); stroke-width: 2; }
.tick { stroke: var(--line); stroke-width: 1; }
.ok { stroke: var(--pass); stroke-width: 3; }
.dead { stroke: var(--fail); stroke-width: 3; }
.lost { stroke: var(--fail); stroke-width: 3; stroke-dasharray: 6 5; }
.x { stroke: var(--fail); stroke-width: 3; }
.bar { stroke: var(--fail); stroke-width: 5; }
.bracket { stroke: var(--fail); stroke-width: 1; stroke-dasharray: 2 2; }
.q { fill: var(--fail); font: bold 14px system-ui, sans-serif; }
text.hdr { font: 600 12px system-ui, sans-serif; fill: #59636e; text-anchor: middle; }
.notrun { color: var(--skip); font-style: italic; font-size: 12px; padding: 8px 6px; }
details summary { cursor: pointer; color: #0969da; font-size: 12px; }
details ul { margin: 4px 0 0; padding-left: 18px; font-family: ui-monospace, monospace; font-size: 12px; }
.where { color: var(--fail); font-size: 12px; }
.box { border: 1px solid var(--line); border-radius: 6px; padding: 8px 12px; margin: 8px 0; }
pre { margin: 0; white-space: pre-wrap; font-size: 12px; }
.legend { font-size: 12px; color: #59636e; }
.box.stop { border-color: var(--fail); color: var(--fail); }
table.ladder { margin-bottom: 8px; }
@media print {
  body { margin: 0; max-width: none; font-size: 11px; }
  details > summary { display: none; }
  details::details-content { content-visibility: visible; display: block; }
  tr { break-inside: avoid; }
  .badge { border: 1px solid #000; -webkit-print-color-adjust: exact; print-color-adjust: exact; }
  svg { -webkit-print-color-adjust: exact; print-color-adjust: exact; }
}
`)
