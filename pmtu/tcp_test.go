package pmtu

import (
	"bytes"
	"encoding/binary"
	"net/netip"
	"testing"

	"github.com/ipsecpath/ipsecpath/probe/wire"
)

// Golden packets captured in the lab (profile mtu1400, `tcpdump -xx` in ini while
// `ipsecpath pmtu 203.0.113.10 --proto tcp --min 100` ran). The probes: 198.51.100.10:60700
// → 203.0.113.10:445, ACK|PSH.
var (
	// The first probe, whole: 100 bytes, IP ID 0x28fa, seq 0x8fcc27c6, ack 0x228635a8.
	goldenTCPProbe = unhex(`4500 0064 28fa 4000 4006 ab51 c633 640a cb00 710a
		ed1c 01bd 8fcc 27c6 2286 35a8 5018 01f6 9db7 0000
		4950 5350 0a01 0064 8fcc 27c6 6970 7365 6370 6174
		6820 706d 7475 2069 7073 6563 7061 7468 2070 6d74
		7520 6970 7365 6370 6174 6820 706d 7475 2069 7073`)
	goldenTCPProbeID = TCPProbe{Src: netip.MustParseAddr("198.51.100.10"), Dst: labTarget, SrcPort: 60700, DstPort: 445,
		Seq: 0x8fcc27c6, Ack: 0x228635a8, IPID: 0x28fa, TTL: 64}
	// rsp's kernel answers it: 445 > 60700 [R], seq 0x228635a8 (our ack), TCP header first.
	goldenTCPReset = unhex(`01bd ed1c 2286 35a8 0000 0000 5004 0000 0290 0000`)
	// r1 refuses the second probe (1500 bytes, IP ID 0x28fb, seq 0x8fcd27c6): need to frag
	// (mtu 1400), ICMP header first, quoted data cut after 12 bytes of TCP.
	goldenTCPFragNeeded = unhex(`0304 8fc8 0000 0578
		4500 05dc 28fb 4000 4006 a5d8 c633 640a cb00 710a
		ed1c 01bd 8fcd 27c6 2287 35a8`)
	goldenTCPFragNeededID = TCPProbe{Src: netip.MustParseAddr("198.51.100.10"), Dst: labTarget, SrcPort: 60700, DstPort: 445,
		Seq: 0x8fcd27c6, Ack: 0x228735a8, IPID: 0x28fb, TTL: 64}
)

// TestTCPProbePutGolden: Put rebuilds the captured probe byte for byte (both checksums
// included), and the checksums verify the standard way (summing to zero).
func TestTCPProbePutGolden(t *testing.T) {
	b := make([]byte, len(goldenTCPProbe))
	if err := goldenTCPProbeID.Put(b); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(b, goldenTCPProbe) {
		t.Errorf("Put:\n% x\nwant\n% x", b, goldenTCPProbe)
	}
	big := make([]byte, 1500)
	if err := goldenTCPProbeID.Put(big); err != nil {
		t.Fatal(err)
	}
	if c := wire.Checksum(big[:20]); c != 0 {
		t.Errorf("IP header checksum does not verify: %#x", c)
	}
	if c := wire.TCPChecksum(goldenTCPProbeID.Src, goldenTCPProbeID.Dst, big[20:]); c != 0 {
		t.Errorf("TCP checksum does not verify: %#x", c)
	}
	if got := binary.BigEndian.Uint16(big[2:]); got != 1500 || big[6]&0x40 == 0 {
		t.Errorf("total length %d, DF %v", got, big[6]&0x40 != 0)
	}
	for _, bad := range []struct {
		name string
		p    TCPProbe
		n    int
	}{
		{"too small", goldenTCPProbeID, MinTCPProbe - 1},
		{"too big", goldenTCPProbeID, 65536},
		{"ipv6", TCPProbe{Src: netip.MustParseAddr("2001:db8::1"), Dst: labTarget}, 100},
		{"no source", TCPProbe{Dst: labTarget}, 100},
	} {
		if err := bad.p.Put(make([]byte, bad.n)); err == nil {
			t.Errorf("%s: Put accepted it", bad.name)
		}
	}
}

