package probe

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/ipsecpath/ipsecpath/probe/wire"
	"github.com/ipsecpath/ipsecpath/report"
	"github.com/ipsecpath/ipsecpath/testlab"
)

// wireRun is one round of probes sent from ini to rsp in a lab, with what each end saw.
type wireRun struct {
	lab      *testlab.Lab
	ini, rsp netip.Addr
	sent     map[uint32]*Packets // by nonce
	atRsp    []Seen              // rsp's Observer (peer ini)
	atIni    []Seen              // ini's Observer (peer rsp): answers and ICMP errors
}

// wireSettle is how long the test waits after the last send for stragglers.
const wireSettle = 700 * time.Millisecond

// runWire brings up a lab with profile, silences nothing, sends every probe in ids from ini
// to rsp and collects what both ends captured. Each class is built with its defaults and a
// fresh nonce; mod may change the parameters.
func runWire(t *testing.T, profile string, ids []ID, mod func(ID, *BuildParams)) *wireRun {
	t.Helper()
	lab := testlab.ForTest(t, testlab.Spec{Profile: profile, NoGateways: true})
	r := &wireRun{lab: lab, ini: lab.Addr("ini"), rsp: lab.Addr("rsp"), sent: map[uint32]*Packets{}}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	// The kernel rate-limits ICMP errors per destination (a burst of 6): lift that in rsp so
	// every probe that nobody listens for gets its "unreachable".
	if out, err := lab.Exec(ctx, "rsp", "sysctl", "-qw", "net.ipv4.icmp_ratelimit=0"); err != nil {
		t.Fatalf("sysctl: %v: %s", err, out)
	}
	var obsR, obsI *Observer
	var snd *Sender
	if err := lab.Do("rsp", func() (err error) {
		obsR, err = Observe(ctx, ObserverConfig{Peer: r.ini})
		return err
	}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { obsR.Close() })
	if err := lab.Do("ini", func() (err error) {
		if obsI, err = Observe(ctx, ObserverConfig{Peer: r.rsp}); err != nil {
			return err
		}
		snd, err = OpenSender(SenderConfig{Rate: 1000, Burst: 8})
		return err
	}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { obsI.Close(); snd.Close() })

	nonces, err := NewNonces(len(ids))
	if err != nil {
		t.Fatal(err)
	}
	for i, id := range ids {
		p := BuildParams{Src: r.ini, Dst: r.rsp, Nonce: nonces[i]}
		if mod != nil {
			mod(id, &p)
		}
		pk := new(Packets)
		if err := Build(id, p, pk); err != nil {
			t.Fatal(err)
		}
		r.sent[p.Nonce] = pk
		if err := snd.Send(ctx, pk); err != nil {
			t.Fatalf("send %s: %v", id, err)
		}
	}
	time.Sleep(wireSettle)
	r.atRsp, r.atIni = obsR.Drain(), obsI.Drain()
	if st := obsR.Stats(); st.Overwritten != 0 || st.KernelDrops != 0 {
		t.Errorf("rsp observer lost packets: %+v", st)
	}
	return r
}

// arrived returns, per nonce, the fragments rsp saw of that probe, mapped by match.
func (r *wireRun) arrived(t *testing.T) map[uint32][]report.Fragment {
	t.Helper()
	got := map[uint32][]report.Fragment{}
	for i := range r.atRsp {
		s := &r.atRsp[i]
		m, ok := r.match(s)
		if !ok || m.Kind != KindProbe {
			continue
		}
		p := r.sent[m.Nonce]
		if p == nil || p.ID != m.ID {
			t.Errorf("rsp saw %+v mapped to %+v: not a probe we sent", s, m)
			continue
		}
		if s.TTL != DefaultTTL-2 { // r1 and r2 each take one
			t.Errorf("%s fragment at %d arrived with TTL %d, want %d", m.ID, s.Offset, s.TTL, DefaultTTL-2)
		}
		got[m.Nonce] = append(got[m.Nonce], report.Fragment{Offset: s.Offset, Length: s.TotalLen - ipv4MinHeader, More: s.More, DF: s.DF})
	}
	return got
}

