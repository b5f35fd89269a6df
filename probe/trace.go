package probe

// Trace: which hop drops a probe, both directions.
//
// A trace sends TTL-limited copies of the exact probe (every TTL from 1 to MaxHops, all in
// flight at once, paced) and reads the ICMP time-exceeded each router sends back for the copy
// whose TTL ran out there. Paris-traceroute style, every forward copy is the same packet but
// for its TTL, IP ID and header checksum: same addresses, protocol, ports, SPI, echo id/seq,
// IKE SPI, TCP sequence, so a router balancing flows over several paths (ECMP) sends every
// copy down the same one. The IP ID tells the copies apart: an ICMP error quotes the IP header
// of the packet that caused it, and the quoted ID names the TTL.
//
// Fragmented probes: every fragment of a copy carries the copy's IP ID. Routers send
// time-exceeded only for a first fragment (RFC 1812 4.3.2.7; Linux's icmp_send returns
// early for a non-zero fragment offset), so TTLs localise the first fragment only; the
// other fragments are localised by the agent (which reports each fragment that arrived) and
// otherwise reported as not localised. Nothing is guessed.
//
// References: a small ICMP echo (one nonce per TTL, so its replies name their TTL) and, for a
// -frag probe, its unfragmented form, traced at the same time. They map which hop answers at
// which TTL for probes that pass: the first hop after the last one the probe reached that
// answers them but not the probe is the far end of the bracket; hops that answer nothing
// widen it. At every TTL the references go out after the traced probes, and only answers to
// references sent after a probe's copy count: routers rate-limit their ICMP (Linux: a burst
// of 6 toward one address, then 1 per second; the lab turns that off), and a router that
// answered a later copy still had the budget to answer the probe's, had it arrived. A
// starved reference widens a bracket; it never moves it.
//
// Resets: a TCP reset in the far end's name that the far end did not send (with an agent:
// the SYN was never seen there; without: its TTL differs from the far end's echo replies) is
// a refusal, its device estimated from the TTL difference and the far end's hop count.
//
// Reverse (with an agent): the agent sends TTL-limited copies toward us with send-reverse
// (its ReverseProbe.TTL), in chunks of reverseTraceChunk TTLs; the time-exceeded come back to
// the agent, whose capture reports them; arrival is our own capture. As forward, every
// reverse copy of a walk carries the walk's one nonce (one SPI, echo id, ports: one
// five-tuple) and its own IP ID (ReverseProbe.IPID), by which the quotes and arrivals are
// matched. An agent that ignores the IP ID asked for (older than ReverseProbe.IPID) says so
// by the IP ID in its result: the walk is then reported as not traced, never misread.
//
// Time: everything is sent at once (paced), then answers are read until every copy has its
// answer or is past its own deadline for silence, W after it left (trace_wait.go: W follows
// the round trips measured, the check's window), and never longer than Timeout after the
// first send (and at least Timeout/2 after the last; within a check, strictly Timeout).
// TTLs more than traceFarEndMargin beyond the far end, once a copy arrived there, are not
// sent.

import (
	"context"
	"fmt"
	"net/netip"
	"strings"
	"sync"
	"time"

	"github.com/ipsecpath/ipsecpath/probe/wire"
	"github.com/ipsecpath/ipsecpath/report"
)

// Trace defaults and bounds.
const (
	// DefaultTraceMaxHops is the largest TTL sent unless --max-hops says otherwise.
	DefaultTraceMaxHops = 30
	// MaxTraceMaxHops bounds --max-hops.
	MaxTraceMaxHops = 64
	// DefaultTraceTimeout is how long a trace waits for answers after its first send.
	DefaultTraceTimeout = 2 * time.Second
	// traceFarEndMargin is how many TTLs past the far end (once a copy arrived there) are
	// still sent: a probe of another protocol may take a slightly longer path.
	traceFarEndMargin = 2
	// maxCompanionGap is the longest a companion echo may leave after its probe's copy and
	// still map the hop for it (see hopMap): forward they leave back to back; in reverse the
	// agent paces them (a fragmented probe's copy is 3–4 packets, and the agent's own sender
	// paces again: 110 ms were seen in the lab under load).
	maxCompanionGap        = 100 * time.Millisecond
	maxReverseCompanionGap = 250 * time.Millisecond
	// reverseTraceChunk is how many TTLs of every reverse walk go in one send-reverse request.
	reverseTraceChunk = 8
)

// TraceConfig says what to trace.
type TraceConfig struct {
	Target netip.Addr
	Probe  ID // any probe id of check but pmtu
	// Agent is the far-end agent's HOST:PORT ("" for a one-ended trace); Key its key.
	Agent string
	Key   []byte
	// MaxHops is the largest TTL (0: DefaultTraceMaxHops).
	MaxHops int
	// Timeout is how long to wait for answers after the first send (0: DefaultTraceTimeout).
	Timeout time.Duration
	// Pace is packets per second toward the target, and asked of the agent (0: DefaultRate).
	Pace int
	// Progress, when set, is called with the phase: "tracing" once the sending starts,
	// "waiting" at every look for answers (about every 50 ms), "done".
	Progress func(phase string)
}

// TraceProbe runs `ipsecpath trace`: the probe's walk toward the target and, with an agent,
// back. The report has one result per direction (pass when the far end saw it, else the
// verdict the bracket supports: dropped or blocked) and the hops in Report.Trace.
func TraceProbe(ctx context.Context, cfg TraceConfig) (*report.Report, error) {
	if err := CheckTargetHere(cfg.Target); err != nil {
		return nil, &CheckError{Err: err}
	}
	cfg.Target = cfg.Target.Unmap()
	if !cfg.Probe.Valid() || cfg.Probe == PMTU {
		return nil, envErr("probe %q cannot be traced (ike, ike-frag, natt, natt-frag, esp, esp-frag, ah, ah-frag, icmp-large, tcp:PORT)", cfg.Probe)
	}
	if cfg.MaxHops == 0 {
		cfg.MaxHops = DefaultTraceMaxHops
	}
	if cfg.MaxHops < 1 || cfg.MaxHops > MaxTraceMaxHops {
		return nil, envErr("max hops %d: want 1–%d", cfg.MaxHops, MaxTraceMaxHops)
	}
	if cfg.Timeout == 0 {
		cfg.Timeout = DefaultTraceTimeout
	}
	if cfg.Timeout < MinCheckTimeout || cfg.Timeout > MaxCheckTimeout {
		return nil, envErr("timeout %s: want %s–%s", cfg.Timeout, MinCheckTimeout, MaxCheckTimeout)
	}
	if cfg.Pace < 0 || cfg.Pace > MaxRate {
		return nil, envErr("pace %d packets/s: want 1–%d", cfg.Pace, MaxRate)
	}
	started := time.Now()
	rep := report.New(cfg.Target.String(), cfg.Agent, started)
	// The check's setup does exactly what a trace needs: agent greeting, sender, captures.
	env := realEnv()
	r := &checkRun{cfg: CheckConfig{Target: cfg.Target, Agent: cfg.Agent, Key: cfg.Key, Pace: cfg.Pace}, env: env, clk: env.Clock}
	defer r.close()
	if err := r.setup(ctx); err != nil {
		return nil, err
	}
	t := r.tracer(cfg.MaxHops, cfg.Timeout)
	t.progress = cfg.Progress
	fw := t.add(cfg.Probe, false, true)
	var rv *walk
	if r.agent != nil && r.agentIP.IsValid() {
		rv = t.add(cfg.Probe, true, true)
	}
	if err := t.run(ctx); err != nil {
		return nil, err
	}
	tr := &report.Trace{Probe: string(cfg.Probe)}
	fp := t.path(fw)
	tr.Forward = fp
	rep.Add(traceResult(fw, fp, report.Forward))
	if rv != nil {
		rp := t.path(rv)
		tr.Reverse = rp
		rep.Add(traceResult(rv, rp, report.Reverse))
	} else if r.agent != nil {
		rep.Add(report.Result{Probe: string(cfg.Probe), Direction: report.Reverse, Verdict: report.Skipped,
			Detail: "The agent cannot send reverse probes (it needs root or CAP_NET_RAW)."})
	}
	rep.Trace = tr
	rep.Finish(time.Now())
	if cfg.Progress != nil {
		cfg.Progress("done")
	}
	return rep, nil
}

