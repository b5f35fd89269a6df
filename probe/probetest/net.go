package probetest

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"sort"
	"sync"
	"time"

	"github.com/ipsecpath/ipsecpath/probe"
)

// Fate is what the fake path does to one attempt of one probe in one direction.
type Fate struct {
	Drop          bool          // nothing of it arrives
	DropFragments bool          // its fragments do not arrive (an unfragmented probe does)
	RTT           time.Duration // round trip of the path; each packet arrives RTT/2 after it left
}

// Send is one attempt as the fake network saw it leave.
type Send struct {
	At      time.Time
	ID      probe.ID
	Reverse bool
	Nonce   uint32
	Attempt int // 0-based, per probe and direction
}

// ErrAgentGone is what every agent request returns once the agent has vanished.
var ErrAgentGone = errors.New("agent: connection reset by peer (fake)")

// Net is a fake network between us (Local) and an agent on the target (Agent), driven by
// Clock: the sender, our captures and the agent session of one check. Each attempt of each
// probe meets the Fate that Path gives it, per direction: its packets reach the agent's
// capture (forward) or ours (reverse) RTT/2 after they left, or never. The target answers
// our unfragmented ICMP echoes (RTT after they left), so the check has round trips to
// measure, as it has on a real path; nothing else answers. Our sender paces at Pace packets
// per second (0: no pacing). Each agent request takes a round trip of CtlRTT (nil: no
// time): a report holds what the agent had captured half-way, a reverse probe leaves the
// agent half-way. From AgentGone on (zero: never) every agent request fails, as when the
// agent vanishes.
//
// The sender, the captures and the agent are the methods of Net and of what Observe and
// Dial return; they satisfy the interfaces of probe's check (probe/check_env.go).
type Net struct {
	Clock        *Clock
	Local, Agent netip.Addr
	Path         func(id probe.ID, reverse bool, attempt int) Fate
	Pace         int
	CtlRTT       func() time.Duration
	AgentGone    time.Time

	ctlFree time.Time // when the agent session's last booked request is done

	mu        sync.Mutex
	sends     []Send
	attempts  map[sendKey]int
	atAgent   []probe.Seen    // captured by the agent, At in the future until delivered
	ipids     map[uint16]bool // IP IDs announced: like the real agent, the fake keeps our non-first fragments only for these
	announces int             // announce requests taken
	atUs      []probe.Seen    // captured here
}

// ctlRTT is the round trip of the next agent request.
func (n *Net) ctlRTT() time.Duration {
	if n.CtlRTT == nil {
		return 0
	}
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.CtlRTT()
}

type sendKey struct {
	id      probe.ID
	reverse bool
}

// Sends returns every attempt sent so far, in order.
func (n *Net) Sends() []Send {
	n.mu.Lock()
	defer n.mu.Unlock()
	return append([]Send(nil), n.sends...)
}

// leave records an attempt of pk leaving now and delivers its packets (to the agent when
// forward, to us when reverse) as its Fate says. The caller holds n.mu.
func (n *Net) leave(pk *probe.Packets, reverse bool, now time.Time) {
	if n.attempts == nil {
		n.attempts = map[sendKey]int{}
	}
	k := sendKey{pk.ID, reverse}
	attempt := n.attempts[k]
	n.attempts[k]++
	n.sends = append(n.sends, Send{At: now, ID: pk.ID, Reverse: reverse, Nonce: pk.Nonce, Attempt: attempt})
	f := n.Path(pk.ID, reverse, attempt)
	if f.Drop {
		return
	}
	for _, w := range pk.Wire {
		s, ok := seenOf(w, now.Add(f.RTT/2))
		if !ok || (f.DropFragments && len(pk.Wire) > 1) {
			continue
		}
		if reverse {
			n.atUs = append(n.atUs, s)
			continue
		}
		n.atAgent = append(n.atAgent, s)
		if s.Proto == probe.ProtoICMP && len(pk.Wire) == 1 && len(s.Head) >= 8 && s.Head[0] == 8 {
			// The target answers an echo request: an echo reply, back at us after the RTT.
			r := s
			r.Src, r.Dst, r.At = s.Dst, s.Src, now.Add(f.RTT)
			r.Head = append([]byte(nil), s.Head...)
			r.Head[0] = 0
			n.atUs = append(n.atUs, r)
		}
	}
}

