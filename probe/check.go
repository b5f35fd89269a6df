package probe

// Check: every probe class, both directions, in one run, and a verdict for each.
//
// Timeline of one run (T is CheckConfig.Timeout; W, the window, is what the run measured of
// the path's round trips, between 500 ms and T: check_rto.go):
//
//  1. Set up: open the raw sender and the local capture (answers, ICMP errors, reverse
//     probes); with an agent, authenticate (hello) and make it start observing.
//  2. Reverse UDP first (agent only): the agent sends the reverse forms of ike, ike-frag, natt
//     and natt-frag, two attempts each in one short burst, BEFORE we send anything on UDP 500
//     or 4500. A stateful firewall on the path then meets them cold, with no flow of ours to
//     match: exactly what an IKE rekey or a delete started from the responder's side meets
//     after the flow went idle and the firewall forgot it. They are not retried later: once
//     our forward UDP 500/4500 has gone out, a stateful firewall would let a late retry
//     through as the answer to our flow, and the reverse verdict would lie.
//  3. Main phase: our forward probes go out (paced, in one sequence, the IP IDs of the
//     fragmented ones announced to the agent in one request before it), the agent's other
//     reverse probes at the same time. Probes still without an answer are sent again W/4
//     after their previous attempt, twice (each attempt with its own nonce): one attempt of
//     three arriving is loss, all three silent is a drop, and an ICMP error or a reset is a
//     block whatever the count.
//  4. Collect: our capture is read as it wakes; the agent's report is polled every
//     agentPollInterval. The run ends as soon as every probe has its answer (every fragment
//     seen, or the target's own answer without an agent), or its deadline for silence has
//     passed (W after its first attempt, W/2 after its last): a run where many probes are
//     dropped takes about W after the last of them left. A probe
//     that drew an ICMP error or a reset is settled (no retry) once an agent report asked
//     refusalGrace later still lacks it: a refusal is not loss. Reverse probes alike: the agent's capture keeps
//     the ICMP errors and resets they draw on the way, and its report brings them here.
//     The path MTU searches are the exception: each is bounded by its own budget (probe
//     counts and pmtu.DefaultBudget), not by T, because a search cut off at T reports a size
//     it did not settle. On a fast path every retry falls before T. First attempts still
//     waiting their turn at T (a slow agent session, a long paced sequence) still go, and
//     so do the retries of probes without an answer, up to the sending phase's own bound
//     (sendingBound), each with its deadline for silence from when it left: a probe whose
//     first attempt left late is not called dropped on one packet. Then the other probes
//     stop, and the run waits for the searches. An attempt counts only once it is on the
//     wire: a probe that never left is an error that says so, not a verdict on the path
//     (unsent); one the bound cut short of CheckAttempts says so in its detail (Outcome.Cut).
//  5. Judge (verdict.go) and build the report.
//
// With an agent, a forward verdict rests on what the agent captured, never on what answered:
// TCP probes pass when the agent saw the SYN arrive, whether or not anything listens on the
// port there (the reset the target's kernel sends for a closed port is evidence, not the
// verdict). A reset that comes back while the agent never saw the SYN came from a device on
// the path answering in the target's name: blocked.

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"net/netip"
	"sync"
	"time"

	"github.com/ipsecpath/ipsecpath/probe/wire"
	"github.com/ipsecpath/ipsecpath/report"
)

// Check defaults and bounds.
const (
	// DefaultCheckTimeout is the longest a check waits for answers (the window's ceiling).
	DefaultCheckTimeout = 2 * time.Second
	// MaxCheckTimeout bounds --timeout.
	MaxCheckTimeout = 60 * time.Second
	// MinCheckTimeout is the shortest --timeout: the retries go out a quarter of the window
	// apart (at most T/4), and an answer must be back within the window.
	MinCheckTimeout = 100 * time.Millisecond
	// CheckAttempts is how many times a probe without an answer is sent (W/4 apart; T/4 and
	// T/2 after the first when the window is T).
	CheckAttempts = 3
	// reverseUDPAttempts is how many times each reverse UDP 500/4500 probe is sent in the
	// cold burst before any forward UDP (see the timeline).
	reverseUDPAttempts = 2
	// agentPollInterval is how often the agent's report is fetched while waiting.
	agentPollInterval = 100 * time.Millisecond
	// checkCollectInterval is how often the run re-checks for answers without a capture wake-up.
	checkCollectInterval = 50 * time.Millisecond
	// smallEchoSize is the IP total length of the small reference echo.
	smallEchoSize = 128
	// refusalGrace is how long after an ICMP error or a reset an agent report must have
	// been asked for, still without the probe, to settle it as refused: the probe would
	// have reached the agent about when the refusal reached us.
	refusalGrace = 200 * time.Millisecond
	// setupTimeout bounds connecting to and greeting the agent.
	setupTimeout = 5 * time.Second
)

// CheckConfig says what to check and how.
type CheckConfig struct {
	// Target is the far end: an IKE gateway or any host, where the agent runs if there is one.
	Target netip.Addr
	// Agent is the far-end agent's HOST:PORT ("" for a one-ended check); Key its pre-shared key.
	Agent string
	Key   []byte
	// Probes are the probe ids to run (nil: DefaultIDs(TCPPorts)); TCPPorts the default TCP
	// ports (nil: DefaultTCPPorts).
	Probes   []ID
	TCPPorts []int
	// Timeout is the longest wait for answers (0: DefaultCheckTimeout); a run whose
	// answers come back fast waits less (check_rto.go).
	Timeout time.Duration
	// Pace is packets per second toward the target, and asked of the agent for reverse
	// probes (0: DefaultRate).
	Pace int
	// Pcap, when set, gets every packet we sent, and every packet we or the agent captured,
	// each up to its snap length, with a note tying it to its probe (pcapnote.go).
	Pcap *report.Pcap
	// Progress, when set, is called as probes get their answers.
	Progress func(CheckProgress)
	// NoTrace skips localising the failures: without it, the probes of every failing
	// result (dropped, blocked, frag-dropped, partial) are traced hop by hop after the main
	// run, both directions, for at most one Timeout more (trace.go), and each such result's
	// hop gets its bracket.
	NoTrace bool
	// PathMTU turns on the pmtu probe (off: reported skipped) and bounds its searches: the
	// search toward the target and, with an agent that can send, the one back. They open
	// their sockets in Check's own goroutine (the caller's network namespace) and run beside
	// the other probes, bounded by their own budgets.
	PathMTU PathMTUOptions

	// pmtuSearch, when set (tests: pmtu_export_test.go), opens the path MTU searches instead
	// of the real probers; reverse is the search back (nil: none).
	pmtuSearch func(reverse bool) (PathMTUSearch, error)
}

// CheckProgress is a progress report of a running check.
type CheckProgress struct {
	Phase   string // "reverse-udp", "probing", "waiting", "tracing", "done"
	Decided int    // probes (per direction) that have their answer
	Total   int
}

// CheckError is an environment error of a check (bad target, no raw socket, agent
// unreachable or refusing us): the check could not start. The CLI exits 2 for it.
type CheckError struct{ Err error }

func (e *CheckError) Error() string { return e.Err.Error() }
func (e *CheckError) Unwrap() error { return e.Err }

func envErr(format string, args ...any) error { return &CheckError{Err: fmt.Errorf(format, args...)} }