// traceResult is the result row of one direction of `ipsecpath trace`.
func traceResult(w *walk, p *report.TracePath, d report.Direction) report.Result {
	res := report.Result{Probe: string(w.id), Direction: d, Detail: p.Detail}
	switch {
	case p.FarEnd && w.complete():
		res.Verdict = report.Pass
	case p.FarEnd:
		res.Verdict = report.Partial
	case p.Refused != "":
		res.Verdict = report.Blocked
	case p.Unconfirmed:
		res.Verdict = report.Skipped
	default:
		res.Verdict = report.Dropped
	}
	if res.Verdict != report.Pass && p.LastReached != nil {
		res.Hop = p.Hop()
	}
	if p.Probes > 0 {
		res.Evidence.Extra = fmt.Sprintf("%d packets sent in this direction (every TTL, fragments and the echo sent behind each copy counted).", p.Probes)
	}
	return res
}

// tracer walks probes hop by hop over a check's sockets and agent session.
type tracer struct {
	r        *checkRun
	maxHops  int
	timeout  time.Duration
	progress func(string)
	// strict: the run ends timeout after the first send, however long sending takes (check:
	// its traces may add one timeout, no more); TTLs not sent by then are left out.
	strict bool

	mu      sync.Mutex
	rtt     traceRTT // the round trips measured (within a check: the run's first)
	walks   []*walk
	byIPID  map[ipidKey]*ttlCopy
	byNonce map[uint32]*ttlCopy // echo copies' nonces; a reverse walk's nonce: its first copy
	walkOf  map[uint32]*walk    // forward: the walk's one nonce
	nextID  uint16
	nonces  []uint32
	farEnd  [2]int // least TTL known to arrive at the far end, per direction (0: not yet)
	// echoFar is the least TTL of a forward echo copy the far end answered (0: none yet):
	// with an agent its arrival is what the agent reports, but the reply already says how
	// far the copies need to go (limit), before the agent's next report.
	echoFar int
	sent    [2]int // packets sent per direction
	// agentFrom is how many packets of the agent's report came before this trace;
	// agentSeen how many are in the pcap already.
	agentFrom, agentSeen int
	echoPk               Packets // the forward companion echo being sent (sendForward's goroutine)
	// echoTTL is the arrival TTL of the far end's echo replies per direction (0: none came):
	// the target's at our end, ours at the agent.
	echoTTL [2]uint8
	// nextRevID is the last IP ID given to a reverse copy (revIPID); revNonce holds the low
	// 16 bits of the reverse walks' nonces: the IP ID an agent that ignores ReverseProbe.IPID
	// puts on every copy, never given to a copy.
	nextRevID uint16
	revNonce  map[uint16]bool
	// ignoredIPID: the agent sent reverse copies with another IP ID than asked (an older
	// agent); the reverse walks are not traced (see sendReverse).
	ignoredIPID bool
}

// walk is one probe (or reference) traced in one direction.
type walk struct {
	id      ID // as built (smallEcho for the echo reference)
	reverse bool
	ref     bool
	nonce   uint32 // forward, except the echo: every copy's nonce
	proto   uint8
	frags   []report.Fragment
	copies  []*ttlCopy // index TTL-1
	refs    []*walk    // the reference walks of a traced walk
	// echo is a traced walk's companion: a small echo whose copy of each TTL goes out right
	// behind the walk's own, back to back, and maps the hops for it (see hopMap).
	echo      *walk
	companion bool  // this walk is some walk's echo
	unfrag    *walk // a -frag walk's unfragmented form, traced alongside (standalone trace)
	// answered: a reply from the target came back (one-ended; the copy is not known when
	// every copy carries the same nonce).
	answered bool
	// rstTTL is the arrival TTL of the first TCP reset in the target's name (0: none).
	rstTTL uint8
	// ipids are the IP IDs reserved for a fragmented forward walk's copies (index TTL-1)
	// and announced to the agent before any leaves: the agent keeps non-first fragments
	// only with an announced IP ID. Empty: each copy takes a fresh one (t.ipid).
	ipids []uint16
}

// ttlCopy is one TTL of a walk.
type ttlCopy struct {
	w     *walk
	ttl   int
	ipid  uint16
	nonce uint32
	// packets is how many IP packets (fragments) the copy is.
	packets int
	sent    time.Time // zero: not sent (reverse: the agent's clock)
	// left is when a reverse copy left the agent, on our clock (reverseLeft): its deadline
	// for silence counts from there (trace_wait.go).
	left time.Time
	// teFrom answered time-exceeded in transit (code 0) for this copy's first fragment.
	teFrom netip.Addr
	teRTT  time.Duration
	// err is another ICMP error this copy drew (unreachable, parameter problem).
	err    *ICMPError
	errRTT time.Duration
	// farEnd: the copy (or a fragment of it) arrived: the agent or our capture saw it, or
	// the far end answered it. seen holds the fragment offsets that arrived.
	farEnd bool
	seen   map[int]bool
}

// tracer returns a tracer over r's sockets (r.setup has run).
func (r *checkRun) tracer(maxHops int, timeout time.Duration) *tracer {
	return &tracer{r: r, maxHops: maxHops, timeout: timeout, byIPID: map[ipidKey]*ttlCopy{},
		byNonce: map[uint32]*ttlCopy{}, walkOf: map[uint32]*walk{}, revNonce: map[uint16]bool{}}
}

// add plans the walk of id in one direction, with its references (the small echo, and with
// unfrag a -frag probe's unfragmented form), and returns it.
func (t *tracer) add(id ID, reverse, unfrag bool) *walk {
	w := t.newWalk(id, reverse, false)
	w.echo = t.newWalk(smallEcho, reverse, true)
	w.echo.companion = true
	w.refs = append(w.refs, w.echo)
	if unfrag && id.Fragmented() {
		ref := id.Unfragmented()
		if rw := t.findRef(ref, reverse); rw != nil {
			w.unfrag = rw
		} else {
			w.unfrag = t.newWalk(ref, reverse, true)
		}
		w.refs = append(w.refs, w.unfrag)
	}
	return w
}

