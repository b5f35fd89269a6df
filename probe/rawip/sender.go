package rawip

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"time"

	"github.com/ipsecpath/ipsecpath/probe/wire"
)

// Config configures a Sender.
type Config struct {
	Rate  float64 // packets per second per destination (0: DefaultRate, at most MaxRate)
	Burst int     // packets that may go back to back (0: DefaultBurst)
}

// ErrLinuxOnly is what opening a raw IP socket returns on every OS but Linux: the sender
// relies on Linux's IP_HDRINCL semantics (wire-form headers, IP_PMTUDISC_PROBE).
var ErrLinuxOnly = errors.New("raw IP sockets: Linux only")

// Send puts every packet of pkts (IPv4, wire form) on the wire toward dst, in order and
// back to back once the pacer for dst allows len(pkts) packets. It honours ctx while
// waiting for the pacer, and returns when its first packet was handed to the kernel: a
// time no later than any capture of the packets on the way can show.
func (s *Sender) Send(ctx context.Context, dst netip.Addr, pkts [][]byte) (time.Time, error) {
	if err := s.pacer.Wait(ctx, dst, len(pkts)); err != nil {
		return time.Time{}, err
	}
	at := time.Now()
	for _, w := range pkts {
		if err := s.Write(dst, w); err != nil {
			return at, err
		}
	}
	return at, nil
}

// WritePacket sends one IPv4 packet in wire form (its destination is read from the header),
// paced like Send.
func (s *Sender) WritePacket(ctx context.Context, pkt []byte) error {
	if len(pkt) < wire.IPv4HeaderLen || pkt[0]>>4 != 4 {
		return fmt.Errorf("probe: write: not an IPv4 packet (%d bytes)", len(pkt))
	}
	dst := netip.AddrFrom4([4]byte(pkt[16:20]))
	if err := s.pacer.Wait(ctx, dst, 1); err != nil {
		return err
	}
	return s.Write(dst, pkt)
}

// Pace books n packets toward dst with the Sender's pacer and returns when they may go
// (or with ctx.Err()); the caller then sends them with Write. Send and WritePacket pace
// themselves.
func (s *Sender) Pace(ctx context.Context, dst netip.Addr, n int) error {
	return s.pacer.Wait(ctx, dst, n)
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
