package probe

import (
	"context"
	"fmt"
	"net"
	"net/netip"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/ipsecpath/ipsecpath/ike"
	"github.com/ipsecpath/ipsecpath/probe/wire"
	"github.com/ipsecpath/ipsecpath/report"
)

// Size search limits. A miss in the search costs IKESearchTries waits of IKESearchWait
// (or 6× the measured round trip, if longer), so a search over a path that drops big
// messages takes about IKESearchProbes × 0.6 s at worst.
const (
	IKEDefaultMaxSize = 5000 // upper bound of the size search, bytes on the wire
	IKESearchProbes   = 8    // probes a size search may send besides its calibration and control
	IKESearchTries    = 2
	IKESearchWait     = 300 * time.Millisecond
)

// IKESurveyOptions configures SurveyIKE: which exchanges to run, and the size search and
// proposal enumeration around them.
type IKESurveyOptions struct {
	Versions   []int // nil: 2 and 1
	Ports      []int // nil: 500 and 4500
	SourcePort int   // 0: ephemeral (one socket per exchange, all at once); else one at a time
	Size       int   // size on the wire of every exchange's request; 0: natural
	Auth       ike.AuthMethod
	Timeout    time.Duration // per exchange; 0: IKEExchangeTimeout
	// Stateless makes every exchange ask for an answer that leaves no half-open SA on the
	// gateway (IKEOptions.Stateless): reachability only, no chosen proposal.
	Stateless bool
	// Search looks for the largest request size answered, between the natural size and
	// MaxSize (0: IKEDefaultMaxSize), with stateless requests (IKEOptions.Stateless).
	Search  bool
	MaxSize int
	// Proposals, when set, are offered one at a time (per version, on the first port) to
	// learn which the gateway accepts; the plain exchanges are then skipped.
	Proposals []ike.Proposal
	// Progress, when set, is told what is being probed.
	Progress func(format string, args ...any)
}

// IKEProposalResult says whether a gateway accepted one proposal.
type IKEProposalResult struct {
	Proposal string     `json:"proposal"`
	Version  int        `json:"version"`
	Port     int        `json:"port"`
	Accepted bool       `json:"accepted"`
	Result   IKEResult  `json:"result,omitzero"` // absent when Skipped: nothing was sent
	Outcome  IKEOutcome `json:"outcome,omitempty"`
	Skipped  string     `json:"skipped,omitempty"` // why it was not offered
}

// IKESizeResult is what the size search found.
type IKESizeResult struct {
	Version int `json:"version"`
	Port    int `json:"port"`
	// Stateless: the search used requests that leave no state on the gateway; false means
	// the gateway did not answer those and the search used real proposals.
	Stateless bool `json:"stateless"`
	// LargestAnswered is the largest request answered, bytes on the wire; SmallestUnanswered
	// the smallest one not answered (0: every size up to MaxSize was answered).
	LargestAnswered    int `json:"largest_answered"`
	SmallestUnanswered int `json:"smallest_unanswered,omitempty"`
	MaxSize            int `json:"max_size"`
	// PathMTU is the kernel's MTU toward the target: requests above it leave as IP fragments.
	PathMTU int `json:"path_mtu,omitempty"`
	Probes  int `json:"probes"`
	// Inconclusive: the gateway stopped answering even the smallest request during the
	// search (a rate limit, or its limit of half-open SAs per peer): sizes are unproven.
	Inconclusive bool   `json:"inconclusive,omitempty"`
	Detail       string `json:"detail"`
}

// IKESurvey is everything `ipsecpath ike` learnt about one target.
type IKESurvey struct {
	Target    string              `json:"target"`
	Exchanges []IKEResult         `json:"exchanges,omitempty"`
	Proposals []IKEProposalResult `json:"proposals,omitempty"`
	Size      *IKESizeResult      `json:"size_search,omitempty"`
	// NATDv1 is IKEv1's NAT detection (CheckIKEv1NATD), when it ran.
	NATDv1 *IKEv1NATD `json:"natd_v1,omitempty"`
}

