package probe

import (
	"context"
	"encoding/json"
	"errors"
	"net/netip"
	"reflect"
	"sort"
	"strings"
	"testing"
	"time"
)

// fakeClock is virtual time: Sleep advances it at once.
type fakeClock struct {
	now      time.Time
	cancelAt time.Time // when set, cancel is called once now passes it
	cancel   func()
	late     time.Duration // every Sleep oversleeps by this much (a busy machine)
}

func (c *fakeClock) Now() time.Time { return c.now }
func (c *fakeClock) Sleep(ctx context.Context, d time.Duration) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	c.now = c.now.Add(d + c.late)
	if c.cancel != nil && !c.cancelAt.IsZero() && c.now.After(c.cancelAt) {
		c.cancel()
		return context.Canceled
	}
	return nil
}

// fakePath models the path and the agent: a stateful device that lets the far side's
// packets through only while a flow's state lives (timer per protocol, 0: forever), keyed
// like Linux conntrack: UDP by port, ESP/AH by the address pair alone (one state).
type fakePath struct {
	clock     *fakeClock
	timer     map[StatefulProto]time.Duration
	stateless map[StatefulProto]bool // the far side's packets pass without state
	dropFwd   map[StatefulProto]bool
	dropRev   map[StatefulProto]bool
	loseRev   map[int]bool // reverse packets (counted from 0) lost on the wire
	natOffset uint16       // a NAT maps our port p to p+natOffset
	oneWay    time.Duration
	agentLag  time.Duration // the agent sends this long after it is asked (a busy agent)

	state           map[string]time.Time
	nonce           uint32
	port            uint16
	fwd, rev        []statefulSeen
	revCount        int
	wrongPort       int // reverse packets sent to a port the agent never saw
	reverseRequests int
}

func newFakePath(c *fakeClock) *fakePath {
	return &fakePath{clock: c, timer: map[StatefulProto]time.Duration{}, stateless: map[StatefulProto]bool{},
		dropFwd: map[StatefulProto]bool{}, dropRev: map[StatefulProto]bool{}, loseRev: map[int]bool{},
		state: map[string]time.Time{}, nonce: 0x1000, port: 40000, oneWay: 5 * time.Millisecond}
}

func (p *fakePath) key(proto StatefulProto, port uint16) string {
	if proto.udp() {
		return string(proto) + "/" + string(rune(port))
	}
	return string(proto)
}

func (p *fakePath) Nonce() (uint32, error) { p.nonce++; return p.nonce, nil }

func (p *fakePath) Open(_ context.Context, proto StatefulProto, f *sflow, nonce uint32) error {
	if proto.udp() && f.port == 0 {
		p.port++
		f.port = p.port
	}
	if p.dropFwd[proto] {
		return nil
	}
	p.state[p.key(proto, f.port)] = p.clock.now
	p.fwd = append(p.fwd, statefulSeen{Nonce: nonce, Port: f.port + p.natOffset, At: p.clock.now.Add(p.oneWay)})
	return nil
}

func (p *fakePath) Reverse(_ context.Context, rs []statefulReverse) error {
	p.reverseRequests++
	p.clock.now = p.clock.now.Add(p.agentLag)
	for _, r := range rs {
		n := p.revCount
		p.revCount++
		port := r.Port - p.natOffset
		if r.Proto.udp() && port < 40001 {
			p.wrongPort++
			continue
		}
		k := p.key(r.Proto, port)
		last, ok := p.state[k]
		alive := ok && (p.timer[r.Proto] == 0 || p.clock.now.Sub(last) < p.timer[r.Proto])
		if !alive {
			delete(p.state, k)
		}
		if p.dropRev[r.Proto] || (!alive && !p.stateless[r.Proto]) || p.loseRev[n] {
			continue
		}
		p.state[k] = p.clock.now
		p.rev = append(p.rev, statefulSeen{Nonce: r.Nonce, At: p.clock.now.Add(p.oneWay)})
	}
	return nil
}

func (p *fakePath) Poll(_ context.Context, withAgent bool) (fwd, rev []statefulSeen, err error) {
	due := func(l *[]statefulSeen) (out []statefulSeen) {
		var keep []statefulSeen
		for _, s := range *l {
			if !s.At.After(p.clock.now) {
				out = append(out, s)
			} else {
				keep = append(keep, s)
			}
		}
		*l = keep
		return out
	}
	rev = due(&p.rev)
	if withAgent {
		fwd = due(&p.fwd)
	}
	return fwd, rev, nil
}

