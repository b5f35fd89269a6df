package wire

import (
	"errors"
	"net/netip"
	"testing"
)

// tProbe is the source, destination and nonce of the tests' probes (documentation
// addresses, a valid nonce).
var tProbe = BuildParams{Src: netip.MustParseAddr("198.51.100.10"), Dst: netip.MustParseAddr("203.0.113.10"), Nonce: 0x5a5a0102}

// writeProbe writes probe id of size bytes (0: the class's default) as one datagram, the
// way probe.Build does before it fragments: the class's size, a 20-byte IPv4 header, then
// what the class writes.
func writeProbe(id ID, size int, nonce uint32) ([]byte, error) {
	c, ok := ClassOf(id)
	if !ok {
		return nil, errUnknown
	}
	var t IKETemplates
	n, msg, err := c.Size(size, &t, nil)
	if err != nil {
		return nil, err
	}
	d := make([]byte, n)
	p := tProbe
	p.Nonce = nonce
	h := IPv4Header{TotalLen: n, ID: uint16(nonce), TTL: DefaultTTL, Proto: c.Proto(), Src: p.Src, Dst: p.Dst}
	h.MarshalTo(d)
	c.Write(d[IPv4HeaderLen:], id, n, &p, msg)
	return d, nil
}

var errUnknown = errors.New("unknown class")

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
			if got, ok := ClassOf(c.id); !ok || got != c {
				t.Errorf("ClassOf(%q) = %v, %v", c.id, got, ok)
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
		if c, ok := ClassOf(id); !ok || c.id != "" {
			t.Errorf("ClassOf(%q) = %+v, %v", id, c, ok)
		}
	}
	for _, id := range []ID{"", "tcp:445-frag", "udp:0", "esp-frag-frag", "ESP"} {
		if c, ok := ClassOf(id); ok {
			t.Errorf("ClassOf(%q) = %+v", id, c)
		}
	}
}

// testIDs is one id of every class.
var testIDs = []ID{IKE, IKEFrag, NATT, NATTFrag, ESP, ESPFrag, AH, AHFrag, ICMPLarge, TCP(445), PMTU,
	UDP(5000), UDP(5000) + "-frag", L2TP, L2TPFrag}

// TestClassWriteRecognise writes every class at its default size (pmtu at 1400) and
// recognises it from its head, and from an ICMP error quoting it, without probe's Build.
func TestClassWriteRecognise(t *testing.T) {
	for _, id := range testIDs {
		size := 0
		if id == PMTU {
			size = 1400
		}
		d, err := writeProbe(id, size, tProbe.Nonce)
		if err != nil {
			t.Fatalf("%s: %v", id, err)
		}
		want := Match{ID: id, Nonce: tProbe.Nonce, Kind: KindProbe, DatagramLen: len(d)}
		if id.IsTCP() {
			want.DatagramLen, want.TCPFlags = 0, TCPSyn
		}
		head := d[IPv4HeaderLen:min(len(d), IPv4HeaderLen+64)]
		if m, ok := ClassifyHead(d[9], head); !ok || m != want {
			t.Errorf("%s: ClassifyHead = %+v, %v; want %+v", id, m, ok, want)
		}
		icmp := append([]byte{ICMPUnreach, CodeFragNeeded, 0, 0, 0, 0, 5, 0}, d[:IPv4HeaderLen+len(head)]...)
		want.Kind = KindICMPError
		if m, ok := ClassifyHead(ProtoICMP, icmp); !ok || m != want {
			t.Errorf("%s: ICMP error: %+v, %v; want %+v", id, m, ok, want)
		}
	}
	if _, ok := ClassOf("bogus"); ok {
		t.Error("ClassOf(bogus) found a class")
	}
}

// FuzzClassifyHead reads any bytes under any protocol: it never panics, and what it names
// is a class of the table (or a port class of port 0) with a kind.
func FuzzClassifyHead(f *testing.F) {
	for _, id := range testIDs {
		d, err := writeProbe(id, 1400, tProbe.Nonce)
		if err != nil {
			d, _ = writeProbe(id, 0, tProbe.Nonce)
		}
		f.Add(d[9], d[IPv4HeaderLen:min(len(d), IPv4HeaderLen+64)])
		f.Add(uint8(ProtoICMP), append([]byte{ICMPTimeExceeded, 0, 0, 0, 0, 0, 0, 0}, d[:min(len(d), 28)]...))
	}
	f.Fuzz(func(t *testing.T, proto uint8, head []byte) {
		m, ok := ClassifyHead(proto, head)
		if !ok {
			if m != (Match{}) {
				t.Fatalf("no match but %+v", m)
			}
			return
		}
		if m.Kind < KindProbe || m.Kind > KindICMPError {
			t.Fatalf("kind %v", m.Kind)
		}
		// A port class names the port it read, 0 included (as it always did).
		if m.ID != "" && !m.ID.Valid() && m.ID != TCP(0) && m.ID.Unfragmented() != UDP(0) {
			t.Fatalf("invalid id %q", m.ID)
		}
	})
}
