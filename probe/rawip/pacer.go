// Package rawip puts hand-built IPv4 packets on the wire, header included, through a raw
// socket (Linux only), paced per destination so no target sees more than the rate asked for.
package rawip

import (
	"context"
	"fmt"
	"net/netip"
	"sync"
	"time"
)

// Pacing defaults (DESIGN.md: at most 100 packets/s per target unless the user says otherwise).
const (
	// DefaultRate is how many packets per second go toward one destination, fragments
	// counted one by one.
	DefaultRate = 100
	// DefaultBurst is how many packets may leave back to back after a pause: enough for the
	// fragments of one icmp-large probe, so the fragments of a datagram travel together.
	DefaultBurst = 5
	// MaxRate bounds what a caller may ask for.
	MaxRate = 100000
	// maxPaced is how many destinations a Pacer remembers; past it (a long-running agent)
	// it forgets them all, which only ever lets packets go sooner by at most one burst.
	maxPaced = 4096
)

// Clock is the time a Pacer reads and waits on: the system clock unless a test injects its
// own.
type Clock interface {
	Now() time.Time
	// Sleep returns after d, or with ctx.Err() as soon as ctx ends.
	Sleep(ctx context.Context, d time.Duration) error
}

// Pacer is a token bucket per destination in GCRA form: for each destination, tat is the
// theoretical arrival time of its next packet; each packet moves it one interval on, and
// a reservation may go once tat is at most burst intervals ahead of now. After an idle
// spell a burst goes back to back, and over any longer stretch the rate holds. Safe for
// concurrent use.
type Pacer struct {
	interval time.Duration
	burst    int
	clock    Clock

	mu  sync.Mutex
	tat map[netip.Addr]time.Time
}

// NewPacer returns a pacer of rate packets per second per destination (0: DefaultRate,
// at most MaxRate) letting burst packets go back to back (0 or less: DefaultBurst). A nil
// clock is the system clock.
func NewPacer(rate float64, burst int, clock Clock) (*Pacer, error) {
	if rate == 0 {
		rate = DefaultRate
	}
	if !(rate > 0 && rate <= MaxRate) { // also refuses NaN
		return nil, fmt.Errorf("send rate %g packets/s: want 0–%d", rate, MaxRate)
	}
	if burst <= 0 {
		burst = DefaultBurst
	}
	if clock == nil {
		clock = newSystemClock()
	}
	return &Pacer{interval: time.Duration(float64(time.Second) / rate), burst: burst, clock: clock,
		tat: map[netip.Addr]time.Time{}}, nil
}

// reserve books n packets toward dst at now and returns when they may go (back to back):
// now or earlier means at once.
func (p *Pacer) reserve(now time.Time, dst netip.Addr, n int) time.Time {
	p.mu.Lock()
	defer p.mu.Unlock()
	tat, ok := p.tat[dst]
	if !ok && len(p.tat) >= maxPaced {
		clear(p.tat)
	}
	if tat.Before(now) {
		tat = now
	}
	tat = tat.Add(time.Duration(n) * p.interval)
	p.tat[dst] = tat
	return tat.Add(-time.Duration(p.burst) * p.interval)
}

// Wait books n packets toward dst and returns when they may go, or with ctx.Err() if ctx
// ends first (the booking stands: a cancelled caller sends nothing, so the next one waits
// at most one reservation longer than it had to).
func (p *Pacer) Wait(ctx context.Context, dst netip.Addr, n int) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	now := p.clock.Now()
	d := p.reserve(now, dst, n).Sub(now)
	if d <= 0 {
		return nil
	}
	return p.clock.Sleep(ctx, d)
}

// systemClock is time.Now, and sleeps on pooled timers so a paced send allocates nothing.
type systemClock struct{ timers sync.Pool }

func newSystemClock() *systemClock {
	c := &systemClock{}
	c.timers.New = func() any {
		t := time.NewTimer(time.Hour)
		t.Stop()
		return t
	}
	return c
}

func (*systemClock) Now() time.Time { return time.Now() }

func (c *systemClock) Sleep(ctx context.Context, d time.Duration) error {
	t := c.timers.Get().(*time.Timer)
	defer c.timers.Put(t)
	t.Reset(d)
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		t.Stop()
		return ctx.Err()
	}
}
