package probe

import (
	"bytes"
	"testing"
	"time"

	"golang.org/x/net/bpf"
)

// With a snap length the capture filter hands over that much of a kept packet (never less
// than CaptureSnap, which the verdicts need) and still nothing of a dropped one.
func TestCaptureFilterSnap(t *testing.T) {
	var out Packets
	if err := Build(ESP, BuildParams{Src: tDst, Dst: tSrc, Nonce: tNonce}, &out); err != nil {
		t.Fatal(err)
	}
	from := append([]byte(nil), out.Wire[0]...)
	if err := Build(ESP, BuildParams{Src: tSrc, Dst: tDst, Nonce: tNonce}, &out); err != nil {
		t.Fatal(err)
	}
	toPeer := append([]byte(nil), out.Wire[0]...) // from us: not from the peer
	for _, c := range []struct{ snap, want int }{{0, CaptureSnap}, {100, CaptureSnap}, {1600, 1600}, {1 << 20, MaxCaptureSnap}} {
		raw, err := CaptureFilter(CaptureConfig{Peer: tDst, Snap: c.snap})
		if err != nil {
			t.Fatal(err)
		}
		insns, _ := bpf.Disassemble(raw)
		prog := append([]bpf.Instruction{bpf.LoadConstant{Dst: bpf.RegA, Val: 0}}, insns[1:]...)
		vm, err := bpf.NewVM(prog)
		if err != nil {
			t.Fatal(err)
		}
		if n, _ := vm.Run(from); n != c.want {
			t.Errorf("snap %d: kept packet gets %d bytes, want %d", c.snap, n, c.want)
		}
		if n, _ := vm.Run(toPeer); n != 0 {
			t.Errorf("snap %d: dropped packet gets %d bytes", c.snap, n)
		}
	}
}

// An Observer with a snap length keeps each packet's bytes up to it, for any fragment, and
// hands out copies that later packets in the same slot do not change.
func TestObserverKeepsPackets(t *testing.T) {
	o := &Observer{ring: make([]slot, 1), snap: 60}
	pkt := func(id uint16, n, off int) []byte {
		b := make([]byte, n)
		putIPv4Header(b, n, id, false, 64, ProtoESP, tSrc, tDst)
		if off > 0 {
			b[6] = byte(off / 8 >> 8)
			b[7] = byte(off / 8)
			b[10], b[11] = 0, 0
		}
		for i := 20; i < n; i++ {
			b[i] = byte(id)
		}
		return b
	}
	var h IPv4Header
	first := pkt(1, 40, 0)
	if err := h.DecodeFromBytes(first); err != nil {
		t.Fatal(err)
	}
	o.recordPacket(&h, first, time.Unix(1, 0))
	a := o.Drain()
	if len(a) != 1 || !bytes.Equal(a[0].Packet, first) {
		t.Fatalf("first: %+v", a)
	}
	second := pkt(2, 100, 1480) // a non-first fragment, longer than the snap length
	if err := h.DecodeFromBytes(second); err != nil {
		t.Fatal(err)
	}
	o.recordPacket(&h, second, time.Unix(2, 0))
	b := o.Drain()
	if len(b) != 1 || !bytes.Equal(b[0].Packet, second[:60]) || b[0].Offset != 1480 {
		t.Fatalf("second: %+v", b)
	}
	if !bytes.Equal(a[0].Packet, first) {
		t.Error("a copy handed out earlier changed when its slot was reused")
	}
	o.snap = 0
	o.record(&h, time.Unix(3, 0))
	if c := o.Drain(); len(c) != 1 || c[0].Packet != nil {
		t.Errorf("without a snap length a packet's bytes are kept: %+v", c)
	}
}
