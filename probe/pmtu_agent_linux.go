package probe

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"strings"
	"syscall"
	"time"

	"github.com/ipsecpath/ipsecpath/pmtu"
	"github.com/ipsecpath/ipsecpath/probe/wire"
	"github.com/ipsecpath/ipsecpath/report"
)

// pmtuAgentPoll is how often an agent-confirmed path MTU probe asks the agent what arrived.
const pmtuAgentPoll = 5 * time.Millisecond

// OpenPMTU opens the searches of 'ipsecpath pmtu', forward first: without an agent the
// forward one alone (ICMP echo or TCP-sized probes the target answers), with one also the
// reverse (the agent's DF echoes toward us). The sockets open here, in the caller's network
// namespace; Close each search when done.
func OpenPMTU(ctx context.Context, cfg PMTUConfig) ([]*PMTUSearch, error) {
	if cfg.Agent != "" {
		return openAgentPMTU(ctx, cfg)
	}
	var p interface {
		pmtu.Prober
		InterfaceMTU() (int, string)
		Close() error
	}
	var err error
	if cfg.Proto == "tcp" {
		p, err = pmtu.NewTCPProber(cfg.Target, cfg.Port)
	} else {
		p, err = pmtu.NewICMPProber(cfg.Target)
	}
	if err != nil {
		return nil, err
	}
	o := cfg.Options
	if m, _ := p.InterfaceMTU(); m > 0 && !cfg.KeepMax && m < o.Max {
		o.Max = max(m, o.Min) // our own link is the first limit
	}
	return []*PMTUSearch{{Direction: report.Forward, Options: o, prober: p, release: p.Close}}, nil
}

// openCheckSearches opens a check's path MTU searches: toward the target pmtu's ICMP search
// (DF echoes, a black hole localised by TTL); with agent (the check's control session; from
// is the agent's address), the agent's DF echoes toward us, seen by our raw ICMP socket,
// the far side's ICMP errors by the agent's capture. rev is nil without an agent.
func openCheckSearches(target netip.Addr, agent *AgentClient, from netip.Addr, o PathMTUOptions) (fwd, rev *PMTUSearch, err error) {
	p, err := pmtu.NewICMPProber(target)
	if err != nil {
		return nil, nil, fmt.Errorf("path MTU probe: %w", err)
	}
	opts := pmtu.Options{Budget: o.Budget}
	fwd = &PMTUSearch{Direction: report.Forward, Options: opts, prober: p, release: p.Close}
	if agent == nil {
		return fwd, nil, nil
	}
	c, err := net.ListenPacket("ip4:icmp", "0.0.0.0")
	if err != nil {
		fwd.Close()
		return nil, nil, fmt.Errorf("reverse path MTU probe: open raw ICMP socket: %w", err)
	}
	rev = &PMTUSearch{Direction: report.Reverse, Options: opts, prober: &agentReverse{agent: agent, icmp: c, from: from}, release: c.Close}
	return fwd, rev, nil
}

// openAgentPMTU opens the agent-confirmed searches: forward our DF probes, seen by the
// agent (UDP 4500 with proto udp, TCP data segments to Port with tcp, the pmtu echo with
// icmp); reverse the agent's DF pmtu echoes, seen by our raw ICMP socket, and the far
// side's ICMP errors about them, seen by the agent's capture.
func openAgentPMTU(ctx context.Context, cfg PMTUConfig) (_ []*PMTUSearch, err error) {
	if !cfg.Target.Is4() {
		return nil, fmt.Errorf("%w (%s)", pmtu.ErrIPv6, cfg.Target)
	}
	var undo []func() error
	defer func() {
		for i := len(undo) - 1; err != nil && i >= 0; i-- {
			undo[i]()
		}
	}()
	ag, from, err := dialPMTUAgent(ctx, cfg.Agent, cfg.KeyFile)
	if err != nil {
		return nil, err
	}
	undo = append(undo, ag.Close)
	src, err := SourceFor(cfg.Target)
	if err != nil {
		return nil, err
	}
	snd, err := OpenSender(SenderConfig{})
	if err != nil {
		if errors.Is(err, os.ErrPermission) {
			err = fmt.Errorf("%w: %v", pmtu.ErrPermission, err)
		}
		return nil, err
	}
	undo = append(undo, snd.Close)
	icmpConn, err := net.ListenPacket("ip4:icmp", "0.0.0.0")
	if err != nil {
		return nil, fmt.Errorf("open raw ICMP socket: %w", err)
	}
	undo = append(undo, icmpConn.Close)
	fwd := &agentForward{agent: ag, send: snd, icmp: icmpConn, src: src, dst: cfg.Target, id: PMTU}
	switch cfg.Proto {
	case "udp":
		fwd.id = NATT
	case "tcp":
		if fwd.tcp, err = tcpTemplate(src, cfg.Target, cfg.Port); err != nil {
			return nil, err
		}
	}
	rev := &agentReverse{agent: ag, icmp: icmpConn, from: from}
	closeAll := func() error {
		stopAgent(ag)
		icmpConn.Close()
		return snd.Close()
	}
	return []*PMTUSearch{
		{Direction: report.Forward, Options: cfg.Options, prober: fwd},
		{Direction: report.Reverse, Options: cfg.Options, prober: rev, release: closeAll},
	}, nil
}

