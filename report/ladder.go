package report

import (
	"bufio"
	"fmt"
	"io"
	"strings"
)

// RungVerdict is what one rung of the ladder found.
type RungVerdict string

const (
	RungPass         RungVerdict = "pass"          // it answered ICMP echo (or, for dns, resolved the name)
	RungEchoFiltered RungVerdict = "echo-filtered" // no echo reply, but a TCP or UDP probe got an answer: only echo is filtered
	RungDead         RungVerdict = "dead"          // nothing at all came back: echo, TCP SYN and UDP all silent
	RungUnreachable  RungVerdict = "unreachable"   // another device said it cannot reach it (ICMP unreachable)
	RungNoRoute      RungVerdict = "no-route"      // this host has no route toward it
	RungError        RungVerdict = "error"         // the rung could not be tested (the detail says why)
	RungSkipped      RungVerdict = "skipped"       // not applicable (an on-link target has no gateway, an address needs no DNS)
)

// Failed reports whether a rung with this verdict is broken. Echo-filtered is not: the
// address answers, only ICMP echo is filtered.
func (v RungVerdict) Failed() bool {
	switch v {
	case RungDead, RungUnreachable, RungNoRoute, RungError:
		return true
	}
	return false
}

// Rung is one step of the triage ladder: loopback, route, gateway, dns, target.
type Rung struct {
	Rung    string      `json:"rung"`           // loopback, route, gateway, dns, target
	Addr    string      `json:"addr,omitempty"` // the address tested
	Verdict RungVerdict `json:"verdict"`
	Detail  string      `json:"detail"` // one sentence a person can act on
	// AnsweredBy is what came back: "echo-reply", "tcp-syn-ack", "tcp-rst",
	// "icmp-port-unreachable", "dns-answer", "dns-nxdomain", …; empty when nothing did.
	AnsweredBy string  `json:"answered_by,omitempty"`
	RTTms      float64 `json:"rtt_ms,omitempty"`
	// Tried lists the probes sent, in order: "echo", "tcp:1792", "udp:33434", "dns".
	Tried []string `json:"tried,omitempty"`
	// From is the address of a device that answered for this rung with an ICMP error.
	From string `json:"from,omitempty"`
}

// LocalSocket is a socket on this host (in this network namespace) bound to a port a check uses.
type LocalSocket struct {
	Proto   string `json:"proto"` // "udp" or "udp6"
	Addr    string `json:"addr"`  // local address:port as bound
	Port    int    `json:"port"`
	PID     int    `json:"pid,omitempty"`     // 0 when no process could be found holding it
	Process string `json:"process,omitempty"` // /proc/PID/comm
	Cmdline string `json:"cmdline,omitempty"`
	Inode   uint64 `json:"inode"`
}

// FirewallRule is a rule of this host's own firewall (nftables, in this network namespace)
// that drops or rejects what a check sends, or the answers it waits for.
type FirewallRule struct {
	Table  string `json:"table"` // "ip filter", "inet fw", …
	Chain  string `json:"chain"`
	Hook   string `json:"hook"` // output, postrouting, input, prerouting
	Rule   string `json:"rule"` // the rule as nft lists it ("policy drop" for a chain policy)
	Action string `json:"action"`
	// Probes are the probe ids the rule catches; Certain is false when the rule has matches
	// we do not evaluate (it may catch them).
	Probes  []string `json:"probes,omitempty"`
	Certain bool     `json:"certain"`
}

// Preflight is what the ladder found on this host before anything was sent.
type Preflight struct {
	// Sockets are the sockets bound to UDP 500 and 4500 here, with the process holding each.
	Sockets []LocalSocket `json:"sockets"`
	// Firewall are the local rules that drop or reject what the check sends or waits for.
	Firewall []FirewallRule `json:"firewall"`
	// FirewallChecked is false when the local ruleset could not be read (FirewallNote says why).
	FirewallChecked bool     `json:"firewall_checked"`
	FirewallNote    string   `json:"firewall_note,omitempty"`
	Notes           []string `json:"notes,omitempty"` // one sentence per local finding
}

// Ladder is the triage ladder: the underlay checked rung by rung before any crafted probe.
type Ladder struct {
	Target    string     `json:"target"`             // as given (an address or a name)
	Resolved  string     `json:"resolved,omitempty"` // the address a name resolved to
	Rungs     []Rung     `json:"rungs"`
	Preflight *Preflight `json:"preflight,omitempty"`
	// Stop is set when the underlay itself is dead: the one sentence that says what to fix
	// first. Crafted probes are not sent then.
	Stop string `json:"stop,omitempty"`
}

// Failed reports whether any rung failed.
func (l *Ladder) Failed() bool {
	for _, r := range l.Rungs {
		if r.Verdict.Failed() {
			return true
		}
	}
	return false
}

