package pmtu

import (
	"context"
	"errors"
	"net/netip"
	"strings"
	"testing"
	"time"
)

// fakeClock is advanced by fakePath: by the RTT of an answer, or the timeout of silence.
type fakeClock struct{ t time.Time }

func (c *fakeClock) Now() time.Time { return c.t }

// router is one hop of a fake path.
type router struct {
	addr     netip.Addr
	mtuOut   int  // MTU of the link toward the next hop
	silent   bool // drops its own ICMP fragmentation-needed (the black hole)
	noTTL    bool // does not answer time-exceeded either
	noHint   bool // sends fragmentation-needed with MTU 0 (pre-RFC 1191 router)
	badHint  int  // when non-zero, the MTU it claims instead of the real one
	dropSize int  // when non-zero, drops every packet of at least this size silently, whatever its MTU
}

// fakePath models a path the way Linux forwards: a router checks the TTL first, then the
// next link's MTU. It is a Prober.
type fakePath struct {
	clock    *fakeClock
	localMTU int
	routers  []router
	target   netip.Addr
	targetUp bool
	hopRTT   time.Duration
	lose     map[int]bool // probe numbers (1-based) lost on the way
	n        int
	sent     []Request
}

func (p *fakePath) Probe(ctx context.Context, r Request) (Reply, error) {
	if err := ctx.Err(); err != nil {
		return Reply{}, err
	}
	p.n++
	p.sent = append(p.sent, r)
	if r.Size > p.localMTU {
		return Reply{Outcome: LocalTooBig, MTU: p.localMTU}, nil
	}
	silence := func() (Reply, error) { p.clock.t = p.clock.t.Add(r.Timeout); return Reply{Outcome: Timeout}, nil }
	answer := func(rep Reply, hops int) (Reply, error) {
		rep.RTT = time.Duration(hops) * p.hopRTT
		if rep.RTT > r.Timeout {
			return silence()
		}
		p.clock.t = p.clock.t.Add(rep.RTT)
		return rep, nil
	}
	if p.lose[p.n] {
		return silence()
	}
	ttl := r.TTL
	for i, rt := range p.routers {
		ttl--
		if ttl <= 0 {
			if rt.noTTL {
				return silence()
			}
			return answer(Reply{Outcome: TimeExceeded, From: rt.addr}, i+1)
		}
		if rt.dropSize > 0 && r.Size >= rt.dropSize {
			return silence()
		}
		if r.Size > rt.mtuOut {
			if rt.silent {
				return silence()
			}
			m := rt.mtuOut
			if rt.noHint {
				m = 0
			} else if rt.badHint != 0 {
				m = rt.badHint
			}
			return answer(Reply{Outcome: FragNeeded, From: rt.addr, MTU: m}, i+1)
		}
	}
	if !p.targetUp {
		return silence()
	}
	return answer(Reply{Outcome: Arrived, From: p.target}, len(p.routers)+1)
}

var (
	r1   = netip.MustParseAddr("198.51.100.1")
	r2   = netip.MustParseAddr("192.0.2.66")
	rspA = netip.MustParseAddr("203.0.113.10")
)

// labPath is the lab's shape: ini — r1 — r2 — rsp, with the r1–r2 link of MTU mtu.
func labPath(mtu int, silent bool) *fakePath {
	return &fakePath{
		clock:    &fakeClock{t: time.Date(2026, 11, 23, 9, 0, 0, 0, time.UTC)},
		localMTU: 1500,
		routers: []router{
			{addr: r1, mtuOut: mtu, silent: silent},
			{addr: r2, mtuOut: 1500},
		},
		target: rspA, targetUp: true, hopRTT: 200 * time.Microsecond,
	}
}

func discover(t *testing.T, p *fakePath, o Options) *Result {
	t.Helper()
	o.Clock = p.clock
	res, err := Discover(context.Background(), p, o)
	if err != nil {
		t.Fatalf("Discover: %v", err)
	}
	if res.Probes != p.n {
		t.Errorf("Result.Probes = %d, but the prober saw %d", res.Probes, p.n)
	}
	return res
}

