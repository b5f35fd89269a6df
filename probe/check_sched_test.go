package probe_test

// The check's scheduler on probetest's fake network and clock: no root, no sleeps, each run
// a few milliseconds of real time whatever its timeout.

import (
	"context"
	"errors"
	"math/rand"
	"net"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/ipsecpath/ipsecpath/probe"
	"github.com/ipsecpath/ipsecpath/probe/probetest"
	"github.com/ipsecpath/ipsecpath/report"
)

var (
	fakeUs    = netip.MustParseAddr("198.51.100.10")
	fakeThem  = netip.MustParseAddr("203.0.113.10")
	fakeStart = time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
)

// fakeNet is a path where every probe arrives after rtt, unless fate says otherwise.
func fakeNet(rtt time.Duration, fate func(id probe.ID, reverse bool, attempt int, f *probetest.Fate)) *probetest.Net {
	return &probetest.Net{
		Clock: probetest.NewClock(fakeStart), Local: fakeUs, Agent: fakeThem, Pace: probe.DefaultRate,
		Path: func(id probe.ID, reverse bool, attempt int) probetest.Fate {
			f := probetest.Fate{RTT: rtt}
			if fate != nil {
				fate(id, reverse, attempt, &f)
			}
			return f
		},
	}
}

// fakeCheck runs a check with an agent on n; it returns the report, the fake time the run
// took, and the error.
func fakeCheck(ctx context.Context, t *testing.T, n *probetest.Net, cfg probe.CheckConfig) (*report.Report, time.Duration, error) {
	t.Helper()
	cfg.Agent, cfg.Key = fakeThem.String()+":7500", make([]byte, 32)
	return fakeRun(ctx, n, cfg)
}

// fakeRun runs a check on n, with an agent when cfg names one.
func fakeRun(ctx context.Context, n *probetest.Net, cfg probe.CheckConfig) (*report.Report, time.Duration, error) {
	env := probe.CheckEnv{
		Clock:  n.Clock,
		Source: n.Source,
		Dial: func(ctx context.Context, addr string, key []byte) (probe.CheckAgent, net.Addr, error) {
			a, local, err := n.Dial(ctx, addr, key)
			return a, local, err
		},
		OpenSender: func(float64) (probe.CheckSender, error) { return n, nil },
		Observe: func(ctx context.Context, peer netip.Addr, snap int) (probe.CheckObserver, error) {
			o, err := n.Observe(ctx, peer, snap)
			return o, err
		},
	}
	cfg.Target, cfg.NoTrace = fakeThem, true
	if cfg.Probes == nil {
		cfg.Probes = probe.DefaultIDs(probe.DefaultTCPPorts)
		cfg.Probes = cfg.Probes[:len(cfg.Probes)-1] // no pmtu: no search in this test
	}
	t0 := n.Clock.Now()
	rep, err := probe.CheckWith(ctx, cfg, env)
	return rep, n.Clock.Now().Sub(t0), err
}

func verdicts(rep *report.Report) map[string]report.Verdict {
	out := map[string]report.Verdict{}
	for _, r := range rep.Results {
		out[r.Probe+"/"+string(r.Direction)] = r.Verdict
	}
	return out
}

// attempts returns the sends of id in one direction, in order.
func attempts(n *probetest.Net, id probe.ID, reverse bool) []probetest.Send {
	var out []probetest.Send
	for _, s := range n.Sends() {
		if s.ID == id && s.Reverse == reverse {
			out = append(out, s)
		}
	}
	return out
}