func runFake(t *testing.T, p *fakePath, protos []StatefulProto, maxIdle time.Duration, ctx context.Context) (map[string]*timerView, time.Duration, bool) {
	t.Helper()
	start := p.clock.now
	rep, err := Stateful(ctx, StatefulConfig{Target: netip.MustParseAddr("203.0.113.10"), Agent: "203.0.113.10:7500",
		Protocols: protos, MaxIdle: maxIdle, net: p, clock: p.clock})
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]*timerView{}
	for k, v := range rep.Stateful {
		out[k] = &timerView{found: v.TimerFound, survived: v.SurvivedS, died: v.DiedS, flows: v.Flows, err: v.Error, detail: v.Detail}
	}
	if p.wrongPort > 0 {
		t.Errorf("%d reverse packets went to a port the agent never saw", p.wrongPort)
	}
	for k, v := range out {
		t.Logf("%s: %+v", k, *v)
	}
	t.Logf("took %s", p.clock.now.Sub(start))
	return out, p.clock.now.Sub(start), rep.Interrupted
}

type timerView struct {
	found          bool
	survived, died float64
	flows          int
	err, detail    string
}

func newClock() *fakeClock { return &fakeClock{now: time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)} }

// The stateful-udp lab in miniature: UDP forgotten after 10 s idle; ESP and AH pass
// without state. Both UDP timers bracket 10 s, found in less than 40 s for --max-idle 30s.
func TestStatefulUDPTimer(t *testing.T) {
	c := newClock()
	p := newFakePath(c)
	p.timer[StatefulUDP500], p.timer[StatefulUDP4500] = 10*time.Second, 10*time.Second
	p.stateless[StatefulESP], p.stateless[StatefulAH] = true, true
	res, took, _ := runFake(t, p, StatefulProtos, 30*time.Second, context.Background())
	for _, k := range []string{"udp500", "udp4500"} {
		r := res[k]
		if !r.found || r.survived < 8 || r.survived >= 10 || r.died < 10 || r.died > 12 || r.died-r.survived > 1.01 {
			t.Errorf("%s: %+v, want a timer bracketed within 8-12 s around 10 s, at most 1 s wide", k, r)
		}
		if r.flows != statefulRound1Flows+statefulRound2Flows {
			t.Errorf("%s: %d flows, want %d", k, r.flows, statefulRound1Flows+statefulRound2Flows)
		}
	}
	for _, k := range []string{"esp", "ah"} {
		if r := res[k]; r.found || r.survived < 30 || r.err != "" || r.flows != 1 {
			t.Errorf("%s: %+v, want no timer up to 30 s with one flow", k, r)
		}
	}
	if took >= 40*time.Second {
		t.Errorf("sweep took %s of (virtual) time, want under 40 s", took)
	}
}

func TestStatefulNoTimer(t *testing.T) {
	c := newClock()
	p := newFakePath(c) // a stateful device that never forgets
	res, took, _ := runFake(t, p, StatefulProtos, 20*time.Second, context.Background())
	for k, r := range res {
		if r.found || r.survived < 20 || r.err != "" || !strings.Contains(r.detail, "no idle timer") {
			t.Errorf("%s: %+v, want no timer up to 20 s", k, r)
		}
	}
	if took > 20*time.Second+statefulOpenWait+2*statefulArrivalWait {
		t.Errorf("took %s, want about the longest idle", took)
	}
}

// ESP state is one per address pair: a reverse test that arrives refreshes it for every
// later test. The timeline must still find the timer (a parallel sweep would see every
// flow survive, each refreshed by the test before it).
func TestStatefulESPSharedState(t *testing.T) {
	c := newClock()
	p := newFakePath(c)
	p.timer[StatefulESP], p.timer[StatefulAH] = 10*time.Second, 45*time.Second
	res, _, _ := runFake(t, p, []StatefulProto{StatefulESP, StatefulAH}, 60*time.Second, context.Background())
	if r := res["esp"]; !r.found || r.survived >= 10 || r.died < 10 || r.survived < 7 || r.died > 13 {
		t.Errorf("esp: %+v, want a bracket around 10 s", r)
	}
	if r := res["ah"]; !r.found || r.survived >= 45 || r.died < 45 || r.survived < 35 || r.died > 60.5 {
		t.Errorf("ah: %+v, want a bracket around 45 s", r)
	}
	if !strings.Contains(res["esp"].detail, "address pair") {
		t.Errorf("esp detail does not say what is assumed: %s", res["esp"].detail)
	}
}

