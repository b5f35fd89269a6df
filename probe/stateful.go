package probe

// Stateful: how long a stateful device on the path (a firewall, a NAT) keeps an idle IPsec
// flow, per protocol, measured from the side that matters: the far side sending after a
// silence, as a rekey, a delete or DPD started by the responder does.
//
// A test is one flow: we send a packet of the protocol toward the target (the opener; the
// agent must see it), the agent answers at once from the far side (the handshake; it must
// reach us: the flow now looks like a real IKE/IPsec flow, seen both ways), then the flow
// stays silent for the test's idle time and the agent sends again (statefulTestPackets
// packets). If they arrive within statefulArrivalWait the flow survived that idle time,
// else it died. Idle time is counted from the flow's last packet we saw: for a survival, to
// the moment we asked the agent (the device saw the last packet before us and the test
// after that moment, so the survived time is a lower bound); for a death, to the moment the
// agent said it had sent (the test passed the device before that answer reached us, over
// the same path), so the died time is an upper bound but for the delay from the device to us.
//
// UDP 500 and UDP 4500: every flow has its own source port (a five-tuple of its own, which
// every stateful device keys UDP by), so many flows run at once, each tested after a
// different idle time, and the sweep costs the longest idle tested, not the sum. Round 1
// spreads statefulRound1Flows idle times geometrically up to MaxIdle and stops at the
// first death above every survival; later rounds (statefulRound2Flows flows) refine the
// bracket until it is narrower than statefulResolution, at most statefulMaxRounds rounds.
//
// ESP and AH carry no ports, and the two directions of an SA use different SPIs, so a
// device can tie the far side's packets to ours only by the address pair (Linux conntrack
// tracks them with its generic protocol handler, by addresses and protocol): every ESP
// packet between the two hosts refreshes the one state all our "flows" share. A reverse
// test that arrives would reset the idle time of every later test. So ESP and AH run on one
// timeline, one test after the other: MaxIdle first (no timer: done in MaxIdle), else a
// ladder of doubling idle times chained on the same state (a survival refreshed it; a death
// forces a new opener), then statefulChainSteps bisections. Assumed: no other ESP (AH)
// traffic flows between the two addresses during the sweep; a live tunnel between them
// would keep the state fresh and hide the timer.

import (
	"context"
	"errors"
	"fmt"
	"math"
	"net/netip"
	"sort"
	"strings"
	"time"

	"github.com/ipsecpath/ipsecpath/report"
)

// StatefulProto is a protocol whose idle timer `stateful` measures.
type StatefulProto string

const (
	StatefulUDP500  StatefulProto = "udp500"  // IKE: UDP 500 → 500 (our side: one source port per flow)
	StatefulUDP4500 StatefulProto = "udp4500" // NAT-T: UDP 4500 → 4500
	StatefulESP     StatefulProto = "esp"     // IP protocol 50
	StatefulAH      StatefulProto = "ah"      // IP protocol 51
)

// StatefulProtos lists every protocol, in the order results are shown.
var StatefulProtos = []StatefulProto{StatefulUDP500, StatefulUDP4500, StatefulESP, StatefulAH}

// Stateful sweep defaults, bounds and timing.
const (
	// DefaultMaxIdle is the longest idle time tested by default: above common UDP timers
	// (30-180 s) and at Linux's generic (ESP/AH) conntrack timeout.
	DefaultMaxIdle = 10 * time.Minute
	// MinMaxIdle and MaxMaxIdle bound --max-idle.
	MinMaxIdle = 2 * time.Second
	MaxMaxIdle = 2 * time.Hour
	// statefulRound1Flows is how many UDP flows (idle times) the first round opens at once.
	statefulRound1Flows = 12
	// statefulRound2Flows is how many flows each refining round opens.
	statefulRound2Flows = 8
	// statefulMaxRounds bounds the UDP rounds.
	statefulMaxRounds = 3
	// statefulChainSteps is how many bisections ESP/AH make after the ladder.
	statefulChainSteps = 2
	// statefulMinIdle is the shortest idle time tested.
	statefulMinIdle = 500 * time.Millisecond
	// statefulOpenWait is how long the agent has to report a flow's opener.
	statefulOpenWait = 2 * time.Second
	// statefulArrivalWait is how long a reverse packet has to reach us: silence this long
	// after the agent was asked is a death.
	statefulArrivalWait = time.Second
	// statefulTestPackets is how many reverse packets one test (and one handshake) sends:
	// a death needs all of them lost, so one lost packet is not taken for a timer.
	statefulTestPackets = 2
	// statefulPoll is how often the sweep looks for arrivals while it waits.
	statefulPoll = 50 * time.Millisecond
	// statefulMaxFlowFailures ends an ESP/AH timeline after this many flows that could not be opened.
	statefulMaxFlowFailures = 3
)

