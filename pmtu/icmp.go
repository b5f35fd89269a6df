package pmtu

import (
	"encoding/binary"
	"errors"
	"net/netip"

	"github.com/ipsecpath/ipsecpath/probe/wire"
)

// echoID names one probe: the echo identifier and sequence number, and the IPv4 ID, all
// three of which must come back (in a reply, or quoted in an error) for it to count.
type echoID struct {
	ID, Seq uint16
	IPID    uint16
}

// Environment errors of NewICMPProber: the CLI turns them into exit code 2.
var (
	ErrPermission = errors.New("pmtu: raw sockets need root or CAP_NET_RAW")
	ErrNoRoute    = errors.New("pmtu: no route to the target")
	ErrIPv6       = errors.New("pmtu: IPv6 targets are not supported with an agent yet (the agent and its probes are IPv4)")
)

// errNotOurs says an ICMP message is not about a probe we are waiting for.
var errNotOurs = errors.New("pmtu: not an answer to this probe")

// putEcho writes an ICMP echo request with our id/seq into b (len(b) ≥ 8), filling the data
// with a recognisable pattern, and sets its checksum.
func putEcho(b []byte, id echoID) {
	b[0], b[1] = wire.ICMPEcho, 0
	b[2], b[3] = 0, 0
	binary.BigEndian.PutUint16(b[4:], id.ID)
	binary.BigEndian.PutUint16(b[6:], id.Seq)
	const mark = "ipsecpath pmtu "
	for i := wire.ICMPHeaderLen; i < len(b); i++ {
		b[i] = mark[(i-wire.ICMPHeaderLen)%len(mark)]
	}
	binary.BigEndian.PutUint16(b[2:], wire.Checksum(b))
}

// putEchoPacket writes the whole IPv4 packet of echo probe id into b (len(b) is its size,
// at least 28 bytes): our header (DF, ttl, the probe's IP ID; src 0.0.0.0 when the route
// names none, for Linux's raw socket to fill in) over the echo request.
func putEchoPacket(b []byte, id echoID, ttl uint8, src, dst netip.Addr) {
	if !src.Is4() {
		src = netip.IPv4Unspecified()
	}
	ip := wire.IPv4Header{TotalLen: len(b), ID: id.IPID, DF: true, TTL: ttl, Proto: wire.ProtoICMP, Src: src, Dst: dst}
	putEcho(b[ip.MarshalTo(b):], id)
}

// parseICMP reads an ICMP message (ICMP header first) received from from, and says what it
// means for the echo probe id sent to target: its echo reply, or an error quoting it. It
// returns errNotOurs for anything else. It never panics: every length is checked before it
// is read.
func parseICMP(from, target netip.Addr, b []byte, id echoID) (Reply, error) {
	if len(b) >= wire.ICMPHeaderLen && b[0] == wire.ICMPEchoReply {
		if b[1] != 0 || from != target || binary.BigEndian.Uint16(b[4:]) != id.ID || binary.BigEndian.Uint16(b[6:]) != id.Seq {
			return Reply{}, errNotOurs
		}
		return Reply{Outcome: Arrived, From: from}, nil
	}
	return parseICMPError(from, b, id.quote(target))
}

// quote is what an ICMP error about echo probe id sent to target quotes: our IPv4 header
// (ICMP, target, IP ID) and our echo header's type, identifier and sequence number.
func (id echoID) quote(target netip.Addr) quoted {
	q := quoted{proto: wire.ProtoICMP, dst: target, ipid: id.IPID,
		mask: [8]byte{0xff, 0, 0, 0, 0xff, 0xff, 0xff, 0xff}}
	q.head[0] = wire.ICMPEcho
	binary.BigEndian.PutUint16(q.head[4:], id.ID)
	binary.BigEndian.PutUint16(q.head[6:], id.Seq)
	return q
}

// quoted is what an ICMP error must quote for it to be about one of our probes: the IPv4
// header's protocol, destination and IP ID, and the first 8 bytes after that header
// (RFC 792's minimum) equal to head wherever mask is set.
type quoted struct {
	proto      uint8
	dst        netip.Addr
	ipid       uint16
	head, mask [8]byte
}