// The reverse UDP 500/4500 probes leave before any of ours on UDP 500/4500: a stateful
// firewall must meet them cold (the check's timeline, step 2). Each goes twice in the burst
// and is never retried.
func TestSchedReverseUDPFirst(t *testing.T) {
	n := fakeNet(2*time.Millisecond, nil)
	rep, _, err := fakeCheck(context.Background(), t, n, probe.CheckConfig{})
	if err != nil {
		t.Fatal(err)
	}
	firstFwdUDP := -1
	lastRevUDP := -1
	for i, s := range n.Sends() {
		switch s.ID.Unfragmented() {
		case probe.IKE, probe.NATT:
			if s.Reverse {
				lastRevUDP = i
			} else if firstFwdUDP < 0 {
				firstFwdUDP = i
			}
		}
	}
	if firstFwdUDP < 0 || lastRevUDP < 0 || lastRevUDP > firstFwdUDP {
		t.Fatalf("reverse UDP sends end at %d, forward UDP starts at %d: %+v", lastRevUDP, firstFwdUDP, n.Sends())
	}
	for _, id := range []probe.ID{probe.IKE, probe.IKEFrag, probe.NATT, probe.NATTFrag} {
		if got := len(attempts(n, id, true)); got != 2 {
			t.Errorf("reverse %s sent %d times, want the burst's 2", id, got)
		}
	}
	for k, v := range verdicts(rep) {
		if v != report.Pass {
			t.Errorf("%s: %s on a clean path", k, v)
		}
	}
}

// A probe without an answer is sent again at T/4 and T/2 after its first attempt, and is
// called dropped at T, not before, when the run has no round trip to go by: here one-ended,
// on a path where nothing answers (the window is T, as it always was). No pacing: a paced
// sequence delays a retry queued behind it (TestSchedFastPathEndsEarly paces).
func TestSchedRetriesAtQuarterAndHalf(t *testing.T) {
	const T = 2 * time.Second
	n := fakeNet(2*time.Millisecond, func(_ probe.ID, _ bool, _ int, f *probetest.Fate) { f.Drop = true })
	n.Pace = 0
	rep, took, err := fakeRun(context.Background(), n, probe.CheckConfig{Probes: []probe.ID{probe.TCP(1792)}, Timeout: T})
	if err != nil {
		t.Fatal(err)
	}
	tcp := attempts(n, probe.TCP(1792), false)
	if len(tcp) != probe.CheckAttempts {
		t.Fatalf("tcp:1792 sent %d times, want %d: %+v", len(tcp), probe.CheckAttempts, tcp)
	}
	tick := probe.CheckCollectInterval
	for i, want := range []time.Duration{T / 4, T / 2} {
		got := tcp[i+1].At.Sub(tcp[0].At)
		if got < want || got >= want+tick {
			t.Errorf("retry %d left %s after the first attempt, want %s (within one %s tick)", i+1, got, want, tick)
		}
	}
	if end := fakeStart.Add(took); end.Before(tcp[0].At.Add(T)) {
		t.Errorf("run ended %s after the first attempt: dropped before its deadline T=%s", end.Sub(tcp[0].At), T)
	}
	if got := verdicts(rep)["tcp:1792/forward"]; got != report.Dropped {
		t.Errorf("tcp:1792: %s, want dropped", got)
	}
}

// With round trips measured, a retry still waits until the answer to the previous attempt
// could be known here: an RTO, the loop's tick and the agent's poll interval (its report
// says what arrived), whatever the window's floor allows; and the probe is dropped only
// after its deadline. Its RTO is at least the path's round trip.
func TestSchedRetryWaitsForTheAnswer(t *testing.T) {
	const rtt = 40 * time.Millisecond
	n := fakeNet(rtt, func(id probe.ID, reverse bool, _ int, f *probetest.Fate) {
		f.Drop = id == probe.ESP && !reverse
	})
	n.CtlRTT = func() time.Duration { return rtt }
	n.Pace = 0
	rep, took, err := fakeCheck(context.Background(), t, n, probe.CheckConfig{})
	if err != nil {
		t.Fatal(err)
	}
	esp := attempts(n, probe.ESP, false)
	if len(esp) != probe.CheckAttempts {
		t.Fatalf("esp sent %d times, want %d: %+v", len(esp), probe.CheckAttempts, esp)
	}
	least := rtt + probe.CheckCollectInterval + probe.AgentPollInterval
	for i := 1; i < len(esp); i++ {
		if gap := esp[i].At.Sub(esp[i-1].At); gap < least || gap < probe.MinSilenceWindow/4 {
			t.Errorf("attempt %d left %s after the one before: sooner than its answer could be known (%s)", i+1, gap, least)
		}
	}
	w := probe.MinSilenceWindow
	deadline := esp[0].At.Add(w)
	if d := esp[len(esp)-1].At.Add(w / 2); d.After(deadline) {
		deadline = d
	}
	if end := fakeStart.Add(took); end.Before(deadline) {
		t.Errorf("run ended %s before esp's deadline", deadline.Sub(end))
	}
	if got := verdicts(rep)["esp/forward"]; got != report.Dropped {
		t.Errorf("esp forward: %s, want dropped", got)
	}
}

