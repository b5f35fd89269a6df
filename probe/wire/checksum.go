package wire

import "encoding/binary"

// Add adds b to a running Internet checksum (RFC 1071) and returns the new sum.
func Add(sum uint64, b []byte) uint64 {
	for len(b) >= 8 {
		v := binary.BigEndian.Uint64(b)
		sum += v >> 32
		sum += v & 0xffffffff
		b = b[8:]
	}
	for len(b) >= 2 {
		sum += uint64(binary.BigEndian.Uint16(b))
		b = b[2:]
	}
	if len(b) == 1 {
		sum += uint64(b[0]) << 8
	}
	return sum
}

// Fold folds a running checksum to 16 bits (not yet complemented).
func Fold(sum uint64) uint16 {
	for sum>>16 != 0 {
		sum = sum&0xffff + sum>>16
	}
	return uint16(sum)
}

// Checksum is the Internet checksum (RFC 1071) of b: the complement of its folded sum.
func Checksum(b []byte) uint16 {
	return ^Fold(Add(0, b))
}
