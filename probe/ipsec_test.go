package probe

import (
	"bytes"
	"encoding/hex"
	"errors"
	"reflect"
	"testing"

	"github.com/google/gopacket"
	"github.com/google/gopacket/layers"
	"golang.org/x/net/ipv4"

	"github.com/ipsecpath/ipsecpath/probe/wire"
)

func mustHex(s string) []byte {
	b, err := hex.DecodeString(s)
	if err != nil {
		panic(err)
	}
	return b
}

// Golden captured packets (hex from the lab, tcpdump -nvx line in the comment).
var (
	// IP (tos 0x0, ttl 64, id 258, offset 0, flags [none], proto ESP (50), length 48)
	// 198.51.100.10 > 203.0.113.10: ESP(spi=0x5a5a0102,seq=0x5a5a0102), length 28
	goldenESP = mustHex("450000300102000040321352c633640acb00710a5a5a01025a5a010249505350050100305a5a01026970736563706174")
	// IP (tos 0x0, ttl 64, id 258, offset 0, flags [none], proto AH (51), length 56)
	// 198.51.100.10 > 203.0.113.10: AH(length=4(24-bytes),spi=0x5a5a0102,seq=0x5a5a0102,icv=0x7622a4627622a4667622a46a): no next header
	goldenAH = mustHex("450000380102000040331349c633640acb00710a3b0400005a5a01025a5a01027622a4627622a4667622a46a49505350070100385a5a0102")
	// Captured in the lab (profile clean) by Capture in ini: rsp's kernel answering the ESP
	// golden above, since nothing there listens for protocol 50. tcpdump -nv:
	// IP (tos 0xc0, ttl 62, id 9442, offset 0, flags [none], proto ICMP (1), length 76)
	// 203.0.113.10 > 198.51.100.10: ICMP 203.0.113.10 protocol 50 unreachable, length 56
	goldenProtoUnreach = mustHex("45c0004c24e200003e01f0c6cb00710ac633640a0302a75c00000000" +
		"45000030010200003e321552c633640acb00710a5a5a01025a5a010249505350050100305a5a01026970736563706174")
	// Captured in the lab (profile mtu1400) by Capture in ini, cut to 56 of its 576 bytes:
	// r1 refusing a 1450-byte ESP probe with DF. tcpdump -nv:
	// IP (tos 0xc0, ttl 64, id 37603, offset 0, flags [none], proto ICMP (1), length 576)
	// 198.51.100.1 > 198.51.100.10: ICMP 203.0.113.10 unreachable - need to frag (mtu 1400)
	goldenFragNeeded = mustHex("45c0024092e30000400190a7c6336401c633640a0304afa000000578" +
		"450005aa010240004032cdd7c633640acb00710a5a5a01025a5a0102")
)

func TestIPv4Decode(t *testing.T) {
	var h IPv4Header
	if err := h.DecodeFromBytes(goldenESP); err != nil {
		t.Fatal(err)
	}
	want := IPv4Header{IHL: 20, TotalLen: 48, ID: 258, TTL: 64, Proto: ProtoESP, Checksum: 0x1352,
		Src: tSrc, Dst: tDst, Options: goldenESP[20:20], Payload: goldenESP[20:]}
	if !reflect.DeepEqual(h, want) {
		t.Fatalf("got  %+v\nwant %+v", h, want)
	}
	// Compare with gopacket on the fields both have.
	g := gopacket.NewPacket(goldenESP, layers.LayerTypeIPv4, gopacket.Default).Layer(layers.LayerTypeIPv4).(*layers.IPv4)
	if int(g.Length) != h.TotalLen || g.Id != h.ID || g.TTL != h.TTL || uint8(g.Protocol) != h.Proto ||
		g.SrcIP.String() != h.Src.String() || g.DstIP.String() != h.Dst.String() {
		t.Fatalf("gopacket disagrees: %+v", g)
	}
	// A capture snapshot shorter than the total length is truncated, not an error.
	if err := h.DecodeFromBytes(goldenESP[:30]); err != nil || !h.Truncated || len(h.Payload) != 10 {
		t.Fatalf("snapshot: %v %+v", err, h)
	}
	for _, c := range []struct {
		name string
		b    []byte
		err  error
	}{
		{"empty", nil, ErrTruncated},
		{"19 bytes", goldenESP[:19], ErrTruncated},
		{"IPv6", append([]byte{0x60}, goldenESP[1:]...), ErrNotIPv4},
		{"IHL 4", append([]byte{0x44}, goldenESP[1:]...), ErrBadIHL},
		{"IHL beyond buffer", append([]byte{0x4f}, goldenESP[1:40]...), ErrBadIHL},
		{"IHL beyond total", append(append([]byte{0x46, 0, 0, 20}, goldenESP[4:]...), 0, 0, 0, 0), ErrBadIHL},
	} {
		if err := h.DecodeFromBytes(c.b); !errors.Is(err, c.err) {
			t.Errorf("%s: %v, want %v", c.name, err, c.err)
		}
	}
}

