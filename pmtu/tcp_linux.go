package pmtu

import (
	"context"
	"crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"time"

	"github.com/ipsecpath/ipsecpath/probe/rawip"
)

// TCPProber sends TCP-sized probes (see TCPProbe): ACK|PSH data segments with our own IPv4
// header (DF, the size and TTL asked for) through the raw IPv4 sender (rawip.Sender, in
// path-MTU probe mode), toward one port of the target, paced like ICMPProber. A probe arrived when the target's reset for it comes back (one
// socket reads TCP); ICMP errors quoting its header, ports and sequence number come to a
// raw ICMP socket. It is a Prober, IPv4 only. Open it in the network namespace it must
// probe from.
type TCPProber struct {
	send   *rawip.Sender
	tcp    net.PacketConn // reads every TCP segment to this host: resets are picked out
	icmp   net.PacketConn
	target netip.Addr
	src    netip.Addr
	ifMTU  int
	ifName string
	sport  uint16
	dport  uint16
	seq    uint32
	ack    uint32
	ipid   uint16
	pacer  *rawip.Pacer
	tbuf   []byte
	ibuf   []byte
	wbuf   []byte
}

// NewTCPProber opens the sockets toward port of target (an IPv4 address) and looks up the
// outgoing interface. Errors: ErrPermission without CAP_NET_RAW, ErrNoRoute without a
// route (or without a source address to put in the header and the TCP checksum).
func NewTCPProber(target netip.Addr, port int) (*TCPProber, error) {
	target = target.Unmap()
	if !target.Is4() || target.IsUnspecified() || target.IsMulticast() || target == netip.AddrFrom4([4]byte{255, 255, 255, 255}) {
		return nil, fmt.Errorf("pmtu: %s is not a unicast IPv4 target (TCP probes are IPv4)", target)
	}
	if port < 1 || port > 65535 {
		return nil, fmt.Errorf("pmtu: TCP port %d out of range 1..65535", port)
	}
	src, ifMTU, ifName, err := routeTo(target)
	if err != nil {
		return nil, err
	}
	if !src.IsValid() {
		if src, err = rawip.SourceFor(target); err != nil {
			return nil, fmt.Errorf("%w %s: no source address: %v", ErrNoRoute, target, err)
		}
	}
	pacer, err := rawip.NewPacer(rawip.DefaultRate, rawip.DefaultBurst, nil)
	if err != nil {
		return nil, err
	}
	p := &TCPProber{target: target, src: src, ifMTU: ifMTU, ifName: ifName, dport: uint16(port),
		pacer: pacer, tbuf: make([]byte, 65536), ibuf: make([]byte, 65536)}
	if p.send, err = openSender(); err != nil {
		return nil, err
	}
	if p.tcp, err = listenRaw("ip4:tcp"); err == nil {
		p.icmp, err = listenRaw("ip4:icmp")
	}
	if err != nil {
		p.Close()
		return nil, err
	}
	var r [12]byte
	if _, err := rand.Read(r[:]); err != nil {
		p.Close()
		return nil, fmt.Errorf("pmtu: random TCP probe numbers: %w", err)
	}
	// The source port stays in the ephemeral range (32768–60999, Linux's default) that a
	// real client would use; sequence and acknowledgment numbers start at random.
	p.sport = 32768 + binary.BigEndian.Uint16(r[0:])%(61000-32768)
	p.seq = binary.BigEndian.Uint32(r[2:])
	p.ack = binary.BigEndian.Uint32(r[6:])
	p.ipid = binary.BigEndian.Uint16(r[10:])
	return p, nil
}

// InterfaceMTU is the MTU of the interface toward the target (0 if unknown) and its name.
func (p *TCPProber) InterfaceMTU() (int, string) { return p.ifMTU, p.ifName }

// Source is the source address of the probes.
func (p *TCPProber) Source() netip.Addr { return p.src }

// Port is the target port the probes go to.
func (p *TCPProber) Port() int { return int(p.dport) }

// Close closes the sockets.
func (p *TCPProber) Close() error {
	var errs []error
	if p.send != nil {
		errs = append(errs, p.send.Close())
	}
	if p.tcp != nil {
		errs = append(errs, p.tcp.Close())
	}
	if p.icmp != nil {
		errs = append(errs, p.icmp.Close())
	}
	return errors.Join(errs...)
}