func TestStatefulBlocked(t *testing.T) {
	c := newClock()
	p := newFakePath(c)
	p.dropFwd[StatefulUDP500] = true
	p.dropRev[StatefulUDP4500] = true
	p.dropRev[StatefulESP] = true
	res, took, _ := runFake(t, p, []StatefulProto{StatefulUDP500, StatefulUDP4500, StatefulESP}, 30*time.Second, context.Background())
	if r := res["udp500"]; r.err == "" || !strings.Contains(r.err, "agent saw none") || r.found {
		t.Errorf("udp500 forward dropped: %+v", r)
	}
	if r := res["udp4500"]; r.err == "" || !strings.Contains(r.err, "never reached us") || r.found {
		t.Errorf("udp4500 reverse dropped: %+v", r)
	}
	if r := res["esp"]; r.err == "" || !strings.Contains(r.err, "never reached us") || r.flows != statefulMaxFlowFailures {
		t.Errorf("esp reverse dropped: %+v", r)
	}
	if took > 10*time.Second {
		t.Errorf("a blocked protocol took %s: it should fail fast", took)
	}
}

// One lost reverse packet is not a timer: a test sends two.
func TestStatefulSingleLoss(t *testing.T) {
	c := newClock()
	p := newFakePath(c)
	p.timer[StatefulUDP500] = 10 * time.Second
	for i := 0; i < 200; i += 2 {
		p.loseRev[i] = true // the first packet of every pair
	}
	res, _, _ := runFake(t, p, []StatefulProto{StatefulUDP500}, 30*time.Second, context.Background())
	if r := res["udp500"]; !r.found || r.survived < 8 || r.died > 12 {
		t.Errorf("udp500 with loss: %+v", r)
	}
}

// Behind a NAT the agent sees another port: the reverse packets go to that one.
func TestStatefulNAT(t *testing.T) {
	c := newClock()
	p := newFakePath(c)
	p.natOffset = 1000
	p.timer[StatefulUDP4500] = 5 * time.Second
	res, _, _ := runFake(t, p, []StatefulProto{StatefulUDP4500}, 10*time.Second, context.Background())
	if r := res["udp4500"]; !r.found || r.survived < 4 || r.died > 6 {
		t.Errorf("udp4500 behind NAT: %+v", r)
	}
}

// Ctrl-C: what is known so far, marked interrupted.
func TestStatefulInterrupted(t *testing.T) {
	c := newClock()
	p := newFakePath(c)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	c.cancel, c.cancelAt = cancel, c.now.Add(15*time.Second)
	p.timer[StatefulUDP500] = 10 * time.Second
	res, _, interrupted := runFake(t, p, []StatefulProto{StatefulUDP500, StatefulESP}, 60*time.Second, ctx)
	if !interrupted {
		t.Fatal("not marked interrupted")
	}
	if r := res["esp"]; r.found || !strings.Contains(r.detail, "nterrupted") {
		t.Errorf("esp: %+v, want interrupted with nothing found", r)
	}
	if r := res["udp500"]; r.survived == 0 {
		t.Errorf("udp500: %+v, want what round 1 learnt so far", r)
	}
}

func TestStatefulJSON(t *testing.T) {
	c := newClock()
	p := newFakePath(c)
	p.timer[StatefulUDP500] = 10 * time.Second
	rep, err := Stateful(context.Background(), StatefulConfig{Target: netip.MustParseAddr("203.0.113.10"), Agent: "a",
		Protocols: []StatefulProto{StatefulUDP500, StatefulESP}, MaxIdle: 15 * time.Second, net: p, clock: c})
	if err != nil {
		t.Fatal(err)
	}
	b, err := json.Marshal(rep)
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]any
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatal(err)
	}
	for _, k := range []string{"tool", "target", "started", "duration_ms", "stateful", "advice"} {
		if _, ok := m[k]; !ok {
			t.Errorf("no %q in %s", k, b)
		}
	}
	st := m["stateful"].(map[string]any)
	keys := func(v any) []string {
		var out []string
		for k := range v.(map[string]any) {
			out = append(out, k)
		}
		sort.Strings(out)
		return out
	}
	if got := keys(st["udp500"]); !reflect.DeepEqual(got, []string{"detail", "died_s", "flows", "survived_s", "timer_found"}) {
		t.Errorf("udp500 keys %v", got)
	}
	if got := keys(st["esp"]); !reflect.DeepEqual(got, []string{"detail", "flows", "survived_s", "timer_found"}) {
		t.Errorf("esp keys %v", got)
	}
	if st["udp500"].(map[string]any)["timer_found"] != true || st["esp"].(map[string]any)["survived_s"].(float64) < 15 {
		t.Errorf("values: %s", b)
	}
	adv := strings.Join(rep.Advice, " ")
	for _, w := range []string{"dpd_delay", "keep_alive", "far side"} {
		if !strings.Contains(adv, w) {
			t.Errorf("advice lacks %q: %s", w, adv)
		}
	}
}

