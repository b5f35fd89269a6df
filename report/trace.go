package report

import (
	"fmt"
	"io"
	"strconv"
	"strings"
)

// HopRef names one hop of a path: its distance in hops (TTL) and the address it answers
// from ("" when unknown). TTL 0 is the sending end itself.
type HopRef struct {
	TTL  int    `json:"ttl"`
	Addr string `json:"addr"`
}

// String gives a hop as "198.51.100.1 (hop 1)", or "hop 2 (address unknown)".
func (h *HopRef) String() string {
	if h == nil {
		return ""
	}
	if h.Addr == "" {
		return "hop " + strconv.Itoa(h.TTL) + " (address unknown)"
	}
	return h.Addr + " (hop " + strconv.Itoa(h.TTL) + ")"
}

// Bracket localises where a probe dies: LastReached is the last hop it is known to have
// reached (that hop's time-exceeded came back; TTL 0 is the sender itself), FirstMissed
// the first hop after it known to answer probes that pass but that did not answer this one
// (nil when no hop beyond LastReached answers anything). The device at fault is one end:
// LastReached dropping it on its way out, or FirstMissed on its way in. Hops that send no
// time-exceeded widen the bracket: nothing between its ends is guessed.
type Bracket struct {
	LastReached *HopRef `json:"last_reached,omitempty"`
	FirstMissed *HopRef `json:"first_missed,omitempty"`
}

// Between says the bracket the way an engineer reads it: "between 198.51.100.1 (hop 1) and
// 192.0.2.66 (hop 2)", or "after 198.51.100.1 (hop 1)" without a first missed hop.
func (b *Bracket) Between() string {
	if b == nil || b.LastReached == nil {
		return ""
	}
	if b.FirstMissed == nil {
		return "after " + b.LastReached.String()
	}
	return "between " + b.LastReached.String() + " and " + b.FirstMissed.String()
}

// TraceHop is what one TTL of a trace found.
type TraceHop struct {
	TTL int `json:"ttl"`
	// Addr answered for this TTL: the router whose time-exceeded came back, the far end, or
	// the device that sent another ICMP error. Empty when nothing came back.
	Addr    string  `json:"addr,omitempty"`
	Reached bool    `json:"reached"`           // the probe is known to have got this far
	RTTms   float64 `json:"rtt_ms,omitempty"`  // of the answer
	FarEnd  bool    `json:"far_end,omitempty"` // this TTL arrived at the far end
	// ICMP names an ICMP error other than time-exceeded that this TTL drew.
	ICMP string `json:"icmp,omitempty"`
}

// FragmentFate is how far one fragment of a fragmented probe is known to have got.
type FragmentFate struct {
	Offset int `json:"offset"` // in bytes
	Length int `json:"length"` // payload bytes
	// LastReached is the last hop whose time-exceeded quoted this fragment (nil: none did;
	// routers send time-exceeded only for first fragments, RFC 1812 4.3.2.7).
	LastReached *HopRef `json:"last_reached,omitempty"`
	// FarEnd: the agent saw this fragment arrive (nil without an agent: not known).
	FarEnd *bool `json:"far_end,omitempty"`
}

// TracePath is a trace in one direction.
type TracePath struct {
	Hops []TraceHop `json:"hops"`
	Bracket
	FarEnd bool `json:"far_end"` // the probe arrived at the far end (at least one TTL)
	// FarEndTTL is the least TTL that arrived at the far end (0: not known).
	FarEndTTL int `json:"far_end_ttl,omitempty"`
	// Refused is an ICMP error other than time-exceeded that the probe drew (the device
	// that sent it refused the probe), named; RefusedBy is its source.
	Refused   string         `json:"refused,omitempty"`
	RefusedBy *HopRef        `json:"refused_by,omitempty"`
	Fragments []FragmentFate `json:"fragments,omitempty"`
	// Reference is the probe whose hop addresses fill FirstMissed's address (a small ICMP
	// echo and, for a -frag probe, its unfragmented form).
	Reference string `json:"reference,omitempty"`
	// Unconfirmed: one-ended, the probe reached the last router before the far end, which
	// answers this protocol by nature with silence (ESP, AH): its arrival is not known.
	Unconfirmed bool   `json:"unconfirmed,omitempty"`
	Detail      string `json:"detail"`           // one sentence, as in a check result
	Probes      int    `json:"probes,omitempty"` // packets sent for this direction, references included
}

// Hop is the hop object of a failing result localised by this path: the first hop missed
// (or, for a refusal, the device that refused) with the bracket.
func (p *TracePath) Hop() *Hop {
	b := p.Bracket
	h := &Hop{Bracket: &b}
	switch {
	case p.RefusedBy != nil:
		h.TTL, h.Addr = p.RefusedBy.TTL, p.RefusedBy.Addr
	case p.FirstMissed != nil:
		h.TTL, h.Addr = p.FirstMissed.TTL, p.FirstMissed.Addr
	case p.LastReached != nil:
		h.TTL, h.Addr = p.LastReached.TTL+1, ""
	}
	return h
}

// Trace is the result of `ipsecpath trace`: the probe traced, per direction.
type Trace struct {
	Probe   string     `json:"probe"`
	Forward *TracePath `json:"forward,omitempty"`
	Reverse *TracePath `json:"reverse,omitempty"`
}

// HopLines renders a path's hops as text lines, one per TTL: "  2  192.0.2.66  0.4 ms".
func (p *TracePath) HopLines() []string {
	var out []string
	for _, h := range p.Hops {
		var b strings.Builder
		b.WriteString("  ")
		b.WriteString(pad(strconv.Itoa(h.TTL), 3))
		switch {
		case h.Addr == "":
			b.WriteString("*")
		default:
			b.WriteString(h.Addr)
			if h.RTTms > 0 {
				b.WriteString("  " + strconv.FormatFloat(h.RTTms, 'f', 3, 64) + " ms")
			}
		}
		if h.FarEnd {
			b.WriteString("  far end")
		}
		if h.ICMP != "" {
			b.WriteString("  " + oneLine(h.ICMP))
		}
		out = append(out, b.String())
	}
	return out
}

// writeTraceText writes a trace's hops per direction (text form), after the result table.
func writeTraceText(w io.Writer, t *Trace) {
	if t == nil {
		return
	}
	for _, d := range []struct {
		name string
		p    *TracePath
	}{{"forward", t.Forward}, {"reverse", t.Reverse}} {
		if d.p == nil {
			continue
		}
		fmt.Fprintf(w, "%s %s, hop by hop (TTL, who answered, round trip):\n", oneLine(t.Probe), d.name)
		for _, l := range d.p.HopLines() {
			fmt.Fprintln(w, l)
		}
		for _, f := range d.p.Fragments {
			fmt.Fprintf(w, "  fragment %d+%d: %s\n", f.Offset, f.Length, f.fate())
		}
		if b := d.p.Between(); b != "" && (!d.p.FarEnd || d.p.FirstMissed != nil) {
			fmt.Fprintf(w, "  dies %s\n", b)
		}
		fmt.Fprintln(w)
	}
}

// fate says how far a fragment is known to have got.
func (f FragmentFate) fate() string {
	var parts []string
	if f.LastReached != nil {
		parts = append(parts, "answered for by "+f.LastReached.String())
	} else {
		parts = append(parts, "no router answered for it")
	}
	switch {
	case f.FarEnd == nil:
		parts = append(parts, "arrival not known (no agent)")
	case *f.FarEnd:
		parts = append(parts, "arrived at the far end")
	default:
		parts = append(parts, "never arrived at the far end")
	}
	return strings.Join(parts, ", ")
}
