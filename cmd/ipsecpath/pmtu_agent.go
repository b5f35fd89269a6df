package main

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
	"github.com/ipsecpath/ipsecpath/probe"
	"github.com/ipsecpath/ipsecpath/probe/wire"
	"github.com/ipsecpath/ipsecpath/report"
)

// agentPoll is how often a forward probe asks the agent whether it arrived.
const agentPoll = 5 * time.Millisecond

// nextPoll is when a wait for a probe's answers between two questions to the agent ends:
// agentPoll from now, or the probe's deadline if that comes first.
func nextPoll(deadline time.Time) time.Time {
	until := time.Now().Add(agentPoll)
	if deadline.Before(until) {
		return deadline
	}
	return until
}

// agentRuns prepares the agent-confirmed searches: forward (our DF probes, seen by the agent:
// UDP 4500 with --proto udp, TCP data segments to port with tcp, the pmtu echo with icmp)
// and reverse (the agent's DF pmtu echoes toward us, seen by our raw ICMP socket; the far
// side's ICMP errors about them, seen by the agent's capture).
func agentRuns(ctx context.Context, target netip.Addr, addr, keyFile, proto string, port int, base pmtu.Options) ([]*pmtuRun, error) {
	if !target.Is4() {
		return nil, fmt.Errorf("%w (%s)", pmtu.ErrIPv6, target)
	}
	key, err := probe.LoadKey(keyFile)
	if err != nil {
		return nil, err
	}
	dctx, cancel := context.WithTimeout(ctx, probe.DialTimeout+probe.RequestTimeout)
	defer cancel()
	ag, err := probe.DialAgent(dctx, addr, key)
	if err != nil {
		return nil, err
	}
	hello, err := ag.Hello(dctx)
	if err != nil {
		ag.Close()
		return nil, err
	}
	if !hello.Capture || !hello.Sender {
		ag.Close()
		return nil, fmt.Errorf("agent %s cannot capture (%v) or send reverse probes (%v): run it as root", addr, hello.Capture, hello.Sender)
	}
	if err := ag.StartObserving(dctx); err != nil {
		ag.Close()
		return nil, err
	}
	src, err := probe.SourceFor(target)
	if err != nil {
		ag.Close()
		return nil, err
	}
	snd, err := probe.OpenSender(probe.SenderConfig{})
	if err != nil {
		ag.Close()
		if errors.Is(err, os.ErrPermission) {
			err = fmt.Errorf("%w: %v", pmtu.ErrPermission, err)
		}
		return nil, err
	}
	icmpConn, err := net.ListenPacket("ip4:icmp", "0.0.0.0")
	if err != nil {
		snd.Close()
		ag.Close()
		return nil, fmt.Errorf("open raw ICMP socket: %w", err)
	}
	id := probe.PMTU
	if proto == "udp" {
		id = probe.NATT
	}
	fwd := &agentForward{agent: ag, send: snd, icmp: icmpConn, src: src, dst: target, id: id}
	if proto == "tcp" {
		if fwd.tcp, err = tcpTemplate(src, target, port); err != nil {
			icmpConn.Close()
			snd.Close()
			ag.Close()
			return nil, err
		}
	}
	rev := &agentReverse{agent: ag, icmp: icmpConn, from: hello.Local.Addr().Unmap()}
	revOpts := base
	closeAll := func() error {
		sctx, cancel := context.WithTimeout(context.Background(), probe.RequestTimeout)
		defer cancel()
		ag.Stop(sctx)
		icmpConn.Close()
		return snd.Close()
	}
	return []*pmtuRun{
		{dir: report.Forward, prober: fwd, opts: base},
		{dir: report.Reverse, prober: rev, opts: revOpts, close: closeAll},
	}, nil
}

// agentForward sends DF probes built by the probe package (or, with tcp set, pmtu's
// TCP-sized segments) and counts one as arrived when the agent reports it; ICMP errors
// quoting it come back to our raw ICMP socket.
type agentForward struct {
	agent    *probe.AgentClient
	send     *probe.Sender
	icmp     net.PacketConn
	src, dst netip.Addr
	id       probe.ID
	tcp      *pmtu.TCPProbe // TCP-sized probes: ports and acknowledgment number; seq and IP ID come from the nonce
	pkts     probe.Packets
	wbuf     []byte
	seenUpTo int
	buf      [2048]byte
}

// tcpTemplate is the fixed part of agent-confirmed TCP-sized probes: an ephemeral source
// port and a random acknowledgment number.
func tcpTemplate(src, dst netip.Addr, port int) (*pmtu.TCPProbe, error) {
	n, err := probe.NewNonces(2)
	if err != nil {
		return nil, err
	}
	return &pmtu.TCPProbe{Src: src, Dst: dst, SrcPort: uint16(32768 + n[0]%(61000-32768)), DstPort: uint16(port), Ack: n[1]}, nil
}