// statefulResolution is how narrow a bracket ending at died must be to stop refining.
func statefulResolution(died time.Duration) time.Duration { return max(time.Second, died/10) }

// ParseStatefulProtos parses a comma-separated list of protocols ("all" for every one).
func ParseStatefulProtos(list string) ([]StatefulProto, error) {
	var out []StatefulProto
	seen := map[StatefulProto]bool{}
	for _, f := range strings.Split(list, ",") {
		f = strings.TrimSpace(strings.ToLower(f))
		if f == "all" {
			for _, p := range StatefulProtos {
				if !seen[p] {
					seen[p] = true
					out = append(out, p)
				}
			}
			continue
		}
		p := StatefulProto(f)
		if p.probeID() == "" {
			return nil, fmt.Errorf("unknown protocol %q (valid: udp500, udp4500, esp, ah, all)", f)
		}
		if !seen[p] {
			seen[p] = true
			out = append(out, p)
		}
	}
	if len(out) == 0 {
		return nil, errors.New("no protocol given")
	}
	return out, nil
}

// probeID is the probe class whose packets the protocol's flows carry.
func (p StatefulProto) probeID() ID {
	switch p {
	case StatefulUDP500:
		return IKE
	case StatefulUDP4500:
		return NATT
	case StatefulESP:
		return ESP
	case StatefulAH:
		return AH
	}
	return ""
}

// udp reports whether p has ports: its flows are apart and run at once.
func (p StatefulProto) udp() bool { return p == StatefulUDP500 || p == StatefulUDP4500 }

// Name is the protocol as engineers say it: "UDP 500".
func (p StatefulProto) Name() string {
	switch p {
	case StatefulUDP500:
		return "UDP 500"
	case StatefulUDP4500:
		return "UDP 4500"
	case StatefulESP:
		return "ESP"
	case StatefulAH:
		return "AH"
	}
	return string(p)
}

// StatefulEstimate says how long a sweep takes: typical when no timer is found (the longest
// idle tested plus set-up), and the extra time a timer found on ESP or AH can add (their
// tests run one after another).
func StatefulEstimate(maxIdle time.Duration, protos []StatefulProto) (typical, espExtra time.Duration) {
	typical = maxIdle + statefulOpenWait + 2*statefulArrivalWait
	for _, p := range protos {
		if !p.udp() {
			espExtra = 6 * maxIdle
		}
	}
	return typical, espExtra
}

// StatefulConfig says what to measure.
type StatefulConfig struct {
	// Target is the far end, where the agent runs.
	Target netip.Addr
	// Agent is the agent's HOST:PORT; Key its pre-shared key.
	Agent string
	Key   []byte
	// Protocols to measure (nil: all of StatefulProtos).
	Protocols []StatefulProto
	// MaxIdle is the longest idle time tested (0: DefaultMaxIdle).
	MaxIdle time.Duration
	// Progress, when set, gets a status line about once per poll while the sweep runs.
	Progress func(StatefulProgress)

	// net and clock replace the raw sockets, the agent and time (tests).
	net   statefulNet
	clock statefulClock
}

// StatefulProgress is the state of a running sweep.
type StatefulProgress struct {
	Elapsed time.Duration
	Status  string // one line, per protocol: what is known and what comes next
}

// statefulNet is the sweep's view of the wire: our raw sender and capture, and the agent.
type statefulNet interface {
	// Nonce returns a fresh probe nonce.
	Nonce() (uint32, error)
	// Open sends the opener of flow f (protocol p, nonce): toward the target, UDP from f's
	// own source port, which Open chooses (and holds) on the flow's first call.
	Open(ctx context.Context, p StatefulProto, f *sflow, nonce uint32) error
	// Reverse asks the agent to send these packets toward us, in one go.
	Reverse(ctx context.Context, rs []statefulReverse) error
	// Poll returns the openers the agent saw since the last call (withAgent: ask it) and the
	// reverse packets that reached us.
	Poll(ctx context.Context, withAgent bool) (fwd, rev []statefulSeen, err error)
}

