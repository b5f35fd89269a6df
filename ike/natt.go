package ike

import "errors"

// NonESPMarkerLen is the length of the non-ESP marker: four zero bytes in front of an IKE
// message on UDP 4500, where an ESP packet would start with a non-zero SPI (RFC 3948 §2.2).
const NonESPMarkerLen = 4

// ErrESPPacket means a UDP 4500 datagram is ESP (non-zero SPI), not IKE; ErrKeepalive that
// it is a one-byte NAT-keepalive (0xFF, RFC 3948 §2.3).
var (
	ErrESPPacket = errors.New("ike: UDP 4500 datagram is ESP, not IKE (no non-ESP marker)")
	ErrKeepalive = errors.New("ike: NAT-keepalive")
)

// AppendNonESPMarker appends the four zero bytes of the non-ESP marker.
func AppendNonESPMarker(b []byte) []byte { return append(b, 0, 0, 0, 0) }

// StripNonESPMarker returns the IKE message inside a UDP 4500 payload.
func StripNonESPMarker(udp []byte) ([]byte, error) {
	if len(udp) == 1 && udp[0] == 0xff {
		return nil, ErrKeepalive
	}
	if len(udp) < NonESPMarkerLen {
		return nil, ErrShort
	}
	if udp[0]|udp[1]|udp[2]|udp[3] != 0 {
		return nil, ErrESPPacket
	}
	return udp[NonESPMarkerLen:], nil
}