// match maps what a capture saw to a probe this run sent: first fragments and ICMP errors
// by their head (ClassifyHead), other fragments, and ICMP errors quoting too little to
// classify, by IP ID (every probe of the run has its own).
func (r *wireRun) match(s *Seen) (Match, bool) {
	byIPID := func(proto uint8, id uint16) (Match, bool) {
		for _, pk := range r.sent {
			if pk.Proto == proto && pk.IPID == id {
				return Match{ID: pk.ID, Nonce: pk.Nonce, Kind: KindProbe, DatagramLen: pk.Size}, true
			}
		}
		return Match{}, false
	}
	if s.Offset != 0 {
		return byIPID(s.Proto, s.IPID)
	}
	m, ok := ClassifyHead(s.Proto, s.Head)
	if ok && (m.ID != "" || m.Kind != KindICMPError) {
		return m, true
	}
	if s.Proto == ProtoICMP {
		if e, err := ParseICMPError(s); err == nil {
			if q, qok := byIPID(e.Quoted.Proto, e.Quoted.IPID); qok {
				q.Kind = KindICMPError
				return q, true
			}
		}
	}
	return m, ok
}

// answers returns, per nonce, what came back to ini: replies and ICMP errors.
func (r *wireRun) answers(t *testing.T) map[uint32][]Seen {
	t.Helper()
	got := map[uint32][]Seen{}
	for i := range r.atIni {
		s := r.atIni[i]
		m, ok := r.match(&s)
		if !ok || m.Kind == KindProbe {
			continue
		}
		got[m.Nonce] = append(got[m.Nonce], s)
	}
	return got
}

func sameFragments(a, b []report.Fragment) bool {
	key := func(f report.Fragment) string { return fmt.Sprint(f.Offset, f.Length, f.More, f.DF) }
	ka, kb := make([]string, len(a)), make([]string, len(b))
	for i := range a {
		ka[i] = key(a[i])
	}
	for i := range b {
		kb[i] = key(b[i])
	}
	slices.Sort(ka)
	slices.Sort(kb)
	return slices.Equal(ka, kb)
}

// On a clean path every fragment of every class arrives at rsp and maps back to its nonce;
// and what rsp's kernel answers (ICMP protocol/port unreachable, echo reply, RST) maps back
// to the probe that caused it.
func TestWireLabClean(t *testing.T) {
	t.Parallel()
	ids := []ID{IKE, IKEFrag, NATT, NATTFrag, ESP, ESPFrag, AH, AHFrag, ICMPLarge, TCP(445), TCP(1792), PMTU}
	r := runWire(t, "clean", ids, func(id ID, p *BuildParams) {
		if id == PMTU {
			p.Size, p.DF = 1500, true
		}
		if id == ESPFrag {
			p.Order = []int{2, 1, 0} // last fragment first: still all seen and mapped
		}
	})
	arr := r.arrived(t)
	ans := r.answers(t)
	for nonce, p := range r.sent {
		if !sameFragments(arr[nonce], p.Frags) {
			t.Errorf("%s: rsp saw fragments %v, sent %v", p.ID, arr[nonce], p.Frags)
		}
		var want string
		switch p.ID {
		case ESP, ESPFrag, AH, AHFrag:
			want = fmt.Sprintf("icmp-error 3/%d from %s", wire.CodeProtoUnreach, r.rsp)
		case IKE, IKEFrag, NATT, NATTFrag:
			want = fmt.Sprintf("icmp-error 3/%d from %s", wire.CodePortUnreach, r.rsp)
		case ICMPLarge, PMTU:
			want = "reply echo from " + r.rsp.String()
		default:
			want = "reply rst from " + r.rsp.String()
		}
		var got []string
		for _, s := range ans[nonce] {
			m, _ := r.match(&s)
			switch {
			case m.Kind == KindICMPError:
				e, err := ParseICMPError(&s)
				if err != nil {
					t.Fatal(err)
				}
				got = append(got, fmt.Sprintf("icmp-error %d/%d from %s", e.Type, e.Code, e.From))
			case m.Kind == KindReply && s.Proto == ProtoICMP:
				got = append(got, "reply echo from "+s.Src.String())
			case m.Kind == KindReply && m.TCPFlags&TCPRst != 0:
				got = append(got, "reply rst from "+s.Src.String())
			}
		}
		if !slices.Contains(got, want) {
			t.Errorf("%s (nonce %#x): answers %q, want %q", p.ID, nonce, got, want)
		}
	}
	t.Logf("rsp captured %d packets, ini %d answers, for %d probes", len(r.atRsp), len(r.atIni), len(r.sent))
}

