package probetest

import (
	"sort"
	"sync"
	"time"
)

// Clock is a fake clock for probe's check scheduler. Time passes only when nothing of the
// run is working: every goroutine the run started with Go has returned, and the run waits
// on After (or Sleep). Then the clock jumps to the earliest timer, running the hooks set
// with At on the way. A run on it is deterministic and takes microseconds, whatever the
// timeouts; and nothing can happen "too early" by scheduling luck, as it can with sleeps.
//
// After and Sleep are for the goroutine that runs the check (the one not started with Go);
// a goroutine started with Go waits with Wait instead, which gives up its turn while it
// waits (with Sleep it would keep the clock from ever moving).
type Clock struct {
	mu     sync.Mutex
	now    time.Time
	busy   int // goroutines started with Go and not yet returned
	timers []timer
	hooks  []hook
	seq    int
}

type timer struct {
	at     time.Time
	seq    int
	ch     chan time.Time
	resume bool // a Wait: its goroutine counts as working again from when it fires
}

type hook struct {
	at  time.Time
	seq int
	f   func()
}

// NewClock returns a clock that reads start.
func NewClock(start time.Time) *Clock { return &Clock{now: start} }

// Now returns the fake time.
func (c *Clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

// After returns a channel that gets the time once the clock reaches now+d.
func (c *Clock) After(d time.Duration) <-chan time.Time {
	ch := make(chan time.Time, 1)
	c.mu.Lock()
	c.seq++
	c.timers = append(c.timers, timer{at: c.now.Add(max(d, 0)), seq: c.seq, ch: ch})
	c.mu.Unlock()
	c.advance()
	return ch
}

// Join waits for the goroutines counted in wg, from the check's own goroutine: the clock
// moves on meanwhile as they wait on it.
func (c *Clock) Join(wg *sync.WaitGroup) {
	done := make(chan struct{})
	go func() { wg.Wait(); close(done) }()
	for {
		select {
		case <-done:
			return
		case <-time.After(20 * time.Microsecond): // real time: let the goroutines work
			c.advance()
		}
	}
}

// Sleep waits until the clock has moved d on.
func (c *Clock) Sleep(d time.Duration) { <-c.After(d) }

// Wait is Sleep for a goroutine started with Go: the clock may move while it waits.
func (c *Clock) Wait(d time.Duration) {
	ch := make(chan time.Time, 1)
	c.mu.Lock()
	c.seq++
	c.busy--
	c.timers = append(c.timers, timer{at: c.now.Add(max(d, 0)), seq: c.seq, ch: ch, resume: true})
	c.mu.Unlock()
	c.advance()
	<-ch
}

// Go runs f on a new goroutine, counted: the clock stands still until it returns.
func (c *Clock) Go(f func()) {
	c.mu.Lock()
	c.busy++
	c.mu.Unlock()
	go func() {
		defer func() {
			c.mu.Lock()
			c.busy--
			c.mu.Unlock()
			c.advance()
		}()
		f()
	}()
}

// At runs f when the clock reaches t (on the goroutine that moves the clock; f must not
// wait on the clock).
func (c *Clock) At(t time.Time, f func()) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.seq++
	c.hooks = append(c.hooks, hook{at: t, seq: c.seq, f: f})
}

// advance moves the clock to the earliest timer when nothing is working, running the hooks
// due on the way, and fires every timer due.
func (c *Clock) advance() {
	c.mu.Lock()
	if c.busy > 0 || len(c.timers) == 0 {
		c.mu.Unlock()
		return
	}
	sort.Slice(c.timers, func(i, j int) bool {
		if !c.timers[i].at.Equal(c.timers[j].at) {
			return c.timers[i].at.Before(c.timers[j].at)
		}
		return c.timers[i].seq < c.timers[j].seq
	})
	next := c.timers[0].at
	sort.Slice(c.hooks, func(i, j int) bool {
		if !c.hooks[i].at.Equal(c.hooks[j].at) {
			return c.hooks[i].at.Before(c.hooks[j].at)
		}
		return c.hooks[i].seq < c.hooks[j].seq
	})
	var due []hook
	for len(c.hooks) > 0 && !c.hooks[0].at.After(next) {
		due = append(due, c.hooks[0])
		c.hooks = c.hooks[1:]
	}
	c.mu.Unlock()
	for _, h := range due {
		c.mu.Lock()
		if h.at.After(c.now) {
			c.now = h.at
		}
		c.mu.Unlock()
		h.f()
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if next.After(c.now) {
		c.now = next
	}
	kept := c.timers[:0]
	for _, t := range c.timers {
		if t.at.After(c.now) {
			kept = append(kept, t)
			continue
		}
		if t.resume {
			c.busy++ // before the clock can move again
		}
		t.ch <- c.now
	}
	c.timers = kept
}
