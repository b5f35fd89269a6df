package probe

import (
	"net/netip"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/ipsecpath/ipsecpath/probe/wire"
	"github.com/ipsecpath/ipsecpath/report"
)

// fakeTrace builds a finished forward trace of probe id without sockets: answers maps a
// TTL to what came back for the traced probe, echo to what came back for the reference
// echo. "far" marks arrival at the far end; an address a time-exceeded from it.
func fakeTrace(t *testing.T, id ID, agent bool, answers, echo map[int]string, echoDelay time.Duration) (*tracer, *walk) {
	t.Helper()
	r := &checkRun{src: netip.MustParseAddr("198.51.100.10"), cfg: CheckConfig{Target: netip.MustParseAddr("203.0.113.10")},
		byNonce: map[uint32]attemptRef{}, byIPID: map[ipidKey]attemptRef{}}
	if agent {
		r.agent = &AgentClient{}
	}
	tr := r.tracer(8, time.Second)
	w := tr.add(id, false, true)
	frags := []report.Fragment{{Offset: 0, Length: 100}}
	if id.Fragmented() {
		frags = []report.Fragment{{Offset: 0, Length: 1256, More: true}, {Offset: 1256, Length: 1256, More: true}, {Offset: 2512, Length: 468}}
	}
	sent := time.Unix(1000, 0)
	fill := func(w *walk, ans map[int]string, frags []report.Fragment, delay time.Duration) {
		w.frags = frags
		for ttl := 1; ttl <= 8; ttl++ {
			c := &ttlCopy{w: w, ttl: ttl, ipid: uint16(ttl), sent: sent.Add(delay)}
			w.copies = append(w.copies, c)
			switch a := ans[ttl]; {
			case a == "far":
				tr.arrived(c, -1)
			case strings.HasPrefix(a, "first-only"):
				tr.arrived(c, 0)
			case strings.HasPrefix(a, "refused "):
				e := ICMPError{From: netip.MustParseAddr(strings.TrimPrefix(a, "refused ")), Type: wire.ICMPUnreach, Code: wire.CodeAdminProhibited}
				tr.icmp(c, e, sent.Add(time.Millisecond), r.cfg.Target)
			case a != "":
				e := ICMPError{From: netip.MustParseAddr(a), Type: wire.ICMPTimeExceeded}
				tr.icmp(c, e, sent.Add(time.Millisecond), r.cfg.Target)
			}
		}
	}
	fill(w, answers, frags, 0)
	fill(w.echo, echo, []report.Fragment{{Offset: 0, Length: 108}}, echoDelay)
	return tr, w
}

func TestTracePathBrackets(t *testing.T) {
	const r1, r2, rsp = "198.51.100.1", "192.0.2.66", "203.0.113.10"
	passing := map[int]string{1: r1, 2: r2, 3: "far", 4: "far", 5: "far", 6: "far", 7: "far", 8: "far"}
	for _, c := range []struct {
		name        string
		id          ID
		agent       bool
		probe, echo map[int]string
		farEnd      bool
		last, first string
		detail      []string
		echoDelay   time.Duration
	}{
		{name: "clean", id: ESP, agent: true, probe: passing, echo: passing, farEnd: true, last: "3 " + rsp, first: "-",
			detail: []string{"reaches 203.0.113.10 (hop 3): the agent saw it"}},
		{name: "dies at r1 or r2", id: ESP, agent: true, probe: map[int]string{1: r1}, echo: passing, last: "1 " + r1, first: "2 " + r2,
			detail: []string{"dies between 198.51.100.1 (hop 1) and 192.0.2.66 (hop 2): 198.51.100.1 drops it on its way out, or 192.0.2.66 on its way in"}},
		// r1 answers nothing, ever: the bracket widens to hop 0, r1 is never named.
		{name: "silent r1", id: ESP, agent: true, probe: map[int]string{}, echo: map[int]string{2: r2, 3: "far", 4: "far"}, last: "0 198.51.100.10", first: "2 " + r2,
			detail: []string{"between 198.51.100.10 (hop 0) and 192.0.2.66 (hop 2)", "Hop 1 sent no time-exceeded"}},
		// Nothing beyond the last hop answers anything: no first missed, not narrowed.
		{name: "dark beyond", id: ESP, agent: true, probe: map[int]string{1: r1}, echo: map[int]string{1: r1}, last: "1 " + r1, first: "-",
			detail: []string{"dies after 198.51.100.1 (hop 1)", "not narrowed"}},
		{name: "refused", id: AH, agent: true, probe: map[int]string{1: r1, 2: r2, 3: "refused " + r2, 4: "refused " + r2}, echo: passing, last: "2 " + r2, first: "3 " + rsp,
			detail: []string{"refused", "from 192.0.2.66"}},
		{name: "first fragment only", id: ESPFrag, agent: true, probe: map[int]string{1: r1, 2: r2, 3: "first-only", 4: "first-only"}, echo: passing, farEnd: true,
			last: "0 198.51.100.10", first: "3 " + rsp, detail: []string{"the first fragment reaches 203.0.113.10 (hop 3)", "none of its 2 non-first fragments", "non-first fragments only"}},
		// The echo left long after the probe's copy: a router's ICMP budget may have grown in
		// between, so its answers say nothing about the probe's copy.
		{name: "late echo", id: ESP, agent: true, probe: map[int]string{1: r1}, echo: passing, echoDelay: 2 * time.Second, last: "1 " + r1, first: "-",
			detail: []string{"not narrowed"}},
		{name: "one-ended fragments", id: ESPFrag, probe: map[int]string{1: r1}, echo: passing, last: "1 " + r1, first: "2 " + r2,
			detail: []string{"first fragment dies between", "no agent watches the far end"}},
	} {
		t.Run(c.name, func(t *testing.T) {
			tr, w := fakeTrace(t, c.id, c.agent, c.probe, c.echo, c.echoDelay)
			p := tr.path(w)
			if p.FarEnd != c.farEnd {
				t.Errorf("far_end %v, want %v", p.FarEnd, c.farEnd)
			}
			if got := refString(p.LastReached); got != c.last {
				t.Errorf("last_reached %s, want %s", got, c.last)
			}
			if got := refString(p.FirstMissed); got != c.first {
				t.Errorf("first_missed %s, want %s", got, c.first)
			}
			for _, d := range c.detail {
				if !strings.Contains(p.Detail, d) {
					t.Errorf("detail %q lacks %q", p.Detail, d)
				}
			}
		})
	}
}

func refString(h *report.HopRef) string {
	if h == nil {
		return "-"
	}
	return strings.TrimSpace(strconv.Itoa(h.TTL) + " " + h.Addr)
}
