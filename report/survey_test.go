package report

import (
	"bytes"
	"strings"
	"testing"
	"time"
)

func surveyFixture() *Survey {
	seen := true
	a := New("203.0.113.10", "203.0.113.10:7500", time.Date(2026, 11, 29, 12, 0, 0, 0, time.UTC))
	a.Add(Result{Probe: "ike", Direction: Forward, Verdict: Pass, Evidence: Evidence{AgentSaw: &seen}})
	a.Add(Result{Probe: "ike-frag", Direction: Forward, Verdict: FragDropped, Detail: "A device drops IP fragments.", Hop: &Hop{TTL: 2, Addr: "192.0.2.66"}})
	a.Add(Result{Probe: "ike", Direction: Reverse, Verdict: Pass})
	a.Add(Result{Probe: "ike-frag", Direction: Reverse, Verdict: FragDropped, Detail: "Fragments die on the way back."})
	b := New("203.0.113.10", "", time.Now())
	b.Add(Result{Probe: "ike", Direction: Forward, Verdict: Pass, Evidence: Evidence{Answer: "ike-sa-init"}})
	b.Add(Result{Probe: "esp", Direction: Forward, Verdict: Skipped})
	silent := New("192.0.2.100", "", time.Now())
	silent.Add(Result{Probe: "ike", Direction: Forward, Verdict: Dropped})
	silent.Add(Result{Probe: "esp", Direction: Forward, Verdict: Skipped})
	s := &Survey{Tool: Tool, Version: Version, Kind: "survey", Parallel: 4, Pace: 400, TargetPace: 100, DurationMs: 2300,
		Targets: []SurveyTarget{
			{Label: "lab-a", Target: "203.0.113.10", Agent: "203.0.113.10:7500", Report: a},
			{Label: "lab-b", Target: "203.0.113.10", Report: b},
			{Label: "nobody", Target: "192.0.2.100", Report: silent},
			{Target: "198.51.100.99", Status: TargetError, Error: "agent 198.51.100.99:7500: connection refused"},
		}}
	for i := range s.Targets {
		if s.Targets[i].Report != nil {
			s.Targets[i].Status = StatusOf(s.Targets[i].Report)
		}
	}
	return s
}

func TestSurveyStatus(t *testing.T) {
	s := surveyFixture()
	want := []TargetStatus{TargetFail, TargetPass, TargetSilent, TargetError}
	for i, tg := range s.Targets {
		if tg.Status != want[i] {
			t.Errorf("%s: %s, want %s", tg.Name(), tg.Status, want[i])
		}
	}
	// A dropped probe next to an ICMP error is not silence: a device answered.
	r := New("192.0.2.1", "", time.Now())
	r.Add(Result{Probe: "ike", Direction: Forward, Verdict: Dropped})
	r.Add(Result{Probe: "esp", Direction: Forward, Verdict: Error, Evidence: Evidence{ICMP: &ICMP{Type: 3, Code: 1, From: "192.0.2.65"}}})
	if StatusOf(r) != TargetFail {
		t.Errorf("an ICMP error came back: %s, want fail", StatusOf(r))
	}
	// Only skipped probes: nothing was asked, so not silent.
	r = New("192.0.2.1", "", time.Now())
	r.Add(Result{Probe: "esp", Direction: Forward, Verdict: Skipped})
	if StatusOf(r) != TargetPass {
		t.Errorf("all skipped: %s, want pass", StatusOf(r))
	}
}

func TestSurveyText(t *testing.T) {
	var b bytes.Buffer
	if err := surveyFixture().WriteText(&b); err != nil {
		t.Fatal(err)
	}
	out := b.String()
	for _, want := range []string{
		"4 targets, 2.30 s: 1 pass, 1 fail, 1 silent, 1 error",
		"lab-a 203.0.113.10  →    pass   FRAG      -      FAIL: 2 failed",
		"                    ←    pass   FRAG      -\n",
		"lab-b 203.0.113.10  →    pass   -         skip   pass",
		"nobody 192.0.2.100  →    DROP   -         skip   SILENT",
		"lab-a 203.0.113.10: ike-frag reverse frag-dropped: Fragments die on the way back.",
		"lab-a 203.0.113.10: ike-frag forward frag-dropped: A device drops IP fragments. [at ",
		"198.51.100.99: the check could not run: agent 198.51.100.99:7500: connection refused",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("text lacks %q:\n%s", want, out)
		}
	}
	b.Reset()
	if err := surveyFixture().WriteMarkdown(&b); err != nil {
		t.Fatal(err)
	}
	md := b.String()
	for _, want := range []string{
		"| Target | Dir | `ike` | `ike-frag` | `esp` | Status |\n|---|---|---|---|---|---|\n",
		"| lab-a 203.0.113.10 | → | pass | **FRAG** | - | FAIL: 2 failed |",
		"|  | ← | pass | **FRAG** | - |  |",
	} {
		if !strings.Contains(md, want) {
			t.Errorf("markdown lacks %q:\n%s", want, md)
		}
	}
}
