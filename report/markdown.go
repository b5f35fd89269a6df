package report

import (
	"bufio"
	"fmt"
	"io"
	"strings"
)

// WriteMarkdown writes r for a ticket (GitHub-flavoured Markdown): a heading with the
// outcome, the run's facts, one table row per probe and direction (failed rows first, their
// verdict in bold), the path MTU, and the evidence of every failed or skipped result.
func (r *Report) WriteMarkdown(w io.Writer) error {
	if r.Stateful != nil {
		return r.writeStatefulMarkdown(w)
	}
	bw := bufio.NewWriter(w)
	s := summarize(r.Results)
	word := outcome(s)
	if r.ladderStopped() {
		word = "FAIL (underlay dead)"
	}
	fmt.Fprintf(bw, "## ipsecpath %s: %s\n\n", mdText(r.Target), word)
	agent := "none (one-ended: the reverse direction is not tested)"
	if r.Agent != "" {
		agent = mdCode(r.Agent)
	}
	fmt.Fprintf(bw, "- target: %s\n- agent: %s\n- started: %s, took %s\n- version: %s %s\n",
		mdCode(r.Target), agent, stamp(r.Started), duration(r.DurationMs), mdText(r.Tool), mdText(r.Version))
	if l := pmtuLine(r.PMTU); l != "" {
		fmt.Fprintf(bw, "- path MTU: %s\n", mdText(l))
	}
	for _, l := range r.NAT.TextLines() {
		fmt.Fprintf(bw, "- %s\n", mdText(l))
	}
	fmt.Fprintf(bw, "- summary: %s\n\n", summaryLine(s))
	writeLadderMarkdown(bw, r.Ladder)

	order := failedFirst(r.Results)
	if len(order) == 0 {
		fmt.Fprint(bw, "No probe ran.\n")
	} else {
		fmt.Fprint(bw, "| Probe | Direction | Verdict | Hop | Detail |\n|---|---|---|---|---|\n")
		for _, res := range order {
			v := mdText(string(res.Verdict))
			if res.Verdict.Failed() {
				v = "**" + v + "**"
			}
			fmt.Fprintf(bw, "| %s | %s | %s | %s | %s |\n", mdCode(res.Probe), mdText(string(res.Direction)), v,
				mdText(res.Hop.String()), mdText(oneLine(res.Detail)))
		}
	}
	first := true
	for _, res := range order {
		if res.Verdict == Pass {
			continue
		}
		lines := res.Evidence.Lines()
		if len(lines) == 0 {
			continue
		}
		if first {
			fmt.Fprint(bw, "\n### Evidence\n")
			first = false
		}
		fmt.Fprintf(bw, "\n%s %s (%s):\n\n", mdCode(res.Probe), mdText(string(res.Direction)), mdText(string(res.Verdict)))
		for _, l := range lines {
			fmt.Fprintf(bw, "- %s\n", mdText(oneLine(l)))
		}
	}
	if err := bw.Flush(); err != nil {
		return fmt.Errorf("report: write markdown: %w", err)
	}
	return nil
}

// failedFirst returns pointers to the results, those with a failed verdict first, each
// group in report order.
func failedFirst(results []Result) []*Result {
	out := make([]*Result, 0, len(results))
	for i := range results {
		if results[i].Verdict.Failed() {
			out = append(out, &results[i])
		}
	}
	for i := range results {
		if !results[i].Verdict.Failed() {
			out = append(out, &results[i])
		}
	}
	return out
}

// mdEscaper escapes what Markdown would read as markup in a table cell or list item. "_",
// "#" and ">" are left alone: intraword underscores (IKE_SA_INIT) are not emphasis in
// GitHub-flavoured Markdown, and "#" and ">" only matter at the start of a line, where a
// cell or a list item's text never is.
var mdEscaper = strings.NewReplacer(
	`\`, `\\`, "|", `\|`, "*", `\*`, "`", "\\`", "<", "&lt;", "[", `\[`, "]", `\]`,
)

// mdText makes s safe as plain text inside a Markdown table cell or list item.
func mdText(s string) string {
	return mdEscaper.Replace(oneLine(s))
}

// mdCode shows s as inline code, or "-" when it is empty. Backticks inside are dropped:
// they would end the span early.
func mdCode(s string) string {
	s = strings.ReplaceAll(oneLine(s), "`", "")
	if s == "" {
		return "-"
	}
	return "`" + strings.ReplaceAll(s, "|", `\|`) + "`"
}