// Succeeded says whether a survey found what `ipsecpath ike` exits 0 on: every exchange
// answered and accepted (stateless: answered, a COOKIE included; with proposals: every
// proposal offered answered, at least one accepted), and no result of r, the survey's
// report, failed (the size search's frag-dropped, dropped or inconclusive too).
func (s *IKESurvey) Succeeded(r *report.Report, stateless bool) bool {
	if r.Failed() {
		return false
	}
	if len(s.Proposals) > 0 {
		accepted := false
		for _, p := range s.Proposals {
			if p.Skipped != "" {
				continue
			}
			if !p.Result.Answered() {
				return false
			}
			accepted = accepted || p.Accepted
		}
		return accepted
	}
	for _, x := range s.Exchanges {
		if x.Outcome != IKEAccepted && !(stateless && x.Arrived()) {
			return false
		}
	}
	return true
}

// SurveyIKE asks target the IKE questions an engineer asks with ike-scan, in one run: does
// it answer IKEv1 Main Mode and IKEv2 IKE_SA_INIT on UDP 500 and 4500, with which proposal
// or which refusal, which vendor IDs, IKE fragmentation and NAT-T support; how large a
// request still gets an answer (Search); which of a list of proposals it accepts
// (Proposals). Exchanges run concurrently, each on its own socket. Only errors that stop a
// probe from running are returned.
func SurveyIKE(ctx context.Context, target netip.Addr, o IKESurveyOptions) (*IKESurvey, error) {
	if err := CheckTarget(target); err != nil {
		return nil, fmt.Errorf("probe: ike: %w", err)
	}
	if o.Versions == nil {
		o.Versions = []int{2, 1}
	}
	if o.Ports == nil {
		o.Ports = []int{PortIKE, PortNATT}
	}
	if o.MaxSize == 0 {
		o.MaxSize = IKEDefaultMaxSize
	}
	if o.Progress == nil {
		o.Progress = func(string, ...any) {}
	}
	sv := &ikeSurveyRun{ctx: ctx, target: target, o: o, s: &IKESurvey{Target: target.String()},
		base: IKEOptions{SourcePort: o.SourcePort, Auth: o.Auth, Timeout: o.Timeout, Size: o.Size, Stateless: o.Stateless}}
	if len(o.Proposals) > 0 {
		return sv.s, sv.proposals()
	}
	return sv.s, sv.exchanges()
}

// ikeSurveyRun is one SurveyIKE: its options (defaults filled in) and what it found.
type ikeSurveyRun struct {
	ctx    context.Context
	target netip.Addr
	o      IKESurveyOptions
	base   IKEOptions
	s      *IKESurvey
}

// recheck asks a gateway that was silent again, statelessly (markGatewaySilence).
func (sv *ikeSurveyRun) recheck(c IKEOptions) (IKEResult, error) {
	c.SourcePort, c.Auth, c.Timeout = sv.o.SourcePort, sv.o.Auth, sv.o.Timeout
	sv.o.Progress("IKEv%d on UDP %d was silent: asking the gateway again, statelessly", c.Version, c.Port)
	return ProbeIKE(sv.ctx, sv.target, c)
}

// proposals offers each proposal on its own, on the first port, per version.
func (sv *ikeSurveyRun) proposals() error {
	o, s := sv.o, sv.s
	var jobs []IKEOptions
	var slot []int // index in s.Proposals of each job's result
	for _, v := range o.Versions {
		for _, p := range o.Proposals {
			if why := ikeV1Skip(p, o.Versions); v == 1 && why != "" {
				s.Proposals = append(s.Proposals, IKEProposalResult{Proposal: p.Text, Version: 1, Port: o.Ports[0], Skipped: why})
				continue
			}
			j := sv.base
			j.Version, j.Port, j.Proposals = v, o.Ports[0], []ike.Proposal{p}
			// IKEv2: a KE for a decoy group, so an accepted proposal shows as
			// INVALID_KE_PAYLOAD and leaves no half-open SA behind.
			j.Stateless = v == 2
			jobs = append(jobs, j)
			slot = append(slot, len(s.Proposals))
			s.Proposals = append(s.Proposals, IKEProposalResult{Proposal: p.Text, Version: v, Port: o.Ports[0]})
		}
	}
	if len(jobs) == 0 {
		var why []string
		for _, p := range s.Proposals {
			why = append(why, p.Proposal+": "+p.Skipped)
		}
		what := "in the versions asked for"
		if slices.Equal(o.Versions, []int{1}) {
			what = "in IKEv1, the only version asked for"
		}
		return fmt.Errorf("probe: ike: no proposal can be offered %s (%s)", what, strings.Join(why, "; "))
	}
	o.Progress("offering %d proposals one at a time", len(jobs))
	// One at a time (ikeProposalsInFlight): every offer makes a half-open SA on the
	// gateway while it is answered, and strongSwan asks for COOKIEs from a peer with 3
	// (for 10 s after) and ignores one with 5.
	par := ikeProposalsInFlight
	if o.SourcePort != 0 {
		par = 1
	}
	results, err := runIKE(sv.ctx, sv.target, jobs, par, 0)
	if err != nil {
		return err
	}
	if err := markGatewaySilence(sv.target, results, sv.recheck); err != nil {
		return err
	}
	for i, r := range results {
		pr := &s.Proposals[slot[i]]
		pr.Result, pr.Outcome = r, r.Outcome
		if r.Version == 1 {
			pr.Accepted = r.Outcome == IKEAccepted
		} else {
			pr.Accepted = r.Outcome == IKEAccepted && (r.Chosen != "" || r.Notify == ike.NotifyInvalidKEPayload.String())
		}
	}
	return nil
}

