package probe_test

import (
	"context"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/ipsecpath/ipsecpath/probe"
	"github.com/ipsecpath/ipsecpath/report"
	"github.com/ipsecpath/ipsecpath/testlab"
)

// Lab addresses of the routers as they answer toward ini (DESIGN.md's table) and of rsp.
const (
	r1West = "198.51.100.1"
	r2West = "192.0.2.66"
	rspIP  = "203.0.113.10"
	iniIP  = "198.51.100.10"
	r2East = "203.0.113.1"
	r1East = "192.0.2.65"
)

// traceFromIni runs TraceProbe inside ini.
func traceFromIni(t *testing.T, l *testlab.Lab, cfg probe.TraceConfig) *report.Report {
	t.Helper()
	t0 := time.Now()
	rep := testlab.DoIn(t, l, "ini", "trace "+string(cfg.Probe), func() (*report.Report, error) { return probe.TraceProbe(context.Background(), cfg) })
	t.Logf("trace %s took %s", cfg.Probe, time.Since(t0).Round(time.Millisecond))
	return rep
}

// hopAt is "ttl addr" of a bracket end, "-" when absent.
func hopAt(h *report.HopRef) string {
	if h == nil {
		return "-"
	}
	return strings.TrimSpace(strconv.Itoa(h.TTL) + " " + h.Addr)
}

func logTrace(t *testing.T, rep *report.Report) {
	t.Helper()
	var b strings.Builder
	rep.WriteJSON(&b)
	t.Logf("report:\n%s", b.String())
}

// wantPath checks one direction of a trace: far end reached or not, and the bracket.
func wantPath(t *testing.T, name string, p *report.TracePath, farEnd bool, last, first string) {
	t.Helper()
	if p == nil {
		t.Errorf("%s: no path", name)
		return
	}
	if p.FarEnd != farEnd {
		t.Errorf("%s: far_end %v, want %v (%s)", name, p.FarEnd, farEnd, p.Detail)
	}
	if last != "" && hopAt(p.LastReached) != last {
		t.Errorf("%s: last_reached %s, want %s (%s)", name, hopAt(p.LastReached), last, p.Detail)
	}
	if first != "" && hopAt(p.FirstMissed) != first {
		t.Errorf("%s: first_missed %s, want %s (%s)", name, hopAt(p.FirstMissed), first, p.Detail)
	}
}

