package probe

import "github.com/ipsecpath/ipsecpath/probe/wire"

// DefaultFragSize is the size on the wire (IP header included) of the fragments we cut when
// the caller does not choose: 1280 bytes fit any sane path MTU (it is IPv6's minimum), so a
// lost fragment means the path drops fragments, not that the fragment itself was too big.
const DefaultFragSize = 1280

// minFragSize is the smallest fragment size Fragment accepts: a 20-byte header and 8 bytes.
const minFragSize = wire.MinFragSize

// ErrDontFragment is returned when asked to fragment a datagram that has DF set.
var ErrDontFragment = wire.ErrDontFragment

// Fragment cuts an IPv4 datagram in wire form into fragments of at most fragSize bytes on
// the wire, appended to frags with their bytes in buf: see wire.Fragment, which it is.
func Fragment(datagram []byte, fragSize int, buf []byte, frags [][]byte) ([][]byte, []byte, error) {
	return wire.Fragment(datagram, fragSize, buf, frags)
}