func TestDiscoverLabProfiles(t *testing.T) {
	t.Run("clean", func(t *testing.T) {
		res := discover(t, labPath(1500, false), Options{})
		if res.MTU != 1500 || !res.Exact || res.Blackhole != nil || res.Probes != 2 {
			t.Errorf("got mtu %d exact %v blackhole %v in %d probes; want 1500, exact, none, 2 (576 then 1500)",
				res.MTU, res.Exact, res.Blackhole, res.Probes)
		}
	})
	t.Run("mtu1400", func(t *testing.T) {
		res := discover(t, labPath(1400, false), Options{})
		// 576 passes, 1500 draws "need 1400" from r1, 1400 passes: the router's word is verified.
		if res.MTU != 1400 || !res.Exact || !res.Signalled || res.Blackhole != nil || res.Probes != 3 {
			t.Errorf("got mtu %d exact %v signalled %v blackhole %v in %d probes; want 1400 exact signalled, 3 probes",
				res.MTU, res.Exact, res.Signalled, res.Blackhole, res.Probes)
		}
		if res.ICMPFrom != r1 || res.ICMPMTU != 1400 || res.Upper != 1401 {
			t.Errorf("icmp from %v mtu %d upper %d; want %v 1400 1401", res.ICMPFrom, res.ICMPMTU, res.Upper, r1)
		}
	})
	t.Run("mtu1300-blackhole", func(t *testing.T) {
		p := labPath(1300, true)
		res := discover(t, p, Options{})
		if res.MTU != 1300 || !res.Exact || res.Signalled || res.Blackhole == nil {
			t.Fatalf("got mtu %d exact %v signalled %v blackhole %+v; want 1300, exact, silent, a black hole",
				res.MTU, res.Exact, res.Signalled, res.Blackhole)
		}
		b := res.Blackhole
		want := Blackhole{Size: 1301, Last: Hop{TTL: 1, Addr: r1}, Next: Hop{TTL: 2, Addr: r2}, Sure: true}
		if *b != want {
			t.Errorf("black hole %+v, want %+v", *b, want)
		}
		if res.Sizes > DefaultMaxSizes {
			t.Errorf("%d sizes, bound is %d", res.Sizes, DefaultMaxSizes)
		}
		pm := res.PathMTU()
		if pm.MTU != 1300 || !pm.Blackhole || pm.Hop == nil || pm.Hop.TTL != 1 || pm.Hop.Addr != "198.51.100.1" {
			t.Errorf("PathMTU() = %+v hop %+v", pm, pm.Hop)
		}
		// Each silent size costs Tries × the adaptive timeout (4 × the largest RTT, at least
		// MinTimeout); the fake clock holds exactly that.
		var silent int
		for _, st := range res.Steps {
			if st.Outcome == "timeout" {
				silent++
			}
		}
		if silent == 0 || res.Elapsed < time.Duration(silent)*DefaultMinTimeout {
			t.Errorf("elapsed %v for %d silent probes", res.Elapsed, silent)
		}
		t.Logf("black hole found in %d probes (%d sizes, %d silent), %v of waiting", res.Probes, res.Sizes, silent, res.Elapsed)
	})
}

// TestDiscoverEveryMTU runs the search against every path MTU from 577 to 1500, with and
// without ICMP, and checks it is exact within the size bound every time.
func TestDiscoverEveryMTU(t *testing.T) {
	worst := map[bool]int{}
	for mtu := 577; mtu <= 1500; mtu++ {
		for _, silent := range []bool{false, true} {
			p := labPath(mtu, silent)
			p.clock = &fakeClock{}
			res, err := Discover(context.Background(), p, Options{Clock: p.clock})
			if err != nil {
				t.Fatalf("mtu %d silent %v: %v", mtu, silent, err)
			}
			if res.MTU != mtu || !res.Exact || res.Sizes > DefaultMaxSizes {
				t.Fatalf("mtu %d silent %v: got %d exact %v in %d sizes", mtu, silent, res.MTU, res.Exact, res.Sizes)
			}
			if silent && mtu < 1500 && (res.Blackhole == nil || res.Blackhole.Last.Addr != r1 || !res.Blackhole.Sure) {
				t.Fatalf("mtu %d: black hole %+v", mtu, res.Blackhole)
			}
			if !silent && res.Blackhole != nil {
				t.Fatalf("mtu %d: black hole reported on a path that sends ICMP", mtu)
			}
			worst[silent] = max(worst[silent], res.Sizes)
		}
	}
	t.Logf("worst case: %d sizes with ICMP, %d sizes when black-holed", worst[false], worst[true])
}