// Non-first fragments dropped by r1: rsp sees only the first fragment of each -frag probe,
// and it still maps to the probe (a "partial" verdict can name what arrived).
func TestWireLabNonFirstFragDrop(t *testing.T) {
	t.Parallel()
	r := runWire(t, "nonfirst-frag-drop", []ID{ESP, ESPFrag, AHFrag, NATTFrag, ICMPLarge}, nil)
	arr := r.arrived(t)
	for nonce, p := range r.sent {
		want := p.Frags
		if p.Fragmented() {
			want = p.Frags[:1]
		}
		if !sameFragments(arr[nonce], want) {
			t.Errorf("%s: rsp saw %v, want %v", p.ID, arr[nonce], want)
		}
	}
}

// r2 rejects AH with ICMP admin-prohibited: the error comes from r2, not from rsp, and
// maps to the AH probe it quotes, fragmented or not.
func TestWireLabAHReject(t *testing.T) {
	t.Parallel()
	r := runWire(t, "ah-reject", []ID{AH, AHFrag, ESP}, nil)
	arr := r.arrived(t)
	ans := r.answers(t)
	for nonce, p := range r.sent {
		switch p.ID {
		case AH, AHFrag:
			if len(arr[nonce]) != 0 {
				t.Errorf("%s arrived at rsp through the reject: %v", p.ID, arr[nonce])
			}
			var ok bool
			for _, s := range ans[nonce] {
				e, err := ParseICMPError(&s)
				if err == nil && e.AdminProhibited() && e.From != r.rsp {
					ok = true
					t.Logf("%s: %s", p.ID, e)
				}
			}
			if !ok {
				t.Errorf("%s: no admin-prohibited from a router among %d answers", p.ID, len(ans[nonce]))
			}
		case ESP:
			if !sameFragments(arr[nonce], p.Frags) {
				t.Errorf("esp: rsp saw %v", arr[nonce])
			}
		}
	}
}

// A DF probe larger than the r1—r2 link gets "fragmentation needed" with the MTU from r1.
func TestWireLabFragNeeded(t *testing.T) {
	t.Parallel()
	r := runWire(t, "mtu1400", []ID{PMTU}, func(_ ID, p *BuildParams) { p.Size, p.DF = 1450, true })
	ans := r.answers(t)
	for nonce := range r.sent {
		var ok bool
		for _, s := range ans[nonce] {
			if e, err := ParseICMPError(&s); err == nil && e.FragNeeded() && e.MTU == 1400 {
				ok = true
			}
		}
		if !ok {
			t.Errorf("no frag-needed with MTU 1400 among %v", ans[nonce])
		}
	}
}

