package report

import (
	"bytes"
	"encoding/json"
	"reflect"
	"strings"
	"testing"
	"time"
)

// run builds a report from "probe/direction=verdict" entries ("f" forward, "r" reverse).
func run(entries ...string) *Report {
	r := New("203.0.113.10", "203.0.113.10:7500", time.Date(2026, 11, 23, 9, 0, 0, 0, time.UTC))
	for _, e := range entries {
		key, v, _ := strings.Cut(e, "=")
		probe, d, _ := strings.Cut(key, "/")
		dir := Forward
		if d == "r" {
			dir = Reverse
		}
		r.Add(Result{Probe: probe, Direction: dir, Verdict: Verdict(v), Detail: e})
	}
	return r
}

// brief lists changes as "probe/direction before>after".
func brief(cs []Change) []string {
	out := []string{}
	for _, c := range cs {
		out = append(out, c.Probe+"/"+string(c.Direction)[:1]+" "+string(c.Before)+">"+string(c.After))
	}
	return out
}

func TestDiff(t *testing.T) {
	cases := []struct {
		name                                      string
		before, after                             *Report
		regressions, fixes, changed, onlyB, onlyA []string
		unchanged                                 int
		regression                                bool
	}{
		{name: "same", before: run("ike/f=pass", "esp/f=dropped"), after: run("ike/f=pass", "esp/f=dropped"), unchanged: 2},
		{name: "pass to each failed verdict is a regression",
			before:      run("a/f=pass", "b/f=pass", "c/f=pass", "d/f=pass", "e/f=pass"),
			after:       run("a/f=dropped", "b/f=blocked", "c/f=frag-dropped", "d/f=partial", "e/f=error"),
			regressions: []string{"a/f pass>dropped", "b/f pass>blocked", "c/f pass>frag-dropped", "d/f pass>partial", "e/f pass>error"},
			regression:  true},
		{name: "failed to pass is a fix", before: run("esp-frag/f=frag-dropped", "ah/r=blocked"), after: run("esp-frag/f=pass", "ah/r=pass"),
			fixes: []string{"esp-frag/f frag-dropped>pass", "ah/r blocked>pass"}},
		{name: "other changes", before: run("a/f=dropped", "b/f=pass", "c/f=skipped", "d/f=skipped"),
			after:   run("a/f=blocked", "b/f=skipped", "c/f=dropped", "d/f=pass"),
			changed: []string{"a/f dropped>blocked", "b/f pass>skipped", "c/f skipped>dropped", "d/f skipped>pass"}},
		{name: "directions are matched apart", before: run("ike/f=pass", "ike/r=pass"), after: run("ike/r=dropped", "ike/f=pass"),
			regressions: []string{"ike/r pass>dropped"}, unchanged: 1, regression: true},
		{name: "in one run only", before: run("tcp:445/f=pass", "ike/f=pass"), after: run("ike/f=pass", "tcp:1792/f=dropped"),
			onlyB: []string{"tcp:445/f pass>"}, onlyA: []string{"tcp:1792/f >dropped"}, unchanged: 1},
		{name: "repeated results meet by occurrence", before: run("s/r=pass", "s/r=pass"), after: run("s/r=pass", "s/r=dropped", "s/r=dropped"),
			regressions: []string{"s/r pass>dropped"}, onlyA: []string{"s/r >dropped"}, unchanged: 1, regression: true},
		{name: "nil before", before: nil, after: run("ike/f=pass"), onlyA: []string{"ike/f >pass"}},
		{name: "nil after", before: run("ike/f=pass"), after: nil, onlyB: []string{"ike/f pass>"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			d := Diff(c.before, c.after)
			for _, x := range []struct {
				what      string
				got, want []string
			}{{"regressions", brief(d.Regressions), c.regressions}, {"fixes", brief(d.Fixes), c.fixes},
				{"changed", brief(d.Changed), c.changed}, {"only before", brief(d.OnlyBefore), c.onlyB},
				{"only after", brief(d.OnlyAfter), c.onlyA}} {
				if x.want == nil {
					x.want = []string{}
				}
				if !reflect.DeepEqual(x.got, x.want) {
					t.Errorf("%s = %q, want %q", x.what, x.got, x.want)
				}
			}
			if d.Unchanged != c.unchanged || d.Regression != c.regression {
				t.Errorf("unchanged %d regression %v, want %d %v", d.Unchanged, d.Regression, c.unchanged, c.regression)
			}
			for _, ch := range append(append([]Change{}, d.Regressions...), d.Fixes...) {
				if ch.Detail == "" || !strings.Contains(ch.Detail, string(ch.After)) {
					t.Errorf("change %+v does not carry the later run's detail", ch)
				}
			}
		})
	}
}

