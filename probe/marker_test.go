package probe

import (
	"encoding/binary"
	"testing"

	"github.com/ipsecpath/ipsecpath/probe/wire"
)

// answers the far end gives, built from a probe's bytes the way a kernel or gateway would.
func TestClassifyAnswers(t *testing.T) {
	var out Packets
	// Echo reply: type 0, same id/seq and payload.
	if err := Build(ICMPLarge, params(ICMPLarge), &out); err != nil {
		t.Fatal(err)
	}
	head := append([]byte(nil), out.Wire[0][20:20+HeadLen]...)
	head[0] = wire.ICMPEchoReply
	if m, ok := ClassifyHead(ProtoICMP, head); !ok || m.ID != ICMPLarge || m.Kind != KindReply || m.Nonce != tNonce || m.DatagramLen != 5028 {
		t.Fatalf("echo reply: %+v %v", m, ok)
	}
	// Echo request whose id/seq disagree with the marker: not ours.
	head[0] = wire.ICMPEcho
	head[7] ^= 1
	if m, ok := ClassifyHead(ProtoICMP, head); ok {
		t.Fatalf("tampered echo classified: %+v", m)
	}

	// IKE response: ports swapped, responder SPI set, response flag.
	for _, id := range []ID{IKE, NATT} {
		if err := Build(id, params(id), &out); err != nil {
			t.Fatal(err)
		}
		h := append([]byte(nil), out.Wire[0][20:20+HeadLen]...)
		ike := h[8:]
		if id == NATT {
			ike = ike[4:]
		}
		binary.BigEndian.PutUint64(ike[8:16], 0x1122334455667788)
		ike[19] = 0x20
		if m, ok := ClassifyHead(ProtoUDP, h); !ok || m.ID != id || m.Kind != KindReply || m.Nonce != tNonce {
			t.Fatalf("%s response: %+v %v", id, m, ok)
		}
	}
	// UDP on other ports, or 4500 without the non-ESP marker (that is UDP-encapsulated ESP).
	h := make([]byte, 64)
	binary.BigEndian.PutUint16(h[0:2], 53)
	binary.BigEndian.PutUint16(h[2:4], 53)
	if _, ok := ClassifyHead(ProtoUDP, h); ok {
		t.Fatal("DNS classified")
	}
	if err := Build(NATT, params(NATT), &out); err != nil {
		t.Fatal(err)
	}
	h = append([]byte(nil), out.Wire[0][20:20+HeadLen]...)
	h[8] = 1
	if _, ok := ClassifyHead(ProtoUDP, h); ok {
		t.Fatal("UDP-encapsulated ESP classified as IKE")
	}

	// TCP: SYN-ACK and RST acknowledge nonce+1; the id comes from the source port.
	if err := Build(TCP(1792), params(TCP(1792)), &out); err != nil {
		t.Fatal(err)
	}
	syn := out.Wire[0][20:]
	for _, flags := range []uint8{TCPSyn | TCPAck, TCPRst | TCPAck} {
		a := make([]byte, 20)
		copy(a[0:2], syn[2:4])
		copy(a[2:4], syn[0:2])
		binary.BigEndian.PutUint32(a[4:8], 777)
		binary.BigEndian.PutUint32(a[8:12], tNonce+1)
		a[12], a[13] = 0x50, flags
		m, ok := ClassifyHead(ProtoTCP, a)
		if !ok || m.ID != TCP(1792) || m.Kind != KindReply || m.Nonce != tNonce || m.TCPFlags != flags {
			t.Fatalf("flags %#x: %+v %v", flags, m, ok)
		}
	}
	if m, ok := ClassifyHead(ProtoTCP, syn); !ok || m.Kind != KindProbe || m.ID != TCP(1792) {
		t.Fatalf("SYN: %+v %v", m, ok)
	}
	// A bare ACK is nothing.
	a := append([]byte(nil), syn...)
	a[13] = TCPAck
	if _, ok := ClassifyHead(ProtoTCP, a); ok {
		t.Fatal("bare ACK classified")
	}
	// Junk with the right protocol numbers.
	for _, p := range []uint8{ProtoESP, ProtoAH, ProtoICMP, ProtoUDP, ProtoTCP, 47} {
		if _, ok := ClassifyHead(p, make([]byte, 3)); ok {
			t.Fatalf("3 bytes of proto %d classified", p)
		}
		if _, ok := ClassifyHead(p, make([]byte, 64)); ok && p != ProtoTCP {
			t.Fatalf("64 zero bytes of proto %d classified", p)
		}
	}
}

func TestNewNonces(t *testing.T) {
	ns, err := NewNonces(2000)
	if err != nil {
		t.Fatal(err)
	}
	ids := map[uint16]bool{}
	for _, n := range ns {
		if !validNonce(n) || ids[uint16(n)] {
			t.Fatalf("nonce %#x invalid or repeats an IP ID", n)
		}
		ids[uint16(n)] = true
	}
	if _, err := NewNonces(-1); err == nil {
		t.Fatal("NewNonces(-1) succeeded")
	}
}
