package pmtu

import (
	"context"
	"crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"syscall"
	"time"

	"github.com/vishvananda/netlink"
	"golang.org/x/net/ipv4"
	"golang.org/x/net/ipv6"

	"github.com/ipsecpath/ipsecpath/probe/wire"
)

// Pacing: at most 100 packets/s toward a target (DESIGN.md, Safety), with a burst of
// DefaultBurst after a pause, so the few probes of a path that signals go out at once.
const (
	DefaultPace  = 10 * time.Millisecond
	DefaultBurst = 5
)

// Environment errors of NewICMPProber: the CLI turns them into exit code 2.
var (
	ErrPermission = errors.New("pmtu: raw sockets need root or CAP_NET_RAW")
	ErrNoRoute    = errors.New("pmtu: no route to the target")
	ErrIPv6       = errors.New("pmtu: IPv6 targets are not supported with an agent yet (the agent and its probes are IPv4)")
)

// ICMPProber sends ICMP echo requests with our own IPv4 header (DF set, the size and TTL
// asked for) from a raw socket, and matches echo replies and ICMP errors to them by echo
// id, sequence number and IP ID (for errors: as quoted); toward an IPv6 target, ICMPv6
// echoes matched by id, sequence and the quoted destination. It is a Prober. Open it in the
// network namespace it must probe from; the socket stays there.
type ICMPProber struct {
	conn   *ipv4.RawConn    // IPv4 target
	conn6  *ipv6.PacketConn // IPv6 target
	target netip.Addr
	src    netip.Addr // the route's preferred source, for the header
	ifMTU  int        // MTU of the outgoing interface
	ifName string
	id     uint16
	seq    uint16
	ipid   uint16
	pacer  pacer
	buf    []byte
	wbuf   []byte
}

// NewICMPProber opens a raw ICMP socket toward target and looks up the outgoing interface
// and its MTU. For an IPv6 target it sends ICMPv6 echo requests with don't-fragment and the
// asked hop limit (the kernel builds the IPv6 header) and reads Packet Too Big. Errors:
// ErrPermission without CAP_NET_RAW, ErrNoRoute when the kernel has no route to target
// ("the path has no IPv6" for an IPv6 target).
func NewICMPProber(target netip.Addr) (*ICMPProber, error) {
	target = target.Unmap()
	if !target.IsValid() || target.IsUnspecified() || target.IsMulticast() || target == netip.AddrFrom4([4]byte{255, 255, 255, 255}) {
		return nil, fmt.Errorf("pmtu: %s is not a unicast target", target)
	}
	p := &ICMPProber{target: target, pacer: pacer{pace: DefaultPace, burst: DefaultBurst}, buf: make([]byte, 65536)}
	var err error
	if p.src, p.ifMTU, p.ifName, err = routeTo(target); err != nil {
		return nil, err
	}
	if target.Is6() {
		err = p.open6()
	} else {
		err = p.open4()
	}
	if err != nil {
		return nil, err
	}
	var r [6]byte
	if _, err := rand.Read(r[:]); err != nil {
		p.Close()
		return nil, fmt.Errorf("pmtu: random echo id: %w", err)
	}
	p.id = binary.BigEndian.Uint16(r[0:])
	p.seq = binary.BigEndian.Uint16(r[2:])
	p.ipid = binary.BigEndian.Uint16(r[4:])
	return p, nil
}

// routeTo asks the kernel for its route toward target: the preferred source address
// (invalid if the route names none), and the outgoing interface's MTU and name (0, "" if
// unknown). ErrNoRoute when there is none.
func routeTo(target netip.Addr) (src netip.Addr, ifMTU int, ifName string, err error) {
	routes, err := netlink.RouteGet(target.AsSlice())
	if err != nil || len(routes) == 0 {
		if target.Is6() {
			return src, 0, "", fmt.Errorf("%w %s: the path has no IPv6 (%v)", ErrNoRoute, target, err)
		}
		return src, 0, "", fmt.Errorf("%w %s: %v", ErrNoRoute, target, err)
	}
	rt := routes[0]
	if a, ok := netip.AddrFromSlice(rt.Src); ok {
		src = a.Unmap()
	}
	if link, err := netlink.LinkByIndex(rt.LinkIndex); err == nil {
		ifMTU, ifName = link.Attrs().MTU, link.Attrs().Name
	}
	return src, ifMTU, ifName, nil
}

