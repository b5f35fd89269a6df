package pmtu

import (
	"net/netip"
	"testing"

	"github.com/ipsecpath/ipsecpath/probe/wire"
)

// Hand-built ICMPv6 messages (RFC 4443), ICMPv6 header first, for a probe with echo id
// 0x4242 seq 7 to ::1 (the only IPv6 address a test may probe). The quoted packet is the
// IPv6 header (version 6, payload length, next header 58, hop limit, src, dst) and our echo
// request header.
var (
	quoted6 = unhex(`6000 0000 05b0 3a40
		0000 0000 0000 0000 0000 0000 0000 0001
		0000 0000 0000 0000 0000 0000 0000 0001
		8000 0000 4242 0007`)
	// Packet Too Big, MTU 1400 (0x578), from a router.
	golden6PTB = append(unhex(`0200 0000 0000 0578`), quoted6...)
	// Time Exceeded, hop limit exceeded in transit.
	golden6TimeExceeded = append(unhex(`0300 0000 0000 0000`), quoted6...)
	// Echo Reply with our id and seq.
	golden6EchoReply = unhex(`8100 0000 4242 0007 6970 7365 6370 6174`)
)

var (
	lo6     = netip.MustParseAddr("::1")
	router6 = netip.MustParseAddr("fe80::1")
)

func TestParseICMPv6Golden(t *testing.T) {
	id := echoID{ID: 0x4242, Seq: 7}
	tests := []struct {
		name string
		from netip.Addr
		b    []byte
		want Reply
	}{
		{"packet-too-big", router6, golden6PTB, Reply{Outcome: FragNeeded, From: router6, MTU: 1400, Type: 2}},
		{"time-exceeded", router6, golden6TimeExceeded, Reply{Outcome: TimeExceeded, From: router6, Type: 3}},
		{"echo-reply", lo6, golden6EchoReply, Reply{Outcome: Arrived, From: lo6}},
	}
	for _, tc := range tests {
		got, err := parseICMPv6(tc.from, lo6, tc.b, id)
		if err != nil || got != tc.want {
			t.Errorf("%s: %+v, %v; want %+v", tc.name, got, err, tc.want)
		}
	}
	mod := func(b []byte, i int, v byte) []byte {
		c := append([]byte(nil), b...)
		c[i] = v
		return c
	}
	for name, b := range map[string][]byte{
		"other seq":        mod(golden6PTB, 8+40+7, 8),
		"other id":         mod(golden6PTB, 8+40+4, 0),
		"quotes udp":       mod(golden6PTB, 8+6, 17),
		"quotes ipv4":      mod(golden6PTB, 8, 0x45),
		"other dst":        mod(golden6PTB, 8+39, 2),
		"quotes reply":     mod(golden6PTB, 8+40, wire.ICMP6EchoReply),
		"truncated":        golden6PTB[:8+40+7],
		"redirect":         mod(golden6PTB, 0, 137),
		"reply other seq":  mod(golden6EchoReply, 7, 8),
		"icmpv4 echo type": mod(golden6EchoReply, 0, 0),
	} {
		if r, err := parseICMPv6(router6, lo6, b, id); err == nil {
			t.Errorf("%s: parsed as %+v", name, r)
		}
	}
	// A reply must come from the target itself.
	if _, err := parseICMPv6(router6, lo6, golden6EchoReply, id); err == nil {
		t.Error("echo reply from a router accepted")
	}
}

func FuzzParseICMPv6(f *testing.F) {
	f.Add(golden6PTB)
	f.Add(golden6TimeExceeded)
	f.Add(golden6EchoReply)
	f.Fuzz(func(t *testing.T, b []byte) {
		r, err := parseICMPv6(router6, lo6, b, echoID{ID: 0x4242, Seq: 7})
		if err == nil && r.Outcome == Arrived {
			t.Fatalf("echo reply accepted from a router: %+v", r)
		}
		if err == nil && len(b) < 8+40+8 {
			t.Fatalf("error accepted from %d bytes", len(b))
		}
	})
}
