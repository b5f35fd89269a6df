package pmtu

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"syscall"
	"time"

	"golang.org/x/net/ipv6"
)

// Socket options of linux/in6.h that package syscall lacks.
const (
	ipv6DontFrag       = 62 // IPV6_DONTFRAG: never fragment locally, fail with EMSGSIZE
	ipv6PMTUDiscProbe  = 3  // IPV6_PMTUDISC_PROBE: ignore the cached path MTU
	ipv6MTUDiscoverOpt = 23 // IPV6_MTU_DISCOVER
)

// open6 opens the raw ICMPv6 socket: don't-fragment, and the cached path MTU ignored (see
// probeMode), so every probe meets the path.
func (p *ICMPProber) open6() error {
	c, err := net.ListenPacket("ip6:ipv6-icmp", "::")
	if err != nil {
		if errors.Is(err, os.ErrPermission) {
			return fmt.Errorf("%w: open raw ICMPv6 socket: %v", ErrPermission, err)
		}
		return fmt.Errorf("pmtu: open raw ICMPv6 socket: %w", err)
	}
	rc, err := c.(syscall.Conn).SyscallConn()
	if err != nil {
		c.Close()
		return fmt.Errorf("pmtu: raw ICMPv6 socket: %w", err)
	}
	var serr error
	if err := rc.Control(func(fd uintptr) {
		if serr = syscall.SetsockoptInt(int(fd), syscall.IPPROTO_IPV6, ipv6DontFrag, 1); serr != nil {
			return
		}
		serr = syscall.SetsockoptInt(int(fd), syscall.IPPROTO_IPV6, ipv6MTUDiscoverOpt, ipv6PMTUDiscProbe)
	}); err != nil || serr != nil {
		c.Close()
		return fmt.Errorf("pmtu: raw ICMPv6 socket: don't-fragment: %w", errors.Join(err, os.NewSyscallError("setsockopt", serr)))
	}
	p.conn6 = ipv6.NewPacketConn(c)
	return nil
}

// probe6 is Probe toward an IPv6 target: r.Size is the whole IPv6 packet, 40-byte header
// included; r.TTL is the hop limit.
func (p *ICMPProber) probe6(ctx context.Context, r Request, id echoID) (Reply, error) {
	n := r.Size - ipv6Header
	if cap(p.wbuf) < n {
		p.wbuf = make([]byte, n)
	}
	body := p.wbuf[:n]
	putEcho6(body, id)
	sent := time.Now()
	p.pacer.sent(sent)
	dst := &net.IPAddr{IP: p.target.AsSlice()}
	if _, err := p.conn6.WriteTo(body, &ipv6.ControlMessage{HopLimit: r.TTL}, dst); err != nil {
		if errors.Is(err, syscall.EMSGSIZE) {
			return Reply{Outcome: LocalTooBig, MTU: p.ifMTU}, nil
		}
		if errors.Is(err, os.ErrPermission) {
			return Reply{}, fmt.Errorf("%w: send to %s: %v", ErrPermission, p.target, err)
		}
		return Reply{}, fmt.Errorf("pmtu: send %d bytes to %s: %w", r.Size, p.target, err)
	}
	deadline := sent.Add(r.Timeout)
	if d, ok := ctx.Deadline(); ok && d.Before(deadline) {
		deadline = d
	}
	stop := context.AfterFunc(ctx, func() { p.conn6.SetReadDeadline(time.Unix(1, 0)) })
	defer stop()
	if err := p.conn6.SetReadDeadline(deadline); err != nil {
		return Reply{}, fmt.Errorf("pmtu: set read deadline: %w", err)
	}
	for {
		m, _, src, err := p.conn6.ReadFrom(p.buf)
		if err != nil {
			if ctx.Err() != nil {
				return Reply{}, ctx.Err()
			}
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				return Reply{Outcome: Timeout}, nil
			}
			return Reply{}, fmt.Errorf("pmtu: read from raw ICMPv6 socket: %w", err)
		}
		ia, ok := src.(*net.IPAddr)
		if !ok {
			continue
		}
		from, ok := netipFromIP(ia.IP)
		if !ok {
			continue
		}
		rep, err := parseICMPv6(from, p.target, p.buf[:m], id)
		if err != nil {
			continue
		}
		rep.RTT = time.Since(sent)
		return rep, nil
	}
}

func netipFromIP(ip net.IP) (netip.Addr, bool) {
	a, ok := netip.AddrFromSlice(ip)
	return a.Unmap(), ok
}