func (t *tracer) findRef(id ID, reverse bool) *walk {
	for _, w := range t.walks {
		if w.id == id && w.reverse == reverse && w.ref && !w.companion {
			return w
		}
	}
	return nil
}

func (t *tracer) newWalk(id ID, reverse, ref bool) *walk {
	w := &walk{id: id, reverse: reverse, ref: ref}
	t.walks = append(t.walks, w)
	return w
}

// nonce returns a fresh probe nonce.
func (t *tracer) nonce() (uint32, error) {
	for {
		if len(t.nonces) == 0 {
			var err error
			if t.nonces, err = NewNonces(256); err != nil {
				return 0, err
			}
		}
		n := t.nonces[0]
		t.nonces = t.nonces[1:]
		if t.freeNonce(n) {
			return n, nil
		}
	}
}

// freeNonce reports whether n is a valid nonce used by neither this trace nor the check
// before it, nor its low 16 bits as an IP ID (reverse echo copies carry them as theirs).
func (t *tracer) freeNonce(n uint32) bool {
	if !validNonce(n) || t.byNonce[n] != nil || t.walkOf[n] != nil || t.r.byNonce[n].p != nil || t.revNonce[uint16(n)] {
		return false
	}
	for _, p := range []uint8{0, ProtoUDP, ProtoESP, ProtoAH, ProtoICMP, ProtoTCP} {
		if t.byIPID[ipidKey{true, p, uint16(n)}] != nil || t.r.byIPID[ipidKey{true, p, uint16(n)}].p != nil {
			return false
		}
	}
	return true
}

// ipid returns a fresh IP ID for a forward copy (never 0, distinct within the tracer).
func (t *tracer) ipid(proto uint8) uint16 {
	for {
		t.nextID++
		if t.nextID != 0 && t.byIPID[ipidKey{false, proto, t.nextID}] == nil &&
			t.r.byIPID[ipidKey{false, proto, t.nextID}].p == nil && t.r.byIPID[ipidKey{false, 0, t.nextID}].p == nil {
			return t.nextID
		}
	}
}

// revIPID returns a fresh IP ID for a reverse copy: never 0, used by no other reverse
// packet of this tracer or of the check before it, nor the low 16 bits of a reverse walk's
// nonce. The caller holds t.mu and registers the copy in byIPID before asking again.
func (t *tracer) revIPID() uint16 {
	for {
		t.nextRevID++
		id := t.nextRevID
		if id == 0 || t.revNonce[id] {
			continue
		}
		free := true
		for _, p := range []uint8{0, ProtoUDP, ProtoESP, ProtoAH, ProtoICMP, ProtoTCP} {
			if t.byIPID[ipidKey{true, p, id}] != nil || t.r.byIPID[ipidKey{true, p, id}].p != nil {
				free = false
				break
			}
		}
		if free {
			return id
		}
	}
}

// sendOrder lists the walks of a direction in the order their copies of one TTL go out:
// traced probes first, references last. A router's ICMP rate limit (Linux: a burst of 6,
// then 1 per second toward one address) then starves a reference rather than a traced
// probe, and a reference's answer, sent later, shows the router still had the budget to
// answer the probe's copy had it arrived (see hopMap).
func (t *tracer) sendOrder(reverse bool) []*walk {
	var out, refs []*walk
	for _, w := range t.walks {
		switch {
		case w.reverse != reverse || w.companion: // companions go with their walk
		case w.ref:
			refs = append(refs, w)
		default:
			out = append(out, w)
		}
	}
	return append(out, refs...)
}

// run sends every walk and reads answers until the timeout.
func (t *tracer) run(ctx context.Context) error {
	r := t.r
	for _, o := range r.obs {
		o.Drain() // what the check read already is not ours
	}
	if t.nonces == nil {
		n, err := NewNonces(256)
		if err != nil {
			return err
		}
		t.nonces = n
		t.nextID = uint16(n[0] >> 16)
		t.nextRevID = uint16(n[1] >> 16)
	}
	if r.agent != nil {
		rep, err := r.agent.Report(ctx)
		if err != nil {
			return envErr("%w", err)
		}
		t.agentFrom, t.agentSeen = len(rep.Seen), len(rep.Seen)
		if err := t.announceFragmented(ctx); err != nil {
			return envErr("%w", err)
		}
	}
	start := time.Now()
	// Answers are awaited until timeout after the first send, and at least half of it
	// after the last (a long path at a low pace); never beyond three timeouts.
	deadline := start.Add(t.timeout)
	hard := start.Add(3 * t.timeout)
	if t.strict {
		hard = deadline
	}
	sctx, scancel := context.WithDeadline(ctx, hard)
	defer scancel()
	var wg sync.WaitGroup
	errc := make(chan error, 2)
	wg.Add(1)
	go func() { defer wg.Done(); errc <- t.sendForward(sctx) }()
	if r.agent != nil && r.agentIP.IsValid() && t.hasReverse() {
		wg.Add(1)
		// A send-reverse request cut off midway leaves the control session unusable for the
		// last report: requests are bounded instead (by size, see sendReverse, and by rctx),
		// and sctx only stops new ones.
		rctx, rcancel := context.WithDeadline(ctx, hard.Add(setupTimeout))
		defer rcancel()
		go func() { defer wg.Done(); errc <- t.sendReverse(sctx, rctx) }()
	}
	sendersDone := make(chan struct{})
	go func() { wg.Wait(); close(sendersDone) }()
	sending := true
	if t.progress != nil {
		t.progress("tracing")
	}
	tick := time.NewTicker(checkCollectInterval)
	defer tick.Stop()
	var lastPoll time.Time
	for {
		t.collectLocal()
		if r.agent != nil && time.Since(lastPoll) >= agentPollInterval {
			lastPoll = time.Now()
			if err := t.collectAgent(ctx); err != nil {
				scancel()
				wg.Wait()
				return envErr("%w", err)
			}
		}
		if sending {
			select {
			case <-sendersDone:
				sending = false
				if d := time.Now().Add(t.timeout / 2); d.After(deadline) {
					deadline = d
				}
			default:
			}
		}
		now := time.Now()
		if (!sending && (!now.Before(deadline) || t.settled() || t.quiet(now))) || !now.Before(hard) {
			break
		}
		if ctx.Err() != nil {
			scancel()
			wg.Wait()
			return fmt.Errorf("trace interrupted: %w", ctx.Err())
		}
		if t.progress != nil {
			t.progress("waiting")
		}
		select {
		case <-tick.C:
		case <-ctx.Done():
		}
	}
	scancel()
	wg.Wait()
	close(errc)
	for err := range errc {
		if err != nil && ctx.Err() == nil && sctx.Err() == nil {
			return err
		}
	}
	t.collectLocal()
	if r.agent != nil {
		fctx, cancel := context.WithTimeout(context.Background(), setupTimeout)
		defer cancel()
		if err := t.collectAgent(fctx); err != nil {
			return envErr("%w", err)
		}
	}
	return nil
}

func (t *tracer) hasReverse() bool {
	for _, w := range t.walks {
		if w.reverse {
			return true
		}
	}
	return false
}

// dir is the index of a direction in per-direction arrays.
func dir(reverse bool) int {
	if reverse {
		return 1
	}
	return 0
}

