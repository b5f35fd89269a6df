package survey

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ipsecpath/ipsecpath/probe"
	"github.com/ipsecpath/ipsecpath/report"
)

func TestParseTargetsCSV(t *testing.T) {
	in := `# sites
target,label,agent,key_file,probes
203.0.113.10,hq,203.0.113.10,/k,"ike,ike-frag"

198.51.100.7,branch 7,,,ike esp;tcp
`
	got, err := ParseTargets("sites.csv", []byte(in), []int{445})
	if err != nil {
		t.Fatal(err)
	}
	want := []Target{
		{Addr: netip.MustParseAddr("203.0.113.10"), Agent: "203.0.113.10:7500", KeyFile: "/k", Label: "hq", Probes: []probe.ID{"ike", "ike-frag"}, Line: 3},
		{Addr: netip.MustParseAddr("198.51.100.7"), Label: "branch 7", Probes: []probe.ID{"ike", "esp", "tcp:445"}, Line: 5},
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("got %+v\nwant %+v", got, want)
	}
	// Without a header the columns are positional; a bare address list works.
	got, err = ParseTargets("list", []byte("192.0.2.1\n192.0.2.2,,,two,,ipl-x-ini\n"), nil)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 2 || got[1].Label != "two" || got[1].Netns != "ipl-x-ini" || got[0].Probes != nil {
		t.Errorf("positional: %+v", got)
	}
}

func TestParseTargetsYAML(t *testing.T) {
	in := `targets:
  - target: 203.0.113.10
    agent: 203.0.113.10:7600
    key_file: /k
    label: hq
  - {target: 198.51.100.7, probes: [ike, natt], netns: vrf-blue}
`
	got, err := ParseTargets("sites.yaml", []byte(in), nil)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 2 || got[0].Agent != "203.0.113.10:7600" || got[0].Line != 2 ||
		!reflect.DeepEqual(got[1].Probes, []probe.ID{"ike", "natt"}) || got[1].Netns != "vrf-blue" {
		t.Errorf("got %+v", got)
	}
	// a top-level list, detected by content
	got, err = ParseTargets("sites", []byte("- target: 192.0.2.1\n"), nil)
	if err != nil || len(got) != 1 {
		t.Errorf("top-level list: %+v, %v", got, err)
	}
}

func TestParseTargetsErrors(t *testing.T) {
	for _, tc := range []struct{ name, in, want string }{
		{"x.csv", "203.0.113.300\n", "line 1: target \"203.0.113.300\" is not an IPv4 address"},
		{"x.csv", "192.0.2.1\n224.0.0.1\n", "line 2: target 224.0.0.1: multicast address refused"},
		{"x.csv", "255.255.255.255\n", "broadcast"},
		{"x.csv", "192.0.2.1,192.0.2.1\n", "agent without key_file"},
		{"x.csv", "192.0.2.1,192.0.2.9,k\n", "not on the target"},
		{"x.csv", "192.0.2.1,,,,bogus\n", "unknown probe \"bogus\""},
		{"x.csv", "192.0.2.1,,,,,../etc\n", "not a namespace name"},
		{"x.csv", "target,colour\n", "unknown column \"colour\""},
		{"x.csv", "192.0.2.1,,,,,,extra\n", "at most 6"},
		{"x.csv", "# nothing\n", "no targets"},
		{"x.yaml", "targets:\n  - {target: 192.0.2.1, colour: red}\n", "unknown key \"colour\""},
		{"x.yaml", "hosts: []\n", "unknown key \"hosts\""},
		{"x.yaml", "targets: [1, 2]\n", "want a mapping"},
	} {
		_, err := ParseTargets(tc.name, []byte(tc.in), nil)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%q: got %v, want an error with %q", tc.in, err, tc.want)
		}
	}
}

func FuzzParseTargets(f *testing.F) {
	f.Add("x.csv", "target,label\n203.0.113.10,hq\n")
	f.Add("x.yaml", "targets:\n  - {target: 198.51.100.7, probes: [ike]}\n")
	f.Add("x", "- target: 192.0.2.1\n  agent: 192.0.2.1\n  key_file: k\n")
	f.Fuzz(func(t *testing.T, name, in string) {
		ts, err := ParseTargets(name, []byte(in), []int{445})
		if err != nil {
			return
		}
		for _, tg := range ts {
			if probe.CheckTarget(tg.Addr) != nil || (tg.Agent == "") != (tg.KeyFile == "") {
				t.Fatalf("accepted a bad target %+v", tg)
			}
		}
	})
}

