package pmtu

import (
	"net/netip"
	"strings"
	"testing"

	"github.com/ipsecpath/ipsecpath/report"
)

// TestJudge: the one wording of a path MTU row, for check and pmtu alike. Each case is a
// search result as Discover leaves it; the row claims only what the result holds (a
// fragmentation-needed only when one was seen, whose interface when no router spoke).
func TestJudge(t *testing.T) {
	r1, r2 := netip.MustParseAddr("198.51.100.1"), netip.MustParseAddr("203.0.113.1")
	type want struct {
		verdict report.Verdict
		has     []string
		hasNot  []string
		hop     string // the row's hop address ("": no hop)
		icmp    string // the evidence's fragmentation-needed sender ("": none)
	}
	for _, c := range []struct {
		name string
		dir  report.Direction
		res  *Result
		want want
	}{
		{"black hole bracketed: the next hop answers nothing", report.Forward,
			&Result{MTU: 1280, Exact: true, Upper: 1281, Probes: 14,
				Blackhole: &Blackhole{Size: 1281, Last: Hop{TTL: 1, Addr: r1}, Next: Hop{TTL: 2}}},
			want{report.Dropped, []string{"black hole between 198.51.100.1 (hop 1) and hop 2 (address unknown)", "above 1280 bytes", "without an ICMP fragmentation-needed"}, []string{"says so"}, "198.51.100.1", ""}},
		{"black hole after a hop whose next one answers", report.Forward,
			&Result{MTU: 1300, Exact: true, Upper: 1301,
				Blackhole: &Blackhole{Size: 1301, Last: Hop{TTL: 1, Addr: r1}, Next: Hop{TTL: 2, Addr: r2}, Sure: true}},
			want{report.Dropped, []string{"Path MTU black hole after hop 1 (198.51.100.1)", "above 1300 bytes"}, nil, "198.51.100.1", ""}},
		{"black hole on the way back", report.Reverse,
			&Result{MTU: 1300, Exact: true, Upper: 1301,
				Blackhole: &Blackhole{Size: 1301, Last: Hop{TTL: 1, Addr: r2}, Next: Hop{TTL: 2, Addr: r1}, Sure: true}},
			want{report.Dropped, []string{"black hole on the way back after hop 1 (203.0.113.1)", "the agent's packets", "reaching the agent"}, nil, "203.0.113.1", ""}},
		{"black hole not localised", report.Forward,
			&Result{MTU: 1300, Exact: true, Upper: 1301, Blackhole: &Blackhole{Size: 1301}},
			want{report.Dropped, []string{"Path MTU black hole: packets above 1300 bytes"}, []string{"hop"}, "", ""}},
		{"frag-needed seen", report.Forward,
			&Result{MTU: 1400, Exact: true, Upper: 1401, Signalled: true, ICMPFrom: r1, ICMPMTU: 1400, Probes: 3},
			want{report.Pass, []string{"Path MTU is 1400 bytes", "the narrow link (198.51.100.1) says so with ICMP fragmentation-needed"}, []string{"toward us"}, "", "198.51.100.1"}},
		{"frag-needed seen on the way back", report.Reverse,
			&Result{MTU: 1400, Exact: true, Upper: 1401, Signalled: true, ICMPFrom: r2, ICMPMTU: 1400},
			want{report.Pass, []string{"Path MTU toward us is 1400 bytes", "(203.0.113.1) says so"}, nil, "", "203.0.113.1"}},
		{"limited by our own interface", report.Forward,
			&Result{MTU: 1280, Exact: true, Upper: 1281, Signalled: true, ICMPMTU: 1280},
			want{report.Pass, []string{"1280", "set by our own interface MTU", "no router on the path said anything"}, []string{"narrow link", "the agent's"}, "", ""}},
		{"limited by the agent's interface", report.Reverse,
			&Result{MTU: 1280, Exact: true, Upper: 1281, Signalled: true},
			want{report.Pass, []string{"Path MTU toward us is 1280 bytes", "set by the agent's own interface MTU"}, []string{"narrow link", "our own"}, "", ""}},
		{"unfinished search", report.Reverse,
			&Result{MTU: 1300, Upper: 1500, Probes: 9, Stopped: "time budget of 2s spent"},
			want{report.Error, []string{"The path MTU search toward us is unfinished (time budget of 2s spent)", "packets of 1300 bytes", "was not established"}, []string{"narrow link", "black hole"}, "", ""}},
		{"unfinished, a frag-needed seen on the way", report.Forward,
			&Result{MTU: 1300, Upper: 1500, Signalled: true, ICMPFrom: r1, ICMPMTU: 1400, Stopped: "size bound reached (12 sizes): the MTU is between 1300 and 1399"},
			want{report.Error, []string{"unfinished (size bound reached"}, []string{"narrow link"}, "", "198.51.100.1"}},
		{"full size", report.Forward, &Result{MTU: 1500, Exact: true, Probes: 2},
			want{report.Pass, []string{"Path MTU is 1500 bytes: full-size packets pass with DF set."}, nil, "", ""}},
		{"the largest size asked for passed", report.Forward, &Result{MTU: 1400, Exact: true, Probes: 2},
			want{report.Pass, []string{"Path MTU is at least 1400 bytes (the largest size tried)."}, nil, "", ""}},
		{"larger sizes drew another ICMP error", report.Forward, &Result{MTU: 1400, Exact: true, Upper: 1401},
			want{report.Dropped, []string{"larger packets with DF set do not arrive and no ICMP fragmentation-needed came back"}, []string{"says so"}, "", ""}},
		{"larger sizes refused by a router's admin-prohibited (scratch path: nft reject on r1)", report.Forward,
			&Result{MTU: 1350, Exact: true, Upper: 1351, ICMPFrom: r1, ICMPMTU: 1400, Steps: []Step{
				{Size: 1500, TTL: 64, Outcome: "frag-needed", From: r1, MTU: 1400},
				{Size: 1351, TTL: 64, Outcome: "unreachable", From: r1}}},
			want{report.Dropped, []string{"Path MTU is 1350 bytes: 1351-byte packets with DF set do not arrive, and 198.51.100.1 answered them with an ICMP destination unreachable, not a fragmentation-needed"}, []string{"at least", "says so"}, "", "198.51.100.1"}},
		{"no size came back", report.Reverse, nil,
			want{report.Error, []string{"The path MTU search toward us found no size that arrives."}, nil, "", ""}},
	} {
		t.Run(c.name, func(t *testing.T) {
			r := c.res.Judge(c.dir)
			if r.Probe != "pmtu" || r.Direction != c.dir || r.Verdict != c.want.verdict {
				t.Errorf("row %s %s %s, want pmtu %s %s: %s", r.Probe, r.Direction, r.Verdict, c.dir, c.want.verdict, r.Detail)
			}
			for _, s := range c.want.has {
				if !strings.Contains(r.Detail, s) {
					t.Errorf("detail lacks %q: %s", s, r.Detail)
				}
			}
			for _, s := range c.want.hasNot {
				if strings.Contains(r.Detail, s) {
					t.Errorf("detail claims %q: %s", s, r.Detail)
				}
			}
			if got := ""; r.Hop != nil {
				got = r.Hop.Addr
				if got != c.want.hop {
					t.Errorf("hop %+v, want %q", r.Hop, c.want.hop)
				}
			} else if c.want.hop != "" {
				t.Errorf("no hop, want %q", c.want.hop)
			}
			switch ic := r.Evidence.ICMP; {
			case c.want.icmp == "" && ic != nil:
				t.Errorf("evidence names a fragmentation-needed nobody sent: %+v", *ic)
			case c.want.icmp != "" && (ic == nil || ic.From != c.want.icmp || ic.MTU != c.res.ICMPMTU):
				t.Errorf("evidence icmp %+v, want from %s mtu %d", ic, c.want.icmp, c.res.ICMPMTU)
			}
			if c.res != nil && (r.Evidence.Size != c.res.MTU || r.Evidence.Attempts != c.res.Probes) {
				t.Errorf("evidence size %d attempts %d, want %d %d", r.Evidence.Size, r.Evidence.Attempts, c.res.MTU, c.res.Probes)
			}
		})
	}
}
