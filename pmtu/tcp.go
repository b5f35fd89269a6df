package pmtu

import (
	"encoding/binary"
	"errors"
	"net/netip"

	"github.com/ipsecpath/ipsecpath/probe/wire"
)

// A TCP-sized probe is one data segment of an established-looking connection: ACK|PSH with
// payload, DF set, no options. Nothing listens for it: the target's kernel answers an
// unsolicited ACK with a reset whose sequence number is our acknowledgment number (RFC 9293
// §3.10.7.1), and that reset is how the probe's arrival shows one-ended. Routers quote its
// IPv4 header (IP ID) and first 8 bytes (ports and sequence number) in their ICMP errors.
//
//	IPv4 header (20)  TCP header (20)                          payload
//	+--------------+  +-------+-------+-----+-----+-----------+  +---------------------------+
//	| DF, TTL, ID  |  | sport | dport | seq | ack | ACK|PSH … |  | probe marker (12), pattern|
//	+--------------+  +-------+-------+-----+-----+-----------+  +---------------------------+
//
// The payload starts with ipsecpath's probe marker (probe/marker.go): 'I' 'P' 'S' 'P',
// class code 10 (tcp), version 1, the datagram's length, and the nonce, which is the
// segment's sequence number. The far-end agent keeps segments that carry it, so with an
// agent the capture confirms arrival even where a firewall eats the reset.
const (
	tcpHeader      = 20
	tcpFlagFIN     = 0x01
	tcpFlagSYN     = 0x02
	tcpFlagRST     = 0x04
	tcpFlagPSH     = 0x08
	tcpFlagACK     = 0x10
	protoTCP       = wire.ProtoTCP
	tcpProbeWindow = 502 // a plausible receive window, no scaling
	// MinTCPProbe is the smallest TCP-sized probe: IPv4 and TCP headers and the marker.
	MinTCPProbe = 20 + tcpHeader + wire.MarkerLen
)

// DefaultTCPPort is the port TCP-sized probes go to: SMB, open or closed, answers with a
// reset like any port where nothing takes an unsolicited ACK.
const DefaultTCPPort = 445

// TCPProbe names one TCP-sized probe: the addresses and ports of the segment, its sequence
// and acknowledgment numbers, and the IP ID and TTL of its header.
type TCPProbe struct {
	Src, Dst         netip.Addr
	SrcPort, DstPort uint16
	Seq, Ack         uint32
	IPID             uint16
	TTL              uint8
}

// errTCPProbe says a probe cannot be built as asked.
var errTCPProbe = errors.New("pmtu: TCP probe needs IPv4 addresses and at least 52 bytes")

// Put writes the probe into b as a whole IPv4 packet in wire form of len(b) bytes (the IP
// total length): header with DF, TCP ACK|PSH, the marker, then a pattern. It sets both
// checksums. len(b) must be MinTCPProbe..65535.
func (t TCPProbe) Put(b []byte) error {
	if len(b) < MinTCPProbe || len(b) > 65535 || !t.Src.Is4() || !t.Dst.Is4() {
		return errTCPProbe
	}
	ip := wire.IPv4Header{TotalLen: len(b), ID: t.IPID, DF: true, TTL: t.TTL, Proto: protoTCP, Src: t.Src, Dst: t.Dst}
	ip.MarshalTo(b)

	s := b[20:]
	binary.BigEndian.PutUint16(s[0:], t.SrcPort)
	binary.BigEndian.PutUint16(s[2:], t.DstPort)
	binary.BigEndian.PutUint32(s[4:], t.Seq)
	binary.BigEndian.PutUint32(s[8:], t.Ack)
	s[12], s[13] = tcpHeader/4<<4, tcpFlagACK|tcpFlagPSH
	binary.BigEndian.PutUint16(s[14:], tcpProbeWindow)
	s[16], s[17], s[18], s[19] = 0, 0, 0, 0
	p := s[tcpHeader:]
	wire.PutMarker(p, wire.MarkerCodeTCP, len(b), t.Seq)
	const mark = "ipsecpath pmtu "
	for i := wire.MarkerLen; i < len(p); i++ {
		p[i] = mark[(i-wire.MarkerLen)%len(mark)]
	}
	binary.BigEndian.PutUint16(s[16:], wire.TCPChecksum(t.Src, t.Dst, s))
	return nil
}

// parseTCPAnswer reads a TCP segment (TCP header first) received from from, and says
// whether it is the target's reset for probe t sent with payload bytes of data: a RST from
// t.Dst's port to ours whose sequence number is our acknowledgment number (the answer to
// an ACK), or a RST|ACK that acknowledges our data. errNotOurs for anything else; it never
// panics.
func parseTCPAnswer(from netip.Addr, b []byte, t TCPProbe, payload int) (Reply, error) {
	if len(b) < tcpHeader || from != t.Dst {
		return Reply{}, errNotOurs
	}
	sp, dp := binary.BigEndian.Uint16(b[0:]), binary.BigEndian.Uint16(b[2:])
	seq, ack := binary.BigEndian.Uint32(b[4:]), binary.BigEndian.Uint32(b[8:])
	flags := b[13]
	if sp != t.DstPort || dp != t.SrcPort || flags&tcpFlagRST == 0 {
		return Reply{}, errNotOurs
	}
	if seq == t.Ack || (flags&tcpFlagACK != 0 && ack == t.Seq+uint32(payload)) {
		return Reply{Outcome: Arrived, From: from}, nil
	}
	return Reply{}, errNotOurs
}

// quote is what an ICMP error about probe t quotes: its IPv4 header (TCP, t.Dst, t.IPID)
// and the first 8 bytes of its segment (ports and sequence number).
func (t TCPProbe) quote() quoted {
	q := quoted{proto: protoTCP, dst: t.Dst, ipid: t.IPID, mask: [8]byte{0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff}}
	binary.BigEndian.PutUint16(q.head[0:], t.SrcPort)
	binary.BigEndian.PutUint16(q.head[2:], t.DstPort)
	binary.BigEndian.PutUint32(q.head[4:], t.Seq)
	return q
}