func TestTraceLab(t *testing.T) {
	testlab.RequireRoot(t)
	type dirWant struct {
		farEnd      bool
		last, first string
	}
	cases := []struct {
		profile string
		probe   probe.ID
		fwd     dirWant
		rev     *dirWant
		verdict report.Verdict // forward
		check   func(t *testing.T, rep *report.Report)
	}{
		{profile: "clean", probe: probe.ESPFrag, fwd: dirWant{true, "3 " + rspIP, "-"}, rev: &dirWant{true, "3 " + iniIP, "-"}, verdict: report.Pass},
		{profile: "frag-drop", probe: probe.IKEFrag, fwd: dirWant{false, "1 " + r1West, "2 " + r2West}, verdict: report.Dropped},
		{profile: "frag-drop", probe: probe.ESPFrag, fwd: dirWant{false, "1 " + r1West, "2 " + r2West}, verdict: report.Dropped},
		{profile: "frag-drop", probe: probe.ICMPLarge, fwd: dirWant{false, "1 " + r1West, "2 " + r2West}, verdict: report.Dropped},
		{profile: "frag-drop", probe: probe.IKE, fwd: dirWant{true, "3 " + rspIP, "-"}, verdict: report.Pass},
		{profile: "esp-drop", probe: probe.ESP, fwd: dirWant{false, "1 " + r1West, "2 " + r2West}, verdict: report.Dropped},
		{profile: "udp4500-drop", probe: probe.NATT, fwd: dirWant{false, "2 " + r2West, "3 " + rspIP}, verdict: report.Dropped},
		{profile: "ah-reject", probe: probe.AH, fwd: dirWant{false, "2 " + r2West, "3 " + rspIP}, verdict: report.Blocked,
			check: func(t *testing.T, rep *report.Report) {
				p := rep.Trace.Forward
				if p.RefusedBy == nil || p.RefusedBy.Addr != r2West || p.RefusedBy.TTL != 2 {
					t.Errorf("refused_by %+v, want r2 %s at hop 2", p.RefusedBy, r2West)
				}
				if h := rep.Results[0].Hop; h == nil || h.Addr != r2West {
					t.Errorf("hop %+v, want r2 %s", h, r2West)
				}
			}},
		// r2 resets SYNs to 445 in rsp's name: the agent never sees them.
		// Both ways: the reverse SYN's reset goes to the agent, from r2 at rsp's hop 1.
		{profile: "tcp445-reset", probe: probe.TCP(445), fwd: dirWant{false, "2 " + r2West, "3 " + rspIP},
			rev: &dirWant{false, "1 " + r2East, "2 " + r1East}, verdict: report.Blocked,
			check: func(t *testing.T, rep *report.Report) {
				p := rep.Trace.Forward
				if !strings.Contains(p.Refused, "TCP reset") || p.RefusedBy == nil || p.RefusedBy.TTL != 2 || p.RefusedBy.Addr != r2West {
					t.Errorf("refused %q by %+v, want a reset from r2 %s at hop 2 (estimated)", p.Refused, p.RefusedBy, r2West)
				}
				p = rep.Trace.Reverse
				if !strings.Contains(p.Refused, "TCP reset") || p.RefusedBy == nil || p.RefusedBy.TTL != 1 || p.RefusedBy.Addr != r2East {
					t.Errorf("reverse refused %q by %+v, want a reset from r2 %s at hop 1 (estimated)", p.Refused, p.RefusedBy, r2East)
				}
			}},
		// Reverse: rsp→ini, r2 (hop 1 from rsp, east side 203.0.113.1) drops fragments coming from rsp.
		{profile: "reverse-frag-drop", probe: probe.ESPFrag, fwd: dirWant{true, "3 " + rspIP, "-"}, rev: &dirWant{false, "0 " + rspIP, "1 " + r2East}, verdict: report.Pass},
		{profile: "nonfirst-frag-drop", probe: probe.ESPFrag, fwd: dirWant{true, "0 " + iniIP, "3 " + rspIP}, verdict: report.Partial,
			check: func(t *testing.T, rep *report.Report) {
				fr := rep.Trace.Forward.Fragments
				if len(fr) < 2 {
					t.Fatalf("fragments %+v, want per-fragment fates", fr)
				}
				if fr[0].LastReached == nil || fr[0].LastReached.TTL != 2 || fr[0].FarEnd == nil || !*fr[0].FarEnd {
					t.Errorf("first fragment %+v: want seen past r1 (hop 2 answered) and at the far end", fr[0])
				}
				for _, f := range fr[1:] {
					if f.LastReached != nil || f.FarEnd == nil || *f.FarEnd {
						t.Errorf("fragment %+v: want never seen", f)
					}
				}
				if d := rep.Trace.Forward.Detail; !strings.Contains(d, "non-first fragments only") {
					t.Errorf("detail %q does not say that non-first fragments alone die", d)
				}
			}},
	}
	for _, c := range cases {
		t.Run(c.profile+"/"+string(c.probe), func(t *testing.T) {
			t.Parallel()
			l := testlab.ForTest(t, testlab.Spec{Profile: c.profile, NoGateways: true})
			agent := startAgent(t, l)
			rep := traceFromIni(t, l, probe.TraceConfig{Target: l.Addr("rsp"), Probe: c.probe, Agent: agent, Key: labKey})
			if rep.Trace == nil {
				t.Fatal("no trace in the report")
			}
			wantPath(t, "forward", rep.Trace.Forward, c.fwd.farEnd, c.fwd.last, c.fwd.first)
			if c.rev != nil {
				wantPath(t, "reverse", rep.Trace.Reverse, c.rev.farEnd, c.rev.last, c.rev.first)
			}
			if v := rep.Results[0].Verdict; v != c.verdict {
				t.Errorf("forward verdict %s, want %s (%s)", v, c.verdict, rep.Results[0].Detail)
			}
			if c.check != nil {
				c.check(t, rep)
			}
			if t.Failed() || testing.Verbose() {
				logTrace(t, rep)
			}
		})
	}
}