// pending is one probe in one direction while the check runs.
type pending struct {
	out    *Outcome
	proto  uint8
	nonces []uint32    // per attempt
	spare  []uint32    // nonces reserved for the later attempts of a fragmented forward probe (their IP IDs announced with the first)
	sentAt []time.Time // per attempt
	onWire []bool      // per attempt: sentAt is when it left (forward: set once the sender returned)
	// early are answers that arrived for an attempt before its sender recorded when it
	// left (the capture can be quicker than the sender's bookkeeping): their round trip is
	// taken once it has (stampAnswers), not from when the attempt was prepared.
	early    []earlyAnswer
	reverse  bool
	udp      bool // ike, ike-frag, natt, natt-frag: sent in the cold reverse burst
	decided  bool
	noReplay bool // reverse UDP: never retried (see the timeline)
	queued   bool // handed to a sender that has not returned yet (check_rto.go)
	// answeredAt is when the first ICMP error or reply for the probe arrived here (reverse:
	// when the agent's report brought what came back to it).
	answeredAt time.Time
	sport      uint16 // our UDP/TCP source port (forward)
	dstPort    uint16 // reverse UDP through a NAT: the public port our forward form was seen from
}

// earlyAnswer is an answer that arrived before its attempt's departure was recorded.
type earlyAnswer struct {
	reply   int // index in out.Replies
	attempt int
	at      time.Time
}

// attemptRef points at one attempt of one pending probe.
type attemptRef struct {
	p       *pending
	attempt int
}

// ipidKey maps fragments without a transport header to their probe: probes carry
// IP ID = the nonce's low 16 bits, distinct within a run.
type ipidKey struct {
	reverse bool
	proto   uint8
	id      uint16
}

// checkRun is the state of one Check.
type checkRun struct {
	cfg     CheckConfig
	timeout time.Duration
	src     netip.Addr // our address toward the target
	peer    netip.Addr // our address as the agent sees it (reverse destination)
	agentIP netip.Addr // the agent's address (reverse source)
	// farDrops are the agent host's own firewall rules that drop our probes once its
	// capture has seen them (hello's local_drops).
	farDrops []report.FirewallRule

	env    checkEnv
	clk    schedClock
	send   checkSender     // the scheduler's sender
	sender *Sender         // the same, as the raw sender the traces use (nil on fakes: no trace)
	obs    []checkObserver // our captures
	agent  checkAgent      // nil: a one-ended check

	mu        sync.Mutex
	list      []*pending
	byNonce   map[uint32]attemptRef
	byIPID    map[ipidKey]attemptRef
	reserved  map[uint16]bool // forward IP IDs held in a pending's spare nonces (r.mu)
	announced map[uint16]bool // forward IP IDs the agent has taken (the forward sender's)
	nonces    []uint32
	agentSeen int     // agent packets already processed
	agentLost int     // packets the agent's capture lost (its buffers were full)
	revPk     Packets // reverse probes are built here only to know their fragments (r.mu)
	rtt       rttEstimator

	pmtu    PathMTUSearch // the opened pmtu search (nil: none)
	revPMTU PathMTUSearch // the opened reverse pmtu search (nil: none)

	sendMu   sync.Mutex // one forward sequence at a time: fwdPk is the buffer on the wire
	fwdPk    Packets
	fwdQueue []*pending    // waiting for the forward sender (r.mu; see forward)
	fwdBusy  bool          // a forward sender runs (r.mu)
	retryEnd time.Time     // the sending phase's bound: no retry leaves after it (r.mu)
	sendFor  time.Duration // the sending phase's bound (see sendingBound)
	ctlRTT   time.Duration // the longest round trip of an agent request measured (r.mu)

	pcapMu      sync.Mutex // the records for cfg.Pcap (pcapnote.go)
	pcapRecs    []pcapRec
	pcapDropped int
	ctlPort     uint16 // the agent's control port: its segments are noted as control

	nat natState // what the agent saw of our addresses and ports (r.mu; see nat.go)
}

// Check runs the probes of cfg and returns the report. An error means the check could not
// run at all (a *CheckError: bad target, no raw socket, agent unreachable or refusing the
// key); a probe that could not run is an "error" verdict in the report instead.
func Check(ctx context.Context, cfg CheckConfig) (*report.Report, error) {
	if err := CheckTargetHere(cfg.Target); err != nil {
		return nil, &CheckError{Err: err}
	}
	return check(ctx, cfg, realEnv())
}

// check is Check on env: the real sockets, or the fakes of a test.
func check(ctx context.Context, cfg CheckConfig, env checkEnv) (*report.Report, error) {
	cfg.Target = cfg.Target.Unmap()
	if cfg.TCPPorts == nil {
		cfg.TCPPorts = DefaultTCPPorts
	}
	if cfg.Probes == nil {
		cfg.Probes = DefaultIDs(cfg.TCPPorts)
	}
	for _, id := range cfg.Probes {
		if !id.Valid() {
			return nil, envErr("unknown probe %q", id)
		}
	}
	r := &checkRun{cfg: cfg, timeout: cfg.Timeout, env: env, clk: env.Clock, byNonce: map[uint32]attemptRef{}, byIPID: map[ipidKey]attemptRef{}}
	if r.timeout == 0 {
		r.timeout = DefaultCheckTimeout
	}
	if r.timeout < MinCheckTimeout || r.timeout > MaxCheckTimeout {
		return nil, envErr("timeout %s: want %s–%s (0: %s)", cfg.Timeout, MinCheckTimeout, MaxCheckTimeout, DefaultCheckTimeout)
	}
	if cfg.Pace < 0 || cfg.Pace > MaxRate {
		return nil, envErr("pace %d packets/s: want 1–%d", cfg.Pace, MaxRate)
	}
	started := r.clk.Now()
	rep := report.New(cfg.Target.String(), cfg.Agent, started)
	defer r.close()
	if err := r.setup(ctx); err != nil {
		r.releaseSearches()
		return nil, err
	}
	r.plan()
	err := r.run(ctx)
	r.writePcap()
	if err != nil {
		return nil, err
	}
	r.unjudgeable()
	r.unsent()
	r.shortOfTime()
	outs := make([]Outcome, len(r.list))
	for i, p := range r.list {
		outs[i] = *p.out
	}
	results := Judge(outs)
	if !cfg.NoTrace && r.sender != nil {
		r.progress("tracing")
		r.traceFailures(ctx, results)
	}
	for _, res := range results {
		rep.Add(res)
	}
	for _, p := range r.list {
		if p.out.Probe != PMTU || p.out.PathMTU == nil {
			continue
		}
		if rep.PMTU == nil {
			rep.PMTU = &report.PMTU{}
		}
		if p.reverse {
			rep.PMTU.Reverse = p.out.PathMTU
		} else {
			rep.PMTU.Forward = p.out.PathMTU
		}
	}
	r.reportNAT(rep)
	rep.Finish(r.clk.Now())
	r.progress("done")
	return rep, nil
}

// setup greets the agent (first: a wrong key or an unreachable agent is the commonest
// mistake, and says so before anything is sent) and opens our sockets.
func (r *checkRun) setup(ctx context.Context) error {
	src, err := r.env.Source(r.cfg.Target)
	if err != nil {
		return envErr("%w", err) // SourceFor says "no route to TARGET"
	}
	r.src, r.peer = src, src
	if r.cfg.Agent != "" {
		sctx, cancel := context.WithTimeout(ctx, setupTimeout)
		defer cancel()
		a, local, err := r.env.Dial(sctx, r.cfg.Agent, r.cfg.Key)
		if err != nil {
			return envErr("%w", err)
		}
		r.agent = a
		h, err := a.Hello(sctx)
		if err != nil {
			return envErr("%w", err) // the client's errors begin "agent ADDR: hello:"
		}
		if !h.Capture {
			return envErr("agent %s cannot capture packets (it needs root or CAP_NET_RAW)", r.cfg.Agent)
		}
		if h.Peer.Addr().IsValid() {
			r.peer = h.Peer.Addr().Unmap()
		}
		r.nat.control(local, h.Peer)
		r.agentIP = h.Local.Addr().Unmap()
		r.ctlPort = h.Local.Port()
		r.farDrops = h.LocalDrops
		if !r.agentIP.IsValid() {
			r.agentIP = r.cfg.Target
		}
		if !h.Sender {
			r.agentIP = netip.Addr{} // no reverse probes: plan() marks them skipped
		}
	}
	s, err := r.env.OpenSender(float64(r.cfg.Pace))
	if err != nil {
		return &CheckError{Err: err}
	}
	r.send = s
	r.sender, _ = s.(*Sender)
	if r.agent != nil {
		sctx, cancel := context.WithTimeout(ctx, setupTimeout)
		defer cancel()
		if err := r.agent.StartObserving(sctx); err != nil {
			return envErr("%w", err)
		}
	}
	if r.cfg.PathMTU.Enabled && wantsPMTU(r.cfg.Probes) {
		if err := r.openSearches(); err != nil {
			return &CheckError{Err: err}
		}
	}
	peers := []netip.Addr{r.cfg.Target}
	if r.agentIP.IsValid() && r.agentIP != r.cfg.Target {
		peers = append(peers, r.agentIP)
	}
	snap := 0
	if r.cfg.Pcap != nil {
		snap = r.cfg.Pcap.SnapLen() // keep whole packets for the pcap
	}
	for _, p := range peers {
		o, err := r.env.Observe(ctx, p, snap)
		if err != nil {
			return &CheckError{Err: err}
		}
		r.obs = append(r.obs, o)
	}
	return nil
}

