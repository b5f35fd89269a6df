package probe

import (
	"bytes"
	"encoding/hex"
	"errors"
	"fmt"
	"math/rand"
	"net/netip"
	"slices"
	"strings"
	"testing"

	"github.com/google/gopacket"
	"github.com/google/gopacket/layers"

	"github.com/ipsecpath/ipsecpath/probe/wire"
)

var (
	tSrc = netip.MustParseAddr("198.51.100.10")
	tDst = netip.MustParseAddr("203.0.113.10")
)

const tNonce = 0x5a5a0102

// allClasses is every probe class Build knows, with the parameters a test needs.
func allClasses() []ID {
	return []ID{IKE, IKEFrag, NATT, NATTFrag, ESP, ESPFrag, AH, AHFrag, ICMPLarge, TCP(445), TCP(1792), PMTU,
		UDP(5000), UDP(5000) + "-frag", L2TP, L2TPFrag}
}

func params(id ID) BuildParams {
	p := BuildParams{Src: tSrc, Dst: tDst, Nonce: tNonce}
	if id == PMTU {
		p.Size, p.DF = 1400, true
	}
	return p
}

// reassemble puts fragments back together (any order) and checks offsets and MF.
func reassemble(t *testing.T, frags [][]byte) []byte {
	t.Helper()
	type piece struct {
		off  int
		mf   bool
		data []byte
		hdr  []byte
	}
	var ps []piece
	for _, f := range frags {
		var h IPv4Header
		if err := h.DecodeFromBytes(f); err != nil {
			t.Fatalf("fragment does not decode: %v", err)
		}
		if h.Truncated || h.TotalLen != len(f) {
			t.Fatalf("fragment total length %d, have %d bytes", h.TotalLen, len(f))
		}
		if h.Offset%8 != 0 {
			t.Fatalf("offset %d not a multiple of 8", h.Offset)
		}
		ps = append(ps, piece{h.Offset, h.MF, h.Payload, f[:h.IHL]})
	}
	slices.SortFunc(ps, func(a, b piece) int { return a.off - b.off })
	var payload []byte
	for i, p := range ps {
		if p.off != len(payload) {
			t.Fatalf("fragment %d at offset %d, want %d (gap or overlap)", i, p.off, len(payload))
		}
		if last := i == len(ps)-1; p.mf == last {
			t.Fatalf("fragment %d (offset %d): MF=%v", i, p.off, p.mf)
		}
		payload = append(payload, p.data...)
	}
	d := append(append([]byte(nil), ps[0].hdr...), payload...)
	d[6], d[7] = 0, 0 // no MF, offset 0
	d[2], d[3] = byte(len(d)>>8), byte(len(d))
	d[10], d[11] = 0, 0
	c := ^wire.Fold(wire.Add(0, d[:len(ps[0].hdr)]))
	d[10], d[11] = byte(c>>8), byte(c)
	return d
}