func TestDiffPMTU(t *testing.T) {
	hop := &Hop{TTL: 2, Addr: "192.0.2.66"}
	cases := []struct {
		name       string
		b, a       *PMTU
		changes    int
		regression bool
	}{
		{"same", &PMTU{Forward: &PathMTU{MTU: 1500}}, &PMTU{Forward: &PathMTU{MTU: 1500, Probes: 7}}, 0, false},
		{"black hole appears", &PMTU{Forward: &PathMTU{MTU: 1500}}, &PMTU{Forward: &PathMTU{MTU: 1400, Blackhole: true, Hop: hop}}, 1, true},
		{"black hole measured for the first time", nil, &PMTU{Reverse: &PathMTU{MTU: 1400, Blackhole: true}}, 1, true},
		{"black hole goes away", &PMTU{Forward: &PathMTU{MTU: 1400, Blackhole: true}}, &PMTU{Forward: &PathMTU{MTU: 1500}}, 1, false},
		{"smaller MTU, ICMP works", &PMTU{Forward: &PathMTU{MTU: 1500}}, &PMTU{Forward: &PathMTU{MTU: 1400}}, 1, false},
		{"black hole moves", &PMTU{Forward: &PathMTU{MTU: 1400, Blackhole: true, Hop: hop}},
			&PMTU{Forward: &PathMTU{MTU: 1400, Blackhole: true, Hop: &Hop{TTL: 1, Addr: "198.51.100.1"}}}, 1, false},
		{"no longer measured", &PMTU{Forward: &PathMTU{MTU: 1500}, Reverse: &PathMTU{MTU: 1500}}, &PMTU{Forward: &PathMTU{MTU: 1500}}, 1, false},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			b, a := run("ike/f=pass"), run("ike/f=pass")
			b.PMTU, a.PMTU = c.b, c.a
			d := Diff(b, a)
			if len(d.PMTU) != c.changes || d.Regression != c.regression {
				t.Errorf("pmtu changes %+v, regression %v; want %d changes, regression %v", d.PMTU, d.Regression, c.changes, c.regression)
			}
		})
	}
}

func TestDiffText(t *testing.T) {
	var buf bytes.Buffer
	d := Diff(loadReport(t, "one-ended"), loadReport(t, "frag-drop"))
	if err := d.WriteText(&buf); err != nil {
		t.Fatal(err)
	}
	checkGolden(t, "diff.text.golden", buf.Bytes())

	before := run("ike/f=pass", "esp/f=pass", "ah/f=dropped")
	after := run("ike/f=pass", "esp/f=dropped", "ah/f=pass")
	after.Results[1].Hop = &Hop{TTL: 2, Addr: "192.0.2.66"}
	after.Results[1].Detail = "ESP never reached the agent."
	buf.Reset()
	d = Diff(before, after)
	if err := d.WriteText(&buf); err != nil {
		t.Fatal(err)
	}
	want := `before: target 203.0.113.10, started 2026-11-23 09:00:00 UTC, 1 failed, 2 passed, 0 skipped
after:  target 203.0.113.10, started 2026-11-23 09:00:00 UTC, 1 failed, 2 passed, 0 skipped

REGRESSIONS (passed before, fail now)
  esp  forward  pass -> dropped  ESP never reached the agent. [at hop 2 (192.0.2.66)]

FIXES (failed before, pass now)
  ah  forward  dropped -> pass  ah/f=pass

REGRESSION: 1 regression, 1 fix, 1 unchanged
`
	if buf.String() != want {
		t.Errorf("diff text:\n%s\nwant:\n%s", buf.String(), want)
	}
}

func TestDiffJSON(t *testing.T) {
	d := Diff(loadReport(t, "one-ended"), loadReport(t, "frag-drop"))
	var buf bytes.Buffer
	if err := d.WriteJSON(&buf); err != nil {
		t.Fatal(err)
	}
	var back DiffResult
	if err := json.Unmarshal(buf.Bytes(), &back); err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(back, d) {
		t.Errorf("diff JSON round trip changed it:\n got %+v\nwant %+v", back, d)
	}
	var raw map[string]any
	if err := json.Unmarshal(buf.Bytes(), &raw); err != nil {
		t.Fatal(err)
	}
	for _, k := range []string{"before", "after", "regression", "regressions", "fixes", "changed", "only_before", "only_after", "unchanged", "pmtu_changes"} {
		if _, ok := raw[k]; !ok {
			t.Errorf("diff JSON lacks %q", k)
		}
	}
	if raw["regression"] != true {
		t.Errorf("regression = %v, want true (a PMTU black hole appeared)", raw["regression"])
	}
}