// openSearches opens the path MTU searches: toward the target, and back when the agent can
// send reverse probes.
func (r *checkRun) openSearches() error {
	// The reverse search speaks the control protocol itself: it needs the real agent
	// client (a fake agent in the scheduler's tests has none, and gets no reverse search).
	agent, _ := r.agent.(*AgentClient)
	if !r.agentIP.IsValid() {
		agent = nil
	}
	if open := r.cfg.pmtuSearch; open != nil {
		fwd, err := open(false)
		if err != nil {
			return fmt.Errorf("path MTU probe: %w", err)
		}
		r.pmtu = fwd
		if agent != nil {
			if r.revPMTU, err = open(true); err != nil {
				return fmt.Errorf("reverse path MTU probe: %w", err)
			}
		}
		return nil
	}
	fwd, rev, err := openCheckSearches(r.cfg.Target, agent, r.agentIP, r.cfg.PathMTU)
	if err != nil {
		return err
	}
	r.pmtu = fwd
	if rev != nil {
		r.revPMTU = rev
	}
	return nil
}

// releaseSearches closes the path MTU searches setup opened: when setup failed after
// opening them, and when the check ends (closing twice is harmless).
func (r *checkRun) releaseSearches() {
	for _, search := range []PathMTUSearch{r.pmtu, r.revPMTU} {
		if search != nil {
			search.Close()
		}
	}
	r.pmtu, r.revPMTU = nil, nil
}

func wantsPMTU(ids []ID) bool {
	for _, id := range ids {
		if id == PMTU {
			return true
		}
	}
	return false
}

func (r *checkRun) close() {
	r.releaseSearches() // a search the run never started holds its sockets until here
	if r.agent != nil {
		sctx, cancel := context.WithTimeout(context.Background(), time.Second)
		r.agent.Stop(sctx)
		cancel()
		r.agent.Close()
	}
	for _, o := range r.obs {
		o.Close()
	}
	if r.send != nil {
		r.send.Close()
	}
}

// plan lists the pending probes: each asked-for id forward, and reverse with an agent; the
// references the verdicts compare with (a -frag id's unfragmented form, a small echo for
// icmp-large and, without an agent, for the TTL of TCP resets) are added, unreported, when
// not asked for.
func (r *checkRun) plan() {
	asked := map[ID]bool{}
	for _, id := range r.cfg.Probes {
		asked[id] = true
	}
	var ids []ID
	var refs []ID
	for _, id := range r.cfg.Probes {
		if b := reference(id); b != "" && !asked[b] {
			asked[b] = true
			refs = append(refs, b)
		}
	}
	if r.agent == nil && !asked[smallEcho] {
		// Without an agent a TCP reset is judged by its TTL against the target's own
		// answers: make sure there is one (a small echo), even if nothing else answers.
		for _, id := range r.cfg.Probes {
			if id.IsTCP() {
				asked[smallEcho] = true
				refs = append(refs, smallEcho)
				break
			}
		}
	}
	ids = append(refs, r.cfg.Probes...)
	isRef := map[ID]bool{}
	for _, id := range refs {
		isRef[id] = true
	}
	dirs := []report.Direction{report.Forward}
	if r.agent != nil {
		dirs = append(dirs, report.Reverse)
	}
	for _, id := range ids {
		for _, d := range dirs {
			o := &Outcome{Probe: id, Direction: d, Reference: isRef[id], Target: r.cfg.Target, Observed: r.agent != nil}
			p := &pending{out: o, reverse: d == report.Reverse}
			if !p.reverse {
				o.FarLocalDrop = firstDropOf(r.farDrops, id)
			}
			if p.reverse {
				o.Target = r.peer
				o.Observed = true
				if id == PMTU && r.revPMTU == nil && (!r.cfg.PathMTU.Enabled || r.agentIP.IsValid()) {
					continue // no reverse search in this build (an agent that cannot send: skipped below)
				}
				if !r.agentIP.IsValid() {
					o.Skip = "The agent cannot send reverse probes (it needs root or CAP_NET_RAW)."
					p.decided = true
				}
			}
			switch id.Unfragmented() {
			case IKE, NATT:
				p.udp = true
				p.noReplay = p.reverse
			}
			r.list = append(r.list, p)
		}
	}
}

// buildParams is how every probe of id is built; the same on both ends.
func (r *checkRun) buildParams(id ID, src, dst netip.Addr, nonce uint32) (ID, BuildParams) {
	bp := BuildParams{Src: src, Dst: dst, Nonce: nonce, FragSize: DefaultFragSize}
	if id == smallEcho {
		return PMTU, BuildParams{Src: src, Dst: dst, Nonce: nonce, Size: smallEchoSize}
	}
	return id, bp
}

// newAttempt prepares attempt n of p: its nonce, the fragments it will be cut into, and
// the maps that tie what is seen back to it. The probe is built into pk. The caller holds r.mu.
func (r *checkRun) newAttempt(p *pending, pk *Packets) (nonce uint32, err error) {
	if !p.reverse && len(p.spare) > 0 {
		nonce, p.spare = p.spare[0], p.spare[1:]
		delete(r.reserved, uint16(nonce))
	} else if nonce, err = r.drawNonce(p.reverse); err != nil {
		return 0, err
	}
	src, dst := r.src, r.cfg.Target
	if p.reverse {
		src, dst = r.agentIP, r.peer
	}
	id, bp := r.buildParams(p.out.Probe, src, dst, nonce)
	if err := Build(id, bp, pk); err != nil {
		return 0, err
	}
	ref := attemptRef{p: p, attempt: len(p.out.Attempts)}
	p.proto = pk.Proto
	p.sport = sentSourcePort(pk)
	p.out.Size = pk.Size
	if len(pk.Wire) > 1 {
		fs := 0
		for _, w := range pk.Wire {
			fs = max(fs, len(w))
		}
		p.out.FragmentSize = fs
	}
	if p.out.Nonce == 0 {
		p.out.Nonce = nonce
	}
	if port, ok := p.out.Probe.TCPPort(); ok {
		p.out.DstPort = port
	}
	p.out.Attempts = append(p.out.Attempts, Attempt{Sent: append([]report.Fragment(nil), pk.Frags...)})
	p.nonces = append(p.nonces, nonce)
	p.sentAt = append(p.sentAt, r.clk.Now())
	p.onWire = append(p.onWire, p.reverse) // a reverse attempt's time is the request's
	r.byNonce[nonce] = ref
	r.byIPID[ipidKey{p.reverse, 0, uint16(nonce)}] = ref // reservation
	r.byIPID[ipidKey{p.reverse, pk.Proto, pk.IPID}] = ref
	return nonce, nil
}

