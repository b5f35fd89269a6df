package probe

import (
	"encoding/binary"
	"fmt"
	"io"
	"net/netip"

	"github.com/ipsecpath/ipsecpath/ike"
	"github.com/ipsecpath/ipsecpath/probe/wire"
	"github.com/ipsecpath/ipsecpath/report"
)

// Well-known ports of the protocols the probes imitate.
const (
	PortIKE  = 500  // IKE (ISAKMP)
	PortNATT = 4500 // IKE and ESP after NAT traversal (RFC 3947/3948)
)

// Defaults of BuildParams.
const (
	DefaultTTL = 64
	// DefaultSmallSize is the IP total length of the unfragmented esp and ah probes: small
	// enough for any path, big enough to look like real traffic.
	DefaultSmallSize = 128
	// ICMPLargePayload is the echo payload of icmp-large: `ping -l 5000` / `ping -s 5000`.
	ICMPLargePayload = 5000
	// tcpMSS is the MSS option of TCP probes, what an Ethernet host announces.
	tcpMSS = 1460
	// tcpWindow is the window of TCP probes (Linux's initial window on Ethernet).
	tcpWindow = 64240
)

// Header sizes of what we craft.
const (
	udpHeaderLen   = 8
	icmpHeaderLen  = 8
	tcpSynLen      = 24 // 20 + MSS option
	ikeHeaderLen   = 28
	ahProbeICVLen  = 12 // HMAC-SHA1-96, the common AH ICV
	ahProbeLen     = ahFixedLen + ahProbeICVLen
	nonESPMarkerSz = 4
)

// BuildParams says how to craft one probe. The zero value of each field means its default.
// The same parameters serve the initiator (forward probes toward the target) and the agent
// (reverse probes toward the initiator): only Src and Dst swap.
type BuildParams struct {
	// Src and Dst are the IPv4 addresses in the header. Both are required: the UDP and TCP
	// checksums cover them. SourceFor finds the local address toward a destination.
	Src, Dst netip.Addr
	// Nonce maps everything the probe causes back to it (see the marker layout in
	// marker.go). Use NewNonces: it must be ≥ 256 with non-zero low 16 bits.
	Nonce uint32
	// Size is the IP total length of the datagram before fragmentation. 0 means: DefaultSmallSize
	// for esp and ah, the IKE_SA_INIT's natural size (about 430 bytes) for ike and natt; FragProbeSize for the -frag forms; 20+8+ICMPLargePayload for
	// icmp-large. pmtu needs it. tcp:PORT is always a 44-byte SYN and ignores it.
	Size int
	// FragSize is the largest fragment on the wire, IP header included, for the -frag forms
	// and icmp-large (default DefaultFragSize). The other forms are never fragmented.
	FragSize int
	// Order is the order in which the fragments go out: a permutation of 0..n-1, e.g. {2,1,0}
	// for last-first. nil sends them in order. Ignored for unfragmented probes. Conntrack on
	// the sending host restores the order (see Sender).
	Order []int
	// TTL of the probe (default DefaultTTL): smaller values find the hop that drops it.
	TTL uint8
	// DF sets don't-fragment on an unfragmented probe (pmtu wants it). Fragments never carry it.
	DF bool
	// SrcPort and DstPort override the UDP ports (default 500→500 for ike, 4500→4500 for natt:
	// the ports the real protocol uses, also from the agent) and the TCP source port (default
	// derived from the nonce, in 32768–60999; the destination is the id's port).
	SrcPort, DstPort uint16
	// IPID is the IP identification (default the nonce's low 16 bits, never 0: with 0 the
	// kernel would choose its own and the fragments could no longer be matched).
	IPID uint16
}

// Packets is a reusable set of buffers holding one built probe, ready to send. Build fills
// it; reuse one Packets per goroutine to build without allocating.
type Packets struct {
	ID       ID
	Nonce    uint32
	Src, Dst netip.Addr
	Proto    uint8
	IPID     uint16
	TTL      uint8
	Size     int // IP total length of the datagram before fragmentation
	// Wire holds the packets to put on the wire, in send order: the datagram itself, or its
	// fragments. Each is a whole IPv4 packet in wire form (which is also the form Linux's raw
	// sockets take with IP_HDRINCL). The slices point into the Packets' own buffers and are
	// valid until the next Build.
	Wire [][]byte
	// Frags describes each Wire packet, in the same order: offset and payload length in
	// bytes, MF. An unfragmented probe has one entry at offset 0.
	Frags []report.Fragment

	dgram []byte
	fbuf  []byte
	perm  []bool
	tmpW  [][]byte
	tmpF  []report.Fragment

	ike [2]ikeTemplate // the last two IKE_SA_INIT messages built (natural size and sized)
}

