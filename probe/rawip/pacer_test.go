package rawip

import (
	"context"
	"errors"
	"math"
	"net/netip"
	"sync"
	"testing"
	"time"
)

// fakeClock is a Clock that moves only when a Sleep asks it to (at once, by the asked
// duration) or, with block set, never: a Sleep then waits for its ctx.
type fakeClock struct {
	mu     sync.Mutex
	now    time.Time
	slept  []time.Duration
	block  bool
	asleep chan struct{} // receives when a blocking Sleep starts
}

func newFakeClock() *fakeClock { return &fakeClock{now: time.Unix(1000, 0)} }

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *fakeClock) Sleep(ctx context.Context, d time.Duration) error {
	c.mu.Lock()
	c.slept = append(c.slept, d)
	if !c.block {
		c.now = c.now.Add(d)
		c.mu.Unlock()
		return nil
	}
	c.mu.Unlock()
	c.asleep <- struct{}{}
	<-ctx.Done()
	return ctx.Err()
}

var (
	dstA = netip.MustParseAddr("192.0.2.1")
	dstB = netip.MustParseAddr("198.51.100.1")
)

func newTestPacer(t *testing.T, rate float64, burst int) (*Pacer, *fakeClock) {
	t.Helper()
	c := newFakeClock()
	p, err := NewPacer(rate, burst, c)
	if err != nil {
		t.Fatal(err)
	}
	return p, c
}

// The pacer lets a burst go at once, then one packet per interval, and books the fragments
// of one probe together.
func TestPacerBurstThenRate(t *testing.T) {
	p, c := newTestPacer(t, 100, 5)
	now := c.Now()
	for i := 0; i < 5; i++ {
		if at := p.reserve(now, dstA, 1); at.After(now) {
			t.Fatalf("packet %d of the burst waits until +%v", i, at.Sub(now))
		}
	}
	if at := p.reserve(now, dstA, 1); at.Sub(now) != 10*time.Millisecond {
		t.Fatalf("6th packet at +%v, want +10ms", at.Sub(now))
	}
	if at := p.reserve(now, dstA, 3); at.Sub(now) != 40*time.Millisecond {
		t.Fatalf("3 fragments at +%v, want +40ms (after the 6th)", at.Sub(now))
	}
	// After an idle second the full burst is available again, no more.
	later := now.Add(time.Second)
	if at := p.reserve(later, dstA, 5); at.After(later) {
		t.Fatalf("burst after idle waits %v", at.Sub(later))
	}
	if at := p.reserve(later, dstA, 1); at.Sub(later) != 10*time.Millisecond {
		t.Fatalf("after the burst: +%v, want +10ms", at.Sub(later))
	}
}

// Over a long run Wait holds the rate: 1000 packets at 100/s with a burst of 5 take
// 9.95 s of (fake) time, and no single wait is longer than one interval.
func TestPacerWaitHoldsRate(t *testing.T) {
	p, c := newTestPacer(t, 100, 5)
	start := c.Now()
	ctx := context.Background()
	for i := 0; i < 1000; i++ {
		if err := p.Wait(ctx, dstA, 1); err != nil {
			t.Fatal(err)
		}
	}
	if d := c.Now().Sub(start); d != 9950*time.Millisecond {
		t.Errorf("1000 packets at 100/s, burst 5: took %v, want 9.95s", d)
	}
	if len(c.slept) != 995 {
		t.Errorf("%d waits, want 995 (every packet after the burst)", len(c.slept))
	}
	for i, d := range c.slept {
		if d != 10*time.Millisecond {
			t.Fatalf("wait %d: %v, want 10ms", i, d)
		}
	}
}

// Each destination has its own bucket: a destination that used up its burst does not
// delay another.
func TestPacerPerDestination(t *testing.T) {
	p, c := newTestPacer(t, 10, 2)
	now := c.Now()
	p.reserve(now, dstA, 2)
	if at := p.reserve(now, dstA, 1); at.Sub(now) != 100*time.Millisecond {
		t.Fatalf("A after its burst: +%v, want +100ms", at.Sub(now))
	}
	for i := 0; i < 2; i++ {
		if at := p.reserve(now, dstB, 1); at.After(now) {
			t.Fatalf("B packet %d waits +%v behind A's packets", i, at.Sub(now))
		}
	}
	if at := p.reserve(now, dstB, 1); at.Sub(now) != 100*time.Millisecond {
		t.Fatalf("B after its burst: +%v, want +100ms", at.Sub(now))
	}
}

// A destination count past maxPaced resets the table: the pacer never grows without
// bound, and a new destination still gets its burst.
func TestPacerForgetsIdleDestinations(t *testing.T) {
	p, c := newTestPacer(t, 100, 1)
	now := c.Now()
	for i := 0; i < maxPaced+10; i++ {
		p.reserve(now, netip.AddrFrom4([4]byte{10, byte(i >> 16), byte(i >> 8), byte(i)}), 1)
	}
	if n := len(p.tat); n > maxPaced {
		t.Fatalf("%d destinations remembered, want at most %d", n, maxPaced)
	}
}

// A wait ends with the context's error as soon as it is cancelled, and an already
// cancelled context books nothing.
func TestPacerWaitCancelled(t *testing.T) {
	p, c := newTestPacer(t, 1, 1)
	c.block = true
	c.asleep = make(chan struct{})
	ctx, cancel := context.WithCancel(context.Background())
	if err := p.Wait(ctx, dstA, 1); err != nil { // the burst: no sleep
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- p.Wait(ctx, dstA, 1) }()
	<-c.asleep // the second packet waits a second that never passes
	cancel()
	if err := <-done; !errors.Is(err, context.Canceled) {
		t.Fatalf("cancelled wait: %v", err)
	}
	if err := p.Wait(ctx, dstB, 1); !errors.Is(err, context.Canceled) {
		t.Fatalf("wait with a cancelled context: %v", err)
	}
	if _, ok := p.tat[dstB]; ok {
		t.Error("a wait with a cancelled context booked a packet")
	}
}

// Rates outside 0–MaxRate are refused; zeros mean the defaults.
func TestNewPacerLimits(t *testing.T) {
	for _, r := range []float64{-1, MaxRate + 1, math.NaN()} {
		if _, err := NewPacer(r, 0, nil); err == nil {
			t.Errorf("rate %g accepted", r)
		}
	}
	p, err := NewPacer(0, 0, nil)
	if err != nil {
		t.Fatal(err)
	}
	if p.interval != time.Second/DefaultRate || p.burst != DefaultBurst {
		t.Errorf("defaults: interval %v burst %d", p.interval, p.burst)
	}
}

// The system clock's sleep ends at once on a cancelled context.
func TestSystemClockSleepCancelled(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := newSystemClock().Sleep(ctx, time.Hour); !errors.Is(err, context.Canceled) {
		t.Fatalf("Sleep: %v", err)
	}
}