// checkWithGopacket decodes one IPv4 packet with gopacket, serializes the layers again with
// gopacket computing lengths and checksums, and wants the same bytes: our lengths and
// checksums are right. Fragments are checked at the IP layer only.
func checkWithGopacket(t *testing.T, pkt []byte) gopacket.Packet {
	t.Helper()
	p := gopacket.NewPacket(pkt, layers.LayerTypeIPv4, gopacket.Default)
	if el := p.ErrorLayer(); el != nil {
		t.Fatalf("gopacket: %v", el.Error())
	}
	ip := p.Layer(layers.LayerTypeIPv4).(*layers.IPv4)
	opts := gopacket.SerializeOptions{FixLengths: true, ComputeChecksums: true}
	buf := gopacket.NewSerializeBuffer()
	if err := gopacket.SerializeLayers(buf, opts, ip, gopacket.Payload(ip.Payload)); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(buf.Bytes()[:20], pkt[:20]) {
		t.Fatalf("IPv4 header differs from gopacket's:\n ours % x\n gopk % x", pkt[:20], buf.Bytes()[:20])
	}
	if ip.Flags&layers.IPv4MoreFragments != 0 || ip.FragOffset != 0 {
		return p
	}
	buf = gopacket.NewSerializeBuffer()
	var err error
	switch l := p.TransportLayer().(type) {
	case *layers.UDP:
		l.SetNetworkLayerForChecksum(ip)
		err = gopacket.SerializeLayers(buf, opts, l, gopacket.Payload(l.Payload))
	case *layers.TCP:
		l.SetNetworkLayerForChecksum(ip)
		err = gopacket.SerializeLayers(buf, opts, l, gopacket.Payload(l.Payload))
	default:
		if ic, ok := p.Layer(layers.LayerTypeICMPv4).(*layers.ICMPv4); ok {
			err = gopacket.SerializeLayers(buf, opts, ic, gopacket.Payload(ic.Payload))
		} else {
			return p // ESP, AH: no transport checksum
		}
	}
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(buf.Bytes(), pkt[20:]) {
		t.Fatalf("transport differs from gopacket's:\n ours % x\n gopk % x", pkt[20:60], buf.Bytes()[:40])
	}
	return p
}

func TestBuildEveryClass(t *testing.T) {
	var out Packets
	for _, id := range allClasses() {
		t.Run(string(id), func(t *testing.T) {
			if err := Build(id, params(id), &out); err != nil {
				t.Fatal(err)
			}
			if out.ID != id || out.Nonce != tNonce || out.IPID != uint16(tNonce&0xffff) || out.TTL != DefaultTTL {
				t.Fatalf("packets say %+v", out)
			}
			if len(out.Frags) != len(out.Wire) {
				t.Fatalf("%d frags for %d wire packets", len(out.Frags), len(out.Wire))
			}
			wantFrag := id.Fragmented() || id == ICMPLarge
			if out.Fragmented() != wantFrag {
				t.Fatalf("fragmented=%v, want %v", out.Fragmented(), wantFrag)
			}
			for i, w := range out.Wire {
				checkWithGopacket(t, w)
				if wantFrag && len(w) > DefaultFragSize {
					t.Fatalf("fragment %d is %d bytes > %d", i, len(w), DefaultFragSize)
				}
				if wantFrag && w[6]&0x40 != 0 {
					t.Fatalf("fragment %d has DF", i)
				}
			}
			d := out.Wire[0]
			if wantFrag {
				d = reassemble(t, out.Wire)
				if out.WireBytes() < FragProbeSize {
					t.Fatalf("%d bytes on the wire, want ≥ %d", out.WireBytes(), FragProbeSize)
				}
			}
			if len(d) != out.Size {
				t.Fatalf("datagram %d bytes, Size says %d", len(d), out.Size)
			}
			checkWithGopacket(t, d)
			if id == ICMPLarge && len(d) != 20+8+5000 {
				t.Fatalf("icmp-large datagram %d bytes, want 5028", len(d))
			}
			// The first fragment's head maps back to the probe.
			var h IPv4Header
			if err := h.DecodeFromBytes(out.Wire[0]); err != nil {
				t.Fatal(err)
			}
			s := Seen{Proto: h.Proto, IPID: h.ID, Head: h.Payload[:min(HeadLen, len(h.Payload))]}
			m, ok := classify(&s)
			if !ok || m.ID != id || m.Nonce != tNonce || m.Kind != KindProbe {
				t.Fatalf("Classify = %+v, %v", m, ok)
			}
			if m.DatagramLen != 0 && m.DatagramLen != out.Size {
				t.Fatalf("marker says datagram %d, built %d", m.DatagramLen, out.Size)
			}
		})
	}
}

