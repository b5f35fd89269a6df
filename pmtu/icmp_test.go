package pmtu

import (
	"bytes"
	"encoding/binary"
	"encoding/hex"
	"net/netip"
	"strings"
	"testing"

	"github.com/ipsecpath/ipsecpath/probe/wire"
)

func unhex(s string) []byte {
	b, err := hex.DecodeString(strings.NewReplacer(" ", "", "\n", "", "\t", "").Replace(s))
	if err != nil {
		panic(err)
	}
	return b
}

// Golden ICMP messages captured in the lab (profile mtu1400, `tcpdump -xx` in ini after
// `ping -M do`), ICMP header first, the quoted data cut after 16 bytes. The probe they
// answer: echo id 0x02c1 (0x02c2, 0x02cf), seq 1, IP ID 0, to 203.0.113.10.
var (
	// 198.51.100.1 > 198.51.100.10: ICMP 203.0.113.10 unreachable - need to frag (mtu 1400)
	goldenFragNeeded = unhex(`0304 f056 0000 0578
		4500 05dc 0000 4000 4001 ced8 c633 640a cb00 710a
		0800 fe13 02c1 0001 6806 046b 0000 0000 3696 0700 0000 0000`)
	// 198.51.100.1 > 198.51.100.10: ICMP time exceeded in-transit (the probe had TTL 1)
	goldenTimeExceeded = unhex(`0b00 f4ff 0000 0000
		4500 0080 0000 4000 0101 1335 c633 640a cb00 710a
		0800 43c8 02c2 0001 6806 046b 0000 0000 d775 0a00 0000 0000`)
	// 203.0.113.10 > 198.51.100.10: ICMP echo reply, id 719, seq 1, length 48
	goldenEchoReply = unhex(`0000 dd2a 02cf 0001 6806 046b 0000 0000 6342 0b00 0000 0000
		1011 1213 1415 1617 1819 1a1b 1c1d 1e1f 2021 2223 2425 2627`)
)

var (
	labR1     = netip.MustParseAddr("198.51.100.1")
	labTarget = netip.MustParseAddr("203.0.113.10")
)

func TestParseICMPGolden(t *testing.T) {
	tests := []struct {
		name string
		from netip.Addr
		b    []byte
		id   echoID
		want Reply
	}{
		{"frag-needed", labR1, goldenFragNeeded, echoID{ID: 0x02c1, Seq: 1},
			Reply{Outcome: FragNeeded, From: labR1, MTU: 1400, Type: 3, Code: 4}},
		{"time-exceeded", labR1, goldenTimeExceeded, echoID{ID: 0x02c2, Seq: 1},
			Reply{Outcome: TimeExceeded, From: labR1, Type: 11}},
		{"echo-reply", labTarget, goldenEchoReply, echoID{ID: 0x02cf, Seq: 1},
			Reply{Outcome: Arrived, From: labTarget}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := parseICMP(tc.from, labTarget, tc.b, tc.id)
			if err != nil || got != tc.want {
				t.Errorf("parseICMP = %+v, %v; want %+v", got, err, tc.want)
			}
		})
	}
}

// TestParseICMPNotOurs: answers to other probes, other targets and truncated or odd messages
// are skipped, never misread.
func TestParseICMPNotOurs(t *testing.T) {
	id := echoID{ID: 0x02c1, Seq: 1}
	mod := func(b []byte, i int, v byte) []byte {
		c := append([]byte(nil), b...)
		c[i] = v
		return c
	}
	cases := []struct {
		name   string
		from   netip.Addr
		b      []byte
		id     echoID
		target netip.Addr
	}{
		{"other seq", labR1, goldenFragNeeded, echoID{ID: 0x02c1, Seq: 2}, labTarget},
		{"other echo id", labR1, goldenFragNeeded, echoID{ID: 0x1234, Seq: 1}, labTarget},
		{"other ip id", labR1, goldenFragNeeded, echoID{ID: 0x02c1, Seq: 1, IPID: 7}, labTarget},
		{"other target", labR1, goldenFragNeeded, id, netip.MustParseAddr("203.0.113.11")},
		{"quotes udp", labR1, mod(goldenFragNeeded, 8+9, 17), id, labTarget},
		{"quotes an echo reply", labR1, mod(goldenFragNeeded, 28, 0), id, labTarget},
		{"ihl 4", labR1, mod(goldenFragNeeded, 8, 0x44), id, labTarget},
		{"ihl 15 past the end", labR1, mod(goldenFragNeeded, 8, 0x4f), id, labTarget},
		{"ipv6 quoted", labR1, mod(goldenFragNeeded, 8, 0x65), id, labTarget},
		{"truncated quote", labR1, goldenFragNeeded[:8+20+7], id, labTarget},
		{"truncated header", labR1, goldenFragNeeded[:7], id, labTarget},
		{"echo request", labTarget, mod(goldenEchoReply, 0, 8), echoID{ID: 0x02cf, Seq: 1}, labTarget},
		{"reply from elsewhere", labR1, goldenEchoReply, echoID{ID: 0x02cf, Seq: 1}, labTarget},
		{"redirect", labR1, mod(goldenFragNeeded, 0, 5), id, labTarget},
	}
	for _, tc := range cases {
		if r, err := parseICMP(tc.from, tc.target, tc.b, tc.id); err == nil {
			t.Errorf("%s: parsed as %+v, want errNotOurs", tc.name, r)
		}
	}
	// Other unreachable codes are "unreachable", with type and code kept.
	r, err := parseICMP(labR1, labTarget, mod(goldenFragNeeded, 1, 13), id)
	if err != nil || r.Outcome != Unreachable || r.Code != 13 || r.MTU != 0 {
		t.Errorf("admin prohibited: %+v, %v", r, err)
	}
}