// TestTraceLabSilentRouter: r1 sends no time-exceeded at all (a rule in its output hook
// drops them) while r2 drops fragments: the bracket must be "between hop 0 and hop 2",
// never r1 as if it were the device.
func TestTraceLabSilentRouter(t *testing.T) {
	testlab.RequireRoot(t)
	l := testlab.ForTest(t, testlab.Spec{Profile: "frag-drop", NoGateways: true})
	const silent = "table ip ipsecpath_silent {\n\tchain out {\n\t\ttype filter hook output priority 0; policy accept;\n" +
		"\t\ticmp type time-exceeded counter drop\n\t}\n}\n"
	if out, err := l.ExecInput(context.Background(), "r1", strings.NewReader(silent), "nft", "-f", "-"); err != nil {
		t.Fatalf("nft in r1: %v: %s", err, out)
	}
	agent := startAgent(t, l)
	rep := traceFromIni(t, l, probe.TraceConfig{Target: l.Addr("rsp"), Probe: probe.ESPFrag, Agent: agent, Key: labKey})
	p := rep.Trace.Forward
	wantPath(t, "forward", p, false, "0 "+iniIP, "2 "+r2West)
	for _, h := range p.Hops {
		if h.TTL == 1 && (h.Reached || h.Addr != "") {
			t.Errorf("hop 1 %+v: r1 sent nothing, want no answer", h)
		}
	}
	if !strings.Contains(p.Detail, "between "+iniIP+" (hop 0) and "+r2West+" (hop 2)") || !strings.Contains(p.Detail, "Hop 1 sent no time-exceeded") {
		t.Errorf("detail %q: want the 0–2 bracket and hop 1 named as silent", p.Detail)
	}
	// The agent's reverse walk: r2 drops fragments from rsp on its way in (hop 1).
	wantPath(t, "reverse", rep.Trace.Reverse, false, "0 "+rspIP, "1 "+r2East)
	if t.Failed() {
		logTrace(t, rep)
	}
}

// TestTraceLabOneEnded traces without an agent: arrival is the far end's own answer (rsp's
// kernel answers ESP with protocol unreachable: nothing there listens for protocol 50).
func TestTraceLabOneEnded(t *testing.T) {
	testlab.RequireRoot(t)
	for _, c := range []struct {
		profile string
		id      probe.ID
		farEnd  bool
		last    string
		first   string
	}{
		{"clean", probe.ESP, true, "3 " + rspIP, "-"},
		{"frag-drop", probe.ESPFrag, false, "1 " + r1West, "2 " + r2West},
		{"esp-drop", probe.ESP, false, "1 " + r1West, "2 " + r2West},
		// r2's reset arrives with r2's TTL, not rsp's: blocked, not reached.
		{"tcp445-reset", probe.TCP(445), false, "2 " + r2West, "3 " + rspIP},
	} {
		t.Run(c.profile+"/"+string(c.id), func(t *testing.T) {
			t.Parallel()
			l := testlab.ForTest(t, testlab.Spec{Profile: c.profile, NoGateways: true})
			rep := traceFromIni(t, l, probe.TraceConfig{Target: l.Addr("rsp"), Probe: c.id})
			wantPath(t, "forward", rep.Trace.Forward, c.farEnd, c.last, c.first)
			if _, tcp := c.id.TCPPort(); tcp {
				if p := rep.Trace.Forward; p.RefusedBy == nil || p.RefusedBy.TTL != 2 || p.RefusedBy.Addr != r2West || rep.Results[0].Verdict != report.Blocked {
					t.Errorf("refused by %+v (%s), want blocked by r2 %s at hop 2", p.RefusedBy, rep.Results[0].Verdict, r2West)
				}
			}
			if rep.Trace.Reverse != nil {
				t.Errorf("reverse path without an agent")
			}
			if t.Failed() {
				logTrace(t, rep)
			}
		})
	}
}

