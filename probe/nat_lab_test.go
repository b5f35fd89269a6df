package probe_test

import (
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/ipsecpath/ipsecpath/probe"
	"github.com/ipsecpath/ipsecpath/report"
	"github.com/ipsecpath/ipsecpath/report/schematest"
	"github.com/ipsecpath/ipsecpath/testlab"
)

// natResults indexes a report's rows by "direction probe".
func natResults(rep *report.Report) map[string]report.Result {
	got := map[string]report.Result{}
	for _, r := range rep.Results {
		got[string(r.Direction)+" "+r.Probe] = r
	}
	return got
}

func natText(t *testing.T, rep *report.Report) string {
	t.Helper()
	var b strings.Builder
	if err := rep.WriteText(&b, report.TextOptions{}); err != nil {
		t.Fatal(err)
	}
	return b.String()
}

// TestCheckNAT: behind the nat profile's masquerade the report names the NAT and its public
// address, raw ESP/AH rows say they cannot cross it, and UDP 500/4500 (fragmented too) pass
// both ways through the mapping our own probes opened.
func TestCheckNAT(t *testing.T) {
	testlab.RequireRoot(t)
	t.Parallel()
	l := testlab.ForTest(t, testlab.Spec{Profile: "nat"})
	agent := startAgent(t, l)
	rep, _ := checkFromIni(t, l, probe.CheckConfig{Target: l.Addr("rsp"), Agent: agent, Key: labKey, Probes: labProbes})
	text := natText(t, rep)
	schematest.ValidateValue(t, "check", rep)
	n := rep.NAT
	if n == nil || !n.Detected || n.Public != testlab.NATPublic || n.Kind != "address" || n.Via != "agent" ||
		n.Sent != "198.51.100.10:500" || n.Seen != testlab.NATPublic+":500" {
		t.Fatalf("nat = %+v, want detected by the agent, 198.51.100.10:500 seen as %s:500, kind address", n, testlab.NATPublic)
	}
	if !strings.Contains(text, "NAT: a NAT between us (public address "+testlab.NATPublic+")") {
		t.Errorf("the header does not name the NAT:\n%s", text)
	}
	if !strings.Contains(n.Advice, "keep_alive") || !strings.Contains(n.Advice, "crossed the NAT every way") {
		t.Errorf("advice: %s", n.Advice)
	}
	got := natResults(rep)
	for _, id := range []probe.ID{probe.ESP, probe.ESPFrag, probe.AH, probe.AHFrag} {
		for _, d := range []report.Direction{report.Forward, report.Reverse} {
			r := got[key(id, d)]
			if !strings.Contains(r.Detail, "cannot cross this NAT") {
				t.Errorf("%s: %s: %s, want 'cannot cross this NAT'", key(id, d), r.Verdict, r.Detail)
			}
		}
	}
	for _, id := range []probe.ID{probe.IKE, probe.IKEFrag, probe.NATT, probe.NATTFrag} {
		for _, d := range []report.Direction{report.Forward, report.Reverse} {
			if r := got[key(id, d)]; r.Verdict != report.Pass {
				t.Errorf("%s: %s (%s), want pass through the NAT's mapping", key(id, d), r.Verdict, r.Detail)
			}
		}
	}
	if r := got[key(probe.TCP(445), report.Reverse)]; !strings.Contains(r.Detail, "port forward") {
		t.Errorf("reverse tcp:445 behind a NAT: %s", r.Detail)
	}
	if t.Failed() {
		t.Logf("report:\n%s", text)
	}
}

