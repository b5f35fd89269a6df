package pmtu

import (
	"encoding/binary"
	"errors"
	"net/netip"
	"time"

	"github.com/ipsecpath/ipsecpath/probe/wire"
)

// echoID names one probe: the echo identifier and sequence number, and the IPv4 ID, all
// three of which must come back (in a reply, or quoted in an error) for it to count.
type echoID struct {
	ID, Seq uint16
	IPID    uint16
}

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

// parseICMP reads an ICMP message (ICMP header first) received from from, and says what it
// means for the probe id sent to target. It returns errNotOurs for anything else. It never
// panics: every length is checked before it is read.
func parseICMP(from, target netip.Addr, b []byte, id echoID) (Reply, error) {
	if len(b) < wire.ICMPHeaderLen {
		return Reply{}, errNotOurs
	}
	switch b[0] {
	case wire.ICMPEchoReply:
		if b[1] != 0 || from != target || binary.BigEndian.Uint16(b[4:]) != id.ID || binary.BigEndian.Uint16(b[6:]) != id.Seq {
			return Reply{}, errNotOurs
		}
		return Reply{Outcome: Arrived, From: from}, nil
	case wire.ICMPUnreach, wire.ICMPTimeExceeded, wire.ICMPParamProblem:
	default:
		return Reply{}, errNotOurs
	}
	// The quoted packet: an IPv4 header (IHL checked against what is there) and at least the
	// 8 bytes of our echo header.
	q, ok := wire.ParseQuotedIPv4(b[wire.ICMPHeaderLen:], wire.ICMPHeaderLen)
	if !ok || q.Proto != 1 || q.Dst != target || q.IPID != id.IPID {
		return Reply{}, errNotOurs
	}
	e := q.Next
	if e[0] != wire.ICMPEcho || binary.BigEndian.Uint16(e[4:]) != id.ID || binary.BigEndian.Uint16(e[6:]) != id.Seq {
		return Reply{}, errNotOurs
	}
	return ICMPErrorReply(from, b), nil
}

// pacer spaces probes pace apart on average, letting burst of them go back to back after a
// pause (GCRA: tat is when the next probe is due on the steady schedule).
type pacer struct {
	pace  time.Duration
	burst int
	tat   time.Time
}

// wait is how long to wait at now before the next probe may go.
func (p *pacer) wait(now time.Time) time.Duration {
	if p.tat.Before(now) {
		return 0
	}
	return max(p.tat.Sub(now)-time.Duration(p.burst-1)*p.pace, 0)
}

// sent books a probe that went at now.
func (p *pacer) sent(now time.Time) {
	if p.tat.Before(now) {
		p.tat = now
	}
	p.tat = p.tat.Add(p.pace)
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
