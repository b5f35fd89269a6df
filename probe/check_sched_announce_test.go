package probe_test

import (
	"context"
	"testing"
	"time"

	"github.com/ipsecpath/ipsecpath/probe"
	"github.com/ipsecpath/ipsecpath/probe/probetest"
	"github.com/ipsecpath/ipsecpath/report"
)

// The IP IDs of a fragmented probe's retries go to the agent with its first attempt's, in
// the one announce before the forward pass: a retry waits on no announce request of its own
// (one request at a time on the session, behind report polls and reverse requests), and the
// agent keeps the retry's non-first fragments because their IP ID was announced. The fake
// agent, like the real one, reports no non-first fragment whose IP ID it was not told.
func TestSchedRetriesAnnouncedWithFirstAttempt(t *testing.T) {
	n := fakeNet(2*time.Millisecond, func(id probe.ID, reverse bool, attempt int, f *probetest.Fate) {
		// The first attempt of each forward fragmented probe is lost whole; the retries arrive.
		f.Drop = !reverse && attempt == 0 && id.Fragmented()
	})
	n.CtlRTT = func() time.Duration { return 20 * time.Millisecond }
	rep, _, err := fakeCheck(context.Background(), t, n, probe.CheckConfig{Timeout: 2 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	frag := 0
	for _, r := range rep.Results {
		if r.Direction != report.Forward || !probe.ID(r.Probe).Fragmented() {
			continue
		}
		frag++
		if r.Verdict != report.Pass {
			t.Errorf("%s: first attempt lost, the retries arrived: want pass (loss), got %s: %s", r.Probe, r.Verdict, r.Detail)
		}
		if a := attempts(n, probe.ID(r.Probe), false); len(a) < 2 {
			t.Errorf("%s: %d attempt(s) left, want a retry", r.Probe, len(a))
		}
	}
	if frag == 0 {
		t.Fatal("no forward fragmented probe in the run")
	}
	if got := n.Announces(); got != 1 {
		t.Errorf("%d announce requests, want 1: the retries' IP IDs go with the first attempts'", got)
	}
}
