package probe_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/ipsecpath/ipsecpath/probe"
	"github.com/ipsecpath/ipsecpath/probe/probetest"
	"github.com/ipsecpath/ipsecpath/report"
)

// A sender far slower than the pace the run planned for (one packet a second of fake
// time): the sending phase's bound runs out with forward probes still waiting. A probe
// that never left gets "error" with a sentence that says so, never a path verdict; one
// that left is judged on the attempts that left (one of one arriving is a pass), and one
// the path drops is called dropped only once its deadline for silence, counted from when
// it left, has passed.
func TestSchedNeverSentIsNotAPathVerdict(t *testing.T) {
	const T = 2 * time.Second
	n := fakeNet(2*time.Millisecond, func(id probe.ID, reverse bool, _ int, f *probetest.Fate) {
		f.Drop = !reverse && id == probe.IKE
	})
	n.Pace = 1
	rep, took, err := fakeCheck(context.Background(), t, n, probe.CheckConfig{Timeout: T})
	if err != nil {
		t.Fatal(err)
	}
	end := fakeStart.Add(took)
	sent, unsent := 0, 0
	for _, r := range rep.Results {
		if r.Direction != report.Forward {
			if r.Verdict != report.Pass {
				t.Errorf("%s reverse: %s: %s", r.Probe, r.Verdict, r.Detail)
			}
			continue
		}
		a := attempts(n, probe.ID(r.Probe), false)
		if r.Evidence.Attempts != len(a) {
			t.Errorf("%s: the report says %d attempt(s), %d left", r.Probe, r.Evidence.Attempts, len(a))
		}
		switch {
		case len(a) == 0:
			unsent++
			if r.Verdict != report.Error || !strings.Contains(r.Detail, "was not sent") || !strings.Contains(r.Detail, "says nothing about the path") {
				t.Errorf("%s never left: %s: %s", r.Probe, r.Verdict, r.Detail)
			}
			if len(r.Evidence.FragmentsSent) > 0 {
				t.Errorf("%s never left, yet the report lists fragments sent: %v", r.Probe, r.Evidence.FragmentsSent)
			}
		case r.Probe == string(probe.IKE):
			sent++
			if r.Verdict != report.Dropped {
				t.Errorf("ike left %d time(s) and the path drops it: %s: %s", len(a), r.Verdict, r.Detail)
			}
			if last := a[len(a)-1].At; end.Before(last.Add(probe.MinSilenceWindow/2)) || end.Before(a[0].At.Add(probe.MinSilenceWindow)) {
				t.Errorf("ike: run ended %s after its first attempt and %s after its last, before its deadline for silence", end.Sub(a[0].At), end.Sub(last))
			}
		default:
			sent++
			if r.Verdict != report.Pass {
				t.Errorf("%s left %d time(s) and arrived: %s: %s", r.Probe, len(a), r.Verdict, r.Detail)
			}
		}
	}
	if sent == 0 || unsent == 0 {
		t.Fatalf("%d forward probe(s) left and %d did not: the test needs both (sends: %v)", sent, unsent, n.Sends())
	}
	if len(attempts(n, probe.IKE, false)) == 0 {
		t.Errorf("ike never left: the dropped case is not tested (sends: %v)", n.Sends())
	}
}
