package probe

// Every probe carries its class and a 32-bit nonce in the first bytes after its IP header
// (within HeadLen, so a captured first fragment's Seen.Head is enough to map it back); the
// layout of each class and of the marker is drawn in probe/wire's marker.go, whose table of
// classes writes and recognises them. Here: the names probe gives them, the correlator that
// maps every fragment to its probe, and the nonces.

import (
	"crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"

	"github.com/ipsecpath/ipsecpath/probe/wire"
)

// ikeSPI is the initiator SPI of our IKE probes: 'I' 'P' code 1 nonce.
func ikeSPI(code uint8, nonce uint32) [8]byte { return wire.ProbeIKESPI(code, nonce) }

// IKESPI returns the IKE initiator SPI that carries a probe's class and nonce, for callers
// that build IKE messages themselves (the ike package's builders take the SPI).
func IKESPI(id ID, nonce uint32) ([8]byte, error) {
	c, ok := wire.ClassOf(id)
	if !ok {
		return [8]byte{}, fmt.Errorf("probe: IKESPI: unknown probe %q", id)
	}
	return wire.ProbeIKESPI(c.Code(), nonce), nil
}

// Kind says what a captured packet is with respect to a probe (probe/wire's).
type Kind = wire.Kind

// The kinds of Match.
const (
	KindProbe     = wire.KindProbe     // the probe itself (or one of its fragments)
	KindReply     = wire.KindReply     // an answer from the far end: echo reply, IKE response, SYN-ACK, RST
	KindICMPError = wire.KindICMPError // an ICMP error quoting the probe
)

// Match maps a captured packet to a probe (probe/wire's): ID (empty when only the nonce
// could be recovered), Nonce, Kind, DatagramLen from the marker, TCPFlags.
type Match = wire.Match

// TCP flag bits.
const (
	TCPFin = wire.TCPFin
	TCPSyn = wire.TCPSyn
	TCPRst = wire.TCPRst
	TCPAck = wire.TCPAck
)

// ClassifyHead says which probe a packet's first bytes after the IP header belong to: a
// probe, an answer to one, or an ICMP error quoting one. head is a first fragment's
// Seen.Head (or more). A TCP SYN matches any SYN: confirm the nonce against what you sent.
// It is wire.ClassifyHead: each class of the table recognises its own, an ICMP error is
// classified by the header it quotes.
func ClassifyHead(proto uint8, head []byte) (Match, bool) { return wire.ClassifyHead(proto, head) }

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