// limit returns the largest TTL still worth sending in a direction.
func (t *tracer) limit(reverse bool) int {
	t.mu.Lock()
	defer t.mu.Unlock()
	f := t.farEnd[dir(reverse)]
	if e := t.echoFar; !reverse && e > 0 && (f == 0 || e < f) {
		f = e
	}
	if f > 0 {
		return min(t.maxHops, f+traceFarEndMargin)
	}
	return t.maxHops
}

// sendForward sends the forward copies, TTL by TTL (every walk's TTL 1, then TTL 2, …).
func (t *tracer) sendForward(ctx context.Context) error {
	r := t.r
	r.sendMu.Lock()
	defer r.sendMu.Unlock()
	pk := &r.fwdPk
	fwd := t.sendOrder(false)
	for ttl := 1; ttl <= t.maxHops; ttl++ {
		if ttl > t.limit(false) {
			return nil
		}
		for _, w := range fwd {
			if ctx.Err() != nil {
				return nil
			}
			t.mu.Lock()
			c, err := t.buildForward(w, ttl, pk)
			var ec *ttlCopy
			if err == nil && w.echo != nil {
				ec, err = t.buildForward(w.echo, ttl, &t.echoPk)
			}
			t.mu.Unlock()
			if err != nil {
				return fmt.Errorf("trace %s: %w", w.id, err)
			}
			n := len(pk.Wire)
			if ec != nil {
				n += len(t.echoPk.Wire)
			}
			// The probe's copy and its echo leave back to back (one pacer reservation).
			if err := r.sender.pace(ctx, pk.Dst, n); err != nil {
				return nil // cancelled
			}
			t.mu.Lock()
			c.sent = time.Now() // before the first packet leaves: an answer can beat the write's return
			t.mu.Unlock()
			err = writeAll(r.sender, pk)
			if err == nil && ec != nil {
				t.mu.Lock()
				ec.sent = time.Now()
				t.mu.Unlock()
				err = writeAll(r.sender, &t.echoPk)
			}
			if err != nil {
				t.mu.Lock()
				c.sent = time.Time{}
				if ec != nil {
					ec.sent = time.Time{}
				}
				t.mu.Unlock()
				if ctx.Err() != nil {
					return nil
				}
				return fmt.Errorf("trace %s: %w", w.id, err)
			}
			t.mu.Lock()
			t.sent[0] += n
			t.mu.Unlock()
		}
	}
	return nil
}

// writeAll writes every packet of pk, unpaced (the caller paced them).
func writeAll(s *Sender, pk *Packets) error {
	for _, w := range pk.Wire {
		if err := s.writeTo(pk.Dst, w); err != nil {
			return err
		}
	}
	return nil
}

// buildForward builds the copy of w with ttl into pk and registers it. The caller holds t.mu.
func (t *tracer) buildForward(w *walk, ttl int, pk *Packets) (*ttlCopy, error) {
	r := t.r
	nonce := w.nonce
	if w.id == smallEcho || nonce == 0 {
		n, err := t.nonce()
		if err != nil {
			return nil, err
		}
		nonce = n
		if w.id != smallEcho {
			w.nonce = n
			t.walkOf[n] = w
		}
	}
	id, bp := r.buildParams(w.id, r.src, r.cfg.Target, nonce)
	bp.TTL = uint8(ttl)
	if ttl <= len(w.ipids) {
		bp.IPID = w.ipids[ttl-1]
	} else {
		bp.IPID = t.ipid(protoOf(id))
	}
	if err := Build(id, bp, pk); err != nil {
		return nil, err
	}
	c := &ttlCopy{w: w, ttl: ttl, ipid: pk.IPID, nonce: nonce}
	w.proto = pk.Proto
	if w.frags == nil {
		w.frags = append([]report.Fragment(nil), pk.Frags...)
	}
	w.copies = append(w.copies, c)
	t.byIPID[ipidKey{false, pk.Proto, pk.IPID}] = c
	if w.id == smallEcho {
		t.byNonce[nonce] = c
	}
	return c, nil
}

// announceFragmented reserves the IP IDs of every fragmented forward walk's copies and
// tells the agent before any copy leaves (see walk.ipids), maxAnnounce at a time. Like
// the check's announce, a request is bounded by RequestTimeout, not cut off by ctx: a
// request cut off midway would leave the control session unusable.
func (t *tracer) announceFragmented(ctx context.Context) error {
	var all []uint16
	t.mu.Lock()
	for _, w := range t.sendOrder(false) {
		if !w.id.Fragmented() || w.ipids != nil {
			continue
		}
		proto := protoOf(w.id)
		w.ipids = make([]uint16, t.maxHops)
		for i := range w.ipids {
			w.ipids[i] = t.ipid(proto)
		}
		all = append(all, w.ipids...)
	}
	t.mu.Unlock()
	for len(all) > 0 {
		n := min(len(all), maxAnnounce)
		actx, cancel := context.WithTimeout(context.WithoutCancel(ctx), RequestTimeout)
		err := t.r.agent.Announce(actx, all[:n]...)
		cancel()
		if err != nil {
			return fmt.Errorf("trace: the agent did not take the fragmented copies' IP IDs, so it would not keep their fragments: %w", err)
		}
		all = all[n:]
	}
	return nil
}

// protoOf is the IP protocol of a probe id.
func protoOf(id ID) uint8 {
	switch id.Unfragmented() {
	case IKE, NATT:
		return ProtoUDP
	case ESP:
		return ProtoESP
	case AH:
		return ProtoAH
	case ICMPLarge, PMTU, smallEcho:
		return ProtoICMP
	}
	return ProtoTCP
}

// sendReverse asks the agent for the reverse copies, reverseTraceChunk TTLs at a time.
// stop ends the sending (no new request); each request runs under ctx, never cut off by
// stop. A request holds at most as many packets as the agent sends in a quarter of the
// timeout at the run's pace, so the run outlives its deadline by that much at most.
func (t *tracer) sendReverse(stop, ctx context.Context) error {
	r := t.r
	rev := t.sendOrder(true)
	for lo := 1; lo <= t.maxHops; lo += reverseTraceChunk {
		hi := min(lo+reverseTraceChunk-1, t.maxHops, t.limit(true))
		if lo > hi {
			return nil
		}
		req, cs, err := t.reverseRequest(rev, lo, hi)
		if err != nil {
			return err
		}
		pace := r.cfg.Pace
		if pace == 0 {
			pace = DefaultRate
		}
		budget := max(8, int(float64(pace)*t.timeout.Seconds()/4)) // packets per request
		for len(req) > 0 {
			if stop.Err() != nil {
				return nil
			}
			if req, cs = t.beyondFarEnd(req, cs); len(req) == 0 {
				return nil
			}
			n, pkts := 0, 0
			// A companion echo stays in the request of its probe's copy (see hopMap).
			for n < min(len(req), MaxReverseProbes) && (n == 0 || pkts+cs[n].packets <= budget || cs[n].w.companion) {
				pkts += cs[n].packets
				n++
			}
			asked := r.clk.Now()
			res, err := r.agent.SendReverse(ctx, req[:n], r.cfg.Pace)
			if err != nil {
				if ctx.Err() != nil {
					return nil
				}
				return fmt.Errorf("trace: agent did not send the reverse copies: %w", err)
			}
			ignored := t.takeResults(req[:n], cs[:n], res)
			t.noteLeft(cs[:n], res, asked, r.agent.Clock())
			if ignored {
				return nil // the walks cannot be traced: no more copies
			}
			req, cs = req[n:], cs[n:]
		}
		t.collectLocal() // arrivals tell how far the next chunk needs to go
	}
	return nil
}