// WriteLadderText prints the ladder: one line per rung, then the preflight findings and the
// stop sentence.
func WriteLadderText(w io.Writer, l *Ladder) error {
	var b strings.Builder
	fmt.Fprintf(&b, "Ladder toward %s", l.Target)
	if l.Resolved != "" && l.Resolved != l.Target {
		fmt.Fprintf(&b, " (%s)", l.Resolved)
	}
	b.WriteString(":\n")
	for _, r := range l.Rungs {
		addr := r.Addr
		if addr == "" {
			addr = "-"
		}
		fmt.Fprintf(&b, "  %-9s %-15s %-13s %s\n", r.Rung, addr, r.Verdict, r.Detail)
	}
	if p := l.Preflight; p != nil {
		b.WriteString("Local preflight (this host):\n")
		for _, n := range p.Notes {
			fmt.Fprintf(&b, "  %s\n", n)
		}
		if !p.FirewallChecked && p.FirewallNote != "" {
			fmt.Fprintf(&b, "  %s\n", p.FirewallNote)
		}
	}
	if l.Stop != "" {
		fmt.Fprintf(&b, "%s\n", l.Stop)
	}
	_, err := io.WriteString(w, b.String())
	if err != nil {
		return fmt.Errorf("report: write ladder: %w", err)
	}
	return nil
}

// ladderStopped reports whether the ladder found the underlay dead and no probe was sent.
func (r *Report) ladderStopped() bool { return r.Ladder != nil && r.Ladder.Stop != "" }

// writeLadderMarkdown writes the ladder as a table, its stop sentence and the preflight.
func writeLadderMarkdown(bw *bufio.Writer, l *Ladder) {
	if l == nil {
		return
	}
	fmt.Fprint(bw, "### Ladder\n\n| Rung | Address | Verdict | Detail |\n|---|---|---|---|\n")
	for _, g := range l.Rungs {
		v := mdText(string(g.Verdict))
		if g.Verdict.Failed() {
			v = "**" + v + "**"
		}
		fmt.Fprintf(bw, "| %s | %s | %s | %s |\n", mdText(g.Rung), mdCode(g.Addr), v, mdText(oneLine(g.Detail)))
	}
	if l.Stop != "" {
		fmt.Fprintf(bw, "\n**%s**\n", mdText(oneLine(l.Stop)))
	}
	if p := l.Preflight; p != nil {
		fmt.Fprint(bw, "\nLocal preflight (this host):\n\n")
		for _, n := range p.Notes {
			fmt.Fprintf(bw, "- %s\n", mdText(oneLine(n)))
		}
		if !p.FirewallChecked && p.FirewallNote != "" {
			fmt.Fprintf(bw, "- %s\n", mdText(oneLine(p.FirewallNote)))
		}
	}
	fmt.Fprintln(bw)
}

// ladderCase is the ladder as one JUnit test case: failed when any rung failed.
func ladderCase(l *Ladder) (JUnitCase, bool) {
	if l == nil {
		return JUnitCase{}, false
	}
	c := JUnitCase{ClassName: "ipsecpath.ladder", Name: "ladder"}
	var lines []string
	var failed []string
	for _, g := range l.Rungs {
		lines = append(lines, fmt.Sprintf("%s %s %s: %s", g.Rung, g.Addr, g.Verdict, oneLine(g.Detail)))
		if g.Verdict.Failed() {
			failed = append(failed, g.Rung)
		}
	}
	text := xmlSafe(strings.Join(lines, "\n"))
	if len(failed) > 0 || l.Stop != "" {
		msg := l.Stop
		if msg == "" {
			msg = "failed rungs: " + strings.Join(failed, ", ")
		}
		c.Failure = &JUnitProblem{Message: xmlSafe(oneLine(msg)), Type: "ladder", Text: text}
	} else {
		c.SystemOut = &JUnitCharData{Text: text}
	}
	return c, true
}

// LocalFirewallVerdicts turns the failed forward verdicts of probes this host's own firewall drops
// on the way out into errors that say so: the path was not tested for them.
func (rep *Report) LocalFirewallVerdicts() {
	if rep.Ladder == nil || rep.Ladder.Preflight == nil {
		return
	}
	for i := range rep.Results {
		r := &rep.Results[i]
		if r.Direction != Forward || !r.Verdict.Failed() {
			continue
		}
		for _, fw := range rep.Ladder.Preflight.Firewall {
			if !fw.Certain || (fw.Hook != "output" && fw.Hook != "postrouting") {
				continue
			}
			for _, p := range fw.Probes {
				if p == r.Probe {
					r.Evidence.Extra = fmt.Sprintf("local firewall: nft %s chain %s: %s (the probe's own verdict was %s)", fw.Table, fw.Chain, fw.Rule, r.Verdict)
					r.Verdict = Error
					r.Detail = fmt.Sprintf("This host's own firewall %ss it before it leaves (nft %s chain %s: %q): a local cause; the path was not tested for %s.", fw.Action, fw.Table, fw.Chain, fw.Rule, r.Probe)
				}
			}
		}
	}
	rep.Summarize()
}
