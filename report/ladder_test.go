package report

import (
	"bytes"
	"encoding/xml"
	"strings"
	"testing"
	"time"
)

func stoppedReport() *Report {
	r := New("203.0.113.10", "", time.Date(2026, 11, 29, 22, 0, 0, 0, time.UTC))
	r.Ladder = &Ladder{Target: "203.0.113.10", Rungs: []Rung{
		{Rung: "loopback", Addr: "127.0.0.1", Verdict: RungPass, Detail: "127.0.0.1 answers ICMP echo (0.1 ms)."},
		{Rung: "route", Addr: "203.0.113.10", Verdict: RungPass, Detail: "203.0.113.10 is reached via the default gateway 198.51.100.1 on interface wan0."},
		{Rung: "gateway", Addr: "198.51.100.1", Verdict: RungDead, Detail: "The default gateway 198.51.100.1 does not answer."},
	}, Stop: "The default gateway 198.51.100.1 does not answer: fix the underlay first.",
		Preflight: &Preflight{Notes: []string{"UDP 500 is bound on this host at 0.0.0.0:500, held by charon (pid 42)."}, FirewallChecked: true}}
	r.Finish(r.Started.Add(2 * time.Second))
	return r
}

// A check stopped by the ladder has no results: every form must still say it failed, and why.
func TestLadderStoppedRenders(t *testing.T) {
	r := stoppedReport()
	if !r.Failed() {
		t.Error("a stopped ladder must fail the report")
	}
	var b bytes.Buffer
	if err := r.WriteText(&b, TextOptions{}); err != nil {
		t.Fatal(err)
	}
	txt := b.String()
	for _, want := range []string{"gateway   198.51.100.1    dead", "fix the underlay first", "held by charon (pid 42)", "FAIL: the underlay is dead"} {
		if !strings.Contains(txt, want) {
			t.Errorf("text lacks %q:\n%s", want, txt)
		}
	}
	if strings.Contains(txt, "PASS") {
		t.Errorf("text says PASS:\n%s", txt)
	}
	b.Reset()
	if err := r.WriteMarkdown(&b); err != nil {
		t.Fatal(err)
	}
	md := b.String()
	for _, want := range []string{"FAIL (underlay dead)", "| gateway | `198.51.100.1` | **dead** |", "**The default gateway 198.51.100.1 does not answer: fix the underlay first.**"} {
		if !strings.Contains(md, want) {
			t.Errorf("markdown lacks %q:\n%s", want, md)
		}
	}
	b.Reset()
	if err := r.WriteJUnit(&b); err != nil {
		t.Fatal(err)
	}
	var js JUnitSuites
	if err := xml.Unmarshal(b.Bytes(), &js); err != nil {
		t.Fatal(err)
	}
	if js.Failures != 1 || len(js.Suites[0].Cases) != 1 || js.Suites[0].Cases[0].Failure == nil {
		t.Errorf("junit: %+v", js)
	}
	b.Reset()
	if err := r.WriteJSON(&b); err != nil {
		t.Fatal(err)
	}
	back, err := ReadJSON(&b)
	if err != nil || back.Ladder == nil || back.Ladder.Stop != r.Ladder.Stop || len(back.Ladder.Rungs) != 3 {
		t.Errorf("json round trip: %v %+v", err, back.Ladder)
	}
}

// A forward probe this host's own output chain drops certainly is an error naming the rule;
// an uncertain rule, an input hook, a reverse result or a pass keep their verdicts.
func TestLocalFirewallVerdicts(t *testing.T) {
	r := New("203.0.113.10", "", time.Now())
	r.Add(Result{Probe: "esp", Direction: Forward, Verdict: Dropped})
	r.Add(Result{Probe: "esp", Direction: Reverse, Verdict: Dropped})
	r.Add(Result{Probe: "ah", Direction: Forward, Verdict: Dropped})
	r.Add(Result{Probe: "ike", Direction: Forward, Verdict: Pass})
	r.Add(Result{Probe: "natt", Direction: Forward, Verdict: Dropped})
	r.LocalFirewallVerdicts() // no ladder: nothing to say
	if r.Results[0].Verdict != Dropped {
		t.Fatalf("without a ladder: %s", r.Results[0].Verdict)
	}
	r.Ladder = &Ladder{Preflight: &Preflight{Firewall: []FirewallRule{
		{Table: "inet fw", Chain: "out", Hook: "output", Rule: "ip protocol esp drop", Action: "drop", Probes: []string{"esp", "ike"}, Certain: true},
		{Table: "inet fw", Chain: "out", Hook: "output", Rule: "meta mark 1 drop", Action: "drop", Probes: []string{"ah"}},
		{Table: "inet fw", Chain: "in", Hook: "input", Rule: "udp dport 4500 drop", Action: "drop", Probes: []string{"natt"}, Certain: true},
	}}}
	r.LocalFirewallVerdicts()
	want := []Verdict{Error, Dropped, Dropped, Pass, Dropped}
	for i, w := range want {
		if r.Results[i].Verdict != w {
			t.Errorf("%s %s: %s, want %s", r.Results[i].Probe, r.Results[i].Direction, r.Results[i].Verdict, w)
		}
	}
	if d := r.Results[0].Detail; !strings.Contains(d, `This host's own firewall drops it before it leaves (nft inet fw chain out: "ip protocol esp drop")`) {
		t.Errorf("detail %q", d)
	}
	if x := r.Results[0].Evidence.Extra; !strings.Contains(x, "the probe's own verdict was dropped") {
		t.Errorf("evidence %q", x)
	}
	if r.Summary.Fail != 4 || r.Summary.Pass != 1 {
		t.Errorf("summary %+v", r.Summary)
	}
}