// The run ends as soon as every probe is decided: on a clean, fast path long before T.
func TestSchedEndsWhenAllDecided(t *testing.T) {
	const T = 2 * time.Second
	n := fakeNet(2*time.Millisecond, nil)
	rep, took, err := fakeCheck(context.Background(), t, n, probe.CheckConfig{Timeout: T})
	if err != nil {
		t.Fatal(err)
	}
	if took >= T/4 {
		t.Errorf("clean run took %s of fake time, want it over before the first retry (T/4 = %s)", took, T/4)
	}
	for _, s := range n.Sends() {
		if s.Attempt > 0 && !(s.Reverse && (s.ID.Unfragmented() == probe.IKE || s.ID.Unfragmented() == probe.NATT)) {
			t.Errorf("%s (reverse %v) was sent again on a clean path", s.ID, s.Reverse)
		}
	}
	if len(rep.Results) == 0 {
		t.Fatal("no results")
	}
}

// Ctrl-C: the caller's context ends mid-run; the check returns that error and no report
// (probes still without an answer would be judged dropped). The CLI exits 2 for it.
func TestSchedInterrupted(t *testing.T) {
	n := fakeNet(2*time.Millisecond, func(id probe.ID, reverse bool, _ int, f *probetest.Fate) {
		f.Drop = id == probe.AH // never decided: the run would wait for it
	})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	n.Clock.At(fakeStart.Add(150*time.Millisecond), cancel)
	rep, took, err := fakeCheck(ctx, t, n, probe.CheckConfig{})
	if rep != nil || !errors.Is(err, context.Canceled) {
		t.Fatalf("interrupted check: report %v, error %v; want no report and context.Canceled", rep != nil, err)
	}
	var ce *probe.CheckError
	if errors.As(err, &ce) {
		t.Errorf("interruption reported as an environment error: %v", err)
	}
	if took > 300*time.Millisecond {
		t.Errorf("the check went on %s after the cancel at 150ms", took-150*time.Millisecond)
	}
}

// The agent vanishes mid-run: the check fails with an environment error naming it, and no
// report (the forward verdicts rest on what the agent saw: there is nothing to judge).
func TestSchedAgentVanishes(t *testing.T) {
	n := fakeNet(2*time.Millisecond, func(id probe.ID, reverse bool, _ int, f *probetest.Fate) {
		f.Drop = id == probe.AH
	})
	n.AgentGone = fakeStart.Add(250 * time.Millisecond)
	rep, _, err := fakeCheck(context.Background(), t, n, probe.CheckConfig{})
	var ce *probe.CheckError
	if rep != nil || !errors.As(err, &ce) || !errors.Is(err, probetest.ErrAgentGone) {
		t.Fatalf("check with a vanished agent: report %v, error %v; want no report and a *CheckError wrapping the agent's", rep != nil, err)
	}
}

