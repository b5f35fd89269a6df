package probe

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"sync"
	"syscall"
	"time"

	"golang.org/x/net/ipv4"
)

// Pacing defaults (DESIGN.md: at most 100 packets/s per target unless the user says otherwise).
const (
	// DefaultRate is how many packets per second a Sender puts on the wire toward one
	// destination, fragments counted one by one.
	DefaultRate = 100
	// DefaultBurst is how many packets may leave back to back after a pause: enough for the
	// fragments of one icmp-large probe, so the fragments of a datagram travel together.
	DefaultBurst = 5
	// MaxRate bounds what a caller may ask for.
	MaxRate = 100000
)

// SenderConfig configures a Sender.
type SenderConfig struct {
	Rate  float64 // packets per second per destination (default DefaultRate, at most MaxRate)
	Burst int     // packets that may go back to back (default DefaultBurst)
}

// Sender puts crafted IPv4 packets on the wire through a raw socket with IP_HDRINCL: the
// header we built is the header that goes out (TTL, ID, DF, offsets, protocol), except that
// Linux always recomputes the header checksum and total length and fills in an ID of 0 or
// a source of 0.0.0.0 (we never send those). It opens in the network namespace of the
// calling thread (run it inside the lab's (*Lab).Do to send from a lab node), and paces
// per destination. It cannot receive: the socket is IPPROTO_RAW.
//
// Kernel and wire header forms: golang.org/x/net/ipv4's Header.Marshal writes the local
// raw-socket form, which on the BSDs has the total length and fragment offset in host byte
// order. On Linux that form equals the wire form, so Build's wire bytes go to the kernel
// unchanged; we write the socket directly (sendto) so the send path does not allocate.
//
// Connection tracking on the sending host: raw packets pass the OUTPUT hooks, and when
// conntrack is active in the namespace (any nftables rule using ct, iptables state matches,
// Docker, firewalld) its defragmenter reassembles our fragments there and the kernel cuts
// them again, in order and at the same sizes. Seen in the lab: a last-first Order arrives
// first-first with an nft `ct state` rule in ini's output chain. Sizes, offsets and IP ID
// survive; a chosen fragment order does not. Routers on the path are not affected.
//
// Send and WritePacket are safe for concurrent use.
type Sender struct {
	conn *net.IPConn
	raw  *ipv4.RawConn // sets IP_HDRINCL; kept for its socket options
	sc   syscall.RawConn

	pmu    sync.Mutex
	pacers map[netip.Addr]*pacer
	rate   float64
	burst  int

	wmu     sync.Mutex // guards cur, sa, werr during one write
	cur     []byte
	sa      syscall.SockaddrInet4
	werr    error
	writeFn func(fd uintptr) bool

	timers sync.Pool
}

// OpenSender opens a raw IPv4 sending socket in the current network namespace. Without
// root or CAP_NET_RAW the error wraps os.ErrPermission and says so.
func OpenSender(cfg SenderConfig) (*Sender, error) {
	if cfg.Rate == 0 {
		cfg.Rate = DefaultRate
	}
	if cfg.Rate < 0 || cfg.Rate > MaxRate {
		return nil, fmt.Errorf("probe: send rate %g packets/s: want 0–%d", cfg.Rate, MaxRate)
	}
	if cfg.Burst <= 0 {
		cfg.Burst = DefaultBurst
	}
	c, err := net.ListenPacket("ip4:255", "0.0.0.0") // IPPROTO_RAW: send only
	if err != nil {
		return nil, rawOpenError(err)
	}
	conn := c.(*net.IPConn)
	raw, err := ipv4.NewRawConn(conn)
	if err != nil {
		conn.Close()
		return nil, rawOpenError(err)
	}
	sc, err := conn.SyscallConn()
	if err != nil {
		conn.Close()
		return nil, fmt.Errorf("probe: raw IPv4 socket: %w", err)
	}
	// IP_PMTUDISC_PROBE: check a packet only against the interface MTU, never against a
	// path MTU the kernel cached from an earlier fragmentation-needed, which would refuse
	// a large DF probe with EMSGSIZE from memory instead of letting it test the path.
	var serr error
	if err := sc.Control(func(fd uintptr) {
		serr = syscall.SetsockoptInt(int(fd), syscall.IPPROTO_IP, syscall.IP_MTU_DISCOVER, ipPMTUDiscProbe)
	}); err != nil || serr != nil {
		conn.Close()
		return nil, fmt.Errorf("probe: raw IPv4 socket: set IP_MTU_DISCOVER to probe: %w", errors.Join(err, serr))
	}
	s := &Sender{conn: conn, raw: raw, sc: sc, pacers: map[netip.Addr]*pacer{},
		rate: cfg.Rate, burst: cfg.Burst}
	s.writeFn = s.write
	s.timers.New = func() any {
		t := time.NewTimer(time.Hour)
		t.Stop()
		return t
	}
	return s, nil
}