// TestCheckLabTracesFailures: check fills the hop bracket of every failing result, in JSON
// and in the text, for about one timeout more; --no-trace (NoTrace) leaves them out.
func TestCheckLabTracesFailures(t *testing.T) {
	testlab.RequireRoot(t)
	F, R := report.Forward, report.Reverse // forward and reverse rows
	for _, c := range []struct {
		profile string
		probes  []probe.ID
		want    map[string][2]string // failing row → last_reached, first_missed
	}{
		{"frag-drop", []probe.ID{probe.IKE, probe.IKEFrag, probe.ESP, probe.ESPFrag, probe.ICMPLarge}, map[string][2]string{
			key(probe.IKEFrag, F): {"1 " + r1West, "2 " + r2West}, key(probe.ESPFrag, F): {"1 " + r1West, "2 " + r2West},
			key(probe.ICMPLarge, F): {"1 " + r1West, "2 " + r2West},
			key(probe.IKEFrag, R):   {"0 " + rspIP, "1 " + r2East}, key(probe.ESPFrag, R): {"0 " + rspIP, "1 " + r2East},
			key(probe.ICMPLarge, R): {"0 " + rspIP, "1 " + r2East},
		}},
		{"esp-drop", []probe.ID{probe.ESP, probe.ESPFrag, probe.NATT}, map[string][2]string{
			key(probe.ESP, F): {"1 " + r1West, "2 " + r2West}, key(probe.ESPFrag, F): {"1 " + r1West, "2 " + r2West},
			key(probe.ESP, R): {"2 " + r1East, "3 " + iniIP}, key(probe.ESPFrag, R): {"2 " + r1East, "3 " + iniIP},
		}},
	} {
		t.Run(c.profile, func(t *testing.T) {
			t.Parallel()
			l := testlab.ForTest(t, testlab.Spec{Profile: c.profile, NoGateways: true})
			agent := startAgent(t, l)
			cfg := probe.CheckConfig{Target: l.Addr("rsp"), Agent: agent, Key: labKey, Probes: c.probes}
			rep, took := checkFromIni(t, l, cfg)
			cfg.NoTrace = true
			bare, tookBare := checkFromIni(t, l, cfg)
			t.Logf("%s: check took %s, %s without the traces", c.profile, took.Round(time.Millisecond), tookBare.Round(time.Millisecond))
			var text strings.Builder
			rep.WriteText(&text, report.TextOptions{})
			seen := 0
			for _, r := range rep.Results {
				k := string(r.Direction) + " " + r.Probe
				w, failing := c.want[k]
				if !failing {
					if r.Verdict.Failed() {
						t.Errorf("%s: %s (%s), want pass", k, r.Verdict, r.Detail)
					}
					continue
				}
				seen++
				if r.Hop == nil || r.Hop.Bracket == nil {
					t.Errorf("%s: %s without a hop bracket (%s)", k, r.Verdict, r.Detail)
					continue
				}
				if got := [2]string{hopAt(r.Hop.LastReached), hopAt(r.Hop.FirstMissed)}; got != w {
					t.Errorf("%s: bracket %v, want %v (%s)", k, got, w, r.Detail)
				}
				between := r.Hop.Between()
				if !strings.Contains(r.Detail, between) || !strings.Contains(text.String(), between) {
					t.Errorf("%s: %q is not in the detail (%s) or the text", k, between, r.Detail)
				}
			}
			if seen != len(c.want) {
				t.Errorf("%d failing rows, want %d", seen, len(c.want))
			}
			var js strings.Builder
			rep.WriteJSON(&js)
			if !strings.Contains(js.String(), `"last_reached"`) || !strings.Contains(js.String(), `"first_missed"`) {
				t.Errorf("JSON without last_reached/first_missed:\n%s", js.String())
			}
			for _, r := range bare.Results {
				if r.Hop != nil && r.Hop.Bracket != nil {
					t.Errorf("NoTrace: %s %s has a bracket", r.Direction, r.Probe)
				}
			}
			if t.Failed() {
				t.Logf("text:\n%s\njson:\n%s", text.String(), js.String())
			}
		})
	}

}

