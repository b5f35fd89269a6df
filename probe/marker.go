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
	"net/netip"
	"sync"

	"github.com/ipsecpath/ipsecpath/probe/wire"
)

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
// Each class of the table (class.go) recognises its own; an ICMP error is classified by
// the header it quotes.
func ClassifyHead(proto uint8, head []byte) (Match, bool) {
	if proto == ProtoICMP && len(head) >= 8 {
		switch head[0] {
		case wire.ICMPUnreach, wire.ICMPTimeExceeded, wire.ICMPParamProblem:
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
		if b[0] == wire.ICMPEcho {
			return uint32(binary.BigEndian.Uint16(b[4:6]))<<16 | uint32(binary.BigEndian.Uint16(b[6:8])), true
		}
	case ProtoTCP:
		return binary.BigEndian.Uint32(b[4:8]), true
	}
	return 0, false
}

// classify maps a captured first fragment (or whole packet) to its probe; see ClassifyHead.
// Non-first fragments carry no header: use a correlator.
func classify(s *Seen) (Match, bool) {
	if s.Offset != 0 {
		return Match{}, false
	}
	return ClassifyHead(s.Proto, s.Head)
}

// fragKey is RFC 791's reassembly key. Zero addresses are a wildcard (NAT on the path).
type fragKey struct {
	src, dst netip.Addr
	proto    uint8
	id       uint16
}

// MaxCorrelated bounds how many datagrams a correlator remembers, expected and learned
// apart; a map that reaches it starts over (a check sends far fewer probes).
const MaxCorrelated = 4096

// correlator maps every fragment of a probe to the probe, first or not: it knows the probes
// you sent (Expect) and learns from first fragments it classifies. Safe for concurrent use.
type correlator struct {
	mu      sync.Mutex
	expect  map[fragKey]Match
	learned map[fragKey]Match
}

// newCorrelator returns an empty correlator.
func newCorrelator() *correlator {
	return &correlator{expect: map[fragKey]Match{}, learned: map[fragKey]Match{}}
}

// Expect records a probe that was built (and is about to be sent), so that its fragments and
// ICMP errors quoting only its IP header map to it even when the first fragment is lost.
func (c *correlator) Expect(p *Packets) {
	m := Match{ID: p.ID, Nonce: p.Nonce, Kind: KindProbe, DatagramLen: p.Size}
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(c.expect) >= MaxCorrelated {
		clear(c.expect)
	}
	c.expect[fragKey{p.Src, p.Dst, p.Proto, p.IPID}] = m
	c.expect[fragKey{proto: p.Proto, id: p.IPID}] = m
}

// Match maps a Seen to its probe: first fragments and ICMP errors by their head; other
// fragments by (src, dst, proto, IP ID) of a probe expected or a first fragment seen.
func (c *correlator) Match(s *Seen) (Match, bool) {
	if s.Offset == 0 {
		m, ok := ClassifyHead(s.Proto, s.Head)
		if ok && m.Kind == KindProbe && (s.More || m.DatagramLen > 0) {
			c.learn(fragKey{s.Src, s.Dst, s.Proto, s.IPID}, m)
		}
		if ok && (m.ID != "" || m.Kind != KindICMPError) {
			return m, true
		}
		if s.Proto == ProtoICMP {
			if q, qok := c.matchQuoted(s); qok {
				return q, true
			}
		}
		return m, ok // a first fragment of ours always classifies by its head
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	k := fragKey{s.Src, s.Dst, s.Proto, s.IPID}
	if m, ok := c.learned[k]; ok {
		return m, true
	}
	if m, ok := c.expect[k]; ok {
		return m, true
	}
	if m, ok := c.expect[fragKey{proto: s.Proto, id: s.IPID}]; ok {
		return m, true
	}
	return Match{}, false
}

// matchQuoted maps an ICMP error whose quote is too short to classify, by the quoted IP ID.
func (c *correlator) matchQuoted(s *Seen) (Match, bool) {
	e, err := ParseICMPError(s)
	if err != nil {
		return Match{}, false
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	m, ok := c.expect[fragKey{e.Quoted.Src, e.Quoted.Dst, e.Quoted.Proto, e.Quoted.IPID}]
	if !ok {
		m, ok = c.expect[fragKey{proto: e.Quoted.Proto, id: e.Quoted.IPID}]
	}
	if ok {
		m.Kind = KindICMPError
	}
	return m, ok
}

func (c *correlator) learn(k fragKey, m Match) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if _, ok := c.learned[k]; ok {
		return
	}
	if len(c.learned) >= MaxCorrelated {
		clear(c.learned)
	}
	c.learned[k] = m
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
