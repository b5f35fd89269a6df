package probe

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/ipsecpath/ipsecpath/pmtu"
	"github.com/ipsecpath/ipsecpath/report"
)

// cutProber passes sizes up to mtu and, for the first larger one, ends the search's context
// (the run was interrupted mid-search) and returns its error.
type cutProber struct {
	mtu    int
	cancel context.CancelFunc
}

func (p *cutProber) Probe(ctx context.Context, r pmtu.Request) (pmtu.Reply, error) {
	if r.Size <= p.mtu {
		return pmtu.Reply{Outcome: pmtu.Arrived, RTT: time.Millisecond}, nil
	}
	p.cancel()
	return pmtu.Reply{}, ctx.Err()
}

// silentProber answers nothing.
type silentProber struct{}

func (silentProber) Probe(context.Context, pmtu.Request) (pmtu.Reply, error) {
	return pmtu.Reply{Outcome: pmtu.Timeout}, nil
}

// TestPMTUSearchUnfinished: a check's search cut short after sizes passed is reported with
// what passed, marked unfinished, and claims no signal (issue 9.2); one cut before anything
// came back is an error the verdict turns into a sentence. Close releases once, however
// often it is called.
func TestPMTUSearchUnfinished(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	released := 0
	s := &PMTUSearch{Direction: report.Reverse, prober: &cutProber{mtu: 1300, cancel: cancel}, release: func() error { released++; return nil }}
	res, err := settleSearch(s.Run(ctx))
	s.Close()
	s.Close()
	if err != nil || res == nil {
		t.Fatalf("search: %+v, %v", res, err)
	}
	m := res.PathMTU()
	if m.MTU < 576 || m.MTU > 1300 || m.Unfinished == "" || m.Signalled || m.Blackhole || released != 1 {
		t.Errorf("cut search: %+v (released %d times), want at most 1300, unfinished, no signal, no black hole, released once", m, released)
	}
	r := Judge([]Outcome{{Probe: PMTU, Direction: report.Reverse, Search: res}})[0]
	if r.Verdict != report.Error || !strings.Contains(r.Detail, "unfinished") || strings.Contains(r.Detail, "narrow link") {
		t.Errorf("row %s: %s", r.Verdict, r.Detail)
	}

	// Nothing came back: an error, and on the way back it says whose echoes did not arrive.
	s = &PMTUSearch{Direction: report.Reverse, prober: silentProber{}, Options: pmtu.Options{Timeout: time.Millisecond}}
	res, err = settleSearch(s.Run(context.Background()))
	if res != nil || !errors.Is(err, pmtu.ErrNoAnswer) || !strings.Contains(err.Error(), "none of the agent's smallest DF echoes (576 bytes) arrived here") {
		t.Errorf("silent reverse search: %+v, %v", res, err)
	}
}