// seenOf is a wire packet as a capture reports it.
func seenOf(w []byte, at time.Time) (probe.Seen, bool) {
	if len(w) < 20 {
		return probe.Seen{}, false
	}
	ihl := int(w[0]&0x0f) * 4
	ff := binary.BigEndian.Uint16(w[6:8])
	s := probe.Seen{
		At: at, Src: netip.AddrFrom4([4]byte(w[12:16])), Dst: netip.AddrFrom4([4]byte(w[16:20])),
		Proto: w[9], IPID: binary.BigEndian.Uint16(w[4:6]), Offset: int(ff&0x1fff) * 8,
		More: ff&0x2000 != 0, DF: ff&0x4000 != 0, TTL: w[8], TotalLen: int(binary.BigEndian.Uint16(w[2:4])),
	}
	if s.Offset == 0 && ihl <= len(w) {
		s.Head = append([]byte(nil), w[ihl:min(len(w), ihl+probe.HeadLen)]...)
	}
	return s, true
}

// arrived moves out of *pending what has arrived by t, in arrival order.
func arrived(pending *[]probe.Seen, t time.Time, keep func(*probe.Seen) bool) []probe.Seen {
	sort.SliceStable(*pending, func(i, j int) bool { return (*pending)[i].At.Before((*pending)[j].At) })
	var out []probe.Seen
	rest := (*pending)[:0]
	for _, s := range *pending {
		if !s.At.After(t) && keep(&s) {
			out = append(out, s)
		} else {
			rest = append(rest, s)
		}
	}
	*pending = rest
	return out
}

// SendStamped sends pk forward: it leaves now and takes its packets' share of the pace.
// The check calls it from a goroutine it started with Go.
func (n *Net) SendStamped(ctx context.Context, pk *probe.Packets) (time.Time, error) {
	if err := ctx.Err(); err != nil {
		return time.Time{}, err
	}
	now := n.Clock.Now()
	n.mu.Lock()
	n.leave(pk, false, now)
	n.mu.Unlock()
	if n.Pace > 0 {
		n.Clock.Wait(time.Duration(len(pk.Wire)) * time.Second / time.Duration(n.Pace))
	}
	return now, nil
}

// Close closes the sender.
func (n *Net) Close() error { return nil }

// Source is our address toward any target.
func (n *Net) Source(netip.Addr) (netip.Addr, error) { return n.Local, nil }

// Observe returns our capture of what peer sends us.
func (n *Net) Observe(_ context.Context, peer netip.Addr, _ int) (*Observer, error) {
	return &Observer{n: n, peer: peer}, nil
}

// Dial returns the agent session.
func (n *Net) Dial(context.Context, string, []byte) (*Agent, net.Addr, error) {
	return &Agent{n: n}, &net.TCPAddr{IP: n.Local.AsSlice(), Port: 40000}, nil
}

// Observer is our capture of one peer's packets.
type Observer struct {
	n    *Net
	peer netip.Addr
}

// Drain returns what arrived from the peer since the last Drain.
func (o *Observer) Drain() []probe.Seen {
	now := o.n.Clock.Now()
	o.n.mu.Lock()
	defer o.n.mu.Unlock()
	return arrived(&o.n.atUs, now, func(s *probe.Seen) bool { return s.Src == o.peer })
}

// Wake is never signalled: the check polls.
func (o *Observer) Wake() <-chan struct{} { return nil }

// Close ends the capture.
func (o *Observer) Close() error { return nil }

// Agent is the far end's control session.
type Agent struct {
	n    *Net
	seen []probe.Seen // reported so far
}

func (a *Agent) gone() error {
	if !a.n.AgentGone.IsZero() && !a.n.Clock.Now().Before(a.n.AgentGone) {
		return fmt.Errorf("agent %s: %w", a.n.Agent, ErrAgentGone)
	}
	return nil
}

// reserve books the session for one request of a CtlRTT from when the session is free, as
// AgentClient sends one request at a time: it returns how long from now until the request
// reaches the agent, and how long from then until its reply is back (their sum less the
// wait for the session is the request's own round trip: rtt).
func (a *Agent) reserve() (there, back, rtt time.Duration) {
	rtt = a.n.ctlRTT()
	a.n.mu.Lock()
	defer a.n.mu.Unlock()
	now := a.n.Clock.Now()
	start := now
	if a.n.ctlFree.After(start) {
		start = a.n.ctlFree
	}
	a.n.ctlFree = start.Add(rtt)
	return start.Sub(now) + rtt/2, rtt - rtt/2, rtt
}

