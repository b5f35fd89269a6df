package probe

import (
	"encoding/binary"
	"errors"
	"fmt"
	"net/netip"
)

// ICMP types and codes the probes meet (RFC 792, RFC 1812).
const (
	icmpEchoReply    = 0
	icmpUnreach      = 3
	icmpEcho         = 8
	icmpTimeExceeded = 11
	icmpParamProblem = 12

	ICMPCodeNetUnreach      = 0
	ICMPCodeHostUnreach     = 1
	ICMPCodeProtoUnreach    = 2
	ICMPCodePortUnreach     = 3
	ICMPCodeFragNeeded      = 4
	ICMPCodeNetProhibited   = 9
	ICMPCodeHostProhibited  = 10
	ICMPCodeAdminProhibited = 13
)

// ICMP type numbers exported for callers that judge errors.
const (
	ICMPTypeUnreach      = icmpUnreach
	ICMPTypeTimeExceeded = icmpTimeExceeded
	ICMPTypeParamProblem = icmpParamProblem
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
	case icmpUnreach, icmpTimeExceeded, icmpParamProblem:
	default:
		return ICMPError{}, ErrNotICMPError
	}
	e := ICMPError{From: from, Type: b[0], Code: b[1]}
	if e.Type == icmpUnreach && e.Code == ICMPCodeFragNeeded {
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
func (e ICMPError) Unreachable() bool { return e.Type == icmpUnreach }

// AdminProhibited reports "communication administratively prohibited" (code 13) and its
// older network/host forms (9, 10): a filter said no.
func (e ICMPError) AdminProhibited() bool {
	return e.Type == icmpUnreach &&
		(e.Code == ICMPCodeAdminProhibited || e.Code == ICMPCodeNetProhibited || e.Code == ICMPCodeHostProhibited)
}

// FragNeeded reports "fragmentation needed and DF set" (path MTU discovery).
func (e ICMPError) FragNeeded() bool { return e.Type == icmpUnreach && e.Code == ICMPCodeFragNeeded }

// TimeExceeded reports a TTL that ran out in transit (code 0) or a reassembly that timed
// out (code 1: fragments went missing).
func (e ICMPError) TimeExceeded() bool { return e.Type == icmpTimeExceeded }

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
	case icmpUnreach:
		c, ok := unreachCodes[e.Code]
		if !ok {
			c = "code " + fmt.Sprint(e.Code)
		}
		what = "destination unreachable: " + c
		if e.FragNeeded() && e.MTU > 0 {
			what += fmt.Sprintf(" (mtu %d)", e.MTU)
		}
	case icmpTimeExceeded:
		what = "time exceeded in transit"
		if e.Code == 1 {
			what = "fragment reassembly time exceeded"
		}
	case icmpParamProblem:
		what = "parameter problem"
	}
	return fmt.Sprintf("%s (type %d code %d) from %s", what, e.Type, e.Code, e.From)
}