// parseICMPError reads an ICMP message (ICMP header first) received from from: an ICMP
// error (unreachable, time exceeded, parameter problem) that quotes the probe q describes
// becomes its Reply (see ICMPErrorReply); anything else, echo replies included, is
// errNotOurs. The quoted header is read by wire.ParseQuotedIPv4 (IHL checked against what
// is there). It never panics.
func parseICMPError(from netip.Addr, b []byte, q quoted) (Reply, error) {
	if len(b) < wire.ICMPHeaderLen {
		return Reply{}, errNotOurs
	}
	switch b[0] {
	case wire.ICMPUnreach, wire.ICMPTimeExceeded, wire.ICMPParamProblem:
	default:
		return Reply{}, errNotOurs
	}
	h, ok := wire.ParseQuotedIPv4(b[wire.ICMPHeaderLen:], len(q.head))
	if !ok || h.Proto != q.proto || h.Dst != q.dst || h.IPID != q.ipid {
		return Reply{}, errNotOurs
	}
	for i, m := range q.mask {
		if h.Next[i]&m != q.head[i]&m {
			return Reply{}, errNotOurs
		}
	}
	return ICMPErrorReply(from, b), nil
}

// ICMPErrorReply turns an ICMP error (ICMP header first, at least 8 bytes) from from that
// quotes one of our probes into its Reply: fragmentation needed with its MTU, TTL exceeded
// in transit, or unreachable.
func ICMPErrorReply(from netip.Addr, b []byte) Reply {
	r := Reply{From: from, Type: b[0], Code: b[1]}
	switch {
	case b[0] == wire.ICMPUnreach && b[1] == wire.CodeFragNeeded:
		r.Outcome, r.MTU = FragNeeded, int(binary.BigEndian.Uint16(b[6:]))
	case b[0] == wire.ICMPTimeExceeded && b[1] == wire.CodeTTLExceeded:
		r.Outcome = TimeExceeded
	default:
		r.Outcome = Unreachable
	}
	return r
}

// putEcho6 writes an ICMPv6 echo request with our id/seq into b (len(b) ≥ 8). The checksum
// covers a pseudo-header the kernel knows best: raw ICMPv6 sockets fill it in.
func putEcho6(b []byte, id echoID) {
	putEcho(b, id)
	b[0] = wire.ICMP6Echo
	b[2], b[3] = 0, 0
}

// parseICMPv6 is parseICMP for ICMPv6: an echo reply from target with our id/seq, or an
// error quoting our echo request to target. Errors that quote anything else are errNotOurs.
// It never panics.
func parseICMPv6(from, target netip.Addr, b []byte, id echoID) (Reply, error) {
	if len(b) < wire.ICMPHeaderLen {
		return Reply{}, errNotOurs
	}
	switch b[0] {
	case wire.ICMP6EchoReply:
		if b[1] != 0 || from != target || binary.BigEndian.Uint16(b[4:]) != id.ID || binary.BigEndian.Uint16(b[6:]) != id.Seq {
			return Reply{}, errNotOurs
		}
		return Reply{Outcome: Arrived, From: from}, nil
	case wire.ICMP6Unreach, wire.ICMP6PacketTooBig, wire.ICMP6TimeExceeded, wire.ICMP6ParamProblem:
	default:
		return Reply{}, errNotOurs
	}
	q := b[wire.ICMPHeaderLen:]
	if len(q) < wire.IPv6HeaderLen+wire.ICMPHeaderLen || q[0]>>4 != 6 || q[6] != wire.ProtoICMPv6 {
		return Reply{}, errNotOurs
	}
	qdst, _ := netip.AddrFromSlice(q[24:40])
	e := q[wire.IPv6HeaderLen:]
	if qdst != target || e[0] != wire.ICMP6Echo || binary.BigEndian.Uint16(e[4:]) != id.ID || binary.BigEndian.Uint16(e[6:]) != id.Seq {
		return Reply{}, errNotOurs
	}
	r := Reply{From: from, Type: b[0], Code: b[1]}
	switch {
	case b[0] == wire.ICMP6PacketTooBig:
		m := binary.BigEndian.Uint32(b[4:])
		r.Outcome, r.MTU = FragNeeded, int(min(m, 1<<20))
	case b[0] == wire.ICMP6TimeExceeded && b[1] == 0:
		r.Outcome = TimeExceeded
	default:
		r.Outcome = Unreachable
	}
	return r, nil
}
