package wire

import (
	"bytes"
	"encoding/hex"
	"net/netip"
	"reflect"
	"testing"
)

// rfc1071Header is RFC 1071's example IPv4 header (192.168.0.1 → 192.168.0.199, UDP, DF,
// total length 115) with its checksum 0xb861 in place.
var rfc1071Header, _ = hex.DecodeString("45000073000040004011b861c0a80001c0a800c7")

// optsHeader is an IPv4 header with 4 bytes of options (a loose source route stub, copied
// flag set), a fragment at offset 1480 with MF, and 8 bytes of payload.
var optsHeader, _ = hex.DecodeString("460000200102" + "20b9" + "0932" + "0000" + "c6336401cb00710a" + "83030400" + "0102030405060708")

func init() { putChecksum(optsHeader[:24]) }

func putChecksum(h []byte) {
	h[10], h[11] = 0, 0
	c := Checksum(h)
	h[10], h[11] = byte(c>>8), byte(c)
}

func TestIPv4Header(t *testing.T) {
	var h IPv4Header
	if err := h.DecodeFromBytes(rfc1071Header); err != nil {
		t.Fatal(err)
	}
	want := IPv4Header{IHL: 20, TotalLen: 115, DF: true, TTL: 64, Proto: ProtoUDP, Checksum: 0xb861,
		Src: netip.MustParseAddr("192.168.0.1"), Dst: netip.MustParseAddr("192.168.0.199"),
		Options: []byte{}, Payload: []byte{}, Truncated: true}
	if !reflect.DeepEqual(h, want) {
		t.Fatalf("decoded %+v\nwant    %+v", h, want)
	}
	b := make([]byte, 24)
	if n := h.MarshalTo(b); n != 20 || !bytes.Equal(b[:20], rfc1071Header) {
		t.Fatalf("MarshalTo = %d, % x; want % x", n, b[:n], rfc1071Header)
	}

	if err := h.DecodeFromBytes(optsHeader); err != nil {
		t.Fatal(err)
	}
	if h.IHL != 24 || h.Offset != 1480 || !h.MF || h.DF || h.ID != 0x0102 || h.TTL != 9 || h.Proto != 0x32 ||
		!bytes.Equal(h.Options, optsHeader[20:24]) || !bytes.Equal(h.Payload, optsHeader[24:]) || h.Truncated {
		t.Fatalf("decoded %+v", h)
	}
	b = make([]byte, 24)
	if n := h.MarshalTo(b); n != 24 || !bytes.Equal(b, optsHeader[:24]) {
		t.Fatalf("MarshalTo = %d, % x; want % x", n, b[:n], optsHeader[:24])
	}
	// Options of 3 bytes are padded with an end-of-options byte.
	h.Options = []byte{0x83, 3, 4}
	for i := range b {
		b[i] = 0xee
	}
	if n := h.MarshalTo(b); n != 24 || b[23] != 0 || b[0] != 0x46 || Checksum(b[:24]) != 0 {
		t.Fatalf("3 bytes of options: %d % x", n, b)
	}
}

func TestIPv4HeaderErrors(t *testing.T) {
	bad := func(f func(b []byte) []byte) []byte { return f(append([]byte(nil), rfc1071Header...)) }
	for _, c := range []struct {
		name string
		b    []byte
		err  error
	}{
		{"short", rfc1071Header[:19], ErrTruncated},
		{"version 6", bad(func(b []byte) []byte { b[0] = 0x65; return b }), ErrNotIPv4},
		{"IHL 4", bad(func(b []byte) []byte { b[0] = 0x44; return b }), ErrBadIHL},
		{"IHL beyond the buffer", bad(func(b []byte) []byte { b[0] = 0x46; return b }), ErrBadIHL},
		{"IHL beyond the total length", bad(func(b []byte) []byte { b[2], b[3] = 0, 16; return b }), ErrBadIHL},
	} {
		var h IPv4Header
		if err := h.DecodeFromBytes(c.b); err != c.err {
			t.Errorf("%s: %v, want %v", c.name, err, c.err)
		}
	}
}

func TestSetIPv4Fragment(t *testing.T) {
	b := append([]byte(nil), rfc1071Header...)
	SetIPv4Fragment(b, 1500, 2960, true)
	var h IPv4Header
	if err := h.DecodeFromBytes(append(b, make([]byte, 1480)...)); err != nil {
		t.Fatal(err)
	}
	if h.TotalLen != 1500 || h.Offset != 2960 || !h.MF || !h.DF || Checksum(b) != 0 {
		t.Fatalf("after SetIPv4Fragment: %+v, checksum verifies to %#x", h, Checksum(b))
	}
}

