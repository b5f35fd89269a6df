package pmtu

import (
	"errors"
	"testing"
)

// TestAdviseHandWorked checks Advise against figures worked by hand. Abbreviations: IP4/IP6
// outer header 20/40, UDP 8 (NAT-T), ESP header 8 (SPI+seq), IV, ICV, T = 2-byte trailer
// (pad length + next header), pad(x, b) = x rounded up to b. The largest inner packet is the
// largest body whose wire size still fits the MTU.
func TestAdviseHandWorked(t *testing.T) {
	tests := []struct {
		name      string
		e         Encap
		mtu       int
		maxInner  int
		mss       int
		overhead  int
		tunnelMTU int
		note      bool
	}{
		// room for the padded part = 1500 - IP4 20 - ESP 8 - IV 8 - ICV 16 = 1448 (a multiple of 4),
		// body = 1448 - T 2 = 1446; wire = 20+8+8+pad(1446+2,4)=1448+16 = 1500; MSS = 1446-20-20.
		{"gcm tunnel v4", Encap{Suite: ESPAESGCM16, Mode: Tunnel, Outer: 4}, 1500, 1446, 1406, 54, 1446, false},
		// NAT-T: room = 1448 - UDP 8 = 1440, body 1438, MSS 1398, overhead 20+8+8+8+2+16 = 62.
		{"gcm tunnel v4 natt", Encap{Suite: ESPAESGCM16, Mode: Tunnel, NATT: true, Outer: 4}, 1500, 1438, 1398, 62, 1438, false},
		// room = 1500 - 20 - 8 - IV 16 - ICV 16 = 1440 = 90*16, body 1438; wire 20+8+16+1440+16 = 1500.
		{"cbc-sha256 tunnel v4", Encap{Suite: ESPAESCBCSHA256, Mode: Tunnel, Outer: 4}, 1500, 1438, 1398, 62, 1438, false},
		// NAT-T: room = 1440 - 8 = 1432, down to 16: 1424 (89*16), body 1422;
		// wire = 20+8+8+16+1424+16 = 1492 (8 bytes lost to the block), overhead 1492-1422 = 70, MSS 1382.
		{"cbc-sha256 tunnel v4 natt", Encap{Suite: ESPAESCBCSHA256, Mode: Tunnel, NATT: true, Outer: 4}, 1500, 1422, 1382, 70, 1422, false},
		// The lab's libipsec tunnel runs in UDP 4500 over a 1400 path: room = 1400-20-8-8-8-16 = 1340, body 1338.
		{"chacha tunnel v4 natt 1400", Encap{Suite: ESPChaCha20Poly1305, Mode: Tunnel, NATT: true, Outer: 4}, 1400, 1338, 1298, 62, 1338, false},
		// IPv6 outer, IPv4 inner: room = 1500-40-8-8-16 = 1428, body 1426, MSS 1426-20-20 = 1386, overhead 74.
		{"gcm tunnel v6 in v4", Encap{Suite: ESPAESGCM16, Mode: Tunnel, Outer: 6, Inner: 4}, 1500, 1426, 1386, 74, 1426, false},
		// IPv6 in IPv6 over a 1280 path: room = 1280-40-8-8-16 = 1208, body 1206 < 1280: needs the note.
		// MSS = 1206 - 40 - 20 = 1146.
		{"gcm tunnel v6 1280", Encap{Suite: ESPAESGCM16, Mode: Tunnel, Outer: 6}, 1280, 1206, 1146, 74, 1206, true},
		// Transport: the packet keeps its IP4 header; room for the padded payload = 1500-20-8-8-16 = 1448,
		// payload 1446, packet 1446+20 = 1466; wire = 20+8+8+1448+16 = 1500; MSS 1466-40 = 1426.
		{"gcm transport v4", Encap{Suite: ESPAESGCM16, Mode: Transport, Outer: 4}, 1500, 1466, 1426, 34, 0, false},
		// Transport NAT-T CBC: room = 1500-20-8-8-16-16 = 1432 → 1424, payload 1422, packet 1442;
		// wire = 20+8+8+16+1424+16 = 1492; overhead 50; MSS 1402.
		{"cbc-sha256 transport v4 natt", Encap{Suite: ESPAESCBCSHA256, Mode: Transport, NATT: true, Outer: 4}, 1500, 1442, 1402, 50, 0, false},
		// AH tunnel IPv4: AH = 12 + ICV 16 = 28 (a multiple of 4); 1500-20-28 = 1452, MSS 1412.
		{"ah tunnel v4", Encap{Suite: AHSHA256, Mode: Tunnel, Outer: 4}, 1500, 1452, 1412, 48, 1452, false},
		// AH tunnel IPv6: 28 padded to 8 = 32; 1500-40-32 = 1428, MSS 1428-40-20 = 1368.
		{"ah tunnel v6", Encap{Suite: AHSHA256, Mode: Tunnel, Outer: 6}, 1500, 1428, 1368, 72, 1428, false},
		// AH transport IPv4: 1500-28 = 1472, MSS 1432.
		{"ah transport v4", Encap{Suite: AHSHA256, Mode: Transport, Outer: 4}, 1500, 1472, 1432, 28, 0, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			a, err := tc.e.Advise(tc.mtu)
			if err != nil {
				t.Fatalf("Advise(%d): %v", tc.mtu, err)
			}
			if a.MaxInner != tc.maxInner || a.MSS != tc.mss || a.Overhead != tc.overhead || a.TunnelMTU != tc.tunnelMTU {
				t.Errorf("Advise(%d) = inner %d mss %d overhead %d tunnel %d; want %d %d %d %d",
					tc.mtu, a.MaxInner, a.MSS, a.Overhead, a.TunnelMTU, tc.maxInner, tc.mss, tc.overhead, tc.tunnelMTU)
			}
			if (a.Note != "") != tc.note {
				t.Errorf("note %q, want note: %v", a.Note, tc.note)
			}
			if w, _ := tc.e.WireSize(a.MaxInner); w > tc.mtu {
				t.Errorf("WireSize(%d) = %d > MTU %d", a.MaxInner, w, tc.mtu)
			}
		})
	}
}

