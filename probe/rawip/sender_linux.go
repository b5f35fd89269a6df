//go:build linux

package rawip

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"sync"
	"syscall"

	"golang.org/x/sys/unix"
)

// Sender puts crafted IPv4 packets on the wire through a raw socket with IP_HDRINCL: the
// header we built is the header that goes out (TTL, ID, DF, offsets, protocol), except that
// Linux always recomputes the header checksum and total length and fills in an ID of 0 or
// a source of 0.0.0.0. It opens in the network namespace of the calling thread (run it
// inside the lab's (*Lab).Do to send from a lab node), and paces per destination. It
// cannot receive: the socket is IPPROTO_RAW.
//
// The socket is in path-MTU probe mode (IP_PMTUDISC_PROBE): a packet is checked only
// against the outgoing interface's MTU, never against a path MTU the kernel cached from an
// earlier fragmentation-needed, which would refuse a large DF probe with EMSGSIZE from
// memory instead of letting it test the path. tracepath does the same.
//
// Kernel and wire header forms: golang.org/x/net/ipv4's Header.Marshal writes the local
// raw-socket form, which on the BSDs has the total length and fragment offset in host byte
// order. On Linux that form equals the wire form, so wire bytes go to the kernel unchanged;
// we write the socket directly (sendto) so the send path does not allocate.
//
// Connection tracking on the sending host: raw packets pass the OUTPUT hooks, and when
// conntrack is active in the namespace (any nftables rule using ct, iptables state matches,
// Docker, firewalld) its defragmenter reassembles our fragments there and the kernel cuts
// them again, in order and at the same sizes. Seen in the lab: a last-first Order arrives
// first-first with an nft `ct state` rule in ini's output chain. Sizes, offsets and IP ID
// survive; a chosen fragment order does not. Routers on the path are not affected.
//
// Every method is safe for concurrent use.
type Sender struct {
	conn  *net.IPConn
	sc    syscall.RawConn
	pacer *Pacer

	wmu     sync.Mutex // guards cur, sa, werr during one write
	cur     []byte
	sa      unix.SockaddrInet4
	werr    error
	writeFn func(fd uintptr) bool
}

// Open opens a raw IPv4 sending socket in the current network namespace. Without root or
// CAP_NET_RAW the error wraps os.ErrPermission and says so.
func Open(cfg Config) (*Sender, error) {
	pacer, err := NewPacer(cfg.Rate, cfg.Burst, nil)
	if err != nil {
		return nil, fmt.Errorf("probe: %w", err)
	}
	c, err := net.ListenPacket("ip4:255", "0.0.0.0") // IPPROTO_RAW: send only
	if err != nil {
		return nil, openError(err)
	}
	conn := c.(*net.IPConn)
	sc, err := conn.SyscallConn()
	if err != nil {
		conn.Close()
		return nil, fmt.Errorf("probe: raw IPv4 socket: %w", err)
	}
	var serr error
	if err := sc.Control(func(fd uintptr) {
		serr = unix.SetsockoptInt(int(fd), unix.IPPROTO_IP, unix.IP_HDRINCL, 1)
		if serr != nil {
			serr = os.NewSyscallError("setsockopt IP_HDRINCL", serr)
			return
		}
		serr = unix.SetsockoptInt(int(fd), unix.IPPROTO_IP, unix.IP_MTU_DISCOVER, unix.IP_PMTUDISC_PROBE)
		if serr != nil {
			serr = os.NewSyscallError("setsockopt IP_MTU_DISCOVER", serr)
		}
	}); err != nil || serr != nil {
		conn.Close()
		return nil, openError(errors.Join(err, serr))
	}
	s := &Sender{conn: conn, sc: sc, pacer: pacer}
	s.writeFn = s.write
	return s, nil
}

// needRaw is what a refused raw socket means; errors carrying it also match
// os.ErrPermission.
const needRaw = "needs root or CAP_NET_RAW"

func openError(err error) error {
	if errors.Is(err, os.ErrPermission) {
		return fmt.Errorf("probe: open raw IPv4 socket: %s: %w", needRaw, err)
	}
	return fmt.Errorf("probe: open raw IPv4 socket: %w", err)
}

// Close closes the socket. Sends after Close fail with net.ErrClosed.
func (s *Sender) Close() error { return s.conn.Close() }

// Write sends one IPv4 packet in wire form toward dst at once, unpaced (see Pace). A
// packet larger than the outgoing interface's MTU fails with an error matching
// syscall.EMSGSIZE; a refusal by a local firewall rule, syscall.EPERM.
func (s *Sender) Write(dst netip.Addr, pkt []byte) error {
	s.wmu.Lock()
	s.cur = pkt
	s.sa.Addr = dst.As4()
	s.werr = nil
	err := s.sc.Write(s.writeFn)
	if err == nil {
		err = s.werr
	}
	s.cur = nil
	s.wmu.Unlock()
	if err != nil {
		return sendError(dst, len(pkt), err)
	}
	return nil
}

// write runs on the socket's fd (syscall.RawConn.Write); false means "wait until writable".
func (s *Sender) write(fd uintptr) bool {
	err := unix.Sendto(int(fd), s.cur, 0, &s.sa)
	if err == unix.EAGAIN {
		return false
	}
	s.werr = err
	return true
}

func sendError(dst netip.Addr, n int, err error) error {
	if errors.Is(err, net.ErrClosed) || errors.Is(err, os.ErrClosed) {
		return &net.OpError{Op: "write", Net: "ip4:raw", Addr: &net.IPAddr{IP: dst.AsSlice()}, Err: net.ErrClosed}
	}
	var errno syscall.Errno
	if errors.As(err, &errno) {
		err = os.NewSyscallError("sendto", errno)
	}
	op := &net.OpError{Op: "write", Net: "ip4:raw", Addr: &net.IPAddr{IP: dst.AsSlice()}, Err: err}
	switch {
	case errors.Is(err, syscall.EMSGSIZE):
		return fmt.Errorf("probe: %d-byte packet is larger than the outgoing interface's MTU: %w", n, op)
	case errors.Is(err, syscall.EPERM):
		// On a raw socket that is open, EPERM comes from netfilter: a local OUTPUT rule.
		return fmt.Errorf("probe: a local firewall rule refused the packet: %w", op)
	}
	return op
}
