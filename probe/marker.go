package probe

// Every probe carries its class and a 32-bit nonce in the first bytes after its IP header
// (within HeadLen, so a captured first fragment's Seen.Head is enough to map it back):
//
//	esp, esp-frag    SPI = nonce, sequence = nonce, then the 12-byte marker
//	ah, ah-frag      AH SPI = nonce, sequence = nonce, 12-byte ICV, then the marker
//	icmp-large, pmtu ICMP echo id = nonce>>16, seq = nonce&0xffff, then the marker
//	ike, ike-frag    UDP 500→500, IKE_SA_INIT, initiator SPI = 'I' 'P' code 1 nonce(4)
//	                 (ike.SPIWithNonce's "ipsp" nonce(4) is recognised too, as ike or natt)
//	natt, natt-frag  UDP 4500→4500, non-ESP marker (4 zero bytes), then IKE as above
//	tcp:PORT         SYN with ISN = nonce (and IP ID = low 16 bits of the nonce)
//	pmtu --proto tcp ACK data segment, seq = nonce, payload starts with the marker (code 10)
//
// The marker is 12 bytes:
//
//	 0                   1                   2                   3
//	 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1
//	+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//	|      'I'      |      'P'      |      'S'      |      'P'      |
//	+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//	|  class code   |  version (1)  |  datagram length (IP total)    |
//	+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//	|                             nonce                             |
//	+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//
// Answers map back too: an echo reply carries the marker back, an IKE response echoes the
// initiator SPI, a SYN-ACK or RST acknowledges nonce+1, and an ICMP error quotes the probe's
// IP header (whose IP ID is the nonce's low 16 bits) and the bytes after it.

import (
	"crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"

	ikepkg "github.com/ipsecpath/ipsecpath/ike"
	"github.com/ipsecpath/ipsecpath/probe/wire"
)

// class codes in the marker and the IKE SPI: stable, they travel on the wire.
var classCodes = map[ID]uint8{
	IKE: 1, IKEFrag: 2, NATT: 3, NATTFrag: 4, ESP: 5, ESPFrag: 6, AH: 7, AHFrag: 8,
	ICMPLarge: 9, PMTU: 11,
}

var codeIDs = func() [16]ID {
	var a [16]ID
	for id, c := range classCodes {
		a[c] = id
	}
	return a
}()

func classCode(id ID) (uint8, bool) {
	if _, ok := id.TCPPort(); ok {
		return wire.MarkerCodeTCP, true
	}
	if c, ok := udpClassOf(id); ok {
		return c.code, true
	}
	c, ok := classCodes[id]
	return c, ok
}

func codeID(c uint8) ID {
	if int(c) < len(codeIDs) {
		return codeIDs[c]
	}
	return ""
}

// ikeSPI is the initiator SPI of our IKE probes: 'I' 'P' code 1 nonce.
func ikeSPI(code uint8, nonce uint32) [8]byte {
	var s [8]byte
	s[0], s[1], s[2], s[3] = 'I', 'P', code, wire.MarkerVersion
	binary.BigEndian.PutUint32(s[4:8], nonce)
	return s
}

// IKESPI returns the IKE initiator SPI that carries a probe's class and nonce, for callers
// that build IKE messages themselves (the ike package's builders take the SPI).
func IKESPI(id ID, nonce uint32) ([8]byte, error) {
	c, ok := classCode(id)
	if !ok {
		return [8]byte{}, fmt.Errorf("probe: IKESPI: unknown probe %q", id)
	}
	return ikeSPI(c, nonce), nil
}

func parseIKESPI(b []byte) (code uint8, nonce uint32, ok bool) {
	if len(b) < 8 || b[0] != 'I' || b[1] != 'P' || b[3] != wire.MarkerVersion {
		return 0, 0, false
	}
	return b[2], binary.BigEndian.Uint32(b[4:8]), true
}

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

