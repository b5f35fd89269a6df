package probe

import "time"

// How long a trace waits. Copies beyond the break never answer, so "every copy answered"
// (settled) never comes on a failing path, and a trace used to wait its whole timeout. It
// now ends once every copy sent is answered or past its own deadline for silence:
//
//	deadline = when the copy left, on our clock (reverse: the agent's send time, converted
//	           as late as it can have been, reverseLeft) + W, + agentPollInterval when its
//	           answer is read from the agent's report (a reverse copy's time-exceeded, a
//	           forward copy's arrival), before which that report cannot say anything
//	W        = the check's window (check_rto.go) over the path's round trips: the run's
//	           (within a check) and the trace's own full-path samples (the far end's echo
//	           replies, the agent's report requests), and, when the hops' time-exceeded come
//	           back slower than that (a router answers from its control plane), the window
//	           of those; within [minSilenceWindow, timeout]
//
// Only round trips of the whole path let a trace end early: a trace that measured only
// the hops before the break (no echo reply, no agent) waits as before. The old bounds stay
// the ceiling: timeout after the first send, at least timeout/2 after the last (within a
// check, strictly timeout after the first). The run's last look (our capture, the agent's
// report) still comes after the end.

// traceRTT is what a trace knows of the round trips.
type traceRTT struct {
	// path: round trips of the whole path (the run's, echo replies, agent reports).
	path rttEstimator
	// hops: time-exceeded round trips (hops before the far end).
	hops rttEstimator
}

// window is W for a trace whose timeout is t, and whether the path was measured at all
// (without that, W is t and the trace does not end early).
func (e *traceRTT) window(t time.Duration) (time.Duration, bool) {
	if e.path.n == 0 {
		return t, false
	}
	w := e.path.window(t)
	if e.hops.n > 0 {
		w = max(w, e.hops.window(t))
	}
	return w, true
}

// answered reports whether copy c of walk w has its answer: time-exceeded, another ICMP
// error, arrival whole, or (one-ended) the far end's answer for a TTL at or past the far
// end. The caller holds t.mu.
func (t *tracer) answered(w *walk, c *ttlCopy) bool {
	if c.teFrom.IsValid() || c.err != nil || (c.farEnd && c.complete()) {
		return true
	}
	// One-ended, every copy carries the same nonce: an answer of the far end names
	// no TTL, but copies at or past the far end's TTL (a reference's) are answered.
	answered := w.answered || (t.r.agent == nil && w.rstTTL != 0 && w.rstTTL == t.echoTTL[0])
	f := t.farEnd[dir(w.reverse)]
	return answered && f > 0 && c.ttl >= f
}

// silentAt is when copy c, still without its answer, is silent for a window win: see the
// top of this file. Zero: not known yet (a reverse copy whose send time is not converted).
// The caller holds t.mu.
func (t *tracer) silentAt(c *ttlCopy, win time.Duration) time.Time {
	left := c.sent
	if c.w.reverse {
		left = c.left
	}
	if left.IsZero() {
		return time.Time{}
	}
	if c.w.reverse || t.r.agent != nil {
		win += agentPollInterval
	}
	return left.Add(win)
}

// quiet reports whether, the sending over, every copy sent has its answer or is past its
// deadline for silence at now: waiting longer can bring nothing due.
func (t *tracer) quiet(now time.Time) bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	win, measured := t.rtt.window(t.timeout)
	if !measured {
		return false
	}
	for _, w := range t.walks {
		for _, c := range w.copies {
			if c.sent.IsZero() || t.answered(w, c) {
				continue
			}
			if at := t.silentAt(c, win); at.IsZero() || now.Before(at) {
				return false
			}
		}
	}
	return true
}

// pathSample adds a round trip of the whole path; hopSample one to a hop. The caller holds t.mu.
func (t *tracer) pathSample(d time.Duration) { t.rtt.path.sample(d) }
func (t *tracer) hopSample(d time.Duration)  { t.rtt.hops.sample(d) }
