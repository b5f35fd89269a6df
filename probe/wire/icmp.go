package wire

import (
	"fmt"
	"strconv"
)

// ICMP message layout (RFC 792) as the probers send and read it:
//
//	echo request / reply     error (3 unreachable, 11 time exceeded, 12 parameter problem)
//	+------+------+-------+  +------+------+-------------+
//	| type | code | csum  |  | type | code | csum        |
//	+------+------+-------+  +------+------+------+------+
//	| id          | seq   |  | unused      | next-hop MTU|  (MTU only for 3/4, RFC 1191)
//	+-------------+-------+  +-------------+-------------+
//	| data …              |  | quoted IPv4 header + ≥ 8 bytes of what followed it |
//
// ICMP types (RFC 792).
const (
	ICMPEchoReply    = 0
	ICMPUnreach      = 3
	ICMPEcho         = 8
	ICMPTimeExceeded = 11
	ICMPParamProblem = 12
)

// Codes of ICMP destination unreachable (type 3; RFC 792, RFC 1812).
const (
	CodeNetUnreach      = 0
	CodeHostUnreach     = 1
	CodeProtoUnreach    = 2
	CodePortUnreach     = 3
	CodeFragNeeded      = 4
	CodeNetProhibited   = 9
	CodeHostProhibited  = 10
	CodeAdminProhibited = 13
)

// Codes of ICMP time exceeded (type 11).
const (
	CodeTTLExceeded       = 0
	CodeReassemblyTimeout = 1
)

// ICMPHeaderLen is the size of an ICMP (and ICMPv6) header: type, code, checksum and the
// 4 bytes of echo id/seq, or unused/next-hop MTU.
const ICMPHeaderLen = 8

// ICMPv6 (RFC 4443): the same layout as ICMPv4; a Packet Too Big carries a 32-bit MTU where
// ICMPv4's fragmentation-needed carries 16 bits, and errors quote the IPv6 header.
const (
	ICMP6Unreach      = 1
	ICMP6PacketTooBig = 2
	ICMP6TimeExceeded = 3
	ICMP6ParamProblem = 4
	ICMP6Echo         = 128
	ICMP6EchoReply    = 129
)

// IPv6HeaderLen is the size of the fixed IPv6 header; ProtoICMPv6 its next-header value
// for ICMPv6.
const (
	IPv6HeaderLen = 40
	ProtoICMPv6   = 58
)

// ICMPName names an ICMP error the way a network engineer says it ("ICMP host
// unreachable"): the verdicts' wording.
func ICMPName(typ, code uint8) string {
	switch typ {
	case ICMPUnreach:
		switch code {
		case CodeNetUnreach:
			return "ICMP network unreachable"
		case CodeHostUnreach:
			return "ICMP host unreachable"
		case CodeProtoUnreach:
			return "ICMP protocol unreachable"
		case CodePortUnreach:
			return "ICMP port unreachable"
		case CodeFragNeeded:
			return "ICMP fragmentation needed"
		case CodeNetProhibited:
			return "ICMP network administratively prohibited"
		case CodeHostProhibited:
			return "ICMP host administratively prohibited"
		case CodeAdminProhibited:
			return "ICMP administratively prohibited"
		}
		return "ICMP destination unreachable (code " + strconv.Itoa(int(code)) + ")"
	case ICMPTimeExceeded:
		if code == CodeReassemblyTimeout {
			return "ICMP fragment reassembly time exceeded"
		}
		return "ICMP time exceeded in transit"
	}
	return fmt.Sprintf("ICMP type %d code %d", typ, code)
}

// ICMPBrief names the ICMP errors an IKE probe meets, without the "ICMP" in front ("port
// unreachable"): the wording of the ike command and the IKE notes, which put "ICMP" before it
// themselves.
func ICMPBrief(typ, code int) string {
	if typ == ICMPUnreach {
		switch code {
		case CodeNetUnreach:
			return "network unreachable"
		case CodeHostUnreach:
			return "host unreachable"
		case CodePortUnreach:
			return "port unreachable"
		case CodeFragNeeded:
			return "fragmentation needed"
		case CodeNetProhibited, CodeHostProhibited, CodeAdminProhibited:
			return "administratively prohibited"
		}
		return "destination unreachable code " + strconv.Itoa(code)
	}
	if typ == ICMPTimeExceeded {
		return "time exceeded"
	}
	return fmt.Sprintf("ICMP type %d code %d", typ, code)
}