func TestESPAndAHDecode(t *testing.T) {
	var e ESPHeader
	if err := e.DecodeFromBytes(goldenESP[20:]); err != nil || e.SPI != tNonce || e.Seq != tNonce || len(e.Payload) != 20 {
		t.Fatalf("ESP: %v %+v", err, e)
	}
	if err := e.DecodeFromBytes(goldenESP[20:27]); !errors.Is(err, ErrTruncated) {
		t.Fatalf("7-byte ESP: %v", err)
	}
	var a AHHeader
	if err := a.DecodeFromBytes(goldenAH[20:]); err != nil {
		t.Fatal(err)
	}
	if a.NextHeader != protoNone || a.Len() != 24 || a.SPI != tNonce || a.Seq != tNonce || len(a.ICV) != 12 || len(a.Payload) != 12 {
		t.Fatalf("AH: %+v", a)
	}
	// gopacket agrees on the valid packet.
	g := gopacket.NewPacket(goldenAH, layers.LayerTypeIPv4, gopacket.Default).Layer(layers.LayerTypeIPSecAH).(*layers.IPSecAH)
	if g.SPI != a.SPI || g.Seq != a.Seq || !reflect.DeepEqual(g.AuthenticationData, a.ICV) {
		t.Fatalf("gopacket AH: %+v", g)
	}
	// Payload length 0 is what panics upstream gopacket: here it is an error.
	bad := append([]byte(nil), goldenAH[20:]...)
	bad[1] = 0
	if err := a.DecodeFromBytes(bad); !errors.Is(err, ErrBadAHLength) {
		t.Fatalf("AH length 0: %v", err)
	}
	bad[1] = 200
	if err := a.DecodeFromBytes(bad); !errors.Is(err, ErrBadAHLength) {
		t.Fatalf("AH length beyond the packet: %v", err)
	}
	if err := a.DecodeFromBytes(bad[:11]); !errors.Is(err, ErrTruncated) {
		t.Fatalf("11-byte AH: %v", err)
	}
}

func TestICMPErrorParse(t *testing.T) {
	var h IPv4Header
	if err := h.DecodeFromBytes(goldenProtoUnreach); err != nil {
		t.Fatal(err)
	}
	s := Seen{Src: h.Src, Dst: h.Dst, Proto: h.Proto, Head: h.Payload[:min(HeadLen, len(h.Payload))]}
	e, err := ParseICMPError(&s)
	if err != nil {
		t.Fatal(err)
	}
	if e.Type != 3 || e.Code != wire.CodeProtoUnreach || e.From != tDst || e.Quoted.Proto != ProtoESP ||
		e.Quoted.IPID != 258 || e.Quoted.Dst != tDst || e.Quoted.N != 8 || e.AdminProhibited() || !e.Unreachable() {
		t.Fatalf("%+v", e)
	}
	if got := e.String(); got != "destination unreachable: protocol unreachable (type 3 code 2) from 203.0.113.10" {
		t.Fatalf("String() = %q", got)
	}
	m, ok := classify(&s)
	if !ok || m.ID != ESP || m.Nonce != tNonce || m.Kind != KindICMPError {
		t.Fatalf("Classify = %+v %v", m, ok)
	}

	if err := h.DecodeFromBytes(goldenFragNeeded); err != nil {
		t.Fatal(err)
	}
	s = Seen{Src: h.Src, Proto: h.Proto, Head: h.Payload}
	e, err = ParseICMPError(&s)
	if err != nil || !e.FragNeeded() || e.MTU != 1400 || e.Quoted.TotalLen != 1450 || e.From.String() != "198.51.100.1" || !e.Quoted.DF {
		t.Fatalf("%v %+v", err, e)
	}
	// Only 8 quoted bytes: the class is unknown but the SPI is the nonce.
	m, ok = classify(&s)
	if !ok || m.ID != "" || m.Nonce != tNonce || m.Kind != KindICMPError {
		t.Fatalf("Classify 8-byte quote = %+v %v", m, ok)
	}

	// Not errors.
	for _, b := range [][]byte{nil, goldenFragNeeded[20:30], mustHex("0800000000000000" + "450000300102000040321352c633640acb00710a")} {
		if _, err := ParseICMPErrorBytes(tDst, b); !errors.Is(err, ErrNotICMPError) {
			t.Errorf("% x: %v", b, err)
		}
	}
	if _, err := ParseICMPError(&Seen{Proto: ProtoUDP, Head: goldenProtoUnreach[20:]}); !errors.Is(err, ErrNotICMPError) {
		t.Error("UDP parsed as ICMP error")
	}
}