func TestChooseSeeds(t *testing.T) {
	s := &search{o: Options{Seeds: Seeds, MaxSizes: DefaultMaxSizes}, res: &Result{Sizes: 3}, tried: map[int]bool{}}
	// (1280, 1501): 220 unknown sizes, 8 probes by bisection; 1380 and 1400 split as well as
	// the midpoint 1390; 1400 comes first in Seeds.
	if got := s.choose(1280, 1501); got != 1400 {
		t.Errorf("choose(1280, 1501) = %d, want the seed 1400", got)
	}
	// (1300, 1380): no seed inside, the midpoint.
	if got := s.choose(1300, 1380); got != 1340 {
		t.Errorf("choose(1300, 1380) = %d, want the midpoint 1340", got)
	}
	// With slack in the size bound a worse-splitting seed is fine: (576, 1500) after 2 sizes
	// has no slack (10 more by bisection = 12), after 1 it has one.
	s.res.Sizes = 2
	if got := s.choose(576, 1500); got != 1006 {
		t.Errorf("choose(576, 1500) with no slack = %d, want 1006 (the seed within the optimal window)", got)
	}
}

func TestDiscoverLossIsNotABlackHole(t *testing.T) {
	p := labPath(1500, false)
	p.lose = map[int]bool{2: true} // the first send of 1500 is lost
	res := discover(t, p, Options{})
	if res.MTU != 1500 || !res.Exact || res.Blackhole != nil || res.Sizes > DefaultMaxSizes {
		t.Errorf("got mtu %d exact %v blackhole %v in %d sizes; want 1500, exact, none, ≤ 12",
			res.MTU, res.Exact, res.Blackhole, res.Sizes)
	}
	t.Logf("one lost probe: %d probes, %d sizes", res.Probes, res.Sizes)

	// Loss of a passing size inside a black hole search: the loss is found out when that size
	// is re-checked, and the search goes on above it.
	q := labPath(1300, true)
	q.lose = map[int]bool{4: true}
	res = discover(t, q, Options{})
	// 1253 is lost once: the bisection takes 1300..1499 as too big; re-checking 1253 finds the
	// loss. The size bound then stops the search with an honest range that holds 1300.
	if res.Exact || res.Lost != 1 || res.MTU > 1300 || res.Upper <= 1300 || !strings.Contains(res.Stopped, "lost") || res.Blackhole == nil {
		t.Errorf("with loss: got mtu %d upper %d exact %v lost %d bh %v stopped %q", res.MTU, res.Upper, res.Exact, res.Lost, res.Blackhole, res.Stopped)
	}
	t.Logf("black hole with one lost probe: %d probes, %d sizes: %s", res.Probes, res.Sizes, res.Stopped)
}

// TestDiscoverHeavyLoss: sends 2, 3, 4 and 7 are lost on a 1427-byte path that signals (the
// case FuzzDiscover found, testdata/fuzz/FuzzDiscover/fe294cef37bc26ed). Three sizes look
// silent; each is re-sent before it is believed, even once the size bound is reached, so the
// losses come to light and nothing is called a black hole. The 12 sizes are spent by then:
// the result is an honest range that holds 1427, not a wrong exact value.
func TestDiscoverHeavyLoss(t *testing.T) {
	p := labPath(1427, false)
	p.lose = map[int]bool{2: true, 3: true, 4: true, 7: true}
	res := discover(t, p, Options{})
	if res.Blackhole != nil || res.Lost != 3 || res.Sizes > DefaultMaxSizes || res.Exact ||
		res.MTU > 1427 || !strings.Contains(res.Stopped, "lost") {
		t.Errorf("got mtu %d exact %v bh %+v lost %d sizes %d stopped %q", res.MTU, res.Exact, res.Blackhole, res.Lost, res.Sizes, res.Stopped)
	}
}