// ikeV1Skip says why p is not offered in IKEv1 (ike.Proposal.NoV1Form, and that it is
// offered in IKEv2 only when versions has 2), or "" when it is offered.
func ikeV1Skip(p ike.Proposal, versions []int) string {
	why := p.NoV1Form()
	if why != "" && slices.Contains(versions, 2) {
		why += "; offered in IKEv2 only"
	}
	return why
}

// exchanges runs one exchange per version and port, then the size search.
func (sv *ikeSurveyRun) exchanges() error {
	o := sv.o
	var jobs []IKEOptions
	for _, v := range o.Versions {
		for _, p := range o.Ports {
			j := sv.base
			j.Version, j.Port = v, p
			jobs = append(jobs, j)
		}
	}
	o.Progress("IKE exchanges: %d", len(jobs))
	par := 0
	if o.SourcePort != 0 {
		par = 1
	}
	// IKEv2 first, IKEv1 once IKEv2 is done (or has had its first wait): the half-open SAs
	// of an accepted Main Mode live only until its release notify, so the gateway never
	// holds more than the IKEv2 ones at once and stays below its COOKIE threshold
	// (strongSwan: 3 per peer), which it would then keep up for 10 s.
	hold := firstRetransmit(o.Timeout, IKETries)
	if o.Timeout == 0 {
		hold = IKEFirstRetransmit
	}
	results, err := runIKE(sv.ctx, sv.target, jobs, par, hold)
	if err != nil {
		return err
	}
	if err := markGatewaySilence(sv.target, results, sv.recheck); err != nil {
		return err
	}
	sv.s.Exchanges = results
	if !o.Search {
		return nil
	}
	// Search on the first exchange that was answered, IKEv2 first.
	for _, r := range results {
		if r.Arrived() {
			o.Progress("size search with IKEv%d on UDP %d up to %d bytes", r.Version, r.Port, o.MaxSize)
			sr, err := searchIKESize(sv.ctx, sv.target, r, sv.base, o.MaxSize)
			if err != nil {
				return err
			}
			sv.s.Size = sr
			break
		}
	}
	return nil
}

// ikeProposalsInFlight is how many proposal offers SurveyIKE has in flight at once.
const ikeProposalsInFlight = 1

