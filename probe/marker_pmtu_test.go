package probe_test

import (
	"net/netip"
	"testing"

	"github.com/ipsecpath/ipsecpath/pmtu"
	"github.com/ipsecpath/ipsecpath/probe"
)

// TestClassifyPMTUTCPProbe: pmtu's TCP-sized probe (an ACK data segment with the marker) is
// a tcp probe to its port, nonce = its sequence number, so the agent keeps it; an ICMP error
// quoting it maps back to the same nonce; a data segment without the marker, or with a
// marker that names another nonce, is nobody's probe.
func TestClassifyPMTUTCPProbe(t *testing.T) {
	p := pmtu.TCPProbe{Src: netip.MustParseAddr("198.51.100.10"), Dst: netip.MustParseAddr("203.0.113.10"),
		SrcPort: 40000, DstPort: 445, Seq: 0x8fcc27c6, Ack: 7, IPID: 0x27c6, TTL: 64}
	b := make([]byte, 1400)
	if err := p.Put(b); err != nil {
		t.Fatal(err)
	}
	head := b[20 : 20+probe.HeadLen]
	m, ok := probe.ClassifyHead(probe.ProtoTCP, head)
	if !ok || m.Kind != probe.KindProbe || m.ID != probe.TCP(445) || m.Nonce != p.Seq || m.DatagramLen != 1400 {
		t.Fatalf("ClassifyHead = %+v, %v", m, ok)
	}
	// A router's frag-needed quoting the header and 8 bytes.
	icmp := append([]byte{3, 4, 0, 0, 0, 0, 0x05, 0x78}, b[:28]...)
	if m, ok := probe.ClassifyHead(probe.ProtoICMP, icmp); !ok || m.Kind != probe.KindICMPError || m.Nonce != p.Seq {
		t.Errorf("quoted: %+v, %v", m, ok)
	}
	noMarker := append([]byte(nil), head...)
	noMarker[20] = 'X'
	otherNonce := append([]byte(nil), head...)
	otherNonce[31]++
	for name, h := range map[string][]byte{"no marker": noMarker, "other nonce": otherNonce, "cut": head[:31]} {
		if m, ok := probe.ClassifyHead(probe.ProtoTCP, h); ok {
			t.Errorf("%s: classified as %+v", name, m)
		}
	}
}