func TestDiscoverAdaptiveTimeout(t *testing.T) {
	p := labPath(1300, true)
	discover(t, p, Options{})
	if p.sent[0].Timeout != DefaultTimeout {
		t.Errorf("first probe waits %v, want %v before any RTT is known", p.sent[0].Timeout, DefaultTimeout)
	}
	if got := p.sent[len(p.sent)-1].Timeout; got != DefaultMinTimeout {
		t.Errorf("later probes wait %v, want the floor %v (4 × 0.6 ms RTT is less)", got, DefaultMinTimeout)
	}
	slow := labPath(1500, false)
	slow.hopRTT = 100 * time.Millisecond // 300 ms RTT
	discover(t, slow, Options{})
	if got := slow.sent[1].Timeout; got != time.Second {
		t.Errorf("after a 300 ms RTT the wait is %v, want min(4 × 300 ms, 1 s) = 1 s", got)
	}
}

func TestDiscoverHints(t *testing.T) {
	t.Run("router gives no MTU", func(t *testing.T) {
		p := labPath(1400, false)
		p.routers[0].noHint = true
		res := discover(t, p, Options{})
		if res.MTU != 1400 || !res.Exact || !res.Signalled || res.Blackhole != nil {
			t.Errorf("got %d exact %v signalled %v bh %v", res.MTU, res.Exact, res.Signalled, res.Blackhole)
		}
	})
	t.Run("router lies", func(t *testing.T) {
		p := labPath(1400, false)
		p.routers[0].badHint = 1450 // claims more than its link carries
		res := discover(t, p, Options{})
		if res.MTU != 1400 || !res.Exact || res.Blackhole != nil {
			t.Errorf("got %d exact %v bh %v", res.MTU, res.Exact, res.Blackhole)
		}
	})
	t.Run("icmp then a black hole further on", func(t *testing.T) {
		p := labPath(1400, false)
		p.routers[1].mtuOut, p.routers[1].silent = 1300, true
		res := discover(t, p, Options{})
		if res.MTU != 1300 || res.Blackhole == nil || res.Blackhole.Last != (Hop{TTL: 2, Addr: r2}) ||
			res.Blackhole.Next != (Hop{TTL: 3, Addr: rspA}) {
			t.Errorf("got %d bh %+v", res.MTU, res.Blackhole)
		}
	})
	t.Run("local interface", func(t *testing.T) {
		p := labPath(1500, false)
		p.localMTU = 1400
		res := discover(t, p, Options{})
		if res.MTU != 1400 || !res.Signalled || res.Blackhole != nil || res.Probes != 3 {
			t.Errorf("got %d signalled %v bh %v probes %d", res.MTU, res.Signalled, res.Blackhole, res.Probes)
		}
	})
	t.Run("next hop silent to ttl", func(t *testing.T) {
		p := labPath(1300, true)
		p.routers[1].noTTL = true
		res := discover(t, p, Options{})
		if res.Blackhole == nil || res.Blackhole.Sure || res.Blackhole.Last.Addr != r1 || res.Blackhole.Next.Addr.IsValid() {
			t.Errorf("bh %+v: want last r1, next unknown, not sure", res.Blackhole)
		}
	})
}

