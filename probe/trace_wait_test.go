package probe

import (
	"net/netip"
	"testing"
	"time"

	"github.com/ipsecpath/ipsecpath/report"
)

// waitTrace is a tracer of one forward walk (and its companion echo) and, with agent, one
// reverse walk, 4 TTLs each, every copy sent at t0 and without an answer.
func waitTrace(agent bool) (tr *tracer, fwd, rev *walk, t0 time.Time) {
	r := &checkRun{src: netip.MustParseAddr("198.51.100.10"), cfg: CheckConfig{Target: netip.MustParseAddr("203.0.113.10")},
		byNonce: map[uint32]attemptRef{}, byIPID: map[ipidKey]attemptRef{}}
	if agent {
		r.agent = &AgentClient{}
	}
	tr = r.tracer(4, 2*time.Second)
	t0 = time.Unix(1000, 0)
	fill := func(w *walk) {
		w.frags = []report.Fragment{{Offset: 0, Length: 100}}
		for ttl := 1; ttl <= 4; ttl++ {
			w.copies = append(w.copies, &ttlCopy{w: w, ttl: ttl, sent: t0, left: t0})
		}
	}
	fwd = tr.add(ESP, false, false)
	fill(fwd)
	fill(fwd.echo)
	if agent {
		rev = tr.add(ESP, true, false)
		fill(rev)
		fill(rev.echo)
	}
	return tr, fwd, rev, t0
}

// A copy without an answer is silent W after it left, never sooner: W is the window of the
// round trips measured (at least minSilenceWindow), plus the agent's poll interval when an
// agent's report is what would say it arrived.
func TestTraceQuietAfterWindow(t *testing.T) {
	for _, agent := range []bool{false, true} {
		tr, _, _, t0 := waitTrace(agent)
		if tr.quiet(t0.Add(time.Hour)) {
			t.Fatalf("agent %v: quiet without a round trip of the whole path measured: a trace that saw only the hops before the break must wait as before", agent)
		}
		tr.rtt.path.sample(time.Millisecond)
		win := minSilenceWindow
		if agent {
			win += agentPollInterval
		}
		if tr.quiet(t0.Add(win - time.Millisecond)) {
			t.Errorf("agent %v: quiet %s after the copies left, before their deadline %s", agent, win-time.Millisecond, win)
		}
		if !tr.quiet(t0.Add(win)) {
			t.Errorf("agent %v: not quiet at the copies' deadline %s", agent, win)
		}
	}
}

// The window follows the path: a slow jittery path (300 ± 100 ms) waits its measured RTO
// four times, and hops that answer slower than the far end (time-exceeded from a router's
// control plane) widen it. Never beyond the timeout.
func TestTraceWindowFollowsRTT(t *testing.T) {
	tr, _, _, t0 := waitTrace(false)
	for i := range 20 {
		tr.rtt.path.sample(time.Duration(200+100*(i%3)) * time.Millisecond)
	}
	w, _ := tr.rtt.window(tr.timeout)
	if w < 4*tr.rtt.path.rto() && w != tr.timeout {
		t.Fatalf("window %s below 4·RTO %s", w, 4*tr.rtt.path.rto())
	}
	if tr.quiet(t0.Add(w - time.Millisecond)) {
		t.Errorf("quiet before the window %s", w)
	}
	tr2, _, _, _ := waitTrace(false)
	tr2.rtt.path.sample(time.Millisecond)
	fast, _ := tr2.rtt.window(tr2.timeout)
	tr2.mu.Lock()
	tr2.hopSample(400 * time.Millisecond)
	tr2.mu.Unlock()
	if slow, _ := tr2.rtt.window(tr2.timeout); slow <= fast || slow > tr2.timeout {
		t.Errorf("a slow hop's time-exceeded (400 ms) leaves the window at %s (was %s, timeout %s)", slow, fast, tr2.timeout)
	}
	tr2.mu.Lock()
	tr2.hopSample(10 * time.Second)
	tr2.mu.Unlock()
	if w, _ := tr2.rtt.window(tr2.timeout); w != tr2.timeout {
		t.Errorf("window %s beyond the timeout %s", w, tr2.timeout)
	}
}

