//go:build linux

package probe

import (
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"syscall"

	"golang.org/x/sys/unix"

	"github.com/ipsecpath/ipsecpath/probe/wire"
	"github.com/ipsecpath/ipsecpath/report"
)

// dialIKE opens a connected UDP socket to target:port from sport (0: ephemeral), with
// IP_RECVERR (so an ICMP error comes back with who sent it) and PMTU discovery off (DF
// never set: a big request is fragmented, by us or by a router, as IKE daemons' are).
func dialIKE(target netip.Addr, port, sport int) (*net.UDPConn, error) {
	var laddr *net.UDPAddr
	if sport != 0 {
		laddr = &net.UDPAddr{Port: sport}
	}
	raddr := net.UDPAddrFromAddrPort(netip.AddrPortFrom(target.Unmap(), uint16(port)))
	d := net.Dialer{LocalAddr: laddr, Control: func(_, _ string, rc syscall.RawConn) error {
		var serr error
		err := rc.Control(func(fd uintptr) {
			if serr = unix.SetsockoptInt(int(fd), unix.IPPROTO_IP, unix.IP_RECVERR, 1); serr != nil {
				return
			}
			serr = unix.SetsockoptInt(int(fd), unix.IPPROTO_IP, unix.IP_MTU_DISCOVER, unix.IP_PMTUDISC_DONT)
		})
		if err != nil {
			return err
		}
		return serr
	}}
	c, err := d.Dial("udp4", raddr.String())
	if err != nil {
		if errors.Is(err, syscall.EADDRINUSE) {
			return nil, fmt.Errorf("probe: ike: source port %d is taken (an IKE daemon on this host?): %w", sport, err)
		}
		return nil, fmt.Errorf("probe: ike: open UDP socket to %s: %w", raddr, err)
	}
	return c.(*net.UDPConn), nil
}

// readICMPError takes one ICMP error from the socket's error queue (IP_RECVERR): type,
// code, who sent it, and the next-hop MTU of a fragmentation-needed.
func readICMPError(c *net.UDPConn) *report.ICMP {
	rc, err := c.SyscallConn()
	if err != nil {
		return nil
	}
	var out *report.ICMP
	_ = rc.Read(func(fd uintptr) bool {
		var data [512]byte
		var oob [512]byte
		_, oobn, _, _, err := unix.Recvmsg(int(fd), data[:], oob[:], unix.MSG_ERRQUEUE|unix.MSG_DONTWAIT)
		if err != nil {
			return true
		}
		msgs, err := unix.ParseSocketControlMessage(oob[:oobn])
		if err != nil {
			return true
		}
		for _, m := range msgs {
			if m.Header.Level != unix.IPPROTO_IP || m.Header.Type != unix.IP_RECVERR || len(m.Data) < 16 {
				continue
			}
			// struct sock_extended_err: errno u32, origin u8, type u8, code u8, pad u8,
			// info u32, data u32; then the offender's sockaddr_in.
			if m.Data[4] != unix.SO_EE_ORIGIN_ICMP {
				continue
			}
			ic := &report.ICMP{Type: int(m.Data[5]), Code: int(m.Data[6])}
			if ic.Type == wire.ICMPUnreach && ic.Code == wire.CodeFragNeeded {
				ic.MTU = int(binary.NativeEndian.Uint32(m.Data[8:12]))
			}
			if len(m.Data) >= 16+8 && binary.NativeEndian.Uint16(m.Data[16:18]) == unix.AF_INET {
				ic.From = netip.AddrFrom4([4]byte(m.Data[20:24])).String()
			}
			ic.Text = wire.ICMPBrief(ic.Type, ic.Code)
			out = ic
		}
		return true
	})
	return out
}

// pathMTU is the kernel's route MTU toward target (IP_MTU of a connected socket), 0 if
// unknown.
func pathMTU(target netip.Addr, port int) int {
	c, err := dialIKE(target, port, 0)
	if err != nil {
		return 0
	}
	defer c.Close()
	rc, err := c.SyscallConn()
	if err != nil {
		return 0
	}
	mtu := 0
	_ = rc.Control(func(fd uintptr) {
		if v, err := unix.GetsockoptInt(int(fd), unix.IPPROTO_IP, unix.IP_MTU); err == nil {
			mtu = v
		}
	})
	return mtu
}
