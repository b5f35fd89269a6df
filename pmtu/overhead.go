package pmtu

import (
	"errors"
	"fmt"
	"strings"
)

// Suite is an IPsec transform whose per-packet overhead the arithmetic knows.
type Suite string

// The suites. ESP suites pad the encrypted part (payload + 2-byte trailer) to their
// alignment; AH carries no padding of the payload, only of its own header.
const (
	ESPAESGCM16         Suite = "aes-gcm-16"        // ESP AES-GCM, 8-byte IV, 16-byte ICV (RFC 4106)
	ESPAESCBCSHA256     Suite = "aes-cbc-sha256"    // ESP AES-CBC + HMAC-SHA2-256-128: 16-byte IV, 16-byte ICV (RFC 3602, 4868)
	ESPChaCha20Poly1305 Suite = "chacha20-poly1305" // ESP ChaCha20-Poly1305, 8-byte IV, 16-byte ICV (RFC 7634)
	AHSHA256            Suite = "ah-sha256"         // AH with HMAC-SHA2-256-128: 12-byte header + 16-byte ICV (RFC 4302, 4868)
)

// Suites lists the suites in the order help text shows them.
var Suites = []Suite{ESPAESGCM16, ESPAESCBCSHA256, ESPChaCha20Poly1305, AHSHA256}

// Mode is IPsec tunnel or transport mode.
type Mode string

const (
	Tunnel    Mode = "tunnel"    // the whole inner packet is protected; a new outer IP header is added
	Transport Mode = "transport" // ESP/AH goes between the packet's own IP header and its payload
)

// Header and trailer sizes, in bytes.
const (
	IPv4Header   = 20 // without options
	IPv6Header   = 40 // without extension headers
	UDPHeader    = 8  // NAT-T (RFC 3948) wraps ESP in UDP 4500
	TCPHeader    = 20 // without options: what an MSS clamp assumes
	espHeader    = 8  // SPI + sequence number
	espTrailer   = 2  // pad length + next header
	ahFixed      = 12 // next header, payload len, reserved, SPI, sequence number
	espAlignment = 4  // RFC 4303 2.4: the ciphertext ends on a 4-byte boundary
)

// cipher holds what an ESP suite adds: IV, ICV, and the block the encrypted part pads to.
type cipher struct {
	iv, icv, block int
}

var espSuites = map[Suite]cipher{
	ESPAESGCM16:         {iv: 8, icv: 16, block: espAlignment}, // GCM is a stream mode: 4-byte alignment only
	ESPAESCBCSHA256:     {iv: 16, icv: 16, block: 16},          // AES block
	ESPChaCha20Poly1305: {iv: 8, icv: 16, block: espAlignment},
}

const ahICVSHA256 = 16 // HMAC-SHA2-256 truncated to 128 bits

// Encap is one way of carrying packets through IPsec: the suite, the mode, NAT-T, and the
// IP versions of the outer header (the path) and of the inner packet (tunnel mode only; in
// transport mode the inner packet is the outer one).
type Encap struct {
	Suite Suite
	Mode  Mode
	NATT  bool // ESP in UDP 4500 (RFC 3948): 8 more bytes
	Outer int  // 4 or 6: IP version on the path
	Inner int  // 4 or 6: IP version of the protected packet; 0 means the same as Outer
}

// ErrTooSmall says the path MTU leaves no room for a packet once IPsec has added its bytes.
var ErrTooSmall = errors.New("pmtu: path MTU too small for this encapsulation")

// ParseSuite accepts a suite name as the CLI takes it.
func ParseSuite(s string) (Suite, error) {
	for _, k := range Suites {
		if strings.EqualFold(s, string(k)) {
			return k, nil
		}
	}
	return "", fmt.Errorf("unknown suite %q (valid: %s)", s, suiteNames())
}

func suiteNames() string {
	n := make([]string, len(Suites))
	for i, s := range Suites {
		n[i] = string(s)
	}
	return strings.Join(n, ", ")
}

// ParseMode accepts "tunnel" or "transport".
func ParseMode(s string) (Mode, error) {
	switch strings.ToLower(s) {
	case string(Tunnel):
		return Tunnel, nil
	case string(Transport):
		return Transport, nil
	}
	return "", fmt.Errorf("unknown mode %q (valid: tunnel, transport)", s)
}

func (e Encap) inner() int {
	if e.Mode == Transport || e.Inner == 0 {
		return e.Outer
	}
	return e.Inner
}

// Validate says what is wrong with e, if anything.
func (e Encap) Validate() error {
	if _, ok := espSuites[e.Suite]; !ok && e.Suite != AHSHA256 {
		return fmt.Errorf("pmtu: unknown suite %q (valid: %s)", e.Suite, suiteNames())
	}
	if e.Mode != Tunnel && e.Mode != Transport {
		return fmt.Errorf("pmtu: unknown mode %q", e.Mode)
	}
	if e.Outer != 4 && e.Outer != 6 {
		return fmt.Errorf("pmtu: outer IP version %d: want 4 or 6", e.Outer)
	}
	if e.Inner != 0 && e.Inner != 4 && e.Inner != 6 {
		return fmt.Errorf("pmtu: inner IP version %d: want 4 or 6", e.Inner)
	}
	if e.Mode == Transport && e.Inner != 0 && e.Inner != e.Outer {
		return fmt.Errorf("pmtu: transport mode keeps the packet's own IPv%d header: inner IPv%d is impossible", e.Outer, e.Inner)
	}
	if e.Suite == AHSHA256 && e.NATT {
		return errors.New("pmtu: AH cannot cross NAT (it authenticates the IP addresses); NAT-T carries ESP only")
	}
	return nil
}

