package main

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"

	"github.com/ipsecpath/ipsecpath/report"
	"github.com/ipsecpath/ipsecpath/testlab"
)

// TestTraceBadInput: usage mistakes are refused with one line and exit 2, before any packet.
func TestTraceBadInput(t *testing.T) {
	dir := t.TempDir()
	key := writeKey(t, dir, "key", bytes.Repeat([]byte{7}, 32), 0o600)
	refusesAll(t, "trace", []usageCase{
		{"no target", []string{"--probe", "esp"}, "want one TARGET"},
		{"no probe", []string{"192.0.2.1"}, "--probe is required"},
		{"unknown probe", []string{"192.0.2.1", "--probe", "gre"}, `--probe "gre"`},
		{"pmtu", []string{"192.0.2.1", "--probe", "pmtu"}, `--probe "pmtu"`},
		{"tcp port 0", []string{"192.0.2.1", "--probe", "tcp:0"}, `--probe "tcp:0"`},
		{"not an address", []string{"gateway.example", "--probe", "esp"}, "not an IPv4 address"},
		{"broadcast", []string{"255.255.255.255", "--probe", "esp"}, "broadcast"},
		{"max hops 0", []string{"192.0.2.1", "--probe", "esp", "--max-hops", "0"}, "--max-hops 0"},
		{"max hops 65", []string{"192.0.2.1", "--probe", "esp", "--max-hops", "65"}, "--max-hops 65"},
		{"timeout", []string{"192.0.2.1", "--probe", "esp", "--timeout", "1ms"}, "--timeout 1ms"},
		{"agent without key", []string{"192.0.2.1", "--probe", "esp", "--agent", "192.0.2.1:7500"}, "--agent needs --key-file"},
		{"key without agent", []string{"192.0.2.1", "--probe", "esp", "--key-file", key}, "--key-file without --agent"},
		{"agent elsewhere", []string{"192.0.2.1", "--probe", "esp", "--agent", "192.0.2.9:7500", "--key-file", key}, "not on the target"},
	})
}

func TestTraceHelp(t *testing.T) {
	code, out, _ := runCLI(t, "trace", "--help")
	if code != exitOK || !strings.Contains(out, "dies between") || !strings.Contains(out, "--max-hops") || !strings.Contains(out, "Examples:") {
		t.Errorf("help: exit %d\n%s", code, out)
	}
}

// TestTraceCLILab: one-ended traces from ini on esp-drop: esp dies between r1 and r2 (exit
// 1, in the text and the JSON), tcp:445 reaches rsp (exit 0).
func TestTraceCLILab(t *testing.T) {
	testlab.RequireRoot(t)
	l := testlab.ForTest(t, testlab.Spec{Profile: "esp-drop", NoGateways: true})
	target := l.Addr("rsp").String()
	var code, jcode, pcode int
	var out, errs, jout, jerrs, pout, perrs string
	l.Do("ini", func() error {
		code, out, errs = runCLI(t, "trace", target, "--probe", "esp")
		jcode, jout, jerrs = runCLI(t, "trace", target, "--probe", "esp", "--json")
		pcode, pout, perrs = runCLI(t, "trace", target, "--probe", "tcp:445", "--format", "markdown")
		return nil
	})
	const bracket = "between 198.51.100.1 (hop 1) and 192.0.2.66 (hop 2)"
	if code != exitFail || !strings.Contains(out, "dies "+bracket) || !strings.Contains(out, "esp forward, hop by hop") {
		t.Errorf("text: exit %d, want %d with %q\n%s\nstderr: %s", code, exitFail, bracket, out, errs)
	}
	var rep report.Report
	if err := json.Unmarshal([]byte(jout), &rep); err != nil || jcode != exitFail {
		t.Fatalf("json: exit %d, %v\n%s\nstderr: %s", jcode, err, jout, jerrs)
	}
	if jerrs != "" {
		t.Errorf("--json printed on stderr: %q", jerrs)
	}
	f := rep.Trace.Forward
	if f == nil || f.LastReached == nil || f.FirstMissed == nil || f.LastReached.Addr != "198.51.100.1" || f.FirstMissed.Addr != "192.0.2.66" || f.FarEnd {
		t.Errorf("json forward %+v, want r1→r2 and no far end", f)
	}
	if len(f.Hops) == 0 || f.Hops[0].TTL != 1 || !f.Hops[0].Reached || f.Hops[0].Addr != "198.51.100.1" {
		t.Errorf("json hops %+v, want hop 1 reached at r1", f.Hops)
	}
	if h := rep.Results[0].Hop; h == nil || h.Bracket == nil || h.TTL != 2 || h.Addr != "192.0.2.66" {
		t.Errorf("result hop %+v, want ttl 2 at r2 with the bracket", h)
	}
	if pcode != exitOK || !strings.Contains(pout, "| `tcp:445` | forward | pass |") {
		t.Errorf("tcp:445 markdown: exit %d\n%s\nstderr: %s", pcode, pout, perrs)
	}
}