// answerRTT records a forward attempt's answer that arrived at, with its round trip, and
// samples that for the run's deadline. An answer quicker than the sender's bookkeeping
// (the attempt's departure not recorded yet) waits for it: measured from when the attempt
// was prepared, its round trip would include the batch's pacing and announce (seen: 170 ms
// for a 0.3 ms reset). The caller holds r.mu.
func (r *checkRun) answerRTT(ref attemptRef, a Reply, at time.Time) {
	p := ref.p
	if !p.onWire[ref.attempt] {
		p.early = append(p.early, earlyAnswer{reply: len(p.out.Replies), attempt: ref.attempt, at: at})
		p.out.Replies = append(p.out.Replies, a)
		return
	}
	a.RTT = max(at.Sub(p.sentAt[ref.attempt]), 0)
	p.out.Replies = append(p.out.Replies, a)
	r.rttSample(a.RTT)
}

// stampAnswers gives the answers that arrived before attempt's departure was recorded
// their round trip, now that it is. The caller holds r.mu.
func (r *checkRun) stampAnswers(p *pending, attempt int) {
	kept := p.early[:0]
	for _, e := range p.early {
		if e.attempt != attempt {
			kept = append(kept, e)
			continue
		}
		rtt := max(e.at.Sub(p.sentAt[attempt]), 0)
		p.out.Replies[e.reply].RTT = rtt
		r.rttSample(rtt)
	}
	p.early = kept
}

// drawNonce takes a fresh nonce whose IP ID (its low 16 bits) no attempt of this run in the
// same direction uses or holds in reserve. The caller holds r.mu.
func (r *checkRun) drawNonce(reverse bool) (nonce uint32, err error) {
	for {
		if len(r.nonces) == 0 {
			if r.nonces, err = NewNonces(256); err != nil {
				return 0, err
			}
		}
		nonce, r.nonces = r.nonces[0], r.nonces[1:]
		_, used := r.byIPID[ipidKey{reverse, 0, uint16(nonce)}]
		if !used && (reverse || !r.reserved[uint16(nonce)]) {
			return nonce, nil
		}
	}
}

// reserveRetries holds the nonces of the later attempts of a fragmented forward probe on its
// first attempt, so that their IP IDs go to the agent in the first announce: a retry then
// waits on no announce of its own (one request at a time on the agent session: behind a
// report poll or a send-reverse request, that wait was up to a few hundred milliseconds per
// retry batch). The caller holds r.mu.
func (r *checkRun) reserveRetries(p *pending) ([]uint16, error) {
	if p.reverse || len(p.out.Attempts) != 1 || p.noReplay {
		return nil, nil
	}
	if r.reserved == nil {
		r.reserved = map[uint16]bool{}
	}
	var ids []uint16
	for range CheckAttempts - 1 {
		n, err := r.drawNonce(false)
		if err != nil {
			return nil, err
		}
		r.reserved[uint16(n)] = true
		p.spare = append(p.spare, n)
		ids = append(ids, uint16(n))
	}
	return ids, nil
}

// forward hands ps to the forward sender: one goroutine sends, in order, and takes what was
// queued meanwhile before it returns (no goroutine waits its turn on a lock: a fake clock
// could not tell that one from a goroutine at work).
func (r *checkRun) forward(ctx context.Context, wg *sync.WaitGroup, ps []*pending) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.fwdQueue = append(r.fwdQueue, ps...)
	if r.fwdBusy {
		return
	}
	r.fwdBusy = true
	r.spawn(wg, func() {
		for {
			r.mu.Lock()
			batch := r.fwdQueue
			r.fwdQueue = nil
			r.fwdBusy = len(batch) > 0
			r.mu.Unlock()
			if len(batch) == 0 {
				return
			}
			r.sendForward(ctx, batch)
		}
	})
}

// reverseLeft is when a reverse probe requested at asked left the agent, on our clock, as
// late as it can have been: the agent's send time less its clock's offset, plus the
// offset's error and the pacing of the probe's packets. The agent returns once it has
// sent, so now bounds it; so does now alone when the agent does not say, or its clock is
// not known yet.
func (r *checkRun) reverseLeft(asked time.Time, res ReverseResult, clock ClockEstimate) time.Time {
	now := r.clk.Now()
	if res.Sent.IsZero() || clock.Samples == 0 {
		return now
	}
	pace := r.cfg.Pace
	if pace <= 0 {
		pace = DefaultRate
	}
	left := res.Sent.Add(-clock.Offset).Add(clock.Error + time.Duration(res.Packets)*time.Second/time.Duration(pace))
	switch {
	case left.After(now):
		return now
	case left.Before(asked):
		return asked
	}
	return left
}

// sendForward sends one attempt of each of ps (forward), paced by the sender. The IP IDs of
// the fragmented ones are announced to the agent first, all in one request, so that no
// probe waits on a round trip of its own on the agent session (which carries one request
// at a time, the report polls and the reverse requests included). An attempt counts once
// it is on the wire: one that did not leave (the sending time ran out, the send failed, a
// retry whose turn came after the sending phase's bound) is taken back, and its probe is judged on the attempts
// that left.
func (r *checkRun) sendForward(ctx context.Context, ps []*pending) {
	r.sendMu.Lock()
	defer r.sendMu.Unlock()
	defer func() { r.mu.Lock(); unqueue(ps); r.mu.Unlock() }()
	pks := make([]Packets, len(ps))
	r.mu.Lock()
	var ready []*pending
	var ipids []uint16
	for i, p := range ps {
		if _, err := r.newAttempt(p, &pks[i]); err != nil {
			p.out.Err, p.decided = err, true
			continue
		}
		ready = append(ready, p)
		if len(pks[i].Wire) > 1 && r.agent != nil {
			ipids = append(ipids, pks[i].IPID)
			later, err := r.reserveRetries(p)
			if err != nil {
				r.takeBack(p, &pks[i])
				p.out.Err, p.decided = err, true
				ready = ready[:len(ready)-1]
				continue
			}
			ipids = append(ipids, later...)
		}
		pks[len(ready)-1] = pks[i]
	}
	r.mu.Unlock()
	pks = pks[:len(ready)]
	var annErr error
	if fresh := r.unannounced(ipids); len(fresh) > 0 {
		if annErr = r.announce(ctx, fresh); annErr == nil {
			for _, id := range fresh {
				r.announced[id] = true
			}
		}
	}
	for i, p := range ready {
		pk := &pks[i]
		err := r.sendOne(ctx, p, pk, annErr)
		r.mu.Lock()
		p.queued = false
		if err != nil {
			r.takeBack(p, pk)
			if p.out.Err == nil && ctx.Err() == nil && !errors.Is(err, errRetryTooLate) {
				p.out.Err, p.decided = err, true
			}
		}
		r.mu.Unlock()
	}
}

// unannounced returns the IP IDs of ids the agent has not taken yet (only the forward sender
// reads and writes r.announced).
func (r *checkRun) unannounced(ids []uint16) []uint16 {
	if r.announced == nil {
		r.announced = map[uint16]bool{}
	}
	var fresh []uint16
	for _, id := range ids {
		if !r.announced[id] {
			fresh = append(fresh, id)
		}
	}
	return fresh
}

// errRetryTooLate is a retry whose turn to leave came after the sending phase's bound.
var errRetryTooLate = errors.New("retry after the sending phase's bound")

