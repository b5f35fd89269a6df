package probe

import "time"

// The deadline for silence. A probe without an answer is sent again when its last attempt
// is overdue, and called silent (dropped, unless an attempt arrives later in the run) when
// its deadline passes. Both follow what the run measures, as TCP's retransmission timer
// does (RFC 6298), instead of always waiting the whole --timeout:
//
//	RTO = SRTT + 4·RTTVAR, over the round trips of this run: our probes' answers (echo
//	      replies, IKE answers, SYN-ACKs and resets, each matched to its attempt by its own
//	      nonce, so no sample is ambiguous as a retransmitted TCP segment's is), and the
//	      agent's report requests, which cross the same path
//	W   = 4·RTO, at least minSilenceWindow, at most T (--timeout); T until a sample exists
//
// W plays the part T played: an attempt is sent again W/4 after the previous one, and no
// sooner than its answer can be known here: an RTO, our loop's tick, and with an agent its
// poll interval (its report is what says a probe arrived). A retry sent before the first
// attempt could be known to have arrived would turn a slow answer into "lost in 1 of 2
// attempts". Without a sample, T/4 as before. A probe is silent once W has passed since
// its first attempt and W/2 since its last, counted from when each attempt actually left
// (a long paced sequence gives its last probes their full time); the run's last look
// (a last report of the agent) comes after that. A path whose answers come back within
// milliseconds thus ends a failing run after minSilenceWindow instead of T, and a slow,
// jittery one (300 ± 100 ms) waits its measured RTO per attempt, so its probes are never
// called dropped before their answers could be back.
const (
	// minSilenceWindow is the floor of W: the last attempt waits at least half of it, far
	// above the scheduling and capture delays of a loaded host.
	minSilenceWindow = 500 * time.Millisecond
	// rttAlpha and rttBeta are RFC 6298's gains (1/8, 1/4), as shifts.
	rttAlphaShift = 3
	rttBetaShift  = 2
)

// rttEstimator is RFC 6298's smoothed round trip and its variation.
type rttEstimator struct {
	srtt, rttvar time.Duration
	n            int // samples
}

// sample adds one measured round trip (RFC 6298 2.2, 2.3).
func (e *rttEstimator) sample(d time.Duration) {
	if d < 0 {
		return
	}
	if e.n == 0 {
		e.srtt, e.rttvar = d, d/2
	} else {
		diff := e.srtt - d
		if diff < 0 {
			diff = -diff
		}
		e.rttvar += (diff - e.rttvar) >> rttBetaShift
		e.srtt += (d - e.srtt) >> rttAlphaShift
	}
	e.n++
}

// rto is RFC 6298's retransmission timeout, unbounded.
func (e *rttEstimator) rto() time.Duration { return e.srtt + 4*e.rttvar }

// window is W for a run whose timeout is t.
func (e *rttEstimator) window(t time.Duration) time.Duration {
	if e.n == 0 {
		return t
	}
	return min(max(4*e.rto(), minSilenceWindow), t)
}

// retryGap is how long after an attempt the next one goes (see the top of this file). The
// caller holds r.mu.
func (r *checkRun) retryGap() time.Duration {
	w := r.rtt.window(r.timeout)
	if r.rtt.n == 0 {
		return w / 4
	}
	learn := r.rtt.rto() + checkCollectInterval
	if r.agent != nil {
		learn += agentPollInterval
	}
	return max(w/4, learn)
}

// rttSample adds a round trip to the run's estimate. The caller holds r.mu.
func (r *checkRun) rttSample(d time.Duration) { r.rtt.sample(d) }

// queue marks ps as handed to a sender: not retried, and not silent, until it returns.
func (r *checkRun) queue(ps []*pending) {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, p := range ps {
		p.queued = true
	}
}

// unqueue marks ps as back from their sender. The caller holds r.mu.
func unqueue(ps []*pending) {
	for _, p := range ps {
		p.queued = false
	}
}

// due returns the probes to send again now: without an answer, retryGap after their last attempt,
// fewer than CheckAttempts sent. Not the reverse UDP burst (never retried, see the
// timeline), nor a probe that drew an ICMP error or a reset (a refusal is not loss: it is
// settled, not retried). The probes returned are queued.
func (r *checkRun) due(now time.Time) (fwd, rev []*pending) {
	r.mu.Lock()
	defer r.mu.Unlock()
	gap := r.retryGap()
	for _, p := range r.list {
		if p.decided || p.queued || !p.retryable() || now.Before(p.sentAt[len(p.sentAt)-1].Add(gap)) {
			continue
		}
		p.queued = true
		if p.reverse {
			rev = append(rev, p)
		} else {
			fwd = append(fwd, p)
		}
	}
	return fwd, rev
}

// retryable reports whether p, without an answer, has left but fewer than CheckAttempts
// times and may be sent again (not the reverse UDP burst, nor a path MTU search). The
// caller holds r.mu.
func (p *pending) retryable() bool {
	n := len(p.sentAt)
	return !p.noReplay && p.out.Probe != PMTU && n > 0 && n < CheckAttempts && p.answeredAt.IsZero()
}

// retriesLeft reports whether a probe still waits for a retry, or for one on its way: after
// T the sending phase stays open for them, up to its bound (sendingBound).
func (r *checkRun) retriesLeft() bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, p := range r.list {
		if !p.decided && p.retryable() {
			return true
		}
	}
	return false
}

// shortOfTime marks the probes the run's time ran out on: left fewer than CheckAttempts
// times, without an answer, where a retry was due. Their verdict says that it rests on
// fewer attempts (Outcome.Cut).
func (r *checkRun) shortOfTime() {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, p := range r.list {
		if p.out.Err == nil && p.out.Skip == "" && p.retryable() {
			p.out.Cut = true
		}
	}
}

// silent reports whether every probe still without an answer has passed its deadline (the
// path MTU searches aside: they have their own bounds). While sending, a probe that can
// still be sent again is not silent yet.
func (r *checkRun) silent(now time.Time, sending bool) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	w := r.rtt.window(r.timeout)
	for _, p := range r.list {
		if p.decided || p.out.Probe == PMTU {
			continue
		}
		n := len(p.sentAt)
		if p.queued || (sending && n == 0) {
			return false
		}
		if n == 0 {
			continue // never sent (the senders stopped): nothing to wait for
		}
		final := !sending || n >= CheckAttempts || p.noReplay || !p.answeredAt.IsZero()
		if !final || now.Before(p.sentAt[0].Add(w)) || now.Before(p.sentAt[n-1].Add(w/2)) {
			return false
		}
	}
	return true
}