// ikeTemplate is an IKE_SA_INIT built for a size (0: natural), its SPI to be patched.
type ikeTemplate struct {
	want int
	msg  []byte
}

// ikeRand is the randomness of the IKE messages' KE and nonce: nil (crypto/rand) but in the
// wire-bytes golden test, which needs the same bytes every run.
var ikeRand io.Reader

// ikeMessage returns an IKEv2 IKE_SA_INIT request of want bytes (0: its natural size) from
// the ike package, the same one a gateway answers. It is stateless (ike.SAInitParams.Stateless):
// the gateway answers INVALID_KE_PAYLOAD or NO_PROPOSAL_CHOSEN, either of which proves arrival,
// and keeps no half-open IKE SA, so repeated checks never trip a gateway's half-open limit
// (strongSwan ignores a peer holding 5). It is built once per size and reused:
// every probe then differs only in the SPI (KE and Ni repeat, which a gateway does not mind
// for a first message), so building allocates nothing after the first time. Two sizes are
// kept, so one Packets can alternate between ike and ike-frag without rebuilding.
func (p *Packets) ikeMessage(want int) ([]byte, error) {
	for i := range p.ike {
		if t := &p.ike[i]; t.msg != nil && t.want == want {
			return t.msg, nil
		}
	}
	if want != 0 && want < ike.HeaderLen {
		return nil, fmt.Errorf("size too small for an IKE message")
	}
	m, err := ike.BuildSAInit(nil, ike.SAInitParams{Size: want, Stateless: true, Rand: ikeRand})
	if err != nil {
		return nil, fmt.Errorf("IKE_SA_INIT of %d bytes: %w", want, err)
	}
	p.ike[1] = p.ike[0]
	p.ike[0] = ikeTemplate{want: want, msg: m}
	return m, nil
}

// Fragmented reports whether the probe went out as more than one fragment.
func (p *Packets) Fragmented() bool { return len(p.Wire) > 1 }

// WireBytes is the sum of the sizes of the Wire packets.
func (p *Packets) WireBytes() int {
	n := 0
	for _, w := range p.Wire {
		n += len(w)
	}
	return n
}

// Build crafts probe id with p into out (whose buffers it reuses). The result is the
// datagram, IP-fragmented by us for the -frag forms and icmp-large. Headers: IHL 5, TOS 0,
// the given TTL and IP ID, DF only when asked for on an unfragmented probe, and correct
// checksums and lengths everywhere (IP, ICMP, UDP, TCP), so that what a far end sees
// differs from real traffic only in the payload.
//
// Classes (one table, class.go): ike (UDP 500→500, a real IKEv2 IKE_SA_INIT from the ike package that a gateway
// answers, whose initiator SPI carries class and nonce; its natural size unless Size says),
// ike-frag (the same padded with vendor IDs to Size bytes, as large as Kerberos-authenticated
// IKE), natt/natt-frag (UDP 4500→4500, non-ESP marker, then the IKE message), esp/esp-frag (protocol 50, SPI = sequence = nonce, then the marker),
// ah/ah-frag (protocol 51, AH with a 12-byte ICV, next header 59, then the marker),
// icmp-large (echo request, id/seq = nonce, 5000-byte payload), pmtu (the same echo, Size
// bytes, usually with DF), tcp:PORT (SYN, ISN = nonce, MSS 1460), udp:PORT and l2tp with
// their -frag forms (udp_class.go). Build allocates only when out's buffers are too small.
func Build(id ID, p BuildParams, out *Packets) error {
	if err := buildDatagram(id, p, out); err != nil {
		return fmt.Errorf("probe: build %s: %w", id, err)
	}
	return nil
}