// sendOne puts one prepared attempt of p on the wire (annErr: the announce of the batch's
// IP IDs failed) and records when it left.
func (r *checkRun) sendOne(ctx context.Context, p *pending, pk *Packets, annErr error) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if annErr != nil && len(pk.Wire) > 1 {
		return annErr
	}
	r.mu.Lock()
	late := len(p.out.Attempts) > 1 && !r.clk.Now().Before(r.retryEnd)
	r.mu.Unlock()
	if late {
		return errRetryTooLate
	}
	left, err := r.send.SendStamped(ctx, pk) // left: when the first packet went to the kernel
	if err != nil {
		return err
	}
	now := r.clk.Now()
	r.mu.Lock()
	p.sentAt[len(p.sentAt)-1] = now
	p.onWire[len(p.onWire)-1] = true
	r.stampAnswers(p, len(p.sentAt)-1)
	attempt, nonce := len(p.nonces), p.nonces[len(p.nonces)-1]
	r.mu.Unlock()
	if r.cfg.Pcap != nil {
		for i, w := range pk.Wire {
			r.record(pointInitiator, left, w, len(w), note("sent", p.out.Probe, report.Forward, attempt, nonce, pk.Frags[i], w, ""), false)
		}
	}
	return nil
}

// takeBack undoes the last attempt of p, built into pk by newAttempt, which did not leave:
// the probe is judged on the attempts that did. The caller holds r.mu.
func (r *checkRun) takeBack(p *pending, pk *Packets) {
	n := len(p.out.Attempts) - 1
	if n < 0 || n >= len(p.nonces) {
		return
	}
	nonce := p.nonces[n]
	delete(r.byNonce, nonce)
	delete(r.byIPID, ipidKey{p.reverse, 0, uint16(nonce)})
	delete(r.byIPID, ipidKey{p.reverse, pk.Proto, pk.IPID})
	p.out.Attempts, p.nonces, p.sentAt, p.onWire = p.out.Attempts[:n], p.nonces[:n], p.sentAt[:n], p.onWire[:n]
	kept := p.early[:0]
	for _, e := range p.early {
		if e.attempt != n {
			kept = append(kept, e)
		}
	}
	p.early = kept
	if n == 0 {
		p.out.Nonce = 0
		for _, s := range p.spare { // a first attempt taken back takes its reserve back too
			delete(r.reserved, uint16(s))
		}
		p.spare = nil
	}
}

// announce tells the agent the IP IDs of the fragmented probes about to leave: it keeps
// non-first fragments only with an announced IP ID. Like reverse requests it is not cut
// off when the run ends early (that would leave the session unusable for the last
// report): it is bounded by RequestTimeout instead, and the probes are then not sent.
func (r *checkRun) announce(ctx context.Context, ipids []uint16) error {
	actx, cancel := context.WithTimeout(context.WithoutCancel(ctx), RequestTimeout)
	defer cancel()
	for len(ipids) > 0 {
		n := min(len(ipids), maxAnnounce)
		if err := r.agent.Announce(actx, ipids[:n]...); err != nil {
			return fmt.Errorf("the agent did not take the probe's IP ID, so it would not keep its fragments: %w", err)
		}
		ipids = ipids[n:]
	}
	return nil
}

// sendReverse asks the agent for one attempt of each of ps.
func (r *checkRun) sendReverse(ctx context.Context, ps []*pending, attempts int) {
	defer func() { r.mu.Lock(); unqueue(ps); r.mu.Unlock() }()
	var req []ReverseProbe
	var refs []*pending
	var nums []int // attempt number of each request
	r.mu.Lock()
	for _, p := range ps {
		for range attempts {
			nonce, err := r.newAttempt(p, &r.revPk)
			if err != nil {
				p.out.Err, p.decided = err, true
				break
			}
			id, bp := r.buildParams(p.out.Probe, r.agentIP, r.peer, nonce)
			req = append(req, ReverseProbe{ID: id, Nonce: nonce, Size: bp.Size, FragSize: bp.FragSize, DstPort: p.dstPort})
			refs = append(refs, p)
			nums = append(nums, len(p.nonces))
		}
	}
	r.mu.Unlock()
	for len(req) > 0 {
		n := min(len(req), MaxReverseProbes)
		res, err := r.agent.SendReverse(ctx, req[:n], r.cfg.Pace)
		clock := r.agent.Clock()
		r.mu.Lock()
		for i := range n {
			p := refs[i]
			if err == nil && i < len(res) {
				p.sentAt[nums[i]-1] = r.reverseLeft(p.sentAt[nums[i]-1], res[i], clock)
			}
			switch {
			case err != nil && ctx.Err() == nil:
				if p.out.Err == nil {
					p.out.Err = fmt.Errorf("agent did not send it: %w", err)
				}
				p.decided = true
			case err == nil && res[i].Error != "":
				if p.out.Err == nil {
					p.out.Err = fmt.Errorf("agent could not send it: %s", res[i].Error)
				}
				p.decided = true
			}
		}
		r.mu.Unlock()
		if err == nil {
			r.recordReverseSends(req[:n], refs[:n], nums[:n], res)
		}
		req, refs, nums = req[n:], refs[n:], nums[n:]
	}
}

// run sends everything and collects answers until each probe has one or its deadline for
// silence has passed (see window).
func (r *checkRun) run(ctx context.Context) error {
	fwd, revUDP, revRest, pm, pmRev := r.partition()
	var held []*pending // behind a NAT: sent after their forward form, through its mapping (nat.go)
	if r.nat.addressTranslated() {
		held, revUDP, revRest = holdForMapping(revUDP, revRest)
	}
	if len(revUDP) > 0 {
		r.progress("reverse-udp")
		r.queue(revUDP)
		// On a goroutine of the clock, like every other send, and waited for.
		var burst sync.WaitGroup
		r.spawn(&burst, func() { r.sendReverse(ctx, revUDP, reverseUDPAttempts) })
		r.clk.Join(&burst)
		if r.agent != nil && ctx.Err() == nil {
			// The burst must be gone before our own UDP 500/4500 leaves; the agent returns
			// when it has sent, so only the wire time remains.
			r.collect(ctx)
		}
	}
	m := r.startMain(ctx, fwd, revRest, pm, pmRev)
	m.held = held
	defer r.stop(m)
	r.progress("probing")
	for !r.step(m) {
		select {
		case <-r.clk.After(checkCollectInterval):
		case <-m.wakes[0]:
		case <-m.wakes[1]:
		case <-ctx.Done():
		}
	}
	return r.finish(m)
}

// mainPhase is the state of run's main phase: everything after the reverse UDP burst.
type mainPhase struct {
	parent  context.Context // the caller's: cancelled on Ctrl-C
	ctx     context.Context // our senders': cancelled once the probes are done (or at T)
	rctx    context.Context // reverse requests': not cut off midway (see startMain)
	pctx    context.Context // the path MTU searches': only the caller and a broken agent end them
	cancel  context.CancelFunc
	rcancel context.CancelFunc
	pcancel context.CancelFunc
	wg      sync.WaitGroup
	start   time.Time
	held    []*pending
	wakes   [2]<-chan struct{} // our captures' (nil: none)

	sending     bool      // until the probes are done, or T is up and every first attempt left: afterwards only the searches run on
	sendEnd     time.Time // the sending phase's bound: what is still queued then is not sent (sendingBound)
	lastPoll    time.Time
	agentErr    error
	interrupted bool
}

// partition sorts the undecided probes by how run sends them.
func (r *checkRun) partition() (fwd, revUDP, revRest []*pending, pm, pmRev *pending) {
	for _, p := range r.list {
		switch {
		case p.decided:
		case p.out.Probe == PMTU && p.reverse:
			pmRev = p // planned only when revPMTU is set
		case p.out.Probe == PMTU:
			pm = p
			if r.pmtu == nil {
				p.out.Skip = "No path MTU search in this build: run 'ipsecpath pmtu'."
				p.decided, pm = true, nil
			}
		case !p.reverse:
			fwd = append(fwd, p)
		case p.udp:
			revUDP = append(revUDP, p)
		default:
			revRest = append(revRest, p)
		}
	}
	return fwd, revUDP, revRest, pm, pmRev
}

