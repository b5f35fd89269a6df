package probe_test

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"sync/atomic"
	"testing"
	"time"

	"github.com/ipsecpath/ipsecpath/pmtu"
	"github.com/ipsecpath/ipsecpath/probe"
	"github.com/ipsecpath/ipsecpath/report"
	"github.com/ipsecpath/ipsecpath/testlab"
)

// TestCheckInterrupted: a check whose context is cancelled (Ctrl-C) before every probe has its
// answer must say so with an error, not hand back a report where the unanswered probes look
// dropped (the CLI would print them, write --out and exit 1). Nothing answers on a dead
// underlay, so the run has no round trip to measure and waits its whole timeout
// (check_rto.go): the cancel surely comes first.
func TestCheckInterrupted(t *testing.T) {
	testlab.RequireRoot(t)
	l := testlab.ForTest(t, testlab.Spec{Profile: "underlay-dead", NoGateways: true})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	time.AfterFunc(700*time.Millisecond, cancel)
	var rep *report.Report
	t0 := time.Now()
	err := l.Do("ini", func() error {
		var err error
		rep, err = probe.Check(ctx, probe.CheckConfig{Target: l.Addr("rsp"), Probes: []probe.ID{probe.TCP(1792)}, Timeout: 20 * time.Second})
		return err
	})
	took := time.Since(t0)
	if took > 10*time.Second {
		t.Fatalf("check took %s after its context was cancelled at 700ms", took)
	}
	if err == nil {
		var got []string
		for _, r := range rep.Results {
			got = append(got, fmt.Sprintf("%s %s %s", r.Probe, r.Direction, r.Verdict))
		}
		t.Fatalf("interrupted check returned a report and no error: %v", got)
	}
	if !errors.Is(err, context.Canceled) {
		t.Errorf("error %v does not wrap context.Canceled", err)
	}
}

// startStoppableAgent runs the agent in rsp and returns its address and a function that stops it.
func startStoppableAgent(t *testing.T, l *testlab.Lab) (string, func()) {
	t.Helper()
	return startAgentWith(t, l, probe.ResponderConfig{Key: labKey, Version: report.Version})
}

// fakeSearch is a path MTU search that runs run and records that it was closed.
type fakeSearch struct {
	run    func(context.Context) (*pmtu.Result, error)
	closed atomic.Bool
}

func (s *fakeSearch) Run(ctx context.Context) (*pmtu.Result, error) { return s.run(ctx) }
func (s *fakeSearch) Close() error                                  { s.closed.Store(true); return nil }

// TestCheckReleasesOnError: a check that fails (the agent went away mid-run, or setup failed
// after the path MTU search was prepared) must not return while its goroutines still run,
// and must release what the prepared searches hold.
func TestCheckReleasesOnError(t *testing.T) {
	testlab.RequireRoot(t)
	l := testlab.ForTest(t, testlab.Spec{Profile: "clean", NoGateways: true})
	addr, stopAgent := startStoppableAgent(t, l)

	t.Run("setup fails after pmtu prepared", func(t *testing.T) {
		fwd := &fakeSearch{run: func(ctx context.Context) (*pmtu.Result, error) { <-ctx.Done(); return nil, ctx.Err() }}
		cfg := probe.WithPathMTUSearches(probe.CheckConfig{Target: l.Addr("rsp"), Agent: addr, Key: labKey, Probes: []probe.ID{probe.PMTU, probe.ESP}, Timeout: time.Second},
			func(reverse bool) (probe.PathMTUSearch, error) {
				if reverse {
					return nil, errors.New("no reverse prober here")
				}
				return fwd, nil
			})
		err := l.Do("ini", func() error { _, err := probe.Check(context.Background(), cfg); return err })
		var ce *probe.CheckError
		if !errors.As(err, &ce) {
			t.Fatalf("check: %v, want a CheckError", err)
		}
		if !fwd.closed.Load() {
			t.Errorf("the opened path MTU search was never closed, so what it opened was never released")
		}
	})

	t.Run("agent gone mid-run", func(t *testing.T) {
		var searchDone atomic.Bool
		search := &fakeSearch{run: func(ctx context.Context) (*pmtu.Result, error) {
			<-ctx.Done()
			time.Sleep(300 * time.Millisecond) // releasing takes a moment
			searchDone.Store(true)
			return nil, ctx.Err()
		}}
		cfg := probe.WithPathMTUSearches(probe.CheckConfig{Target: l.Addr("rsp"), Agent: addr, Key: labKey, Probes: []probe.ID{probe.PMTU, probe.ESP}, Timeout: 20 * time.Second},
			func(reverse bool) (probe.PathMTUSearch, error) {
				if reverse {
					return nil, nil // forward only
				}
				return search, nil
			})
		time.AfterFunc(time.Second, stopAgent)
		t0 := time.Now()
		err := l.Do("ini", func() error { _, err := probe.Check(context.Background(), cfg); return err })
		if err == nil {
			t.Fatalf("check succeeded although the agent went away")
		}
		t.Logf("check failed after %s: %v", time.Since(t0).Round(time.Millisecond), err)
		if errors.Is(err, probe.ErrAgentRejected) {
			t.Errorf("an agent that went away after accepting the session is reported as refusing the key: %v", err)
		}
		if !searchDone.Load() {
			t.Errorf("check returned while its path MTU search was still running")
		}
	})
}

