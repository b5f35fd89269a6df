package wire

// Every probe carries its class and a 32-bit nonce in the first bytes after its IP header
// (within probe.HeadLen, so a captured first fragment's head is enough to map it back):
//
//	esp, esp-frag    SPI = nonce, sequence = nonce, then the 12-byte marker
//	ah, ah-frag      AH SPI = nonce, sequence = nonce, 12-byte ICV, then the marker
//	icmp-large, pmtu ICMP echo id = nonce>>16, seq = nonce&0xffff, then the marker
//	ike, ike-frag    UDP 500→500, IKE_SA_INIT, initiator SPI = 'I' 'P' code 1 nonce(4)
//	                 (ike.SPIWithNonce's "ipsp" nonce(4) is recognised too, as ike or natt)
//	natt, natt-frag  UDP 4500→4500, non-ESP marker (4 zero bytes), then IKE as above
//	tcp:PORT         SYN with ISN = nonce (and IP ID = low 16 bits of the nonce)
//	pmtu --proto tcp ACK data segment, seq = nonce, payload starts with the marker (code 10)
//	udp:PORT, l2tp   see udp_class.go
//
// The marker is 12 bytes:
//
//	 0                   1                   2                   3
//	 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1
//	+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//	|      'I'      |      'P'      |      'S'      |      'P'      |
//	+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//	|  class code   |  version (1)  |  datagram length (IP total)    |
//	+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//	|                             nonce                             |
//	+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//
// Answers map back too: an echo reply carries the marker back, an IKE response echoes the
// initiator SPI, a SYN-ACK or RST acknowledges nonce+1, and an ICMP error quotes the probe's
// IP header (whose IP ID is the nonce's low 16 bits) and the bytes after it.

import "encoding/binary"

// The probe marker (drawn above): 'I' 'P' 'S' 'P', the class code, the version, the
// datagram's IP total length, and the nonce.
const (
	// MarkerLen is the size of the marker.
	MarkerLen = 12
	// MarkerVersion is the marker's version byte (also the 4th byte of our IKE SPIs).
	MarkerVersion = 1
	// MarkerCodeTCP is the class code of the TCP probes (check's tcp:PORT, pmtu --proto tcp).
	MarkerCodeTCP = 10
)

// MarkerMagic opens every marker.
var MarkerMagic = [4]byte{'I', 'P', 'S', 'P'}

// PutMarker writes the marker into b (len ≥ MarkerLen).
func PutMarker(b []byte, code uint8, dgramLen int, nonce uint32) {
	copy(b[0:4], MarkerMagic[:])
	b[4] = code
	b[5] = MarkerVersion
	binary.BigEndian.PutUint16(b[6:8], uint16(dgramLen))
	binary.BigEndian.PutUint32(b[8:12], nonce)
}

// ParseMarker reads a marker at the start of b.
func ParseMarker(b []byte) (code uint8, dgramLen int, nonce uint32, ok bool) {
	if len(b) < MarkerLen || [4]byte(b[0:4]) != MarkerMagic || b[5] != MarkerVersion {
		return 0, 0, 0, false
	}
	return b[4], int(binary.BigEndian.Uint16(b[6:8])), binary.BigEndian.Uint32(b[8:12]), true
}
