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
