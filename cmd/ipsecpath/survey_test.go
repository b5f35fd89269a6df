package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/ipsecpath/ipsecpath/report"
	"github.com/ipsecpath/ipsecpath/report/schematest"
	"github.com/ipsecpath/ipsecpath/testlab"
)

func TestSurveyBadInput(t *testing.T) {
	dir := t.TempDir()
	// Every target here is loopback: a validation that let a run through must not send
	// anything beyond this host.
	good := testlab.WriteFile(t, filepath.Join(dir, "t.csv"), []byte("127.0.0.1\n"), 0o644)
	bad := testlab.WriteFile(t, filepath.Join(dir, "bad.csv"), []byte("127.0.0.1\n224.0.0.5,,,mc\n"), 0o644)
	nokey := testlab.WriteFile(t, filepath.Join(dir, "nokey.csv"), []byte("127.0.0.1,127.0.0.1,"+filepath.Join(dir, "missing.key")+"\n"), 0o644)
	refusesAll(t, "survey", []usageCase{
		{"", nil, "--targets FILE is required"},
		{"", []string{"--targets", filepath.Join(dir, "none.csv")}, "no such file"},
		{"", []string{"--targets", bad}, "line 2: target 224.0.0.5: multicast address refused"},
		{"", []string{"--targets", nokey}, "line 1: key file"},
		{"", []string{"--targets", good, "--format", "junit"}, "unknown format \"junit\" for a survey"},
		{"", []string{"--targets", good, "--parallel", "0"}, "--parallel 0: want 1-64"},
		{"", []string{"--targets", good, "--pace", "0"}, "--pace 0: want at least 1"},
		{"", []string{"--targets", good, "--out-dir", good}, "is not a directory"},
		{"", []string{"--targets", good, "extra"}, "unexpected argument"},
	})
}