func TestPlan(t *testing.T) {
	ts := make([]Target, 20)
	for _, tc := range []struct {
		parallel, pace, n int
		wantPar, wantPer  int
		err               bool
	}{
		{0, 0, 20, 8, 50, false},   // defaults: 400/8
		{4, 100, 20, 4, 25, false}, // shared equally
		{8, 2000, 20, 8, 100, false},
		{8, 400, 2, 2, 100, false}, // two targets: two at once, each capped at check's default
		{64, 10, 20, 0, 0, true},   // 10/20 < 1 per check
		{65, 400, 20, 0, 0, true},
	} {
		par, _, per, err := Plan(Config{Targets: ts[:tc.n], Parallel: tc.parallel, Pace: tc.pace})
		if (err != nil) != tc.err || (!tc.err && (par != tc.wantPar || per != tc.wantPer)) {
			t.Errorf("Plan(parallel %d, pace %d, %d targets) = %d, %d, %v; want %d, %d, err %v", tc.parallel, tc.pace, tc.n, par, per, err, tc.wantPar, tc.wantPer, tc.err)
		}
		if err == nil && par*per > max(tc.pace, DefaultPace*boolInt(tc.pace == 0)) {
			t.Errorf("running checks may send %d packets/s together, pace %d", par*per, tc.pace)
		}
	}
}

func boolInt(b bool) int {
	if b {
		return 1
	}
	return 0
}

// fakeRep is a report with the given forward verdicts (probe=verdict).
func fakeRep(target string, vs ...string) *report.Report {
	r := report.New(target, "", time.Now())
	for _, v := range vs {
		p, verdict, _ := strings.Cut(v, "=")
		res := report.Result{Probe: p, Direction: report.Forward, Verdict: report.Verdict(verdict)}
		if verdict == "pass" {
			res.Evidence.Answer = "echo-reply"
		}
		r.Add(res)
	}
	return r
}

// TestRunParallel: the checks really overlap (each waits until parallel of them run at
// once; run one after the other, it would wait forever), never more than parallel at
// once, each with its share of the pace, and the rows keep the file's order with the
// right status.
func TestRunParallel(t *testing.T) {
	addrs := []string{"192.0.2.1", "192.0.2.2", "192.0.2.3", "192.0.2.4"}
	var ts []Target
	for i, a := range addrs {
		ts = append(ts, Target{Addr: netip.MustParseAddr(a), Label: fmt.Sprint("t", i)})
	}
	var mu sync.Mutex
	running, most := 0, 0
	arrived := make(chan struct{}, len(addrs))
	release := make(chan struct{})
	var paces []int
	check := func(ctx context.Context, cfg probe.CheckConfig) (*report.Report, error) {
		mu.Lock()
		running++
		most = max(most, running)
		paces = append(paces, cfg.Pace)
		mu.Unlock()
		arrived <- struct{}{}
		select {
		case <-release:
		case <-ctx.Done():
			return nil, ctx.Err()
		}
		mu.Lock()
		running--
		mu.Unlock()
		switch cfg.Target.String() {
		case "192.0.2.2":
			return fakeRep("192.0.2.2", "ike=pass", "ike-frag=frag-dropped"), nil
		case "192.0.2.3":
			return fakeRep("192.0.2.3", "ike=dropped", "esp=skipped"), nil
		case "192.0.2.4":
			return nil, errors.New("agent 192.0.2.4:7500: connection refused")
		}
		return fakeRep(cfg.Target.String(), "ike=pass"), nil
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	go func() {
		for range 2 { // the first two must run at once before either is let go
			<-arrived
		}
		close(release)
	}()
	var progress []Progress
	s, err := Run(ctx, Config{Targets: ts, Parallel: 2, Pace: 60, Check: check,
		Progress: func(p Progress) { progress = append(progress, p) }})
	if err != nil {
		t.Fatal(err)
	}
	if most != 2 {
		t.Errorf("at most %d checks ran at once, want 2", most)
	}
	for _, p := range paces {
		if p != 30 {
			t.Errorf("a check got pace %d, want 60/2 = 30", p)
		}
	}
	want := []report.TargetStatus{report.TargetPass, report.TargetFail, report.TargetSilent, report.TargetError}
	for i, row := range s.Targets {
		if row.Target != addrs[i] || row.Status != want[i] {
			t.Errorf("row %d: %s %s, want %s %s", i, row.Target, row.Status, addrs[i], want[i])
		}
	}
	if s.Summary != (report.SurveySummary{Targets: 4, Pass: 1, Fail: 1, Silent: 1, Error: 1}) || !s.Failed() {
		t.Errorf("summary %+v", s.Summary)
	}
	if last := progress[len(progress)-1]; last.Done != 4 || last.Failed != 3 || len(last.Running) != 0 {
		t.Errorf("last progress %+v", last)
	}
}

func TestRunKeyFileFirst(t *testing.T) {
	called := false
	_, err := Run(context.Background(), Config{
		Targets: []Target{{Addr: netip.MustParseAddr("192.0.2.1")}, {Addr: netip.MustParseAddr("192.0.2.2"), Agent: "192.0.2.2:7500", KeyFile: "/nonexistent", Line: 2}},
		Check:   func(context.Context, probe.CheckConfig) (*report.Report, error) { called = true; return nil, nil },
	})
	if err == nil || !strings.Contains(err.Error(), "line 2") || called {
		t.Errorf("a bad key file: err %v, check called %v; want a line 2 error before any check", err, called)
	}
}
