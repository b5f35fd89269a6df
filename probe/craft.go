package probe

import (
	"fmt"
	"io"
	"net/netip"

	"github.com/ipsecpath/ipsecpath/probe/wire"
	"github.com/ipsecpath/ipsecpath/report"
)

// Well-known ports of the protocols the probes imitate.
const (
	PortIKE  = wire.PortIKE  // IKE (ISAKMP)
	PortNATT = wire.PortNATT // IKE and ESP after NAT traversal (RFC 3947/3948)
)

// Defaults of BuildParams.
const (
	DefaultTTL = wire.DefaultTTL
	// DefaultSmallSize is the IP total length of the unfragmented esp and ah probes: small
	// enough for any path, big enough to look like real traffic.
	DefaultSmallSize = wire.DefaultSmallSize
	// ICMPLargePayload is the echo payload of icmp-large: `ping -l 5000` / `ping -s 5000`.
	ICMPLargePayload = wire.ICMPLargePayload
)

// BuildParams says how to craft one probe (probe/wire's; its fields are documented there).
// The zero value of each field means its default. The same parameters serve the initiator
// (forward probes toward the target) and the agent (reverse probes toward the initiator):
// only Src and Dst swap.
type BuildParams = wire.BuildParams

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

	ike wire.IKETemplates // the last two IKE_SA_INIT messages built (natural size and sized)
}

// ikeRand is the randomness of the IKE messages' KE and nonce: nil (crypto/rand) but in the
// wire-bytes golden test, which needs the same bytes every run.
var ikeRand io.Reader

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
// Classes (one table, probe/wire's class.go): ike (UDP 500→500, a real IKEv2 IKE_SA_INIT from the ike package that a gateway
// answers, whose initiator SPI carries class and nonce; its natural size unless Size says),
// ike-frag (the same padded with vendor IDs to Size bytes, as large as Kerberos-authenticated
// IKE), natt/natt-frag (UDP 4500→4500, non-ESP marker, then the IKE message), esp/esp-frag (protocol 50, SPI = sequence = nonce, then the marker),
// ah/ah-frag (protocol 51, AH with a 12-byte ICV, next header 59, then the marker),
// icmp-large (echo request, id/seq = nonce, 5000-byte payload), pmtu (the same echo, Size
// bytes, usually with DF), tcp:PORT (SYN, ISN = nonce, MSS 1460), udp:PORT and l2tp with
// their -frag forms (probe/wire's udp_class.go). Build allocates only when out's buffers are too small.
func Build(id ID, p BuildParams, out *Packets) error {
	if err := buildDatagram(id, p, out); err != nil {
		return fmt.Errorf("probe: build %s: %w", id, err)
	}
	return nil
}

// buildDatagram builds id's class (probe/wire's table) into out: checks, size, IP header, what the
// class writes after it, fragments.
func buildDatagram(id ID, p BuildParams, out *Packets) error {
	c, ok := wire.ClassOf(id)
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
	size, ikeMsg, err := c.Size(p.Size, &out.ike, ikeRand)
	if err != nil {
		return err
	}
	fragSize := p.FragSize
	if fragSize == 0 {
		fragSize = DefaultFragSize
	}
	if c.Frag() && size <= fragSize {
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
		id, p.Nonce, p.Src, p.Dst, c.Proto(), ipid, ttl, size
	if cap(out.dgram) < size {
		out.dgram = make([]byte, size, max(size, 2*cap(out.dgram)))
	}
	d := out.dgram[:size]
	putIPv4Header(d, size, ipid, !c.Frag() && p.DF, ttl, c.Proto(), p.Src, p.Dst)
	c.Write(d[ipv4MinHeader:], id, size, &p, ikeMsg)
	if !c.Frag() {
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

// fill writes a recognisable filler: "ipsecpath " repeated (wire.Fill).
func fill(b []byte) { wire.Fill(b) }