func (p *ICMPProber) open4() error {
	c, err := net.ListenPacket("ip4:icmp", "0.0.0.0")
	if err != nil {
		if errors.Is(err, os.ErrPermission) {
			return fmt.Errorf("%w: open raw ICMP socket: %v", ErrPermission, err)
		}
		return fmt.Errorf("pmtu: open raw ICMP socket: %w", err)
	}
	if err := probeMode(c); err != nil {
		c.Close()
		return err
	}
	p.conn, err = ipv4.NewRawConn(c)
	if err != nil {
		c.Close()
		if errors.Is(err, os.ErrPermission) {
			return fmt.Errorf("%w: set IP_HDRINCL: %v", ErrPermission, err)
		}
		return fmt.Errorf("pmtu: raw ICMP socket with our own header: %w", err)
	}
	return nil
}

// InterfaceMTU is the MTU of the interface toward the target (0 if unknown) and its name.
func (p *ICMPProber) InterfaceMTU() (int, string) { return p.ifMTU, p.ifName }

// Source is the source address the route toward the target uses.
func (p *ICMPProber) Source() netip.Addr { return p.src }

// Close closes the socket.
func (p *ICMPProber) Close() error {
	if p.conn6 != nil {
		return p.conn6.Close()
	}
	return p.conn.Close()
}

// Probe sends one echo request of r.Size bytes (IP header included) with DF and TTL r.TTL,
// and waits up to r.Timeout (or until ctx ends) for its reply or an ICMP error about it.
// Answers to earlier probes that arrive late are skipped.
func (p *ICMPProber) Probe(ctx context.Context, r Request) (Reply, error) {
	if r.Size < 20+wire.ICMPHeaderLen || r.Size > 65535 {
		return Reply{}, fmt.Errorf("pmtu: probe size %d out of range %d..65535", r.Size, 20+wire.ICMPHeaderLen)
	}
	if r.TTL < 1 || r.TTL > 255 {
		return Reply{}, fmt.Errorf("pmtu: ttl %d out of range 1..255", r.TTL)
	}
	if p.conn6 != nil && r.Size < wire.IPv6HeaderLen+wire.ICMPHeaderLen {
		return Reply{}, fmt.Errorf("pmtu: probe size %d out of range %d..65535", r.Size, wire.IPv6HeaderLen+wire.ICMPHeaderLen)
	}
	if wait := p.pacer.wait(time.Now()); wait > 0 {
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return Reply{}, ctx.Err()
		case <-t.C:
		}
	}
	p.seq++
	p.ipid++
	id := echoID{ID: p.id, Seq: p.seq, IPID: p.ipid}
	if p.conn6 != nil {
		return p.probe6(ctx, r, id)
	}
	n := r.Size - 20
	if cap(p.wbuf) < n {
		p.wbuf = make([]byte, n)
	}
	body := p.wbuf[:n]
	putEcho(body, id)
	h := &ipv4.Header{
		Version: 4, Len: 20, TotalLen: r.Size, ID: int(id.IPID), Flags: ipv4.DontFragment,
		TTL: r.TTL, Protocol: 1, Dst: p.target.AsSlice(),
	}
	if p.src.IsValid() {
		h.Src = p.src.AsSlice()
	}
	sent := time.Now()
	p.pacer.sent(sent)
	if err := p.conn.WriteTo(h, body, nil); err != nil {
		return sendFailure(err, p.target, r.Size, p.ifMTU)
	}
	return awaitReply(ctx, p.conn, sent, r.Timeout, "raw ICMP socket", func() (Reply, bool, error) {
		hdr, payload, _, err := p.conn.ReadFrom(p.buf)
		if err != nil || hdr == nil {
			return Reply{}, false, err
		}
		from, ok := netip.AddrFromSlice(hdr.Src)
		if !ok {
			return Reply{}, false, nil
		}
		rep, err := parseICMP(from.Unmap(), p.target, payload, id)
		return rep, err == nil, nil
	})
}

// sendFailure turns a failed send of a probe into its outcome: a packet larger than the
// interface MTU is LocalTooBig (the search learns the first hop's limit), a refusal is
// ErrPermission, anything else an error.
func sendFailure(err error, target netip.Addr, size, ifMTU int) (Reply, error) {
	if errors.Is(err, syscall.EMSGSIZE) {
		return Reply{Outcome: LocalTooBig, MTU: ifMTU}, nil
	}
	if errors.Is(err, os.ErrPermission) {
		return Reply{}, fmt.Errorf("%w: send to %s: %v", ErrPermission, target, err)
	}
	return Reply{}, fmt.Errorf("pmtu: send %d bytes to %s: %w", size, target, err)
}

