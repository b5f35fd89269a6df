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
	"golang.org/x/net/ipv6"

	"github.com/ipsecpath/ipsecpath/probe/rawip"
	"github.com/ipsecpath/ipsecpath/probe/wire"
)

// ICMPProber sends ICMP echo requests with our own IPv4 header (DF set, the size and TTL
// asked for) through the raw IPv4 sender (rawip.Sender, path-MTU probe mode), reads a raw
// ICMP socket, and matches echo replies and ICMP errors to them by echo
// id, sequence number and IP ID (for errors: as quoted); toward an IPv6 target, ICMPv6
// echoes matched by id, sequence and the quoted destination. It is a Prober. Open it in the
// network namespace it must probe from; the sockets stay there. Probes are paced at
// rawip.DefaultRate with a burst of rawip.DefaultBurst (DESIGN.md, Safety), so the few
// probes of a path that signals go out at once.
type ICMPProber struct {
	send   *rawip.Sender    // IPv4 target: our packets, header included
	conn   net.PacketConn   // IPv4 target: ICMP arriving (IP header stripped)
	conn6  *ipv6.PacketConn // IPv6 target
	target netip.Addr
	src    netip.Addr // the route's preferred source, for the header
	ifMTU  int        // MTU of the outgoing interface
	ifName string
	id     uint16
	seq    uint16
	ipid   uint16
	pacer  *rawip.Pacer
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
	pacer, err := rawip.NewPacer(rawip.DefaultRate, rawip.DefaultBurst, nil)
	if err != nil {
		return nil, err
	}
	p := &ICMPProber{target: target, pacer: pacer, buf: make([]byte, 65536)}
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
	var err error
	if p.send, err = openSender(); err != nil {
		return err
	}
	if p.conn, err = listenRaw("ip4:icmp"); err != nil {
		p.send.Close()
		return err
	}
	return nil
}

// openSender opens the raw IPv4 sender; ErrPermission without CAP_NET_RAW. Its own pacer
// is not used: the probers pace with theirs, before they stamp the send time.
func openSender() (*rawip.Sender, error) {
	s, err := rawip.Open(rawip.Config{})
	if errors.Is(err, os.ErrPermission) {
		return nil, fmt.Errorf("%w: %v", ErrPermission, err)
	}
	return s, err
}

// listenRaw opens a raw socket that reads proto ("ip4:icmp", "ip4:tcp"); ErrPermission
// without CAP_NET_RAW.
func listenRaw(proto string) (net.PacketConn, error) {
	c, err := net.ListenPacket(proto, "0.0.0.0")
	if err != nil {
		if errors.Is(err, os.ErrPermission) {
			return nil, fmt.Errorf("%w: open raw socket %s: %v", ErrPermission, proto, err)
		}
		return nil, fmt.Errorf("pmtu: open raw socket %s: %w", proto, err)
	}
	return c, nil
}

// InterfaceMTU is the MTU of the interface toward the target (0 if unknown) and its name.
func (p *ICMPProber) InterfaceMTU() (int, string) { return p.ifMTU, p.ifName }

// Source is the source address the route toward the target uses.
func (p *ICMPProber) Source() netip.Addr { return p.src }

// Close closes the sockets.
func (p *ICMPProber) Close() error {
	if p.conn6 != nil {
		return p.conn6.Close()
	}
	return errors.Join(p.send.Close(), p.conn.Close())
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
	if err := p.pacer.Wait(ctx, p.target, 1); err != nil {
		return Reply{}, err
	}
	p.seq++
	p.ipid++
	id := echoID{ID: p.id, Seq: p.seq, IPID: p.ipid}
	if p.conn6 != nil {
		return p.probe6(ctx, r, id)
	}
	if cap(p.wbuf) < r.Size {
		p.wbuf = make([]byte, r.Size)
	}
	pkt := p.wbuf[:r.Size]
	putEchoPacket(pkt, id, uint8(r.TTL), p.src, p.target)
	sent := time.Now()
	if err := p.send.Write(p.target, pkt); err != nil {
		return sendFailure(err, p.target, r.Size, p.ifMTU)
	}
	return awaitReply(ctx, p.conn, sent, r.Timeout, "raw ICMP socket", func() (Reply, bool, error) {
		n, addr, err := p.conn.ReadFrom(p.buf)
		if err != nil {
			return Reply{}, false, err
		}
		from, ok := addrOf(addr)
		if !ok {
			return Reply{}, false, nil
		}
		rep, err := parseICMP(from, p.target, p.buf[:n], id)
		return rep, err == nil, nil
	})
}

// addrOf is the address of a raw socket's peer (a *net.IPAddr), unmapped.
func addrOf(a net.Addr) (netip.Addr, bool) {
	ia, ok := a.(*net.IPAddr)
	if !ok {
		return netip.Addr{}, false
	}
	ip, ok := netip.AddrFromSlice(ia.IP)
	return ip.Unmap(), ok
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