// markGatewaySilence decides what the silence of an exchange means when the same gateway
// answered another exchange of the same run on the same port, with a request at least as
// big or both small enough to leave unfragmented (so the path carries such requests). If
// the run already shows the gateway limiting us (a COOKIE, or silence right after it
// answered an exchange), or a stateless request of the answered kind, asked now (recheck),
// draws a COOKIE or silence, the gateway stopped answering us: IKEGatewaySilent, not a
// drop. If that request is answered, the gateway is answering and ignores only this kind
// (or a device filters it): the silence stays, with a note. recheck may be nil (no
// recheck). It returns recheck's error.
func markGatewaySilence(target netip.Addr, rs []IKEResult, recheck func(IKEOptions) (IKEResult, error)) error {
	limiting := false
	for _, r := range rs {
		if r.Cookie || (r.Outcome == IKEGatewaySilent && r.Arrived()) {
			limiting = true
		}
	}
	mtu := map[int]int{}
	for i := range rs {
		r := &rs[i]
		if r.Outcome != IKENoAnswer {
			continue
		}
		for _, o := range rs {
			if !o.Arrived() || o.Port != r.Port {
				continue
			}
			m, ok := mtu[r.Port]
			if !ok {
				m = pathMTU(target, r.Port)
				mtu[r.Port] = m
			}
			if o.Size < r.Size && (m == 0 || r.Size > m || o.Size > m) {
				continue
			}
			how := "and asked for COOKIEs"
			if !limiting && recheck != nil {
				c, err := recheck(IKEOptions{Version: o.Version, Port: o.Port, Stateless: true})
				if err != nil {
					return err
				}
				switch {
				case c.Cookie:
					limiting, how = true, "and then asked for a COOKIE"
				case !c.Arrived():
					limiting, how = true, "and then did not answer a request it had answered"
				}
			}
			if limiting {
				r.Outcome = IKEGatewaySilent
				r.Steps = append(r.Steps, fmt.Sprintf("no answer, but the gateway answered IKEv%d on UDP %d (%d bytes) in this run %s: it stopped answering us (half-open limit?), this is not the path", o.Version, o.Port, o.Size, how))
			} else if o.Version != r.Version {
				r.Steps = append(r.Steps, fmt.Sprintf("the gateway answered IKEv%d on UDP %d (%d bytes) in this run and still does: it ignores IKEv%d (not configured there?), or a device filters IKEv%d only", o.Version, o.Port, o.Size, r.Version, r.Version))
			}
			break
		}
	}
	return nil
}

// runIKE runs the jobs, at most par at once (0: all at once; 1: one after the other, in
// order, as a fixed source port needs). With hold > 0 the IKEv1 jobs wait until every
// IKEv2 job has ended or hold has passed. Jobs get their sockets opened here, on the
// caller's goroutine, so they live in the caller's network namespace (testlab's Do
// switches only the calling thread).
func runIKE(ctx context.Context, target netip.Addr, jobs []IKEOptions, par int, hold time.Duration) ([]IKEResult, error) {
	results := make([]IKEResult, len(jobs))
	errs := make([]error, len(jobs))
	if par == 1 {
		for i, j := range jobs {
			results[i], errs[i] = ProbeIKE(ctx, target, j)
		}
	} else {
		conns := make([]*net.UDPConn, len(jobs))
		defer func() {
			for _, c := range conns {
				if c != nil {
					c.Close()
				}
			}
		}()
		for i := range jobs {
			var err error
			if jobs[i], err = prepareIKE(target, jobs[i]); err != nil {
				return results, err
			}
			if conns[i], err = dialIKE(target, jobs[i].Port, jobs[i].SourcePort); err != nil {
				return results, err
			}
		}
		if par <= 0 {
			par = len(jobs)
		}
		sem := make(chan struct{}, par)
		// gate opens when every IKEv2 job has ended or hold has passed; IKEv1 jobs wait for it.
		gate := make(chan struct{})
		var once sync.Once
		openGate := func() { once.Do(func() { close(gate) }) }
		if hold > 0 {
			t := time.AfterFunc(hold, openGate)
			defer t.Stop()
		} else {
			openGate()
		}
		var v2 sync.WaitGroup
		var wg sync.WaitGroup
		for i, j := range jobs {
			wg.Add(1)
			if j.Version == 2 {
				v2.Add(1)
			}
			go func() {
				defer wg.Done()
				if j.Version == 2 {
					defer v2.Done()
				} else {
					select {
					case <-gate:
					case <-ctx.Done():
					}
				}
				sem <- struct{}{}
				defer func() { <-sem }()
				results[i], errs[i] = exchangeIKE(ctx, conns[i], target, j)
			}()
		}
		go func() { v2.Wait(); openGate() }()
		wg.Wait()
	}
	for _, err := range errs {
		if err != nil {
			return results, err
		}
	}
	return results, nil
}

