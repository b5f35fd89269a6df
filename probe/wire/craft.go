package wire

import (
	"encoding/binary"
	"net/netip"
)

// Well-known ports of the protocols the probes imitate.
const (
	PortIKE  = 500  // IKE (ISAKMP)
	PortNATT = 4500 // IKE and ESP after NAT traversal (RFC 3947/3948)
	PortL2TP = 1701 // L2TP
)

// Defaults of BuildParams.
const (
	DefaultTTL = 64
	// DefaultSmallSize is the IP total length of the unfragmented esp and ah probes: small
	// enough for any path, big enough to look like real traffic.
	DefaultSmallSize = 128
	// ICMPLargePayload is the echo payload of icmp-large: `ping -l 5000` / `ping -s 5000`.
	ICMPLargePayload = 5000
	// tcpMSS is the MSS option of TCP probes, what an Ethernet host announces.
	tcpMSS = 1460
	// tcpWindow is the window of TCP probes (Linux's initial window on Ethernet).
	tcpWindow = 64240
)

// Header sizes of what we craft.
const (
	udpHeaderLen   = 8
	icmpHeaderLen  = 8
	tcpSynLen      = 24 // 20 + MSS option
	ikeHeaderLen   = 28
	ahProbeICVLen  = 12 // HMAC-SHA1-96, the common AH ICV
	ahProbeLen     = AHFixedLen + ahProbeICVLen
	nonESPMarkerSz = 4
)

// BuildParams says how to craft one probe (probe.Build). The zero value of each field means
// its default. The same parameters serve the initiator (forward probes toward the target)
// and the agent (reverse probes toward the initiator): only Src and Dst swap.
type BuildParams struct {
	// Src and Dst are the IPv4 addresses in the header. Both are required: the UDP and TCP
	// checksums cover them. probe.SourceFor finds the local address toward a destination.
	Src, Dst netip.Addr
	// Nonce maps everything the probe causes back to it (see the marker layout in
	// marker.go). Use probe.NewNonces: it must be ≥ 256 with non-zero low 16 bits.
	Nonce uint32
	// Size is the IP total length of the datagram before fragmentation. 0 means: DefaultSmallSize
	// for esp and ah, the IKE_SA_INIT's natural size (about 430 bytes) for ike and natt; FragProbeSize for the -frag forms; 20+8+ICMPLargePayload for
	// icmp-large. pmtu needs it. tcp:PORT is always a 44-byte SYN and ignores it.
	Size int
	// FragSize is the largest fragment on the wire, IP header included, for the -frag forms
	// and icmp-large (default probe.DefaultFragSize). The other forms are never fragmented.
	FragSize int
	// Order is the order in which the fragments go out: a permutation of 0..n-1, e.g. {2,1,0}
	// for last-first. nil sends them in order. Ignored for unfragmented probes. Conntrack on
	// the sending host restores the order (see probe.Sender).
	Order []int
	// TTL of the probe (default DefaultTTL): smaller values find the hop that drops it.
	TTL uint8
	// DF sets don't-fragment on an unfragmented probe (pmtu wants it). Fragments never carry it.
	DF bool
	// SrcPort and DstPort override the UDP ports (default 500→500 for ike, 4500→4500 for natt:
	// the ports the real protocol uses, also from the agent) and the TCP source port (default
	// derived from the nonce, in 32768–60999; the destination is the id's port).
	SrcPort, DstPort uint16
	// IPID is the IP identification (default the nonce's low 16 bits, never 0: with 0 the
	// kernel would choose its own and the fragments could no longer be matched).
	IPID uint16
}

// PutTCPSyn writes a SYN with the MSS option into b (len 24): ports, ISN, window 64240,
// MSS 1460, and the checksum over the IPv4 pseudo-header of src and dst.
func PutTCPSyn(b []byte, sp, dp uint16, isn uint32, src, dst netip.Addr) {
	binary.BigEndian.PutUint16(b[0:2], sp)
	binary.BigEndian.PutUint16(b[2:4], dp)
	binary.BigEndian.PutUint32(b[4:8], isn)
	binary.BigEndian.PutUint32(b[8:12], 0)
	b[12] = (tcpSynLen / 4) << 4
	b[13] = TCPSyn
	binary.BigEndian.PutUint16(b[14:16], tcpWindow)
	b[16], b[17], b[18], b[19] = 0, 0, 0, 0
	b[20], b[21] = 2, 4 // MSS
	binary.BigEndian.PutUint16(b[22:24], tcpMSS)
	binary.BigEndian.PutUint16(b[16:18], TCPChecksum(src, dst, b))
}

// Fill writes a recognisable filler: "ipsecpath " repeated (by doubling copies).
func Fill(b []byte) {
	const pat = "ipsecpath "
	n := copy(b, pat)
	for n < len(b) {
		n += copy(b[n:], b[:n])
	}
}
