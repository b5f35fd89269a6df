package wire

// The IPv4 header (RFC 791) in wire form, as the probes write it and the capture reads it:
//
//	 0                   1                   2                   3
//	 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1
//	+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//	|Version|  IHL  |      TOS      |          Total Length         |
//	+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//	|         Identification        |0|D|M|     Fragment Offset     |
//	+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//	|      TTL      |    Protocol   |        Header Checksum        |
//	+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//	|                 Source and Destination Address                |
//	+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//	|                    Options (IHL > 5)                          |
//
// This is the wire form, which is also what Linux's raw sockets take with IP_HDRINCL; the
// kernel forms of other systems (golang.org/x/net/ipv4's Header.Marshal) differ.

import (
	"encoding/binary"
	"errors"
	"net/netip"
)

// IPv4 header sizes.
const (
	IPv4HeaderLen    = 20 // without options
	IPv4MaxHeaderLen = 60 // IHL 15
)

// IP protocol numbers (IANA) the probers send and read; IPv6 next-header values share them.
const (
	ProtoICMP     = 1
	ProtoTCP      = 6
	ProtoUDP      = 17
	ProtoFragment = 44 // IPv6 fragment extension header
	ProtoESP      = 50
	ProtoAH       = 51
	ProtoNone     = 59 // IPv6-NoNxt: "no next header", what the AH probes protect
)

// Flag bits and offset mask of the IPv4 flags/fragment-offset field.
const (
	flagDF     = 0x4000
	flagMF     = 0x2000
	offsetMask = 0x1fff
)

// Sentinel errors of the decoders. Their wording predates this package (the probe package
// exports them under the same names) and is kept: messages the tool prints quote it.
var (
	ErrTruncated = errors.New("probe: packet truncated")
	ErrNotIPv4   = errors.New("probe: not an IPv4 packet")
	ErrBadIHL    = errors.New("probe: IPv4 header length below 20 bytes or beyond the packet")
)

// IPv4Header is a decoded IPv4 header in wire form. Decoding slices Options and Payload
// from the input; MarshalTo writes one.
type IPv4Header struct {
	IHL      int // header length in bytes, 20–60
	TOS      uint8
	TotalLen int // the header's total-length field
	ID       uint16
	DF, MF   bool
	Offset   int // fragment offset in bytes (the field times 8)
	TTL      uint8
	Proto    uint8
	Checksum uint16
	Src, Dst netip.Addr
	Options  []byte
	// Payload is what follows the header, up to TotalLen. It is shorter than TotalLen-IHL
	// when the capture cut the packet (Truncated).
	Payload   []byte
	Truncated bool
}

// DecodeFromBytes decodes an IPv4 header, checking in order: at least 20 bytes, version 4,
// IHL ≥ 5, IHL*4 ≤ total length and ≤ the buffer. A buffer shorter than the total length
// is a capture snapshot: Truncated is set, it is not an error.
func (h *IPv4Header) DecodeFromBytes(b []byte) error {
	*h = IPv4Header{}
	if len(b) < IPv4HeaderLen {
		return ErrTruncated
	}
	if b[0]>>4 != 4 {
		return ErrNotIPv4
	}
	ihl := int(b[0]&0x0f) * 4
	total := int(binary.BigEndian.Uint16(b[2:4]))
	if ihl < IPv4HeaderLen || ihl > len(b) || ihl > total {
		return ErrBadIHL
	}
	h.IHL = ihl
	h.TOS = b[1]
	h.TotalLen = total
	h.ID = binary.BigEndian.Uint16(b[4:6])
	ff := binary.BigEndian.Uint16(b[6:8])
	h.DF = ff&flagDF != 0
	h.MF = ff&flagMF != 0
	h.Offset = int(ff&offsetMask) * 8
	h.TTL = b[8]
	h.Proto = b[9]
	h.Checksum = binary.BigEndian.Uint16(b[10:12])
	h.Src = netip.AddrFrom4([4]byte(b[12:16]))
	h.Dst = netip.AddrFrom4([4]byte(b[16:20]))
	h.Options = b[IPv4HeaderLen:ihl]
	end := total
	if end > len(b) {
		end = len(b)
		h.Truncated = true
	}
	h.Payload = b[ihl:end]
	return nil
}