// The golden packets: exact bytes for fixed parameters, with what tcpdump prints for them.
var goldens = []struct {
	id   ID
	p    BuildParams
	dump string // tcpdump -nvx
	hex  string
}{
	{ESP, BuildParams{Src: tSrc, Dst: tDst, Nonce: tNonce, Size: 48, TTL: 64},
		"IP (tos 0x0, ttl 64, id 258, offset 0, flags [none], proto ESP (50), length 48) 198.51.100.10 > 203.0.113.10: ESP(spi=0x5a5a0102,seq=0x5a5a0102), length 28",
		"450000300102000040321352c633640acb00710a5a5a01025a5a010249505350050100305a5a01026970736563706174"},
	{AH, BuildParams{Src: tSrc, Dst: tDst, Nonce: tNonce, Size: 56, TTL: 64},
		"IP (tos 0x0, ttl 64, id 258, offset 0, flags [none], proto AH (51), length 56) 198.51.100.10 > 203.0.113.10: AH(length=4(24-bytes),spi=0x5a5a0102,seq=0x5a5a0102,icv=0x7622a4627622a4667622a46a): no next header",
		"450000380102000040331349c633640acb00710a3b0400005a5a01025a5a01027622a4627622a4667622a46a49505350070100385a5a0102"},
	{TCP(445), BuildParams{Src: tSrc, Dst: tDst, Nonce: tNonce, TTL: 64, SrcPort: 40000},
		"IP (tos 0x0, ttl 64, id 258, offset 0, flags [none], proto TCP (6), length 44) 198.51.100.10.40000 > 203.0.113.10.445: Flags [S], cksum 0x3d93 (correct), seq 1515847938, win 64240, options [mss 1460], length 0",
		"4500002c0102000040061382c633640acb00710a9c4001bd5a5a0102000000006002faf03d930000020405b4"},
}

func TestBuildGolden(t *testing.T) {
	var out Packets
	for _, g := range goldens {
		if err := Build(g.id, g.p, &out); err != nil {
			t.Fatal(err)
		}
		got := hex.EncodeToString(out.Wire[0])
		if g.hex != "" && got != g.hex {
			t.Errorf("%s:\n got %s\nwant %s", g.id, got, g.hex)
		}
	}
}

func TestBuildErrors(t *testing.T) {
	good := BuildParams{Src: tSrc, Dst: tDst, Nonce: tNonce}
	cases := []struct {
		name string
		id   ID
		mod  func(*BuildParams)
		want string
	}{
		{"unknown id", "gre", nil, "unknown probe id"},
		{"nonce below 256", ESP, func(p *BuildParams) { p.Nonce = 255 }, "nonce"},
		{"nonce with zero IP ID", ESP, func(p *BuildParams) { p.Nonce = 0x10000 }, "nonce"},
		{"IPv6", ESP, func(p *BuildParams) { p.Dst = netip.MustParseAddr("2001:db8::1") }, "IPv4"},
		{"multicast", ESP, func(p *BuildParams) { p.Dst = netip.MustParseAddr("224.0.0.1") }, "multicast"},
		{"broadcast", ESP, func(p *BuildParams) { p.Dst = netip.MustParseAddr("255.255.255.255") }, "broadcast"},
		{"no source", ESP, func(p *BuildParams) { p.Src = netip.Addr{} }, "IPv4"},
		{"too small", ESP, func(p *BuildParams) { p.Size = 30 }, "size 30"},
		{"too large", ESP, func(p *BuildParams) { p.Size = 70000 }, "size 70000"},
		{"frag that would not fragment", ESPFrag, func(p *BuildParams) { p.Size = 1000 }, "would not fragment"},
		{"frag size too small", ESPFrag, func(p *BuildParams) { p.FragSize = 20 }, "fragment size 20"},
		{"pmtu without size", PMTU, nil, "needs a size"},
		{"order too short", ESPFrag, func(p *BuildParams) { p.Order = []int{0, 1} }, "2 entries for 3"},
		{"order repeats", ESPFrag, func(p *BuildParams) { p.Order = []int{0, 1, 1} }, "not a permutation"},
		{"order out of range", ESPFrag, func(p *BuildParams) { p.Order = []int{0, 1, 3} }, "not a permutation"},
	}
	var out Packets
	for _, c := range cases {
		p := good
		if c.mod != nil {
			c.mod(&p)
		}
		err := Build(c.id, p, &out)
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: err = %v, want it to mention %q", c.name, err, c.want)
		}
	}
	if err := Build(ESP, BuildParams{Src: tSrc, Dst: tDst, Nonce: 1}, &out); !errors.Is(err, ErrBadNonce) {
		t.Errorf("bad nonce: %v does not wrap ErrBadNonce", err)
	}
}