func TestParseStatefulProtos(t *testing.T) {
	got, err := ParseStatefulProtos("udp500, ESP,udp500")
	if err != nil || !reflect.DeepEqual(got, []StatefulProto{StatefulUDP500, StatefulESP}) {
		t.Errorf("got %v, %v", got, err)
	}
	if got, err := ParseStatefulProtos("all"); err != nil || len(got) != 4 {
		t.Errorf("all: %v, %v", got, err)
	}
	for _, bad := range []string{"", "udp", "esp,gre"} {
		if _, err := ParseStatefulProtos(bad); err == nil {
			t.Errorf("%q accepted", bad)
		}
	}
}

// A timeline whose doubled survival lands on the death (4 s survived, 8 s died, timer 6 s)
// must bisect, not test 8 s again and again; every test here is sent 40 ms late, as a busy
// loop sends them.
func TestStatefulChainNarrows(t *testing.T) {
	c := newClock()
	c.late = 40 * time.Millisecond
	p := newFakePath(c)
	p.timer[StatefulESP] = 6 * time.Second
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	c.cancel, c.cancelAt = cancel, c.now.Add(5*time.Minute)
	res, took, interrupted := runFake(t, p, []StatefulProto{StatefulESP}, 10*time.Second, ctx)
	if interrupted || took > 2*time.Minute {
		t.Fatalf("took %s (interrupted %v): the timeline did not converge", took, interrupted)
	}
	if r := res["esp"]; !r.found || r.survived < 4 || r.survived > 6 || r.died < 6 || r.died > 8.1 {
		t.Errorf("esp: %+v, want a bracket around 6 s", r)
	}
}

// brokenAgent fails every reverse request after the first n.
type brokenAgent struct {
	*fakePath
	n int
}

func (b *brokenAgent) Reverse(ctx context.Context, rs []statefulReverse) error {
	if b.n--; b.n < 0 {
		return errors.New("agent 203.0.113.10:7500: send-reverse: connection reset")
	}
	return b.fakePath.Reverse(ctx, rs)
}

// The agent failing midway still gives the partial result, marked interrupted, with the error.
func TestStatefulAgentFailsMidway(t *testing.T) {
	c := newClock()
	p := &brokenAgent{fakePath: newFakePath(c), n: 6}
	rep, err := Stateful(context.Background(), StatefulConfig{Target: netip.MustParseAddr("203.0.113.10"), Agent: "203.0.113.10:7500",
		Protocols: []StatefulProto{StatefulUDP500}, MaxIdle: 30 * time.Second, net: p, clock: c})
	if err == nil || rep == nil || !rep.Interrupted {
		t.Fatalf("err %v, report %v: want both, marked interrupted", err, rep)
	}
	if v := rep.Stateful["udp500"]; v == nil || v.SurvivedS == 0 || v.TimerFound {
		t.Errorf("udp500: %+v, want what the first tests showed", v)
	}
}

// A slow agent sends each test later than asked: the silence the device saw is longer than
// the request time says. The bracket must still hold the timer (died is counted to when the
// agent had sent), never put the death below it.
func TestStatefulSlowAgent(t *testing.T) {
	for _, lag := range []time.Duration{100 * time.Millisecond, 400 * time.Millisecond, 900 * time.Millisecond} {
		c := newClock()
		p := newFakePath(c)
		p.agentLag = lag
		p.timer[StatefulUDP500], p.timer[StatefulESP] = 10*time.Second, 10*time.Second
		res, _, _ := runFake(t, p, []StatefulProto{StatefulUDP500, StatefulESP}, 30*time.Second, context.Background())
		for k, r := range res {
			if !r.found || r.survived >= 10 || r.died < 10 {
				t.Errorf("agent lag %s, %s: %+v, want survived < 10 s <= died", lag, k, r)
			}
		}
	}
}
