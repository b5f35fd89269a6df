package probe

// Bounded decoders for the headers the capture sees: IPv4 (as captured, before reassembly),
// ESP (RFC 4303) and AH (RFC 4302). They slice into the input and never allocate; every
// length is checked against the buffer and the header's fixed minimum before it is used.
// (Upstream gopacket reads ESP's first 8 bytes unchecked and panics on an AH payload length
// of 0; these do not.)

import (
	"encoding/binary"
	"errors"
	"net/netip"
)

// Sentinel errors of the decoders. Wrapped errors name the field.
var (
	ErrTruncated   = errors.New("probe: packet truncated")
	ErrNotIPv4     = errors.New("probe: not an IPv4 packet")
	ErrBadIHL      = errors.New("probe: IPv4 header length below 20 bytes or beyond the packet")
	ErrBadAHLength = errors.New("probe: AH payload length below the 12-byte minimum or beyond the packet")
)

// IPv4 header sizes.
const (
	ipv4MinHeader = 20 // without options
	ipv4MaxHeader = 60 // IHL 15
)

// IP protocol numbers the probes use.
const (
	ProtoICMP = 1
	ProtoTCP  = 6
	ProtoUDP  = 17
	ProtoESP  = 50
	ProtoAH   = 51
	protoNone = 59 // IPv6-NoNxt: "no next header", what our AH probes protect
)

// IPv4Header is a decoded IPv4 header in wire form. Decoding slices Options and Payload
// from the input.
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
	if len(b) < ipv4MinHeader {
		return ErrTruncated
	}
	if b[0]>>4 != 4 {
		return ErrNotIPv4
	}
	ihl := int(b[0]&0x0f) * 4
	total := int(binary.BigEndian.Uint16(b[2:4]))
	if ihl < ipv4MinHeader || ihl > len(b) || ihl > total {
		return ErrBadIHL
	}
	h.IHL = ihl
	h.TOS = b[1]
	h.TotalLen = total
	h.ID = binary.BigEndian.Uint16(b[4:6])
	ff := binary.BigEndian.Uint16(b[6:8])
	h.DF = ff&0x4000 != 0
	h.MF = ff&0x2000 != 0
	h.Offset = int(ff&0x1fff) * 8
	h.TTL = b[8]
	h.Proto = b[9]
	h.Checksum = binary.BigEndian.Uint16(b[10:12])
	h.Src = netip.AddrFrom4([4]byte(b[12:16]))
	h.Dst = netip.AddrFrom4([4]byte(b[16:20]))
	h.Options = b[ipv4MinHeader:ihl]
	end := total
	if end > len(b) {
		end = len(b)
		h.Truncated = true
	}
	h.Payload = b[ihl:end]
	return nil
}

// ESPHeader is the cleartext start of an ESP packet: SPI and sequence number. The rest is
// encrypted (or, for our probes, the marker).
type ESPHeader struct {
	SPI     uint32
	Seq     uint32
	Payload []byte // after the 8-byte header
}

// espHeaderLen is SPI (4) + sequence number (4).
const espHeaderLen = 8

// DecodeFromBytes decodes the 8-byte ESP header.
func (e *ESPHeader) DecodeFromBytes(b []byte) error {
	*e = ESPHeader{}
	if len(b) < espHeaderLen {
		return ErrTruncated
	}
	e.SPI = binary.BigEndian.Uint32(b[0:4])
	e.Seq = binary.BigEndian.Uint32(b[4:8])
	e.Payload = b[espHeaderLen:]
	return nil
}

// AHHeader is an Authentication Header (RFC 4302).
type AHHeader struct {
	NextHeader uint8
	PayloadLen uint8 // the header field: AH length in 32-bit words minus 2
	SPI        uint32
	Seq        uint32
	ICV        []byte // integrity check value, (PayloadLen+2)*4 - 12 bytes
	Payload    []byte // what AH protects, after the ICV
}

// ahFixedLen is next header, payload length, reserved, SPI and sequence number.
const ahFixedLen = 12

// Len is the AH header length in bytes that PayloadLen announces.
func (a *AHHeader) Len() int { return (int(a.PayloadLen) + 2) * 4 }

// DecodeFromBytes decodes an AH header: at least 12 bytes, and the announced length at least
// 12 and within the buffer.
func (a *AHHeader) DecodeFromBytes(b []byte) error {
	*a = AHHeader{}
	if len(b) < ahFixedLen {
		return ErrTruncated
	}
	a.NextHeader = b[0]
	a.PayloadLen = b[1]
	n := a.Len()
	if n < ahFixedLen || n > len(b) {
		return ErrBadAHLength
	}
	a.SPI = binary.BigEndian.Uint32(b[4:8])
	a.Seq = binary.BigEndian.Uint32(b[8:12])
	a.ICV = b[ahFixedLen:n]
	a.Payload = b[n:]
	return nil
}