// buildDatagram builds id's class (class.go) into out: checks, size, IP header, what the
// class writes after it, fragments.
func buildDatagram(id ID, p BuildParams, out *Packets) error {
	c, ok := classOf(id)
	if !ok {
		return fmt.Errorf("unknown probe id")
	}
	if !p.Src.Is4() || !p.Dst.Is4() {
		return fmt.Errorf("source %v and destination %v must both be IPv4", p.Src, p.Dst)
	}
	if err := CheckTarget(p.Dst); err != nil {
		return err
	}
	if !validNonce(p.Nonce) {
		return ErrBadNonce
	}
	size, ikeMsg, err := c.sizeFor(p.Size, out)
	if err != nil {
		return err
	}
	fragSize := p.FragSize
	if fragSize == 0 {
		fragSize = DefaultFragSize
	}
	if c.frag && size <= fragSize {
		return fmt.Errorf("size %d is not larger than the fragment size %d: it would not fragment", size, fragSize)
	}
	ttl := p.TTL
	if ttl == 0 {
		ttl = DefaultTTL
	}
	ipid := p.IPID
	if ipid == 0 {
		ipid = uint16(p.Nonce)
	}

	*out = Packets{dgram: out.dgram, fbuf: out.fbuf, perm: out.perm, tmpW: out.tmpW, tmpF: out.tmpF,
		ike: out.ike, Wire: out.Wire[:0], Frags: out.Frags[:0]}
	out.ID, out.Nonce, out.Src, out.Dst, out.Proto, out.IPID, out.TTL, out.Size =
		id, p.Nonce, p.Src, p.Dst, c.proto, ipid, ttl, size
	if cap(out.dgram) < size {
		out.dgram = make([]byte, size, max(size, 2*cap(out.dgram)))
	}
	d := out.dgram[:size]
	putIPv4Header(d, size, ipid, !c.frag && p.DF, ttl, c.proto, p.Src, p.Dst)
	c.write(d[ipv4MinHeader:], classWrite{id: id, code: c.code, size: size, nonce: p.Nonce, src: p.Src, dst: p.Dst,
		srcPort: p.SrcPort, dstPort: p.DstPort, ikeMsg: ikeMsg})
	if !c.frag {
		out.Wire = append(out.Wire, d)
		out.Frags = append(out.Frags, report.Fragment{Offset: 0, Length: size - ipv4MinHeader, DF: out.dfSet(d)})
		return nil
	}
	return out.fragment(d, fragSize, p.Order)
}

// fragment cuts d into out.Wire, describes the fragments in out.Frags, and puts them in
// order (nil: as cut).
func (p *Packets) fragment(d []byte, fragSize int, order []int) error {
	var err error
	p.Wire, p.fbuf, err = Fragment(d, fragSize, p.fbuf, p.Wire)
	if err != nil {
		return err
	}
	var h IPv4Header
	for _, w := range p.Wire {
		if err := h.DecodeFromBytes(w); err != nil {
			return err
		}
		p.Frags = append(p.Frags, report.Fragment{Offset: h.Offset, Length: len(h.Payload), More: h.MF})
	}
	if order != nil {
		return p.reorder(order)
	}
	return nil
}

func (p *Packets) dfSet(d []byte) bool { return d[6]&0x40 != 0 }

// reorder puts Wire and Frags in the order given by perm, validating it without allocating
// (once the Packets' scratch space is big enough).
func (p *Packets) reorder(perm []int) error {
	n := len(p.Wire)
	if len(perm) != n {
		return fmt.Errorf("fragment order has %d entries for %d fragments", len(perm), n)
	}
	if cap(p.perm) < n {
		p.perm = make([]bool, n)
	}
	seen := p.perm[:n]
	clear(seen)
	for _, i := range perm {
		if i < 0 || i >= n || seen[i] {
			return fmt.Errorf("fragment order %v is not a permutation of 0..%d", perm, n-1)
		}
		seen[i] = true
	}
	p.tmpW = append(p.tmpW[:0], p.Wire...)
	p.tmpF = append(p.tmpF[:0], p.Frags...)
	for k, i := range perm {
		p.Wire[k] = p.tmpW[i]
		p.Frags[k] = p.tmpF[i]
	}
	return nil
}

// putIPv4Header writes a 20-byte IPv4 header in wire form, checksum included.
func putIPv4Header(b []byte, total int, id uint16, df bool, ttl, proto uint8, src, dst netip.Addr) {
	h := wire.IPv4Header{TotalLen: total, ID: id, DF: df, TTL: ttl, Proto: proto, Src: src, Dst: dst}
	h.MarshalTo(b)
}

// putTCPSyn writes a SYN with the MSS option into b (len tcpSynLen).
func putTCPSyn(b []byte, sp, dp uint16, isn uint32, src, dst netip.Addr) {
	binary.BigEndian.PutUint16(b[0:2], sp)
	binary.BigEndian.PutUint16(b[2:4], dp)
	binary.BigEndian.PutUint32(b[4:8], isn)
	binary.BigEndian.PutUint32(b[8:12], 0)
	b[12] = (tcpSynLen / 4) << 4
	b[13] = TCPSyn
	binary.BigEndian.PutUint16(b[14:16], tcpWindow)
	b[16], b[17], b[18], b[19] = 0, 0, 0, 0
	b[20], b[21] = 2, 4 // MSS
	binary.BigEndian.PutUint16(b[22:24], tcpMSS)
	binary.BigEndian.PutUint16(b[16:18], wire.TCPChecksum(src, dst, b))
}

// fill writes a recognisable filler: "ipsecpath " repeated (by doubling copies).
func fill(b []byte) {
	const pat = "ipsecpath "
	n := copy(b, pat)
	for n < len(b) {
		n += copy(b[n:], b[:n])
	}
}