// TestCheckNATFragDrop: the NAT drops non-first fragments: natt-frag is frag-dropped both
// ways while natt passes, and the advice is IKE fragmentation.
func TestCheckNATFragDrop(t *testing.T) {
	testlab.RequireRoot(t)
	t.Parallel()
	l := testlab.ForTest(t, testlab.Spec{Profile: "nat-frag-drop", NoGateways: true})
	agent := startAgent(t, l)
	rep, _ := checkFromIni(t, l, probe.CheckConfig{Target: l.Addr("rsp"), Agent: agent, Key: labKey,
		Probes: []probe.ID{probe.IKE, probe.NATT, probe.NATTFrag}})
	if rep.NAT == nil || !rep.NAT.Detected || rep.NAT.Public != testlab.NATPublic {
		t.Fatalf("nat = %+v", rep.NAT)
	}
	got := natResults(rep)
	for _, d := range []report.Direction{report.Forward, report.Reverse} {
		if r := got[key(probe.NATT, d)]; r.Verdict != report.Pass {
			t.Errorf("%s: %s (%s), want pass", key(probe.NATT, d), r.Verdict, r.Detail)
		}
		if r := got[key(probe.NATTFrag, d)]; r.Verdict != report.FragDropped || !strings.Contains(r.Detail, "IKE fragmentation") {
			t.Errorf("%s: %s (%s), want frag-dropped with IKE fragmentation advice", key(probe.NATTFrag, d), r.Verdict, r.Detail)
		}
	}
	if a := rep.NAT.Advice; !strings.Contains(a, "did not cross (forward, reverse)") || !strings.Contains(a, "IKE fragmentation (RFC 7383") {
		t.Errorf("advice: %s", a)
	}
	if t.Failed() {
		t.Logf("report:\n%s", natText(t, rep))
	}
}

// TestCheckNATNone: on a path without a NAT the report says so (measured), and without an
// agent it says nothing (not measured).
func TestCheckNATNone(t *testing.T) {
	testlab.RequireRoot(t)
	t.Parallel()
	l := testlab.ForTest(t, testlab.Spec{Profile: "clean", NoGateways: true})
	agent := startAgent(t, l)
	rep, _ := checkFromIni(t, l, probe.CheckConfig{Target: l.Addr("rsp"), Agent: agent, Key: labKey, Probes: []probe.ID{probe.IKE, probe.ESP}})
	schematest.ValidateValue(t, "check", rep)
	if n := rep.NAT; n == nil || n.Detected || n.Sent != "198.51.100.10:500" || n.Seen != n.Sent {
		t.Errorf("clean path: nat = %+v, want measured, none", n)
	}
	if text := natText(t, rep); !strings.Contains(text, "NAT: none: ") {
		t.Errorf("clean path: the header does not say no NAT was seen:\n%s", text)
	}
	rep, _ = checkFromIni(t, l, probe.CheckConfig{Target: l.Addr("rsp"), Probes: []probe.ID{probe.ESP}})
	if rep.NAT != nil {
		t.Errorf("without an agent: nat = %+v, want absent (not measured)", rep.NAT)
	}
}

// TestCheckNATPortRewrite is a NAT the profiles do not define: r1 of the nat profile is
// changed by hand to masquerade with random ports (address+port), and its mappings
// flushed. The reverse UDP probes must still pass: the agent sends them to the public port
// our forward probe was seen from. The ports come from 20000-30000: with no range, Linux
// draws a source port below 512 from 1-511 (nf_nat_l4proto_unique_tuple), so 500 stays 500
// about once in 511 runs, which is a NAT that rewrites the address only (seen once: the
// test failed with "192.0.2.65:500").
func TestCheckNATPortRewrite(t *testing.T) {
	testlab.RequireRoot(t)
	t.Parallel()
	l := testlab.ForTest(t, testlab.Spec{Profile: "nat", NoGateways: true})
	for _, argv := range [][]string{
		{"nft", "flush", "chain", "ip", "ipsecpath", "ipl_nat"},
		{"nft", "add", "rule", "ip", "ipsecpath", "ipl_nat", "oifname", "east0", "ip", "saddr", "198.51.100.0/24", "meta", "l4proto", "{", "tcp,", "udp", "}", "masquerade", "to", ":20000-30000", "fully-random"},
		{"nft", "add", "rule", "ip", "ipsecpath", "ipl_nat", "oifname", "east0", "ip", "saddr", "198.51.100.0/24", "masquerade", "fully-random"},
		{"conntrack", "-F"},
	} {
		l.ExecIn(t, "r1", argv...)
	}
	agent := startAgent(t, l)
	rep, _ := checkFromIni(t, l, probe.CheckConfig{Target: l.Addr("rsp"), Agent: agent, Key: labKey,
		Probes: []probe.ID{probe.IKE, probe.IKEFrag, probe.NATT, probe.NATTFrag}})
	n := rep.NAT
	if n == nil || !n.Detected || n.Kind != "address+port" || n.Public != testlab.NATPublic || n.Seen == testlab.NATPublic+":500" {
		t.Fatalf("nat = %+v, want address+port to %s with another port", n, testlab.NATPublic)
	}
	if ap, err := netip.ParseAddrPort(n.Seen); err != nil || ap.Port() < 20000 || ap.Port() > 30000 {
		t.Errorf("nat seen from %q, want a port from the NAT's 20000-30000", n.Seen)
	}
	for _, r := range rep.Results {
		if r.Verdict != report.Pass {
			t.Errorf("%s %s: %s (%s), want pass through the port-rewriting NAT's mapping", r.Direction, r.Probe, r.Verdict, r.Detail)
		}
	}
}

