package pmtu

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"syscall"
	"time"

	"golang.org/x/net/ipv6"
	"golang.org/x/sys/unix"

	"github.com/ipsecpath/ipsecpath/probe/wire"
)

// open6 opens the raw ICMPv6 socket: don't-fragment (IPV6_DONTFRAG: never fragment
// locally, fail with EMSGSIZE), and the cached path MTU ignored (IPV6_PMTUDISC_PROBE, as
// rawip.Sender does for IPv4), so every probe meets the path.
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
		if serr = unix.SetsockoptInt(int(fd), unix.IPPROTO_IPV6, unix.IPV6_DONTFRAG, 1); serr != nil {
			return
		}
		serr = unix.SetsockoptInt(int(fd), unix.IPPROTO_IPV6, unix.IPV6_MTU_DISCOVER, unix.IPV6_PMTUDISC_PROBE)
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
	n := r.Size - wire.IPv6HeaderLen
	if cap(p.wbuf) < n {
		p.wbuf = make([]byte, n)
	}
	body := p.wbuf[:n]
	putEcho6(body, id)
	sent := time.Now()
	dst := &net.IPAddr{IP: p.target.AsSlice()}
	if _, err := p.conn6.WriteTo(body, &ipv6.ControlMessage{HopLimit: r.TTL}, dst); err != nil {
		return sendFailure(err, p.target, r.Size, p.ifMTU)
	}
	return awaitReply(ctx, p.conn6, sent, r.Timeout, "raw ICMPv6 socket", func() (Reply, bool, error) {
		m, _, src, err := p.conn6.ReadFrom(p.buf)
		if err != nil {
			return Reply{}, false, err
		}
		from, ok := addrOf(src)
		if !ok {
			return Reply{}, false, nil
		}
		rep, err := parseICMPv6(from, p.target, p.buf[:m], id)
		return rep, err == nil, nil
	})
}
