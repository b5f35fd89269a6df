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
	pass     = []report.Verdict{report.Pass}
	dropped  = []report.Verdict{report.Dropped}
	fragDrop = []report.Verdict{report.FragDropped}
	partial  = []report.Verdict{report.Partial}
	blocked  = []report.Verdict{report.Blocked}
	notThere = []report.Verdict{report.Dropped, report.Partial} // first fragment filtered by port
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
	case "ah-reject": // r2 rejects protocol 51 with admin-prohibited, both ways (reverse: to the agent)
		both(blocked, probe.AH, probe.AHFrag)
	case "udp500-drop": // r1 drops UDP to port 500, both ways
		both(dropped, probe.IKE)
		both(notThere, probe.IKEFrag)
	case "udp4500-drop": // r2 drops UDP to port 4500, both ways
		both(dropped, probe.NATT)
		both(notThere, probe.NATTFrag)
	case "tcp445-reset": // r2 resets SYNs to 445 in the target's name, both ways (reverse: in ours)
		both(blocked, probe.TCP(445))
	case "tcp1792-drop": // r1 drops SYNs to 1792, both ways
		both(dropped, probe.TCP(1792))
	case "tcp1792-reset": // r2 resets SYNs to 1792 in the target's name, both ways (reverse: in ours)
		both(blocked, probe.TCP(1792))
	case "underlay-dead": // nothing from ini crosses r1: see underlayDeadOnly
	case "reverse-frag-drop": // r2 drops fragments coming from rsp only
		for _, id := range frag {
			e[key(id, R)] = fragDrop
		}
	case "stateful-udp": // r1: UDP from the rsp side only for flows ini opened
		for _, id := range []probe.ID{probe.IKE, probe.IKEFrag, probe.NATT, probe.NATTFrag} {
			e[key(id, R)] = dropped
		}
	case "reverse-esp-reject": // r1 rejects protocol 50 from the rsp side with admin-prohibited
		e[key(probe.ESP, R)], e[key(probe.ESPFrag, R)] = blocked, blocked
	case "reverse-tcp1792-reset": // r1 resets SYNs to 1792 from the rsp side in ini's name
		e[key(probe.TCP(1792), R)] = blocked
	case "reverse-mtu-blackhole":
		// Nothing for these probes: the fragments we cut (1280 bytes) fit 1300 (the path MTU
		// rows are TestCheckPMTUBothWays's, in cmd/ipsecpath).
	case "echo-filter": // r1 drops echo requests, both ways: the large echo's first fragment
		both(dropped, probe.ICMPLarge)
	case "nat", "nat-frag-drop":
		// r1 masquerades ini and forwards only TCP, UDP and ICMP: raw ESP/AH die there both
		// ways (reverse: sent to the public address, r1's own, which has no ESP/AH handler
		// and may answer protocol-unreachable); the agent's SYNs and echoes reach r1 itself
		// (it resets them, answers them); UDP goes through the mapping ours opened.
		for _, id := range []probe.ID{probe.ESP, probe.ESPFrag, probe.AH, probe.AHFrag} {
			e[key(id, F)], e[key(id, R)] = dropped, []report.Verdict{report.Dropped, report.Blocked}
		}
		e[key(probe.ICMPLarge, R)] = dropped
		e[key(probe.TCP(445), R)], e[key(probe.TCP(1792), R)] = blocked, blocked
		if profile == "nat-frag-drop" {
			// r1 drops non-first fragments before its conntrack reassembles (the first waits
			// there in vain): the unfragmented forms pass, the fragmented ones never arrive.
			both(fragDrop, probe.IKEFrag, probe.NATTFrag)
			e[key(probe.ICMPLarge, F)] = fragDrop
		}
	default:
		return nil
	}
	return e
}