func TestBuildOptions(t *testing.T) {
	var out Packets
	p := BuildParams{Src: tSrc, Dst: tDst, Nonce: tNonce, TTL: 3, IPID: 0x4242, FragSize: 576, Size: 3000,
		Order: []int{5, 4, 3, 2, 1, 0}}
	if err := Build(ESPFrag, p, &out); err != nil {
		t.Fatal(err)
	}
	if len(out.Wire) != 6 {
		t.Fatalf("%d fragments of 576 for 3000 bytes, want 6", len(out.Wire))
	}
	for i, w := range out.Wire {
		var h IPv4Header
		if err := h.DecodeFromBytes(w); err != nil {
			t.Fatal(err)
		}
		if h.TTL != 3 || h.ID != 0x4242 || len(w) > 576 {
			t.Fatalf("fragment %d: ttl %d id %#x len %d", i, h.TTL, h.ID, len(w))
		}
		if h.Offset != out.Frags[i].Offset || h.MF != out.Frags[i].More || len(h.Payload) != out.Frags[i].Length {
			t.Fatalf("Frags[%d] = %+v, header says offset %d mf %v len %d", i, out.Frags[i], h.Offset, h.MF, len(h.Payload))
		}
		if i > 0 && h.Offset >= out.Frags[i-1].Offset {
			t.Fatalf("fragments not last-first: %+v", out.Frags)
		}
	}
	reassemble(t, out.Wire)

	// DF on an unfragmented probe, never on fragments; ports can be chosen.
	if err := Build(NATT, BuildParams{Src: tSrc, Dst: tDst, Nonce: tNonce, DF: true, SrcPort: 4501}, &out); err != nil {
		t.Fatal(err)
	}
	pk := checkWithGopacket(t, out.Wire[0])
	if ip := pk.Layer(layers.LayerTypeIPv4).(*layers.IPv4); ip.Flags&layers.IPv4DontFragment == 0 {
		t.Fatal("DF not set")
	}
	if u := pk.Layer(layers.LayerTypeUDP).(*layers.UDP); u.SrcPort != 4501 || u.DstPort != 4500 {
		t.Fatalf("ports %d→%d", u.SrcPort, u.DstPort)
	}
	if !bytes.Equal(out.Wire[0][28:32], []byte{0, 0, 0, 0}) {
		t.Fatal("no non-ESP marker")
	}
	if err := Build(ESPFrag, BuildParams{Src: tSrc, Dst: tDst, Nonce: tNonce, DF: true}, &out); err != nil {
		t.Fatal(err)
	}
	for _, w := range out.Wire {
		if w[6]&0x40 != 0 {
			t.Fatal("fragment with DF")
		}
	}
}