// MarshalTo writes h's header into b and returns its length, 20 + len(Options) padded to a
// multiple of 4 with zeros (end of options). It writes TOS, TotalLen, ID, DF, MF, Offset/8,
// TTL, Proto, Src and Dst as they are and computes the checksum (h.IHL, h.Checksum and
// h.Payload are not read): a probe can state a total length other than what it sends. Src
// and Dst must be IPv4, Options at most 40 bytes and b long enough, or it panics.
func (h *IPv4Header) MarshalTo(b []byte) int {
	ihl := IPv4HeaderLen + (len(h.Options)+3)&^3
	b[0], b[1] = 0x40|byte(ihl/4), h.TOS
	binary.BigEndian.PutUint16(b[2:4], uint16(h.TotalLen))
	binary.BigEndian.PutUint16(b[4:6], h.ID)
	binary.BigEndian.PutUint16(b[6:8], fragField(h.Offset, h.DF, h.MF))
	b[8], b[9], b[10], b[11] = h.TTL, h.Proto, 0, 0
	s, d := h.Src.As4(), h.Dst.As4()
	copy(b[12:16], s[:])
	copy(b[16:20], d[:])
	clear(b[IPv4HeaderLen+copy(b[IPv4HeaderLen:ihl], h.Options) : ihl])
	binary.BigEndian.PutUint16(b[10:12], Checksum(b[:ihl]))
	return ihl
}

// SetIPv4Fragment rewrites the fragment fields (offset in bytes, a multiple of 8; MF; DF
// kept) and total length of the IPv4 header at the start of b, and its checksum.
func SetIPv4Fragment(b []byte, total, offset int, mf bool) {
	binary.BigEndian.PutUint16(b[2:4], uint16(total))
	binary.BigEndian.PutUint16(b[6:8], fragField(offset, b[6]&0x40 != 0, mf))
	ihl := int(b[0]&0x0f) * 4
	b[10], b[11] = 0, 0
	binary.BigEndian.PutUint16(b[10:12], Checksum(b[:ihl]))
}

func fragField(offset int, df, mf bool) uint16 {
	ff := uint16(offset/8) & offsetMask
	if df {
		ff |= flagDF
	}
	if mf {
		ff |= flagMF
	}
	return ff
}

// PseudoSum is the running checksum (see Add) of the IPv4 pseudo-header that the TCP and
// UDP checksums cover: addresses, protocol and the segment's length.
func PseudoSum(src, dst netip.Addr, proto uint8, length int) uint64 {
	s, d := src.As4(), dst.As4()
	return uint64(binary.BigEndian.Uint16(s[0:2])) + uint64(binary.BigEndian.Uint16(s[2:4])) +
		uint64(binary.BigEndian.Uint16(d[0:2])) + uint64(binary.BigEndian.Uint16(d[2:4])) +
		uint64(proto) + uint64(length)
}

// PutUDP writes the UDP header in front of the payload already in b[8:], with its length
// (len(b)) and checksum over the IPv4 pseudo-header of src and dst.
func PutUDP(b []byte, sp, dp uint16, src, dst netip.Addr) {
	binary.BigEndian.PutUint16(b[0:2], sp)
	binary.BigEndian.PutUint16(b[2:4], dp)
	binary.BigEndian.PutUint16(b[4:6], uint16(len(b)))
	b[6], b[7] = 0, 0
	c := ^Fold(Add(PseudoSum(src, dst, ProtoUDP, len(b)), b))
	if c == 0 {
		c = 0xffff // 0 means "no checksum" in UDP
	}
	binary.BigEndian.PutUint16(b[6:8], c)
}

// TCPChecksum is the checksum of TCP segment s (its checksum field zero) between src and
// dst, to store at s[16:18].
func TCPChecksum(src, dst netip.Addr, s []byte) uint16 {
	return ^Fold(Add(PseudoSum(src, dst, ProtoTCP, len(s)), s))
}