// Hello says the agent captures and sends, and sees us without NAT.
func (a *Agent) Hello(context.Context) (*probe.AgentHello, error) {
	if err := a.gone(); err != nil {
		return nil, err
	}
	return &probe.AgentHello{Protocol: 1, Peer: netip.AddrPortFrom(a.n.Local, 40000), Local: netip.AddrPortFrom(a.n.Agent, probe.ControlPort),
		Pace: probe.MaxRate, Capture: true, Sender: true}, nil
}

// StartObserving starts the agent's capture.
func (a *Agent) StartObserving(context.Context) error { return a.gone() }

// Report returns what the agent captured: the request takes a CtlRTT of fake time after
// the session's earlier requests (the check calls it from its own goroutine), holds what
// had arrived half-way, and gives that CtlRTT as its RTT.
func (a *Agent) Report(context.Context) (*probe.AgentReport, error) {
	if err := a.gone(); err != nil {
		return nil, err
	}
	there, back, rtt := a.reserve()
	if there > 0 {
		a.n.Clock.Sleep(there)
	}
	a.n.mu.Lock()
	a.seen = append(a.seen, arrived(&a.n.atAgent, a.n.Clock.Now(), func(s *probe.Seen) bool { return s.Offset == 0 || a.n.ipids[s.IPID] })...)
	a.n.mu.Unlock()
	if back > 0 {
		a.n.Clock.Sleep(back)
	}
	if err := a.gone(); err != nil {
		return nil, err
	}
	return &probe.AgentReport{Seen: append([]probe.Seen(nil), a.seen...), Observing: true, RTT: rtt}, nil
}

// SendReverse has the agent send the reverse probes toward us, all at once half a CtlRTT
// after the request; it returns a CtlRTT after it. The check calls it from a goroutine it
// started with Go.
func (a *Agent) SendReverse(_ context.Context, ps []probe.ReverseProbe, _ int) ([]probe.ReverseResult, error) {
	if err := a.gone(); err != nil {
		return nil, err
	}
	there, back, _ := a.reserve()
	if there > 0 {
		a.n.Clock.Wait(there)
	}
	if back > 0 {
		defer a.n.Clock.Wait(back)
	}
	now := a.n.Clock.Now()
	a.n.mu.Lock()
	defer a.n.mu.Unlock()
	out := make([]probe.ReverseResult, len(ps))
	var pk probe.Packets
	for i, p := range ps {
		out[i] = probe.ReverseResult{ID: p.ID, Nonce: p.Nonce}
		err := probe.Build(p.ID, probe.BuildParams{Src: a.n.Agent, Dst: a.n.Local, Nonce: p.Nonce, Size: p.Size, FragSize: p.FragSize, DstPort: p.DstPort}, &pk)
		if err != nil {
			out[i].Error = err.Error()
			continue
		}
		a.n.leave(&pk, true, now)
		out[i].Packets, out[i].Sent = len(pk.Wire), now
	}
	return out, nil
}

// Announce takes the IP IDs of fragmented probes: a request like any other, a CtlRTT; the
// agent takes them half-way, and from then on keeps the non-first fragments that carry them
// (a non-first fragment with an IP ID never announced is not reported, as by the real agent).
func (a *Agent) Announce(_ context.Context, ids ...uint16) error {
	if err := a.gone(); err != nil {
		return err
	}
	there, back, _ := a.reserve()
	if there > 0 {
		a.n.Clock.Wait(there)
	}
	a.n.mu.Lock()
	if a.n.ipids == nil {
		a.n.ipids = map[uint16]bool{}
	}
	for _, id := range ids {
		a.n.ipids[id] = true
	}
	a.n.announces++
	a.n.mu.Unlock()
	if back > 0 {
		a.n.Clock.Wait(back)
	}
	return a.gone()
}

// Announces is how many announce requests the agent took.
func (n *Net) Announces() int {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.announces
}

// Stop ends the agent's capture.
func (a *Agent) Stop(context.Context) error { return nil }

// Close closes the session.
func (a *Agent) Close() error { return nil }

// Clock is the agent's clock: ours, exactly.
func (a *Agent) Clock() probe.ClockEstimate { return probe.ClockEstimate{Samples: 1} }
