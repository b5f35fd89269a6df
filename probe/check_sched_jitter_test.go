package probe_test

import (
	"context"
	"math/rand"
	"testing"
	"time"

	"github.com/ipsecpath/ipsecpath/probe"
	"github.com/ipsecpath/ipsecpath/probe/probetest"
	"github.com/ipsecpath/ipsecpath/report"
)

// TestSchedSlowJitteryPathOneRequestAtATime is TestSchedSlowJitteryPath with the agent
// session as the real one is: one request at a time, an announce costing a round trip like
// any other. No probe may be called dropped that never left, and none that arrived.
func TestSchedSlowJitteryPathOneRequestAtATime(t *testing.T) {
	for seed := int64(1); seed <= 5; seed++ {
		rng := rand.New(rand.NewSource(seed))
		jitter := func() time.Duration {
			return 200*time.Millisecond + time.Duration(rng.Int63n(int64(200*time.Millisecond)))
		}
		n := fakeNet(0, func(_ probe.ID, _ bool, _ int, f *probetest.Fate) { f.RTT = jitter() })
		n.CtlRTT = jitter
		rep, took, err := fakeCheck(context.Background(), t, n, probe.CheckConfig{})
		if err != nil {
			t.Fatalf("seed %d: %v", seed, err)
		}
		for _, r := range rep.Results {
			if r.Verdict == report.Pass {
				continue
			}
			sent := 0
			for _, s := range n.Sends() {
				if string(s.ID) == r.Probe && s.Reverse == (r.Direction == report.Reverse) {
					sent++
				}
			}
			t.Errorf("seed %d (run %v): %s %s: %s after %d attempt(s) on the wire: %s", seed, took, r.Probe, r.Direction, r.Verdict, sent, r.Detail)
		}
	}
}
