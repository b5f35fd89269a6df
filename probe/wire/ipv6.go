package wire

// The IPv6 fixed header (RFC 8200 §3) and fragment extension header (§4.5), ready for the
// IPv6 probes:
//
//	+-------+---------------+---------------------------------------+
//	|Version| Traffic Class |              Flow Label               |
//	+-------+---------------+-------+---------------+---------------+
//	|         Payload Length        |  Next Header  |   Hop Limit   |
//	+-------------------------------+---------------+---------------+
//	|        Source Address (16 bytes), Destination Address (16)    |
//
//	fragment header (next header 44):
//	+---------------+---------------+-------------------------+-+-+-+
//	|  Next Header  |   Reserved    |     Fragment Offset     |Res|M|
//	+---------------+---------------+-------------------------+-+-+-+
//	|                         Identification                        |

import (
	"encoding/binary"
	"errors"
	"net/netip"
)

// IPv6FragmentLen is the size of the fragment extension header.
const IPv6FragmentLen = 8

// ErrNotIPv6 is returned for a packet whose version is not 6.
var ErrNotIPv6 = errors.New("wire: not an IPv6 packet")

// IPv6Header is a decoded fixed IPv6 header. Decoding slices Payload from the input.
type IPv6Header struct {
	TrafficClass uint8
	FlowLabel    uint32 // 20 bits
	PayloadLen   int    // the header's payload-length field
	NextHeader   uint8
	HopLimit     uint8
	Src, Dst     netip.Addr
	// Payload is what follows the fixed header (extension headers included), up to
	// PayloadLen; shorter when the capture cut the packet (Truncated). Jumbograms (payload
	// length 0 with a hop-by-hop jumbo option, RFC 2675) are not read: their Payload is empty.
	Payload   []byte
	Truncated bool
}

// DecodeFromBytes decodes the fixed IPv6 header: at least 40 bytes and version 6. A buffer
// shorter than the payload length is a capture snapshot: Truncated is set.
func (h *IPv6Header) DecodeFromBytes(b []byte) error {
	*h = IPv6Header{}
	if len(b) < IPv6HeaderLen {
		return ErrTruncated
	}
	if b[0]>>4 != 6 {
		return ErrNotIPv6
	}
	v := binary.BigEndian.Uint32(b[0:4])
	h.TrafficClass = uint8(v >> 20)
	h.FlowLabel = v & 0xfffff
	h.PayloadLen = int(binary.BigEndian.Uint16(b[4:6]))
	h.NextHeader, h.HopLimit = b[6], b[7]
	h.Src = netip.AddrFrom16([16]byte(b[8:24]))
	h.Dst = netip.AddrFrom16([16]byte(b[24:40]))
	end := IPv6HeaderLen + h.PayloadLen
	if end > len(b) {
		end = len(b)
		h.Truncated = true
	}
	h.Payload = b[IPv6HeaderLen:end]
	return nil
}

// MarshalTo writes the 40-byte fixed header into b and returns 40. Payload and Truncated
// are not read; Src and Dst are written in their 16-byte form (an IPv4 address as
// IPv4-mapped). b must be at least 40 bytes, or it panics.
func (h *IPv6Header) MarshalTo(b []byte) int {
	binary.BigEndian.PutUint32(b[0:4], 6<<28|uint32(h.TrafficClass)<<20|h.FlowLabel&0xfffff)
	binary.BigEndian.PutUint16(b[4:6], uint16(h.PayloadLen))
	b[6], b[7] = h.NextHeader, h.HopLimit
	s, d := h.Src.As16(), h.Dst.As16()
	copy(b[8:24], s[:])
	copy(b[24:40], d[:])
	return IPv6HeaderLen
}

// IPv6Fragment is a decoded fragment extension header.
type IPv6Fragment struct {
	NextHeader uint8
	Offset     int // in bytes (the field times 8)
	MF         bool
	ID         uint32
	Payload    []byte // what follows the 8-byte header
}

// DecodeFromBytes decodes a fragment header at the start of b (at least 8 bytes).
func (f *IPv6Fragment) DecodeFromBytes(b []byte) error {
	*f = IPv6Fragment{}
	if len(b) < IPv6FragmentLen {
		return ErrTruncated
	}
	f.NextHeader = b[0]
	om := binary.BigEndian.Uint16(b[2:4])
	f.Offset = int(om>>3) * 8
	f.MF = om&1 != 0
	f.ID = binary.BigEndian.Uint32(b[4:8])
	f.Payload = b[IPv6FragmentLen:]
	return nil
}

// MarshalTo writes the 8-byte fragment header into b (reserved fields zero) and returns 8.
// Offset must be a multiple of 8 below 65536.
func (f *IPv6Fragment) MarshalTo(b []byte) int {
	b[0], b[1] = f.NextHeader, 0
	om := uint16(f.Offset/8) << 3
	if f.MF {
		om |= 1
	}
	binary.BigEndian.PutUint16(b[2:4], om)
	binary.BigEndian.PutUint32(b[4:8], f.ID)
	return IPv6FragmentLen
}

// PseudoSum6 is the running checksum (see Add) of the IPv6 pseudo-header (RFC 8200 §8.1)
// that the ICMPv6, TCP and UDP checksums cover.
func PseudoSum6(src, dst netip.Addr, next uint8, length int) uint64 {
	s, d := src.As16(), dst.As16()
	return Add(Add(0, s[:]), d[:]) + uint64(length>>16) + uint64(length&0xffff) + uint64(next)
}