// ClassifyHead says which probe a packet's first bytes after the IP header belong to: a
// probe, an answer to one, or an ICMP error quoting one. head is a first fragment's
// Seen.Head (or more). A TCP SYN matches any SYN: confirm the nonce against what you sent.
func ClassifyHead(proto uint8, head []byte) (Match, bool) {
	switch proto {
	case ProtoESP:
		var e ESPHeader
		if e.DecodeFromBytes(head) != nil {
			return Match{}, false
		}
		code, n, nonce, ok := wire.ParseMarker(e.Payload)
		if !ok || nonce != e.SPI {
			return Match{}, false
		}
		return markerMatch(code, n, nonce, KindProbe)
	case ProtoAH:
		var a AHHeader
		if a.DecodeFromBytes(head) != nil {
			return Match{}, false
		}
		code, n, nonce, ok := wire.ParseMarker(a.Payload)
		if !ok || nonce != a.SPI {
			return Match{}, false
		}
		return markerMatch(code, n, nonce, KindProbe)
	case ProtoICMP:
		if len(head) < 8 {
			return Match{}, false
		}
		switch head[0] {
		case wire.ICMPEcho, wire.ICMPEchoReply:
			code, n, nonce, ok := wire.ParseMarker(head[8:])
			if !ok || uint32(binary.BigEndian.Uint16(head[4:6]))<<16|uint32(binary.BigEndian.Uint16(head[6:8])) != nonce {
				return Match{}, false
			}
			k := KindProbe
			if head[0] == wire.ICMPEchoReply {
				k = KindReply
			}
			return markerMatch(code, n, nonce, k)
		case wire.ICMPUnreach, wire.ICMPTimeExceeded, wire.ICMPParamProblem:
			var q IPv4Header
			if q.DecodeFromBytes(head[8:]) != nil {
				return Match{}, false
			}
			m, ok := ClassifyHead(q.Proto, q.Payload)
			if ok && m.Kind == KindProbe {
				m.Kind = KindICMPError
				return m, true
			}
			// Only 8 quoted bytes: ESP/AH SPI or echo id/seq still give the nonce.
			if nonce, ok := quotedNonce(q.Proto, q.Payload); ok {
				return Match{Nonce: nonce, Kind: KindICMPError}, true
			}
			return Match{}, false
		}
	case ProtoUDP:
		if len(head) < 8 {
			return Match{}, false
		}
		sp, dp := binary.BigEndian.Uint16(head[0:2]), binary.BigEndian.Uint16(head[2:4])
		if m, ok := classifyUDPClass(sp, dp, head[8:]); ok {
			return m, true
		}
		ike := head[8:]
		if sp == PortNATT || dp == PortNATT {
			if len(ike) < 4 || binary.BigEndian.Uint32(ike[0:4]) != 0 {
				return Match{}, false
			}
			ike = ike[4:]
		} else if sp != PortIKE && dp != PortIKE {
			return Match{}, false
		}
		code, nonce, ok := parseIKESPI(ike)
		if !ok && len(ike) >= 8 {
			// The ike package's SPIWithNonce form ("ipsp" nonce) used by one-ended IKE probes.
			var spi [8]byte
			copy(spi[:], ike)
			if nonce, ok = ikepkg.NonceFromSPI(spi); ok {
				code = classCodes[IKE]
				if len(head)-len(ike) > udpHeaderLen {
					code = classCodes[NATT]
				}
			}
		}
		if !ok {
			return Match{}, false
		}
		n := 0 // the datagram's length, from the IKE length (IHL 5 assumed, as we send)
		if len(ike) >= ikeHeaderLen {
			n = int(binary.BigEndian.Uint32(ike[24:28])) + ipv4MinHeader + len(head) - len(ike)
		}
		k := KindProbe
		// An IKE response has a responder SPI (IKEv1 and v2) or the IKEv2 response flag.
		if len(ike) >= 28 && (binary.BigEndian.Uint64(ike[8:16]) != 0 || ike[19]&0x20 != 0) {
			k = KindReply
		}
		return markerMatch(code, n, nonce, k)
	case ProtoTCP:
		if len(head) < 20 {
			return Match{}, false
		}
		sp, dp := binary.BigEndian.Uint16(head[0:2]), binary.BigEndian.Uint16(head[2:4])
		seq, ack := binary.BigEndian.Uint32(head[4:8]), binary.BigEndian.Uint32(head[8:12])
		flags := head[13]
		switch {
		case flags&(TCPSyn|TCPAck|TCPRst) == TCPSyn:
			return Match{ID: TCP(int(dp)), Nonce: seq, Kind: KindProbe, TCPFlags: flags}, true
		case flags&TCPAck != 0 && flags&(TCPSyn|TCPRst) != 0:
			return Match{ID: TCP(int(sp)), Nonce: ack - 1, Kind: KindReply, TCPFlags: flags}, true
		case flags&(TCPSyn|TCPRst|TCPFin|TCPAck) == TCPAck:
			// A TCP-sized path MTU probe (pmtu.TCPProbe): a data segment whose payload starts
			// with the marker, nonce = its sequence number.
			off := int(head[12]>>4) * 4
			if off < 20 || len(head) < off+wire.MarkerLen {
				return Match{}, false
			}
			code, n, nonce, ok := wire.ParseMarker(head[off:])
			if !ok || code != wire.MarkerCodeTCP || nonce != seq {
				return Match{}, false
			}
			return Match{ID: TCP(int(dp)), Nonce: nonce, Kind: KindProbe, DatagramLen: n, TCPFlags: flags}, true
		}
	}
	return Match{}, false
}