// TestCheckLabTraceStateful: on stateful-udp the reverse UDP rows fail in the run (they meet
// r1 cold) but pass when traced afterwards (our forward UDP opened the flows): the trace must
// say so instead of inventing a bracket.
func TestCheckLabTraceStateful(t *testing.T) {
	testlab.RequireRoot(t)
	l := testlab.ForTest(t, testlab.Spec{Profile: "stateful-udp", NoGateways: true})
	agent := startAgent(t, l)
	rep, _ := checkFromIni(t, l, probe.CheckConfig{Target: l.Addr("rsp"), Agent: agent, Key: labKey, Probes: []probe.ID{probe.IKE, probe.NATT}})
	n := 0
	for _, r := range rep.Results {
		if r.Direction != report.Reverse {
			continue
		}
		n++
		if r.Verdict != report.Dropped {
			t.Errorf("reverse %s: %s (%s), want dropped", r.Probe, r.Verdict, r.Detail)
		}
		if r.Hop != nil && r.Hop.Bracket != nil {
			t.Errorf("reverse %s: bracket %s for a probe that passed when traced", r.Probe, r.Hop.Between())
		}
		if !strings.Contains(r.Evidence.Extra, "Traced after the run, it reached "+iniIP) || !strings.Contains(r.Evidence.Extra, "stateful firewall") {
			t.Errorf("reverse %s: extra %q does not say the trace passed and why it may", r.Probe, r.Evidence.Extra)
		}
	}
	if n != 2 {
		t.Errorf("%d reverse rows, want 2", n)
	}
}

// TestCheckLabTraceRateLimited: routers at Linux's default ICMP rate limit (a burst of 6
// time-exceeded toward one address, then 1 per second; the lab turns it off) on a path where
// r2 drops, on its way in, every forward probe but the small echo and the control channel (a
// scratch fault, plain nftables): 11 failing probes ask r1 for more time-exceeded than it
// will send. A bracket may widen; it must never leave r2's way in outside it.
func TestCheckLabTraceRateLimited(t *testing.T) {
	testlab.RequireRoot(t)
	l := testlab.ForTest(t, testlab.Spec{Profile: "clean", NoGateways: true})
	const scratch = "table ip ipsecpath_scratch {\n\tchain pre {\n\t\ttype filter hook prerouting priority -450; policy accept;\n" +
		"\t\tiifname \"west0\" ip frag-off & 0x3fff != 0 counter drop\n" +
		"\t\tiifname \"west0\" ip protocol { esp, ah, udp } counter drop\n" +
		"\t\tiifname \"west0\" tcp dport != 7500 counter drop\n\t}\n}\n"
	l.NftIn(t, "r2", scratch)
	for _, n := range []string{"r1", "r2"} {
		l.ExecIn(t, n, "sysctl", "-qw", "net.ipv4.icmp_ratelimit=1000")
	}
	agent := startAgent(t, l)
	rep, took := checkFromIni(t, l, probe.CheckConfig{Target: l.Addr("rsp"), Agent: agent, Key: labKey, Probes: labProbes})
	t.Logf("check took %s", took.Round(time.Millisecond))
	failing, exact := 0, 0
	for _, r := range rep.Results {
		if r.Direction != report.Forward {
			continue
		}
		if !r.Verdict.Failed() {
			t.Errorf("forward %s: %s (%s), want a failure", r.Probe, r.Verdict, r.Detail)
			continue
		}
		failing++
		if r.Hop == nil || r.Hop.Bracket == nil || r.Hop.LastReached == nil {
			t.Errorf("forward %s: no bracket (%s)", r.Probe, r.Detail)
			continue
		}
		last, first := r.Hop.LastReached, r.Hop.FirstMissed
		if last.TTL > 1 || (first != nil && first.TTL < 2) {
			t.Errorf("forward %s: bracket %s leaves r2's way in (hop 2) outside", r.Probe, r.Hop.Between())
		}
		if last.TTL == 1 && first != nil && first.TTL == 2 {
			exact++
		}
		t.Logf("forward %s: %s", r.Probe, r.Hop.Between())
	}
	t.Logf("%d of %d brackets exact (r1–r2), the others widened by r1's rate limit", exact, failing)
	if failing != len(labProbes) {
		t.Errorf("%d failing forward rows, want %d", failing, len(labProbes))
	}
}