func TestTransportChecksums(t *testing.T) {
	src, dst := netip.MustParseAddr("198.51.100.10"), netip.MustParseAddr("203.0.113.10")
	for _, n := range []int{8, 9, 100, 1473} {
		u := make([]byte, n)
		for i := 8; i < n; i++ {
			u[i] = byte(i * 7)
		}
		PutUDP(u, 500, 4500, src, dst)
		if Fold(Add(PseudoSum(src, dst, ProtoUDP, n), u)) != 0xffff || u[4] != byte(n>>8) || u[5] != byte(n) {
			t.Errorf("UDP of %d bytes does not verify: % x", n, u[:8])
		}
		if n < 20 {
			continue
		}
		s := append([]byte(nil), u...)
		s[16], s[17] = 0, 0
		c := TCPChecksum(src, dst, s)
		s[16], s[17] = byte(c>>8), byte(c)
		if Fold(Add(PseudoSum(src, dst, ProtoTCP, n), s)) != 0xffff {
			t.Errorf("TCP of %d bytes does not verify", n)
		}
	}
}

func TestFragment(t *testing.T) {
	d := make([]byte, 24+1000)
	copy(d, optsHeader[:24])
	SetIPv4Fragment(d, len(d), 0, false)
	for i := 24; i < len(d); i++ {
		d[i] = byte(i)
	}
	putChecksum(d[:24])
	frags, buf, err := Fragment(d, 300, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	var got []byte
	for i, f := range frags {
		var h IPv4Header
		if err := h.DecodeFromBytes(f); err != nil || Checksum(f[:h.IHL]) != 0 {
			t.Fatalf("fragment %d: %v, header % x", i, err, f[:h.IHL])
		}
		if len(f) > 300 || h.Offset != len(got) || h.MF != (i < len(frags)-1) || h.IHL != 24 || !bytes.Equal(h.Options, d[20:24]) {
			t.Fatalf("fragment %d: %+v", i, h)
		}
		got = append(got, h.Payload...)
	}
	if !bytes.Equal(got, d[24:]) || len(frags) != 4 {
		t.Fatalf("%d fragments reassemble to %d bytes, want %d", len(frags), len(got), len(d)-24)
	}
	// Reusing buf and frags allocates nothing.
	if n := testing.AllocsPerRun(20, func() { frags, buf, _ = Fragment(d, 300, buf, frags[:0]) }); n != 0 {
		t.Errorf("%v allocations per Fragment with buffers, want 0", n)
	}
	d[6] |= 0x40
	if _, _, err := Fragment(d, 300, nil, nil); err != ErrDontFragment {
		t.Errorf("DF datagram: %v", err)
	}
}

// v6Header: 2001:db8::1 → 2001:db8::2, traffic class 0xb8, flow label 0x12345, 16 bytes
// of payload, next header 44 (fragment), hop limit 64; then a fragment header (next 58,
// offset 1232, MF, id 0xdeadbeef) and 8 bytes.
var v6Header, _ = hex.DecodeString("6b812345" + "00102c40" + "20010db8000000000000000000000001" + "20010db8000000000000000000000002" +
	"3a0004d1deadbeef" + "8000000000000000")

func TestIPv6Header(t *testing.T) {
	var h IPv6Header
	if err := h.DecodeFromBytes(v6Header); err != nil {
		t.Fatal(err)
	}
	if h.TrafficClass != 0xb8 || h.FlowLabel != 0x12345 || h.PayloadLen != 16 || h.NextHeader != ProtoFragment || h.HopLimit != 64 ||
		h.Src != netip.MustParseAddr("2001:db8::1") || h.Dst != netip.MustParseAddr("2001:db8::2") || len(h.Payload) != 16 || h.Truncated {
		t.Fatalf("decoded %+v", h)
	}
	b := make([]byte, 40)
	if h.MarshalTo(b); !bytes.Equal(b, v6Header[:40]) {
		t.Fatalf("MarshalTo % x, want % x", b, v6Header[:40])
	}
	var f IPv6Fragment
	if err := f.DecodeFromBytes(h.Payload); err != nil {
		t.Fatal(err)
	}
	if f.NextHeader != ProtoICMPv6 || f.Offset != 1232 || !f.MF || f.ID != 0xdeadbeef || len(f.Payload) != 8 {
		t.Fatalf("fragment header %+v", f)
	}
	if f.MarshalTo(b); !bytes.Equal(b[:8], v6Header[40:48]) {
		t.Fatalf("fragment MarshalTo % x, want % x", b[:8], v6Header[40:48])
	}
	if err := h.DecodeFromBytes(v6Header[:50]); err != nil || !h.Truncated || len(h.Payload) != 10 {
		t.Errorf("cut packet: %v %+v", err, h)
	}
	if err := h.DecodeFromBytes(v6Header[:39]); err != ErrTruncated {
		t.Errorf("39 bytes: %v", err)
	}
	if err := h.DecodeFromBytes(rfc1071Header); err != ErrTruncated {
		t.Errorf("an IPv4 header: %v", err)
	}
	if err := h.DecodeFromBytes(append(append([]byte(nil), rfc1071Header...), v6Header...)); err != ErrNotIPv6 {
		t.Errorf("an IPv4 packet: %v", err)
	}
	if err := f.DecodeFromBytes(v6Header[40:47]); err != ErrTruncated {
		t.Errorf("7-byte fragment header: %v", err)
	}
}

func TestPseudoSum6(t *testing.T) {
	src, dst := netip.MustParseAddr("2001:db8::1"), netip.MustParseAddr("fe80::1:2:3")
	for _, n := range []int{8, 1232, 70000} {
		ph := make([]byte, 40)
		s, d := src.As16(), dst.As16()
		copy(ph, s[:])
		copy(ph[16:], d[:])
		ph[32], ph[33], ph[34], ph[35] = byte(n>>24), byte(n>>16), byte(n>>8), byte(n)
		ph[39] = ProtoICMPv6
		if a, b := Fold(PseudoSum6(src, dst, ProtoICMPv6, n)), Fold(Add(0, ph)); a != b {
			t.Errorf("length %d: %#x, the pseudo-header sums to %#x", n, a, b)
		}
	}
}

// FuzzIPv4Header: what decodes stays inside the input and marshals back to the same header
// (the reserved flag bit aside). (It replaces probe's FuzzDecodeIPv4: the decoder is here.)
func FuzzIPv4Header(f *testing.F) {
	f.Add(rfc1071Header)
	f.Add(optsHeader)
	f.Fuzz(func(t *testing.T, b []byte) {
		var h IPv4Header
		if h.DecodeFromBytes(b) != nil {
			return
		}
		if h.IHL < 20 || h.IHL > 60 || h.IHL > len(b) || len(h.Options) != h.IHL-20 || h.IHL+len(h.Payload) > len(b) ||
			!h.Src.Is4() || !h.Dst.Is4() || h.Offset%8 != 0 {
			t.Fatalf("decoded %+v from %d bytes", h, len(b))
		}
		m := make([]byte, 60)
		if n := h.MarshalTo(m); n != h.IHL || Checksum(m[:n]) != 0 {
			t.Fatalf("MarshalTo = %d for IHL %d, checksum verifies to %#x", n, h.IHL, Checksum(m[:n]))
		}
		want := append([]byte(nil), b[:h.IHL]...)
		want[6] &^= 0x80
		want[10], want[11] = m[10], m[11]
		if !bytes.Equal(m[:h.IHL], want) {
			t.Fatalf("MarshalTo % x, from % x", m[:h.IHL], want)
		}
	})
}

// FuzzIPv6Header: the fixed header and the fragment header round-trip.
func FuzzIPv6Header(f *testing.F) {
	f.Add(v6Header)
	f.Add(v6Header[:40])
	f.Fuzz(func(t *testing.T, b []byte) {
		var h IPv6Header
		if h.DecodeFromBytes(b) == nil {
			m := make([]byte, 40)
			if h.MarshalTo(m); !bytes.Equal(m, b[:40]) || len(h.Payload) > h.PayloadLen || len(h.Payload) > len(b)-40 {
				t.Fatalf("%+v marshals to % x, from % x", h, m, b[:40])
			}
		}
		var fr IPv6Fragment
		if fr.DecodeFromBytes(b) == nil {
			m := make([]byte, 8)
			fr.MarshalTo(m)
			want := append([]byte(nil), b[:8]...)
			want[1], want[3] = 0, want[3]&^6
			if !bytes.Equal(m, want) || len(fr.Payload) != len(b)-8 {
				t.Fatalf("%+v marshals to % x, from % x", fr, m, want)
			}
		}
	})
}