// Sending allocates nothing per packet, pacing included, and a closed Sender says so.
func TestWireLabSenderAllocs(t *testing.T) {
	lab := testlab.ForTest(t, testlab.Spec{NoGateways: true})
	var snd *Sender
	if err := lab.Do("ini", func() (err error) {
		snd, err = OpenSender(SenderConfig{Rate: MaxRate, Burst: 64})
		return err
	}); err != nil {
		t.Fatal(err)
	}
	var p Packets
	if err := Build(ESPFrag, BuildParams{Src: lab.Addr("ini"), Dst: lab.Addr("rsp"), Nonce: tNonce}, &p); err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	if err := snd.Send(ctx, &p); err != nil {
		t.Fatal(err)
	}
	n := testing.AllocsPerRun(100, func() {
		if err := Build(ESPFrag, BuildParams{Src: lab.Addr("ini"), Dst: lab.Addr("rsp"), Nonce: tNonce}, &p); err != nil {
			t.Fatal(err)
		}
		if err := snd.Send(ctx, &p); err != nil {
			t.Fatal(err)
		}
	})
	if n != 0 {
		t.Errorf("Build+Send of a 3-fragment probe: %v allocations, want 0", n)
	}
	// A packet bigger than the link MTU is refused by the kernel with a clear error.
	if err := Build(PMTU, BuildParams{Src: lab.Addr("ini"), Dst: lab.Addr("rsp"), Nonce: tNonce, Size: 1600}, &p); err != nil {
		t.Fatal(err)
	}
	if err := snd.Send(ctx, &p); err == nil || !strings.Contains(err.Error(), "MTU") {
		t.Errorf("1600-byte packet on a 1500 link: %v", err)
	}
	snd.Close()
	if err := snd.Send(ctx, &p); err == nil || !strings.Contains(err.Error(), "closed") {
		t.Errorf("send after Close: %v", err)
	}
	// A cancelled context ends a pacing wait at once.
	var slow *Sender
	if err := lab.Do("ini", func() (err error) { slow, err = OpenSender(SenderConfig{Rate: 1}); return err }); err != nil {
		t.Fatal(err)
	}
	defer slow.Close()
	if err := Build(ESP, BuildParams{Src: lab.Addr("ini"), Dst: lab.Addr("rsp"), Nonce: tNonce}, &p); err != nil {
		t.Fatal(err)
	}
	for i := 0; i < DefaultBurst; i++ { // the burst goes at once
		if err := slow.Send(ctx, &p); err != nil {
			t.Fatal(err)
		}
	}
	cctx, cancel := context.WithCancel(ctx)
	cancel()
	if err := slow.Send(cctx, &p); !errors.Is(err, context.Canceled) {
		t.Errorf("send with a cancelled context: %v", err)
	}
}

// Without CAP_NET_RAW, opening a sender or a capture fails with os.ErrPermission and says
// what is needed.
func TestWireNeedsRaw(t *testing.T) {
	if os.Geteuid() == 0 {
		// As root (CI): run this test again in a copy of the test binary as user nobody,
		// with no capabilities, and require it to pass there.
		testlab.RequireTools(t, "setpriv")
		dir, err := os.MkdirTemp("", "ipt-needsraw-")
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { os.RemoveAll(dir) })
		data, err := os.ReadFile(os.Args[0])
		if err != nil {
			t.Fatal(err)
		}
		bin := filepath.Join(dir, "probe.test")
		if err := os.WriteFile(bin, data, 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.Chmod(dir, 0o755); err != nil {
			t.Fatal(err)
		}
		cmd := exec.Command("setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", "--inh-caps=-all",
			bin, "-test.run=^TestWireNeedsRaw$", "-test.count=1", "-test.v")
		cmd.Dir = dir
		cmd.Env = append(os.Environ(), "CI=") // unprivileged: nothing there may demand root
		out, err := cmd.CombinedOutput()
		if err != nil || !strings.Contains(string(out), "--- PASS: TestWireNeedsRaw") {
			t.Fatalf("as nobody: %v\n%s", err, out)
		}
		return
	}
	_, err := OpenSender(SenderConfig{})
	if !errors.Is(err, os.ErrPermission) || !strings.Contains(err.Error(), "CAP_NET_RAW") {
		t.Errorf("OpenSender: %v", err)
	}
	t.Logf("OpenSender: %v", err)
	if _, err := OpenCapture(CaptureConfig{Peer: tDst}); !errors.Is(err, os.ErrPermission) || !strings.Contains(err.Error(), "CAP_NET_RAW") {
		t.Errorf("OpenCapture: %v", err)
	}
}

