package probe

import (
	"encoding/binary"
	"encoding/hex"
	"strings"
	"testing"

	"github.com/ipsecpath/ipsecpath/report"
)

// ikeIDs finds the IKE header of our own ike and natt probes (behind the non-ESP marker
// on 4500), and nothing in ESP, in ESP-in-UDP or in a non-first fragment.
func TestIKEIDs(t *testing.T) {
	var pk Packets
	for _, c := range []struct {
		id   ID
		want bool
	}{{IKE, true}, {NATT, true}, {IKEFrag, true}, {ESP, false}, {ID("tcp:445"), false}} {
		if err := Build(c.id, BuildParams{Src: tSrc, Dst: tDst, Nonce: tNonce}, &pk); err != nil {
			t.Fatal(err)
		}
		got := ikeIDs(pk.Wire[0])
		if (got != "") != c.want {
			t.Errorf("%s: %q", c.id, got)
			continue
		}
		if c.want {
			ihl := int(pk.Wire[0][0]&0x0f) * 4
			ike := pk.Wire[0][ihl+8:]
			if c.id.Unfragmented() == NATT {
				ike = ike[4:]
			}
			want := hex.EncodeToString(ike[:8]) + ":" + hex.EncodeToString(ike[8:16]) + ":0"
			if got != want {
				t.Errorf("%s: %q, want %q", c.id, got, want)
			}
			if len(pk.Wire) > 1 && ikeIDs(pk.Wire[1]) != "" {
				t.Errorf("%s: a non-first fragment has an IKE header", c.id)
			}
		}
	}
	if err := Build(NATT, BuildParams{Src: tSrc, Dst: tDst, Nonce: tNonce}, &pk); err != nil {
		t.Fatal(err)
	}
	espInUDP := append([]byte(nil), pk.Wire[0]...)
	binary.BigEndian.PutUint32(espInUDP[28:], 0x1234) // an SPI where the marker was
	if got := ikeIDs(espInUDP); got != "" {
		t.Errorf("ESP in UDP 4500 read as IKE: %q", got)
	}
	n := note("arrived", IKE, report.Forward, 2, tNonce, report.Fragment{Offset: 0, Length: 490}, pk.Wire[0], "")
	back, ok := report.ParsePcapNote(n)
	if !ok || back.Probe != "ike" || back.Attempt != 2 || back.Role != "arrived" || back.Frag != "0+490" || !strings.HasPrefix(n, report.PcapNotePrefix) {
		t.Errorf("note %q parses back as %+v", n, back)
	}
}

// FuzzIKEIDs: any bytes (a captured packet): no panic, and an answer only for a UDP
// first fragment to or from 500/4500 long enough to hold an IKE header.
func FuzzIKEIDs(f *testing.F) {
	var pk Packets
	for _, id := range []ID{IKE, NATT, ESP} {
		if err := Build(id, BuildParams{Src: tSrc, Dst: tDst, Nonce: tNonce}, &pk); err != nil {
			f.Fatal(err)
		}
		f.Add(append([]byte(nil), pk.Wire[0]...))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		s := ikeIDs(b)
		if s == "" {
			return
		}
		if len(b) < 20+8+28 || b[9] != ProtoUDP || len(strings.Split(s, ":")) != 3 {
			t.Fatalf("%q from %x", s, b)
		}
	})
}
