package probe

import (
	"encoding/binary"
	"errors"
	"fmt"
	"net/netip"

	"github.com/ipsecpath/ipsecpath/probe/wire"
)

// ErrNotICMPError is returned by ParseICMPError for anything but an ICMP destination
// unreachable, time exceeded or parameter problem that quotes an IPv4 header.
var ErrNotICMPError = errors.New("probe: not an ICMP error quoting an IPv4 header")

// QuotedHeader is what an ICMP error quotes of the packet that caused it: the IP header and
// (RFC 792) at least the first 8 bytes after it — ports, SPI, echo id/seq, TCP sequence.
type QuotedHeader struct {
	Src, Dst netip.Addr
	Proto    uint8
	IPID     uint16
	TTL      uint8 // as the packet had it where it died (1 for a time exceeded)
	Offset   int
	More     bool
	DF       bool
	TotalLen int
	// Transport holds the first bytes after the quoted IP header (up to 8); N says how many.
	Transport [8]byte
	N         int
}

// ICMPError is an ICMP error that came back for a packet.
type ICMPError struct {
	From netip.Addr // who sent it: a router on the path, or the target itself
	Type uint8
	Code uint8
	// MTU is the next-hop MTU of a "fragmentation needed" (type 3 code 4); 0 when the router
	// did not say (RFC 1191 allows that) or for other errors.
	MTU    int
	Quoted QuotedHeader
}

// ParseICMPError parses a captured ICMP error (s.Proto 1, s.Head from its ICMP header on).
// It never panics: every length is checked against Head.
func ParseICMPError(s *Seen) (ICMPError, error) {
	if s.Proto != ProtoICMP || s.Offset != 0 {
		return ICMPError{}, ErrNotICMPError
	}
	return ParseICMPErrorBytes(s.Src, s.Head)
}

// ParseICMPErrorBytes parses an ICMP error message (ICMP header first) sent by from.
func ParseICMPErrorBytes(from netip.Addr, b []byte) (ICMPError, error) {
	if len(b) < 8+ipv4MinHeader {
		return ICMPError{}, ErrNotICMPError
	}
	switch b[0] {
	case wire.ICMPUnreach, wire.ICMPTimeExceeded, wire.ICMPParamProblem:
	default:
		return ICMPError{}, ErrNotICMPError
	}
	e := ICMPError{From: from, Type: b[0], Code: b[1]}
	if e.Type == wire.ICMPUnreach && e.Code == wire.CodeFragNeeded {
		e.MTU = int(binary.BigEndian.Uint16(b[6:8]))
	}
	var q IPv4Header
	if err := q.DecodeFromBytes(b[8:]); err != nil {
		return ICMPError{}, fmt.Errorf("%w: %w", ErrNotICMPError, err)
	}
	e.Quoted = QuotedHeader{
		Src: q.Src, Dst: q.Dst, Proto: q.Proto, IPID: q.ID, TTL: q.TTL,
		Offset: q.Offset, More: q.MF, DF: q.DF, TotalLen: q.TotalLen,
	}
	e.Quoted.N = copy(e.Quoted.Transport[:], q.Payload)
	return e, nil
}

// Unreachable reports a destination unreachable of any code.
func (e ICMPError) Unreachable() bool { return e.Type == wire.ICMPUnreach }

// AdminProhibited reports "communication administratively prohibited" (code 13) and its
// older network/host forms (9, 10): a filter said no.
func (e ICMPError) AdminProhibited() bool {
	return e.Type == wire.ICMPUnreach &&
		(e.Code == wire.CodeAdminProhibited || e.Code == wire.CodeNetProhibited || e.Code == wire.CodeHostProhibited)
}

// FragNeeded reports "fragmentation needed and DF set" (path MTU discovery).
func (e ICMPError) FragNeeded() bool {
	return e.Type == wire.ICMPUnreach && e.Code == wire.CodeFragNeeded
}

// TimeExceeded reports a TTL that ran out in transit (code 0) or a reassembly that timed
// out (code 1: fragments went missing).
func (e ICMPError) TimeExceeded() bool { return e.Type == wire.ICMPTimeExceeded }

var unreachCodes = map[uint8]string{
	0: "net unreachable", 1: "host unreachable", 2: "protocol unreachable", 3: "port unreachable",
	4: "fragmentation needed", 5: "source route failed", 6: "net unknown", 7: "host unknown",
	9: "net administratively prohibited", 10: "host administratively prohibited",
	13: "communication administratively prohibited",
}

// String names the error the way tcpdump does, e.g. "203.0.113.10 protocol 50 unreachable
// (3/2)" becomes "destination unreachable: protocol unreachable (type 3 code 2) from …".
func (e ICMPError) String() string {
	var what string
	switch e.Type {
	case wire.ICMPUnreach:
		c, ok := unreachCodes[e.Code]
		if !ok {
			c = "code " + fmt.Sprint(e.Code)
		}
		what = "destination unreachable: " + c
		if e.FragNeeded() && e.MTU > 0 {
			what += fmt.Sprintf(" (mtu %d)", e.MTU)
		}
	case wire.ICMPTimeExceeded:
		what = "time exceeded in transit"
		if e.Code == wire.CodeReassemblyTimeout {
			what = "fragment reassembly time exceeded"
		}
	case wire.ICMPParamProblem:
		what = "parameter problem"
	}
	return fmt.Sprintf("%s (type %d code %d) from %s", what, e.Type, e.Code, e.From)
}
