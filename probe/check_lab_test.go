package probe_test

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/ipsecpath/ipsecpath/probe"
	"github.com/ipsecpath/ipsecpath/report"
	"github.com/ipsecpath/ipsecpath/report/schematest"
	"github.com/ipsecpath/ipsecpath/testlab"
)

// labProbes is every probe id the agent-based check runs in the profile table (pmtu has
// its own tests in the pmtu package).
var labProbes = []probe.ID{probe.IKE, probe.IKEFrag, probe.NATT, probe.NATTFrag, probe.ESP, probe.ESPFrag,
	probe.AH, probe.AHFrag, probe.ICMPLarge, probe.TCP(445), probe.TCP(1792)}

// expect is the verdicts a (probe, direction) may get: more than one where the fault's
// definition leaves it open (a filter on a UDP port sees only a datagram's first fragment
// unless the router reassembles, so the rest may still arrive: dropped or partial).
type expect map[string][]report.Verdict

func key(id probe.ID, d report.Direction) string { return string(d) + " " + string(id) }

var (
	pass      = []report.Verdict{report.Pass}
	dropped   = []report.Verdict{report.Dropped}
	fragDrop  = []report.Verdict{report.FragDropped}
	partial   = []report.Verdict{report.Partial}
	blocked   = []report.Verdict{report.Blocked}
	notThere  = []report.Verdict{report.Dropped, report.Partial} // first fragment filtered by port
	silentRev = []report.Verdict{report.Dropped, report.Blocked} // the refusal went to the agent, not to us
)

// profileExpect writes down, from each profile's definition (testlab/profiles.go, issue 3),
// what every probe must get in each direction. Anything not listed must pass.
func profileExpect(profile string) expect {
	F, R := report.Forward, report.Reverse
	e := expect{}
	both := func(v []report.Verdict, ids ...probe.ID) {
		for _, id := range ids {
			e[key(id, F)], e[key(id, R)] = v, v
		}
	}
	frag := []probe.ID{probe.IKEFrag, probe.NATTFrag, probe.ESPFrag, probe.AHFrag, probe.ICMPLarge}
	switch profile {
	case "clean", "mtu1400", "mtu1300-blackhole":
		// Nothing broken for these probes: the fragments we cut (1280 bytes) fit 1300.
	case "frag-drop": // r2 drops every fragment, both ways
		both(fragDrop, frag...)
	case "nonfirst-frag-drop": // r1 drops non-first fragments, both ways
		both(partial, frag...)
	case "esp-drop": // r1 drops protocol 50 (every fragment carries it), both ways
		both(dropped, probe.ESP, probe.ESPFrag)
	case "ah-reject": // r2 rejects protocol 51 with admin-prohibited, both ways
		e[key(probe.AH, F)], e[key(probe.AHFrag, F)] = blocked, blocked
		e[key(probe.AH, R)], e[key(probe.AHFrag, R)] = silentRev, silentRev
	case "udp500-drop": // r1 drops UDP to port 500, both ways
		both(dropped, probe.IKE)
		both(notThere, probe.IKEFrag)
	case "udp4500-drop": // r2 drops UDP to port 4500, both ways
		both(dropped, probe.NATT)
		both(notThere, probe.NATTFrag)
	case "tcp445-reset": // r2 resets SYNs to 445 in the target's name, both ways
		e[key(probe.TCP(445), F)] = blocked
		e[key(probe.TCP(445), R)] = silentRev
	case "tcp1792-drop": // r1 drops SYNs to 1792, both ways
		both(dropped, probe.TCP(1792))
	case "reverse-frag-drop": // r2 drops fragments coming from rsp only
		for _, id := range frag {
			e[key(id, R)] = fragDrop
		}
	case "stateful-udp": // r1: UDP from the rsp side only for flows ini opened
		for _, id := range []probe.ID{probe.IKE, probe.IKEFrag, probe.NATT, probe.NATTFrag} {
			e[key(id, R)] = dropped
		}
	default:
		return nil
	}
	return e
}

// labKey is the agent's key in lab tests.
var labKey = bytes.Repeat([]byte("ipsecpath-lab-key"), 2)

// startAgent runs the agent in-process inside rsp, listening on rsp's address, until the test ends.
func startAgent(t *testing.T, l *testlab.Lab) string {
	t.Helper()
	addr := net.JoinHostPort(l.Addr("rsp").String(), fmt.Sprint(probe.ControlPort))
	var resp *probe.Responder
	var ln net.Listener
	err := l.Do("rsp", func() error {
		var err error
		if resp, err = probe.NewResponder(probe.ResponderConfig{Key: labKey, Version: report.Version}); err != nil {
			return err
		}
		ln, err = net.Listen("tcp", addr)
		return err
	})
	if err != nil {
		if resp != nil {
			resp.Close()
		}
		t.Fatalf("agent in rsp: %v", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); resp.Serve(ctx, ln) }()
	t.Cleanup(func() { cancel(); <-done; resp.Close() })
	return addr
}

