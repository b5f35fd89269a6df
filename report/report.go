// Package report holds the result of an ipsecpath run: one verdict per probe and direction,
// the path MTU, and the renderers (JSON contract, text, Markdown, JUnit) that print it.
package report

import (
	"encoding/json"
	"fmt"
	"io"
	"time"
)

// Tool is the value of the "tool" field of every JSON result.
const Tool = "ipsecpath"

// Version is the tool's version, set at build time with
// -ldflags "-X github.com/ipsecpath/ipsecpath/report.Version=…".
var Version = "0.1.0-dev"

// Verdict is what a probe found out about the path. The values are a contract (DESIGN.md).
type Verdict string

const (
	Pass        Verdict = "pass"         // it arrived (agent saw it, or the target answered)
	Dropped     Verdict = "dropped"      // silence
	Blocked     Verdict = "blocked"      // ICMP unreachable/admin-prohibited, or a RST not from the target
	FragDropped Verdict = "frag-dropped" // unfragmented form passes, fragmented form does not
	Partial     Verdict = "partial"      // some fragments arrived, not all
	Error       Verdict = "error"        // the probe could not run
	Skipped     Verdict = "skipped"      // not run (no agent, not asked for, …)
)

// Verdicts lists every verdict in the order a report explains them.
var Verdicts = []Verdict{Pass, Dropped, Blocked, FragDropped, Partial, Error, Skipped}

// Failed reports whether v means the path is broken for this probe. Error counts as failed:
// a check that could not run a probe has not shown the path works.
func (v Verdict) Failed() bool {
	switch v {
	case Dropped, Blocked, FragDropped, Partial, Error:
		return true
	}
	return false
}

// Valid reports whether v is one of the contract's verdicts.
func (v Verdict) Valid() bool {
	for _, k := range Verdicts {
		if v == k {
			return true
		}
	}
	return false
}

// Direction says which way a probe travelled.
type Direction string

const (
	Forward Direction = "forward" // initiator → responder
	Reverse Direction = "reverse" // agent → initiator: how a rekey from the far side travels
)

// Hop is a router on the path, found with TTL-limited probes, or placed by the TTL of what it
// sent (Estimated). TTL counts from the probe's sender: us forward, the agent reverse.
type Hop struct {
	TTL  int    `json:"ttl"`
	Addr string `json:"addr,omitempty"` // empty when the hop did not answer
	// Estimated marks a hop placed only by the TTL a packet arrived with (a reset sent in the
	// target's name: its source address says nothing), assuming a common initial TTL.
	Estimated bool `json:"estimated,omitempty"`
	// Bracket (last_reached, first_missed) says where a traced probe died (DESIGN.md): the
	// last hop it is known to have reached and the first it did not; the faulty device is
	// one end.
	*Bracket
}

// Fragment is one IP fragment as sent or as seen by the agent.
type Fragment struct {
	Offset int  `json:"offset"` // in bytes (the header field times 8)
	Length int  `json:"length"` // payload bytes of this fragment
	More   bool `json:"mf"`     // more-fragments flag
	TTL    int  `json:"ttl,omitempty"`
	DF     bool `json:"df,omitempty"`
}

// ICMP is an ICMP error that came back for a probe.
type ICMP struct {
	Type int    `json:"type"`
	Code int    `json:"code"`
	From string `json:"from"`          // who sent the error
	MTU  int    `json:"mtu,omitempty"` // next-hop MTU of a fragmentation-needed
	Text string `json:"text,omitempty"`
}

// Evidence is what a verdict rests on. Empty fields were not measured.
type Evidence struct {
	Size          int        `json:"size,omitempty"`             // bytes on the wire, IP header included
	Attempts      int        `json:"attempts,omitempty"`         // sends, retries included
	FragmentsSent []Fragment `json:"fragments_sent,omitempty"`   // as we cut them
	FragmentsSeen []Fragment `json:"fragments_seen,omitempty"`   // as the agent captured them
	ICMP          *ICMP      `json:"icmp,omitempty"`             // an ICMP error that came back
	RTTms         float64    `json:"rtt_ms,omitempty"`           // round trip of the answer
	Answer        string     `json:"answer,omitempty"`           // what answered: "syn-ack", "rst", "ike-sa-init", …
	AnsweredBy    string     `json:"answered_by,omitempty"`      // address the answer came from
	AgentSaw      *bool      `json:"agent_saw,omitempty"`        // with an agent: did it see the probe; nil: no agent
	Inferred      string     `json:"inferred,omitempty"`         // how the verdict was inferred without an agent
	Compared      string     `json:"compared_with,omitempty"`    // probe id this verdict was compared with (frag-dropped)
	Extra         string     `json:"extra,omitempty"`            // anything else worth a line
	SourcePort    int        `json:"source_port,omitempty"`      // UDP/TCP source port used
	DestPort      int        `json:"destination_port,omitempty"` // UDP/TCP destination port
	FragmentSize  int        `json:"fragment_size,omitempty"`    // largest fragment we cut, IP header included
	ProbeID       uint32     `json:"probe_nonce,omitempty"`      // the nonce that tied observations to this probe
	ResponderAddr string     `json:"responder_addr,omitempty"`   // the agent's or target's address as seen
	TLS           *TLS       `json:"tls,omitempty"`              // a tls:PORT probe's handshake
}

