package wire

import (
	"encoding/binary"
	"fmt"
)

// Kind says what a captured packet is with respect to a probe.
type Kind uint8

const (
	KindProbe     Kind = iota + 1 // the probe itself (or one of its fragments)
	KindReply                     // an answer from the far end: echo reply, IKE response, SYN-ACK, RST
	KindICMPError                 // an ICMP error quoting the probe
)

func (k Kind) String() string {
	switch k {
	case KindProbe:
		return "probe"
	case KindReply:
		return "reply"
	case KindICMPError:
		return "icmp-error"
	}
	return fmt.Sprintf("kind(%d)", uint8(k))
}

// Match maps a captured packet to a probe.
type Match struct {
	// ID is the probe class. It is empty when only the nonce could be recovered (an ICMP
	// error quoting just 8 bytes of an ESP probe): map the nonce with your own table.
	ID    ID
	Nonce uint32
	Kind  Kind
	// DatagramLen is the probe's IP total length before fragmentation, from the marker
	// (0 when the class has no marker: ike, natt, tcp).
	DatagramLen int
	// TCPFlags are the flags of a TCP probe or answer (SYN 0x02, RST 0x04, ACK 0x10).
	TCPFlags uint8
}

// TCP flag bits.
const (
	TCPFin = 0x01
	TCPSyn = 0x02
	TCPRst = 0x04
	TCPAck = 0x10
)

// ProbeIKESPI is the initiator SPI of our IKE probes: 'I' 'P' class code, marker version,
// nonce.
func ProbeIKESPI(code uint8, nonce uint32) [8]byte {
	var s [8]byte
	s[0], s[1], s[2], s[3] = 'I', 'P', code, MarkerVersion
	binary.BigEndian.PutUint32(s[4:8], nonce)
	return s
}

func parseIKESPI(b []byte) (code uint8, nonce uint32, ok bool) {
	if len(b) < 8 || b[0] != 'I' || b[1] != 'P' || b[3] != MarkerVersion {
		return 0, 0, false
	}
	return b[2], binary.BigEndian.Uint32(b[4:8]), true
}

// ClassifyHead says which probe a packet's first bytes after the IP header belong to: a
// probe, an answer to one, or an ICMP error quoting one. head is a first fragment's
// captured head (or more). A TCP SYN matches any SYN: confirm the nonce against what you
// sent. Each class of the table (class.go) recognises its own; an ICMP error is classified
// by the header it quotes.
func ClassifyHead(proto uint8, head []byte) (Match, bool) {
	if proto == ProtoICMP && len(head) >= 8 {
		switch head[0] {
		case ICMPUnreach, ICMPTimeExceeded, ICMPParamProblem:
			return classifyQuoted(head[8:])
		}
	}
	for i := range classes {
		if c := &classes[i]; c.proto == proto {
			if m, ok := c.recognise(head); ok {
				return m, true
			}
		}
	}
	return Match{}, false
}

// classifyQuoted classifies what an ICMP error quotes: the probe's IP header and the bytes
// after it, or only 8 of them (ESP/AH SPI or echo id/seq still give the nonce).
func classifyQuoted(b []byte) (Match, bool) {
	var q IPv4Header
	if q.DecodeFromBytes(b) != nil {
		return Match{}, false
	}
	m, ok := ClassifyHead(q.Proto, q.Payload)
	if ok && m.Kind == KindProbe {
		m.Kind = KindICMPError
		return m, true
	}
	if nonce, ok := quotedNonce(q.Proto, q.Payload); ok {
		return Match{Nonce: nonce, Kind: KindICMPError}, true
	}
	return Match{}, false
}

// quotedNonce recovers the nonce from the first 8 bytes after a quoted IP header.
func quotedNonce(proto uint8, b []byte) (uint32, bool) {
	if len(b) < 8 {
		return 0, false
	}
	switch proto {
	case ProtoESP:
		return binary.BigEndian.Uint32(b[0:4]), true
	case ProtoAH:
		return binary.BigEndian.Uint32(b[4:8]), true
	case ProtoICMP:
		if b[0] == ICMPEcho {
			return uint32(binary.BigEndian.Uint16(b[4:6]))<<16 | uint32(binary.BigEndian.Uint16(b[6:8])), true
		}
	case ProtoTCP:
		return binary.BigEndian.Uint32(b[4:8]), true
	}
	return 0, false
}