func TestDiscoverErrors(t *testing.T) {
	t.Run("target down", func(t *testing.T) {
		p := labPath(1500, false)
		p.targetUp = false
		p.clock = &fakeClock{}
		_, err := Discover(context.Background(), p, Options{Clock: p.clock})
		if !errors.Is(err, ErrNoAnswer) || p.n != DefaultTries {
			t.Errorf("err %v after %d probes; want ErrNoAnswer after %d", err, p.n, DefaultTries)
		}
	})
	t.Run("below min", func(t *testing.T) {
		p := labPath(500, false)
		_, err := Discover(context.Background(), p, Options{Clock: p.clock})
		if !errors.Is(err, ErrBelowMin) || !strings.Contains(err.Error(), "MTU 500") {
			t.Errorf("err %v, want ErrBelowMin naming MTU 500", err)
		}
	})
	for _, o := range []Options{{Min: 1500, Max: 1400}, {Min: 10}, {Max: 70000}, {Tries: -1}, {MaxSizes: 1}} {
		if _, err := Discover(context.Background(), labPath(1500, false), o); err == nil {
			t.Errorf("Options %+v accepted", o)
		}
	}
	t.Run("cancelled", func(t *testing.T) {
		ctx, cancel := context.WithCancel(context.Background())
		cancel()
		p := labPath(1500, false)
		if _, err := Discover(ctx, p, Options{Clock: p.clock}); !errors.Is(err, context.Canceled) {
			t.Errorf("err %v, want context.Canceled", err)
		}
	})
}

func TestDiscoverBounds(t *testing.T) {
	t.Run("sizes", func(t *testing.T) {
		p := labPath(1300, true)
		res := discover(t, p, Options{MaxSizes: 4})
		if res.Exact || res.Sizes != 4 || res.Stopped == "" || res.MTU > 1300 || res.MTU < DefaultMin {
			t.Errorf("got mtu %d exact %v sizes %d stopped %q", res.MTU, res.Exact, res.Sizes, res.Stopped)
		}
	})
	t.Run("time", func(t *testing.T) {
		p := labPath(1300, true)
		res := discover(t, p, Options{Budget: 2 * time.Second, MinTimeout: time.Second})
		if res.Exact || !strings.Contains(res.Stopped, "time budget") || res.Elapsed > 3*time.Second {
			t.Errorf("got exact %v stopped %q elapsed %v", res.Exact, res.Stopped, res.Elapsed)
		}
	})
	t.Run("hops", func(t *testing.T) {
		p := labPath(1300, true)
		res := discover(t, p, Options{MaxHops: -1})
		if res.Blackhole == nil || res.Blackhole.Last.TTL != 0 || len(res.Hops) != 0 {
			t.Errorf("MaxHops -1 still localised: %+v", res.Blackhole)
		}
	})
	t.Run("icmp unseen", func(t *testing.T) {
		// A reverse search: the router's fragmentation-needed goes to the far end, we see silence.
		p := labPath(1400, true)
		res := discover(t, p, Options{ICMPUnseen: true})
		if res.MTU != 1400 || !res.Exact || res.Blackhole != nil || !res.ICMPUnseen || len(res.Hops) != 0 {
			t.Errorf("got %d exact %v bh %+v unseen %v hops %v", res.MTU, res.Exact, res.Blackhole, res.ICMPUnseen, res.Hops)
		}
		if pm := res.PathMTU(); pm.Blackhole || pm.Hop != nil {
			t.Errorf("PathMTU() = %+v", pm)
		}
	})
	t.Run("quiet next hop", func(t *testing.T) {
		// Seen on a scratch path: r2 sends no ICMP at all and its link toward the target is
		// narrow. r1 is the last hop heard from; the drop may be at r2, so the report's hop is
		// a bracket up to hop 2, not r1 alone.
		p := &fakePath{clock: &fakeClock{t: time.Date(2026, 11, 23, 9, 0, 0, 0, time.UTC)}, localMTU: 1500,
			routers: []router{{addr: r1, mtuOut: 1500}, {addr: r2, mtuOut: 1280, silent: true, noTTL: true}},
			target:  rspA, targetUp: true, hopRTT: 200 * time.Microsecond}
		res := discover(t, p, Options{})
		if res.Blackhole == nil || res.Blackhole.Sure || res.Blackhole.Last.TTL != 1 || res.Blackhole.Next.TTL != 2 {
			t.Fatalf("black hole %+v, want after hop 1, hop 2 silent, not sure", res.Blackhole)
		}
		pm := res.PathMTU()
		h := pm.Hop
		if !h.Bracketed() || h.LastReached == nil || h.FirstMissed == nil || h.LastReached.Addr != r1.String() || h.FirstMissed.TTL != 2 || h.FirstMissed.Addr != "" {
			t.Fatalf("PathMTU().Hop = %+v, want a bracket from hop 1 (%s) to hop 2 (no answer)", h, r1)
		}
		if got, want := pm.String(), "1280, black hole between 198.51.100.1 (hop 1) and hop 2 (address unknown)"; got != want {
			t.Errorf("PathMTU().String() = %q, want %q", got, want)
		}
	})
	t.Run("not localised", func(t *testing.T) {
		p := labPath(1300, true)
		res := discover(t, p, Options{MaxHops: -1})
		if pm := res.PathMTU(); !pm.Blackhole || pm.Hop != nil {
			t.Errorf("PathMTU() = %+v, want a black hole without a hop", pm)
		}
	})
	t.Run("min equals max", func(t *testing.T) {
		p := labPath(1500, false)
		res := discover(t, p, Options{Min: 1400, Max: 1400})
		if res.MTU != 1400 || !res.Exact || res.Probes != 1 {
			t.Errorf("got %d exact %v probes %d", res.MTU, res.Exact, res.Probes)
		}
	})
}

