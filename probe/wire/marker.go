package wire

import "encoding/binary"

// The probe marker (the layout is drawn in probe/marker.go): 'I' 'P' 'S' 'P', the class
// code, the version, the datagram's IP total length, and the nonce.
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