// A broken path on a fast link: every fragment dropped, every small form answered within
// milliseconds. The run ends once the measured window (its floor here) has passed since
// each failing probe's first attempt and half of it since its last, far before T; and no
// probe is called dropped before that deadline.
func TestSchedFastPathEndsEarly(t *testing.T) {
	const T = 2 * time.Second
	n := fakeNet(2*time.Millisecond, func(id probe.ID, _ bool, _ int, f *probetest.Fate) { f.DropFragments = true })
	rep, took, err := fakeCheck(context.Background(), t, n, probe.CheckConfig{Timeout: T})
	if err != nil {
		t.Fatal(err)
	}
	end := fakeStart.Add(took)
	w := probe.MinSilenceWindow
	for _, id := range []probe.ID{probe.IKEFrag, probe.NATTFrag, probe.ESPFrag, probe.AHFrag, probe.ICMPLarge} {
		for _, rev := range []bool{false, true} {
			a := attempts(n, id, rev)
			if len(a) == 0 {
				t.Fatalf("%s (reverse %v) never sent", id, rev)
			}
			deadline := a[0].At.Add(w)
			if d := a[len(a)-1].At.Add(w / 2); d.After(deadline) {
				deadline = d
			}
			if end.Before(deadline) {
				t.Errorf("%s (reverse %v): run ended %s before its deadline", id, rev, deadline.Sub(end))
			}
			if got := verdicts(rep)[string(id)+"/"+string(map[bool]report.Direction{false: report.Forward, true: report.Reverse}[rev])]; got != report.FragDropped {
				t.Errorf("%s (reverse %v): %s, want frag-dropped", id, rev, got)
			}
		}
	}
	if took > 3*w {
		t.Errorf("a broken fast path took %s of fake time, want about the window %s, far below T=%s", took, w, T)
	}
}

// A slow, jittery path (RTT 300 ms ± 100 ms on every probe and every agent report), nothing
// lost: no probe is called dropped, and none lost in some attempts. Several seeds.
func TestSchedSlowJitteryPath(t *testing.T) {
	for seed := int64(1); seed <= 20; seed++ {
		rng := rand.New(rand.NewSource(seed))
		jitter := func() time.Duration {
			return 200*time.Millisecond + time.Duration(rng.Int63n(int64(200*time.Millisecond)))
		}
		n := fakeNet(0, func(_ probe.ID, _ bool, _ int, f *probetest.Fate) { f.RTT = jitter() })
		n.CtlRTT = jitter
		rep, _, err := fakeCheck(context.Background(), t, n, probe.CheckConfig{})
		if err != nil {
			t.Fatalf("seed %d: %v", seed, err)
		}
		for _, r := range rep.Results {
			if r.Verdict != report.Pass || strings.Contains(r.Detail, "lost") {
				t.Errorf("seed %d: %s %s: %s: %s", seed, r.Probe, r.Direction, r.Verdict, r.Detail)
			}
		}
	}
}

// The cold reverse UDP burst (two attempts at once, never retried, see the check's timeline)
// that a stateful firewall drops: each probe waits the whole window from the burst before it
// is called dropped, not the half a last retry waits.
func TestSchedColdReverseUDPDeadline(t *testing.T) {
	n := fakeNet(2*time.Millisecond, func(id probe.ID, reverse bool, _ int, f *probetest.Fate) {
		f.Drop = reverse && (id == probe.IKE || id == probe.NATT)
	})
	rep, took, err := fakeCheck(context.Background(), t, n, probe.CheckConfig{Probes: []probe.ID{probe.IKE, probe.NATT, probe.ESP}})
	if err != nil {
		t.Fatal(err)
	}
	end := fakeStart.Add(took)
	for _, id := range []probe.ID{probe.IKE, probe.NATT} {
		a := attempts(n, id, true)
		if len(a) != 2 {
			t.Fatalf("reverse %s sent %d times, want the burst's 2", id, len(a))
		}
		if end.Before(a[0].At.Add(probe.MinSilenceWindow)) {
			t.Errorf("reverse %s: run ended %s after the burst, before the window %s", id, end.Sub(a[0].At), probe.MinSilenceWindow)
		}
		if got := verdicts(rep)[string(id)+"/reverse"]; got != report.Dropped {
			t.Errorf("reverse %s: %s, want dropped", id, got)
		}
	}
}
