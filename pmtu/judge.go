package pmtu

import (
	"fmt"
	"strings"

	"github.com/ipsecpath/ipsecpath/probe/wire"
	"github.com/ipsecpath/ipsecpath/report"
)

// fullSize is the MTU of an unconstrained (Ethernet) path: a search that reaches it has
// found no narrow link.
const fullSize = 1500

// Judge is the report row of the search in direction d (the pmtu probe of both 'ipsecpath
// check' and 'ipsecpath pmtu'). Every sentence rests on a field the search set: a search
// that did not settle says "unfinished" and claims nothing else; a limit the sending host's
// own interface set says whose (ours forward, the agent's reverse); "the narrow link says
// so" needs a fragmentation-needed that was seen; a black hole names the last hop the large
// probe reached. A nil Result (no size came back) is an error row.
func (r *Result) Judge(d report.Direction) report.Result {
	row := report.Result{Probe: "pmtu", Direction: d}
	reverse := d == report.Reverse
	dir, sender := "", "our"
	if reverse {
		dir, sender = " toward us", "the agent's"
	}
	if r == nil || r.MTU == 0 {
		row.Verdict = report.Error
		row.Detail = fmt.Sprintf("The path MTU search%s found no size that arrives.", dir)
		return row
	}
	p := r.PathMTU()
	row.Hop = p.Hop
	row.Evidence = r.evidence()
	switch {
	case p.Blackhole:
		row.Verdict = report.Dropped
		row.Detail = blackholeDetail(&p, reverse)
	case p.Unfinished != "":
		row.Verdict = report.Error
		row.Detail = fmt.Sprintf("The path MTU search%s is unfinished (%s): packets of %d bytes with DF set arrive, but where larger ones stop and whether the path says so with ICMP fragmentation-needed was not established; run 'ipsecpath pmtu' for the path MTU alone.",
			dir, strings.TrimSuffix(p.Unfinished, "."), p.MTU)
	case p.MTU >= fullSize:
		row.Verdict = report.Pass
		row.Detail = fmt.Sprintf("Path MTU%s is %d bytes: full-size packets pass with DF set.", dir, p.MTU)
	case r.Upper == 0:
		// The largest size asked for passed: nothing larger was tried.
		row.Verdict = report.Pass
		row.Detail = fmt.Sprintf("Path MTU%s is at least %d bytes (the largest size tried).", dir, p.MTU)
	case r.ICMPUnseen:
		row.Verdict = report.Pass
		row.Detail = fmt.Sprintf("Path MTU%s is %d bytes; whether the narrow link sends ICMP fragmentation-needed can only be seen at the agent's end.", dir, p.MTU)
	case p.Local:
		row.Verdict = report.Pass
		row.Detail = fmt.Sprintf("Path MTU%s is %d bytes, set by %s own interface MTU (larger DF packets were refused before leaving; no router on the path said anything); size tunnels for it (MSS clamp, tunnel MTU).", dir, p.MTU, sender)
	case p.Signalled:
		row.Verdict = report.Pass
		row.Detail = fmt.Sprintf("Path MTU%s is %d bytes and the narrow link (%s) says so with ICMP fragmentation-needed, so PMTU discovery works; size tunnels for it (MSS clamp, tunnel MTU).", dir, p.MTU, p.SignalledBy)
	default:
		row.Verdict = report.Dropped
		if st, ok := r.refusal(); ok {
			row.Detail = fmt.Sprintf("Path MTU%s is %d bytes: %d-byte packets with DF set do not arrive, and %s answered them with %s, not a fragmentation-needed, so PMTU discovery cannot adapt; a device there may refuse large packets.",
				dir, p.MTU, st.Size, st.From, refusalText[st.Outcome])
			break
		}
		row.Detail = fmt.Sprintf("Path MTU%s is %d bytes: larger packets with DF set do not arrive and no ICMP fragmentation-needed came back for them, so PMTU discovery cannot adapt; run 'ipsecpath pmtu' to see what the path answers instead.", dir, p.MTU)
	}
	return row
}

// refusalText words the outcomes that refuse a size without a fragmentation-needed.
var refusalText = map[string]string{
	Unreachable.String():  "an ICMP destination unreachable",
	TimeExceeded.String(): "an ICMP time-exceeded at full TTL",
}

// refusal is the last answer to the smallest failing size (Upper) that was an ICMP error
// other than fragmentation-needed, from a known sender.
func (r *Result) refusal() (Step, bool) {
	for i := len(r.Steps) - 1; i >= 0; i-- {
		st := r.Steps[i]
		if _, ok := refusalText[st.Outcome]; ok && st.Size == r.Upper && st.From.IsValid() {
			return st, true
		}
	}
	return Step{}, false
}

// evidence is what a row rests on: the MTU, the probes sent, the router's
// fragmentation-needed when one was seen (never for a limit of the sender's own interface:
// no ICMP came), and why the search stopped early.
func (r *Result) evidence() report.Evidence {
	ev := report.Evidence{Size: r.MTU, Attempts: r.Probes}
	if r.ICMPFrom.IsValid() {
		ev.ICMP = &report.ICMP{Type: wire.ICMPUnreach, Code: wire.CodeFragNeeded, From: r.ICMPFrom.String(),
			MTU: r.ICMPMTU, Text: wire.ICMPName(wire.ICMPUnreach, wire.CodeFragNeeded)}
	}
	if r.Stopped != "" {
		ev.Extra = "search stopped early: " + r.Stopped
	}
	return ev
}

// blackholeDetail is the sentence of a black hole: where the large packets vanish (the
// last hop they reached, or a bracket when the next hop answers nothing) and, reverse, that
// the agent's packets vanish and no fragmentation-needed reached the agent.
func blackholeDetail(p *report.PathMTU, reverse bool) string {
	at := ""
	switch {
	case p.Hop.Bracketed() && p.Hop.FirstMissed != nil:
		at = " " + p.Hop.String() // the next hop answers nothing: the drop may be there
	case p.Hop != nil && p.Hop.Addr != "":
		at = fmt.Sprintf(" after hop %d (%s)", p.Hop.TTL, p.Hop.Addr)
	}
	if reverse {
		return fmt.Sprintf("Path MTU black hole on the way back%s: the agent's packets above %d bytes with DF set vanish without an ICMP fragmentation-needed reaching the agent, so PMTU discovery from the responder's side fails; let ICMP type 3 code 4 through toward the responder, or clamp the MSS / lower the tunnel MTU.", at, p.MTU)
	}
	return fmt.Sprintf("Path MTU black hole%s: packets above %d bytes with DF set vanish without an ICMP fragmentation-needed, so PMTU discovery fails; let ICMP type 3 code 4 through, or clamp the MSS / lower the tunnel MTU.", at, p.MTU)
}
