package probe

import (
	"testing"
)

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
