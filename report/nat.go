package report

import (
	"fmt"
	"io"
)

// NAT is what a run learnt about address translation between the two ends. Absent from a
// report (nil) means it was not measured: no agent saw our probes and no IKE answer
// carried NAT detection hashes. Detected false means it was measured and nothing was
// translated.
type NAT struct {
	Detected bool `json:"detected"`
	// Sent is our address:port as we sent it, Seen the same as the far end saw it (the
	// agent, or the IKE gateway's NAT detection hash). With a NAT, Seen's address is the
	// NAT's public address.
	Sent string `json:"sent,omitempty"`
	Seen string `json:"seen,omitempty"`
	// Kind is what was translated: "address", "port" or "address+port".
	Kind string `json:"kind,omitempty"`
	// Public is the NAT's public address: the address the far end sees us come from.
	Public string `json:"public_addr,omitempty"`
	// Side (IKE NAT detection) is where the NAT is: "ours" (in front of us), "gateway's"
	// (in front of the gateway) or "both".
	Side string `json:"side,omitempty"`
	// Via says how it was measured: "agent" (what the agent captured of our probes),
	// "control" (only the agent's view of the control connection), "ike-natd" (the
	// gateway's NAT detection hashes).
	Via string `json:"via"`
	// Detail is one sentence: what was seen and what it does to IPsec.
	Detail string `json:"detail"`
	// Advice is what to configure because of it (NAT-T keepalives, IKE fragmentation).
	Advice string `json:"advice,omitempty"`
}

// TextLines are the lines a text report prints about n: none when it was not measured.
func (n *NAT) TextLines() []string {
	if n == nil {
		return nil
	}
	var out []string
	if n.Detected {
		out = append(out, "NAT: "+oneLine(n.Detail))
	} else {
		out = append(out, "NAT: none: "+oneLine(n.Detail))
	}
	if n.Advice != "" {
		out = append(out, "NAT advice: "+oneLine(n.Advice))
	}
	return out
}

// writeNATText writes n's TextLines.
func writeNATText(w io.Writer, n *NAT) {
	for _, l := range n.TextLines() {
		fmt.Fprintln(w, l)
	}
}