// takeResults records what the agent says it sent for the reverse copies cs (requested as
// req) and reports whether it ignored the IP IDs asked for (see tracer.ignoredIPID).
func (t *tracer) takeResults(req []ReverseProbe, cs []*ttlCopy, res []ReverseResult) (ignored bool) {
	t.mu.Lock()
	defer t.mu.Unlock()
	for i := range min(len(req), len(res)) {
		switch {
		case res[i].Error != "":
		case req[i].IPID != 0 && res[i].IPID != req[i].IPID:
			// The agent ignored the IP ID (an older agent: it reports none): the copy
			// carried its nonce's, like every other copy of its walk, so nothing that
			// comes back can name its TTL. It stays unsent and unmatched.
			delete(t.byIPID, ipidKey{true, cs[i].w.proto, cs[i].ipid})
			t.ignoredIPID = true
		default:
			// In the agent's clock, like the time-exceeded its capture reports.
			cs[i].sent = res[i].Sent
		}
	}
	return t.ignoredIPID
}

// noteLeft counts the packets of the reverse copies cs the agent was asked for, and records
// when those it sent left it, on our clock, as late as they can have left (as the check's
// reverse attempts, see reverseLeft): their deadlines for silence count from there.
func (t *tracer) noteLeft(cs []*ttlCopy, res []ReverseResult, asked time.Time, clock ClockEstimate) {
	t.mu.Lock()
	defer t.mu.Unlock()
	for i, c := range cs {
		t.sent[1] += c.packets
		if i < len(res) && !c.sent.IsZero() {
			c.left = t.r.reverseLeft(asked, res[i], clock)
		}
	}
}

// beyondFarEnd drops from the reverse copies still to ask for (req, cs, in TTL order) those
// past the far end's margin, once our capture saw a copy arrive (as the forward sender
// stops there, see limit): a chunk's request of a slow pace would otherwise send TTLs that
// can only arrive again. They stay unsent.
func (t *tracer) beyondFarEnd(req []ReverseProbe, cs []*ttlCopy) ([]ReverseProbe, []*ttlCopy) {
	t.collectLocal()
	lim := t.limit(true)
	for i, c := range cs {
		if c.ttl > lim {
			return req[:i], cs[:i]
		}
	}
	return req, cs
}

// reverseRequest builds the reverse copies of TTLs lo to hi of the walks rev (in send
// order, each walk's companion echo right behind it) and registers them. Every copy of a
// walk carries the walk's one nonce, so the same SPI, echo id and ports at every TTL, and
// its own IP ID; a companion echo takes a nonce per copy (its replies name the TTL).
func (t *tracer) reverseRequest(rev []*walk, lo, hi int) ([]ReverseProbe, []*ttlCopy, error) {
	r := t.r
	t.mu.Lock()
	defer t.mu.Unlock()
	var req []ReverseProbe
	var cs []*ttlCopy
	for ttl := lo; ttl <= hi; ttl++ {
		var order []*walk
		for _, w := range rev {
			order = append(order, w)
			if w.echo != nil {
				order = append(order, w.echo) // right behind it (the agent paces them)
			}
		}
		for _, w := range order {
			n := w.nonce
			if w.companion || n == 0 {
				var err error
				if n, err = t.nonce(); err != nil {
					return nil, nil, err
				}
				if !w.companion {
					w.nonce = n
					t.revNonce[uint16(n)] = true
				}
			}
			id, bp := r.buildParams(w.id, r.agentIP, r.peer, n)
			bp.TTL = uint8(ttl)
			if !w.companion {
				bp.IPID = t.revIPID()
			}
			if err := Build(id, bp, &r.revPk); err != nil {
				return nil, nil, fmt.Errorf("trace %s: %w", w.id, err)
			}
			w.proto = r.revPk.Proto
			if w.frags == nil {
				w.frags = append([]report.Fragment(nil), r.revPk.Frags...)
			}
			c := &ttlCopy{w: w, ttl: ttl, ipid: r.revPk.IPID, nonce: n, packets: len(r.revPk.Wire)}
			w.copies = append(w.copies, c)
			t.byIPID[ipidKey{true, r.revPk.Proto, r.revPk.IPID}] = c
			if t.byNonce[n] == nil {
				t.byNonce[n] = c
			}
			req = append(req, ReverseProbe{ID: id, Nonce: n, Size: bp.Size, FragSize: bp.FragSize, TTL: uint8(ttl), IPID: bp.IPID})
			cs = append(cs, c)
		}
	}
	return req, cs, nil
}

// collectLocal reads our capture: time-exceeded and other ICMP errors for forward copies,
// answers of the far end, and the agent's reverse copies arriving.
func (t *tracer) collectLocal() {
	for _, o := range t.r.obs {
		seen := o.Drain()
		t.mu.Lock()
		for i := range seen {
			t.local(&seen[i])
		}
		t.mu.Unlock()
	}
}

func (t *tracer) local(s *Seen) {
	r := t.r
	if s.Proto == ProtoICMP && s.Offset == 0 {
		if e, err := ParseICMPError(s); err == nil {
			if e.Quoted.Dst != r.cfg.Target {
				return
			}
			if c := t.byIPID[ipidKey{false, e.Quoted.Proto, e.Quoted.IPID}]; c != nil {
				t.icmp(c, e, s.At, r.cfg.Target)
			}
			return
		}
	}
	if s.Src == r.agentIP && r.agentIP.IsValid() {
		if c := t.byIPID[ipidKey{true, s.Proto, s.IPID}]; c != nil && c.w.proto == s.Proto {
			if s.Offset == 0 {
				m, ok := ClassifyHead(s.Proto, s.Head)
				if !ok || m.Kind != KindProbe || m.Nonce != c.nonce {
					return
				}
			}
			t.arrived(c, s.Offset)
			return
		}
	}
	if s.Src != r.cfg.Target || s.Offset != 0 {
		return
	}
	m, ok := ClassifyHead(s.Proto, s.Head)
	if !ok || m.Kind != KindReply {
		return
	}
	if c := t.byNonce[m.Nonce]; c != nil && !c.w.reverse {
		if !c.sent.IsZero() {
			t.pathSample(s.At.Sub(c.sent)) // an echo reply: the whole path, both ways
		}
		if t.echoFar == 0 || c.ttl < t.echoFar {
			t.echoFar = c.ttl
		}
		if t.echoTTL[0] == 0 {
			t.echoTTL[0] = s.TTL // the target's own answers arrive with this TTL
		}
		if r.agent == nil {
			t.arrived(c, -1)
		}
		return
	}
	w := t.walkOf[m.Nonce]
	switch {
	case w == nil:
	case s.Proto == ProtoTCP && m.TCPFlags&TCPRst != 0:
		// A reset in the target's name may come from a device on the path: judged in path.
		if w.rstTTL == 0 {
			w.rstTTL = s.TTL
		}
	case r.agent == nil:
		w.answered = true // with an agent, forward arrival is what the agent saw
	}
}