// dialPMTUAgent opens a session with the agent at addr that captures and can send, and
// starts its capture; from is the address its reverse probes come from.
func dialPMTUAgent(ctx context.Context, addr, keyFile string) (ag *AgentClient, from netip.Addr, err error) {
	key, err := LoadKey(keyFile)
	if err != nil {
		return nil, netip.Addr{}, err
	}
	dctx, cancel := context.WithTimeout(ctx, DialTimeout+RequestTimeout)
	defer cancel()
	if ag, err = DialAgent(dctx, addr, key); err != nil {
		return nil, netip.Addr{}, err
	}
	hello, err := ag.Hello(dctx)
	if err == nil && (!hello.Capture || !hello.Sender) {
		err = fmt.Errorf("agent %s cannot capture (%v) or send reverse probes (%v): run it as root", addr, hello.Capture, hello.Sender)
	}
	if err == nil {
		err = ag.StartObserving(dctx)
	}
	if err != nil {
		ag.Close()
		return nil, netip.Addr{}, err
	}
	return ag, hello.Local.Addr().Unmap(), nil
}

// stopAgent ends the agent's capture and the session.
func stopAgent(ag *AgentClient) error {
	sctx, cancel := context.WithTimeout(context.Background(), RequestTimeout)
	defer cancel()
	return ag.Stop(sctx)
}

// agentForward sends DF probes built by Build (or, with tcp set, pmtu's TCP-sized segments)
// and counts one as arrived when the agent reports it; ICMP errors quoting it come back to
// our raw ICMP socket.
type agentForward struct {
	agent    *AgentClient
	send     *Sender
	icmp     net.PacketConn
	src, dst netip.Addr
	id       ID
	tcp      *pmtu.TCPProbe // TCP-sized probes: ports and acknowledgment number; seq and IP ID come from the nonce
	pkts     Packets
	wbuf     []byte
	seenUpTo int
	buf      [2048]byte
}

// tcpTemplate is the fixed part of agent-confirmed TCP-sized probes: an ephemeral source
// port and a random acknowledgment number.
func tcpTemplate(src, dst netip.Addr, port int) (*pmtu.TCPProbe, error) {
	n, err := NewNonces(2)
	if err != nil {
		return nil, err
	}
	return &pmtu.TCPProbe{Src: src, Dst: dst, SrcPort: uint16(32768 + n[0]%(61000-32768)), DstPort: uint16(port), Ack: n[1]}, nil
}

// packet builds the probe of r with nonce: its IPv4 packet in wire form.
func (f *agentForward) packet(r pmtu.Request, nonce uint32) ([]byte, error) {
	ttl := uint8(min(r.TTL, 255))
	if f.tcp == nil {
		if err := Build(f.id, BuildParams{Src: f.src, Dst: f.dst, Nonce: nonce, Size: r.Size, TTL: ttl, DF: true}, &f.pkts); err != nil {
			return nil, err
		}
		return f.pkts.Wire[0], nil
	}
	if r.Size < pmtu.MinTCPProbe {
		return nil, fmt.Errorf("probe size %d: a TCP-sized probe takes at least %d bytes", r.Size, pmtu.MinTCPProbe)
	}
	t := *f.tcp
	t.Seq, t.IPID, t.TTL = nonce, uint16(nonce), ttl // nonces have non-zero low 16 bits
	if cap(f.wbuf) < r.Size {
		f.wbuf = make([]byte, r.Size)
	}
	if err := t.Put(f.wbuf[:r.Size]); err != nil {
		return nil, err
	}
	return f.wbuf[:r.Size], nil
}