// startMain starts the main phase: our forward probes, the agent's other reverse probes and
// the path MTU searches, each on its own goroutine.
func (r *checkRun) startMain(ctx context.Context, fwd, revRest []*pending, pm, pmRev *pending) *mainPhase {
	m := &mainPhase{parent: ctx, start: r.clk.Now(), sending: true}
	r.sendFor = r.sendingBound(fwd)
	m.sendEnd = m.start.Add(r.sendFor)
	r.mu.Lock()
	r.retryEnd = m.sendEnd
	r.mu.Unlock()
	// Reverse requests are not cancelled when the run ends early: a request cut off midway
	// leaves the control session unusable for the last report. They are bounded instead.
	m.rctx, m.rcancel = context.WithDeadline(ctx, time.Now().Add(r.sendFor+setupTimeout))
	// The path MTU searches end with the caller (Ctrl-C) or a broken agent session, never at
	// T: they are bounded by their own budgets.
	m.pctx, m.pcancel = context.WithCancel(ctx)
	m.ctx, m.cancel = context.WithDeadline(ctx, time.Now().Add(r.sendFor+setupTimeout))
	for i, o := range r.obs[:min(len(r.obs), len(m.wakes))] {
		m.wakes[i] = o.Wake()
	}
	r.queue(fwd)
	r.forward(m.ctx, &m.wg, fwd)
	if len(revRest) > 0 {
		r.queue(revRest)
		r.spawn(&m.wg, func() { r.sendReverse(m.rctx, revRest, 1) })
	}
	if pm != nil {
		r.spawn(&m.wg, func() { r.runPMTU(m.pctx, pm, r.pmtu) })
	}
	if pmRev != nil {
		r.spawn(&m.wg, func() { r.runPMTU(m.pctx, pmRev, r.revPMTU) })
	}
	return m
}

// spawn runs f on a goroutine of the run's clock, counted in wg.
func (r *checkRun) spawn(wg *sync.WaitGroup, f func()) {
	wg.Add(1)
	r.clk.Go(func() { defer wg.Done(); f() })
}

// stop ends whatever the main phase still runs; nothing of it may outlive the run (r.close
// releases what it uses).
func (r *checkRun) stop(m *mainPhase) {
	m.cancel()
	m.rcancel()
	m.pcancel()
	r.clk.Join(&m.wg)
}

// step reads what arrived, sends what is due, and reports whether the main phase is over.
func (r *checkRun) step(m *mainPhase) bool {
	r.collectLocal()
	if r.agent != nil && r.clk.Now().Sub(m.lastPoll) >= agentPollInterval {
		m.lastPoll = r.clk.Now()
		actx, acancel := context.WithTimeout(m.parent, RequestTimeout)
		err := r.collectAgent(actx)
		acancel()
		if err != nil && m.parent.Err() == nil {
			m.agentErr = err
			return true
		}
	}
	r.progress("waiting")
	now := r.clk.Now()
	// Cancelled first: a cancel also ends the path MTU searches, so the test below would
	// otherwise see nothing left to wait for and finish an interrupted run as complete.
	if m.parent.Err() != nil {
		m.interrupted = true // the caller cancelled (Ctrl-C)
		return true
	}
	quiet := len(m.held) == 0 && r.silent(now, m.sending)
	if r.allDecided() || (quiet && !r.searching()) {
		return true
	}
	late := !now.Before(m.start.Add(r.timeout))
	if m.sending && (quiet || (late && !r.forwardQueued() && !r.retriesLeft()) || !now.Before(m.sendEnd)) {
		// The probes are done; or T is up and no attempt still waits to leave (a slow agent
		// session can hold first attempts past T, and their retries then fall after T: they
		// still go, each with its own deadline for silence from when it left); or the
		// sending phase's bound is up. Stop the senders; the searches go on.
		m.sending = false
		m.cancel()
	}
	if m.sending {
		r.release(m, now)
		r.retry(m, now)
	}
	return false
}

// sendingBound is how long the main phase may send: T, plus what the forward probes' first
// attempts need at the pace, plus, with an agent, T again for the agent session's queue
// (one request at a time: the announce of the fragmented probes' IP IDs waits behind the
// report polls and the reverse requests), plus T/2 for each retry of a first attempt that
// left last (a retry goes retryGap after the attempt before it: W/4 ≤ T/4, or an RTO and
// the loop's and the agent's intervals on a slow path), T/2 more each with an agent (there a
// retry is due only once the agent's report could show the attempt before it arrived, and
// that report waits its turn on the session; the retries' IP IDs went with the first
// announce, so no retry waits on an announce of its own). The senders stop earlier, at T,
// unless first attempts are still waiting to leave then, or retries are still to go. The
// whole run stays bounded: this, then at most W (≤ T) of silence after the last probe
// left, then the last report.
func (r *checkRun) sendingBound(fwd []*pending) time.Duration {
	pace := r.cfg.Pace
	if pace <= 0 {
		pace = DefaultRate
	}
	packets := 0
	var pk Packets
	for _, p := range fwd {
		id, bp := r.buildParams(p.out.Probe, r.src, r.cfg.Target, 1)
		if Build(id, bp, &pk) == nil {
			packets += len(pk.Wire)
		}
	}
	d := r.timeout + time.Duration(packets)*time.Second/time.Duration(pace) + (CheckAttempts-1)*r.timeout/2
	if r.agent != nil {
		d += r.timeout + (CheckAttempts-1)*r.timeout/2
	}
	return d
}

// forwardQueued reports whether a forward probe waits for the sender or is being sent.
func (r *checkRun) forwardQueued() bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, p := range r.list {
		if !p.reverse && p.queued {
			return true
		}
	}
	return false
}

// release sends the reverse probes held for their NAT mapping once it is known (at T/2
// whatever it is).
func (r *checkRun) release(m *mainPhase, now time.Time) {
	if len(m.held) == 0 {
		return
	}
	var ready []*pending
	ready, m.held = r.mappedReverse(m.held, !now.Before(m.start.Add(r.timeout/2)))
	udp, raw := splitUDP(ready)
	r.queue(ready)
	if len(udp) > 0 {
		r.spawn(&m.wg, func() { r.sendReverse(m.rctx, udp, reverseUDPAttempts) })
	}
	if len(raw) > 0 {
		r.spawn(&m.wg, func() { r.sendReverse(m.rctx, raw, 1) })
	}
}

// retry sends again the probes whose last attempt is overdue (see due).
func (r *checkRun) retry(m *mainPhase, now time.Time) {
	fwd, rev := r.due(now)
	if len(fwd) > 0 {
		r.forward(m.ctx, &m.wg, fwd)
	}
	if len(rev) > 0 {
		r.spawn(&m.wg, func() { r.sendReverse(m.rctx, rev, 1) })
	}
}

// finish ends the main phase: on a broken agent session or an interruption it returns the
// error (no report: probes still without an answer would be judged dropped); otherwise it
// takes a last look at what arrived while the senders stopped.
func (r *checkRun) finish(m *mainPhase) error {
	m.cancel() // stop the senders
	if m.agentErr != nil || m.interrupted {
		m.rcancel() // the session is broken: reverse requests cannot be answered
		m.pcancel() // nor can the reverse search's; and an interrupted run reports nothing
	}
	r.clk.Join(&m.wg) // nothing of this run may outlive it: r.close releases what they use
	switch {
	case m.agentErr != nil:
		return envErr("%w", m.agentErr)
	case m.interrupted:
		// Probes still without an answer would be judged dropped: no report at all is honest.
		return fmt.Errorf("check interrupted before every probe had its answer: %w", m.parent.Err())
	}
	r.collectLocal()
	if r.agent != nil {
		fctx, fcancel := context.WithTimeout(context.Background(), setupTimeout)
		defer fcancel()
		if err := r.collectAgent(fctx); err != nil {
			return envErr("%w", err)
		}
	}
	return nil
}