// icmp records an ICMP error quoting copy c; far is the far end's address.
func (t *tracer) icmp(c *ttlCopy, e ICMPError, at time.Time, far netip.Addr) {
	if e.Quoted.Offset != 0 {
		return // never sent by routers for non-first fragments; ignore if one does
	}
	rtt := max(at.Sub(c.sent), 0)
	switch {
	case e.TimeExceeded() && e.Code == wire.CodeTTLExceeded:
		if !c.teFrom.IsValid() {
			c.teFrom, c.teRTT = e.From, rtt
			if !c.sent.IsZero() {
				t.hopSample(rtt)
			}
		}
	case e.From == far && e.Unreachable() && !e.AdminProhibited():
		// The far end's own kernel: port or protocol unreachable means it got there whole.
		t.arrived(c, -1)
	case e.From == far && e.TimeExceeded() && e.Code == wire.CodeReassemblyTimeout:
		// Its reassembly timed out: the first fragment got there, not every other one.
		t.arrived(c, 0)
	default:
		if c.err == nil {
			ce := e
			c.err, c.errRTT = &ce, rtt
		}
	}
}

// arrived records copy c at the far end: offset is the fragment seen, -1 the whole datagram.
func (t *tracer) arrived(c *ttlCopy, offset int) {
	c.farEnd = true
	if c.seen == nil {
		c.seen = map[int]bool{}
	}
	if offset < 0 {
		for _, f := range c.w.frags {
			c.seen[f.Offset] = true
		}
	} else {
		c.seen[offset] = true
	}
	d := dir(c.w.reverse)
	if t.farEnd[d] == 0 || c.ttl < t.farEnd[d] {
		t.farEnd[d] = c.ttl
	}
}

// collectAgent reads the agent's capture: forward copies arriving, and the ICMP errors
// routers sent it for reverse copies.
func (t *tracer) collectAgent(ctx context.Context) error {
	asked := time.Now()
	rep, err := t.r.agent.Report(ctx)
	if err != nil {
		return err
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	t.pathSample(time.Since(asked)) // the report crossed the path both ways
	for i := t.agentSeen; i < len(rep.Seen); i++ {
	}
	t.agentSeen = max(t.agentSeen, len(rep.Seen))
	for i := t.agentFrom; i < len(rep.Seen); i++ {
		s := &rep.Seen[i]
		if s.Proto == ProtoICMP && s.Offset == 0 {
			if e, err := ParseICMPError(s); err == nil {
				if e.Quoted.Dst == t.r.peer {
					if c := t.byIPID[ipidKey{true, e.Quoted.Proto, e.Quoted.IPID}]; c != nil {
						t.icmp(c, e, s.At, t.r.peer)
					}
				}
				continue
			}
		}
		if s.Offset == 0 && s.Src == t.r.peer {
			// Answers to the agent's reverse probes: our echo replies (their TTL as they
			// arrive there) and resets in our name.
			if m, ok := ClassifyHead(s.Proto, s.Head); ok && m.Kind == KindReply {
				if c := t.byNonce[m.Nonce]; c != nil && c.w.reverse {
					switch {
					case c.w.id == smallEcho && s.Proto == ProtoICMP:
						if !c.sent.IsZero() {
							t.pathSample(s.At.Sub(c.sent)) // both on the agent's clock
						}
						if t.echoTTL[1] == 0 {
							t.echoTTL[1] = s.TTL
						}
					case s.Proto == ProtoTCP && m.TCPFlags&TCPRst != 0 && c.w.rstTTL == 0:
						c.w.rstTTL = s.TTL
					}
				}
				continue
			}
		}
		c := t.byIPID[ipidKey{false, s.Proto, s.IPID}]
		if c == nil || c.w.reverse || c.w.proto != s.Proto {
			continue
		}
		if s.Offset == 0 {
			m, ok := ClassifyHead(s.Proto, s.Head)
			if !ok || m.Kind != KindProbe || m.Nonce != c.nonce {
				continue
			}
		}
		t.arrived(c, s.Offset)
	}
	return nil
}

// settled reports whether waiting longer can change nothing: every copy sent has its answer
// (time-exceeded, an error, or arrival).
func (t *tracer) settled() bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	for _, w := range t.walks {
		if len(w.copies) == 0 {
			return false
		}
		for _, c := range w.copies {
			if !c.sent.IsZero() && !t.answered(w, c) {
				return false
			}
		}
	}
	return true
}

// complete reports whether every fragment of the copy arrived.
func (c *ttlCopy) complete() bool {
	for _, f := range c.w.frags {
		if !c.seen[f.Offset] {
			return false
		}
	}
	return len(c.w.frags) > 0
}

// complete reports whether some copy of the walk arrived whole (or the far end answered).
func (w *walk) complete() bool {
	if w.answered {
		return true
	}
	for _, c := range w.copies {
		if c.complete() {
			return true
		}
	}
	return false
}

// farEndTTL is the least TTL of w that arrived (0: none known).
func (w *walk) farEndTTL() int {
	for _, c := range w.copies {
		if c.farEnd {
			return c.ttl
		}
	}
	return 0
}

// hopMap returns, per TTL, the address w's companion echo was answered from there (or the
// far end, when it arrived there). Routers rate-limit their ICMP (Linux: a burst of 6 toward
// one address, then 1 per second), so a copy may go unanswered although it arrived; the
// companion leaves right behind the probe's copy (back to back forward; one pacing interval
// later from the agent), so when the companion was answered the router had the budget to
// answer the probe's copy too, had it arrived: its budget grows by no more than the gap
// between the two: forward, where they leave back to back, a thousandth of an answer; in
// reverse, where the agent paces them, up to maxReverseCompanionGap's worth (a quarter of an
// answer at Linux's 1 per second): at a router already rate-limiting toward the agent, a
// reverse bracket can then be one hop too narrow, with about that probability. Copies of other walks prove nothing of the kind and are not used.
func (t *tracer) hopMap(w *walk, far netip.Addr) map[int]netip.Addr {
	m := map[int]netip.Addr{}
	if w.echo == nil {
		return m
	}
	own := map[int]time.Time{}
	for _, c := range w.copies {
		own[c.ttl] = c.sent
	}
	gap := maxCompanionGap
	if w.reverse {
		gap = maxReverseCompanionGap
	}
	for _, c := range w.echo.copies {
		if s, ok := own[c.ttl]; !ok || s.IsZero() || c.sent.IsZero() || c.sent.Before(s) || c.sent.Sub(s) > gap {
			continue
		}
		switch {
		case c.teFrom.IsValid():
			m[c.ttl] = c.teFrom
		case c.farEnd:
			m[c.ttl] = far
		}
	}
	return m
}