// Each copy counts from when it left: the last TTLs sent late are not called silent with
// the first; a reverse copy counts from when it left the agent (on our clock), and one
// whose send time is not converted yet is never silent. Answered copies wait for nothing.
func TestTraceQuietPerCopy(t *testing.T) {
	tr, fwd, rev, t0 := waitTrace(true)
	tr.rtt.path.sample(time.Millisecond)
	deadline := minSilenceWindow + agentPollInterval
	fwd.copies[3].sent = t0.Add(time.Second)
	if tr.quiet(t0.Add(deadline + 500*time.Millisecond)) {
		t.Error("quiet before the last copy's own deadline")
	}
	if !tr.quiet(t0.Add(time.Second + deadline)) {
		t.Error("not quiet at the last copy's deadline")
	}
	rev.copies[0].left = t0.Add(2 * time.Second) // the agent sent it later than we asked
	if tr.quiet(t0.Add(time.Second + deadline)) {
		t.Error("a reverse copy is silent before its deadline counted from when it left the agent")
	}
	rev.copies[0].left = time.Time{}
	if tr.quiet(t0.Add(time.Hour)) {
		t.Error("a reverse copy whose send time is not converted is silent")
	}
	// Answered: a time-exceeded, or (the far end at TTL 2) arrival whole.
	rev.copies[0].teFrom = netip.MustParseAddr("192.0.2.65")
	if !tr.quiet(t0.Add(time.Second + deadline)) {
		t.Error("an answered copy is waited for")
	}
	tr2, fwd2, _, t1 := waitTrace(false)
	tr2.rtt.path.sample(time.Millisecond)
	for _, w := range []*walk{fwd2, fwd2.echo} {
		w.copies[0].teFrom = netip.MustParseAddr("198.51.100.1")
		for _, c := range w.copies[1:] {
			tr2.arrived(c, -1)
		}
	}
	if !tr2.quiet(t1) || !tr2.settled() {
		t.Error("a trace whose every copy is answered still waits")
	}
}

// Once a copy is known to reach the far end (TTL 3 here), TTLs past traceFarEndMargin beyond
// it are not sent: forward as soon as the far end answers an echo (before the agent's report
// says the copy arrived), reverse dropped from a chunk's requests still to make.
func TestTraceFarEndLimit(t *testing.T) {
	r := &checkRun{src: netip.MustParseAddr("198.51.100.10"), cfg: CheckConfig{Target: netip.MustParseAddr("203.0.113.10")},
		agentIP: netip.MustParseAddr("203.0.113.10"), peer: netip.MustParseAddr("198.51.100.10"),
		byNonce: map[uint32]attemptRef{}, byIPID: map[ipidKey]attemptRef{}, agent: &AgentClient{}}
	tr := r.tracer(8, time.Second)
	tr.add(ESPFrag, true, false)
	if tr.limit(false) != 8 || tr.limit(true) != 8 {
		t.Fatalf("limits %d, %d before any arrival, want 8", tr.limit(false), tr.limit(true))
	}
	tr.echoFar = 3
	if got := tr.limit(false); got != 3+traceFarEndMargin {
		t.Errorf("forward limit %d after the far end answered the TTL 3 echo, want %d", got, 3+traceFarEndMargin)
	}
	if got := tr.limit(true); got != 8 {
		t.Errorf("reverse limit %d: a forward echo says nothing of the reverse path", got)
	}
	req, cs, err := tr.reverseRequest(tr.sendOrder(true), 1, 8)
	if err != nil {
		t.Fatal(err)
	}
	tr.farEnd[1] = 3
	req, cs = tr.beyondFarEnd(req, cs)
	if len(req) != len(cs) || len(cs) == 0 {
		t.Fatalf("%d requests for %d copies", len(req), len(cs))
	}
	for i, c := range cs {
		if c.ttl > 3+traceFarEndMargin || int(req[i].TTL) != c.ttl {
			t.Errorf("copy %d: TTL %d (request %d) past the far end's margin", i, c.ttl, req[i].TTL)
		}
	}
	if cs[len(cs)-1].ttl != 3+traceFarEndMargin {
		t.Errorf("last TTL asked for %d, want %d", cs[len(cs)-1].ttl, 3+traceFarEndMargin)
	}
}
