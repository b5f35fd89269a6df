package probe

import (
	"encoding/binary"
	"net/netip"
	"testing"
	"time"

	"golang.org/x/net/bpf"

	"github.com/ipsecpath/ipsecpath/probe/wire"
)

// The capture filter, run in x/net/bpf's VM with the pkttype load replaced by a constant
// (the VM has no SKF_AD_PKTTYPE): it keeps what comes from the peer and ICMP errors about
// packets to the peer, and our own packets to the peer only when asked.
func TestCaptureFilter(t *testing.T) {
	peer := tDst
	other := netip.MustParseAddr("192.0.2.99")
	router := netip.MustParseAddr("192.0.2.66")
	me := tSrc
	var out Packets
	mk := func(src, dst netip.Addr) []byte {
		if err := Build(ESP, BuildParams{Src: src, Dst: dst, Nonce: tNonce}, &out); err != nil {
			t.Fatal(err)
		}
		return append([]byte(nil), out.Wire[0]...)
	}
	icmpAbout := func(from netip.Addr, typ uint8, quotedDst netip.Addr) []byte {
		q := mk(me, quotedDst)[:28]
		p := make([]byte, 20+8+len(q))
		putIPv4Header(p, len(p), 1, false, 64, ProtoICMP, from, me)
		p[20] = typ
		copy(p[28:], q)
		return p
	}
	echo := make([]byte, 28)
	putIPv4Header(echo, 28, 1, false, 64, ProtoICMP, other, me)
	echo[20] = wire.ICMPEcho
	const host, outgoing = 0, packetOutgoing
	cases := []struct {
		name     string
		pkttype  uint32
		pkt      []byte
		keep     bool
		keepWith bool // with Outgoing
	}{
		{"from peer", host, mk(peer, me), true, true},
		{"from another host", host, mk(other, me), false, false},
		{"unreachable about peer, from a router", host, icmpAbout(router, wire.ICMPUnreach, peer), true, true},
		{"time exceeded about peer", host, icmpAbout(router, wire.ICMPTimeExceeded, peer), true, true},
		{"parameter problem about peer", host, icmpAbout(router, wire.ICMPParamProblem, peer), true, true},
		{"unreachable about another host", host, icmpAbout(router, wire.ICMPUnreach, other), false, false},
		{"echo from another host", host, echo, false, false},
		{"ICMP error cut short", host, icmpAbout(router, wire.ICMPUnreach, peer)[:40], false, false},
		{"our packet to peer", outgoing, mk(me, peer), false, true},
		{"our packet to another host", outgoing, mk(me, other), false, false},
	}
	for _, outg := range []bool{false, true} {
		raw, err := CaptureFilter(CaptureConfig{Peer: peer, Outgoing: outg})
		if err != nil {
			t.Fatal(err)
		}
		insns, ok := bpf.Disassemble(raw)
		if !ok {
			t.Fatal("filter does not disassemble")
		}
		for _, c := range cases {
			prog := append([]bpf.Instruction{bpf.LoadConstant{Dst: bpf.RegA, Val: c.pkttype}}, insns[1:]...)
			vm, err := bpf.NewVM(prog)
			if err != nil {
				t.Fatal(err)
			}
			n, err := vm.Run(c.pkt)
			if err != nil {
				t.Fatal(err)
			}
			want := c.keep
			if outg {
				want = c.keepWith
			}
			if (n == CaptureSnap) != want || (n != 0 && n != CaptureSnap) {
				t.Errorf("outgoing=%v %s: filter returned %d, want keep=%v", outg, c.name, n, want)
			}
		}
	}
	if _, err := CaptureFilter(CaptureConfig{Peer: netip.MustParseAddr("2001:db8::1")}); err == nil {
		t.Error("IPv6 peer accepted")
	}
}

// The ring is bounded: it overwrites the oldest, counts what was lost, and Since/Drain
// return copies that later packets do not change.
func TestObserverRing(t *testing.T) {
	o := &Observer{ring: make([]slot, 4)}
	base := time.Unix(1000, 0)
	rec := func(i int) {
		pkt := make([]byte, 40)
		putIPv4Header(pkt, 40, uint16(i), false, 64, ProtoESP, tSrc, tDst)
		binary.BigEndian.PutUint32(pkt[20:], uint32(i))
		var h IPv4Header
		if err := h.DecodeFromBytes(pkt); err != nil {
			t.Fatal(err)
		}
		o.record(&h, base.Add(time.Duration(i)*time.Second))
	}
	for i := 1; i <= 3; i++ {
		rec(i)
	}
	d := o.Drain()
	if len(d) != 3 || d[0].IPID != 1 || d[2].IPID != 3 || len(d[0].Head) != 20 {
		t.Fatalf("first drain: %+v", d)
	}
	if len(o.Drain()) != 0 {
		t.Fatal("second drain not empty")
	}
	for i := 4; i <= 10; i++ {
		rec(i)
	}
	st := o.Stats()
	if st.Captured != 10 || st.Overwritten != 3 {
		t.Fatalf("stats %+v, want 10 captured, 3 overwritten (4..6 never drained)", st)
	}
	d = o.Drain()
	if len(d) != 4 || d[0].IPID != 7 || d[3].IPID != 10 {
		t.Fatalf("drain after overflow: %+v", d)
	}
	head := append([]byte(nil), d[0].Head...)
	s := o.Since(base.Add(9 * time.Second))
	if len(s) != 2 || s[0].IPID != 9 {
		t.Fatalf("Since(9s): %+v", s)
	}
	for i := 11; i <= 20; i++ { // overwrite every slot: the copies must not change
		rec(i)
	}
	if string(d[0].Head) != string(head) || binary.BigEndian.Uint32(d[0].Head) != 7 {
		t.Fatal("a drained Seen changed when the ring moved on")
	}
	if n := testing.AllocsPerRun(100, func() { rec(1) }); n > 1 { // the test's own make
		t.Fatalf("recording allocates %v times", n)
	}
}