func probeNonce() (uint32, error) {
	n, err := NewNonces(1)
	if err != nil {
		return 0, err
	}
	return n[0], nil
}

func (f *agentForward) Probe(ctx context.Context, r pmtu.Request) (pmtu.Reply, error) {
	nonce, err := probeNonce()
	if err != nil {
		return pmtu.Reply{}, err
	}
	pkt, err := f.packet(r, nonce)
	if err != nil {
		return pmtu.Reply{}, err
	}
	if err := f.send.pace(ctx, f.dst, 1); err != nil {
		return pmtu.Reply{}, err
	}
	sent := time.Now()
	if err := f.send.writeTo(f.dst, pkt); err != nil {
		if errors.Is(err, syscall.EMSGSIZE) {
			return pmtu.Reply{Outcome: pmtu.LocalTooBig}, nil
		}
		return pmtu.Reply{}, err
	}
	// ICMP errors about the probe come to our socket; the probe itself, to the agent.
	local := func(until time.Time) (pmtu.Reply, bool, error) {
		return readICMPFor(f.icmp, f.buf[:], f.dst, nonce, until)
	}
	atAgent := func(s *Seen) (pmtu.Reply, bool) {
		if s.Offset != 0 {
			return pmtu.Reply{}, false
		}
		if m, ok := ClassifyHead(s.Proto, s.Head); ok && m.Kind == KindProbe && m.Nonce == nonce {
			return pmtu.Reply{Outcome: pmtu.Arrived, From: f.dst}, true
		}
		return pmtu.Reply{}, false
	}
	return pollAgent(ctx, f.agent, &f.seenUpTo, sent, sent.Add(r.Timeout), local, atAgent)
}

// pollAgent waits until deadline for the answer to a probe sent at sent: local reads our
// socket until a given time, atAgent reads one packet of the agent's capture. Between
// reads of our socket, every pmtuAgentPoll, it asks the agent for its report, whose new
// packets start at *seenUpTo. The reply's RTT is counted from sent; at the deadline the
// reply is a Timeout.
//
// The control session may be a check's own: a request cut off midway would leave it
// unusable, so requests to the agent run to their end (bounded by RequestTimeout) and ctx
// is checked between them.
func pollAgent(ctx context.Context, ag *AgentClient, seenUpTo *int, sent, deadline time.Time,
	local func(until time.Time) (pmtu.Reply, bool, error), atAgent func(*Seen) (pmtu.Reply, bool)) (pmtu.Reply, error) {
	for {
		if err := ctx.Err(); err != nil {
			return pmtu.Reply{}, err
		}
		until := time.Now().Add(pmtuAgentPoll)
		if deadline.Before(until) {
			until = deadline
		}
		if d, ok := ctx.Deadline(); ok && d.Before(until) {
			until = d
		}
		if rep, ok, err := local(until); err != nil {
			return pmtu.Reply{}, err
		} else if ok {
			rep.RTT = time.Since(sent)
			return rep, nil
		}
		actx, cancel := context.WithTimeout(context.WithoutCancel(ctx), RequestTimeout)
		ar, err := ag.Report(actx)
		cancel()
		if err != nil {
			return pmtu.Reply{}, err
		}
		for i := *seenUpTo; i < len(ar.Seen); i++ {
			if rep, ok := atAgent(&ar.Seen[i]); ok {
				*seenUpTo = i + 1
				rep.RTT = time.Since(sent)
				return rep, nil
			}
		}
		*seenUpTo = len(ar.Seen)
		if !time.Now().Before(deadline) {
			return pmtu.Reply{Outcome: pmtu.Timeout}, nil
		}
	}
}