// wire builds the probe of r with nonce: its IPv4 packet in wire form.
func (f *agentForward) wire(r pmtu.Request, nonce uint32) ([]byte, error) {
	ttl := uint8(min(r.TTL, 255))
	if f.tcp == nil {
		if err := probe.Build(f.id, probe.BuildParams{Src: f.src, Dst: f.dst, Nonce: nonce, Size: r.Size, TTL: ttl, DF: true}, &f.pkts); err != nil {
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

func newNonce() (uint32, error) {
	n, err := probe.NewNonces(1)
	if err != nil {
		return 0, err
	}
	return n[0], nil
}

func (f *agentForward) Probe(ctx context.Context, r pmtu.Request) (pmtu.Reply, error) {
	nonce, err := newNonce()
	if err != nil {
		return pmtu.Reply{}, err
	}
	pkt, err := f.wire(r, nonce)
	if err != nil {
		return pmtu.Reply{}, err
	}
	if err := f.send.Pace(ctx, f.dst, 1); err != nil {
		return pmtu.Reply{}, err
	}
	sent := time.Now()
	if err := f.send.Write(f.dst, pkt); err != nil {
		if errors.Is(err, syscall.EMSGSIZE) {
			return pmtu.Reply{Outcome: pmtu.LocalTooBig}, nil
		}
		return pmtu.Reply{}, err
	}
	deadline := sent.Add(r.Timeout)
	for {
		if err := ctx.Err(); err != nil {
			return pmtu.Reply{}, err
		}
		// ICMP errors about the probe, for up to agentPoll.
		until := nextPoll(deadline)
		if rep, ok, err := readICMPFor(f.icmp, f.buf[:], f.dst, nonce, until); err != nil {
			return pmtu.Reply{}, err
		} else if ok {
			rep.RTT = time.Since(sent)
			return rep, nil
		}
		ar, err := f.agent.Report(ctx)
		if err != nil {
			return pmtu.Reply{}, err
		}
		for i := f.seenUpTo; i < len(ar.Seen); i++ {
			s := &ar.Seen[i]
			if s.Offset != 0 {
				continue
			}
			if m, ok := probe.ClassifyHead(s.Proto, s.Head); ok && m.Kind == probe.KindProbe && m.Nonce == nonce {
				f.seenUpTo = len(ar.Seen)
				return pmtu.Reply{Outcome: pmtu.Arrived, From: f.dst, RTT: time.Since(sent)}, nil
			}
		}
		f.seenUpTo = len(ar.Seen)
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
		m, ok := probe.ClassifyHead(probe.ProtoICMP, b)
		if !ok || m.Nonce != nonce || n < 8 {
			continue
		}
		ip, _ := netip.AddrFromSlice(from.(*net.IPAddr).IP)
		rep := pmtu.Reply{From: ip.Unmap(), Type: b[0], Code: b[1]}
		switch {
		case m.Kind == probe.KindReply:
			rep.Outcome = pmtu.Arrived
		case m.Kind == probe.KindICMPError && rep.From == target && b[0] == wire.ICMPUnreach && (b[1] == wire.CodeProtoUnreach || b[1] == wire.CodePortUnreach):
			// The target's own port/protocol unreachable: the probe got there whole.
			rep.Outcome = pmtu.Arrived
		case m.Kind != probe.KindICMPError:
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
	agent    *probe.AgentClient
	icmp     net.PacketConn
	from     netip.Addr
	seenUpTo int
	buf      [65536]byte
}

func (v *agentReverse) Probe(ctx context.Context, r pmtu.Request) (pmtu.Reply, error) {
	nonce, err := newNonce()
	if err != nil {
		return pmtu.Reply{}, err
	}
	start := time.Now()
	// The control session is shared (check's own): a request cut off midway would leave it
	// unusable, so requests run to their end (bounded by RequestTimeout) and ctx is checked
	// between them.
	actx, cancel := context.WithTimeout(context.WithoutCancel(ctx), probe.RequestTimeout)
	res, err := v.agent.SendReverse(actx, []probe.ReverseProbe{{ID: probe.PMTU, Nonce: nonce, Size: r.Size, TTL: uint8(min(r.TTL, 255)), DF: true}}, 0)
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
	deadline := time.Now().Add(r.Timeout)
	for {
		if err := ctx.Err(); err != nil {
			return pmtu.Reply{}, err
		}
		until := nextPoll(deadline)
		if d, ok := ctx.Deadline(); ok && d.Before(until) {
			until = d
		}
		if ok, err := v.readEcho(nonce, until); err != nil {
			return pmtu.Reply{}, err
		} else if ok {
			return pmtu.Reply{Outcome: pmtu.Arrived, From: v.from, RTT: time.Since(start)}, nil
		}
		actx, cancel := context.WithTimeout(context.WithoutCancel(ctx), probe.RequestTimeout)
		ar, err := v.agent.Report(actx)
		cancel()
		if err != nil {
			return pmtu.Reply{}, err
		}
		for i := v.seenUpTo; i < len(ar.Seen); i++ {
			if rep, ok := icmpAboutReverse(&ar.Seen[i], nonce); ok {
				v.seenUpTo = i + 1
				rep.RTT = time.Since(start)
				return rep, nil
			}
		}
		v.seenUpTo = len(ar.Seen)
		if !time.Now().Before(deadline) {
			return pmtu.Reply{Outcome: pmtu.Timeout}, nil
		}
	}
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
		if m, ok := probe.ClassifyHead(probe.ProtoICMP, v.buf[:n]); ok && m.Kind == probe.KindProbe && m.Nonce == nonce {
			return true, nil
		}
	}
}

// icmpAboutReverse reads one packet of the agent's capture: an ICMP error from a router
// that quotes the reverse probe with nonce, as a Reply.
func icmpAboutReverse(s *probe.Seen, nonce uint32) (pmtu.Reply, bool) {
	if s.Proto != probe.ProtoICMP || s.Offset != 0 || len(s.Head) < 8 {
		return pmtu.Reply{}, false
	}
	m, ok := probe.ClassifyHead(probe.ProtoICMP, s.Head)
	if !ok || m.Kind != probe.KindICMPError || m.Nonce != nonce {
		return pmtu.Reply{}, false
	}
	return pmtu.ICMPErrorReply(s.Src, s.Head), true
}