func ipHeader(v int) int {
	if v == 6 {
		return IPv6Header
	}
	return IPv4Header
}

// ahLen is the AH header with its ICV, padded to 4 bytes for IPv4 and 8 for IPv6 (RFC 4302 2.2).
func (e Encap) ahLen() int {
	n := ahFixed + ahICVSHA256 // 28
	align := 4
	if e.Outer == 6 {
		align = 8
	}
	return roundUp(n, align)
}

// outerFixed is what goes in front of ESP/AH on the wire: a new outer IP header in tunnel
// mode (in transport mode the packet's own header, counted in the inner size), and NAT-T's UDP.
func (e Encap) outerFixed() int {
	n := 0
	if e.Mode == Tunnel {
		n += ipHeader(e.Outer)
	}
	if e.NATT {
		n += UDPHeader
	}
	return n
}

// protected is the part of an inner packet of size inner that ESP encrypts: all of it in
// tunnel mode, the payload after the IP header in transport mode.
func (e Encap) protected(inner int) int {
	if e.Mode == Transport {
		return inner - ipHeader(e.Outer)
	}
	return inner
}

// WireSize is the size on the wire, outer IP header included, of an inner IP packet of
// inner bytes once e has wrapped it.
func (e Encap) WireSize(inner int) (int, error) {
	if err := e.Validate(); err != nil {
		return 0, err
	}
	if min := ipHeader(e.inner()); inner < min {
		return 0, fmt.Errorf("pmtu: an inner IPv%d packet of %d bytes is shorter than its header", e.inner(), inner)
	}
	if e.Suite == AHSHA256 {
		return e.outerFixed() + e.ahLen() + inner, nil
	}
	c := espSuites[e.Suite]
	body := e.protected(inner)
	wire := e.outerFixed() + espHeader + c.iv + roundUp(body+espTrailer, c.block) + c.icv
	if e.Mode == Transport {
		wire += ipHeader(e.Outer)
	}
	return wire, nil
}

// MaxInner is the largest inner IP packet that e can carry across a path of MTU mtu without
// fragmentation: in tunnel mode, the MTU to give the tunnel interface.
func (e Encap) MaxInner(mtu int) (int, error) {
	if err := e.Validate(); err != nil {
		return 0, err
	}
	var n int
	if e.Suite == AHSHA256 {
		n = mtu - e.outerFixed() - e.ahLen()
	} else {
		c := espSuites[e.Suite]
		room := mtu - e.outerFixed() - espHeader - c.iv - c.icv
		if e.Mode == Transport {
			room -= ipHeader(e.Outer)
		}
		// The encrypted part (body + trailer) is a multiple of the block: the largest one
		// that fits, less the trailer, is the largest body.
		n = roundDown(room, c.block) - espTrailer
		if e.Mode == Transport {
			n += ipHeader(e.Outer)
		}
	}
	if n < ipHeader(e.inner())+TCPHeader {
		return 0, fmt.Errorf("%w: %d-byte path MTU leaves %d bytes for an inner IPv%d packet", ErrTooSmall, mtu, n, e.inner())
	}
	return n, nil
}

// Advice is what to configure for a path MTU and an encapsulation.
type Advice struct {
	PathMTU   int    `json:"path_mtu"`
	Suite     Suite  `json:"suite"`
	Mode      Mode   `json:"mode"`
	NATT      bool   `json:"natt"`
	Outer     int    `json:"outer_ip"`
	Inner     int    `json:"inner_ip"`
	Overhead  int    `json:"overhead"`         // bytes IPsec adds to the largest inner packet
	MaxInner  int    `json:"max_inner_packet"` // largest inner IP packet that crosses unfragmented
	TunnelMTU int    `json:"tunnel_mtu"`       // MTU for the tunnel interface (tunnel mode), = MaxInner
	MSS       int    `json:"tcp_mss"`          // TCP MSS to clamp to: MaxInner less inner IP and TCP headers
	Note      string `json:"note,omitempty"`   // a caveat worth a line, e.g. IPv6 below 1280
}

// Advise turns a path MTU into the inner packet size, tunnel MTU and MSS clamp for e.
func (e Encap) Advise(mtu int) (Advice, error) {
	max, err := e.MaxInner(mtu)
	if err != nil {
		return Advice{}, err
	}
	wire, err := e.WireSize(max)
	if err != nil {
		return Advice{}, err
	}
	a := Advice{
		PathMTU: mtu, Suite: e.Suite, Mode: e.Mode, NATT: e.NATT, Outer: e.Outer, Inner: e.inner(),
		Overhead: wire - max, MaxInner: max, MSS: max - ipHeader(e.inner()) - TCPHeader,
	}
	if e.Mode == Tunnel {
		a.TunnelMTU = max
	}
	if e.inner() == 6 && max < 1280 {
		a.Note = fmt.Sprintf("IPv6 needs a link MTU of at least 1280 (RFC 8200): the tunnel must fragment inner IPv6 packets between %d and 1280 bytes", max)
	}
	return a, nil
}

func roundUp(n, to int) int { return (n + to - 1) / to * to }

// roundDown rounds n down to a multiple of to; negative n stays negative.
func roundDown(n, to int) int {
	if n < 0 {
		return -roundUp(-n, to)
	}
	return n / to * to
}