// lossyCapture is an agent capture whose buffers overflowed: it reports lost packets and
// hands over nothing, as the real one does when a busy initiator floods its ring.
type lossyCapture struct{}

func (lossyCapture) Capture(netip.Addr) (probe.PacketSource, error) { return &lossySource{}, nil }

type lossySource struct{ reported bool }

func (s *lossySource) Drain(dst []probe.Seen) ([]probe.Seen, int) {
	if s.reported {
		return dst, 0
	}
	s.reported = true
	return dst, 500
}

func (*lossySource) Close() error { return nil }

// TestCheckAgentLost: when the agent says its capture lost packets, a forward probe it did
// not see may have been among them: "dropped" would send the engineer after a filter that
// may not exist.
func TestCheckAgentLost(t *testing.T) {
	testlab.RequireRoot(t)
	l := testlab.ForTest(t, testlab.Spec{Profile: "clean", NoGateways: true})
	addr, _ := startAgentWith(t, l, probe.ResponderConfig{Key: labKey, Version: report.Version, Capture: lossyCapture{}})

	rep, _ := checkFromIni(t, l, probe.CheckConfig{Target: l.Addr("rsp"), Agent: addr, Key: labKey, Probes: []probe.ID{probe.ESP}, Timeout: time.Second})
	for _, r := range rep.Results {
		if r.Direction != report.Forward {
			continue
		}
		if r.Verdict == report.Dropped || r.Verdict == report.Pass {
			t.Errorf("%s forward: %s (%s), although the agent lost packets and saw nothing", r.Probe, r.Verdict, r.Detail)
		} else {
			t.Logf("%s forward: %s: %s", r.Probe, r.Verdict, r.Detail)
		}
	}
}

// TestCheckPMTUOwnBudget: the path MTU searches of a check are bounded by their own budgets,
// not by the check's --timeout (issue 9.2: a reverse search cut at the timeout was printed as
// a finished one). Searches that need longer than the timeout run to their end and their
// results are the rows; a Ctrl-C while they run still ends the check with an error.
func TestCheckPMTUOwnBudget(t *testing.T) {
	testlab.RequireRoot(t)
	l := testlab.ForTest(t, testlab.Spec{Profile: "clean", NoGateways: true})
	agent := startAgent(t, l)
	const need = 1500 * time.Millisecond // the searches' own time: five times the check's timeout
	var cut atomic.Int32
	slow := func(m pmtu.Result) *fakeSearch {
		return &fakeSearch{run: func(ctx context.Context) (*pmtu.Result, error) {
			select {
			case <-time.After(need):
				return &m, nil
			case <-ctx.Done():
				cut.Add(1)
				return nil, ctx.Err()
			}
		}}
	}
	cfg := probe.WithPathMTUSearches(probe.CheckConfig{Target: l.Addr("rsp"), Agent: agent, Key: labKey, Probes: []probe.ID{probe.PMTU, probe.ESP}, Timeout: 300 * time.Millisecond},
		func(reverse bool) (probe.PathMTUSearch, error) {
			if reverse {
				return slow(pmtu.Result{MTU: 1300, Exact: true, Upper: 1301, Probes: 19, Blackhole: &pmtu.Blackhole{Size: 1301,
					Last: pmtu.Hop{TTL: 1, Addr: netip.MustParseAddr("203.0.113.1")}, Next: pmtu.Hop{TTL: 2, Addr: netip.MustParseAddr("198.51.100.10")}, Sure: true}}), nil
			}
			return slow(pmtu.Result{MTU: 1400, Exact: true, Upper: 1401, Probes: 3, Signalled: true, ICMPFrom: netip.MustParseAddr("192.0.2.66"), ICMPMTU: 1400}), nil
		})
	rep, _ := checkFromIni(t, l, cfg)
	if n := cut.Load(); n != 0 {
		t.Errorf("%d search(es) cut off by the check's timeout", n)
	}
	got := map[report.Direction]report.Result{}
	for _, r := range rep.Results {
		if r.Probe == string(probe.PMTU) {
			got[r.Direction] = r
		}
	}
	if r := got[report.Forward]; r.Verdict != report.Pass || r.Evidence.Size != 1400 {
		t.Errorf("forward pmtu %s (%s), want pass at 1400", r.Verdict, r.Detail)
	}
	if r := got[report.Reverse]; r.Verdict != report.Dropped || r.Hop == nil || r.Hop.Addr != "203.0.113.1" {
		t.Errorf("reverse pmtu %s (%s, hop %+v), want the black hole after 203.0.113.1", r.Verdict, r.Detail, r.Hop)
	}
	if rep.PMTU == nil || rep.PMTU.Reverse == nil || !rep.PMTU.Reverse.Blackhole {
		t.Errorf(".pmtu %+v, want the reverse black hole", rep.PMTU)
	}

	// Ctrl-C while the searches run: no report, an error that says so.
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	time.AfterFunc(600*time.Millisecond, cancel) // after the timeout, while the searches run
	err := l.Do("ini", func() error {
		_, err := probe.Check(ctx, cfg)
		return err
	})
	if !errors.Is(err, context.Canceled) {
		t.Errorf("check interrupted during its path MTU searches: %v, want an error wrapping context.Canceled", err)
	}
}