// ipPMTUDiscProbe is IP_PMTUDISC_PROBE from linux/in.h (not in package syscall).
const ipPMTUDiscProbe = 3

// needRaw is what a refused raw or packet socket means; errors carrying it also match
// os.ErrPermission.
const needRaw = "needs root or CAP_NET_RAW"

func rawOpenError(err error) error {
	if errors.Is(err, os.ErrPermission) {
		return fmt.Errorf("probe: open raw IPv4 socket: %s: %w", needRaw, err)
	}
	return fmt.Errorf("probe: open raw IPv4 socket: %w", err)
}

// Close closes the socket. Sends after Close fail with net.ErrClosed.
func (s *Sender) Close() error { return s.raw.Close() }

// Send puts every Wire packet of p on the wire, in order and back to back once the pacer
// for p.Dst allows len(p.Wire) packets. It honours ctx while waiting for the pacer.
func (s *Sender) Send(ctx context.Context, p *Packets) error {
	_, err := s.SendStamped(ctx, p)
	return err
}

// SendStamped is Send, and returns when its first packet was handed to the kernel, after
// pacing: a time no later than any capture of the packets on the way can show.
func (s *Sender) SendStamped(ctx context.Context, p *Packets) (time.Time, error) {
	if err := s.pace(ctx, p.Dst, len(p.Wire)); err != nil {
		return time.Time{}, err
	}
	at := time.Now()
	for _, w := range p.Wire {
		if err := s.writeTo(p.Dst, w); err != nil {
			return at, err
		}
	}
	return at, nil
}

// WritePacket sends one IPv4 packet in wire form (its destination is read from the header),
// paced like Send.
func (s *Sender) WritePacket(ctx context.Context, pkt []byte) error {
	if len(pkt) < ipv4MinHeader || pkt[0]>>4 != 4 {
		return fmt.Errorf("probe: write: not an IPv4 packet (%d bytes)", len(pkt))
	}
	dst := netip.AddrFrom4([4]byte(pkt[16:20]))
	if err := s.pace(ctx, dst, 1); err != nil {
		return err
	}
	return s.writeTo(dst, pkt)
}

func (s *Sender) writeTo(dst netip.Addr, pkt []byte) error {
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
	err := syscall.Sendto(int(fd), s.cur, 0, &s.sa)
	if err == syscall.EAGAIN {
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

// pacer is a token bucket per destination in GCRA form: tat is the theoretical arrival
// time of the next packet; each packet moves it one interval on, and a reservation may go
// once tat is at most burst intervals ahead of now.
type pacer struct {
	mu       sync.Mutex
	interval time.Duration
	burst    int
	tat      time.Time
}

func (s *Sender) pacerFor(dst netip.Addr) *pacer {
	s.pmu.Lock()
	defer s.pmu.Unlock()
	p := s.pacers[dst]
	if p == nil {
		if len(s.pacers) >= 4096 { // a long-running agent: forget idle destinations
			clear(s.pacers)
		}
		p = &pacer{interval: time.Duration(float64(time.Second) / s.rate), burst: s.burst}
		s.pacers[dst] = p
	}
	return p
}

// reserve books n packets and returns when they may go (back to back).
func (p *pacer) reserve(now time.Time, n int) time.Time {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.tat.Before(now) {
		p.tat = now
	}
	p.tat = p.tat.Add(time.Duration(n) * p.interval)
	return p.tat.Add(-time.Duration(p.burst) * p.interval)
}

func (s *Sender) pace(ctx context.Context, dst netip.Addr, n int) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	now := time.Now()
	at := s.pacerFor(dst).reserve(now, n)
	d := at.Sub(now)
	if d <= 0 {
		return nil
	}
	t := s.timers.Get().(*time.Timer)
	defer s.timers.Put(t)
	t.Reset(d)
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		t.Stop()
		return ctx.Err()
	}
}

// SourceFor returns the local address the kernel would send from toward dst, in the
// current network namespace. It sends nothing (a connected UDP socket only routes).
func SourceFor(dst netip.Addr) (netip.Addr, error) {
	c, err := net.DialUDP("udp4", nil, net.UDPAddrFromAddrPort(netip.AddrPortFrom(dst, 9)))
	if err != nil {
		return netip.Addr{}, fmt.Errorf("probe: no route to %s: %w", dst, err)
	}
	defer c.Close()
	return c.LocalAddr().(*net.UDPAddr).AddrPort().Addr().Unmap(), nil
}
