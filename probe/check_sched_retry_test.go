package probe_test

import (
	"context"
	"fmt"
	"math/rand"
	"strings"
	"testing"
	"time"

	"github.com/ipsecpath/ipsecpath/probe"
	"github.com/ipsecpath/ipsecpath/probe/probetest"
	"github.com/ipsecpath/ipsecpath/report"
)

// fwdFrag are the forward probes whose fragments a path that drops fragments loses.
var fwdFrag = []probe.ID{probe.IKEFrag, probe.NATTFrag, probe.ESPFrag, probe.AHFrag, probe.ICMPLarge}

// A slow, jittery path (RTT 300 ms ± 100 ms, the agent session one request at a time) that
// drops our fragments: the fragmented probes' first attempts leave late (behind the
// announce of their IP IDs), their retries fall after T, and still go out. Each is called
// frag-dropped on all CheckAttempts attempts, never on one packet, and nothing else fails.
func TestSchedSlowPathRetriesAfterT(t *testing.T) {
	for seed := int64(1); seed <= 5; seed++ {
		rng := rand.New(rand.NewSource(seed))
		jitter := func() time.Duration {
			return 200*time.Millisecond + time.Duration(rng.Int63n(int64(200*time.Millisecond)))
		}
		n := fakeNet(0, func(_ probe.ID, reverse bool, _ int, f *probetest.Fate) {
			f.RTT = jitter()
			f.DropFragments = !reverse
		})
		n.CtlRTT = jitter
		rep, took, err := fakeCheck(context.Background(), t, n, probe.CheckConfig{})
		if err != nil {
			t.Fatalf("seed %d: %v", seed, err)
		}
		v := verdicts(rep)
		afterT := 0
		for _, id := range fwdFrag {
			a := attempts(n, id, false)
			if len(a) != probe.CheckAttempts {
				t.Errorf("seed %d: %s left %d time(s), want %d: %+v", seed, id, len(a), probe.CheckAttempts, a)
				continue
			}
			if !a[len(a)-1].At.Before(fakeStart.Add(probe.DefaultCheckTimeout)) {
				afterT++
			}
			if got := v[string(id)+"/forward"]; got != report.FragDropped {
				t.Errorf("seed %d: %s: %s, want frag-dropped", seed, id, got)
			}
		}
		if afterT == 0 {
			t.Errorf("seed %d: no retry fell after T: the test does not test what it says (run %s)", seed, took)
		}
		for _, r := range rep.Results {
			frag := r.Direction == report.Forward && (probe.ID(r.Probe).Fragmented() || probe.ID(r.Probe) == probe.ICMPLarge)
			if strings.Contains(r.Detail, "only") || (!frag && r.Verdict != report.Pass) {
				t.Errorf("seed %d: %s %s: %s: %s", seed, r.Probe, r.Direction, r.Verdict, r.Detail)
			}
		}
		if bound := probe.DefaultCheckTimeout*4 + probe.DefaultCheckTimeout; took > bound {
			t.Errorf("seed %d: run took %s of fake time, beyond its bound %s", seed, took, bound)
		}
	}
}

// A sender far slower than the run planned for (one packet a second of fake time), on a
// path that drops ike: the sending phase's bound comes before ike's retries could leave.
// It is called dropped on the attempts that left, and its detail says how few, that loss is
// not ruled out, and what to do.
func TestSchedCutShortSaysSo(t *testing.T) {
	n := fakeNet(2*time.Millisecond, func(id probe.ID, reverse bool, _ int, f *probetest.Fate) {
		f.Drop = !reverse && id == probe.IKE
	})
	n.Pace = 1
	rep, _, err := fakeCheck(context.Background(), t, n, probe.CheckConfig{Timeout: 2 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	a := attempts(n, probe.IKE, false)
	if len(a) == 0 || len(a) >= probe.CheckAttempts {
		t.Fatalf("ike left %d time(s): the test needs fewer than %d and at least one (sends: %v)", len(a), probe.CheckAttempts, n.Sends())
	}
	for _, r := range rep.Results {
		if r.Probe != string(probe.IKE) || r.Direction != report.Forward {
			continue
		}
		want := fmt.Sprintf("silently drops it (only %d of %d attempts left before the run's time ran out, so loss is not ruled out; raise --timeout);", len(a), probe.CheckAttempts)
		if r.Verdict != report.Dropped || !strings.Contains(r.Detail, want) {
			t.Errorf("ike: %s: %q, want dropped with %q", r.Verdict, r.Detail, want)
		}
	}
}

// The clause goes after the claim, outside its parentheses, in either direction; a probe
// with all its attempts, or not dropped, is left as it was.
func TestCutShortDetail(t *testing.T) {
	silent := func(dir report.Direction, n int, cut bool) []probe.Outcome {
		o := probe.Outcome{Probe: probe.ESP, Direction: dir, Observed: true, Cut: cut, Attempts: make([]probe.Attempt, n)}
		return []probe.Outcome{o}
	}
	for _, c := range []struct {
		dir  report.Direction
		n    int
		cut  bool
		want string
	}{
		{report.Forward, 1, true, "silently drops it (only 1 of 3 attempts left before the run's time ran out, so loss is not ruled out; raise --timeout); "},
		{report.Reverse, 2, true, "no reset) (the agent sent only 2 of 3 attempts before the run's time ran out, so loss is not ruled out; raise --timeout); "},
		{report.Forward, 3, true, ""},
		{report.Forward, 1, false, ""},
	} {
		r := probe.Judge(silent(c.dir, c.n, c.cut))[0]
		if r.Verdict != report.Dropped {
			t.Fatalf("%+v: %s: %s", c, r.Verdict, r.Detail)
		}
		if c.want == "" && strings.Contains(r.Detail, "only") || c.want != "" && !strings.Contains(r.Detail, c.want) {
			t.Errorf("%s %d attempt(s), cut %v: %q, want %q", c.dir, c.n, c.cut, r.Detail, c.want)
		}
	}
}