// checkFromIni runs Check inside ini.
func checkFromIni(t *testing.T, l *testlab.Lab, cfg probe.CheckConfig) (*report.Report, time.Duration) {
	t.Helper()
	var rep *report.Report
	t0 := time.Now()
	err := l.Do("ini", func() error {
		var err error
		rep, err = probe.Check(context.Background(), cfg)
		return err
	})
	if err != nil {
		t.Fatalf("check: %v", err)
	}
	schematest.ValidateValue(t, "check", rep) // as --json would print it
	return rep, time.Since(t0)
}

func TestCheckLabProfiles(t *testing.T) {
	testlab.RequireRoot(t)
	for _, prof := range testlab.ProfileNames() {
		want := profileExpect(prof)
		if want == nil {
			t.Errorf("profile %s has no expectations written down", prof)
			continue
		}
		t.Run(prof, func(t *testing.T) {
			t.Parallel()
			l := testlab.ForTest(t, testlab.Spec{Profile: prof, NoGateways: true})
			agent := startAgent(t, l)
			rep, took := checkFromIni(t, l, probe.CheckConfig{Target: l.Addr("rsp"), Agent: agent, Key: labKey, Probes: labProbes})
			t.Logf("%s: check took %s", prof, took.Round(time.Millisecond))
			got := map[string]report.Result{}
			for _, r := range rep.Results {
				got[string(r.Direction)+" "+r.Probe] = r
			}
			var keys []string
			for _, id := range labProbes {
				for _, d := range []report.Direction{report.Forward, report.Reverse} {
					keys = append(keys, key(id, d))
				}
			}
			sort.Strings(keys)
			for _, k := range keys {
				r, ok := got[k]
				if !ok {
					t.Errorf("%s: no result", k)
					continue
				}
				w := want[k]
				if w == nil {
					w = pass
				}
				okv := false
				for _, v := range w {
					okv = okv || r.Verdict == v
				}
				if !okv {
					t.Errorf("%s: %s (%s), want %v", k, r.Verdict, r.Detail, w)
				}
			}
			if len(rep.Results) != len(keys) {
				t.Errorf("%d results, want %d", len(rep.Results), len(keys))
			}
			if t.Failed() {
				var b strings.Builder
				rep.WriteJSON(&b)
				t.Logf("report:\n%s", b.String())
			}
		})
	}
}

// TestCheckOneEnded runs the check without an agent against the lab's real strongSwan on
// rsp: only what the gateway answers counts.
func TestCheckOneEnded(t *testing.T) {
	testlab.RequireRoot(t)
	F := report.Forward
	for _, c := range []struct {
		profile string
		want    map[string][]report.Verdict
	}{
		// clean: the gateway answers both the small and the large (IP-fragmented) IKE message.
		{"clean", map[string][]report.Verdict{key(probe.IKE, F): pass, key(probe.IKEFrag, F): pass, key(probe.NATT, F): pass}},
		// frag-drop: the large message's fragments die at r2, the small one is answered.
		{"frag-drop", map[string][]report.Verdict{key(probe.IKE, F): pass, key(probe.IKEFrag, F): fragDrop, key(probe.NATT, F): pass}},
		// udp500-drop: nothing answers on 500 (the first fragment carries the port and dies
		// at r1, so the large message is never answered either); 4500 still answers.
		{"udp500-drop", map[string][]report.Verdict{key(probe.IKE, F): dropped, key(probe.IKEFrag, F): dropped, key(probe.NATT, F): pass}},
	} {
		t.Run(c.profile, func(t *testing.T) {
			t.Parallel()
			l := testlab.ForTest(t, testlab.Spec{Profile: c.profile})
			rep, took := checkFromIni(t, l, probe.CheckConfig{Target: l.Addr("rsp"), Probes: []probe.ID{probe.IKE, probe.IKEFrag, probe.NATT}})
			t.Logf("%s: one-ended check took %s", c.profile, took.Round(time.Millisecond))
			if len(rep.Results) != len(c.want) {
				t.Errorf("%d results, want %d", len(rep.Results), len(c.want))
			}
			for _, r := range rep.Results {
				k := string(r.Direction) + " " + r.Probe
				w := c.want[k]
				okv := false
				for _, v := range w {
					okv = okv || r.Verdict == v
				}
				if !okv {
					t.Errorf("%s: %s (%s), want %v", k, r.Verdict, r.Detail, w)
				}
				if r.Verdict == report.Pass && r.Evidence.Answer != probe.AnswerIKE {
					t.Errorf("%s: passes on %q, want an IKE answer", k, r.Evidence.Answer)
				}
			}
		})
	}
}
