package probe

import (
	"encoding/binary"
	"errors"
	"fmt"

	"github.com/ipsecpath/ipsecpath/probe/wire"
)

// DefaultFragSize is the size on the wire (IP header included) of the fragments we cut when
// the caller does not choose: 1280 bytes fit any sane path MTU (it is IPv6's minimum), so a
// lost fragment means the path drops fragments, not that the fragment itself was too big.
const DefaultFragSize = 1280

// minFragSize is the smallest fragment size Fragment accepts: a 20-byte header and 8 bytes.
const minFragSize = ipv4MinHeader + 8

// ErrDontFragment is returned when asked to fragment a datagram that has DF set.
var ErrDontFragment = errors.New("probe: datagram has DF set and cannot be fragmented")

// Fragment cuts datagram, one IPv4 packet in wire form (header checksum and total length
// as they should go out), into fragments of at most fragSize bytes each on the wire, IP
// header included: every offset is a multiple of 8, every fragment but the last has MF set,
// and each gets its own header checksum. Non-first fragments keep only the options whose
// copied flag is set (RFC 791). A datagram that is itself a fragment is cut further with
// its offset and MF kept.
//
// The fragments are appended to frags; their bytes live in buf, which is grown only when
// too small. Both are returned for reuse, so a steady caller allocates nothing.
func Fragment(datagram []byte, fragSize int, buf []byte, frags [][]byte) ([][]byte, []byte, error) {
	var h IPv4Header
	if err := h.DecodeFromBytes(datagram); err != nil {
		return frags, buf, fmt.Errorf("probe: fragment: %w", err)
	}
	if h.Truncated {
		return frags, buf, fmt.Errorf("probe: fragment: datagram shorter (%d bytes) than its total length %d: %w", len(datagram), h.TotalLen, ErrTruncated)
	}
	if h.DF {
		return frags, buf, ErrDontFragment
	}
	if fragSize < minFragSize || fragSize > 65535 {
		return frags, buf, fmt.Errorf("probe: fragment size %d: want %d–65535 bytes", fragSize, minFragSize)
	}
	if fragSize < h.IHL+8 {
		return frags, buf, fmt.Errorf("probe: fragment size %d leaves no room after a %d-byte header", fragSize, h.IHL)
	}
	var restOpts [40]byte // options copied into non-first fragments
	nOpts := copiedOptions(restOpts[:], h.Options)
	restIHL := ipv4MinHeader + (nOpts+3)&^3

	payload := h.Payload
	// First pass: how many bytes all fragments need.
	need, pos := 0, 0
	for first := true; pos < len(payload) || first; first = false {
		ihl := restIHL
		if first {
			ihl = h.IHL
		}
		n := min((fragSize-ihl)&^7, len(payload)-pos)
		need += ihl + n
		pos += n
		if len(payload) == 0 {
			break
		}
	}
	if cap(buf) < need {
		buf = make([]byte, need)
	}
	buf = buf[:need]

	w, pos := 0, 0
	for first := true; pos < len(payload) || first; first = false {
		ihl := restIHL
		if first {
			ihl = h.IHL
		}
		n := min((fragSize-ihl)&^7, len(payload)-pos)
		f := buf[w : w+ihl+n]
		copy(f[:ipv4MinHeader], datagram[:ipv4MinHeader])
		if first {
			copy(f[ipv4MinHeader:ihl], h.Options)
		} else {
			copy(f[ipv4MinHeader:ihl], restOpts[:ihl-ipv4MinHeader])
			clear(f[ipv4MinHeader+nOpts : ihl]) // end-of-options padding
		}
		f[0] = 0x40 | byte(ihl/4)
		binary.BigEndian.PutUint16(f[2:4], uint16(ihl+n))
		off := (h.Offset + pos) / 8
		ff := uint16(off) & 0x1fff
		if pos+n < len(payload) || h.MF {
			ff |= 0x2000
		}
		binary.BigEndian.PutUint16(f[6:8], ff)
		f[10], f[11] = 0, 0
		binary.BigEndian.PutUint16(f[10:12], ^wire.Fold(wire.Add(0, f[:ihl])))
		copy(f[ihl:], payload[pos:pos+n])
		frags = append(frags, f)
		w += ihl + n
		pos += n
		if len(payload) == 0 {
			break
		}
	}
	return frags, buf, nil
}

// copiedOptions copies into dst the IPv4 options whose copied flag (bit 7 of the type) is
// set, and returns how many bytes it wrote. Malformed options end the walk.
func copiedOptions(dst, opts []byte) int {
	n := 0
	for i := 0; i < len(opts); {
		t := opts[i]
		switch t {
		case 0: // end of options
			return n
		case 1: // no-operation
			i++
			continue
		}
		if i+1 >= len(opts) {
			return n
		}
		l := int(opts[i+1])
		if l < 2 || i+l > len(opts) {
			return n
		}
		if t&0x80 != 0 && n+l <= len(dst) {
			n += copy(dst[n:], opts[i:i+l])
		}
		i += l
	}
	return n
}
