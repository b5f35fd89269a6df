package probe

import (
	"context"
	"encoding/binary"
	"fmt"
	"net/netip"
	"runtime"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/ipsecpath/ipsecpath/probe/wire"
	"github.com/ipsecpath/ipsecpath/testlab"
)

// labAgent runs a real Responder (raw capture and sender) inside the lab's rsp, listening
// on rsp's address, until the test ends.
func labAgent(t *testing.T, l *testlab.Lab, logf func(string, ...any)) (addr string) {
	t.Helper()
	addr = netip.AddrPortFrom(l.Addr("rsp"), ControlPort).String()
	l.ServeIn(t, "rsp", addr, func() (testlab.Server, error) {
		return NewResponder(ResponderConfig{Key: testKey, Version: "lab", Logf: logf})
	})
	return addr
}

// labClient dials the agent from ini (the socket lives in ini's namespace).
func labClient(t *testing.T, l *testlab.Lab, addr string) *AgentClient {
	t.Helper()
	var c *AgentClient
	if err := l.Do("ini", func() error {
		var err error
		c, err = DialAgent(context.Background(), addr, testKey)
		return err
	}); err != nil {
		t.Fatalf("dial agent from ini: %v", err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// sentProbe is one probe sent and what its fragments were.
type sentProbe struct {
	id    ID
	nonce uint32
	ipid  uint16
	proto uint8
	frags []int // offsets, in bytes
}

func (p sentProbe) String() string { return fmt.Sprintf("%s/%#x", p.id, p.nonce) }

// offsetsSeen returns, per IP ID and protocol, the fragment offsets in seen from src.
func offsetsSeen(seen []Seen, src netip.Addr) map[[2]int][]int {
	m := map[[2]int][]int{}
	for _, s := range seen {
		if s.Src != src {
			continue
		}
		k := [2]int{int(s.IPID), int(s.Proto)}
		m[k] = append(m[k], s.Offset)
	}
	for _, v := range m {
		sort.Ints(v)
	}
	return m
}

func sameInts(a, b []int) bool {
	return fmt.Sprint(a) == fmt.Sprint(b)
}

// sentOf records probe id with nonce as built in pk, with its fragments' offsets.
func sentOf(id ID, nonce uint32, pk *Packets) sentProbe {
	sp := sentProbe{id: id, nonce: nonce, ipid: pk.IPID, proto: pk.Proto}
	for _, f := range pk.Frags {
		sp.frags = append(sp.frags, f.Offset)
	}
	return sp
}

// untilAllSeen calls seen every 50 ms until it holds, from src, every fragment of every
// probe in sent, or until d has passed; it returns what is still missing, one line a probe.
func untilAllSeen(d time.Duration, src netip.Addr, sent []sentProbe, seen func() []Seen) []string {
	for deadline := time.Now().Add(d); ; time.Sleep(50 * time.Millisecond) {
		got := offsetsSeen(seen(), src)
		var missing []string
		for _, p := range sent {
			if o := got[[2]int{int(p.ipid), int(p.proto)}]; !sameInts(o, p.frags) {
				missing = append(missing, fmt.Sprintf("%s: offsets %v, want %v", p, o, p.frags))
			}
		}
		if len(missing) == 0 || time.Now().After(deadline) {
			return missing
		}
	}
}

// TestAgentLab runs the agent in the lab's rsp and the initiator in ini, through r1 and r2:
// the agent reports every fragment of ESP, AH, IKE and ICMP probes from ini, keeps the
// kernel from answering ESP/AH with "protocol unreachable", and its reverse probes reach
// ini with every fragment and the real protocols' ports.
func TestAgentLab(t *testing.T) {
	l := testlab.ForTest(t, testlab.Spec{Profile: "clean", NoGateways: true})
	ini, rsp := l.Addr("ini"), l.Addr("rsp")
	var logs logSink
	addr := labAgent(t, l, logs.logf)
	c := labClient(t, l, addr)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()

	h, err := c.Hello(ctx)
	if err != nil {
		t.Fatalf("Hello: %v", err)
	}
	if h.Peer.Addr() != ini || h.Local.Addr() != rsp || !h.Capture || !h.Sender {
		t.Fatalf("Hello %+v: want peer %s, local %s, capture and sender", h, ini, rsp)
	}
	if err := c.StartObserving(ctx); err != nil {
		t.Fatalf("StartObserving: %v", err)
	}

	// ini: a sender, and an observer of what comes back from rsp (ICMP errors, reverse probes).
	var snd *Sender
	var back *Observer
	if err := l.Do("ini", func() error {
		var err error
		if snd, err = OpenSender(SenderConfig{Rate: 1000, Burst: 8}); err != nil {
			return err
		}
		back, err = Observe(context.Background(), ObserverConfig{Peer: rsp})
		return err
	}); err != nil {
		t.Fatal(err)
	}
	defer snd.Close()
	defer back.Close()

	ids := []ID{ESP, ESPFrag, AH, AHFrag, IKE, IKEFrag, NATTFrag, ICMPLarge}
	nonces, err := NewNonces(len(ids))
	if err != nil {
		t.Fatal(err)
	}
	var sent []sentProbe
	var pk Packets
	for i, id := range ids {
		if err := Build(id, BuildParams{Src: ini, Dst: rsp, Nonce: nonces[i]}, &pk); err != nil {
			t.Fatalf("build %s: %v", id, err)
		}
		sp := sentOf(id, pk.Nonce, &pk)
		if id.Fragmented() && len(sp.frags) < 2 {
			t.Fatalf("%s built as %d packet(s)", id, len(sp.frags))
		}
		sent = append(sent, sp)
		if len(pk.Wire) > 1 {
			if err := c.Announce(ctx, pk.IPID); err != nil {
				t.Fatalf("Announce: %v", err)
			}
		}
		if err := snd.Send(ctx, &pk); err != nil {
			t.Fatalf("send %s: %v", id, err)
		}
	}

	// Poll the agent until every fragment of every probe has been reported.
	var rep *AgentReport
	missing := untilAllSeen(5*time.Second, ini, sent, func() []Seen {
		if rep, err = c.Report(ctx); err != nil {
			t.Fatalf("Report: %v", err)
		}
		return rep.Seen
	})
	if len(missing) > 0 {
		t.Fatalf("the agent did not report every fragment:\n%s", strings.Join(missing, "\n"))
	}
	// First fragments carry the nonce, as seen by the agent (TTL 64 less r1 and r2).
	for _, p := range sent {
		found := false
		for _, s := range rep.Seen {
			if s.Offset != 0 || s.IPID != p.ipid || s.Proto != p.proto {
				continue
			}
			found = true
			if s.TTL != DefaultTTL-2 {
				t.Errorf("%s arrived with TTL %d, want %d (two routers)", p, s.TTL, DefaultTTL-2)
			}
			if m, ok := classify(&s); p.id != IKE && p.id != IKEFrag && (!ok || m.Nonce != p.nonce) {
				t.Errorf("%s: first fragment classified %+v, %v", p, m, ok)
			}
		}
		if !found {
			t.Errorf("%s: no first fragment reported", p)
		}
	}
	t.Logf("agent reported %d packets for %d probes (%d lost)", len(rep.Seen), len(sent), rep.Lost)

	// The kernel in rsp stayed quiet about ESP and AH (the agent holds raw sockets for them).
	for _, s := range back.Since(time.Time{}) {
		if s.Proto == 1 && len(s.Head) >= 2 && s.Head[0] == 3 && s.Head[1] == 2 {
			t.Errorf("rsp answered with ICMP protocol unreachable: %+v", s)
		}
	}

	// Reverse: the agent sends toward ini, which sees every fragment, from rsp.
	rids := []ID{ESP, ESPFrag, AHFrag, IKE, IKEFrag, NATT, NATTFrag}
	rn, err := NewNonces(len(rids))
	if err != nil {
		t.Fatal(err)
	}
	var rprobes []ReverseProbe
	for i, id := range rids {
		rprobes = append(rprobes, ReverseProbe{ID: id, Nonce: rn[i]})
	}
	t0 := time.Now()
	res, err := c.SendReverse(ctx, rprobes, 0)
	if err != nil {
		t.Fatalf("SendReverse: %v", err)
	}
	t.Logf("send-reverse of %d probes took %v", len(rprobes), time.Since(t0).Round(time.Millisecond))
	var rsent []sentProbe
	for i, r := range res {
		if r.Error != "" || r.Packets == 0 || r.ID != rids[i] || r.Nonce != rn[i] {
			t.Fatalf("reverse result %+v", r)
		}
		// Rebuild it to know its fragments (Build is deterministic for given params).
		if err := Build(r.ID, BuildParams{Src: rsp, Dst: ini, Nonce: r.Nonce}, &pk); err != nil {
			t.Fatal(err)
		}
		if len(pk.Wire) != r.Packets || pk.WireBytes() != r.Bytes {
			t.Fatalf("%s: agent sent %d packets/%d bytes, Build gives %d/%d", r.ID, r.Packets, r.Bytes, len(pk.Wire), pk.WireBytes())
		}
		rsent = append(rsent, sentOf(r.ID, r.Nonce, &pk))
	}
	missing = untilAllSeen(3*time.Second, rsp, rsent, func() []Seen { return back.Since(t0) })
	if len(missing) > 0 {
		t.Fatalf("reverse probes did not all reach ini:\n%s", strings.Join(missing, "\n"))
	}
	// UDP reverse probes come from the real ports.
	for _, s := range back.Since(t0) {
		if s.Proto != ProtoUDP || s.Offset != 0 || len(s.Head) < 4 {
			continue
		}
		sp, dp := int(s.Head[0])<<8|int(s.Head[1]), int(s.Head[2])<<8|int(s.Head[3])
		if (sp != PortIKE || dp != PortIKE) && (sp != PortNATT || dp != PortNATT) {
			t.Errorf("reverse UDP probe %d→%d, want 500→500 or 4500→4500", sp, dp)
		}
	}

	if err := c.Stop(ctx); err != nil {
		t.Fatalf("Stop: %v", err)
	}
	waitFor(t, "session log line", func() bool {
		for _, l := range logs.get() {
			if strings.HasPrefix(l, "session") {
				t.Logf("agent: %s", l)
				return true
			}
		}
		return false
	})
}

// TestAgentLabCaptureFlood floods the agent's capture with packets from the authenticated
// initiator. Background traffic that is no probe (ESP without a probe marker, as a busy
// tunnel sends) is counted and not kept, and probes sent in the middle of it are still
// reported with every fragment. A flood of probe packets fills the session's bounded list
// and the rest is counted as lost. Memory stays bounded and the agent serves a new session.
func TestAgentLabCaptureFlood(t *testing.T) {
	l := testlab.ForTest(t, testlab.Spec{Profile: "clean", NoGateways: true})
	ini, rsp := l.Addr("ini"), l.Addr("rsp")
	addr := labAgent(t, l, t.Logf)
	c := labClient(t, l, addr)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	if err := c.StartObserving(ctx); err != nil {
		t.Fatalf("StartObserving: %v", err)
	}
	var snd *Sender
	if err := l.Do("ini", func() error {
		var err error
		snd, err = OpenSender(SenderConfig{Rate: MaxRate, Burst: 64})
		return err
	}); err != nil {
		t.Fatal(err)
	}
	defer snd.Close()

	settle := func() runtime.MemStats {
		runtime.GC()
		runtime.GC()
		var m runtime.MemStats
		runtime.ReadMemStats(&m)
		return m
	}
	before := settle()
	const flood = 30000 // several times the capture ring (DefaultObserverCapacity) and MaxSessionSeen
	nonces, err := NewNonces(4)
	if err != nil {
		t.Fatal(err)
	}
	// Junk: an ESP packet whose marker is wiped, i.e. ordinary ESP traffic.
	var pk Packets
	if err := Build(ESP, BuildParams{Src: ini, Dst: rsp, Nonce: nonces[0]}, &pk); err != nil {
		t.Fatal(err)
	}
	junk := append([]byte(nil), pk.Wire[0]...)
	clear(junk[20+8 : 20+8+wire.MarkerLen])
	junkFrag := append([]byte(nil), junk...)
	binary.BigEndian.PutUint16(junkFrag[6:8], 1480/8) // fragment offset 1480, no more fragments (the kernel fills the checksum)
	// Probes sent in the middle of the junk.
	probeIDs := []ID{ESPFrag, AHFrag, ICMPLarge}
	var sent []sentProbe
	start := time.Now()
	for i := range flood {
		if i == flood/2 {
			for k, id := range probeIDs {
				if err := Build(id, BuildParams{Src: ini, Dst: rsp, Nonce: nonces[1+k]}, &pk); err != nil {
					t.Fatal(err)
				}
				sent = append(sent, sentOf(id, pk.Nonce, &pk))
				if err := c.Announce(ctx, pk.IPID); err != nil {
					t.Fatalf("Announce: %v", err)
				}
				if err := snd.Send(ctx, &pk); err != nil {
					t.Fatalf("send %s: %v", id, err)
				}
			}
		}
		j := junk
		if i%2 == 1 {
			// A busy gateway's fragmented traffic: non-first fragments with IP IDs the
			// initiator did not announce. Not the agent's business.
			j = junkFrag
			binary.BigEndian.PutUint16(j[4:6], uint16(i))
			if id := uint16(i); id == uint16(nonces[1]) || id == uint16(nonces[2]) || id == uint16(nonces[3]) {
				continue // the probes' IP IDs (Build's default: the nonce's low bits)
			}
		}
		if err := snd.WritePacket(ctx, j); err != nil {
			t.Fatalf("flood: %v", err)
		}
	}
	t.Logf("sent %d junk ESP packets and %d probes in %v", flood, len(sent), time.Since(start).Round(time.Millisecond))
	var rep *AgentReport
	missing := untilAllSeen(5*time.Second, ini, sent, func() []Seen {
		if rep, err = c.Report(ctx); err != nil {
			t.Fatalf("Report: %v", err)
		}
		return rep.Seen
	})
	t.Logf("junk flood: agent kept %d packets, ignored %d other, lost %d", len(rep.Seen), rep.Other, rep.Lost)
	if len(missing) > 0 {
		t.Fatalf("probes sent amid the flood not reported:\n%s", strings.Join(missing, "\n"))
	}
	for _, s := range rep.Seen {
		if s.Offset > 0 && s.IPID != sent[0].ipid && s.IPID != sent[1].ipid && s.IPID != sent[2].ipid {
			t.Fatalf("the agent kept a non-first fragment with IP ID %#x that no probe announced: %+v", s.IPID, s)
		}
	}
	if rep.Other+rep.Lost < flood/2 {
		t.Fatalf("%d junk packets sent, agent counted %d other and %d lost", flood, rep.Other, rep.Lost)
	}

	// A flood of probe packets (one ESP probe, repeated): the session list is capped.
	if err := Build(ESP, BuildParams{Src: ini, Dst: rsp, Nonce: nonces[0]}, &pk); err != nil {
		t.Fatal(err)
	}
	for range 2 * flood {
		if err := snd.Send(ctx, &pk); err != nil {
			t.Fatalf("flood: %v", err)
		}
	}
	time.Sleep(200 * time.Millisecond)
	rep2, err := c.Report(ctx)
	if err != nil {
		t.Fatalf("Report after the probe flood: %v", err)
	}
	after := settle()
	t.Logf("probe flood: agent kept %d packets, lost %d; heap in use %d KiB before the floods, %d KiB after",
		len(rep2.Seen), rep2.Lost, before.HeapInuse>>10, after.HeapInuse>>10)
	if len(rep2.Seen) > MaxSessionSeen {
		t.Fatalf("agent kept %d packets, more than MaxSessionSeen", len(rep2.Seen))
	}
	if rep2.Lost == 0 {
		t.Fatalf("kept %d of %d probe packets and lost none: losses not counted", len(rep2.Seen), 2*flood)
	}
	// Held in memory: the capture ring, the session's list and the client's copies of
	// ≤ MaxSessionSeen packets each (a few MB), not the 90000 packets sent.
	if grow := int64(after.HeapInuse) - int64(before.HeapInuse); grow > 16<<20 {
		t.Fatalf("heap grew by %d MiB during the floods", grow>>20)
	}
	if err := c.Stop(ctx); err != nil {
		t.Fatalf("Stop: %v", err)
	}
	c2 := labClient(t, l, addr)
	if _, err := c2.Hello(ctx); err != nil {
		t.Fatalf("new session after the flood: %v", err)
	}
}

// TestAgentLabReverseICMPError: on ah-reject, r2 answers the agent's reverse AH probe
// with an ICMP admin-prohibited sent to the agent; the agent reports it (the source is the
// router, the quoted probe maps to its nonce), which is what a reverse "blocked" rests on.
func TestAgentLabReverseICMPError(t *testing.T) {
	l := testlab.ForTest(t, testlab.Spec{Profile: "ah-reject", NoGateways: true})
	addr := labAgent(t, l, t.Logf)
	c := labClient(t, l, addr)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := c.StartObserving(ctx); err != nil {
		t.Fatal(err)
	}
	nonces, err := NewNonces(2)
	if err != nil {
		t.Fatal(err)
	}
	res, err := c.SendReverse(ctx, []ReverseProbe{{ID: AH, Nonce: nonces[0]}, {ID: ESP, Nonce: nonces[1]}}, 0)
	if err != nil || res[0].Error != "" || res[1].Error != "" {
		t.Fatalf("SendReverse: %+v, %v", res, err)
	}
	r2 := l.Addr("r2")
	for deadline := time.Now().Add(3 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		rep, err := c.Report(ctx)
		if err != nil {
			t.Fatal(err)
		}
		for _, s := range rep.Seen {
			m, ok := classify(&s)
			if s.Proto == ProtoICMP && s.Src == r2 && ok && m.Kind == KindICMPError && m.Nonce == nonces[0] {
				if s.Head[0] != 3 || s.Head[1] != 13 {
					t.Fatalf("ICMP type %d code %d from r2, want 3/13 (admin-prohibited)", s.Head[0], s.Head[1])
				}
				if m.ID != AH {
					t.Fatalf("ICMP error maps to %+v, want the ah probe", m)
				}
				return
			}
			if ok && m.Nonce == nonces[1] && m.Kind == KindICMPError && s.Src == r2 {
				t.Fatalf("r2 rejected the reverse ESP probe too: %+v", s)
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("no admin-prohibited from r2 (%s) quoting the reverse AH probe in the agent's report: %+v", r2, rep.Seen)
		}
	}
}

// TestAgentLabControlBlackhole: the control channel crosses the path under test. On
// mtu1300-blackhole (r1–r2 link 1300 bytes, ICMP frag-needed dropped) both a large request
// (send-reverse with MaxReverseProbes probes, a few kB of JSON) and large replies (report
// pages) still get through: DialAgent sets TCP_MAXSEG before connecting, which both
// announces the small MSS to the agent and caps what the initiator sends. (With an MSS of
// 1460 this test times out in send-reverse.)
func TestAgentLabControlBlackhole(t *testing.T) {
	l := testlab.ForTest(t, testlab.Spec{Profile: "mtu1300-blackhole", NoGateways: true})
	addr := labAgent(t, l, t.Logf)
	c := labClient(t, l, addr)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if err := c.StartObserving(ctx); err != nil {
		t.Fatal(err)
	}
	nonces, err := NewNonces(MaxReverseProbes)
	if err != nil {
		t.Fatal(err)
	}
	probes := make([]ReverseProbe, MaxReverseProbes)
	for i := range probes {
		probes[i] = ReverseProbe{ID: ESP, Nonce: nonces[i]}
	}
	if b, _ := encodeBody(sendReverseReq{Probes: probes}); len(b) < 2000 {
		t.Fatalf("request body only %d bytes: not a test of the black hole", len(b))
	}
	res, err := c.SendReverse(ctx, probes, 1000)
	if err != nil {
		t.Fatalf("large send-reverse request across the black hole: %v", err)
	}
	if len(res) != MaxReverseProbes {
		t.Fatalf("%d results", len(res))
	}
	// Large replies: 40 forward probes reported back in one page of several kB.
	var snd *Sender
	if err := l.Do("ini", func() error {
		var err error
		snd, err = OpenSender(SenderConfig{Rate: 1000, Burst: 64})
		return err
	}); err != nil {
		t.Fatal(err)
	}
	defer snd.Close()
	var pk Packets
	for i := range 40 {
		if err := Build(ESP, BuildParams{Src: l.Addr("ini"), Dst: l.Addr("rsp"), Nonce: nonces[i]}, &pk); err != nil {
			t.Fatal(err)
		}
		if err := snd.Send(ctx, &pk); err != nil {
			t.Fatal(err)
		}
	}
	time.Sleep(200 * time.Millisecond)
	rep, err := c.Report(ctx)
	if err != nil {
		t.Fatalf("large report across the black hole: %v", err)
	}
	if len(rep.Seen) < 40 {
		t.Fatalf("report holds %d packets, want ≥ 40", len(rep.Seen))
	}
}