// Result is the verdict for one probe in one direction.
type Result struct {
	Probe     string    `json:"probe"`
	Direction Direction `json:"direction"`
	Verdict   Verdict   `json:"verdict"`
	Detail    string    `json:"detail"` // one sentence a person can act on
	Hop       *Hop      `json:"hop,omitempty"`
	Evidence  Evidence  `json:"evidence"`
}

// PathMTU is the path MTU found in one direction.
type PathMTU struct {
	MTU       int  `json:"mtu"`
	Blackhole bool `json:"blackhole"`
	Hop       *Hop `json:"hop,omitempty"` // where the black hole starts, when localised
	Probes    int  `json:"probes,omitempty"`
	// Signalled is true when the smallest size that failed drew an ICMP fragmentation-needed
	// (SignalledBy says from whom) or was refused by the sending host's own interface (Local).
	Signalled   bool   `json:"signalled,omitempty"`
	SignalledBy string `json:"signalled_by,omitempty"`
	// Local is true when the limit is the sending host's own interface MTU: ours forward, the
	// agent's reverse. No router said anything.
	Local bool `json:"local_limit,omitempty"`
	// Unfinished says why the search stopped before it settled (a bound, loss, the run's end):
	// MTU is then only the largest size seen to pass, and nothing else was established.
	Unfinished string `json:"unfinished,omitempty"`
}

// PMTU holds the path MTU per direction; Reverse is nil without an agent.
type PMTU struct {
	Forward *PathMTU `json:"forward,omitempty"`
	Reverse *PathMTU `json:"reverse,omitempty"`
}

// Summary counts verdicts: Pass those that passed, Fail those that failed (Verdict.Failed),
// Skipped those not run.
type Summary struct {
	Pass    int `json:"pass"`
	Fail    int `json:"fail"`
	Skipped int `json:"skipped"`
}

// AdviceLines is a result's "advice": sentences saying what to configure. `pmtu --json`
// writes its own "advice" object beside the report's fields; ReadJSON reads such a file
// with no advice lines rather than failing on it.
type AdviceLines []string

// UnmarshalJSON reads an array of strings; any other JSON value leaves the lines empty.
func (a *AdviceLines) UnmarshalJSON(b []byte) error {
	var lines []string
	if err := json.Unmarshal(b, &lines); err != nil {
		*a = nil
		return nil
	}
	*a = lines
	return nil
}

// Report is the whole result of a run. Its JSON form is a contract (DESIGN.md).
type Report struct {
	Tool       string    `json:"tool"`
	Version    string    `json:"version"`
	Target     string    `json:"target"`
	Agent      string    `json:"agent,omitempty"`
	NAT        *NAT      `json:"nat,omitempty"` // address translation seen (nil: not measured)
	Started    time.Time `json:"started"`
	DurationMs int64     `json:"duration_ms"`
	Results    []Result  `json:"results"`
	PMTU       *PMTU     `json:"pmtu,omitempty"`
	Ladder     *Ladder   `json:"ladder,omitempty"` // the triage ladder run before the probes
	Trace      *Trace    `json:"trace,omitempty"`  // ipsecpath trace's hops and brackets
	Summary    Summary   `json:"summary"`
	// Stateful is the result of `ipsecpath stateful`: the idle timer per protocol
	// (udp500, udp4500, esp, ah). A report with it is rendered as a stateful result.
	Stateful map[string]*StatefulTimer `json:"stateful,omitempty"`
	// Advice is what to configure, one sentence each (stateful).
	Advice AdviceLines `json:"advice,omitempty"`
	// Interrupted: the run was stopped (Ctrl-C) and holds what was known by then.
	Interrupted bool `json:"interrupted,omitempty"`
}

// New starts a report for target (and agent, empty without one) at the given time.
func New(target, agent string, started time.Time) *Report {
	return &Report{Tool: Tool, Version: Version, Target: target, Agent: agent,
		Started: started.UTC().Truncate(time.Millisecond), Results: []Result{}}
}

// Add appends a result and keeps the summary in step.
func (r *Report) Add(res Result) {
	r.Results = append(r.Results, res)
	r.Summarize()
}

// Summarize recounts the summary from the results.
func (r *Report) Summarize() {
	r.Summary = summarize(r.Results)
}

// Finish records the run's duration, measured up to end.
func (r *Report) Finish(end time.Time) {
	r.DurationMs = end.Sub(r.Started).Milliseconds()
	if r.DurationMs < 0 {
		r.DurationMs = 0
	}
	r.Summarize()
}

// Failed reports whether any result failed: the CLI then exits 1.
func (r *Report) Failed() bool {
	r.Summarize()
	return r.Summary.Fail > 0 || (r.Ladder != nil && r.Ladder.Stop != "")
}

// WriteJSON writes the report in its contract JSON form, indented, with a final newline.
func (r *Report) WriteJSON(w io.Writer) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	if err := enc.Encode(r); err != nil {
		return fmt.Errorf("report: write json: %w", err)
	}
	return nil
}

// ReadJSON reads a report written by WriteJSON (for diff).
func ReadJSON(rd io.Reader) (*Report, error) {
	var r Report
	dec := json.NewDecoder(rd)
	if err := dec.Decode(&r); err != nil {
		return nil, fmt.Errorf("report: read json: %w", err)
	}
	if r.Tool != Tool {
		return nil, fmt.Errorf("report: read json: not an ipsecpath result (tool %q)", r.Tool)
	}
	for i, res := range r.Results {
		if !res.Verdict.Valid() {
			return nil, fmt.Errorf("report: read json: result %d (%s): unknown verdict %q", i, res.Probe, res.Verdict)
		}
	}
	return &r, nil
}