// searchIKESize finds the largest request answered, with few probes: it calibrates with a
// stateless request at the natural size (falling back to real proposals if the gateway
// ignores those), tries MaxSize, then the path MTU and the first size above it (where IP
// fragmentation starts: the usual cliff), then halves the remaining interval, and ends
// with a control request at the natural size to prove the gateway was still answering.
func searchIKESize(ctx context.Context, target netip.Addr, found IKEResult, base IKEOptions, maxSize int) (*IKESizeResult, error) {
	z := &ikeSizeSearch{ctx: ctx, target: target, maxSize: maxSize,
		sr: &IKESizeResult{Version: found.Version, Port: found.Port, MaxSize: maxSize, Stateless: true}}
	wait := IKESearchWait
	if w := 6 * found.RTT; w > wait {
		wait = w
	}
	z.opts = base
	z.opts.Version, z.opts.Port, z.opts.Size, z.opts.Stateless = found.Version, found.Port, 0, true
	z.opts.Tries, z.opts.Timeout = IKESearchTries, retransmitBudget(wait, IKESearchTries)
	if ok, err := z.calibrate(); !ok || err != nil {
		return z.sr, err
	}
	var err error
	if z.lo, err = naturalSize(z.opts); err != nil {
		return z.sr, err
	}
	z.sr.PathMTU = pathMTU(target, found.Port)
	if err := z.bisect(); err != nil {
		return z.sr, err
	}
	z.sr.LargestAnswered, z.sr.SmallestUnanswered = z.lo, z.hi
	return z.sr, z.conclude()
}

// ikeSizeSearch is the state of searchIKESize: the largest size answered (lo) and the
// smallest unanswered (hi, 0: none yet).
type ikeSizeSearch struct {
	ctx     context.Context
	target  netip.Addr
	opts    IKEOptions
	maxSize int
	sr      *IKESizeResult
	lo, hi  int
}

// ask sends one request of size bytes (0: natural) and reports whether it arrived.
func (z *ikeSizeSearch) ask(size int) (bool, error) {
	o := z.opts
	o.Size = size
	r, err := ProbeIKE(z.ctx, z.target, o)
	z.sr.Probes++
	return r.Arrived(), err
}

// calibrate asks at the natural size, statelessly, then (no answer) as a plain request. It
// reports whether the search can go on; when it cannot, sr says why.
func (z *ikeSizeSearch) calibrate() (bool, error) {
	natural, err := z.ask(0)
	if err != nil || natural {
		return natural, err
	}
	z.opts.Stateless = false
	z.sr.Stateless = false
	if natural, err = z.ask(0); err != nil {
		return false, err
	}
	if !natural {
		z.sr.Inconclusive = true
		z.sr.Detail = "the gateway did not answer the calibration request at the natural size: no size search"
	}
	return natural, nil
}

// try asks at size when it can narrow [lo, hi), and narrows it.
func (z *ikeSizeSearch) try(size int) error {
	if size <= z.lo || (z.hi != 0 && size >= z.hi) || size > z.maxSize {
		return nil
	}
	if z.opts.Version == 1 && size-z.lo < 5 {
		size = z.lo + 5 // IKEv1 cannot grow by 1 to 4 bytes
		if z.hi != 0 && size >= z.hi {
			return nil
		}
	}
	ok, err := z.ask(size)
	if err != nil {
		return err
	}
	if ok {
		z.lo = size
	} else {
		z.hi = size
	}
	return nil
}

// bisect tries the largest size, then either side of the path MTU, then halves the gap
// within IKESearchProbes requests.
func (z *ikeSizeSearch) bisect() error {
	budget := z.sr.Probes + IKESearchProbes
	if err := z.try(z.maxSize); err != nil {
		return err
	}
	if z.hi != 0 && z.sr.PathMTU > 0 {
		if err := z.try(z.sr.PathMTU); err != nil {
			return err
		}
		if err := z.try(z.sr.PathMTU + 1); err != nil {
			return err
		}
	}
	for z.hi != 0 && z.hi-z.lo > 1 && z.sr.Probes < budget {
		if err := z.try(z.lo + (z.hi-z.lo)/2); err != nil {
			return err
		}
		if z.opts.Version == 1 && z.hi-z.lo <= 5 {
			break
		}
	}
	return nil
}

