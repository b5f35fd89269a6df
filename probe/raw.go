package probe

import (
	"context"
	"net/netip"
	"time"

	"github.com/ipsecpath/ipsecpath/probe/rawip"
)

// Pacing defaults (DESIGN.md: at most 100 packets/s per target unless the user says otherwise).
const (
	// DefaultRate is how many packets per second a Sender puts on the wire toward one
	// destination, fragments counted one by one.
	DefaultRate = rawip.DefaultRate
	// DefaultBurst is how many packets may leave back to back after a pause: enough for the
	// fragments of one icmp-large probe, so the fragments of a datagram travel together.
	DefaultBurst = rawip.DefaultBurst
	// MaxRate bounds what a caller may ask for.
	MaxRate = rawip.MaxRate
)

// SenderConfig configures a Sender: Rate in packets per second per destination (default
// DefaultRate, at most MaxRate), Burst the packets that may go back to back (default
// DefaultBurst).
type SenderConfig = rawip.Config

// Sender puts crafted IPv4 packets (Packets) on the wire through the raw IPv4 sender of
// package rawip (IP_HDRINCL, path-MTU probe mode, paced per destination; see
// rawip.Sender), which it embeds: WritePacket, Pace, Write and Close are rawip's. Safe
// for concurrent use.
type Sender struct {
	*rawip.Sender
}

// OpenSender opens a raw IPv4 sending socket in the current network namespace. Without
// root or CAP_NET_RAW the error wraps os.ErrPermission and says so.
func OpenSender(cfg SenderConfig) (*Sender, error) {
	s, err := rawip.Open(cfg)
	if err != nil {
		return nil, err
	}
	return &Sender{s}, nil
}

// needRaw is what a refused raw or packet socket means; errors carrying it also match
// os.ErrPermission.
const needRaw = "needs root or CAP_NET_RAW"

// Send puts every Wire packet of p on the wire, in order and back to back once the pacer
// for p.Dst allows len(p.Wire) packets. It honours ctx while waiting for the pacer.
func (s *Sender) Send(ctx context.Context, p *Packets) error {
	_, err := s.Sender.Send(ctx, p.Dst, p.Wire)
	return err
}

// SendStamped is Send, and returns when its first packet was handed to the kernel, after
// pacing: a time no later than any capture of the packets on the way can show.
func (s *Sender) SendStamped(ctx context.Context, p *Packets) (time.Time, error) {
	return s.Sender.Send(ctx, p.Dst, p.Wire)
}

// pace books n packets toward dst and returns when they may go (see rawip.Sender.Pace).
func (s *Sender) pace(ctx context.Context, dst netip.Addr, n int) error {
	return s.Pace(ctx, dst, n)
}

// writeTo sends one packet at once, unpaced (the caller paced it).
func (s *Sender) writeTo(dst netip.Addr, pkt []byte) error { return s.Write(dst, pkt) }

// SourceFor returns the local address the kernel would send from toward dst, in the
// current network namespace. It sends nothing (a connected UDP socket only routes).
func SourceFor(dst netip.Addr) (netip.Addr, error) { return rawip.SourceFor(dst) }