func markerMatch(code uint8, n int, nonce uint32, k Kind) (Match, bool) {
	id := codeID(code)
	if id == "" || code == wire.MarkerCodeTCP {
		return Match{}, false
	}
	return Match{ID: id, Nonce: nonce, Kind: k, DatagramLen: n}, true
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
		if b[0] == wire.ICMPEcho {
			return uint32(binary.BigEndian.Uint16(b[4:6]))<<16 | uint32(binary.BigEndian.Uint16(b[6:8])), true
		}
	case ProtoTCP:
		return binary.BigEndian.Uint32(b[4:8]), true
	}
	return 0, false
}

// classify maps a captured first fragment (or whole packet) to its probe; see ClassifyHead.
// Non-first fragments carry no header: the check maps them by IP ID (checkRun.arrived).
func classify(s *Seen) (Match, bool) {
	if s.Offset != 0 {
		return Match{}, false
	}
	return ClassifyHead(s.Proto, s.Head)
}

// ErrBadNonce is returned for a nonce that cannot be used: below 256 (ESP and AH reserve
// SPIs 1–255) or with zero low 16 bits (IP ID 0 lets the kernel pick its own).
var ErrBadNonce = errors.New("probe: nonce must be ≥ 256 with non-zero low 16 bits")

func validNonce(n uint32) bool { return n >= 256 && n&0xffff != 0 }

// NewNonces returns n random probe nonces, all valid and with distinct low 16 bits (the IP
// ID), so that fragments of different probes never share a reassembly key.
func NewNonces(n int) ([]uint32, error) {
	if n < 0 || n > 1<<15 {
		return nil, fmt.Errorf("probe: NewNonces(%d): want 0–32768", n)
	}
	out := make([]uint32, 0, n)
	used := make(map[uint16]bool, n)
	var b [4]byte
	for len(out) < n {
		if _, err := rand.Read(b[:]); err != nil {
			return nil, fmt.Errorf("probe: random nonce: %w", err)
		}
		v := binary.BigEndian.Uint32(b[:])
		if !validNonce(v) || used[uint16(v)] {
			continue
		}
		used[uint16(v)] = true
		out = append(out, v)
	}
	return out, nil
}