func TestPutEcho(t *testing.T) {
	for _, n := range []int{8, 9, 100, 1480} {
		b := make([]byte, n)
		putEcho(b, echoID{ID: 0xbeef, Seq: 42})
		if wire.Checksum(b) != 0 {
			t.Errorf("len %d: checksum does not verify", n)
		}
		// The kernel's echo reply is the same message with type 0: we must recognise it.
		b[0] = wire.ICMPEchoReply
		if r, err := parseICMP(labTarget, labTarget, b, echoID{ID: 0xbeef, Seq: 42}); err != nil || r.Outcome != Arrived {
			t.Errorf("len %d: own echo as reply: %+v, %v", n, r, err)
		}
	}
}

func TestParseICMPAllocs(t *testing.T) {
	id := echoID{ID: 0x02c1, Seq: 1}
	if n := testing.AllocsPerRun(100, func() { _, _ = parseICMP(labR1, labTarget, goldenFragNeeded, id) }); n != 0 {
		t.Errorf("parseICMP allocates %.0f times, want 0", n)
	}
}

func FuzzParseICMP(f *testing.F) {
	f.Add(goldenFragNeeded, uint16(0x02c1), uint16(1))
	f.Add(goldenTimeExceeded, uint16(0x02c2), uint16(1))
	f.Add(goldenEchoReply, uint16(0x02cf), uint16(1))
	f.Fuzz(func(t *testing.T, b []byte, eid, seq uint16) {
		r, err := parseICMP(labR1, labTarget, b, echoID{ID: eid, Seq: seq})
		if err != nil {
			return
		}
		// Whatever parses names our probe: an echo reply from the target, or an error from
		// its sender that quotes our id and seq.
		switch r.Outcome {
		case Arrived:
			t.Fatalf("echo reply accepted from a router: %+v", r)
		case FragNeeded, TimeExceeded, Unreachable:
			if r.From != labR1 || len(b) < 36 {
				t.Fatalf("error accepted from %s, %d bytes", r.From, len(b))
			}
		default:
			t.Fatalf("unexpected outcome %v", r.Outcome)
		}
	})
}

func BenchmarkParseICMP(b *testing.B) {
	id := echoID{ID: 0x02c1, Seq: 1}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := parseICMP(labR1, labTarget, goldenFragNeeded, id); err != nil {
			b.Fatal(err)
		}
	}
}

// The echo probe's packet: our IPv4 header (DF, TTL, IP ID, ICMP; 0.0.0.0 as the source
// when the route names none, for the kernel to fill in) over the echo request, which an
// error quoting it matches and nothing else does.
func TestEchoPacket(t *testing.T) {
	id := echoID{ID: 0x02c1, Seq: 1, IPID: 0x1234}
	b := make([]byte, 1400)
	putEchoPacket(b, id, 7, netip.Addr{}, labTarget)
	want := unhex("4500 0578 1234 4000 0701 0000 0000 0000 cb00 710a")
	binary.BigEndian.PutUint16(want[10:], wire.Checksum(want))
	if !bytes.Equal(b[:20], want) {
		t.Errorf("header\n% x\nwant\n% x", b[:20], want)
	}
	if wire.Checksum(b[20:]) != 0 {
		t.Error("echo checksum does not verify")
	}
	// A router's fragmentation-needed quoting the header and 8 bytes of the echo.
	icmpErr := append(unhex("0304 0000 0000 0578"), b[:28]...)
	if r, err := parseICMP(labR1, labTarget, icmpErr, id); err != nil || r.Outcome != FragNeeded || r.MTU != 1400 {
		t.Errorf("error quoting the probe: %+v, %v", r, err)
	}
	other := id
	other.Seq++
	if r, err := parseICMP(labR1, labTarget, icmpErr, other); err == nil {
		t.Errorf("error quoting another probe accepted: %+v", r)
	}
}
