package wire

import (
	"bytes"
	"encoding/hex"
	"testing"
)

func TestChecksum(t *testing.T) {
	// RFC 1071 example: 0001 f203 f4f5 f6f7 sums to ddf2, complemented 220d.
	b, _ := hex.DecodeString("0001f203f4f5f6f7")
	if c := Checksum(b); c != 0x220d {
		t.Errorf("checksum = %#04x, want 0x220d", c)
	}
	// An odd length pads with a zero byte; Add in pieces of even length is Add at once.
	odd := []byte{0x45, 0x00, 0x00, 0x54, 0xab}
	if c, want := Checksum(odd), Checksum(append(odd[:5:5], 0)); c != want {
		t.Errorf("odd length: %#04x, want %#04x", c, want)
	}
	long := bytes.Repeat([]byte{0xde, 0xad, 0xbe, 0xef, 0x01}, 41)
	if a, b := Fold(Add(Add(0, long[:16]), long[16:])), Fold(Add(0, long)); a != b {
		t.Errorf("Add in pieces %#04x, at once %#04x", a, b)
	}
	// A header with its checksum in place sums to 0xffff.
	h, _ := hex.DecodeString("450000730000400040110000c0a80001c0a800c7")
	c := Checksum(h)
	h[10], h[11] = byte(c>>8), byte(c)
	if Checksum(h) != 0 || c != 0xb861 {
		t.Errorf("IPv4 header checksum %#04x (RFC 1071 example header: want 0xb861), verifies to %#04x", c, Checksum(h))
	}
}

func TestMarker(t *testing.T) {
	b := make([]byte, MarkerLen+3)
	PutMarker(b, MarkerCodeTCP, 1400, 0xdeadbeef)
	if want, _ := hex.DecodeString("495053500a010578deadbeef"); !bytes.Equal(b[:MarkerLen], want) {
		t.Fatalf("marker % x, want % x", b[:MarkerLen], want)
	}
	code, n, nonce, ok := ParseMarker(b)
	if !ok || code != MarkerCodeTCP || n != 1400 || nonce != 0xdeadbeef {
		t.Errorf("ParseMarker = %d %d %#x %v", code, n, nonce, ok)
	}
	if _, _, _, ok := ParseMarker(b[:MarkerLen-1]); ok {
		t.Error("ParseMarker took a short marker")
	}
	b[5] = MarkerVersion + 1
	if _, _, _, ok := ParseMarker(b); ok {
		t.Error("ParseMarker took another version")
	}
}

func TestICMPNames(t *testing.T) {
	for _, c := range []struct {
		typ, code   uint8
		name, brief string
	}{
		{ICMPUnreach, CodePortUnreach, "ICMP port unreachable", "port unreachable"},
		{ICMPUnreach, CodeProtoUnreach, "ICMP protocol unreachable", "destination unreachable code 2"},
		{ICMPUnreach, CodeFragNeeded, "ICMP fragmentation needed", "fragmentation needed"},
		{ICMPUnreach, CodeNetProhibited, "ICMP network administratively prohibited", "administratively prohibited"},
		{ICMPUnreach, 7, "ICMP destination unreachable (code 7)", "destination unreachable code 7"},
		{ICMPTimeExceeded, CodeReassemblyTimeout, "ICMP fragment reassembly time exceeded", "time exceeded"},
		{ICMPTimeExceeded, CodeTTLExceeded, "ICMP time exceeded in transit", "time exceeded"},
		{ICMPParamProblem, 0, "ICMP type 12 code 0", "ICMP type 12 code 0"},
	} {
		if got := ICMPName(c.typ, c.code); got != c.name {
			t.Errorf("ICMPName(%d, %d) = %q, want %q", c.typ, c.code, got, c.name)
		}
		if got := ICMPBrief(int(c.typ), int(c.code)); got != c.brief {
			t.Errorf("ICMPBrief(%d, %d) = %q, want %q", c.typ, c.code, got, c.brief)
		}
	}
}

func FuzzParseMarker(f *testing.F) {
	b := make([]byte, MarkerLen)
	PutMarker(b, 5, 1500, 7)
	f.Add(b)
	f.Add([]byte("IPSP"))
	f.Fuzz(func(t *testing.T, b []byte) {
		code, n, nonce, ok := ParseMarker(b)
		if !ok {
			return
		}
		c := make([]byte, MarkerLen)
		PutMarker(c, code, n, nonce)
		if !bytes.Equal(c, b[:MarkerLen]) {
			t.Fatalf("round trip % x, from % x", c, b[:MarkerLen])
		}
	})
}

// quotedEcho is an IPv4 header (IHL 5, ID 0x1234, protocol 1, 192.0.2.1 → 203.0.113.10)
// and an echo request header, as an ICMP error quotes them.
var quotedEcho, _ = hex.DecodeString("45000054123440004001000" + "0c0000201cb00710a" + "0800f7ff42420007")

func TestParseQuotedIPv4(t *testing.T) {
	q, ok := ParseQuotedIPv4(quotedEcho, 8)
	if !ok || q.Proto != 1 || q.Dst.String() != "203.0.113.10" || q.IPID != 0x1234 || !bytes.Equal(q.Next, quotedEcho[20:]) {
		t.Fatalf("ParseQuotedIPv4 = %+v, %v", q, ok)
	}
	if _, ok := ParseQuotedIPv4(quotedEcho, 9); ok {
		t.Error("took a quote with 8 bytes after the header when 9 were needed")
	}
	if _, ok := ParseQuotedIPv4(quotedEcho[:19], 0); ok {
		t.Error("took a short header")
	}
	opts := append([]byte{}, quotedEcho...)
	opts[0] = 0x46 // IHL 6: the header claims 24 bytes, 4 of them the echo header's
	if q, ok := ParseQuotedIPv4(opts, 8); ok {
		t.Errorf("IHL 6 with 28 bytes took 8 after it: %+v", q)
	}
	v6 := append([]byte{}, quotedEcho...)
	v6[0] = 0x65
	if _, ok := ParseQuotedIPv4(v6, 0); ok {
		t.Error("took version 6")
	}
}

func FuzzParseQuotedIPv4(f *testing.F) {
	f.Add(quotedEcho, 8)
	f.Add(quotedEcho[:20], 0)
	f.Fuzz(func(t *testing.T, b []byte, after int) {
		if after < 0 || after > 64 {
			return
		}
		q, ok := ParseQuotedIPv4(b, after)
		if !ok {
			return
		}
		if len(q.Next) < after || !q.Dst.Is4() || len(b)-len(q.Next) < 20 {
			t.Fatalf("ParseQuotedIPv4(% x, %d) = %+v", b, after, q)
		}
	})
}
