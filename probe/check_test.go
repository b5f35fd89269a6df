package probe

import (
	"encoding/binary"
	"net/netip"
	"testing"
	"time"

	"github.com/ipsecpath/ipsecpath/probe/wire"
	"github.com/ipsecpath/ipsecpath/report"
)

// asSeen decodes a packet we built into what a capture records of it.
func asSeen(t *testing.T, pkt []byte) Seen {
	t.Helper()
	var h IPv4Header
	if err := h.DecodeFromBytes(pkt); err != nil {
		t.Fatal(err)
	}
	s := Seen{At: time.Now(), Src: h.Src, Dst: h.Dst, Proto: h.Proto, IPID: h.ID, Offset: h.Offset,
		More: h.MF, DF: h.DF, TTL: h.TTL - 2, TotalLen: h.TotalLen}
	if h.Offset == 0 {
		s.Head = append([]byte(nil), h.Payload[:min(len(h.Payload), HeadLen)]...)
	}
	return s
}

// icmpError wraps the start of pkt in an ICMP error of type/code sent by from to pkt's source.
func icmpError(t *testing.T, from netip.Addr, typ, code uint8, pkt []byte) Seen {
	t.Helper()
	var h IPv4Header
	if err := h.DecodeFromBytes(pkt); err != nil {
		t.Fatal(err)
	}
	quote := pkt[:min(len(pkt), h.IHL+8)]
	msg := make([]byte, 8+len(quote))
	msg[0], msg[1] = typ, code
	copy(msg[8:], quote)
	binary.BigEndian.PutUint16(msg[2:4], ^wire.Fold(wire.Add(0, msg)))
	return Seen{At: time.Now(), Src: from, Dst: h.Src, Proto: ProtoICMP, IPID: 4242, TTL: 63,
		TotalLen: 20 + len(msg), Head: msg[:min(len(msg), HeadLen)]}
}