// next returns the probe to send with ttl: fresh sequence and
// acknowledgment numbers and IP ID.
func (p *TCPProber) next(ttl int) TCPProbe {
	// Each probe moves the sequence number past the last one's data, as a sender would.
	p.seq += 1 << 16
	p.ack += 1 << 16
	p.ipid++
	if p.ipid == 0 {
		p.ipid++ // 0 would let the kernel choose its own
	}
	return TCPProbe{Src: p.src, Dst: p.target, SrcPort: p.sport, DstPort: p.dport, Seq: p.seq, Ack: p.ack, IPID: p.ipid, TTL: uint8(ttl)}
}

// tcpHit is what one of the two readers found.
type tcpHit struct {
	rep Reply
	ok  bool
	err error
}

// Probe sends one TCP-sized probe of r.Size bytes (IP header included, at least
// MinTCPProbe) with DF and TTL r.TTL, and waits up to r.Timeout (or until ctx ends) for the
// target's reset or an ICMP error about it. Answers to earlier probes are skipped.
func (p *TCPProber) Probe(ctx context.Context, r Request) (Reply, error) {
	if r.Size < MinTCPProbe || r.Size > 65535 {
		return Reply{}, fmt.Errorf("pmtu: probe size %d out of range %d..65535", r.Size, MinTCPProbe)
	}
	if r.TTL < 1 || r.TTL > 255 {
		return Reply{}, fmt.Errorf("pmtu: ttl %d out of range 1..255", r.TTL)
	}
	if err := p.pacer.Wait(ctx, p.target, 1); err != nil {
		return Reply{}, err
	}
	t := p.next(r.TTL)
	if cap(p.wbuf) < r.Size {
		p.wbuf = make([]byte, r.Size)
	}
	pkt := p.wbuf[:r.Size]
	if err := t.Put(pkt); err != nil {
		return Reply{}, err
	}
	sent := time.Now()
	if err := p.send.Write(p.target, pkt); err != nil {
		return sendFailure(err, p.target, r.Size, p.ifMTU)
	}
	deadline := sent.Add(r.Timeout)
	if d, ok := ctx.Deadline(); ok && d.Before(deadline) {
		deadline = d
	}
	for _, c := range []net.PacketConn{p.tcp, p.icmp} {
		if err := c.SetReadDeadline(deadline); err != nil {
			return Reply{}, fmt.Errorf("pmtu: set read deadline: %w", err)
		}
	}
	// The first reader to find an answer (or to fail) stops the other by moving its
	// deadline into the past; so does the end of ctx.
	unblock := func() {
		p.tcp.SetReadDeadline(time.Unix(1, 0))
		p.icmp.SetReadDeadline(time.Unix(1, 0))
	}
	stop := context.AfterFunc(ctx, unblock)
	defer stop()
	payload := r.Size - 20 - tcpHeader
	hits := make(chan tcpHit, 2)
	go func() {
		hits <- readUntil(p.icmp, p.ibuf, func(from netip.Addr, b []byte) (Reply, error) {
			return parseICMPError(from, b, t.quote())
		})
	}()
	go func() {
		hits <- readUntil(p.tcp, p.tbuf, func(from netip.Addr, b []byte) (Reply, error) {
			return parseTCPAnswer(from, b, t, payload)
		})
	}()
	first := <-hits
	unblock()
	second := <-hits
	if ctx.Err() != nil {
		return Reply{}, ctx.Err()
	}
	for _, h := range []tcpHit{first, second} {
		if h.ok {
			h.rep.RTT = time.Since(sent)
			return h.rep, nil
		}
	}
	for _, h := range []tcpHit{first, second} {
		if h.err != nil {
			return Reply{}, h.err
		}
	}
	return Reply{Outcome: Timeout}, nil
}

// readUntil reads c (an IPv4 raw socket: the IP header is stripped) until parse accepts a
// packet or the read deadline passes (ok false, no error).
func readUntil(c net.PacketConn, buf []byte, parse func(netip.Addr, []byte) (Reply, error)) tcpHit {
	for {
		n, addr, err := c.ReadFrom(buf)
		if err != nil {
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				return tcpHit{}
			}
			return tcpHit{err: fmt.Errorf("pmtu: read raw socket: %w", err)}
		}
		from, ok := addrOf(addr)
		if !ok {
			continue
		}
		if rep, err := parse(from, buf[:n]); err == nil {
			return tcpHit{rep: rep, ok: true}
		}
	}
}
