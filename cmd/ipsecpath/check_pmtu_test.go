package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net"
	"strings"
	"testing"

	"github.com/ipsecpath/ipsecpath/probe"
	"github.com/ipsecpath/ipsecpath/report"
	"github.com/ipsecpath/ipsecpath/testlab"
)

// labAgent runs an agent in the lab's rsp with key, until the test ends, and returns its
// HOST:PORT.
func labAgent(t *testing.T, l *testlab.Lab, key []byte) string {
	t.Helper()
	agent := net.JoinHostPort(l.Addr("rsp").String(), "7500")
	l.ServeIn(t, "rsp", agent, func() (testlab.Server, error) { return probe.NewResponder(probe.ResponderConfig{Key: key}) })
	return agent
}

// labAgentKey runs an agent in the lab's rsp with a 32-byte key that it also writes to
// dir/key (mode 0600), until the test ends, and returns the agent's HOST:PORT and the key
// file's path.
func labAgentKey(t *testing.T, l *testlab.Lab, dir string) (agent, keyFile string) {
	t.Helper()
	keyBytes := bytes.Repeat([]byte{5}, 32)
	keyFile = writeKey(t, dir, "key", keyBytes, 0o600)
	return labAgent(t, l, keyBytes), keyFile
}

// TestCheckPMTUBothWays: with an agent, check's pmtu probe measures the path MTU toward the
// target and back (the agent's DF echoes, the far side's ICMP seen by the agent's capture):
// the JSON holds "pmtu": {"forward", "reverse"}, the table a reverse pmtu verdict. The
// expectations follow from the profiles: clean has no narrow link (1500 both ways); mtu1400
// narrows the r1–r2 link to 1400 and its routers signal it (r1 toward rsp, r2 toward ini);
// mtu1300-blackhole narrows it to 1300 and drops the routers' fragmentation-needed, so both
// directions black-hole after their first hop (r1 198.51.100.1 forward, r2 203.0.113.1 back);
// reverse-mtu-blackhole narrows it to 1300 with r1 signalling toward ini and r2 silent toward
// rsp: forward signalled by r1, reverse a black hole after r2. That one runs every probe at
// once, as a user's check does: the reverse search must finish (confirmation and hop walk)
// however long the other probes take, and claim no signal it did not see (issue 9.2).
func TestCheckPMTUBothWays(t *testing.T) {
	testlab.RequireRoot(t)
	for _, c := range []struct {
		profile      string
		probes       string
		mtu          int
		fwdBH, revBH bool
		fwdHop       string
		revHop       string
		signalledBy  map[report.Direction]string
		code         int
		maxProbes    int // per direction
		textReverse  string
	}{
		{"clean", "pmtu", 1500, false, false, "", "", nil, exitOK, 2, "path MTU: forward 1500; reverse 1500"},
		{"mtu1400", "pmtu", 1400, false, false, "", "", map[report.Direction]string{report.Forward: "198.51.100.1", report.Reverse: "203.0.113.1"}, exitOK, 3, "path MTU: forward 1400; reverse 1400"},
		{"mtu1300-blackhole", "pmtu", 1300, true, true, "198.51.100.1", "203.0.113.1", nil, exitFail, 24, "reverse 1300, black hole from hop 1 (203.0.113.1)"},
		{"reverse-mtu-blackhole", "all", 1300, false, true, "", "203.0.113.1", map[report.Direction]string{report.Forward: "198.51.100.1"}, exitFail, 24, "path MTU: forward 1300; reverse 1300, black hole from hop 1 (203.0.113.1)"},
	} {
		t.Run(c.profile, func(t *testing.T) {
			t.Parallel()
			l := testlab.ForTest(t, testlab.Spec{Profile: c.profile, NoGateways: true})
			agent, key := labAgentKey(t, l, t.TempDir())
			target := l.Addr("rsp").String()
			var code, tcode int
			var out, errs, tout, terrs string
			l.Do("ini", func() error {
				code, out, errs = runCLI(t, "check", target, "--agent", agent, "--key-file", key, "--probes", c.probes, "--json")
				tcode, tout, terrs = runCLI(t, "check", target, "--agent", agent, "--key-file", key, "--probes", c.probes)
				return nil
			})
			if code != c.code || tcode != c.code {
				t.Fatalf("exit %d (text %d), want %d; stderr %q %q", code, tcode, c.code, errs, terrs)
			}
			var rep report.Report
			if err := json.Unmarshal([]byte(out), &rep); err != nil {
				t.Fatalf("json: %v\n%s", err, out)
			}
			var raw struct {
				PMTU map[string]json.RawMessage `json:"pmtu"`
			}
			if err := json.Unmarshal([]byte(out), &raw); err != nil || raw.PMTU["forward"] == nil || raw.PMTU["reverse"] == nil {
				t.Fatalf(`json lacks "pmtu": {"forward", "reverse"}: %v\n%s`, err, out)
			}
			t.Logf("%s: forward %s, reverse %s; check took %d ms", c.profile, rep.PMTU.Forward, rep.PMTU.Reverse, rep.DurationMs)
			verdict := map[report.Direction]report.Verdict{report.Forward: report.Pass, report.Reverse: report.Pass}
			for _, d := range []struct {
				dir report.Direction
				p   *report.PathMTU
				bh  bool
				hop string
			}{{report.Forward, rep.PMTU.Forward, c.fwdBH, c.fwdHop}, {report.Reverse, rep.PMTU.Reverse, c.revBH, c.revHop}} {
				p := d.p
				if p.MTU != c.mtu || p.Blackhole != d.bh || p.Probes > c.maxProbes || p.Unfinished != "" {
					t.Errorf("%s: %+v, want mtu %d blackhole %v, finished, in at most %d probes", d.dir, *p, c.mtu, d.bh, c.maxProbes)
				}
				if d.hop != "" && (p.Hop == nil || p.Hop.Addr != d.hop || p.Hop.TTL != 1) {
					t.Errorf("%s black hole hop %+v, want ttl 1 %s", d.dir, p.Hop, d.hop)
				}
				// "Signalled" only where a fragmentation-needed was seen, and from whom.
				if by := c.signalledBy[d.dir]; p.Signalled != (by != "") || p.SignalledBy != by {
					t.Errorf("%s: signalled %v by %q, want by %q", d.dir, p.Signalled, p.SignalledBy, by)
				}
				if d.bh {
					verdict[d.dir] = report.Dropped
				}
			}
			rows := map[report.Direction]report.Result{}
			for _, r := range rep.Results {
				if r.Probe == "pmtu" {
					rows[r.Direction] = r
				} else if r.Verdict != report.Pass {
					t.Errorf("%s %s: %s (%s), want pass on %s", r.Direction, r.Probe, r.Verdict, r.Detail, c.profile)
				}
			}
			for _, d := range []report.Direction{report.Forward, report.Reverse} {
				r, ok := rows[d]
				if !ok || r.Verdict != verdict[d] || r.Evidence.Size != c.mtu {
					t.Errorf("pmtu %s row %+v, want %s with size %d", d, r, verdict[d], c.mtu)
					continue
				}
				switch {
				case r.Verdict == report.Dropped && (!strings.Contains(r.Detail, "black hole") || r.Hop == nil || !strings.Contains(r.Detail, r.Hop.Addr)):
					t.Errorf("pmtu %s: black hole row without the black-hole sentence or its hop: %s (hop %+v)", d, r.Detail, r.Hop)
				case strings.Contains(r.Detail, "says so") && c.signalledBy[d] == "":
					t.Errorf("pmtu %s claims a signal nobody sent: %s", d, r.Detail)
				}
			}
			// The table's pmtu row has a verdict in both columns, the footer both MTUs.
			row := fmt.Sprintf("pmtu %s %s", verdict[report.Forward], verdict[report.Reverse])
			found := false
			for _, line := range strings.Split(tout, "\n") {
				f := strings.Fields(strings.TrimPrefix(line, "!"))
				found = found || (len(f) >= 3 && strings.Join(f[:3], " ") == row)
			}
			if !strings.Contains(tout, c.textReverse) || !found {
				t.Errorf("table lacks %q or %q:\n%s", row, c.textReverse, tout)
			}
		})
	}
}