// TestMaxInnerIsLargest checks, for every encapsulation and many MTUs, that MaxInner fits and
// that no bigger inner packet does: the closed form agrees with WireSize.
func TestMaxInnerIsLargest(t *testing.T) {
	for _, s := range Suites {
		for _, m := range []Mode{Tunnel, Transport} {
			for _, natt := range []bool{false, true} {
				for _, outer := range []int{4, 6} {
					for _, inner := range []int{0, 4, 6} {
						e := Encap{Suite: s, Mode: m, NATT: natt, Outer: outer, Inner: inner}
						if e.Validate() != nil {
							continue
						}
						for mtu := 300; mtu <= 9000; mtu += 7 {
							n, err := e.MaxInner(mtu)
							if err != nil {
								t.Fatalf("%+v MaxInner(%d): %v", e, mtu, err)
							}
							if w, _ := e.WireSize(n); w > mtu {
								t.Fatalf("%+v: MaxInner(%d) = %d but its wire size is %d", e, mtu, n, w)
							}
							for k := n + 1; k <= n+32; k++ {
								if w, _ := e.WireSize(k); w <= mtu {
									t.Fatalf("%+v: MaxInner(%d) = %d but %d fits too (wire %d)", e, mtu, n, k, w)
								}
							}
						}
					}
				}
			}
		}
	}
}

func TestEncapErrors(t *testing.T) {
	bad := []Encap{
		{Suite: AHSHA256, Mode: Tunnel, NATT: true, Outer: 4},     // AH cannot cross NAT
		{Suite: ESPAESGCM16, Mode: Transport, Outer: 4, Inner: 6}, // transport keeps its header
		{Suite: "des", Mode: Tunnel, Outer: 4},                    // unknown suite
		{Suite: ESPAESGCM16, Mode: "beet", Outer: 4},              // unknown mode
		{Suite: ESPAESGCM16, Mode: Tunnel, Outer: 5},              // no IPv5
		{Suite: ESPAESGCM16, Mode: Tunnel, Outer: 4, Inner: 7},    // no IPv7
	}
	for _, e := range bad {
		if _, err := e.Advise(1500); err == nil {
			t.Errorf("%+v: Advise succeeded, want an error", e)
		}
	}
	_, err := Encap{Suite: ESPAESGCM16, Mode: Tunnel, Outer: 4}.Advise(80)
	if !errors.Is(err, ErrTooSmall) {
		t.Errorf("Advise(80) error %v, want ErrTooSmall", err)
	}
	if _, err := (Encap{Suite: ESPAESGCM16, Mode: Tunnel, Outer: 4}).WireSize(10); err == nil {
		t.Error("WireSize(10) succeeded for a packet shorter than its IP header")
	}
}

func TestParseSuiteMode(t *testing.T) {
	if s, err := ParseSuite("AES-GCM-16"); err != nil || s != ESPAESGCM16 {
		t.Errorf("ParseSuite(AES-GCM-16) = %q, %v", s, err)
	}
	if _, err := ParseSuite("3des"); err == nil {
		t.Error("ParseSuite(3des) succeeded")
	}
	if m, err := ParseMode("transport"); err != nil || m != Transport {
		t.Errorf("ParseMode(transport) = %q, %v", m, err)
	}
	if _, err := ParseMode("beet"); err == nil {
		t.Error("ParseMode(beet) succeeded")
	}
}