// A capture's reads end at the read deadline (os.ErrDeadlineExceeded), and with
// net.ErrClosed after Close: Close is how its reading loops (the Observer's, the agent's)
// are stopped.
func TestWireLabCaptureDeadlines(t *testing.T) {
	t.Parallel()
	lab := testlab.ForTest(t, testlab.Spec{NoGateways: true})
	var c *Capture
	if err := lab.Do("rsp", func() (err error) { c, err = OpenCapture(CaptureConfig{Peer: lab.Addr("ini")}); return err }); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, CaptureSnap)
	if err := c.SetReadDeadline(time.Now().Add(50 * time.Millisecond)); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Read(buf); !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("read past the deadline: %v", err)
	}
	if err := c.SetReadDeadline(time.Time{}); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { _, err := c.Read(buf); done <- err }()
	time.Sleep(30 * time.Millisecond)
	c.Close()
	select {
	case err := <-done:
		if !errors.Is(err, net.ErrClosed) {
			t.Fatalf("read after Close: %v", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Close did not end a blocked Read")
	}
}

// A flood from the peer fills a small ring: the Observer overwrites the oldest, counts
// every overwrite, keeps its size, and still records what comes after.
//
// The flood goes in rounds of floodRound packets, each sent once the Observer has recorded
// the one before (nobody drains the ring meanwhile, so it overflows all the same). Sent in
// one go, the flood raced three queues that hold fewer packets than it: each router's queue
// of packets waiting for ARP (unres_qlen_bytes, 212992 bytes: exactly 256 of these 128-byte
// probes), the veths' backlog (1000) and the capture's receive buffer (512 at the default
// rmem_max). Under load, r1 or r2 resolving its next hop late (its first ARP request
// unanswered, the next one a second later) let only the last 256 packets through, the AH
// probe among them: "Captured:256 Overwritten:0". A round of 64 fits in all three, so every
// packet is recorded whatever the load, and the counts below are exact.
func TestWireLabObserverFlood(t *testing.T) {
	t.Parallel()
	lab := testlab.ForTest(t, testlab.Spec{NoGateways: true})
	ini, rsp := lab.Addr("ini"), lab.Addr("rsp")
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	const capacity, flood, floodRound = 256, 5000, 64
	var o *Observer
	if err := lab.Do("rsp", func() (err error) { o, err = Observe(ctx, ObserverConfig{Peer: ini, Capacity: capacity}); return err }); err != nil {
		t.Fatal(err)
	}
	defer o.Close()
	var snd *Sender
	if err := lab.Do("ini", func() (err error) {
		snd, err = OpenSender(SenderConfig{Rate: MaxRate, Burst: floodRound})
		return err
	}); err != nil {
		t.Fatal(err)
	}
	defer snd.Close()
	// recorded waits until the Observer has recorded n packets in all.
	recorded := func(n uint64) {
		t.Helper()
		for {
			st := o.Stats()
			if st.Captured >= n {
				return
			}
			select {
			case <-o.Wake():
			case <-ctx.Done():
				t.Fatalf("waiting for packet %d: %v; observer %+v, err %v", n, ctx.Err(), st, o.Err())
			}
		}
	}
	var p Packets
	for i := 0; i < flood; i++ {
		if err := Build(ESP, BuildParams{Src: ini, Dst: rsp, Nonce: uint32(0x10001 + i)}, &p); err != nil {
			t.Fatal(err)
		}
		if err := snd.Send(ctx, &p); err != nil {
			t.Fatal(err)
		}
		if (i+1)%floodRound == 0 || i+1 == flood {
			recorded(uint64(i + 1))
		}
	}
	if err := Build(AH, BuildParams{Src: ini, Dst: rsp, Nonce: tNonce}, &p); err != nil {
		t.Fatal(err)
	}
	if err := snd.Send(ctx, &p); err != nil {
		t.Fatal(err)
	}
	recorded(flood + 1)
	got := o.Since(time.Time{})
	st := o.Stats()
	t.Logf("flood of %d: %+v, ring holds %d", flood, st, len(got))
	if want := (ObserverStats{Captured: flood + 1, Overwritten: flood + 1 - capacity}); st != want {
		t.Fatalf("stats %+v after %d packets into %d slots, want %+v", st, flood+1, capacity, want)
	}
	if len(got) != capacity {
		t.Fatalf("ring returned %d packets, capacity %d", len(got), capacity)
	}
	// What is left is the newest: the last capacity-1 packets of the flood, in order, then AH.
	for i := range got[:capacity-1] {
		want := uint32(0x10001 + flood - (capacity - 1) + i)
		if m, ok := classify(&got[i]); !ok || m.ID != ESP || m.Nonce != want {
			t.Fatalf("ring slot %d: %+v %v, want esp nonce %#x", i, m, ok, want)
		}
	}
	if m, ok := classify(&got[capacity-1]); !ok || m.ID != AH || m.Nonce != tNonce {
		t.Fatalf("the probe after the flood: %+v %v", m, ok)
	}
}

// The lab's real strongSwan on rsp answers our ike, ike-frag, natt and natt-frag probes —
// sent from ini's UDP 500/4500 through a raw socket while ini's own charon owns those
// ports — and each answer maps back to its probe by the SPI it echoes.
func TestWireLabGatewayAnswers(t *testing.T) {
	t.Parallel()
	lab := testlab.ForTest(t, testlab.Spec{Profile: "clean"})
	ini, rsp := lab.Addr("ini"), lab.Addr("rsp")
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	var o *Observer
	var snd *Sender
	if err := lab.Do("ini", func() (err error) {
		if o, err = Observe(ctx, ObserverConfig{Peer: rsp}); err != nil {
			return err
		}
		snd, err = OpenSender(SenderConfig{})
		return err
	}); err != nil {
		t.Fatal(err)
	}
	defer o.Close()
	defer snd.Close()
	ids := []ID{IKE, IKEFrag, NATT, NATTFrag}
	nonces, err := NewNonces(len(ids))
	if err != nil {
		t.Fatal(err)
	}
	want := map[uint32]ID{}
	var p Packets
	for i, id := range ids {
		if err := Build(id, BuildParams{Src: ini, Dst: rsp, Nonce: nonces[i]}, &p); err != nil {
			t.Fatal(err)
		}
		want[nonces[i]] = id
		if err := snd.Send(ctx, &p); err != nil {
			t.Fatal(err)
		}
	}
	got := map[uint32]Seen{}
	for len(got) < len(want) && ctx.Err() == nil {
		select {
		case <-o.Wake():
		case <-time.After(100 * time.Millisecond):
		}
		for _, s := range o.Drain() {
			if m, ok := classify(&s); ok && m.Kind == KindReply && want[m.Nonce] == m.ID {
				got[m.Nonce] = s
			}
		}
	}
	for n, id := range want {
		s, ok := got[n]
		if !ok {
			t.Errorf("%s: strongSwan did not answer (nonce %#x)", id, n)
			continue
		}
		t.Logf("%s: answered by %s, %d bytes, proto %d", id, s.Src, s.TotalLen, s.Proto)
	}
}

// BenchmarkBuildSend builds and sends a probe from ini to rsp in a lab: the whole send
// path, unpaced (MaxRate), per probe class.
func BenchmarkBuildSend(b *testing.B) {
	lab := testlab.ForTest(b, testlab.Spec{NoGateways: true})
	ini, rsp := lab.Addr("ini"), lab.Addr("rsp")
	var snd *Sender
	if err := lab.Do("ini", func() (err error) { snd, err = OpenSender(SenderConfig{Rate: MaxRate, Burst: 1 << 20}); return err }); err != nil {
		b.Fatal(err)
	}
	defer snd.Close()
	ctx := context.Background()
	for _, id := range []ID{ESP, ESPFrag, IKEFrag, ICMPLarge} {
		b.Run(string(id), func(b *testing.B) {
			var p Packets
			b.ReportAllocs()
			for b.Loop() {
				if err := Build(id, BuildParams{Src: ini, Dst: rsp, Nonce: tNonce}, &p); err != nil {
					b.Fatal(err)
				}
				if err := snd.Send(ctx, &p); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(len(p.Wire)), "pkts/op")
		})
	}
}