// Fragment cuts any datagram right: random sizes, fragment sizes and options.
func TestFragmentProperty(t *testing.T) {
	rng := rand.New(rand.NewSource(1))
	var buf []byte
	var frags [][]byte
	for i := 0; i < 2000; i++ {
		size := 28 + rng.Intn(9000)
		fs := minFragSize + rng.Intn(2000)
		d := make([]byte, size)
		rng.Read(d)
		putIPv4Header(d, size, uint16(i+1), false, 64, ProtoUDP, tSrc, tDst)
		var err error
		frags, buf, err = Fragment(d, fs, buf, frags[:0])
		if err != nil {
			t.Fatalf("size %d frag %d: %v", size, fs, err)
		}
		for _, f := range frags {
			if len(f) > fs {
				t.Fatalf("fragment of %d > %d", len(f), fs)
			}
			checkIPChecksum(t, f)
		}
		if got := reassemble(t, frags); !bytes.Equal(got[20:], d[20:]) {
			t.Fatalf("size %d frag %d: reassembled payload differs", size, fs)
		}
	}
}

func checkIPChecksum(t *testing.T, pkt []byte) {
	t.Helper()
	ihl := int(pkt[0]&0xf) * 4
	if c := wire.Fold(wire.Add(0, pkt[:ihl])); c != 0xffff {
		t.Fatalf("IPv4 header checksum wrong (sum %#x): % x", c, pkt[:ihl])
	}
}

