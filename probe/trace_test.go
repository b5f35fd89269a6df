package probe

import (
	"encoding/binary"
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

// TestTraceReverseSameFiveTuple: the reverse copies a trace asks the agent for keep one
// five-tuple at every TTL (Paris traceroute): built by the agent's own builder from the
// request, every TTL's copy of esp, ah and icmp-large carries the same SPI / echo id and
// its own IP ID (on every fragment), the IP ID the tracer matches it by; the agent
// validates the request whole and reports the IP ID each probe carried.
func TestTraceReverseSameFiveTuple(t *testing.T) {
	r := &checkRun{src: netip.MustParseAddr("198.51.100.10"), cfg: CheckConfig{Target: netip.MustParseAddr("203.0.113.10")},
		agentIP: netip.MustParseAddr("203.0.113.10"), peer: netip.MustParseAddr("198.51.100.10"),
		byNonce: map[uint32]attemptRef{}, byIPID: map[ipidKey]attemptRef{}}
	tr := r.tracer(8, time.Second)
	ids := []ID{ESP, AH, ICMPLarge}
	for _, id := range ids {
		tr.add(id, true, false)
	}
	var req []ReverseProbe
	var cs []*ttlCopy
	for lo := 1; lo <= 8; lo += 4 { // two requests, as sendReverse sends them in chunks
		q, c, err := tr.reverseRequest(tr.sendOrder(true), lo, lo+3)
		if err != nil {
			t.Fatal(err)
		}
		s := &session{}
		errs, err := s.checkReverse(&sendReverseReq{Probes: q}, r.agentIP, r.peer)
		if err != nil {
			t.Fatalf("the agent refuses the trace's request: %v", err)
		}
		for i, e := range errs {
			if e != "" {
				t.Fatalf("the agent refuses probe %d (%+v): %s", i, q[i], e)
			}
		}
		req, cs = append(req, q...), append(cs, c...)
	}
	type key struct {
		id  ID
		ttl int
	}
	flow := map[ID]map[uint32]bool{} // the SPI / echo id per probe
	ipids := map[uint16]key{}        // every IP ID on the wire, reverse copies and echoes
	ttls := map[ID]map[int]bool{}    // the TTLs seen per probe
	var pk Packets
	for i, p := range req {
		if err := buildReverse(r.agentIP, r.peer, p, &pk); err != nil {
			t.Fatalf("agent builds %+v: %v", p, err)
		}
		c := cs[i]
		ipid := uint16(pk.Wire[0][4])<<8 | uint16(pk.Wire[0][5])
		for j, w := range pk.Wire {
			if got := uint16(w[4])<<8 | uint16(w[5]); got != ipid {
				t.Errorf("%s ttl %d: fragment %d has IP ID %d, fragment 0 %d", p.ID, p.TTL, j, got, ipid)
			}
			if int(w[8]) != c.ttl {
				t.Errorf("%s: packet TTL %d, copy's %d", p.ID, w[8], c.ttl)
			}
		}
		if ipid != c.ipid {
			t.Errorf("%s ttl %d: the agent sends IP ID %d, the tracer matches by %d", p.ID, c.ttl, ipid, c.ipid)
		}
		if tr.byIPID[ipidKey{true, pk.Proto, ipid}] != c {
			t.Errorf("%s ttl %d: IP ID %d does not lead to its copy", p.ID, c.ttl, ipid)
		}
		if o, dup := ipids[ipid]; dup {
			t.Errorf("IP ID %d on %s ttl %d and on %s ttl %d", ipid, p.ID, c.ttl, o.id, o.ttl)
		}
		ipids[ipid] = key{p.ID, c.ttl}
		if c.w.companion {
			continue
		}
		if p.IPID == 0 {
			t.Errorf("%s ttl %d: no ip_id asked for", p.ID, c.ttl)
		}
		ihl := int(pk.Wire[0][0]&0x0f) * 4
		pay := pk.Wire[0][ihl:]
		var f uint32
		switch p.ID {
		case ESP:
			f = binary.BigEndian.Uint32(pay[0:4])
		case AH:
			f = binary.BigEndian.Uint32(pay[4:8])
		case ICMPLarge:
			if len(pk.Wire) < 2 {
				t.Errorf("icmp-large built in %d packet(s), want fragments", len(pk.Wire))
			}
			f = uint32(binary.BigEndian.Uint16(pay[4:6]))
		default:
			t.Fatalf("unexpected probe %s", p.ID)
		}
		if flow[p.ID] == nil {
			flow[p.ID], ttls[p.ID] = map[uint32]bool{}, map[int]bool{}
		}
		flow[p.ID][f] = true
		ttls[p.ID][c.ttl] = true
	}
	for _, id := range ids {
		if len(ttls[id]) != 8 {
			t.Errorf("%s: copies for TTLs %v, want 1–8", id, ttls[id])
		}
		if len(flow[id]) != 1 {
			t.Errorf("%s: %d different SPIs / echo ids over its TTLs (%v), want one", id, len(flow[id]), flow[id])
		}
	}
}

// TestTraceReverseOldAgent: an agent that ignores ip_id (older than ReverseProbe.IPID: its
// results carry no IP ID) sent every TTL's copy with the same IP ID. The tracer does not
// match anything to those copies, and says the reverse walk was not traced, with no hop.
func TestTraceReverseOldAgent(t *testing.T) {
	r := &checkRun{src: netip.MustParseAddr("198.51.100.10"), cfg: CheckConfig{Target: netip.MustParseAddr("203.0.113.10")},
		agentIP: netip.MustParseAddr("203.0.113.10"), peer: netip.MustParseAddr("198.51.100.10"), agent: &AgentClient{},
		byNonce: map[uint32]attemptRef{}, byIPID: map[ipidKey]attemptRef{}}
	tr := r.tracer(4, time.Second)
	w := tr.add(ESP, true, false)
	req, cs, err := tr.reverseRequest(tr.sendOrder(true), 1, 4)
	if err != nil {
		t.Fatal(err)
	}
	// A current agent: every copy sent, matched by the IP ID asked for.
	res := make([]ReverseResult, len(req))
	for i, p := range req {
		res[i] = ReverseResult{ID: p.ID, Nonce: p.Nonce, IPID: p.IPID, Packets: 1, Sent: time.Unix(1000, 0)}
		if p.IPID == 0 {
			res[i].IPID = uint16(p.Nonce)
		}
	}
	if tr.takeResults(req[:2], cs[:2], res[:2]) {
		t.Fatal("a current agent's results read as an old agent's")
	}
	// An old agent: no IP ID in its results.
	for i := 2; i < len(res); i++ {
		res[i].IPID = 0
	}
	if !tr.takeResults(req[2:], cs[2:], res[2:]) {
		t.Fatal("an old agent's results (no IP ID) went unnoticed")
	}
	for i, c := range cs[2:] {
		if c.w == w && (!c.sent.IsZero() || tr.byIPID[ipidKey{true, ProtoESP, c.ipid}] != nil) {
			t.Errorf("copy %d (ttl %d) of an old agent is still matched", i+2, c.ttl)
		}
	}
	// What an old agent's copy carries (its nonce's IP ID) leads to no copy.
	if c := tr.byIPID[ipidKey{true, ProtoESP, uint16(w.nonce)}]; c != nil {
		t.Errorf("the walk nonce's IP ID %d leads to copy ttl %d", uint16(w.nonce), c.ttl)
	}
	p := tr.path(w)
	res0 := traceResult(w, p, report.Reverse)
	if res0.Verdict != report.Skipped || res0.Hop != nil || !strings.Contains(res0.Detail, "Not traced: the agent did not put the IP IDs asked for") {
		t.Fatalf("old agent: verdict %s, hop %+v, detail %q", res0.Verdict, res0.Hop, res0.Detail)
	}
}