// path builds the result of one direction of walk w (after run).
func (t *tracer) path(w *walk) *report.TracePath {
	t.mu.Lock()
	defer t.mu.Unlock()
	r := t.r
	from, far := r.src, r.cfg.Target
	if w.reverse {
		from, far = r.agentIP, r.peer
	}
	p := &report.TracePath{Hops: []report.TraceHop{}, Probes: t.sent[dir(w.reverse)]}
	var refNames []string
	for _, rw := range w.refs {
		name := string(rw.id)
		if rw.id == smallEcho {
			name = "small ICMP echo"
		}
		refNames = append(refNames, name)
	}
	p.Reference = strings.Join(refNames, ", ")
	if w.reverse && t.ignoredIPID {
		p.Unconfirmed = true
		p.Detail = fmt.Sprintf("Not traced: the agent did not put the IP IDs asked for on the reverse copies of the %s probe (an agent older than this ipsecpath ignores them), so every TTL's copy carried the same IP ID and no time-exceeded or arrival could be tied to its TTL. Run the same ipsecpath release on the agent.", w.id)
		return p
	}
	farTTL := w.farEndTTL()
	last := 0
	var lastAddr netip.Addr
	var refused *ttlCopy
	for _, c := range w.copies {
		if c.sent.IsZero() {
			continue
		}
		h := report.TraceHop{TTL: c.ttl}
		switch {
		case c.teFrom.IsValid():
			h.Addr, h.Reached, h.RTTms = c.teFrom.String(), true, ms(c.teRTT)
			if c.ttl > last {
				last, lastAddr = c.ttl, c.teFrom
			}
		case c.farEnd:
			h.Addr, h.Reached, h.FarEnd = far.String(), true, true
		}
		if c.err != nil {
			if h.Addr == "" {
				h.Addr, h.RTTms = c.err.From.String(), ms(c.errRTT)
			}
			h.ICMP = c.err.String()
			if refused == nil {
				refused = c
			}
		}
		p.Hops = append(p.Hops, h)
		if farTTL > 0 && c.ttl >= farTTL {
			break // one far-end row; the TTLs above it only arrive there again
		}
	}
	var reset string // a reset in the target's name that the target did not send
	if w.rstTTL != 0 {
		switch {
		case w.reverse && farTTL == 0:
			reset = fmt.Sprintf("a TCP reset came back to the agent in %s's name although our capture saw none of the SYNs arrive: a device on the path answers for us", far)
		case w.reverse:
		case r.agent != nil && farTTL == 0:
			reset = fmt.Sprintf("a TCP reset came back in %s's name although the agent saw none of the SYNs arrive: a device on the path answers for it", far)
		case r.agent == nil && t.echoTTL[0] != 0 && w.rstTTL != t.echoTTL[0]:
			reset = fmt.Sprintf("a TCP reset came back in %s's name with TTL %d where %s's own echo replies arrive with TTL %d: another device sent it", far, w.rstTTL, far, t.echoTTL[0])
		case r.agent == nil:
			w.answered = true // the target's own reset: it got there
		}
	}
	p.FarEnd = farTTL > 0 || w.answered
	p.FarEndTTL = farTTL
	hops := t.hopMap(w, far)
	name := probeName(w.id)
	if w.reverse {
		name = "the reverse " + string(w.id) + " probe"
	}
	frag := len(w.frags) > 1
	if frag {
		p.Fragments = t.fragmentFates(w)
	}
	switch {
	case p.FarEnd && w.complete():
		p.LastReached = &report.HopRef{TTL: farTTL, Addr: far.String()}
		at := ""
		if farTTL > 0 {
			at = fmt.Sprintf(" (hop %d)", farTTL)
		}
		p.Detail = fmt.Sprintf("%s reaches %s%s%s.", capital(name), far, at, t.arrivalWitness(w))
		return p
	case frag && p.FarEnd:
		// The first fragment arrived, not all the others: only the far end saw which, and
		// routers do not answer for non-first fragments, so the bracket is the whole path.
		p.LastReached = &report.HopRef{TTL: 0, Addr: from.String()}
		p.FirstMissed = &report.HopRef{TTL: farTTL, Addr: far.String()}
		firstAt := ""
		if last > 0 {
			firstAt = fmt.Sprintf(", and %s answered time-exceeded for it", (&report.HopRef{TTL: last, Addr: lastAddr.String()}).String())
		}
		p.Detail = fmt.Sprintf("%s: the first fragment reaches %s (hop %d)%s, but %s: a device %s drops non-first fragments only. Routers send no time-exceeded for non-first fragments (RFC 1812 4.3.2.7), so TTLs cannot narrow it further; capture on the routers in between.",
			capital(name), far, farTTL, firstAt, t.missingFrags(w), p.Between())
		return p
	}
	lastRef := &report.HopRef{TTL: last, Addr: lastAddr.String()}
	if last == 0 {
		lastRef.Addr = from.String()
	}
	p.LastReached = lastRef
	if reset != "" && refused == nil {
		p.Refused = reset
		p.RefusedBy = &report.HopRef{}
		if e := t.echoTTL[dir(w.reverse)]; e != 0 && w.rstTTL > e && farTTL == 0 {
			// Estimated: the far end's hop count (from the echo) minus the TTL difference.
			if f := t.farEnd[dir(w.reverse)]; f > int(w.rstTTL-e) {
				p.RefusedBy.TTL = f - int(w.rstTTL-e)
				if a, ok := t.hopMap(w, far)[p.RefusedBy.TTL]; ok {
					p.RefusedBy.Addr = a.String()
				}
			}
		}
	}
	if refused != nil {
		p.Refused = refused.err.String()
		p.RefusedBy = &report.HopRef{Addr: refused.err.From.String()}
		for ttl, a := range hops {
			if a == refused.err.From && (p.RefusedBy.TTL == 0 || ttl < p.RefusedBy.TTL) {
				p.RefusedBy.TTL = ttl
			}
		}
	}
	for ttl := last + 1; ttl <= t.maxHops; ttl++ {
		if a, ok := hops[ttl]; ok {
			p.FirstMissed = &report.HopRef{TTL: ttl, Addr: a.String()}
			break
		}
	}
	var b strings.Builder
	what := capital(name)
	if frag {
		what = capital(name) + "'s first fragment"
	}
	switch {
	case refused != nil:
		fmt.Fprintf(&b, "%s is refused: %s; it dies %s.", capital(name), refused.err, p.Between())
	case reset != "":
		fmt.Fprintf(&b, "%s is refused: %s; it dies %s.", capital(name), reset, p.Between())
		if p.RefusedBy.TTL > 0 {
			fmt.Fprintf(&b, " By the reset's TTL it comes from %s (estimated).", p.RefusedBy)
		}
	case !w.reverse && r.agent == nil && silentByNature(w.id) && p.FirstMissed != nil && p.FirstMissed.Addr == far.String():
		fmt.Fprintf(&b, "%s reaches %s, the last hop before %s; %s gets no answer from a host, so whether %s received it is not known without the agent (--agent).",
			capital(name), p.LastReached, far, w.id.Unfragmented(), far)
		p.Detail = b.String()
		p.Unconfirmed = true
		return p
	case p.FirstMissed == nil:
		fmt.Fprintf(&b, "%s dies %s: no hop beyond it answered the echo sent right behind it, so it is not narrowed further.", what, p.Between())
	default:
		fmt.Fprintf(&b, "%s dies %s: %s drops it on its way out, or %s on its way in (%s answered the echo sent right behind it, not it).",
			what, p.Between(), hopName(p.LastReached, last == 0), hopName(p.FirstMissed, false), p.FirstMissed.Addr)
		if p.FirstMissed.TTL > last+1 {
			fmt.Fprintf(&b, " %s no time-exceeded for the echo sent right behind it either (silent, or rate-limiting its ICMP): the device may also be there.", silentHops(last+1, p.FirstMissed.TTL-1))
		}
	}
	if u := w.unfrag; u != nil && (u.farEndTTL() > 0 || u.answered) {
		fmt.Fprintf(&b, " Its unfragmented form (%s) reaches %s", u.id, far)
		if f := u.farEndTTL(); f > 0 {
			fmt.Fprintf(&b, " (hop %d)", f)
		}
		b.WriteString(".")
	}
	if frag {
		if !w.reverse && t.r.agent == nil {
			fmt.Fprintf(&b, " %s.", capital(t.missingFrags(w)))
		} else {
			fmt.Fprintf(&b, " Of the other fragments, %s; routers send no time-exceeded for non-first fragments, so TTLs cannot say where those die.", t.missingFrags(w))
		}
	}
	p.Detail = b.String()
	return p
}

