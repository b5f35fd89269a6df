package probe

// Bounded decoders for the headers the capture sees: IPv4 (as captured, before reassembly;
// the codec is probe/wire's), ESP (RFC 4303) and AH (RFC 4302). They slice into the input and never allocate; every
// length is checked against the buffer and the header's fixed minimum before it is used.
// (Upstream gopacket reads ESP's first 8 bytes unchecked and panics on an AH payload length
// of 0; these do not.)

import (
	"encoding/binary"
	"errors"

	"github.com/ipsecpath/ipsecpath/probe/wire"
)

// Sentinel errors of the decoders. Wrapped errors name the field. The IPv4 ones are
// probe/wire's, whose decoder this package uses.
var (
	ErrTruncated   = wire.ErrTruncated
	ErrNotIPv4     = wire.ErrNotIPv4
	ErrBadIHL      = wire.ErrBadIHL
	ErrBadAHLength = errors.New("probe: AH payload length below the 12-byte minimum or beyond the packet")
)

// IPv4 header sizes.
const (
	ipv4MinHeader = wire.IPv4HeaderLen    // without options
	ipv4MaxHeader = wire.IPv4MaxHeaderLen // IHL 15
)

// IP protocol numbers the probes use.
const (
	ProtoICMP = wire.ProtoICMP
	ProtoTCP  = wire.ProtoTCP
	ProtoUDP  = wire.ProtoUDP
	ProtoESP  = wire.ProtoESP
	ProtoAH   = wire.ProtoAH
	protoNone = wire.ProtoNone // IPv6-NoNxt: "no next header", what our AH probes protect
)

// IPv4Header is a decoded IPv4 header in wire form (probe/wire's codec): DecodeFromBytes
// slices Options and Payload from the input, MarshalTo writes one.
type IPv4Header = wire.IPv4Header

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
