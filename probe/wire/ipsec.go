package wire

// Bounded decoders of ESP (RFC 4303) and AH (RFC 4302) headers as the capture sees them.
// They slice into the input and never allocate; every length is checked against the buffer
// and the header's fixed minimum before it is used. (Upstream gopacket reads ESP's first 8
// bytes unchecked and panics on an AH payload length of 0; these do not.)

import (
	"encoding/binary"
	"errors"
)

// ErrBadAHLength is the AH decoder's error for a length field it cannot use. (Its wording
// predates this package, like the IPv4 ones.)
var ErrBadAHLength = errors.New("probe: AH payload length below the 12-byte minimum or beyond the packet")

// ESPHeader is the cleartext start of an ESP packet: SPI and sequence number. The rest is
// encrypted (or, for our probes, the marker).
type ESPHeader struct {
	SPI     uint32
	Seq     uint32
	Payload []byte // after the 8-byte header
}

// ESPHeaderLen is SPI (4) + sequence number (4).
const ESPHeaderLen = 8

// DecodeFromBytes decodes the 8-byte ESP header.
func (e *ESPHeader) DecodeFromBytes(b []byte) error {
	*e = ESPHeader{}
	if len(b) < ESPHeaderLen {
		return ErrTruncated
	}
	e.SPI = binary.BigEndian.Uint32(b[0:4])
	e.Seq = binary.BigEndian.Uint32(b[4:8])
	e.Payload = b[ESPHeaderLen:]
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

// AHFixedLen is next header, payload length, reserved, SPI and sequence number.
const AHFixedLen = 12

// Len is the AH header length in bytes that PayloadLen announces.
func (a *AHHeader) Len() int { return (int(a.PayloadLen) + 2) * 4 }

// DecodeFromBytes decodes an AH header: at least 12 bytes, and the announced length at least
// 12 and within the buffer.
func (a *AHHeader) DecodeFromBytes(b []byte) error {
	*a = AHHeader{}
	if len(b) < AHFixedLen {
		return ErrTruncated
	}
	a.NextHeader = b[0]
	a.PayloadLen = b[1]
	n := a.Len()
	if n < AHFixedLen || n > len(b) {
		return ErrBadAHLength
	}
	a.SPI = binary.BigEndian.Uint32(b[4:8])
	a.Seq = binary.BigEndian.Uint32(b[8:12])
	a.ICV = b[AHFixedLen:n]
	a.Payload = b[n:]
	return nil
}
