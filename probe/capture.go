package probe

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"time"

	"golang.org/x/net/bpf"

	"github.com/ipsecpath/ipsecpath/probe/wire"
)

// Capture sizes.
const (
	// CaptureSnap is how many bytes of each packet the kernel hands us: the largest IPv4
	// header (60), an ICMP error header (8), the quoted header (60) and HeadLen after it,
	// rounded up. Everything a Seen needs; the rest of a 5000-byte probe stays in the kernel.
	CaptureSnap = 256
	// captureRcvBuf is the socket receive buffer: about 8000 snapped packets.
	captureRcvBuf = 4 << 20
)

// Offsets and values the capture filter reads. packetOutgoing is Linux's PACKET_OUTGOING
// (linux/if_packet.h), the packet type of a packet this host sends: here as a number so
// the filter assembles (and its tests run) on any OS.
const (
	packetOutgoing    = 4
	ipv4SrcOffset     = 12
	ipv4DstOffset     = 16
	ipv4ProtoOffset   = 9
	icmpQuotedDstOffs = 8 + ipv4DstOffset // from the ICMP header to the quoted destination
)

// CaptureConfig says which IPv4 packets a Capture keeps.
type CaptureConfig struct {
	// Peer is the far end. Kept: every packet arriving from Peer, and ICMP errors (from any
	// router) quoting a packet sent to Peer. Required.
	Peer netip.Addr
	// Outgoing also keeps the packets this host sends to Peer (AF_PACKET sees them as
	// PACKET_OUTGOING); without it they are filtered out in the kernel.
	Outgoing bool
	// Snap is how many bytes of each kept packet the kernel hands over, from the IP header
	// on (0 or less than CaptureSnap: CaptureSnap; at most MaxCaptureSnap).
	Snap int
}

// MaxCaptureSnap bounds CaptureConfig.Snap: the largest IPv4 packet.
const MaxCaptureSnap = 65535

// snap is the snap length the filter returns for a packet to keep.
func (cfg CaptureConfig) snap() uint32 {
	return uint32(min(max(cfg.Snap, CaptureSnap), MaxCaptureSnap))
}

// Capture reads IPv4 packets from every interface of the current network namespace through
// an AF_PACKET socket (SOCK_DGRAM: each packet starts at its IP header) with a classic BPF
// filter, so fragments are seen one by one, before any reassembly, with TTL and DF as they
// arrived. Each packet is cut to CaptureSnap bytes (or CaptureConfig.Snap) in the kernel.
type Capture struct {
	f    *os.File
	peer netip.Addr
	snap int // bytes of each packet the kernel hands over
}

// SnapLen returns how many bytes of each packet Read returns at most.
func (c *Capture) SnapLen() int { return c.snap }

// CaptureFilter is the BPF program of a Capture (see CaptureConfig). It runs on the packet
// from its IP header on and returns the snap length for a packet to keep, 0 to drop.
func CaptureFilter(cfg CaptureConfig) ([]bpf.RawInstruction, error) {
	if !cfg.Peer.Is4() {
		return nil, fmt.Errorf("probe: capture: peer %v is not an IPv4 address", cfg.Peer)
	}
	a := cfg.Peer.As4()
	peer := uint32(a[0])<<24 | uint32(a[1])<<16 | uint32(a[2])<<8 | uint32(a[3])
	// Instruction numbers in the comments; a JumpIf skips that many instructions after it.
	prog := []bpf.Instruction{
		bpf.LoadExtension{Num: bpf.ExtType},                                       // 0 A = pkttype
		bpf.JumpIf{Cond: bpf.JumpEqual, Val: packetOutgoing, SkipTrue: 11},        // 1 → 13 outgoing
		bpf.LoadAbsolute{Off: ipv4SrcOffset, Size: 4},                             // 2 A = src
		bpf.JumpIf{Cond: bpf.JumpEqual, Val: peer, SkipTrue: 12},                  // 3 → 16 keep
		bpf.LoadAbsolute{Off: ipv4ProtoOffset, Size: 1},                           // 4 A = proto
		bpf.JumpIf{Cond: bpf.JumpEqual, Val: ProtoICMP, SkipFalse: 11},            // 5 → 17 drop
		bpf.LoadMemShift{Off: 0},                                                  // 6 X = IHL*4
		bpf.LoadIndirect{Off: 0, Size: 1},                                         // 7 A = ICMP type
		bpf.JumpIf{Cond: bpf.JumpEqual, Val: wire.ICMPUnreach, SkipTrue: 2},       // 8 → 11
		bpf.JumpIf{Cond: bpf.JumpEqual, Val: wire.ICMPTimeExceeded, SkipTrue: 1},  // 9 → 11
		bpf.JumpIf{Cond: bpf.JumpEqual, Val: wire.ICMPParamProblem, SkipFalse: 6}, // 10 → 17 drop
		bpf.LoadIndirect{Off: icmpQuotedDstOffs, Size: 4},                         // 11 A = quoted dst
		bpf.JumpIf{Cond: bpf.JumpEqual, Val: peer, SkipTrue: 3, SkipFalse: 4},     // 12 → 16 / 17
		bpf.LoadAbsolute{Off: ipv4DstOffset, Size: 4},                             // 13 outgoing: A = dst
		bpf.JumpIf{Cond: bpf.JumpEqual, Val: peer, SkipFalse: 2},                  // 14 → 17 drop
		bpf.RetConstant{Val: outgoingSnap(cfg)},                                   // 15
		bpf.RetConstant{Val: cfg.snap()},                                          // 16 keep
		bpf.RetConstant{Val: 0},                                                   // 17 drop
	}
	return bpf.Assemble(prog)
}

func outgoingSnap(cfg CaptureConfig) uint32 {
	if cfg.Outgoing {
		return cfg.snap()
	}
	return 0
}

// Read reads one packet (from its IP header, at most SnapLen bytes) into b. After Close
// it returns net.ErrClosed; past a deadline, os.ErrDeadlineExceeded.
func (c *Capture) Read(b []byte) (int, error) {
	n, err := c.f.Read(b)
	if err != nil {
		return n, c.readError(err)
	}
	return n, nil
}

func (c *Capture) readError(err error) error {
	if errors.Is(err, os.ErrClosed) {
		err = net.ErrClosed
	}
	return &net.OpError{Op: "read", Net: "packet", Addr: &net.IPAddr{IP: c.peer.AsSlice()}, Err: err}
}

// SetReadDeadline sets the deadline for Read.
func (c *Capture) SetReadDeadline(t time.Time) error { return c.f.SetReadDeadline(t) }

// Close closes the capture; a blocked Read returns net.ErrClosed.
func (c *Capture) Close() error { return c.f.Close() }

// CaptureStats are the kernel's counters for a capture since the previous call.
type CaptureStats struct {
	Packets uint32 // passed the filter
	Drops   uint32 // passed the filter but the receive buffer was full
}