// TestSurveyTwoLabs: two labs side by side (frag-drop and ah-reject), an agent in each
// rsp, and an address inside the first lab that nothing answers. Both labs use the same
// addresses in their own namespaces, so no single namespace can reach both: the targets
// file names, per target, the namespace to check from (the netns column: each lab's ini),
// and one survey process (started in lab a's lan-a) runs the three checks at once. The matrix must show each lab's
// own fault and no other, the third target as silent; the three checks overlap in time (the
// survey takes about one check, not the sum); each target's report lands in --out-dir.
func TestSurveyTwoLabs(t *testing.T) {
	testlab.RequireRoot(t)
	la := testlab.ForTest(t, testlab.Spec{Profile: "frag-drop", NoGateways: true})
	lb := testlab.ForTest(t, testlab.Spec{Profile: "ah-reject", NoGateways: true})
	dir := t.TempDir()
	ka, kb := bytes.Repeat([]byte{5}, 32), bytes.Repeat([]byte{6}, 32)
	keyA, keyB := writeKey(t, dir, "a.key", ka, 0o600), writeKey(t, dir, "b.key", kb, 0o600)
	agentA, agentB := labAgent(t, la, ka), labAgent(t, lb, kb)
	// 192.0.2.100 is on the r1—r2 link of lab a, where no node has it. Left alone, r1 would
	// ARP for it and send host-unreachable after ~3 s, a race with the check's wait (seen
	// failing under load): a blackhole route on r1 discards it silently, so nothing at all
	// comes back, whatever the timing.
	if out, err := la.Exec(context.Background(), testlab.NodeR1, "ip", "route", "add", "blackhole", "192.0.2.100/32"); err != nil {
		t.Fatalf("r1: blackhole route: %v: %s", err, out)
	}
	targets := filepath.Join(dir, "targets.csv")
	csv := fmt.Sprintf("target,agent,key_file,label,netns\n%s,%s,%s,lab-a,%s\n%s,%s,%s,lab-b,%s\n192.0.2.100,,,nobody,%s\n",
		la.Addr("rsp"), agentA, keyA, la.Namespace("ini"),
		lb.Addr("rsp"), agentB, keyB, lb.Namespace("ini"),
		la.Namespace("ini"))
	if err := os.WriteFile(targets, []byte(csv), 0o644); err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(dir, "out")
	os.Mkdir(out, 0o755)
	// The survey runs as its own process inside lab a's lan-a, so that a target whose netns
	// were ignored would probe into lab a, never the host's network.
	bin := buildBinary(t)
	res := runBin(t, "ip", nil, "netns", "exec", la.Namespace("lan-a"), bin, "survey", "--targets", targets, "--format", "markdown", "--out-dir", out)
	code, stdout, stderr := res.code, res.stdout, res.stderr
	t.Logf("stdout:\n%s\nstderr:\n%s", stdout, stderr)
	if code != exitFail {
		t.Fatalf("exit %d, want 1 (two labs with faults and a silent target)", code)
	}
	if !strings.Contains(stderr, "survey: ") || !strings.Contains(stderr, "targets done") {
		t.Errorf("no progress on stderr: %q", stderr)
	}
	b, err := os.ReadFile(filepath.Join(out, "survey.json"))
	if err != nil {
		t.Fatal(err)
	}
	schematest.Validate(t, "survey", b)
	var s report.Survey
	if err := json.Unmarshal(b, &s); err != nil {
		t.Fatal(err)
	}
	if len(s.Targets) != 3 {
		t.Fatalf("%d targets in survey.json", len(s.Targets))
	}
	verdicts := func(tg report.SurveyTarget) map[string]report.Verdict {
		m := map[string]report.Verdict{}
		if tg.Report != nil {
			for _, r := range tg.Report.Results {
				m[r.Probe+" "+string(r.Direction)] = r.Verdict
			}
		}
		return m
	}
	a, bb, silent := s.Targets[0], s.Targets[1], s.Targets[2]
	if a.Status != report.TargetFail || bb.Status != report.TargetFail || silent.Status != report.TargetSilent {
		t.Fatalf("statuses %s/%s/%s (errors %q %q), want fail/fail/silent", a.Status, bb.Status, silent.Status, a.Error, bb.Error)
	}
	va, vb := verdicts(a), verdicts(bb)
	for k, want := range map[string]report.Verdict{
		"ike-frag forward": report.FragDropped, "esp-frag reverse": report.FragDropped, "ah forward": report.Pass, "ike forward": report.Pass,
	} {
		if va[k] != want {
			t.Errorf("lab-a (frag-drop) %s: %s, want %s", k, va[k], want)
		}
	}
	for k, want := range map[string]report.Verdict{
		"ah forward": report.Blocked, "ike-frag forward": report.Pass, "esp-frag reverse": report.Pass,
	} {
		if vb[k] != want {
			t.Errorf("lab-b (ah-reject) %s: %s, want %s", k, vb[k], want)
		}
	}
	if !strings.Contains(stdout, "| lab-a 203.0.113.10 | → |") || !strings.Contains(stdout, "SILENT") {
		t.Errorf("markdown matrix lacks the rows:\n%s", stdout)
	}
	// The checks overlapped: some instant lies inside all three runs.
	var latestStart, earliestEnd time.Time
	var sum int64
	for i, tg := range s.Targets {
		r := tg.Report
		end := r.Started.Add(time.Duration(r.DurationMs) * time.Millisecond)
		if i == 0 || r.Started.After(latestStart) {
			latestStart = r.Started
		}
		if i == 0 || end.Before(earliestEnd) {
			earliestEnd = end
		}
		sum += r.DurationMs
	}
	t.Logf("survey took %d ms; the three checks %d ms together", s.DurationMs, sum)
	if !latestStart.Before(earliestEnd) {
		t.Errorf("the checks did not run at once: the last started at %s, the first ended at %s", latestStart, earliestEnd)
	}
	for _, name := range []string{"lab-a.json", "lab-b.json", "nobody.json"} {
		if data, err := os.ReadFile(filepath.Join(out, name)); err == nil {
			schematest.Validate(t, "check", data)
		}
		f, err := os.Open(filepath.Join(out, name))
		if err != nil {
			t.Errorf("--out-dir: %v", err)
			continue
		}
		if _, err := report.ReadJSON(f); err != nil {
			t.Errorf("%s: %v", name, err)
		}
		f.Close()
	}
	// Kept for diff: the two labs' reports differ exactly where their faults are.
	code, dout, derr := runCLI(t, "diff", filepath.Join(out, "lab-a.json"), filepath.Join(out, "lab-b.json"))
	if code != exitFail || !strings.Contains(dout, "ah") {
		t.Errorf("diff lab-a lab-b: exit %d, %s %s", code, dout, derr)
	}
}