// unjudgeable turns the forward probes the agent did not see whole into errors when its
// capture lost packets: the missing ones may have been among them, and "dropped",
// "partial" or "blocked by a reset" would send the engineer after a filter that may not
// exist. Probes a device refused with an ICMP error keep their verdict: that is evidence
// of its own.
func (r *checkRun) unjudgeable() {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.agentLost == 0 {
		return
	}
	for _, p := range r.list {
		if p.reverse || p.out.Err != nil || p.out.Skip != "" || p.out.Probe == PMTU || !p.out.Observed || firstBlocking(p.out) != nil {
			continue
		}
		whole := false
		for _, a := range p.out.Attempts {
			whole = whole || a.complete()
		}
		if whole {
			continue
		}
		p.out.Err = fmt.Errorf("the agent's capture lost %d packets (its buffers were full: heavy traffic from this host), so it may have missed this one; run again when the link is quieter", r.agentLost)
	}
}

// unsent turns the probes that never left into errors: their silence says nothing about
// the path, and "dropped" would send the engineer after a device that never saw them.
func (r *checkRun) unsent() {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, p := range r.list {
		if len(p.out.Attempts) == 0 && p.out.Err == nil && p.out.Skip == "" && p.out.Probe != PMTU {
			p.out.Err = &notSentError{Sending: r.sendFor, AgentRTT: r.ctlRTT}
		}
	}
}

// notSentError is the error of a probe that never left: the run's time for sending ran
// out while it waited its turn.
type notSentError struct {
	Sending  time.Duration // the sending phase's bound
	AgentRTT time.Duration // the longest round trip of a request to the agent (0: none measured)
}

func (e *notSentError) Error() string {
	msg := fmt.Sprintf("not sent: the run's time for sending (%s) ran out before this probe left, so it says nothing about the path", e.Sending.Round(time.Millisecond))
	if e.AgentRTT > 0 {
		msg += fmt.Sprintf("; a report from the agent took up to %s to come back, and the agent session carries one request at a time", e.AgentRTT.Round(time.Millisecond))
	}
	return msg + "; raise --timeout"
}

// collect waits briefly for the reverse burst's packets to land, reading what arrives.
func (r *checkRun) collect(ctx context.Context) {
	select {
	case <-r.clk.After(checkCollectInterval):
	case <-ctx.Done():
	}
	r.collectLocal()
}

func (r *checkRun) allDecided() bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, p := range r.list {
		if !p.decided {
			return false
		}
	}
	return true
}

func (r *checkRun) progress(phase string) {
	if r.cfg.Progress == nil {
		return
	}
	r.mu.Lock()
	n := 0
	total := 0
	for _, p := range r.list {
		if p.out.Reference {
			continue
		}
		total++
		if p.decided {
			n++
		}
	}
	r.mu.Unlock()
	r.cfg.Progress(CheckProgress{Phase: phase, Decided: n, Total: total})
}

// searching reports whether a path MTU search is still running.
func (r *checkRun) searching() bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, p := range r.list {
		if p.out.Probe == PMTU && !p.decided {
			return true
		}
	}
	return false
}

// runPMTU runs a path MTU search opened in setup, and closes it. It is bounded by its own
// budget (the search's), and ends early only with ctx: a search cut short after sizes
// passed is reported with what passed, marked unfinished.
func (r *checkRun) runPMTU(ctx context.Context, p *pending, search PathMTUSearch) {
	res, err := settleSearch(search.Run(ctx))
	search.Close()
	r.mu.Lock()
	defer r.mu.Unlock()
	if err != nil {
		p.out.Err = err
	}
	if res != nil {
		m := res.PathMTU()
		p.out.Search, p.out.PathMTU = res, &m
	}
	p.decided = true
}

// collectLocal reads our own captures: answers and ICMP errors for forward probes, and the
// agent's reverse probes.
func (r *checkRun) collectLocal() {
	for _, o := range r.obs {
		seen := o.Drain()
		if len(seen) == 0 {
			continue
		}
		var notes []string
		if r.cfg.Pcap != nil {
			notes = make([]string, len(seen))
		}
		r.mu.Lock()
		for i := range seen {
			if n := r.local(&seen[i]); notes != nil {
				notes[i] = n
			}
		}
		r.mu.Unlock()
		if r.cfg.Pcap != nil {
			for i := range seen {
				r.record(pointInitiator, seen[i].At, seenPacket(&seen[i]), seen[i].TotalLen, notes[i], false)
			}
		}
	}
}