// statefulReverse is one reverse packet to send.
type statefulReverse struct {
	Proto StatefulProto
	Nonce uint32
	Port  uint16 // UDP: the port of ours the agent saw the flow come from
}

// statefulSeen is an opener the agent saw, or a reverse packet we saw.
type statefulSeen struct {
	Nonce uint32
	Port  uint16 // opener (UDP): its source port as the agent saw it
	At    time.Time
}

// statefulClock is the sweep's time.
type statefulClock interface {
	Now() time.Time
	// Sleep waits d or until ctx ends (then it returns ctx's error).
	Sleep(ctx context.Context, d time.Duration) error
}

type realClock struct{}

func (realClock) Now() time.Time { return time.Now() }
func (realClock) Sleep(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

type flowState uint8

const (
	flowOpening     flowState = iota // opener sent, the agent has not reported it yet
	flowHandshake                    // the agent saw the opener: handshake to send
	flowHandshaking                  // handshake asked for, not arrived yet
	flowReady                        // seen both ways: idle from last
	flowFailed                       // could not be opened (failure says how)
)

// sflow is one flow of a sweep.
type sflow struct {
	port     uint16 // UDP: our source port (Open sets it)
	seenPort uint16 // UDP: the source port the agent saw (differs behind a NAT)
	state    flowState
	openAt   time.Time
	askedAt  time.Time // handshake asked for
	last     time.Time // the flow's last packet: when its idle time started
	failure  string    // "forward" or "reverse"
}

type testState uint8

const (
	testPlanned testState = iota
	testSent
	testSurvived
	testDied
	testVoid // not run (its flow failed, or the bracket was found without it)
)

// idleTest is one reverse test of a flow after an idle time.
type idleTest struct {
	f        *sflow
	idle     time.Duration // planned
	measured time.Duration // from the flow's last packet to when we asked the agent: at most the device's idle time
	upper    time.Duration // from the flow's last packet to when the agent said it had sent: at least the device's idle time (but for the device→us delay)
	sentAt   time.Time
	state    testState
	round    int
}

// nonceRef says what a nonce belongs to.
type nonceRef struct {
	sw   *protoSweep
	f    *sflow
	t    *idleTest // nil: the opener or the handshake
	open bool
}

// protoSweep is the sweep of one protocol.
type protoSweep struct {
	proto   StatefulProto
	maxIdle time.Duration
	flows   []*sflow
	tests   []*idleTest
	round   int
	done    bool
	err     string // could not be measured: why
	// ESP/AH timeline
	cur      *sflow // the flow the next test runs on
	steps    int    // bisections made
	failures int    // flows that could not be opened
}

// statefulRun is one sweep of every protocol.
type statefulRun struct {
	cfg    StatefulConfig
	net    statefulNet
	clock  statefulClock
	sweeps []*protoSweep
	refs   map[uint32]nonceRef
	start  time.Time
}

// Stateful measures, per protocol, the idle time after which a packet from the far side
// no longer reaches us (see the comment at the top of this file). It returns the report,
// also when ctx is cancelled midway (then Interrupted is set and each protocol holds what
// was known). An error with no report means the sweep could not start (a *CheckError: bad
// target, no raw socket, agent unreachable or refusing the key); an error with a report,
// that the agent failed midway: the report, marked interrupted, holds what was known.
func Stateful(ctx context.Context, cfg StatefulConfig) (*report.Report, error) {
	if err := CheckTarget(cfg.Target); err != nil {
		return nil, &CheckError{Err: err}
	}
	cfg.Target = cfg.Target.Unmap()
	if cfg.Protocols == nil {
		cfg.Protocols = StatefulProtos
	}
	if cfg.MaxIdle == 0 {
		cfg.MaxIdle = DefaultMaxIdle
	}
	if cfg.MaxIdle < MinMaxIdle || cfg.MaxIdle > MaxMaxIdle {
		return nil, envErr("max idle %s: want %s–%s", cfg.MaxIdle, MinMaxIdle, MaxMaxIdle)
	}
	for _, p := range cfg.Protocols {
		if p.probeID() == "" {
			return nil, envErr("unknown protocol %q", p)
		}
	}
	clock := cfg.clock
	if clock == nil {
		clock = realClock{}
	}
	started := clock.Now()
	n := cfg.net
	if n == nil {
		w, err := openStatefulWire(ctx, cfg)
		if err != nil {
			return nil, err
		}
		defer w.close()
		n = w
	}
	r := &statefulRun{cfg: cfg, net: n, clock: clock, refs: map[uint32]nonceRef{}, start: started}
	interrupted, runErr := r.run(ctx)
	if runErr != nil {
		interrupted = true
		runErr = envErr("agent %s failed midway: %w", cfg.Agent, runErr)
	}
	rep := report.New(cfg.Target.String(), cfg.Agent, started)
	rep.Stateful = map[string]*report.StatefulTimer{}
	rep.Interrupted = interrupted
	for _, sw := range r.sweeps {
		rep.Stateful[string(sw.proto)] = sw.result(interrupted)
	}
	rep.Advice = statefulAdvice(r.sweeps)
	statefulNAT(rep, r.net)
	rep.Finish(clock.Now())
	return rep, runErr
}

// run drives every protocol's sweep on one event loop until all are done or ctx ends
// (interrupted). An error is the agent failing (the control session broke).
func (r *statefulRun) run(ctx context.Context) (interrupted bool, err error) {
	for _, p := range r.cfg.Protocols {
		sw := &protoSweep{proto: p, maxIdle: r.cfg.MaxIdle}
		r.sweeps = append(r.sweeps, sw)
		sw.plan(r.start)
	}
	// A bound no sweep reaches by design (StatefulEstimate's worst case and a minute): should
	// a sweep ever stall, the run ends with what is known rather than never.
	typical, extra := StatefulEstimate(r.cfg.MaxIdle, r.cfg.Protocols)
	limit := r.start.Add(typical + extra + time.Minute)
	for {
		now := r.clock.Now()
		if now.After(limit) {
			return true, nil
		}
		err := r.sendOpeners(ctx, now)
		if err == nil {
			err = r.sendReverse(ctx, now)
		}
		if err != nil {
			if ctx.Err() != nil {
				return true, nil
			}
			return false, err
		}
		fwd, rev, err := r.net.Poll(ctx, r.awaitingAgent())
		if err != nil {
			if ctx.Err() != nil {
				return true, nil
			}
			return false, err
		}
		r.dispatch(fwd, rev)
		now = r.clock.Now()
		all := true
		for _, sw := range r.sweeps {
			sw.update(now)
			all = all && sw.done
		}
		r.progress(now)
		if all {
			return false, nil
		}
		wake := now.Add(statefulPoll)
		for _, sw := range r.sweeps {
			if w, ok := sw.nextDue(); ok && w.Before(wake) {
				wake = w
			}
		}
		if err := r.clock.Sleep(ctx, max(wake.Sub(now), 0)); err != nil {
			return true, nil
		}
	}
}

// sendOpeners sends the opener of every flow that needs one.
func (r *statefulRun) sendOpeners(ctx context.Context, now time.Time) error {
	for _, sw := range r.sweeps {
		for _, f := range sw.flows {
			if f.state != flowOpening || !f.openAt.IsZero() {
				continue
			}
			nonce, err := r.net.Nonce()
			if err != nil {
				return err
			}
			if err := r.net.Open(ctx, sw.proto, f, nonce); err != nil {
				if ctx.Err() != nil {
					return err
				}
				return fmt.Errorf("%s: open a flow: %w", sw.proto.Name(), err)
			}
			f.openAt = r.clock.Now()
			f.last = f.openAt
			r.refs[nonce] = nonceRef{sw: sw, f: f, open: true}
		}
	}
	return nil
}

// sendReverse asks the agent, in one request per MaxReverseProbes, for every handshake
// and every test that is due.
func (r *statefulRun) sendReverse(ctx context.Context, now time.Time) error {
	var rs []statefulReverse
	var asked, waits []func(time.Time)
	add := func(sw *protoSweep, f *sflow, t *idleTest) error {
		for range statefulTestPackets {
			nonce, err := r.net.Nonce()
			if err != nil {
				return err
			}
			r.refs[nonce] = nonceRef{sw: sw, f: f, t: t}
			rs = append(rs, statefulReverse{Proto: sw.proto, Nonce: nonce, Port: f.seenPort})
		}
		return nil
	}
	for _, sw := range r.sweeps {
		for _, f := range sw.flows {
			if f.state == flowHandshake {
				if err := add(sw, f, nil); err != nil {
					return err
				}
				asked = append(asked, func(time.Time) { f.state = flowHandshaking })
				waits = append(waits, func(at time.Time) { f.askedAt = at })
			}
		}
		for _, t := range sw.tests {
			if t.state == testPlanned && t.f.state == flowReady && !now.Before(t.f.last.Add(t.idle)) {
				if err := add(sw, t.f, t); err != nil {
					return err
				}
				asked = append(asked, func(at time.Time) { t.state, t.measured = testSent, at.Sub(t.f.last) })
				waits = append(waits, func(at time.Time) { t.sentAt, t.upper = at, at.Sub(t.f.last) })
			}
		}
	}
	if len(rs) == 0 {
		return nil
	}
	at := r.clock.Now()
	for _, fn := range asked {
		fn(at)
	}
	for len(rs) > 0 {
		n := min(len(rs), MaxReverseProbes)
		if err := r.net.Reverse(ctx, rs[:n]); err != nil {
			return fmt.Errorf("agent: send reverse packets: %w", err)
		}
		rs = rs[n:]
	}
	// The arrival window starts when the agent has sent (a busy agent or a slow control
	// channel must not turn into deaths); the idle time still counts to the request.
	sent := r.clock.Now()
	for _, fn := range waits {
		fn(sent)
	}
	return nil
}

// awaitingAgent reports whether some opener still waits for the agent's report.
func (r *statefulRun) awaitingAgent() bool {
	for _, sw := range r.sweeps {
		for _, f := range sw.flows {
			if f.state == flowOpening && !f.openAt.IsZero() {
				return true
			}
		}
	}
	return false
}

// dispatch applies what the agent and our capture saw.
func (r *statefulRun) dispatch(fwd, rev []statefulSeen) {
	for _, s := range fwd {
		ref, ok := r.refs[s.Nonce]
		if !ok || !ref.open || ref.f.state != flowOpening {
			continue
		}
		ref.f.seenPort = s.Port
		ref.f.state = flowHandshake
	}
	for _, s := range rev {
		ref, ok := r.refs[s.Nonce]
		if !ok || ref.open {
			continue
		}
		f := ref.f
		if s.At.After(f.last) {
			f.last = s.At // the device saw it just before: the flow's idle time starts again
		}
		if ref.t == nil {
			if f.state == flowHandshaking {
				f.state = flowReady // a late handshake of a flow already given up stays given up
			}
			continue
		}
		// A test's packet: survived, even when it came after statefulArrivalWait (then the
		// test was judged dead too early; the knowledge is recomputed from every test).
		ref.t.state = testSurvived
	}
}

// progress reports the sweep's state.
func (r *statefulRun) progress(now time.Time) {
	if r.cfg.Progress == nil {
		return
	}
	var parts []string
	for _, sw := range r.sweeps {
		parts = append(parts, string(sw.proto)+": "+sw.status(now))
	}
	r.cfg.Progress(StatefulProgress{Elapsed: now.Sub(r.start), Status: strings.Join(parts, " | ")})
}

// plan starts the protocol's sweep.
func (sw *protoSweep) plan(now time.Time) {
	if sw.proto.udp() {
		sw.newRound(geometric(sw.lowest(), sw.maxIdle, statefulRound1Flows))
		return
	}
	sw.cur = sw.newFlow()
	sw.addTest(sw.cur, sw.maxIdle)
}

// lowest is the shortest idle time tested.
func (sw *protoSweep) lowest() time.Duration {
	return min(max(statefulMinIdle, sw.maxIdle/64), sw.maxIdle)
}

func (sw *protoSweep) newFlow() *sflow {
	f := &sflow{}
	sw.flows = append(sw.flows, f)
	return f
}

func (sw *protoSweep) addTest(f *sflow, idle time.Duration) {
	sw.tests = append(sw.tests, &idleTest{f: f, idle: idle, round: sw.round})
}

// newRound opens one UDP flow per idle time.
func (sw *protoSweep) newRound(idles []time.Duration) {
	sw.round++
	for _, d := range idles {
		sw.addTest(sw.newFlow(), d)
	}
}

// geometric returns n idle times from lo to hi, spaced by a constant ratio.
func geometric(lo, hi time.Duration, n int) []time.Duration {
	if n < 2 || lo >= hi {
		return []time.Duration{hi}
	}
	out := make([]time.Duration, n)
	ratio := math.Pow(float64(hi)/float64(lo), 1/float64(n-1))
	for i := range out {
		out[i] = time.Duration(float64(lo) * math.Pow(ratio, float64(i))).Round(10 * time.Millisecond)
	}
	out[n-1] = hi
	return out
}

// between returns n idle times evenly inside (lo, hi).
func between(lo, hi time.Duration, n int) []time.Duration {
	out := make([]time.Duration, n)
	for i := range out {
		out[i] = (lo + (hi-lo)*time.Duration(i+1)/time.Duration(n+1)).Round(10 * time.Millisecond)
	}
	return out
}

// bracket is what the tests so far say: the longest measured idle that survived, the
// shortest that died above it (0: none), and how many died below a survival (loss).
func (sw *protoSweep) bracket() (survived, died time.Duration, lost int) {
	for _, t := range sw.tests {
		if t.state == testSurvived && t.measured > survived {
			survived = t.measured
		}
	}
	for _, t := range sw.tests {
		if t.state != testDied {
			continue
		}
		// A death counts at the latest the packet can have left the agent: the request
		// time would understate the silence the device saw whenever the agent is slow.
		d := max(t.upper, t.measured)
		if d <= survived {
			lost++
		} else if died == 0 || d < died {
			died = d
		}
	}
	return survived, died, lost
}

// update judges flows and tests at now and plans what comes next.
func (sw *protoSweep) update(now time.Time) {
	if sw.done {
		return
	}
	for _, f := range sw.flows {
		switch {
		case f.state == flowOpening && !f.openAt.IsZero() && now.Sub(f.openAt) > statefulOpenWait:
			f.state, f.failure = flowFailed, "forward"
		case f.state == flowHandshaking && now.Sub(f.askedAt) > statefulArrivalWait:
			f.state, f.failure = flowFailed, "reverse"
		}
	}
	for _, t := range sw.tests {
		switch {
		case t.state == testSent && now.Sub(t.sentAt) > statefulArrivalWait:
			t.state = testDied
		case t.state == testPlanned && t.f.state == flowFailed:
			t.state = testVoid
		}
	}
	if sw.proto.udp() {
		sw.updateUDP()
	} else {
		sw.updateChain()
	}
}

// updateUDP ends a round at its first death above every survival, or when every test is
// judged, and plans the next.
func (sw *protoSweep) updateUDP() {
	var round []*idleTest
	for _, t := range sw.tests {
		if t.round == sw.round {
			round = append(round, t)
		}
	}
	sort.Slice(round, func(i, j int) bool { return round[i].idle < round[j].idle })
	// The first death with every shorter test judged: longer ones would die too.
	for i, t := range round {
		if t.state == testPlanned || t.state == testSent {
			break
		}
		if t.state == testDied {
			s, _, _ := sw.bracket()
			if max(t.upper, t.measured) > s {
				for _, u := range round[i+1:] {
					if u.state == testPlanned {
						u.state = testVoid
					}
				}
			}
			break
		}
	}
	for _, t := range round {
		if t.state == testPlanned || t.state == testSent {
			return
		}
	}
	survived, died, _ := sw.bracket()
	ran := false
	for _, t := range sw.tests {
		ran = ran || t.state == testSurvived || t.state == testDied
	}
	switch {
	case !ran:
		sw.fail()
		return
	case sw.round >= statefulMaxRounds:
	case died == 0 && survived < sw.maxIdle-statefulPoll:
		// The longest tests did not run (their flows failed): try the rest of the range.
		sw.newRound(geometric(max(survived, sw.lowest())+statefulMinIdle, sw.maxIdle, statefulRound2Flows))
		return
	case died > 0 && died-survived > statefulResolution(died):
		sw.newRound(between(survived, died, statefulRound2Flows))
		return
	}
	sw.done = true
}

// updateChain runs the ESP/AH timeline: one test at a time.
func (sw *protoSweep) updateChain() {
	var last, voided *idleTest
	for _, t := range sw.tests {
		switch t.state {
		case testPlanned, testSent:
			return // the current test is still running
		case testSurvived, testDied:
			last = t
		case testVoid:
			voided = t
		}
	}
	if sw.cur.state == flowFailed {
		// The flow could not be opened: the same test again on a new one, a few times.
		sw.failures++
		if sw.failures >= statefulMaxFlowFailures || voided == nil {
			if last == nil {
				sw.fail()
			}
			sw.done = true
			return
		}
		sw.cur = sw.newFlow()
		sw.addTest(sw.cur, voided.idle)
		return
	}
	if last == nil {
		sw.fail() // nothing runs and nothing was judged: cannot happen, but never spin
		return
	}
	survived, died, _ := sw.bracket()
	if died == 0 {
		sw.done = true // every test survived: no timer up to MaxIdle
		return
	}
	var next time.Duration
	ladder := max(sw.lowest(), 2*survived)
	switch {
	case ladder < died-statefulResolution(died) && sw.steps == 0:
		// Still well below the death: keep doubling. (Near it, a doubled survival would
		// land on the death again, late by the poll interval, and never narrow the bracket.)
		next = ladder
	case died-survived <= statefulResolution(died) || sw.steps >= statefulChainSteps:
		sw.done = true
		return
	default:
		sw.steps++
		next = (survived + died) / 2
	}
	if last.state == testDied {
		sw.cur = sw.newFlow() // the state is gone: open it again
	}
	sw.addTest(sw.cur, next)
}

// fail marks the protocol as not measurable, from how its flows failed.
func (sw *protoSweep) fail() {
	fwd, rev := 0, 0
	for _, f := range sw.flows {
		switch f.failure {
		case "forward":
			fwd++
		case "reverse":
			rev++
		}
	}
	name := sw.proto.Name()
	if fwd >= rev {
		sw.err = fmt.Sprintf("The agent saw none of our %s openers (%d flows): the path drops %s toward the target, so no idle timer can be measured; run 'ipsecpath check'.", name, len(sw.flows), name)
	} else {
		sw.err = fmt.Sprintf("The agent's %s never reached us, even right after each flow was opened (%d flows): the far side's %s is blocked whatever the idle time, which is not an idle timer; run 'ipsecpath check'.", name, len(sw.flows), name)
		if sw.proto.udp() {
			sw.err += " (An agent older than this ipsecpath answers port " + strings.TrimPrefix(string(sw.proto), "udp") + " instead of each flow's own port: check its version if 'check' passes.)"
		}
	}
	sw.done = true
}

// nextDue is when the next planned test of a ready flow is due.
func (sw *protoSweep) nextDue() (time.Time, bool) {
	var w time.Time
	for _, t := range sw.tests {
		if t.state == testPlanned && t.f.state == flowReady {
			if d := t.f.last.Add(t.idle); w.IsZero() || d.Before(w) {
				w = d
			}
		}
	}
	return w, !w.IsZero()
}

// status is the protocol's progress, for the progress line.
func (sw *protoSweep) status(now time.Time) string {
	if sw.err != "" {
		return "not measurable"
	}
	s, d, _ := sw.bracket()
	var b strings.Builder
	switch {
	case d > 0:
		fmt.Fprintf(&b, "survived %s, died %s", secs(s), secs(d))
	case s > 0:
		fmt.Fprintf(&b, "survived %s", secs(s))
	default:
		if _, ok := sw.nextDue(); ok {
			b.WriteString("flows open, silent")
		} else {
			b.WriteString("opening flows")
		}
	}
	if sw.done {
		b.WriteString(", done")
	} else if w, ok := sw.nextDue(); ok {
		fmt.Fprintf(&b, ", next test in %s", secs(max(w.Sub(now), 0)))
	}
	return b.String()
}

// secs formats a duration in seconds, one decimal.
func secs(d time.Duration) string { return report.Seconds(roundSecs(d)) }

// roundSecs is d in seconds, to a tenth.
func roundSecs(d time.Duration) float64 { return math.Round(d.Seconds()*10) / 10 }

// result is the protocol's line of the report.
func (sw *protoSweep) result(interrupted bool) *report.StatefulTimer {
	name := sw.proto.Name()
	t := &report.StatefulTimer{Flows: 0}
	for _, f := range sw.flows {
		if !f.openAt.IsZero() {
			t.Flows++
		}
	}
	if sw.err != "" {
		t.Error = sw.err
		t.Detail = sw.err
		return t
	}
	s, d, lost := sw.bracket()
	t.SurvivedS = roundSecs(s)
	var note string
	if lost > 0 {
		note = fmt.Sprintf(" %d test(s) after a shorter silence got no answer either: the path also loses packets.", lost)
	}
	assume := ""
	if !sw.proto.udp() {
		assume = fmt.Sprintf(" (Tests ran one after another: a device can only key %s state by the address pair, so any %s between the two hosts, a live tunnel included, restarts the timer.)", name, name)
	}
	if interrupted && (d > 0 || s > 0) {
		note += " Interrupted: the sweep was stopped before it finished."
	}
	switch {
	case d > 0:
		t.TimerFound = true
		t.DiedS = roundSecs(d)
		if t.DiedS <= t.SurvivedS {
			t.SurvivedS, t.DiedS = math.Round(s.Seconds()*100)/100, math.Round(d.Seconds()*100)/100
		}
		t.Detail = fmt.Sprintf("%s from the far side still arrived after %s of silence and was dropped after %s: a stateful device on the path forgets the idle flow in between, so a rekey, delete or DPD the far side starts after a longer silence dies.%s%s",
			name, report.Seconds(t.SurvivedS), report.Seconds(t.DiedS), note, assume)
	case interrupted && s == 0:
		t.Detail = fmt.Sprintf("Interrupted before any %s idle test ran: nothing is known.", name)
	case interrupted:
		t.Detail = fmt.Sprintf("%s from the far side still arrived after %s of silence, the longest idle tested so far; longer idle times were not tested.%s%s", name, report.Seconds(t.SurvivedS), note, assume)
	default:
		t.Detail = fmt.Sprintf("%s from the far side still arrived after %s of silence, the longest idle tested (--max-idle): no idle timer up to that.%s%s", name, report.Seconds(t.SurvivedS), note, assume)
	}
	return t
}

// statefulAdvice says what to configure, from the timers found.
func statefulAdvice(sweeps []*protoSweep) []string {
	var out []string
	var udpMin, espMin time.Duration
	var udpNames, espNames []string
	for _, sw := range sweeps {
		if sw.err != "" {
			continue
		}
		s, d, _ := sw.bracket()
		if d == 0 {
			continue
		}
		if sw.proto.udp() {
			udpNames = append(udpNames, sw.proto.Name())
			if udpMin == 0 || s < udpMin {
				udpMin = s
			}
		} else {
			espNames = append(espNames, sw.proto.Name())
			if espMin == 0 || s < espMin {
				espMin = s
			}
		}
	}
	every := func(s time.Duration) int { return max(1, int(s.Seconds()/2)) }
	if udpMin > 0 {
		n := every(udpMin)
		out = append(out,
			fmt.Sprintf("A rekey, delete or DPD started by the far side after more than %s of silence on %s dies at the stateful device: the tunnel then breaks one-sided until the near side starts a new exchange.", secs(udpMin), strings.Join(udpNames, " and ")),
			fmt.Sprintf("Keep IKE traffic flowing more often than every %s (every %d s leaves a margin): strongSwan: dpd_delay = %ds in the connection (swanctl.conf) and, on the side behind a NAT, charon.keep_alive = %ds (strongswan.conf); other gateways call the same things DPD and NAT-T keepalive (Cisco IOS: crypto ikev2 dpd … periodic, crypto isakmp keepalive … periodic, crypto isakmp nat keepalive; Juniper SRX: dead-peer-detection always-send interval, nat-keepalive; FortiGate: set dpd on-idle with dpd-retryinterval, set keepalive), set to that interval where the gateway accepts it (Cisco IOS takes no DPD interval under 10 s). Or raise the device's UDP idle timeout above the IKE and CHILD_SA lifetimes.", secs(udpMin), n, n, n),
			"DPD is sent only when nothing arrived for that long: without NAT-T, steady ESP traffic keeps the tunnel up while UDP 500 itself goes quiet, so a rekey over UDP 500 can still die; forcing UDP encapsulation (strongSwan encap = yes) puts IKE and ESP on one UDP 4500 flow that the traffic keeps alive.")
	}
	if espMin > 0 {
		out = append(out, fmt.Sprintf("%s state is forgotten after more than %s of silence: on a quiet tunnel the first packet from the far side after that is dropped; send traffic (or DPD, which keeps IKE alive, not ESP) more often than every %d s, use UDP encapsulation (strongSwan encap = yes) so NAT-T keepalives keep one UDP flow alive, or raise the device's timeout for IP protocol 50/51.", strings.Join(espNames, " and "), secs(espMin), every(espMin)))
	}
	return out
}
