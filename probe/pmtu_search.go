package probe

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"net/netip"
	"sync"
	"time"

	"github.com/ipsecpath/ipsecpath/pmtu"
	"github.com/ipsecpath/ipsecpath/report"
)

// PathMTUSearch is one direction's path MTU search with its sockets open: Run measures (once),
// Close releases what it holds. Close may be called more than once, before or after Run.
type PathMTUSearch interface {
	Run(ctx context.Context) (*pmtu.Result, error)
	Close() error
}

// PathMTUOptions says whether a check measures the path MTU, and within what time.
type PathMTUOptions struct {
	// Enabled runs the pmtu probe: the search toward the target (DF echoes, a black hole
	// localised by TTL) and, with an agent that can send, the one back (the agent's DF
	// echoes over the check's control session, the far side's ICMP seen by the agent's
	// capture). Off, the pmtu probe is reported skipped.
	Enabled bool
	// Budget bounds each search's time (0: pmtu.DefaultBudget). The searches run beside the
	// other probes and are bounded by it, not by the check's Timeout.
	Budget time.Duration
}

// PMTUSearch is a PathMTUSearch: pmtu.Discover with one prober, in one direction.
type PMTUSearch struct {
	Direction report.Direction
	// Options bounds the search (Logf gets its progress). A ctx deadline in Run lowers
	// Budget to the time left.
	Options pmtu.Options
	prober  pmtu.Prober
	release func() error
	once    sync.Once
	err     error
}

// Run searches. On an error the Result holds what was measured so far (nil when nothing
// was); on the way back, "no answer" says that the agent's echoes did not reach us.
func (s *PMTUSearch) Run(ctx context.Context) (*pmtu.Result, error) {
	o := s.Options
	if d, ok := ctx.Deadline(); ok {
		o.Budget = min(time.Until(d), cmp.Or(o.Budget, pmtu.DefaultBudget))
	}
	res, err := pmtu.Discover(ctx, s.prober, o)
	if s.Direction == report.Reverse && errors.Is(err, pmtu.ErrNoAnswer) {
		err = &reverseNoAnswer{min: cmp.Or(o.Min, pmtu.DefaultMin), err: err}
	}
	return res, err
}

// Close releases the search's sockets (and, for the pmtu command's agent searches, the
// agent session); the first call's error is returned every time.
func (s *PMTUSearch) Close() error {
	s.once.Do(func() {
		if s.release != nil {
			s.err = s.release()
		}
	})
	return s.err
}

// reverseNoAnswer is pmtu.ErrNoAnswer said the right way round for the reverse search: the
// probes are the agent's, and they did not reach us.
type reverseNoAnswer struct {
	min int
	err error
}

func (e *reverseNoAnswer) Error() string {
	return fmt.Sprintf("none of the agent's smallest DF echoes (%d bytes) arrived here: ICMP echo filtered on the way back, or no route toward us", e.min)
}

func (e *reverseNoAnswer) Unwrap() error { return e.err }

// settleSearch turns what a check's search returned into its outcome: a search cut short
// after sizes passed keeps what passed, marked unfinished (Exact false, Stopped saying so),
// and is no error; one that found nothing is an error.
func settleSearch(res *pmtu.Result, err error) (*pmtu.Result, error) {
	if res == nil || res.MTU == 0 {
		if err == nil {
			err = errors.New("no size came back")
		}
		return nil, err
	}
	if err != nil && res.Blackhole == nil && res.Exact {
		res.Exact = false
		res.Stopped = fmt.Sprintf("cut short after %d probe(s)", res.Probes)
	}
	return res, nil
}

// PMTUConfig is what 'ipsecpath pmtu' measures: the path toward Target, and with an agent
// the path back too.
type PMTUConfig struct {
	Target netip.Addr
	// Proto is the forward probe: "icmp" (echo), "tcp" (data segments to Port) or "udp"
	// (UDP 4500 datagrams; needs an agent).
	Proto string
	Port  int
	// Agent and KeyFile name the far-end agent ("": none): it confirms what arrived and sends
	// the reverse probes.
	Agent, KeyFile string
	// Options bounds both searches (Logf is set per search).
	Options pmtu.Options
	// KeepMax keeps Options.Max as given; otherwise a search without an agent lowers it to
	// our own interface's MTU, the first limit.
	KeepMax bool
}