// collectAgent fetches what the agent captured and maps it to forward probes.
func (r *checkRun) collectAgent(ctx context.Context) error {
	asked := r.clk.Now()
	rep, err := r.agent.Report(ctx)
	if err != nil {
		return err
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if rep.RTT > 0 {
		// The report crossed the path both ways. Its own round trip, not the time it
		// waited for the session's earlier requests: queueing is not the path.
		r.rttSample(rep.RTT)
		r.ctlRTT = max(r.ctlRTT, rep.RTT)
	}
	for i := r.agentSeen; i < len(rep.Seen); i++ {
		s := &rep.Seen[i]
		ref, ok := r.arrived(s, false)
		r.reverseAnswer(s)
		if r.cfg.Pcap != nil {
			pkt := seenPacket(s)
			n := note("other", "", "", 0, 0, report.Fragment{}, pkt, "seen by the agent, not tied to a probe of this run")
			if ok {
				n = note("arrived", ref.p.out.Probe, report.Forward, ref.attempt+1, ref.p.nonces[ref.attempt], seenFrag(s), pkt, "")
			}
			r.record(pointAgent, s.At, pkt, s.TotalLen, n, true)
		}
	}
	r.agentSeen = len(rep.Seen)
	r.agentLost = rep.Lost
	r.settle(asked)
	return nil
}

// local maps one packet our capture saw and returns its pcap note. The caller holds r.mu.
func (r *checkRun) local(s *Seen) string {
	pkt := func() []byte {
		if r.cfg.Pcap == nil {
			return nil
		}
		return seenPacket(s)
	}
	tied := func(role string, ref attemptRef, extra string) string {
		if r.cfg.Pcap == nil {
			return "" // notes are for the pcap only: keep the hot path lean
		}
		return note(role, ref.p.out.Probe, direction(ref.p.reverse), ref.attempt+1, ref.p.nonces[ref.attempt], seenFrag(s), pkt(), extra)
	}
	other := func() string {
		if r.cfg.Pcap == nil {
			return ""
		}
		if r.ctlPort != 0 && s.Proto == ProtoTCP && s.Offset == 0 && len(s.Head) >= 2 && binary.BigEndian.Uint16(s.Head) == r.ctlPort {
			return note("control", "", "", 0, 0, report.Fragment{}, nil, "the agent's control connection")
		}
		return note("other", "", "", 0, 0, report.Fragment{}, pkt(), "not tied to a probe of this run")
	}
	if s.Offset == 0 {
		if m, ok := ClassifyHead(s.Proto, s.Head); ok {
			switch m.Kind {
			case KindProbe:
				if ref, ok := r.arrived(s, true); ok {
					return tied("arrived", ref, "")
				}
				return other()
			case KindReply:
				if ref, ok := r.byNonce[m.Nonce]; ok && !ref.p.reverse {
					kind := replyKind(s.Proto, m.TCPFlags)
					r.answerRTT(ref, Reply{Kind: kind, From: s.Src, TTL: s.TTL}, s.At)
					r.answered(ref.p, s.At)
					return tied("answer", ref, kind+" from "+s.Src.String())
				}
				return other()
			case KindICMPError:
				e, err := ParseICMPError(s)
				if err != nil {
					return other()
				}
				ref, ok := r.byNonce[m.Nonce]
				if !ok || m.Nonce == 0 {
					ref, ok = r.byIPID[ipidKey{false, e.Quoted.Proto, e.Quoted.IPID}]
				}
				if ok && !ref.p.reverse {
					ref.p.out.ICMP = append(ref.p.out.ICMP, ICMPAnswer{ICMPError: e, TTL: s.TTL})
					r.answered(ref.p, s.At)
					return tied("icmp", ref, fmt.Sprintf("%s from %s", wire.ICMPName(e.Type, e.Code), e.From))
				}
				return other()
			}
		}
		if s.Proto == ProtoICMP {
			if e, err := ParseICMPError(s); err == nil {
				if ref, ok := r.byIPID[ipidKey{false, e.Quoted.Proto, e.Quoted.IPID}]; ok && !ref.p.reverse {
					ref.p.out.ICMP = append(ref.p.out.ICMP, ICMPAnswer{ICMPError: e, TTL: s.TTL})
					r.answered(ref.p, s.At)
					return tied("icmp", ref, fmt.Sprintf("%s from %s", wire.ICMPName(e.Type, e.Code), e.From))
				}
				return other()
			}
		}
	}
	if ref, ok := r.arrived(s, true); ok {
		return tied("arrived", ref, "")
	}
	return other()
}

func direction(reverse bool) report.Direction {
	if reverse {
		return report.Reverse
	}
	return report.Forward
}

// recordReverseSends records, at the agent's capture point, the reverse probes the agent
// reports sent: rebuilt here from the request (both ends build a probe from its id and
// nonce with the same code), stamped with the agent's send time.
func (r *checkRun) recordReverseSends(req []ReverseProbe, refs []*pending, nums []int, res []ReverseResult) {
	if r.cfg.Pcap == nil {
		return
	}
	var pk Packets
	for i := range req {
		if i >= len(res) || res[i].Error != "" || res[i].Packets == 0 {
			continue
		}
		r.mu.Lock()
		id, bp := r.buildParams(refs[i].out.Probe, r.agentIP, r.peer, req[i].Nonce)
		r.mu.Unlock()
		if err := Build(id, bp, &pk); err != nil {
			continue
		}
		at, agentClock := res[i].Sent, true
		if at.IsZero() { // an agent that does not say when: when it answered, on our clock
			at, agentClock = r.clk.Now(), false
		}
		for j, w := range pk.Wire {
			r.record(pointAgent, at, w, len(w), note("sent", refs[i].out.Probe, report.Reverse, nums[i], req[i].Nonce, pk.Frags[j], w, "rebuilt from the request; the agent reported it sent"), agentClock)
		}
	}
}

// arrived records a probe fragment seen at the receiving end: the agent (forward) or us
// (reverse). First fragments are matched by the nonce in their header, the others by IP ID.
// The caller holds r.mu.
func (r *checkRun) arrived(s *Seen, reverse bool) (attemptRef, bool) {
	var ref attemptRef
	var ok bool
	if s.Offset == 0 {
		// A first fragment carries the probe's header: it must classify as one of ours (an
		// unrelated packet whose IP ID happens to match is not a probe).
		m, mok := ClassifyHead(s.Proto, s.Head)
		if !mok || m.Kind != KindProbe {
			return ref, false
		}
		ref, ok = r.byNonce[m.Nonce]
	} else {
		ref, ok = r.byIPID[ipidKey{reverse, s.Proto, s.IPID}]
	}
	if !ok || ref.p.reverse != reverse || ref.p.proto != s.Proto {
		return ref, false
	}
	a := &ref.p.out.Attempts[ref.attempt]
	if hasOffset(a.Seen, s.Offset) {
		return ref, true // a duplicate: still this probe's
	}
	if !reverse {
		r.nat.note(r.src, ref.p, s)
	}
	a.Seen = append(a.Seen, report.Fragment{Offset: s.Offset, Length: max(s.TotalLen-ipv4MinHeader, 0), More: s.More, TTL: int(s.TTL), DF: s.DF})
	if a.complete() {
		ref.p.decided = true
	}
	return ref, true
}

// reverseAnswer maps a packet the agent captured that came back for one of its reverse
// probes: an ICMP error a router on the way sent it (admin-prohibited, fragmentation needed,
// time exceeded), or a TCP reset or SYN-ACK in this host's name. The caller holds r.mu.
func (r *checkRun) reverseAnswer(s *Seen) {
	if s.Offset != 0 {
		return
	}
	m, ok := ClassifyHead(s.Proto, s.Head)
	if !ok {
		return
	}
	switch m.Kind {
	case KindReply:
		ref, ok := r.byNonce[m.Nonce]
		if !ok || !ref.p.reverse || ref.p.proto != s.Proto {
			return
		}
		// No RTT: the agent's clock stamped the answer, ours the request.
		ref.p.out.Replies = append(ref.p.out.Replies, Reply{Kind: replyKind(s.Proto, m.TCPFlags), From: s.Src, TTL: s.TTL})
		r.answered(ref.p, r.clk.Now())
	case KindICMPError:
		e, err := ParseICMPError(s)
		if err != nil {
			return
		}
		ref, ok := r.byNonce[m.Nonce]
		if !ok || m.Nonce == 0 {
			ref, ok = r.byIPID[ipidKey{true, e.Quoted.Proto, e.Quoted.IPID}]
		}
		if ok && ref.p.reverse {
			ref.p.out.ICMP = append(ref.p.out.ICMP, ICMPAnswer{ICMPError: e, TTL: s.TTL})
			r.answered(ref.p, r.clk.Now())
		}
	}
}

// answered notes an answer to a probe (forward: what came back to us; reverse: what came
// back to the agent): without an agent it settles the probe; with one only what the
// receiving end saw does (see the package comment above), or settle.
func (r *checkRun) answered(p *pending, at time.Time) {
	if r.agent == nil {
		p.decided = true
	} else if p.answeredAt.IsZero() {
		p.answeredAt = at
	}
}

// settle decides, with an agent, the probes that drew an ICMP error or a reply at least
// refusalGrace before the agent report that still shows nothing of them (asked at asked;
// reverse: learnt from an earlier report, while our own capture, read all along, shows
// nothing of them): a refusal is not loss, so it needs no retry and no waiting out the
// timeout.
func (r *checkRun) settle(asked time.Time) {
	for _, p := range r.list {
		if !p.decided && !p.answeredAt.IsZero() && asked.Sub(p.answeredAt) >= refusalGrace && !anySeen(p.out) {
			p.decided = true
		}
	}
}

func replyKind(proto, flags uint8) string {
	switch proto {
	case ProtoUDP:
		return AnswerIKE
	case ProtoICMP:
		return AnswerEchoReply
	case ProtoTCP:
		if flags&TCPRst != 0 {
			return AnswerRST
		}
		return AnswerSYNACK
	}
	return "answer"
}

// seenPacket is a captured packet for the pcap: the bytes the capture kept (Seen.Packet),
// or else its IPv4 header rebuilt with Head after it: the header's total length still says
// how long the packet was.
func seenPacket(s *Seen) []byte {
	if len(s.Packet) > 0 {
		return s.Packet
	}
	b := make([]byte, ipv4MinHeader+len(s.Head))
	putIPv4Header(b, s.TotalLen, s.IPID, s.DF, s.TTL, s.Proto, s.Src, s.Dst)
	ff := binary.BigEndian.Uint16(b[6:8]) | uint16(s.Offset/8)
	if s.More {
		ff |= 0x2000
	}
	binary.BigEndian.PutUint16(b[6:8], ff)
	binary.BigEndian.PutUint16(b[10:12], 0)
	binary.BigEndian.PutUint16(b[10:12], ^wire.Fold(wire.Add(0, b[:ipv4MinHeader])))
	copy(b[ipv4MinHeader:], s.Head)
	return b
}

// firstDropOf returns the first of rules that drops probe id, nil when none does.
func firstDropOf(rules []report.FirewallRule, id ID) *report.FirewallRule {
	for i := range rules {
		for _, p := range rules[i].Probes {
			if p == string(id) {
				return &rules[i]
			}
		}
	}
	return nil
}