// profileHops writes down where each profile's refusals come from, as "TTL ADDR" (a router
// that sent an ICMP error, TTL counted from the probe's sender: us forward, the agent
// reverse) or "TTL ~" (a reset in the target's or our name, placed by its TTL: estimated).
// From ini, r1 is hop 1 and r2 hop 2; from rsp, r2 is hop 1 and r1 hop 2.
func profileHops(profile string) map[string]string {
	F, R := report.Forward, report.Reverse
	switch profile {
	case "ah-reject":
		return map[string]string{key(probe.AH, F): "2 192.0.2.66", key(probe.AHFrag, F): "2 192.0.2.66",
			key(probe.AH, R): "1 203.0.113.1", key(probe.AHFrag, R): "1 203.0.113.1"}
	case "tcp445-reset":
		return map[string]string{key(probe.TCP(445), F): "2 ~", key(probe.TCP(445), R): "1 ~"}
	case "tcp1792-reset":
		return map[string]string{key(probe.TCP(1792), F): "2 ~", key(probe.TCP(1792), R): "1 ~"}
	case "reverse-esp-reject":
		return map[string]string{key(probe.ESP, R): "2 192.0.2.65", key(probe.ESPFrag, R): "2 192.0.2.65"}
	case "reverse-tcp1792-reset":
		return map[string]string{key(probe.TCP(1792), R): "2 ~"}
	case "nat", "nat-frag-drop": // r1, the NAT, resets the agent's SYNs to its public address
		return map[string]string{key(probe.TCP(445), R): "2 ~", key(probe.TCP(1792), R): "2 ~"}
	}
	return nil
}

// underlayDeadOnly are profiles where nothing from ini crosses the first router: no probe
// (nor the agent's control channel) can get through, which the ladder reports.
var underlayDeadOnly = map[string]bool{"underlay-dead": true}

// labKey is the agent's key in lab tests.
var labKey = bytes.Repeat([]byte("ipsecpath-lab-key"), 2)

// startAgent runs the agent in-process inside rsp, listening on rsp's address, until the test ends.
func startAgent(t *testing.T, l *testlab.Lab) string {
	t.Helper()
	addr, _ := startAgentWith(t, l, probe.ResponderConfig{Key: labKey, Version: report.Version})
	return addr
}

// startAgentWith runs an agent made with cfg in rsp, listening on rsp's address, and returns
// that address and a function that stops it before the test ends (it stops then anyway).
func startAgentWith(t *testing.T, l *testlab.Lab, cfg probe.ResponderConfig) (string, func()) {
	t.Helper()
	addr := net.JoinHostPort(l.Addr("rsp").String(), fmt.Sprint(probe.ControlPort))
	stop := l.ServeIn(t, "rsp", addr, func() (testlab.Server, error) { return probe.NewResponder(cfg) })
	return addr, stop
}

// checkFromIni runs Check inside ini.
func checkFromIni(t *testing.T, l *testlab.Lab, cfg probe.CheckConfig) (*report.Report, time.Duration) {
	t.Helper()
	t0 := time.Now()
	rep := testlab.DoIn(t, l, "ini", "check", func() (*report.Report, error) { return probe.Check(context.Background(), cfg) })
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
		if underlayDeadOnly[prof] {
			continue // the agent cannot be reached at all: TestLadderLabUnderlayDead covers it
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
				checkLabHop(t, k, r, profileHops(prof)[k])
				if r.Verdict.Failed() && r.Evidence.Compared != "" && r.Verdict != report.FragDropped && r.Verdict != report.Partial &&
					(strings.Contains(r.Detail, "allow IP fragments") || strings.Contains(r.Detail, "drops first fragments")) {
					t.Errorf("%s: %s, but the detail advises on fragments: %s", k, r.Verdict, r.Detail)
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

// checkLabHop holds a result to where its refusal came from (want: see profileHops; "" for
// none written down) and, for every blocked row, to DESIGN.md's hop rule: an ICMP error's
// source, or a reset's TTL estimate, never the target named as the sender of a reset.
func checkLabHop(t *testing.T, k string, r report.Result, want string) {
	t.Helper()
	if r.Verdict == report.Blocked {
		switch {
		case r.Hop == nil:
			t.Errorf("%s: blocked without a hop: %s", k, r.Detail)
			return
		case r.Evidence.Answer == probe.AnswerRST && (!r.Hop.Estimated || r.Evidence.AnsweredBy != ""):
			t.Errorf("%s: reset hop %+v answered_by %q, want an estimated hop and no answered_by", k, r.Hop, r.Evidence.AnsweredBy)
		case r.Evidence.ICMP != nil && r.Hop.Addr != r.Evidence.ICMP.From:
			t.Errorf("%s: hop %+v, want the ICMP error's source %s", k, r.Hop, r.Evidence.ICMP.From)
		}
	}
	if want == "" {
		return
	}
	got := "none"
	if r.Hop != nil {
		addr := r.Hop.Addr
		if r.Hop.Estimated {
			addr = "~"
		}
		got = fmt.Sprintf("%d %s", r.Hop.TTL, addr)
	}
	if got != want {
		t.Errorf("%s: hop %s, want %s (%s)", k, got, want, r.Detail)
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