// conclude asks once more at the natural size when a size went unanswered (was it the
// gateway?), and says what the search found.
func (z *ikeSizeSearch) conclude() error {
	sr, lo, hi := z.sr, z.lo, z.hi
	if hi != 0 {
		control, err := z.ask(0)
		if err != nil {
			return err
		}
		if !control {
			sr.Inconclusive = true
			sr.Detail = fmt.Sprintf("the gateway stopped answering us during the search, even at the natural size (half-open limit? rate limit?): sizes above %d bytes are unproven, this is not the path", lo)
			return nil
		}
	}
	switch {
	case hi == 0:
		sr.Detail = fmt.Sprintf("requests up to %d bytes were answered", lo)
	case sr.PathMTU > 0 && lo <= sr.PathMTU && hi > sr.PathMTU:
		sr.Detail = fmt.Sprintf("requests up to %d bytes were answered, %d bytes and more were not: the path drops IP fragments (the path MTU here is %d, bigger requests leave as fragments)", lo, hi, sr.PathMTU)
	default:
		sr.Detail = fmt.Sprintf("requests up to %d bytes were answered, %d bytes and more were not", lo, hi)
	}
	return nil
}

// naturalSize is the wire size of the request opts builds without padding.
func naturalSize(opts IKEOptions) (int, error) {
	x := &ikeExchange{opts: opts, spi: ike.SPIWithNonce(1), local: netip.MustParseAddrPort("192.0.2.1:500"), remote: netip.MustParseAddrPort("192.0.2.2:500")}
	x.opts.Size = 0
	m, err := x.build()
	if err != nil {
		return 0, fmt.Errorf("probe: ike: %w", err)
	}
	return len(m) + 28, nil
}

// Report turns a survey into the report model: one result per exchange ("ikev2:500"),
// per proposal offered ("ikev2:500 aes128-sha256-modp2048"), and one for the size search
// ("ike-size"). Verdicts describe the path: an IKE answer, even a refusal, is pass; an
// ICMP error from the target itself (port unreachable: no IKE service) is pass too, the
// path carried the request; an ICMP error from anyone else is blocked; silence is dropped.
func (s *IKESurvey) Report(started time.Time) *report.Report {
	r := report.New(s.Target, "", started)
	r.NAT = s.NAT()
	for _, x := range s.Exchanges {
		r.Add(ikeResultToReport(fmt.Sprintf("ikev%d:%d", x.Version, x.Port), s.Target, x))
	}
	for _, p := range s.Proposals {
		if p.Skipped != "" {
			r.Add(report.Result{Probe: fmt.Sprintf("ikev%d:%d %s", p.Version, p.Port, p.Proposal), Direction: report.Forward,
				Verdict: report.Skipped, Detail: "not offered: " + p.Skipped, Evidence: report.Evidence{DestPort: p.Port}})
			continue
		}
		res := ikeResultToReport(fmt.Sprintf("ikev%d:%d %s", p.Version, p.Port, p.Proposal), s.Target, p.Result)
		switch {
		case p.Accepted:
			res.Detail = "accepted: " + res.Detail
		case p.Result.Answered():
			res.Detail = "not accepted: " + res.Detail
		case p.Result.Outcome == IKEGatewaySilent:
			res.Detail = "not known (the gateway stopped answering us): " + res.Detail
		}
		r.Add(res)
	}
	if z := s.Size; z != nil {
		res := report.Result{Probe: "ike-size", Direction: report.Forward, Verdict: report.Pass, Detail: z.Detail,
			Evidence: report.Evidence{Size: z.LargestAnswered, Attempts: z.Probes, DestPort: z.Port,
				Extra: fmt.Sprintf("IKEv%d, largest answered %d, smallest unanswered %d, path MTU %d", z.Version, z.LargestAnswered, z.SmallestUnanswered, z.PathMTU)}}
		switch {
		case z.Inconclusive:
			res.Verdict = report.Error
		case z.SmallestUnanswered != 0 && z.PathMTU > 0 && z.LargestAnswered <= z.PathMTU && z.SmallestUnanswered > z.PathMTU:
			res.Verdict = report.FragDropped
		case z.SmallestUnanswered != 0:
			res.Verdict = report.Dropped
		}
		r.Add(res)
	}
	return r
}

