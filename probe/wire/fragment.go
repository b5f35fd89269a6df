package wire

import (
	"errors"
	"fmt"
)

// MinFragSize is the smallest fragment size Fragment accepts: a 20-byte header and 8 bytes.
const MinFragSize = IPv4HeaderLen + 8

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
// too small. Both are returned for reuse, so a steady caller allocates nothing. (Errors
// keep the wording they had in package probe.)
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
	if fragSize < MinFragSize || fragSize > 65535 {
		return frags, buf, fmt.Errorf("probe: fragment size %d: want %d–65535 bytes", fragSize, MinFragSize)
	}
	if fragSize < h.IHL+8 {
		return frags, buf, fmt.Errorf("probe: fragment size %d leaves no room after a %d-byte header", fragSize, h.IHL)
	}
	var restOpts [40]byte // options copied into non-first fragments
	nOpts := copiedOptions(restOpts[:], h.Options)
	c := cutter{hdr: datagram[:IPv4HeaderLen], opts: h.Options, rest: restOpts[:nOpts], payload: h.Payload,
		ihl: h.IHL, restIHL: IPv4HeaderLen + (nOpts+3)&^3, fragSize: fragSize, offset: h.Offset, mf: h.MF}
	_, need := c.walk(nil, nil)
	if cap(buf) < need {
		buf = make([]byte, need)
	}
	buf = buf[:need]
	frags, _ = c.walk(buf, frags)
	return frags, buf, nil
}

// cutter walks the fragments of one datagram: once to size them, once to write them.
type cutter struct {
	hdr, opts, rest, payload []byte // fixed header, options of the first and of the rest
	ihl, restIHL, fragSize   int
	offset                   int // of the datagram, in bytes
	mf                       bool
}

// walk goes through the fragments, writing each into buf and appending it to frags unless
// buf is nil, and returns frags and the bytes they take.
func (c *cutter) walk(buf []byte, frags [][]byte) ([][]byte, int) {
	w, pos := 0, 0
	for first := true; pos < len(c.payload) || first; first = false {
		ihl := c.restIHL
		if first {
			ihl = c.ihl
		}
		n := min((c.fragSize-ihl)&^7, len(c.payload)-pos)
		if buf != nil {
			frags = append(frags, c.put(buf[w:w+ihl+n], ihl, pos))
		}
		w += ihl + n
		pos += n
		if len(c.payload) == 0 {
			break
		}
	}
	return frags, w
}

// put writes into f the fragment with ihl bytes of header and the payload from pos: the
// datagram's fixed header, the options it keeps (all in the first), the payload.
func (c *cutter) put(f []byte, ihl, pos int) []byte {
	copy(f[:IPv4HeaderLen], c.hdr)
	if pos == 0 {
		copy(f[IPv4HeaderLen:ihl], c.opts)
	} else {
		clear(f[IPv4HeaderLen+copy(f[IPv4HeaderLen:ihl], c.rest) : ihl]) // end-of-options padding
	}
	f[0] = 0x40 | byte(ihl/4)
	end := pos + len(f) - ihl
	SetIPv4Fragment(f, len(f), c.offset+pos, end < len(c.payload) || c.mf)
	copy(f[ihl:], c.payload[pos:end])
	return f
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