// TestCheckNATPassthrough is a NAT the profiles do not define: r1 of the nat profile with its
// filter chain flushed by hand masquerades raw ESP and AH too (Linux tracks them by address
// pair), like a NAT with "IPsec passthrough". ESP then passes both ways, the reverse only
// through the mapping our forward ESP opened, and the AH rows still say AH cannot cross a NAT.
func TestCheckNATPassthrough(t *testing.T) {
	testlab.RequireRoot(t)
	t.Parallel()
	l := testlab.ForTest(t, testlab.Spec{Profile: "nat", NoGateways: true})
	l.ExecIn(t, "r1", "nft", "flush", "chain", "ip", "ipsecpath", "ipl_fwd")
	agent := startAgent(t, l)
	rep, _ := checkFromIni(t, l, probe.CheckConfig{Target: l.Addr("rsp"), Agent: agent, Key: labKey,
		Probes: []probe.ID{probe.ESP, probe.ESPFrag, probe.AH, probe.NATT}})
	if n := rep.NAT; n == nil || !n.Detected || n.Public != testlab.NATPublic {
		t.Fatalf("nat = %+v", n)
	}
	got := natResults(rep)
	for _, r := range rep.Results {
		if r.Verdict != report.Pass {
			t.Errorf("%s %s: %s (%s), want pass through a passthrough NAT", r.Direction, r.Probe, r.Verdict, r.Detail)
		}
	}
	if d := got[key(probe.ESP, report.Forward)].Detail; !strings.Contains(d, "source rewritten to "+testlab.NATPublic) || !strings.Contains(d, "passed raw ESP here") {
		t.Errorf("forward esp: %s", d)
	}
	for _, d := range []report.Direction{report.Forward, report.Reverse} {
		if r := got[key(probe.AH, d)]; !strings.Contains(r.Detail, "AH cannot cross a NAT") {
			t.Errorf("%s ah: %s", d, r.Detail)
		}
	}
}

// TestStatefulNAT: 'ipsecpath stateful' behind the nat profile's NAT measures the NAT's
// UDP mapping timer (testlab.NATUDPTimeout), names the NAT, and turns the timer into the
// NAT-T keepalive advice.
func TestStatefulNAT(t *testing.T) {
	testlab.RequireRoot(t)
	t.Parallel()
	l := testlab.ForTest(t, testlab.Spec{Profile: "nat", NoGateways: true})
	agent := startAgent(t, l)
	rep, _ := statefulFromIni(t, l, agent, []probe.StatefulProto{probe.StatefulUDP4500}, testlab.NATUDPTimeout+5*time.Second)
	tm := rep.Stateful[string(probe.StatefulUDP4500)]
	want := testlab.NATUDPTimeout.Seconds()
	if tm == nil || !tm.TimerFound || tm.SurvivedS > want || tm.DiedS < want || tm.DiedS > want+2 {
		t.Fatalf("udp4500 timer %+v, want found around %v s", tm, want)
	}
	n := rep.NAT
	if n == nil || !n.Detected || n.Public != testlab.NATPublic {
		t.Fatalf("nat = %+v, want detected with public address %s", n, testlab.NATPublic)
	}
	if !strings.Contains(n.Advice, "this NAT forgot an idle UDP mapping after between") || !strings.Contains(n.Advice, "keep_alive = ") {
		t.Errorf("advice: %s", n.Advice)
	}
	var b strings.Builder
	if err := report.Render(&b, rep, report.FormatText); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(b.String(), "NAT: a NAT between us (public address "+testlab.NATPublic+")") {
		t.Errorf("stateful text does not name the NAT:\n%s", b.String())
	}
}