// awaitReply reads with read until it returns a reply to this probe (ok), the probe's
// timeout after sent passes (Outcome Timeout) or ctx ends (ctx's error). read returns ok
// false for packets that are not answers to this probe; its errors end the wait.
func awaitReply(ctx context.Context, conn interface{ SetReadDeadline(time.Time) error }, sent time.Time,
	timeout time.Duration, what string, read func() (rep Reply, ok bool, err error)) (Reply, error) {
	deadline := sent.Add(timeout)
	if d, ok := ctx.Deadline(); ok && d.Before(deadline) {
		deadline = d
	}
	fired := make(chan struct{})
	stop := context.AfterFunc(ctx, func() {
		defer close(fired)
		conn.SetReadDeadline(time.Unix(1, 0))
	})
	defer func() {
		if !stop() {
			<-fired // ctx's past deadline lands before the next probe sets its own
		}
	}()
	if err := conn.SetReadDeadline(deadline); err != nil {
		return Reply{}, fmt.Errorf("pmtu: set read deadline: %w", err)
	}
	for {
		rep, ok, err := read()
		if err != nil {
			if ctx.Err() != nil {
				return Reply{}, ctx.Err()
			}
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				return Reply{Outcome: Timeout}, nil
			}
			return Reply{}, fmt.Errorf("pmtu: read from %s: %w", what, err)
		}
		if ok {
			rep.RTT = time.Since(sent)
			return rep, nil
		}
	}
}

// probeMode sets IP_PMTUDISC_PROBE on a raw socket: the kernel then checks a packet only
// against the interface MTU, not against the path MTU it cached from an earlier
// fragmentation-needed (which would answer EMSGSIZE from memory instead of the path being
// measured). tracepath does the same.
func probeMode(c net.PacketConn) error {
	sc, ok := c.(syscall.Conn)
	if !ok {
		return errors.New("pmtu: raw socket without a file descriptor")
	}
	rc, err := sc.SyscallConn()
	if err != nil {
		return fmt.Errorf("pmtu: raw socket: %w", err)
	}
	var serr error
	if err := rc.Control(func(fd uintptr) {
		serr = syscall.SetsockoptInt(int(fd), syscall.IPPROTO_IP, syscall.IP_MTU_DISCOVER, ipPMTUDiscProbe)
	}); err != nil {
		return fmt.Errorf("pmtu: raw socket: %w", err)
	}
	if serr != nil {
		return fmt.Errorf("pmtu: set IP_MTU_DISCOVER to probe: %w", os.NewSyscallError("setsockopt", serr))
	}
	return nil
}

// ipPMTUDiscProbe is IP_PMTUDISC_PROBE from linux/in.h (not in package syscall).
const ipPMTUDiscProbe = 3

// RawSender sends whole IPv4 packets in wire form (IP header included, as the probe
// package builds them) from a raw socket in path-MTU probe mode: what the agent-confirmed
// forward search uses. Open it in the namespace to send from.
type RawSender struct {
	conn *net.IPConn
	rc   syscall.RawConn
}

// OpenRawSender opens the socket. ErrPermission without CAP_NET_RAW.
func OpenRawSender() (*RawSender, error) {
	c, err := net.ListenPacket("ip4:255", "0.0.0.0") // IPPROTO_RAW: send only, header included
	if err != nil {
		if errors.Is(err, os.ErrPermission) {
			return nil, fmt.Errorf("%w: open raw socket: %v", ErrPermission, err)
		}
		return nil, fmt.Errorf("pmtu: open raw socket: %w", err)
	}
	if err := probeMode(c); err != nil {
		c.Close()
		return nil, err
	}
	conn := c.(*net.IPConn)
	rc, err := conn.SyscallConn()
	if err != nil {
		conn.Close()
		return nil, fmt.Errorf("pmtu: raw socket: %w", err)
	}
	return &RawSender{conn: conn, rc: rc}, nil
}

// Send puts pkt (an IPv4 packet in wire form) on the wire toward dst. A packet bigger than
// the outgoing interface's MTU fails with an error matching syscall.EMSGSIZE.
func (s *RawSender) Send(pkt []byte, dst netip.Addr) error {
	sa := &syscall.SockaddrInet4{Addr: dst.As4()}
	var serr error
	err := s.rc.Write(func(fd uintptr) bool {
		serr = syscall.Sendto(int(fd), pkt, 0, sa)
		return serr != syscall.EAGAIN
	})
	if err == nil {
		err = serr
	}
	if err != nil {
		return fmt.Errorf("pmtu: send %d bytes to %s: %w", len(pkt), dst, os.NewSyscallError("sendto", err))
	}
	return nil
}

// Close closes the socket.
func (s *RawSender) Close() error { return s.conn.Close() }
