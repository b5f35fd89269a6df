package report

import (
	"bufio"
	"fmt"
	"io"
	"sort"
	"strconv"
	"strings"
)

// StatefulTimer is what `ipsecpath stateful` found for one protocol (udp500, udp4500, esp,
// ah): how long the far side's packets still arrive after the flow went quiet. The timer of
// a stateful device on the path lies between SurvivedS and DiedS.
type StatefulTimer struct {
	// TimerFound: a reverse packet arrived after SurvivedS seconds of silence and did not
	// after DiedS. False: every reverse packet arrived up to SurvivedS, the longest idle time
	// tested (--max-idle), or the protocol could not be measured (Error says why).
	TimerFound bool `json:"timer_found"`
	// SurvivedS is the longest idle time, in seconds, after which the reverse packet still arrived.
	SurvivedS float64 `json:"survived_s"`
	// DiedS is the shortest idle time, in seconds, after which it did not (only when TimerFound).
	DiedS float64 `json:"died_s,omitempty"`
	// Flows is how many flows were opened (UDP: distinct source ports; ESP/AH: openings).
	Flows int `json:"flows"`
	// Detail is one sentence saying what was seen and what it means.
	Detail string `json:"detail,omitempty"`
	// Error says why the protocol could not be measured (forward or reverse blocked even
	// without idle time, the agent failed); empty when it was.
	Error string `json:"error,omitempty"`
}

// StatefulProtocols lists the protocols of a stateful result in the order they are shown.
var StatefulProtocols = []string{"udp500", "udp4500", "esp", "ah"}

// statefulKeys returns the protocols of m in StatefulProtocols order, unknown ones after.
func statefulKeys(m map[string]*StatefulTimer) []string {
	rank := map[string]int{}
	for i, p := range StatefulProtocols {
		rank[p] = i + 1
	}
	var keys []string
	for k := range m {
		keys = append(keys, k)
	}
	sort.Slice(keys, func(i, j int) bool {
		ri, rj := rank[keys[i]], rank[keys[j]]
		if ri == 0 {
			ri = len(rank) + 1
		}
		if rj == 0 {
			rj = len(rank) + 1
		}
		if ri != rj {
			return ri < rj
		}
		return keys[i] < keys[j]
	})
	return keys
}

// Seconds formats a time in seconds the way stateful results print it: "8", "9.8", "10.25".
func Seconds(s float64) string {
	return strconv.FormatFloat(s, 'f', -1, 64) + " s"
}

// Cell is the short form of a timer for a table: "9.8-10.3 s", "none up to 30 s", "error".
func (t *StatefulTimer) Cell() string {
	switch {
	case t == nil:
		return "not tested"
	case t.Error != "":
		return "not measured"
	case t.TimerFound:
		return strconv.FormatFloat(t.SurvivedS, 'f', -1, 64) + "-" + Seconds(t.DiedS)
	}
	return "none up to " + Seconds(t.SurvivedS)
}

// StatefulFailed reports whether a stateful result found a timer or could not measure a protocol:
// the CLI then exits 1.
func (r *Report) StatefulFailed() bool {
	for _, t := range r.Stateful {
		if t.TimerFound || t.Error != "" {
			return true
		}
	}
	return false
}

func (r *Report) writeStatefulText(w io.Writer) error {
	bw := bufio.NewWriter(w)
	fmt.Fprintf(bw, "target %s, agent %s\nstarted %s, took %s\n", oneLine(r.Target), oneLine(r.Agent), stamp(r.Started), duration(r.DurationMs))
	writeNATText(bw, r.NAT)
	if r.Interrupted {
		fmt.Fprintln(bw, "INTERRUPTED: what was known when the run was stopped")
	}
	fmt.Fprintln(bw)
	keys := statefulKeys(r.Stateful)
	wp, wc := len("PROTOCOL"), len("IDLE TIMER")
	for _, k := range keys {
		wp = max(wp, len(k))
		wc = max(wc, len(r.Stateful[k].Cell()))
	}
	fmt.Fprintf(bw, "%s  %s  %s  DETAIL\n", pad("PROTOCOL", wp), pad("IDLE TIMER", wc), "FLOWS")
	for _, k := range keys {
		t := r.Stateful[k]
		d := t.Detail
		if t.Error != "" && d == "" {
			d = t.Error
		}
		fmt.Fprintf(bw, "%s  %s  %5d  %s\n", pad(oneLine(k), wp), pad(t.Cell(), wc), t.Flows, oneLine(d))
	}
	if len(r.Advice) > 0 {
		fmt.Fprintln(bw, "\nadvice:")
		for _, a := range r.Advice {
			fmt.Fprintf(bw, "- %s\n", oneLine(a))
		}
	}
	if err := bw.Flush(); err != nil {
		return fmt.Errorf("report: write text: %w", err)
	}
	return nil
}

