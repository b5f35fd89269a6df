package probe

import (
	"testing"
)

// TestClassTable checks the table itself: codes unique and in order, every class reachable
// from its id, -frag forms fragmented, sizes that a probe can be built at.
func TestClassTable(t *testing.T) {
	seen := map[uint8]bool{}
	for i := range classes {
		c := &classes[i]
		if seen[c.code] || c.write == nil || c.recognise == nil || (i > 0 && c.code <= classes[i-1].code) {
			t.Errorf("class %d (%q): duplicate or out-of-order code, or no write/recognise", c.code, c.id)
		}
		seen[c.code] = true
		if c.id != "" {
			if got, ok := classOf(c.id); !ok || got != c {
				t.Errorf("classOf(%q) = %v, %v", c.id, got, ok)
			}
			if c.frag != (c.id.Fragmented() || c.id == ICMPLarge) {
				t.Errorf("%s: frag %v", c.id, c.frag)
			}
		}
		if c.size == nil && c.defSize != 0 && c.defSize < c.minSize {
			t.Errorf("class %d: default size %d below its minimum %d", c.code, c.defSize, c.minSize)
		}
	}
	for _, id := range []ID{TCP(445), UDP(5000), UDP(5000) + "-frag"} {
		if c, ok := classOf(id); !ok || c.id != "" {
			t.Errorf("classOf(%q) = %+v, %v", id, c, ok)
		}
	}
	for _, id := range []ID{"", "tcp:445-frag", "udp:0", "esp-frag-frag", "ESP"} {
		if c, ok := classOf(id); ok {
			t.Errorf("classOf(%q) = %+v", id, c)
		}
	}
}

// FuzzClassTable builds a probe of any class at any size and recognises it again from what
// a capture keeps of its first fragment (HeadLen bytes), and from an ICMP error quoting
// that: the table's write and recognise of a class agree.
func FuzzClassTable(f *testing.F) {
	for i := range allClasses() {
		f.Add(uint8(i), uint16(0), uint32(tNonce), uint16(0))
		f.Add(uint8(i), uint16(1400), uint32(0xfffffffe), uint16(576))
	}
	var out Packets
	f.Fuzz(func(t *testing.T, class uint8, size uint16, nonce uint32, fragSize uint16) {
		ids := allClasses()
		id := ids[int(class)%len(ids)]
		p := BuildParams{Src: tSrc, Dst: tDst, Nonce: nonce, Size: int(size), FragSize: int(fragSize)}
		if id == PMTU && size == 0 {
			p.Size = 1400
		}
		if fragSize != 0 && fragSize < ipv4MinHeader+HeadLen+8 {
			return // the first fragment would not hold what recognises the probe
		}
		if Build(id, p, &out) != nil {
			return
		}
		w := out.Wire[0]
		head := w[20:min(len(w), 20+HeadLen)]
		m, ok := ClassifyHead(w[9], head)
		want := Match{ID: id, Nonce: nonce, Kind: KindProbe, DatagramLen: out.Size}
		if _, tcp := id.TCPPort(); tcp {
			want.DatagramLen, want.TCPFlags = 0, TCPSyn
		}
		if !ok || m != want {
			t.Fatalf("%s of %d bytes: ClassifyHead = %+v, %v; want %+v", id, out.Size, m, ok, want)
		}
		// An ICMP error quoting the header and 8 bytes gives the nonce where those 8 bytes
		// hold it (ESP, AH, echo, TCP), nothing for UDP; quoting the head, the whole match.
		icmp := append([]byte{3, 4, 0, 0, 0, 0, 5, 0}, w[:min(len(w), 28)]...)
		m, ok = ClassifyHead(ProtoICMP, icmp)
		if udp := w[9] == ProtoUDP; ok == udp || !udp && (m.Kind != KindICMPError || m.Nonce != nonce) {
			t.Fatalf("%s: ICMP error quoting 8 bytes: %+v, %v", id, m, ok)
		}
		m, ok = ClassifyHead(ProtoICMP, append(icmp[:8], w[:20+len(head)]...))
		want.Kind = KindICMPError
		if !ok || m != want {
			t.Fatalf("%s: ICMP error quoting %d bytes: %+v, %v; want %+v", id, len(head), m, ok, want)
		}
	})
}