func BenchmarkDiscoverBlackhole(b *testing.B) {
	b.ReportAllocs()
	for b.Loop() {
		p := labPath(1300, true)
		if _, err := Discover(context.Background(), p, Options{Clock: p.clock}); err != nil {
			b.Fatal(err)
		}
	}
}

// FuzzDiscover runs the search against random paths (MTU, black hole or not, a router that
// gives no MTU, probe loss) and checks what must hold whatever happens: the bounds, a result
// that never exceeds the true path MTU (a size that came back fits), exactness when nothing
// was lost, and a black hole only where ICMP is really missing (unless probes were lost
// twice in a row: then no prober can tell). Inputs it found are kept in testdata/fuzz.
func FuzzDiscover(f *testing.F) {
	f.Add(uint16(1300), true, false, uint64(0))
	f.Add(uint16(1400), false, false, uint64(0))
	f.Add(uint16(1500), false, false, uint64(1<<1))
	f.Add(uint16(577), true, true, uint64(0xf0f0))
	f.Fuzz(func(t *testing.T, mtu uint16, silent, noHint bool, loss uint64) {
		truth := int(mtu)
		if truth < DefaultMin || truth > 9000 {
			return
		}
		p := labPath(truth, silent)
		p.routers[0].noHint = noHint
		p.lose = map[int]bool{}
		for i := 0; i < 64; i++ {
			if loss&(1<<i) != 0 && i > 0 { // probe 1 is the 576 reference; losing all 3 of its sends is a down target
				p.lose[i+1] = true
			}
		}
		res, err := Discover(context.Background(), p, Options{Clock: p.clock})
		if err != nil {
			if errors.Is(err, ErrNoAnswer) {
				return // every send of the 576-byte reference was lost
			}
			t.Fatalf("Discover: %v", err)
		}
		want := min(truth, DefaultMax)
		maxProbes := DefaultMaxSizes*DefaultTries + DefaultMaxHops*DefaultTries + DefaultTries
		if res.Sizes > DefaultMaxSizes || res.Probes > maxProbes {
			t.Fatalf("%d sizes, %d probes: over the bounds", res.Sizes, res.Probes)
		}
		if res.MTU > want {
			t.Fatalf("reported %d, but the path carries only %d", res.MTU, want)
		}
		if loss == 0 && (!res.Exact || res.MTU != want) {
			t.Fatalf("no loss: got %d exact %v, want %d", res.MTU, res.Exact, want)
		}
		// A size is believed silent only after its last Tries-1 sends, back to back, all
		// vanished: without two losses in a row no black hole can be made up.
		if res.Blackhole != nil && !silent && loss&(loss>>1) == 0 {
			t.Fatalf("black hole reported on a path that sends ICMP (loss %#x): %+v", loss, res.Blackhole)
		}
		if res.Exact && loss == 0 && silent && truth < DefaultMax && res.Blackhole == nil {
			t.Fatalf("black hole at %d missed", truth)
		}
	})
}
