package probe

import (
	"context"
	"net"
	"net/netip"
	"sync"
	"time"
)

// What a check runs on. The scheduler (check.go) reaches the network only through three
// small interfaces and a clock, so that it can be run without root on the fakes of
// probe/probetest (a network that delivers or drops each probe per direction, with round
// trip times, driven by a fake clock) and tested in milliseconds. The methods use only
// exported types, so a fake in another package satisfies them; the tests reach the
// unexported seam through export_test.go (package probe_test), which lets probetest
// import probe without an import cycle.

// checkSender puts our forward probes on the wire: *Sender.
type checkSender interface {
	// SendStamped sends every packet of p, paced, and returns when the first left.
	SendStamped(ctx context.Context, p *Packets) (time.Time, error)
	Close() error
}

// checkObserver is one capture here, of the packets from one peer: *Observer.
type checkObserver interface {
	// Drain returns what was captured since the last Drain.
	Drain() []Seen
	// Wake is signalled when something was captured (nil: never; the run polls).
	Wake() <-chan struct{}
	Close() error
}

// checkAgent is the control session with the far-end agent: *AgentClient.
type checkAgent interface {
	Hello(ctx context.Context) (*AgentHello, error)
	StartObserving(ctx context.Context) error
	// Report returns everything captured since StartObserving.
	Report(ctx context.Context) (*AgentReport, error)
	SendReverse(ctx context.Context, probes []ReverseProbe, pace int) ([]ReverseResult, error)
	Announce(ctx context.Context, ipids ...uint16) error
	Stop(ctx context.Context) error
	Close() error
	Clock() ClockEstimate
}

// schedClock is the run's time source. Go starts a goroutine of the run, and Join waits
// for those counted in wg: the real clock just starts it and waits; a fake clock counts
// them, and lets time pass only when every goroutine it started has returned or waits on
// it and the run waits on After or in Join, so a fake run is deterministic.
type schedClock interface {
	Now() time.Time
	After(d time.Duration) <-chan time.Time
	Go(f func())
	Join(wg *sync.WaitGroup)
}

// checkEnv opens what a check runs on. Check uses realEnv; the fields are exported so that
// the tests of package probe_test can fill one (export_test.go).
type checkEnv struct {
	Clock schedClock
	// Source returns our address toward target.
	Source func(target netip.Addr) (netip.Addr, error)
	// Dial connects to the agent; local is our end of the control connection.
	Dial func(ctx context.Context, addr string, key []byte) (a checkAgent, local net.Addr, err error)
	// OpenSender opens the forward sender, paced at rate packets per second (0: DefaultRate).
	OpenSender func(rate float64) (checkSender, error)
	// Observe starts a capture of what peer sends us, keeping snap bytes of each packet.
	Observe func(ctx context.Context, peer netip.Addr, snap int) (checkObserver, error)
}

// wallClock is the wall clock.
type wallClock struct{}

func (wallClock) Now() time.Time                         { return time.Now() }
func (wallClock) After(d time.Duration) <-chan time.Time { return time.After(d) }
func (wallClock) Go(f func())                            { go f() }
func (wallClock) Join(wg *sync.WaitGroup)                { wg.Wait() }

// realEnv is the raw sockets, the captures and the agent's control session.
func realEnv() checkEnv {
	return checkEnv{
		Clock:  wallClock{},
		Source: SourceFor,
		Dial: func(ctx context.Context, addr string, key []byte) (checkAgent, net.Addr, error) {
			a, err := DialAgent(ctx, addr, key)
			if err != nil {
				return nil, nil, err
			}
			return a, a.conn.LocalAddr(), nil
		},
		OpenSender: func(rate float64) (checkSender, error) {
			s, err := OpenSender(SenderConfig{Rate: rate})
			if err != nil {
				return nil, err
			}
			return s, nil
		},
		Observe: func(ctx context.Context, peer netip.Addr, snap int) (checkObserver, error) {
			o, err := Observe(ctx, ObserverConfig{Peer: peer, Snap: snap})
			if err != nil {
				return nil, err
			}
			return o, nil
		},
	}
}
