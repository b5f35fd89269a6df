package probe_test

import (
	"strings"
	"testing"

	"github.com/ipsecpath/ipsecpath/probe"
	"github.com/ipsecpath/ipsecpath/report"
	"github.com/ipsecpath/ipsecpath/testlab"
)

var udpClassProbes = []probe.ID{probe.UDP(4789), probe.UDP(4789) + "-frag", probe.L2TP, probe.L2TPFrag}

// verdictsOf maps "direction probe" to its result.
func verdictsOf(rep *report.Report) map[string]report.Result {
	m := map[string]report.Result{}
	for _, r := range rep.Results {
		m[string(r.Direction)+" "+r.Probe] = r
	}
	return m
}

// TestUDPClassLab: udp:PORT and l2tp, both directions, with the agent confirming arrival:
// all pass on a clean lab; on frag-drop (a profile) the -frag forms are frag-dropped both
// ways; with a scratch rule on r1 (plain nftables, no profile) that drops UDP 1701 coming
// from the rsp side only, l2tp fails in reverse alone.
func TestUDPClassLab(t *testing.T) {
	testlab.RequireRoot(t)
	for _, c := range []struct {
		profile string
		scratch string // nftables for r1, applied after the lab is up
		want    map[string][]report.Verdict
	}{
		{"clean", "", nil},
		{"frag-drop", "", map[string][]report.Verdict{
			"forward udp:4789-frag": fragDrop, "reverse udp:4789-frag": fragDrop,
			"forward l2tp-frag": fragDrop, "reverse l2tp-frag": fragDrop}},
		{"clean", "table ip scratch_l2tp {\n chain scratch {\n  type filter hook forward priority 0; policy accept;\n  iifname \"east0\" udp dport 1701 drop\n }\n}\n",
			// the port filter sees only the first fragment of l2tp-frag: the rest may arrive
			map[string][]report.Verdict{"reverse l2tp": dropped, "reverse l2tp-frag": notThere}},
	} {
		name := c.profile
		if c.scratch != "" {
			name += "+reverse-l2tp-drop"
		}
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			l := testlab.ForTest(t, testlab.Spec{Profile: c.profile, NoGateways: true})
			if c.scratch != "" {
				l.NftIn(t, testlab.NodeR1, c.scratch)
			}
			agent := startAgent(t, l)
			rep, _ := checkFromIni(t, l, probe.CheckConfig{Target: l.Addr(testlab.NodeRsp), Agent: agent, Key: labKey, Probes: udpClassProbes})
			got := verdictsOf(rep)
			if len(rep.Results) != 2*len(udpClassProbes) {
				t.Errorf("%d results, want %d", len(rep.Results), 2*len(udpClassProbes))
			}
			for _, id := range udpClassProbes {
				for _, d := range []string{"forward", "reverse"} {
					k := d + " " + string(id)
					w, ok := c.want[k]
					if !ok {
						w = pass
					}
					r := got[k]
					okv := false
					for _, v := range w {
						okv = okv || r.Verdict == v
					}
					if !okv {
						t.Errorf("%s: %s (%s), want %v", k, r.Verdict, r.Detail, w)
					}
					// a pass rests on what the other end captured
					if r.Verdict == report.Pass && len(r.Evidence.FragmentsSeen) == 0 {
						t.Errorf("%s passes with no fragment seen: %+v", k, r.Evidence)
					}
				}
			}
			if t.Failed() {
				var b strings.Builder
				_ = rep.WriteJSON(&b)
				t.Logf("report:\n%s", b.String())
			}
		})
	}
}