func ikeResultToReport(probe, target string, x IKEResult) report.Result {
	res := report.Result{Probe: probe, Direction: report.Forward,
		Evidence: report.Evidence{Size: x.Size, Attempts: x.Attempts, RTTms: x.RTTms, AnsweredBy: x.AnsweredBy,
			SourcePort: x.SourcePort, DestPort: x.Port, ICMP: x.ICMP, Answer: ikeAnswer(x), ProbeID: x.Nonce,
			Extra: strings.Join(x.Steps, "; ")}}
	if !x.Recorded() { // nothing was sent, or nothing kept: no verdict on the path
		res.Verdict, res.Detail = report.Error, "IKE: no result was recorded for this probe (an ipsecpath bug: please report it), so it says nothing about the path"
		return res
	}
	switch x.Outcome {
	case IKEAccepted:
		res.Verdict = report.Pass
		res.Detail = fmt.Sprintf("%s answered", x.Name())
		if x.Chosen != "" {
			res.Detail += ", chose " + x.Chosen
		} else if x.WantedGroup != "" {
			res.Detail += ", asked for " + x.WantedGroup
		}
		var feats []string
		if x.Fragmentation {
			feats = append(feats, "IKE fragmentation")
		}
		if x.NATT {
			feats = append(feats, "NAT-T")
		}
		if len(feats) > 0 {
			res.Detail += "; supports " + strings.Join(feats, " and ")
		}
	case IKERefused:
		res.Verdict = report.Pass
		res.Detail = fmt.Sprintf("%s answered but refused: %s", x.Name(), x.Notify)
		if x.WantedGroup != "" {
			res.Detail += " (wants " + x.WantedGroup + ")"
		}
	case IKEUnreachable:
		if x.ICMP != nil && x.ICMP.From == target {
			res.Verdict = report.Pass
			res.Detail = fmt.Sprintf("%s: ICMP %s from the target: %s", x.Name(), wire.ICMPBrief(x.ICMP.Type, x.ICMP.Code), IKEICMPMeaning(target, x.ICMP))
		} else {
			res.Verdict = report.Blocked
			from, what := "?", "error"
			if x.ICMP != nil {
				from, what = x.ICMP.From, wire.ICMPBrief(x.ICMP.Type, x.ICMP.Code)
				res.Hop = &report.Hop{Addr: from}
			}
			res.Detail = fmt.Sprintf("%s blocked: ICMP %s from %s: %s", x.Name(), what, from, IKEICMPMeaning(target, x.ICMP))
		}
	case IKEGatewaySilent:
		if x.Arrived() {
			// It answered this exchange, then went silent: the path carried the request.
			res.Verdict = report.Pass
			what := "with a COOKIE"
			if !x.Cookie {
				what = "with " + ike.NotifyInvalidKEPayload.String()
			}
			res.Detail = fmt.Sprintf("%s: the gateway answered %s but not the request sent again as it asked: the gateway stopped answering us (half-open limit?); the path carried the request", x.Name(), what)
		} else {
			res.Verdict = report.Error
			res.Detail = fmt.Sprintf("%s: no answer after %d sends of %d bytes, right after the same gateway answered us on UDP %d: the gateway stopped answering us (half-open limit?), so this says nothing about the path; ask again in 30 s", x.Name(), x.Attempts, x.Size, x.Port)
		}
	default:
		res.Verdict = report.Dropped
		res.Detail = fmt.Sprintf("%s: no answer after %d sends of %d bytes: a firewall drops it, or no IKE gateway listens", x.Name(), x.Attempts, x.Size)
	}
	return res
}

// ikeAnswer is the evidence's "answer" word for an exchange.
func ikeAnswer(x IKEResult) string {
	switch x.Outcome {
	case IKEAccepted:
		if x.Version == 1 {
			return "main-mode"
		}
		if x.Chosen == "" && x.WantedGroup != "" {
			return "invalid-ke-payload"
		}
		return "ike-sa-init"
	case IKERefused:
		return strings.ToLower(strings.ReplaceAll(x.Notify, "_", "-"))
	case IKEUnreachable:
		return "icmp"
	case IKEGatewaySilent:
		if x.Cookie {
			return "cookie"
		}
		if x.Arrived() {
			return "invalid-ke-payload"
		}
	}
	return ""
}