// TestCheckMapping feeds the capture side of a run with packets built by Build, and checks
// that every fragment lands on the right probe, direction and attempt, and that ICMP errors
// and answers land on the probe they quote.
func TestCheckMapping(t *testing.T) {
	us, them := netip.MustParseAddr("198.51.100.10"), netip.MustParseAddr("203.0.113.10")
	router := netip.MustParseAddr("192.0.2.66")
	r := &checkRun{clk: wallClock{}, cfg: CheckConfig{Target: them, Probes: []ID{ESPFrag, AH, TCP(445)}}, src: us, peer: us, agentIP: them,
		byNonce: map[uint32]attemptRef{}, byIPID: map[ipidKey]attemptRef{}, agent: &AgentClient{}}
	r.plan()
	find := func(id ID, d report.Direction) *pending {
		for _, p := range r.list {
			if p.out.Probe == id && p.out.Direction == d {
				return p
			}
		}
		t.Fatalf("no pending %s %s", id, d)
		return nil
	}
	// The unfragmented reference is planned for esp-frag, unreported.
	if p := find(ESP, report.Forward); !p.out.Reference {
		t.Errorf("esp should be a reference of esp-frag")
	}
	var pk Packets
	build := func(p *pending) [][]byte {
		t.Helper()
		if _, err := r.newAttempt(p, &pk); err != nil {
			t.Fatal(err)
		}
		var out [][]byte
		for _, w := range pk.Wire {
			out = append(out, append([]byte(nil), w...))
		}
		return out
	}
	fEF, rEF := find(ESPFrag, report.Forward), find(ESPFrag, report.Reverse)
	a1 := build(fEF) // attempt 1: every fragment arrives at the agent
	a2 := build(fEF) // attempt 2: only the first
	rv := build(rEF) // reverse: the last fragment only (non-first, mapped by IP ID)
	if len(a1) < 3 {
		t.Fatalf("esp-frag cut into %d fragments, want ≥ 3", len(a1))
	}
	for _, w := range a1 {
		s := asSeen(t, w)
		r.arrived(&s, false)
	}
	s := asSeen(t, a2[0])
	r.arrived(&s, false)
	s = asSeen(t, rv[len(rv)-1])
	r.local(&s)
	// A stranger whose IP ID matches the reverse probe's, at offset 0: not ours.
	stranger := append([]byte(nil), rv[0]...)
	binary.BigEndian.PutUint32(stranger[20:24], 0x12345678) // another SPI: no marker match
	s = asSeen(t, stranger)
	r.local(&s)

	if !fEF.decided || !fEF.out.Attempts[0].complete() || len(fEF.out.Attempts[1].Seen) != 1 {
		t.Errorf("forward esp-frag: decided %v, attempts %+v", fEF.decided, fEF.out.Attempts)
	}
	if rEF.decided || len(rEF.out.Attempts[0].Seen) != 1 || rEF.out.Attempts[0].Seen[0].Offset == 0 {
		t.Errorf("reverse esp-frag: decided %v, seen %+v (want only the last fragment)", rEF.decided, rEF.out.Attempts[0].Seen)
	}

	// AH refused by a router: the ICMP error quotes the probe and lands on it, forward.
	fAH := find(AH, report.Forward)
	ah := build(fAH)
	s = icmpError(t, router, 3, 13, ah[0])
	r.local(&s)
	if len(fAH.out.ICMP) != 1 || fAH.out.ICMP[0].From != router || fAH.out.ICMP[0].Code != 13 || fAH.out.ICMP[0].TTL != 63 {
		t.Errorf("ah ICMP %+v", fAH.out.ICMP)
	}
	// With an agent, an ICMP error does not settle the probe: only the agent's report does.
	if fAH.decided {
		t.Errorf("ah decided on an ICMP error while an agent watches")
	}

	// A reset in the target's name for the SYN: a reply to tcp:445, forward.
	fT := find(TCP(445), report.Forward)
	syn := build(fT)
	var h IPv4Header
	h.DecodeFromBytes(syn[0])
	rst := make([]byte, 40)
	putIPv4Header(rst, 40, 1, false, 63, ProtoTCP, them, us)
	copy(rst[20:22], h.Payload[2:4])                                                  // source port: the SYN's destination
	copy(rst[22:24], h.Payload[0:2])                                                  // destination port: the SYN's source
	binary.BigEndian.PutUint32(rst[28:32], binary.BigEndian.Uint32(h.Payload[4:8])+1) // ack = ISN + 1
	rst[32], rst[33] = 5<<4, TCPRst|TCPAck
	s = asSeen(t, rst)
	s.TTL = 63
	r.local(&s)
	if len(fT.out.Replies) != 1 || fT.out.Replies[0].Kind != AnswerRST || fT.out.Replies[0].TTL != 63 {
		t.Errorf("tcp:445 replies %+v", fT.out.Replies)
	}

	// Reverse refusals come in the agent's report: a router's admin-prohibited for the
	// agent's AH (sent to the agent, quoting the probe to us), and a reset in our name for
	// the agent's SYN. They land on the reverse probes, not on the forward ones.
	rAH := find(AH, report.Reverse)
	rah := build(rAH)
	s = icmpError(t, router, 3, 13, rah[0])
	r.reverseAnswer(&s)
	if len(rAH.out.ICMP) != 1 || rAH.out.ICMP[0].From != router || len(fAH.out.ICMP) != 1 {
		t.Errorf("reverse ah ICMP %+v (forward ah %d errors, want 1)", rAH.out.ICMP, len(fAH.out.ICMP))
	}
	rT := find(TCP(445), report.Reverse)
	rsyn := build(rT)
	h.DecodeFromBytes(rsyn[0])
	rrst := make([]byte, 40)
	putIPv4Header(rrst, 40, 2, false, 64, ProtoTCP, us, them)
	copy(rrst[20:22], h.Payload[2:4])
	copy(rrst[22:24], h.Payload[0:2])
	binary.BigEndian.PutUint32(rrst[28:32], binary.BigEndian.Uint32(h.Payload[4:8])+1)
	rrst[32], rrst[33] = 5<<4, TCPRst|TCPAck
	s = asSeen(t, rrst)
	s.TTL = 63
	r.reverseAnswer(&s)
	if len(rT.out.Replies) != 1 || rT.out.Replies[0].Kind != AnswerRST || rT.out.Replies[0].From != us || len(fT.out.Replies) != 1 {
		t.Errorf("reverse tcp:445 replies %+v (forward %d, want 1)", rT.out.Replies, len(fT.out.Replies))
	}
	// What the agent's capture holds of the probes themselves is not an answer.
	s = asSeen(t, rah[0])
	r.reverseAnswer(&s)
	if len(rAH.out.ICMP) != 1 || len(rAH.out.Replies) != 0 {
		t.Errorf("the probe itself was taken as an answer: %+v %+v", rAH.out.ICMP, rAH.out.Replies)
	}
	// The agent's report settles them once refusalGrace has passed with nothing seen here.
	r.settle(time.Now().Add(refusalGrace))
	if !rAH.decided || !rT.decided {
		t.Errorf("reverse refusals not settled: ah %v, tcp:445 %v", rAH.decided, rT.decided)
	}

	// The verdicts that follow: forward esp-frag passes, reverse partial, ah blocked by
	// the router both ways, tcp:445 blocked both ways (the receiving end never saw the SYN:
	// a middlebox reset).
	outs := make([]Outcome, len(r.list))
	for i, p := range r.list {
		outs[i] = *p.out
	}
	got := map[string]report.Verdict{}
	for _, res := range Judge(outs) {
		got[string(res.Direction)+" "+res.Probe] = res.Verdict
	}
	for k, v := range map[string]report.Verdict{
		"forward esp-frag": report.Pass, "reverse esp-frag": report.Partial,
		"forward ah": report.Blocked, "forward tcp:445": report.Blocked,
		"reverse ah": report.Blocked, "reverse tcp:445": report.Blocked,
	} {
		if got[k] != v {
			t.Errorf("%s: %s, want %s", k, got[k], v)
		}
	}
	if _, ok := got["forward esp"]; ok {
		t.Errorf("the reference esp was reported")
	}
}