func TestParseTCPAnswer(t *testing.T) {
	id := goldenTCPProbeID
	payload := 100 - 40
	if r, err := parseTCPAnswer(labTarget, goldenTCPReset, id, payload); err != nil || r != (Reply{Outcome: Arrived, From: labTarget}) {
		t.Errorf("golden reset: %+v, %v", r, err)
	}
	// RST|ACK acknowledging our data (stacks that answer so) arrives too.
	ra := bytes.Clone(goldenTCPReset)
	binary.BigEndian.PutUint32(ra[4:], 0)
	binary.BigEndian.PutUint32(ra[8:], id.Seq+uint32(payload))
	ra[13] = tcpFlagRST | tcpFlagACK
	if r, err := parseTCPAnswer(labTarget, ra, id, payload); err != nil || r.Outcome != Arrived {
		t.Errorf("RST|ACK: %+v, %v", r, err)
	}
	mod := func(f func(b []byte)) []byte { b := bytes.Clone(goldenTCPReset); f(b); return b }
	for _, c := range []struct {
		name string
		from netip.Addr
		b    []byte
	}{
		{"from a router", labR1, goldenTCPReset},
		{"other source port", labTarget, mod(func(b []byte) { b[1]++ })},
		{"other destination port", labTarget, mod(func(b []byte) { b[3]++ })},
		{"other seq", labTarget, mod(func(b []byte) { b[7]++ })},
		{"not a reset", labTarget, mod(func(b []byte) { b[13] = tcpFlagACK })},
		{"truncated", labTarget, goldenTCPReset[:19]},
		{"RST|ACK for other data", labTarget, mod(func(b []byte) { b[7]++; b[13] = tcpFlagRST | tcpFlagACK })},
	} {
		if r, err := parseTCPAnswer(c.from, c.b, id, payload); err == nil {
			t.Errorf("%s: accepted as %+v", c.name, r)
		}
	}
}

func TestParseICMPErrorTCP(t *testing.T) {
	r, err := parseICMPError(labR1, goldenTCPFragNeeded, goldenTCPFragNeededID.quote())
	if want := (Reply{Outcome: FragNeeded, From: labR1, MTU: 1400, Type: 3, Code: 4}); err != nil || r != want {
		t.Errorf("golden frag-needed: %+v, %v; want %+v", r, err, want)
	}
	te := bytes.Clone(goldenTCPFragNeeded)
	te[0], te[1] = wire.ICMPTimeExceeded, 0
	if r, err := parseICMPError(labR1, te, goldenTCPFragNeededID.quote()); err != nil || r.Outcome != TimeExceeded {
		t.Errorf("time exceeded: %+v, %v", r, err)
	}
	other := func(f func(p *TCPProbe)) TCPProbe { p := goldenTCPFragNeededID; f(&p); return p }
	for _, c := range []struct {
		name string
		b    []byte
		id   TCPProbe
	}{
		{"other IP ID", goldenTCPFragNeeded, other(func(p *TCPProbe) { p.IPID++ })},
		{"other seq", goldenTCPFragNeeded, other(func(p *TCPProbe) { p.Seq++ })},
		{"other port", goldenTCPFragNeeded, other(func(p *TCPProbe) { p.DstPort = 1792 })},
		{"other target", goldenTCPFragNeeded, other(func(p *TCPProbe) { p.Dst = labR1 })},
		{"echo reply", goldenEchoReply, goldenTCPFragNeededID},
		{"quotes an echo", goldenFragNeeded, goldenTCPFragNeededID},
		{"truncated quote", goldenTCPFragNeeded[:8+20+7], goldenTCPFragNeededID},
	} {
		if r, err := parseICMPError(labR1, c.b, c.id.quote()); err == nil {
			t.Errorf("%s: accepted as %+v", c.name, r)
		}
	}
}

func TestTCPParseAllocs(t *testing.T) {
	n := testing.AllocsPerRun(100, func() {
		_, _ = parseTCPAnswer(labTarget, goldenTCPReset, goldenTCPProbeID, 60)
		_, _ = parseICMPError(labR1, goldenTCPFragNeeded, goldenTCPFragNeededID.quote())
	})
	if n != 0 {
		t.Errorf("parsing allocates %.0f times, want 0", n)
	}
}

func FuzzParseTCP(f *testing.F) {
	f.Add(goldenTCPReset, uint32(0x8fcc27c6), uint32(0x228635a8))
	f.Add(goldenTCPFragNeeded, uint32(0x8fcd27c6), uint32(0x228735a8))
	f.Add(goldenFragNeeded, uint32(0), uint32(0))
	f.Fuzz(func(t *testing.T, b []byte, seq, ack uint32) {
		id := goldenTCPProbeID
		id.Seq, id.Ack = seq, ack
		if r, err := parseTCPAnswer(labTarget, b, id, 60); err == nil {
			if r.Outcome != Arrived || len(b) < tcpHeader || b[13]&tcpFlagRST == 0 {
				t.Fatalf("accepted %+v from % x", r, b)
			}
		}
		if r, err := parseICMPError(labR1, b, id.quote()); err == nil {
			if r.From != labR1 || r.Outcome == Arrived || len(b) < wire.ICMPHeaderLen+20+8 {
				t.Fatalf("accepted %+v from % x", r, b)
			}
		}
	})
}

func BenchmarkTCPProbePut(b *testing.B) {
	buf := make([]byte, 1500)
	b.ReportAllocs()
	for b.Loop() {
		if err := goldenTCPProbeID.Put(buf); err != nil {
			b.Fatal(err)
		}
	}
}
