package main

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/ipsecpath/ipsecpath/report"
	"github.com/ipsecpath/ipsecpath/testlab"
)

// TestStatefulBadInput: every usage mistake is refused before a packet leaves.
func TestStatefulBadInput(t *testing.T) {
	dir := t.TempDir()
	key := writeKey(t, dir, "key", bytes.Repeat([]byte{7}, 32), 0o600)
	open := writeKey(t, dir, "open", bytes.Repeat([]byte{7}, 32), 0o644)
	agent := []string{"--agent", "192.0.2.1:7500", "--key-file", key}
	refusesAll(t, "stateful", []usageCase{
		{"no target", agent, "want one TARGET"},
		{"bad address", append([]string{"203.0.113.300"}, agent...), "is not an IPv4 address"},
		{"multicast", append([]string{"224.0.0.5"}, agent...), "multicast address refused"},
		{"no agent", []string{"192.0.2.1"}, "needs --agent and --key-file"},
		{"no key", []string{"192.0.2.1", "--agent", "192.0.2.1"}, "needs --agent and --key-file"},
		{"unknown protocol", append([]string{"192.0.2.1", "--protocols", "udp500,gre"}, agent...), `unknown protocol "gre"`},
		{"empty protocols", append([]string{"192.0.2.1", "--protocols", ""}, agent...), "--protocols"},
		{"max idle too short", append([]string{"192.0.2.1", "--max-idle", "1s"}, agent...), "--max-idle 1s"},
		{"max idle too long", append([]string{"192.0.2.1", "--max-idle", "3h"}, agent...), "--max-idle 3h"},
		{"bad format", append([]string{"192.0.2.1", "--format", "yaml"}, agent...), "unknown format"},
		{"world-readable key", []string{"192.0.2.1", "--agent", "192.0.2.1", "--key-file", open}, "chmod 600"},
		{"agent elsewhere", []string{"192.0.2.1", "--agent", "192.0.2.2:7500", "--key-file", key}, "the agent must run on the target"},
	})
}

func TestStatefulHelp(t *testing.T) {
	code, out, _ := runCLI(t, "stateful", "--help")
	if code != exitOK {
		t.Fatalf("exit %d", code)
	}
	for _, w := range []string{"How to read the result", "none up to", "address pair", "--max-idle", "Exit status", "Ctrl-C"} {
		if !strings.Contains(out, w) {
			t.Errorf("help lacks %q", w)
		}
	}
	if i := strings.LastIndex(out, "Examples:"); i < 0 || strings.Contains(out[i:], "Flags:") {
		t.Errorf("help does not end with examples:\n%s", out)
	}
}

// TestStatefulCLILab runs the command in the stateful-udp lab: stopped midway (what Ctrl-C
// does to main's context) it prints what it knows, marked interrupted, and exits 2; run to
// the end it finds r1's 10 s UDP timer, exits 1 and writes --out.
func TestStatefulCLILab(t *testing.T) {
	testlab.RequireRoot(t)
	l := testlab.ForTest(t, testlab.Spec{Profile: "stateful-udp", NoGateways: true})
	dir := t.TempDir()
	agent, key := labAgentKey(t, l, dir)
	rsp := l.Addr("rsp").String()

	var out, errb bytes.Buffer
	var code int
	ctx, cancel := context.WithTimeout(context.Background(), 6*time.Second)
	defer cancel()
	l.Do("ini", func() error {
		code = run(ctx, []string{"stateful", rsp, "--agent", agent, "--key-file", key, "--protocols", "udp500,esp", "--max-idle", "30s", "--json"}, &out, &errb)
		return nil
	})
	if code != exitUsage || !strings.Contains(errb.String(), "interrupted") {
		t.Errorf("interrupted run: exit %d, stderr %q; want 2 and a line saying so", code, errb.String())
	}
	var rep report.Report
	if err := json.Unmarshal(out.Bytes(), &rep); err != nil {
		t.Fatalf("interrupted run's JSON: %v\n%s", err, out.String())
	}
	if !rep.Interrupted || rep.Stateful["udp500"] == nil || rep.Stateful["udp500"].SurvivedS == 0 || rep.Stateful["esp"] == nil {
		t.Errorf("interrupted run: %s, want interrupted with what round 1 learnt", out.String())
	}

	out.Reset()
	errb.Reset()
	jf := filepath.Join(dir, "timers.json")
	l.Do("ini", func() error {
		code = run(context.Background(), []string{"stateful", rsp, "--agent", agent, "--key-file", key, "--protocols", "udp4500",
			"--max-idle", "14s", "--format", "markdown", "--out", jf}, &out, &errb)
		return nil
	})
	if code != exitFail {
		t.Errorf("timer found: exit %d, want 1; stderr %q", code, errb.String())
	}
	if !strings.Contains(out.String(), "| `udp4500` |") || !strings.Contains(out.String(), "dpd_delay") {
		t.Errorf("markdown:\n%s", out.String())
	}
	if !strings.Contains(errb.String(), "this takes about") {
		t.Errorf("no time estimate before the start on stderr: %q", errb.String())
	}
	b, err := os.ReadFile(jf)
	if err != nil {
		t.Fatal(err)
	}
	var got struct {
		Stateful map[string]struct {
			TimerFound bool    `json:"timer_found"`
			SurvivedS  float64 `json:"survived_s"`
			DiedS      float64 `json:"died_s"`
		} `json:"stateful"`
	}
	if err := json.Unmarshal(b, &got); err != nil {
		t.Fatal(err)
	}
	if v := got.Stateful["udp4500"]; !v.TimerFound || v.SurvivedS < 8 || v.DiedS > 12 {
		t.Errorf("--out: %s", b)
	}
}