// readICMPFor reads ICMP messages until deadline and returns the first error (or, for the
// pmtu echo, reply) that names nonce. ok is false at the deadline.
func readICMPFor(c net.PacketConn, buf []byte, target netip.Addr, nonce uint32, deadline time.Time) (pmtu.Reply, bool, error) {
	if err := c.SetReadDeadline(deadline); err != nil {
		return pmtu.Reply{}, false, err
	}
	for {
		n, from, err := c.ReadFrom(buf)
		if err != nil {
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				return pmtu.Reply{}, false, nil
			}
			return pmtu.Reply{}, false, fmt.Errorf("read raw ICMP socket: %w", err)
		}
		b := buf[:n]
		m, ok := ClassifyHead(ProtoICMP, b)
		if !ok || m.Nonce != nonce || n < wire.ICMPHeaderLen {
			continue
		}
		ip, _ := netip.AddrFromSlice(from.(*net.IPAddr).IP)
		rep := pmtu.Reply{From: ip.Unmap(), Type: b[0], Code: b[1]}
		switch {
		case m.Kind == KindReply:
			rep.Outcome = pmtu.Arrived
		case m.Kind == KindICMPError && rep.From == target && b[0] == wire.ICMPUnreach && (b[1] == wire.CodeProtoUnreach || b[1] == wire.CodePortUnreach):
			// The target's own port/protocol unreachable: the probe got there whole.
			rep.Outcome = pmtu.Arrived
		case m.Kind != KindICMPError:
			continue
		default:
			rep = pmtu.ICMPErrorReply(rep.From, b)
		}
		return rep, true, nil
	}
}

// agentReverse asks the agent for one DF pmtu echo of the asked size toward us and waits for
// it on our raw ICMP socket, and for what a router on the way says about it: routers send
// their ICMP errors to the agent, whose capture keeps those that quote a packet to us, so
// the agent's report carries the far side's fragmentation-needed and time-exceeded.
type agentReverse struct {
	agent    *AgentClient
	icmp     net.PacketConn
	from     netip.Addr
	seenUpTo int
	buf      [65536]byte
}

func (v *agentReverse) Probe(ctx context.Context, r pmtu.Request) (pmtu.Reply, error) {
	nonce, err := probeNonce()
	if err != nil {
		return pmtu.Reply{}, err
	}
	start := time.Now()
	// A request cut off midway would leave a check's control session unusable (pollAgent).
	actx, cancel := context.WithTimeout(context.WithoutCancel(ctx), RequestTimeout)
	res, err := v.agent.SendReverse(actx, []ReverseProbe{{ID: PMTU, Nonce: nonce, Size: r.Size, TTL: uint8(min(r.TTL, 255)), DF: true}}, 0)
	cancel()
	if err != nil {
		return pmtu.Reply{}, err
	}
	if len(res) == 1 && res[0].Error != "" {
		if strings.Contains(res[0].Error, "message too long") {
			return pmtu.Reply{Outcome: pmtu.LocalTooBig}, nil // the agent's own interface
		}
		return pmtu.Reply{}, fmt.Errorf("agent could not send a %d-byte reverse probe: %s", r.Size, res[0].Error)
	}
	local := func(until time.Time) (pmtu.Reply, bool, error) {
		ok, err := v.readEcho(nonce, until)
		return pmtu.Reply{Outcome: pmtu.Arrived, From: v.from}, ok, err
	}
	atAgent := func(s *Seen) (pmtu.Reply, bool) { return icmpAboutReverse(s, nonce) }
	return pollAgent(ctx, v.agent, &v.seenUpTo, start, time.Now().Add(r.Timeout), local, atAgent)
}

// readEcho reads our raw ICMP socket until deadline for the reverse echo that carries nonce.
func (v *agentReverse) readEcho(nonce uint32, deadline time.Time) (bool, error) {
	if err := v.icmp.SetReadDeadline(deadline); err != nil {
		return false, err
	}
	for {
		n, _, err := v.icmp.ReadFrom(v.buf[:])
		if err != nil {
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				return false, nil
			}
			return false, fmt.Errorf("read raw ICMP socket: %w", err)
		}
		if m, ok := ClassifyHead(ProtoICMP, v.buf[:n]); ok && m.Kind == KindProbe && m.Nonce == nonce {
			return true, nil
		}
	}
}

// icmpAboutReverse reads one packet of the agent's capture: an ICMP error from a router
// that quotes the reverse probe with nonce, as a Reply.
func icmpAboutReverse(s *Seen, nonce uint32) (pmtu.Reply, bool) {
	if s.Proto != ProtoICMP || s.Offset != 0 || len(s.Head) < wire.ICMPHeaderLen {
		return pmtu.Reply{}, false
	}
	m, ok := ClassifyHead(ProtoICMP, s.Head)
	if !ok || m.Kind != KindICMPError || m.Nonce != nonce {
		return pmtu.Reply{}, false
	}
	return pmtu.ICMPErrorReply(s.Src, s.Head), true
}