func TestDecodeAllocatesNothing(t *testing.T) {
	var h IPv4Header
	var e ESPHeader
	var a AHHeader
	s := Seen{Src: tDst, Proto: ProtoICMP, Head: goldenProtoUnreach[20:]}
	n := testing.AllocsPerRun(100, func() {
		h.DecodeFromBytes(goldenAH)
		e.DecodeFromBytes(goldenESP[20:])
		a.DecodeFromBytes(goldenAH[20:])
		ParseICMPError(&s)
		classify(&s)
	})
	if n != 0 {
		t.Fatalf("%v allocations per decode, want 0", n)
	}
}

func BenchmarkDecode(b *testing.B) {
	b.Run("ipv4", func(b *testing.B) {
		var h IPv4Header
		b.ReportAllocs()
		for b.Loop() {
			h.DecodeFromBytes(goldenESP)
		}
	})
	b.Run("esp", func(b *testing.B) {
		var e ESPHeader
		b.ReportAllocs()
		for b.Loop() {
			e.DecodeFromBytes(goldenESP[20:])
		}
	})
	b.Run("ah", func(b *testing.B) {
		var a AHHeader
		b.ReportAllocs()
		for b.Loop() {
			a.DecodeFromBytes(goldenAH[20:])
		}
	})
	b.Run("icmp-error", func(b *testing.B) {
		s := Seen{Src: tDst, Proto: ProtoICMP, Head: goldenProtoUnreach[20:]}
		b.ReportAllocs()
		for b.Loop() {
			ParseICMPError(&s)
		}
	})
	b.Run("classify-esp", func(b *testing.B) {
		s := Seen{Proto: ProtoESP, Head: goldenESP[20:]}
		b.ReportAllocs()
		for b.Loop() {
			classify(&s)
		}
	})
}

// FuzzDecodeIPsec feeds the ESP and AH decoders anything.
func FuzzDecodeIPsec(f *testing.F) {
	f.Add(goldenESP[20:])
	f.Add(goldenAH[20:])
	f.Add([]byte{59, 0, 0, 0, 1, 2, 3, 4, 5, 6, 7, 8}) // AH payload length 0
	f.Fuzz(func(t *testing.T, b []byte) {
		var e ESPHeader
		if e.DecodeFromBytes(b) == nil && len(e.Payload) != len(b)-8 {
			t.Fatal("ESP payload bounds")
		}
		var a AHHeader
		if a.DecodeFromBytes(b) == nil {
			if a.Len() < 12 || a.Len() > len(b) || len(a.ICV)+12+len(a.Payload) != len(b) {
				t.Fatalf("AH bounds: %+v for %d bytes", a, len(b))
			}
		}
	})
}

// FuzzClassify feeds the matcher (and through it the ICMP error parser) any head, of any
// protocol: it must not panic.
func FuzzClassify(f *testing.F) {
	var out Packets
	for _, id := range allClasses() {
		if err := Build(id, params(id), &out); err != nil {
			f.Fatal(err)
		}
		f.Add(out.Wire[0][9], out.Wire[0][20:min(len(out.Wire[0]), 20+HeadLen)])
	}
	f.Add(uint8(ProtoICMP), goldenProtoUnreach[20:])
	f.Add(uint8(ProtoICMP), goldenFragNeeded[20:])
	f.Fuzz(func(t *testing.T, proto uint8, head []byte) {
		ClassifyHead(proto, head)
		s := Seen{Src: tDst, Dst: tSrc, Proto: proto, Head: head}
		ParseICMPError(&s)
		classify(&s)
	})
}

// On Linux the raw-socket header form that golang.org/x/net/ipv4 parses and marshals is the
// wire form, so the bytes Build writes go to the kernel as they are: x/net reads the same
// fields from them as our decoder, and marshals the same header back.
func TestHeaderFormsAgreeWithXNet(t *testing.T) {
	var out Packets
	if err := Build(AHFrag, BuildParams{Src: tSrc, Dst: tDst, Nonce: tNonce, TTL: 9}, &out); err != nil {
		t.Fatal(err)
	}
	for _, w := range out.Wire {
		xh, err := ipv4.ParseHeader(w)
		if err != nil {
			t.Fatal(err)
		}
		var h IPv4Header
		if err := h.DecodeFromBytes(w); err != nil {
			t.Fatal(err)
		}
		if xh.TotalLen != h.TotalLen || xh.ID != int(h.ID) || xh.FragOff != h.Offset/8 || xh.TTL != int(h.TTL) ||
			xh.Protocol != int(h.Proto) || xh.Flags&ipv4.MoreFragments != 0 != h.MF || xh.Checksum != int(h.Checksum) {
			t.Fatalf("x/net reads %+v, we read %+v", xh, h)
		}
		m, err := xh.Marshal()
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(m, w[:20]) {
			t.Fatalf("x/net marshals % x, we sent % x", m, w[:20])
		}
	}
}