// silentByNature reports the probes a host does not answer by itself when something listens
// (an IPsec stack takes ESP and AH without a word).
func silentByNature(id ID) bool {
	switch id.Unfragmented() {
	case ESP, AH:
		return true
	}
	return false
}

// arrivalWitness says how arrival at the far end is known.
func (t *tracer) arrivalWitness(w *walk) string {
	switch {
	case w.reverse:
		return ": our capture saw it arrive"
	case t.r.agent != nil:
		return ": the agent saw it arrive"
	}
	return ": it answered"
}

// missingFrags says what is known of the non-first fragments of a walk that did not
// arrive whole.
func (t *tracer) missingFrags(w *walk) string {
	seen := map[int]bool{}
	for _, c := range w.copies {
		for off := range c.seen {
			seen[off] = true
		}
	}
	missing := 0
	for _, f := range w.frags {
		if f.Offset > 0 && !seen[f.Offset] {
			missing++
		}
	}
	n := len(w.frags) - 1
	if !w.reverse && t.r.agent == nil {
		return fmt.Sprintf("where its other %d fragments die is not known: routers send no time-exceeded for non-first fragments (RFC 1812 4.3.2.7) and no agent watches the far end", n)
	}
	witness := "the agent"
	if w.reverse {
		witness = "our capture"
	}
	if missing == 0 {
		return "every non-first fragment arrived"
	}
	what := fmt.Sprintf("%d of its %d non-first fragments", missing, n)
	if missing == n {
		what = fmt.Sprintf("none of its %d non-first fragments", n)
		return fmt.Sprintf("%s saw %s arrive from any TTL's copy", witness, what)
	}
	return fmt.Sprintf("%s never arrived from any TTL's copy (%s watched)", what, witness)
}

// fragmentFates is how far each fragment of w is known to have got.
func (t *tracer) fragmentFates(w *walk) []report.FragmentFate {
	observed := w.reverse || t.r.agent != nil
	var out []report.FragmentFate
	for _, f := range w.frags {
		ff := report.FragmentFate{Offset: f.Offset, Length: f.Length}
		best := 0
		var addr netip.Addr
		arrived := false
		for _, c := range w.copies {
			if f.Offset == 0 && c.teFrom.IsValid() && c.ttl > best {
				best, addr = c.ttl, c.teFrom
			}
			arrived = arrived || c.seen[f.Offset]
		}
		if best > 0 {
			ff.LastReached = &report.HopRef{TTL: best, Addr: addr.String()}
		}
		if observed || w.answered {
			a := arrived || w.answered
			ff.FarEnd = &a
		}
		out = append(out, ff)
	}
	return out
}

func hopName(h *report.HopRef, self bool) string {
	if self {
		return "the sender itself (" + h.Addr + ")"
	}
	if h.Addr == "" {
		return fmt.Sprintf("hop %d", h.TTL)
	}
	return h.Addr
}

// silentHops names the hops a to b that answered nothing: "Hop 1 sent", "Hops 2–4 sent".
func silentHops(a, b int) string {
	if a == b {
		return fmt.Sprintf("Hop %d sent", a)
	}
	return fmt.Sprintf("Hops %d–%d sent", a, b)
}

func capital(s string) string {
	if s == "" {
		return s
	}
	return strings.ToUpper(s[:1]) + s[1:]
}

// probeName names a probe in a sentence: "the esp-frag probe".
func probeName(id ID) string { return "the " + string(id) + " probe" }

// TraceFailures traces, after a check's main run, the probes of the failing results (both
// directions) and fills each result's hop bracket and detail. One trace run for all of
// them: the extra time is about one timeout.
func (r *checkRun) traceFailures(ctx context.Context, results []report.Result) {
	t := r.tracer(DefaultTraceMaxHops, r.timeout)
	t.strict = true
	r.mu.Lock()
	t.rtt.path = r.rtt // the run's round trips: a copy is silent W after it left (trace_wait.go)
	r.mu.Unlock()
	type target struct {
		i int
		w *walk
	}
	var ts []target
	for i, res := range results {
		switch res.Verdict {
		case report.Dropped, report.Blocked, report.FragDropped, report.Partial:
		default:
			continue
		}
		id := ID(res.Probe)
		if id == PMTU || !id.Valid() {
			continue
		}
		rev := res.Direction == report.Reverse
		if rev && (r.agent == nil || !r.agentIP.IsValid()) {
			continue
		}
		// The run already compared -frag probes with their unfragmented form: the echo
		// alone maps the hops, and every router is asked for one time-exceeded less per TTL.
		ts = append(ts, target{i, t.add(id, rev, false)})
	}
	if len(ts) == 0 {
		return
	}
	if err := t.run(ctx); err != nil {
		for _, x := range ts {
			res := &results[x.i]
			res.Evidence.Extra = strings.TrimSpace(res.Evidence.Extra + " Not localised: the trace failed: " + err.Error())
		}
		return
	}
	for _, x := range ts {
		res := &results[x.i]
		p := t.path(x.w)
		if p.LastReached == nil {
			if p.Unconfirmed {
				res.Evidence.Extra = strings.TrimSpace(res.Evidence.Extra + " " + p.Detail)
			}
			continue
		}
		if p.FarEnd && x.w.complete() {
			// It passed when traced: no bracket to give, and the difference is a finding.
			why := "loss that has stopped, or a device that lets it through now"
			if x.w.reverse && (x.w.id.Unfragmented() == IKE || x.w.id.Unfragmented() == NATT) {
				why = "a stateful firewall that let it through once our own UDP 500/4500 of this run had opened the flow (as it would for a rekey soon after traffic), or loss that has stopped"
			}
			res.Evidence.Extra = strings.TrimSpace(res.Evidence.Extra + " Traced after the run, it reached " + p.LastReached.Addr + ": " + why + "; not localised.")
			continue
		}
		if res.Hop == nil {
			res.Hop = p.Hop()
		} else {
			res.Hop.Bracket = &p.Bracket
		}
		res.Detail = strings.TrimSpace(res.Detail + " Trace: " + p.Detail)
	}
}
