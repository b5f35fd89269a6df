package probe

import (
	"net"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/ipsecpath/ipsecpath/report"
)

var (
	natIni = netip.MustParseAddr("198.51.100.10")
	natPub = netip.MustParseAddr("192.0.2.65")
)

// seenUDP is the agent's record of a UDP first fragment from src:sport.
func seenUDP(src netip.Addr, sport uint16) *Seen {
	return &Seen{Src: src, Proto: ProtoUDP, Head: []byte{byte(sport >> 8), byte(sport), 0x11, 0x94}}
}

func TestNATResult(t *testing.T) {
	for _, c := range []struct {
		name               string
		seen               []*Seen
		sport              []uint16
		detected           bool
		kind, sent, seenAs string
	}{
		{"none", []*Seen{seenUDP(natIni, 500)}, []uint16{500}, false, "", "198.51.100.10:500", "198.51.100.10:500"},
		{"address", []*Seen{seenUDP(natPub, 500), seenUDP(natPub, 4500)}, []uint16{500, 4500}, true, "address", "198.51.100.10:500", "192.0.2.65:500"},
		{"address+port", []*Seen{seenUDP(natPub, 31000), seenUDP(natPub, 1024)}, []uint16{4500, 500}, true, "address+port", "198.51.100.10:500", "192.0.2.65:1024"},
		{"port only", []*Seen{seenUDP(natIni, 1500)}, []uint16{500}, true, "port", "198.51.100.10:500", "198.51.100.10:1500"},
		// ESP has no ports: only its address counts, and UDP evidence comes first.
		{"esp only", []*Seen{{Src: natPub, Proto: ProtoESP}}, []uint16{0}, true, "address", "198.51.100.10", "192.0.2.65"},
	} {
		t.Run(c.name, func(t *testing.T) {
			var n natState
			for i, s := range c.seen {
				n.note(natIni, &pending{sport: c.sport[i]}, s)
			}
			got := n.result()
			if got == nil || got.Detected != c.detected || got.Kind != c.kind || got.Sent != c.sent || got.Seen != c.seenAs || got.Via != "agent" {
				t.Fatalf("got %+v, want detected %v kind %q %s → %s", got, c.detected, c.kind, c.sent, c.seenAs)
			}
			if c.detected && c.kind != "port" && (got.Public != natPub.String() || !strings.Contains(got.Detail, "public address "+natPub.String())) {
				t.Errorf("public %q, detail %s", got.Public, got.Detail)
			}
			if !c.detected && !strings.Contains(got.Detail, "no NAT between us") {
				t.Errorf("detail %s", got.Detail)
			}
		})
	}
	// Nothing measured: no report at all.
	var n natState
	if got := n.result(); got != nil {
		t.Errorf("nothing seen: %+v, want nil", got)
	}
	// Only the control connection: it tells the address, and says the probes did not show.
	n.control(&net.TCPAddr{IP: net.IP(natIni.AsSlice()), Port: 40000}, netip.MustParseAddrPort("192.0.2.65:40000"))
	if !n.addressTranslated() {
		t.Error("control connection from another address: not seen as translated")
	}
	got := n.result()
	if got == nil || !got.Detected || got.Via != "control" || got.Kind != "address" || !strings.Contains(got.Detail, "none of our probes reached the agent") {
		t.Errorf("control only: %+v", got)
	}
	// A later fragment (no transport header) and a first fragment without one say nothing.
	var m natState
	m.note(natIni, &pending{sport: 500}, &Seen{Src: natPub, Proto: ProtoUDP, Offset: 1480})
	m.note(natIni, &pending{sport: 500}, &Seen{Src: natPub, Proto: ProtoUDP, Head: []byte{1}})
	if got := m.result(); got != nil {
		t.Errorf("no usable first fragment: %+v", got)
	}
}

func TestSentSourcePort(t *testing.T) {
	var pk Packets
	for _, c := range []struct {
		id   ID
		want uint16
	}{{IKE, 500}, {NATTFrag, 4500}, {ESP, 0}} {
		if err := Build(c.id, BuildParams{Src: natIni, Dst: netip.MustParseAddr("203.0.113.10"), Nonce: 0x12345, FragSize: DefaultFragSize}, &pk); err != nil {
			t.Fatal(err)
		}
		if got := sentSourcePort(&pk); got != c.want {
			t.Errorf("%s: source port %d, want %d", c.id, got, c.want)
		}
	}
	if got := sentSourcePort(&Packets{Proto: ProtoUDP, Wire: [][]byte{{0x45, 0}}}); got != 0 {
		t.Errorf("short packet: %d", got)
	}
}