func (r *Report) writeStatefulMarkdown(w io.Writer) error {
	bw := bufio.NewWriter(w)
	word := "no idle timer found"
	if r.StatefulFailed() {
		word = "idle timer found or not measured"
	}
	fmt.Fprintf(bw, "## ipsecpath stateful %s: %s\n\n", mdText(r.Target), word)
	fmt.Fprintf(bw, "- target: %s\n- agent: %s\n- started: %s, took %s\n- version: %s %s\n",
		mdCode(r.Target), mdCode(r.Agent), stamp(r.Started), duration(r.DurationMs), mdText(r.Tool), mdText(r.Version))
	if r.Interrupted {
		fmt.Fprint(bw, "- **interrupted**: what was known when the run was stopped\n")
	}
	fmt.Fprint(bw, "\n| Protocol | Idle timer | Survived | Died | Flows | Detail |\n|---|---|---|---|---|---|\n")
	for _, k := range statefulKeys(r.Stateful) {
		t := r.Stateful[k]
		died := "-"
		if t.TimerFound {
			died = Seconds(t.DiedS)
		}
		d := t.Detail
		if d == "" {
			d = t.Error
		}
		fmt.Fprintf(bw, "| %s | %s | %s | %s | %d | %s |\n", mdCode(k), mdText(t.Cell()), mdText(Seconds(t.SurvivedS)), mdText(died), t.Flows, mdText(d))
	}
	if len(r.Advice) > 0 {
		fmt.Fprint(bw, "\n### Advice\n\n")
		for _, a := range r.Advice {
			fmt.Fprintf(bw, "- %s\n", mdText(a))
		}
	}
	if err := bw.Flush(); err != nil {
		return fmt.Errorf("report: write markdown: %w", err)
	}
	return nil
}

// statefulJUnit is the JUnit form of a stateful result: one testcase per protocol, a
// failure when a timer was found (its detail the message), an error when not measured.
func (r *Report) statefulJUnit() *JUnitSuites {
	secs := strconv.FormatFloat(float64(r.DurationMs)/1000, 'f', 3, 64)
	suite := JUnitSuite{
		Name: xmlSafe("ipsecpath stateful " + r.Target), Time: secs,
		Properties: []JUnitProperty{{Name: "target", Value: xmlSafe(r.Target)}, {Name: "agent", Value: xmlSafe(r.Agent)},
			{Name: "version", Value: xmlSafe(r.Version)}, {Name: "interrupted", Value: strconv.FormatBool(r.Interrupted)}},
	}
	if !r.Started.IsZero() {
		suite.Timestamp = r.Started.UTC().Format("2006-01-02T15:04:05")
	}
	for _, k := range statefulKeys(r.Stateful) {
		t := r.Stateful[k]
		c := JUnitCase{ClassName: "ipsecpath.stateful", Name: xmlSafe(k)}
		text := xmlSafe(strings.Join(append([]string{"idle timer: " + t.Cell(), "flows: " + strconv.Itoa(t.Flows)}, r.Advice...), "\n"))
		suite.Tests++
		switch {
		case t.Error != "":
			suite.Errors++
			c.Error = &JUnitProblem{Message: xmlSafe(oneLine(t.Error)), Type: "error", Text: text}
		case t.TimerFound:
			suite.Failures++
			c.Failure = &JUnitProblem{Message: xmlSafe(oneLine(t.Detail)), Type: "idle-timer", Text: text}
		default:
			c.SystemOut = &JUnitCharData{Text: xmlSafe(oneLine(t.Detail))}
		}
		suite.Cases = append(suite.Cases, c)
	}
	return &JUnitSuites{Tests: suite.Tests, Failures: suite.Failures, Errors: suite.Errors, Time: secs, Suites: []JUnitSuite{suite}}
}
