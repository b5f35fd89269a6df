package probe

import (
	"context"
	"fmt"
	"net/netip"
	"time"

	"github.com/ipsecpath/ipsecpath/report"
)

// IKEClassOptions configures probeIKEClass.
type IKEClassOptions struct {
	Timeout time.Duration // per exchange, retransmits included; 0: IKEExchangeTimeout
	Nonce   uint32        // probe nonce for the initiator SPI (ike.SPIWithNonce); 0: random
	// FragSize is the wire size of the -frag forms; 0: FragProbeSize. The kernel cuts it
	// into IP fragments at the interface MTU.
	FragSize int
}

// probeIKEClass runs the one-ended (no agent) form of the check probes ike, ike-frag, natt
// and natt-frag against an IKE gateway: IKEv2 IKE_SA_INIT and IKEv1 Main Mode at once, to
// UDP 500 (ike) or 4500 with the non-ESP marker (natt), at their natural size or, for
// -frag, padded to FragSize bytes on the wire. Both are stateless (IKEOptions.Stateless):
// the gateway answers INVALID_KE_PAYLOAD or NO_PROPOSAL_CHOSEN and keeps no half-open SA,
// so a check never trips its per-peer limits. Verdict: pass when either version is
// answered (or the target itself sends ICMP port unreachable: the request arrived),
// blocked on an ICMP error from elsewhere, dropped on silence. It does not compare a -frag
// form with its unfragmented form: the caller turns "ike pass, ike-frag dropped" into
// frag-dropped. The error is for a probe that could not run.
func probeIKEClass(ctx context.Context, target netip.Addr, id ID, o IKEClassOptions) (report.Result, error) {
	port := 0
	switch id.Unfragmented() {
	case IKE:
		port = PortIKE
	case NATT:
		port = PortNATT
	default:
		return report.Result{}, fmt.Errorf("probe: ike: %q is not an IKE probe (ike, ike-frag, natt, natt-frag)", id)
	}
	size := 0
	if id.Fragmented() {
		size = o.FragSize
		if size == 0 {
			size = FragProbeSize
		}
	}
	jobs := []IKEOptions{
		{Version: 2, Port: port, Size: size, Stateless: true, Timeout: o.Timeout, Nonce: o.Nonce},
		{Version: 1, Port: port, Size: size, Stateless: true, Timeout: o.Timeout, Nonce: o.Nonce},
	}
	rs, err := runIKE(ctx, target, jobs, 0, 0)
	if err != nil {
		return report.Result{Probe: string(id), Direction: report.Forward, Verdict: report.Error, Detail: err.Error()}, err
	}
	best := rs[0]
	if ikeRank(rs[1]) > ikeRank(best) {
		best = rs[1]
	}
	res := ikeResultToReport(string(id), target.String(), best)
	res.Evidence.Attempts = rs[0].Attempts + rs[1].Attempts
	if res.Verdict == report.Dropped {
		res.Detail = fmt.Sprintf("no answer to IKEv2 IKE_SA_INIT nor IKEv1 Main Mode of %d bytes on UDP %d after %d sends each", best.Size, port, IKETries)
	}
	res.Evidence.Inferred = "one-ended: the IKE gateway's own answer proves the request arrived"
	return res, nil
}

// ikeRank orders exchange outcomes by what they prove about the path: an IKE answer, then
// an answer before the gateway went silent (a COOKIE), an ICMP error, then silence.
func ikeRank(r IKEResult) int {
	switch {
	case r.Answered():
		return 4
	case r.Arrived():
		return 3
	case r.Outcome == IKEUnreachable:
		return 2
	case r.Outcome == IKEGatewaySilent:
		return 1
	}
	return 0
}