// TestSurveyOutDir: reports go to DIR/<label or address>.json, names made unique and safe
// for a file system, and a symbolic link where a report goes is refused, not followed.
func TestSurveyOutDir(t *testing.T) {
	dir := t.TempDir()
	rep := func(target string) *report.Report {
		r := report.New(target, "", time.Now())
		r.Add(report.Result{Probe: "ike", Direction: report.Forward, Verdict: report.Pass})
		return r
	}
	s := &report.Survey{Tool: report.Tool, Kind: "survey", Targets: []report.SurveyTarget{
		{Label: "hq/west", Target: "192.0.2.1", Report: rep("192.0.2.1")},
		{Label: "hq/west", Target: "192.0.2.2", Report: rep("192.0.2.2")},
		{Target: "192.0.2.3", Report: rep("192.0.2.3")},
		{Label: "survey", Target: "192.0.2.4", Report: rep("192.0.2.4")},
		{Label: "down", Target: "192.0.2.5", Status: report.TargetError, Error: "no route"},
	}}
	if err := writeSurveyDir(dir, s); err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, tg := range s.Targets {
		got = append(got, filepath.Base(tg.File))
	}
	if want := "hq_west.json hq_west-2.json 192.0.2.3.json survey-2.json ."; strings.Join(got, " ") != want {
		t.Errorf("files %q, want %q", strings.Join(got, " "), want)
	}
	if _, err := os.Stat(filepath.Join(dir, "survey.json")); err != nil {
		t.Error(err)
	}
	victim := filepath.Join(t.TempDir(), "victim")
	os.WriteFile(victim, []byte("keep"), 0o644)
	dir2 := t.TempDir()
	if err := os.Symlink(victim, filepath.Join(dir2, "192.0.2.3.json")); err != nil {
		t.Fatal(err)
	}
	s.Targets = s.Targets[2:3]
	if err := writeSurveyDir(dir2, s); err == nil || !strings.Contains(err.Error(), "192.0.2.3.json") {
		t.Errorf("a symlink where a report goes: %v, want an error naming it", err)
	}
	if b, _ := os.ReadFile(victim); string(b) != "keep" {
		t.Errorf("the symlink's target was overwritten: %q", b)
	}
}

// TestSurveyLoopbackFormats: a survey of this host's loopback (nothing leaves it) prints
// JSON that validates against the survey schema (runCLI checks it) and an HTML page with
// its matrix row.
func TestSurveyLoopbackFormats(t *testing.T) {
	testlab.RequireRoot(t)
	targets := filepath.Join(t.TempDir(), "t.csv")
	if err := os.WriteFile(targets, []byte("target,label,probes\n127.0.0.1,self,ike\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	code, out, errs := runCLI(t, "survey", "--targets", targets, "--timeout", "1s", "--json")
	var s report.Survey
	if err := json.Unmarshal([]byte(out), &s); (code != exitOK && code != exitFail) || err != nil || errs != "" ||
		s.Kind != "survey" || len(s.Targets) != 1 || s.Targets[0].Report == nil {
		t.Fatalf("survey --json: exit %d, stderr %q, err %v\n%s", code, errs, err, out)
	}
	code, out, errs = runCLI(t, "survey", "--targets", targets, "--timeout", "1s", "--format", "html")
	if (code != exitOK && code != exitFail) || !strings.HasPrefix(out, "<!DOCTYPE html>") ||
		!strings.Contains(out, `<tr class="target" data-target="127.0.0.1" data-direction="forward"`) ||
		!strings.Contains(out, `<td class="probe">self 127.0.0.1</td>`) {
		t.Errorf("survey --format html: exit %d, stderr %q\n%s", code, errs, out)
	}
}