func TestApplyNAT(t *testing.T) {
	nat := &report.NAT{Detected: true, Public: natPub.String(), Kind: "address"}
	F, R := report.Forward, report.Reverse
	rs := []report.Result{
		{Probe: "esp", Direction: F, Verdict: report.Dropped},
		{Probe: "esp", Direction: R, Verdict: report.Dropped},
		{Probe: "ah", Direction: F, Verdict: report.Pass},
		{Probe: "esp-frag", Direction: F, Verdict: report.Pass},
		{Probe: "tcp:445", Direction: F, Verdict: report.Pass, Detail: "kept"},
		{Probe: "tcp:445", Direction: R, Verdict: report.Blocked, Evidence: report.Evidence{Answer: AnswerRST}},
		{Probe: "icmp-large", Direction: R, Verdict: report.Dropped},
		{Probe: "natt", Direction: F, Verdict: report.Pass},
		{Probe: "natt", Direction: R, Verdict: report.Dropped},
		{Probe: "ike", Direction: R, Verdict: report.Dropped, Detail: "kept: not sent through a mapping"},
		{Probe: "ah", Direction: R, Verdict: report.Skipped, Detail: "kept"},
	}
	applyNAT(rs, nat, map[ID]uint16{NATT: 31000})
	want := []string{
		"cannot cross this NAT", "cannot cross this NAT", "AH cannot cross a NAT", "passed raw ESP here",
		"kept", "port forward", "is the NAT's own to answer", "", "192.0.2.65:31000, through the mapping our own probe had just opened",
		"kept: not sent", "kept",
	}
	for i, r := range rs {
		if want[i] != "" && !strings.Contains(r.Detail, want[i]) {
			t.Errorf("%s %s: %q, want %q", r.Direction, r.Probe, r.Detail, want[i])
		}
	}
	if !strings.Contains(rs[5].Detail, "a reset came back in its name") || !strings.Contains(rs[8].Detail, "ipsecpath stateful") {
		t.Errorf("reverse tcp %q, natt %q", rs[5].Detail, rs[8].Detail)
	}
	if strings.Contains(rs[2].Detail, "UDP encapsulation (NAT-T, UDP 4500), which IKE") {
		t.Errorf("AH is not NAT-T'able: %s", rs[2].Detail)
	}
	// No NAT, or one that only rewrote ports: nothing changes.
	before := []report.Result{{Probe: "esp", Direction: F, Verdict: report.Dropped, Detail: "as judged"}}
	for _, n := range []*report.NAT{nil, {Detected: false}, {Detected: true, Kind: "port"}} {
		rs := append([]report.Result(nil), before...)
		applyNAT(rs, n, nil)
		if rs[0].Detail != "as judged" {
			t.Errorf("nat %+v changed a detail: %s", n, rs[0].Detail)
		}
	}
}

func TestNATAdvice(t *testing.T) {
	if a := NATKeepaliveAdvice(false, 0, 0); !strings.Contains(a, "did not measure") || !strings.Contains(a, "keep_alive") {
		t.Errorf("generic: %s", a)
	}
	if a := NATKeepaliveAdvice(true, 28*time.Second, 31*time.Second); !strings.Contains(a, "between 28s and 31s") || !strings.Contains(a, "keep_alive = 14s") {
		t.Errorf("measured: %s", a)
	}
	F, R := report.Forward, report.Reverse
	if a := natFragAdvice([]report.Result{{Probe: "natt-frag", Direction: F, Verdict: report.Pass}, {Probe: "natt-frag", Direction: R, Verdict: report.Pass}}); !strings.Contains(a, "crossed the NAT every way") {
		t.Errorf("pass: %s", a)
	}
	if a := natFragAdvice([]report.Result{{Probe: "natt-frag", Direction: F, Verdict: report.FragDropped}, {Probe: "natt-frag", Direction: R, Verdict: report.Pass}}); !strings.Contains(a, "did not cross (forward)") || !strings.Contains(a, "IKE fragmentation") {
		t.Errorf("frag-dropped: %s", a)
	}
	if a := natFragAdvice([]report.Result{{Probe: "natt", Direction: F, Verdict: report.Pass}}); a != "" {
		t.Errorf("not run: %q", a)
	}
}