func TestFragmentOptionsAndRefragment(t *testing.T) {
	// A 28-byte header: loose source route (0x83, copied) of 7 bytes + NOP, then record
	// route (0x07, not copied) ... kept short: LSRR 7 bytes, NOP, 4 bytes of EOL padding.
	opts := []byte{0x83, 7, 4, 192, 0, 2, 1, 0x01, 0x07, 3, 4, 0}
	size := 20 + len(opts) + 2000
	d := make([]byte, size)
	putIPv4Header(d, size, 7, false, 64, ProtoESP, tSrc, tDst)
	d[0] = 0x40 | byte((20+len(opts))/4)
	copy(d[20:], opts)
	for i := 20 + len(opts); i < size; i++ {
		d[i] = byte(i)
	}
	d[10], d[11] = 0, 0
	c := ^wire.Fold(wire.Add(0, d[:20+len(opts)]))
	d[10], d[11] = byte(c>>8), byte(c)

	frags, _, err := Fragment(d, 600, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	if ihl := int(frags[0][0]&0xf) * 4; ihl != 32 || !bytes.Equal(frags[0][20:32], opts) {
		t.Fatalf("first fragment options % x", frags[0][20:ihl])
	}
	for _, f := range frags[1:] {
		if ihl := int(f[0]&0xf) * 4; ihl != 28 || !bytes.Equal(f[20:27], opts[:7]) || f[27] != 0 {
			t.Fatalf("later fragment options % x, want only the copied LSRR", f[20:ihl])
		}
		checkIPChecksum(t, f)
	}
	// Cut the second fragment further: offsets continue from its own, MF stays set.
	var h2 IPv4Header
	h2.DecodeFromBytes(frags[1])
	sub, _, err := Fragment(frags[1], 200, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	var last IPv4Header
	last.DecodeFromBytes(sub[len(sub)-1])
	var first IPv4Header
	first.DecodeFromBytes(sub[0])
	if first.Offset != h2.Offset || !last.MF {
		t.Fatalf("refragmented: first offset %d (want %d), last MF %v (want true)", first.Offset, h2.Offset, last.MF)
	}

	// DF refuses; truncated refuses.
	putIPv4Header(d[:100], 100, 7, true, 64, ProtoESP, tSrc, tDst)
	if _, _, err := Fragment(d[:100], 60, nil, nil); !errors.Is(err, ErrDontFragment) {
		t.Fatalf("DF: %v", err)
	}
	putIPv4Header(d[:100], 200, 7, false, 64, ProtoESP, tSrc, tDst)
	if _, _, err := Fragment(d[:100], 60, nil, nil); !errors.Is(err, ErrTruncated) {
		t.Fatalf("truncated: %v", err)
	}
}

func TestBuildAllocatesNothing(t *testing.T) {
	var out Packets
	for _, id := range allClasses() {
		p := params(id)
		if id.Fragmented() {
			p.Order = []int{2, 0, 1}
		}
		if err := Build(id, p, &out); err != nil { // warm the buffers
			t.Fatal(err)
		}
		n := testing.AllocsPerRun(50, func() {
			if err := Build(id, p, &out); err != nil {
				t.Fatal(err)
			}
		})
		if n != 0 {
			t.Errorf("%s: %v allocations per Build, want 0", id, n)
		}
	}
	// One Packets alternating between the natural and the large IKE message keeps both.
	n := testing.AllocsPerRun(50, func() {
		for _, id := range []ID{IKE, IKEFrag, NATT, NATTFrag} {
			if err := Build(id, params(id), &out); err != nil {
				t.Fatal(err)
			}
			if want := id.Fragmented(); out.Fragmented() != want {
				t.Fatalf("%s: fragmented %v", id, out.Fragmented())
			}
		}
	})
	if n != 0 {
		t.Errorf("alternating ike/ike-frag/natt/natt-frag: %v allocations per round, want 0", n)
	}
}

func BenchmarkBuild(b *testing.B) {
	for _, id := range allClasses() {
		b.Run(string(id), func(b *testing.B) {
			var out Packets
			p := params(id)
			b.ReportAllocs()
			for b.Loop() {
				if err := Build(id, p, &out); err != nil {
					b.Fatal(err)
				}
			}
			b.SetBytes(int64(out.WireBytes()))
		})
	}
}

func BenchmarkFragment(b *testing.B) {
	d := make([]byte, 5028)
	putIPv4Header(d, len(d), 9, false, 64, ProtoICMP, tSrc, tDst)
	var buf []byte
	var frags [][]byte
	b.ReportAllocs()
	b.SetBytes(int64(len(d)))
	for b.Loop() {
		frags, buf, _ = Fragment(d, DefaultFragSize, buf, frags[:0])
	}
}

// ExampleBuild shows a forward esp-frag probe; the agent builds reverse probes the same
// way with Src and Dst swapped.
func ExampleBuild() {
	var out Packets
	err := Build(ESPFrag, BuildParams{
		Src:   netip.MustParseAddr("198.51.100.10"),
		Dst:   netip.MustParseAddr("203.0.113.10"),
		Nonce: 0x5a5a0102,
	}, &out)
	if err != nil {
		panic(err)
	}
	for _, f := range out.Frags {
		fmt.Printf("offset %d length %d more %v\n", f.Offset, f.Length, f.More)
	}
	// Output:
	// offset 0 length 1256 more true
	// offset 1256 length 1256 more true
	// offset 2512 length 468 more false
}

// FuzzFragment cuts any bytes that decode as an IPv4 datagram at any fragment size: no
// panic, every fragment within the size, and the payload comes back whole.
func FuzzFragment(f *testing.F) {
	var out Packets
	for _, id := range []ID{ESP, AH, IKE} {
		if err := Build(id, params(id), &out); err != nil {
			f.Fatal(err)
		}
		f.Add(append([]byte(nil), out.Wire[0]...), uint16(60))
	}
	f.Add(mustHex("4f000040000000004032000000000000000000008307040102030401070304000000000000000000000000000000000000000000000000000000000000000000"), uint16(68))
	f.Fuzz(func(t *testing.T, d []byte, size uint16) {
		frags, _, err := Fragment(d, int(size), nil, nil)
		if err != nil {
			return
		}
		var h IPv4Header
		h.DecodeFromBytes(d)
		var payload int
		for _, fr := range frags {
			if len(fr) > int(size) {
				t.Fatalf("fragment of %d bytes > %d", len(fr), size)
			}
			var fh IPv4Header
			if err := fh.DecodeFromBytes(fr); err != nil || fh.TotalLen != len(fr) {
				t.Fatalf("fragment does not decode: %v", err)
			}
			payload += len(fh.Payload)
		}
		if payload != len(h.Payload) {
			t.Fatalf("fragments carry %d bytes, datagram %d", payload, len(h.Payload))
		}
	})
}
