package probe

import (
	"testing"
	"time"
)

// An answer the capture delivers before the sender recorded when its attempt left gets its
// round trip from that departure, not from when the attempt was prepared: a reset that came
// back 0.3 ms after the SYN left, which waited 170 ms in the batch's pacing, is a 0.3 ms
// round trip, in the evidence and in the run's estimate.
func TestAnswerBeforeDepartureRecorded(t *testing.T) {
	t0 := time.Date(2026, 11, 30, 2, 0, 0, 0, time.UTC)
	r := &checkRun{}
	p := &pending{out: &Outcome{}, sentAt: []time.Time{t0}, onWire: []bool{false}}
	left := t0.Add(170 * time.Millisecond)
	r.answerRTT(attemptRef{p: p, attempt: 0}, Reply{Kind: AnswerRST}, left.Add(300*time.Microsecond))
	if r.rtt.n != 0 {
		t.Fatalf("sampled before the departure was known: %d sample(s), srtt %v", r.rtt.n, r.rtt.srtt)
	}
	p.sentAt[0], p.onWire[0] = left, true
	r.stampAnswers(p, 0)
	if got := p.out.Replies[0].RTT; got != 300*time.Microsecond {
		t.Errorf("reply RTT %v, want 300µs", got)
	}
	if r.rtt.n != 1 || r.rtt.srtt != 300*time.Microsecond {
		t.Errorf("estimate: %d sample(s), srtt %v; want 1, 300µs", r.rtt.n, r.rtt.srtt)
	}
	if len(p.early) != 0 {
		t.Errorf("%d early answer(s) left after stamping", len(p.early))
	}
	// Once the departure is known, an answer is measured at once.
	r.answerRTT(attemptRef{p: p, attempt: 0}, Reply{Kind: AnswerRST}, left.Add(time.Millisecond))
	if got := p.out.Replies[1].RTT; got != time.Millisecond || r.rtt.n != 2 {
		t.Errorf("second reply RTT %v with %d samples, want 1ms and 2", got, r.rtt.n)
	}
}
