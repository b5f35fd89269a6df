package pmtu

import (
	"context"
	"errors"
	"fmt"
	"math/bits"
	"net/netip"
	"time"

	"github.com/ipsecpath/ipsecpath/report"
)

// Outcome is what came back for one probe.
type Outcome int

const (
	Timeout      Outcome = iota // nothing came back in time
	Arrived                     // the target answered it (echo reply), or the agent saw it
	FragNeeded                  // ICMP fragmentation needed (3/4): Reply.MTU is the next-hop MTU, 0 if the router did not say
	TimeExceeded                // the TTL ran out at Reply.From
	Unreachable                 // another ICMP error: Reply.Type and Reply.Code say which
	LocalTooBig                 // our own host refused to send it: bigger than the outgoing interface MTU (Reply.MTU)
)

var outcomeNames = [...]string{"timeout", "arrived", "frag-needed", "time-exceeded", "unreachable", "local-too-big"}

func (o Outcome) String() string {
	if int(o) < len(outcomeNames) {
		return outcomeNames[o]
	}
	return fmt.Sprintf("outcome(%d)", int(o))
}

// Request is one probe to send: an IP packet of Size bytes (IP header included) with DF set
// and the given TTL; the prober waits at most Timeout for what it brings back.
type Request struct {
	Size    int
	TTL     int
	Timeout time.Duration
}

// Reply is what came back for one probe.
type Reply struct {
	Outcome Outcome
	From    netip.Addr    // who answered: the target, a router, or (LocalTooBig) nobody
	MTU     int           // FragNeeded, LocalTooBig: the MTU the router or the interface gave
	Type    uint8         // the ICMP type and code of an Unreachable
	Code    uint8         //
	RTT     time.Duration // send to answer; 0 for a Timeout
}

// Prober sends one DF probe and reports what came back for it. Probe returns an error only
// when it cannot probe at all (the socket failed, the context ended); silence is a Reply with
// Outcome Timeout. A Prober is used by one goroutine at a time.
type Prober interface {
	Probe(ctx context.Context, r Request) (Reply, error)
}

// Clock tells the time; tests inject a fake one that fake probers advance.
type Clock interface {
	Now() time.Time
}

type realClock struct{}

func (realClock) Now() time.Time { return time.Now() }

// Defaults and bounds of a discovery.
const (
	DefaultMin        = 576                    // IPv4 hosts must accept 576-byte datagrams (RFC 791)
	DefaultMax        = 1500                   // Ethernet
	DefaultTimeout    = time.Second            // longest wait for one probe's answer
	DefaultMinTimeout = 150 * time.Millisecond // shortest wait once RTTs are known (4 × the largest RTT seen)
	DefaultTries      = 3                      // sends of a size before its silence counts: tells loss from a black hole
	DefaultMaxSizes   = 12                     // distinct sizes in the MTU search: enough for byte precision over 576..1500
	DefaultMaxHops    = 16                     // TTLs tried when localising a black hole
	DefaultBudget     = 30 * time.Second       // the whole discovery, localisation included
	DefaultTTL        = 64                     // TTL of the size probes
	minValidMTU       = 68                     // RFC 791: a frag-needed below this is nonsense
)

// Seeds are the MTUs of real links, tried first whenever one splits the remaining range as
// well as its midpoint would (so seeding never costs a probe in the worst case).
var Seeds = []int{
	1500, // Ethernet
	1492, // PPPoE
	1480, // IP-in-IP, 6in4
	1476, // GRE
	1460, // IPv4 with a 40-byte tunnel or options
	1450, // VXLAN
	1440, // IPsec and LTE bearers, common setting
	1420, // WireGuard
	1400, // common VPN setting; strongSwan libipsec's TUN default
	1380, // common VPN setting
	1300, // conservative VPN setting
	1280, // IPv6 minimum link MTU
	1006, // SLIP, ARPANET (RFC 1191 plateau)
	576,  // IPv4 minimum reassembly size
}

// Options bound and shape a discovery. Zero fields take the defaults above.
type Options struct {
	Min        int           // smallest probe; must come back, or the target is unreachable
	Max        int           // largest probe; the result is at most Max
	Timeout    time.Duration // longest wait per probe
	MinTimeout time.Duration // shortest wait per probe once an RTT is known
	Tries      int           // sends of a size (or TTL) before its silence counts
	MaxSizes   int           // bound on distinct sizes in the MTU search (Min and Max included)
	MaxHops    int           // bound on TTLs when localising a black hole; -1: do not localise
	Budget     time.Duration // bound on the whole discovery's time
	Seeds      []int         // nil: Seeds
	// ICMPUnseen says the prober cannot see ICMP errors about its probes (the agent's reverse
	// probes: routers answer the agent). Silence then does not make a black hole: the
	// result's Blackhole stays nil and no TTL localisation runs.
	ICMPUnseen bool
	Clock      Clock // nil: the real clock
	// Logf, when set, gets one line per size or hop decided (progress for a person).
	Logf func(format string, args ...any)
}

func (o *Options) fill() error {
	if o.Min == 0 {
		o.Min = DefaultMin
	}
	if o.Max == 0 {
		o.Max = DefaultMax
	}
	if o.Min < minValidMTU || o.Max > 65535 || o.Min > o.Max {
		return fmt.Errorf("pmtu: size range %d..%d makes no sense: want %d ≤ min ≤ max ≤ 65535", o.Min, o.Max, minValidMTU)
	}
	if o.Timeout == 0 {
		o.Timeout = DefaultTimeout
	}
	if o.MinTimeout == 0 {
		o.MinTimeout = DefaultMinTimeout
	}
	if o.MinTimeout > o.Timeout {
		o.MinTimeout = o.Timeout
	}
	if o.Timeout < 0 || o.MinTimeout < 0 {
		return errors.New("pmtu: negative timeout")
	}
	if o.Tries == 0 {
		o.Tries = DefaultTries
	}
	if o.MaxSizes == 0 {
		o.MaxSizes = DefaultMaxSizes
	}
	if o.Tries < 1 || o.MaxSizes < 2 {
		return fmt.Errorf("pmtu: need at least 1 try and 2 sizes (got %d, %d)", o.Tries, o.MaxSizes)
	}
	if o.MaxHops == 0 {
		o.MaxHops = DefaultMaxHops
	}
	if o.Budget == 0 {
		o.Budget = DefaultBudget
	}
	if o.Seeds == nil {
		o.Seeds = Seeds
	}
	if o.Clock == nil {
		o.Clock = realClock{}
	}
	return nil
}

// Step is one probe sent, for the evidence.
type Step struct {
	Size    int        `json:"size"`
	TTL     int        `json:"ttl"`
	Outcome string     `json:"outcome"`
	From    netip.Addr `json:"from,omitzero"`
	MTU     int        `json:"mtu,omitempty"`
	RTTms   float64    `json:"rtt_ms,omitempty"`
}

// Hop is a router on the path.
type Hop struct {
	TTL  int        `json:"ttl"`
	Addr netip.Addr `json:"addr,omitzero"` // invalid when the hop did not answer
}

// Blackhole says where large packets vanish.
type Blackhole struct {
	Size int `json:"size"` // the probe size that vanishes (the smallest one found)
	// Last is the last hop the large probe reached (it answered time-exceeded); TTL 0 means
	// not even the first hop answered. The large probe dies on Last's link toward Next.
	Last Hop `json:"last"`
	// Next is the hop at the following TTL, learnt with a small probe: it never saw the large
	// one. Addr is invalid when it does not answer small probes either (then the drop may be
	// at Next itself).
	Next Hop `json:"next"`
	// Sure is true when Next answered the small probe: the drop is between Last and Next.
	Sure bool `json:"sure"`
}

// Result is what Discover found.
type Result struct {
	MTU   int  `json:"mtu"`   // the largest size that came back
	Exact bool `json:"exact"` // MTU+1 is known not to pass, or MTU = Max; false when a bound stopped the search
	// Upper is the smallest size known not to pass (0 when Max passed).
	Upper int `json:"upper,omitempty"`
	// Signalled is true when the path said so itself: the smallest failing size drew an ICMP
	// fragmentation-needed (or our own interface refused it).
	Signalled bool `json:"signalled"`
	// ICMPFrom and ICMPMTU are the last fragmentation-needed seen: who sent it and the MTU it gave.
	ICMPFrom  netip.Addr    `json:"icmp_from,omitzero"`
	ICMPMTU   int           `json:"icmp_mtu,omitempty"`
	Blackhole *Blackhole    `json:"blackhole,omitempty"` // nil: no black hole
	Hops      []Hop         `json:"hops,omitempty"`      // hops the large probe reached while localising
	Probes    int           `json:"probes"`              // packets sent, retries and TTL probes included
	Lost      int           `json:"lost,omitempty"`      // sizes first silent, then back: probe loss, not the MTU
	Sizes     int           `json:"sizes"`               // distinct sizes tried in the MTU search
	Elapsed   time.Duration `json:"-"`
	ElapsedMs float64       `json:"elapsed_ms"`        // Elapsed in milliseconds, for JSON readers
	Stopped   string        `json:"stopped,omitempty"` // why the search stopped early, when it did
	// ICMPUnseen: ICMP errors about the probes were out of sight (Options.ICMPUnseen), so a
	// silent failure may be a black hole or a router's fragmentation-needed sent elsewhere.
	ICMPUnseen bool   `json:"icmp_unseen,omitempty"`
	Steps      []Step `json:"steps"`
}

// PathMTU is the result in the report's form: Hop is the last hop the large probe reached
// (a bracket up to the next hop when that one answers nothing, DESIGN.md's localisation)
// before it vanished (the router that drops it without ICMP), nil when not localised.
//
// The rest says what the MTU rests on: Signalled when the smallest failing size drew a
// fragmentation-needed (SignalledBy its sender) or our own interface refused it (Local);
// Unfinished when the search did not settle (Exact false), with the reason it stopped.
func (r *Result) PathMTU() report.PathMTU {
	p := report.PathMTU{MTU: r.MTU, Blackhole: r.Blackhole != nil, Probes: r.Probes}
	if r.Signalled {
		p.Signalled = true
		if r.ICMPFrom.IsValid() {
			p.SignalledBy = r.ICMPFrom.String()
		} else {
			p.Local = true // LocalTooBig: no router, the sender's own interface
		}
	}
	if !r.Exact && r.Blackhole == nil {
		p.Unfinished = r.Stopped
		if p.Unfinished == "" {
			p.Unfinished = fmt.Sprintf("stopped after %d probe(s), before the first size that fails was found", r.Probes)
		}
	}
	if b := r.Blackhole; b != nil && b.Last.TTL > 0 {
		h := &report.Hop{TTL: b.Last.TTL}
		if b.Last.Addr.IsValid() {
			h.Addr = b.Last.Addr.String()
		}
		if !b.Sure && b.Next.TTL > 0 {
			// The next hop answered nothing (no time-exceeded even for a small probe), so
			// the large probe may as well die there: a bracket, not Last alone.
			h.Bracket = &report.Bracket{LastReached: &report.HopRef{TTL: h.TTL, Addr: h.Addr}, FirstMissed: &report.HopRef{TTL: b.Next.TTL}}
		}
		p.Hop = h
	}
	return p
}

// Errors of Discover that mean the path could not be measured at all.
var (
	ErrNoAnswer = errors.New("pmtu: the target does not answer even the smallest probe")
	ErrBelowMin = errors.New("pmtu: the path MTU is below the smallest size to try")
)

// Discover finds the path MTU with prober within opts' bounds. It first sends opts.Min (it
// must come back), then opts.Max, then bisects the sizes between the largest that passed and
// the smallest that failed, preferring a router's fragmentation-needed MTU (verified by a
// probe of that size) and the common link MTUs in Seeds. A size fails after opts.Tries
// silent sends or one ICMP error. When the smallest failing size failed in silence, the path
// black-holes: Discover then sends that size with TTL 1, 2, … to find the last hop it reaches.
//
// Bounds: at most opts.MaxSizes sizes (12: enough for one-byte precision over 576..1500),
// each sent at most opts.Tries times; at most opts.MaxHops TTLs plus one small probe; and
// opts.Budget of time. A bound that stops the search leaves Result.Exact false and says
// which in Result.Stopped. On an error the Result holds what was measured so far.
func Discover(ctx context.Context, prober Prober, opts Options) (*Result, error) {
	if err := opts.fill(); err != nil {
		return nil, err
	}
	s := &search{p: prober, o: opts, start: opts.Clock.Now(), res: &Result{}}
	err := s.run(ctx)
	s.res.Elapsed = opts.Clock.Now().Sub(s.start)
	s.res.ElapsedMs = float64(s.res.Elapsed.Microseconds()) / 1000
	return s.res, err
}

type failure int

const (
	failNone    failure = iota
	failSilent          // every try timed out
	failICMP            // fragmentation needed, or the interface refused
	failOtherIC         // another ICMP error, or a time-exceeded at full TTL
)

type search struct {
	p      Prober
	o      Options
	start  time.Time
	res    *Result
	maxRTT time.Duration
	tried  map[int]bool
}

func (s *search) logf(format string, args ...any) {
	if s.o.Logf != nil {
		s.o.Logf(format, args...)
	}
}

// timeout is the wait for the next probe: 4 × the largest RTT seen, within bounds.
func (s *search) timeout() time.Duration {
	if s.maxRTT == 0 {
		return s.o.Timeout
	}
	return min(max(4*s.maxRTT, s.o.MinTimeout), s.o.Timeout)
}

// errBudget stops the search when its time is spent.
var errBudget = errors.New("time budget spent")

// send probes size at ttl up to tries times, until something other than silence comes back.
func (s *search) send(ctx context.Context, size, ttl, tries int) (Reply, error) {
	var r Reply
	for try := 0; try < tries; try++ {
		if err := ctx.Err(); err != nil {
			return Reply{}, err
		}
		if s.o.Clock.Now().Sub(s.start) >= s.o.Budget {
			return Reply{}, errBudget
		}
		var err error
		r, err = s.p.Probe(ctx, Request{Size: size, TTL: ttl, Timeout: s.timeout()})
		if err != nil {
			return Reply{}, fmt.Errorf("pmtu: probe of %d bytes (ttl %d): %w", size, ttl, err)
		}
		s.res.Probes++
		st := Step{Size: size, TTL: ttl, Outcome: r.Outcome.String(), From: r.From, MTU: r.MTU}
		if r.RTT > 0 {
			st.RTTms = float64(r.RTT.Microseconds()) / 1000
		}
		s.res.Steps = append(s.res.Steps, st)
		if r.Outcome != Timeout && r.Outcome != LocalTooBig && r.RTT > s.maxRTT {
			s.maxRTT = r.RTT
		}
		if r.Outcome != Timeout {
			return r, nil
		}
	}
	return r, nil
}

// trySize sends one size of the MTU search tries times at most and classifies it.
func (s *search) trySize(ctx context.Context, size, tries int) (Reply, failure, error) {
	if !s.tried[size] {
		s.tried[size] = true
		s.res.Sizes++
	}
	r, err := s.send(ctx, size, DefaultTTL, tries)
	if err != nil {
		return r, failNone, err
	}
	switch r.Outcome {
	case Arrived:
		s.logf("%d bytes: arrived (%v)", size, r.RTT.Round(time.Microsecond))
		return r, failNone, nil
	case FragNeeded, LocalTooBig:
		s.res.ICMPFrom, s.res.ICMPMTU = r.From, r.MTU
		if r.Outcome == LocalTooBig {
			s.logf("%d bytes: larger than our interface MTU %d", size, r.MTU)
		} else {
			s.logf("%d bytes: fragmentation needed, next-hop MTU %d, from %s", size, r.MTU, r.From)
		}
		return r, failICMP, nil
	case Timeout:
		s.logf("%d bytes: no answer (%d sends)", size, tries)
		return r, failSilent, nil
	default:
		s.logf("%d bytes: %s from %s", size, r.Outcome, r.From)
		return r, failOtherIC, nil
	}
}

// hint is a next-hop MTU from a fragmentation-needed, usable if it lies in (lo, hi).
func hint(r Reply, size int) int {
	if (r.Outcome == FragNeeded || r.Outcome == LocalTooBig) && r.MTU >= minValidMTU && r.MTU < size {
		return r.MTU
	}
	return 0
}

// run is the MTU search. Silence is cheap to get wrong (one lost packet) and dear to confirm
// (Tries timeouts), so a size that stays silent is first believed after one send; only the
// size that ends up as the smallest failure is sent again up to Tries times. If it comes back
// then, the earlier verdict was loss and the search resumes above it.
func (s *search) run(ctx context.Context) error {
	s.tried = map[int]bool{}
	o := s.o

	// The smallest size must come back: otherwise nothing can be measured.
	r, f, err := s.trySize(ctx, o.Min, o.Tries)
	if err != nil {
		return s.stop(err)
	}
	switch f {
	case failSilent:
		return fmt.Errorf("%w (%d bytes, %d tries, %v each): host down, ICMP echo filtered, or no route", ErrNoAnswer, o.Min, o.Tries, s.timeout())
	case failICMP:
		return fmt.Errorf("%w: %d bytes draws fragmentation needed (MTU %d) from %s; lower --min", ErrBelowMin, o.Min, r.MTU, describeFrom(r))
	case failOtherIC:
		return fmt.Errorf("%w: %s from %s (ICMP type %d code %d)", ErrNoAnswer, r.Outcome, r.From, r.Type, r.Code)
	}
	lo := o.Min
	fails := map[int]failure{} // sizes that failed, and how
	verified := map[int]bool{} // silent sizes sent Tries times
	// upper is the smallest failed size above lo (Max+1 when none).
	upper := func() (int, failure) {
		hi, hf := o.Max+1, failNone
		for sz, f := range fails {
			if sz > lo && sz < hi {
				hi, hf = sz, f
			}
		}
		return hi, hf
	}
	pending := 0 // a router's next-hop MTU still to verify
	next := o.Max
	if o.Max == o.Min {
		next = 0
	}
	var hi int
	var hiFail failure
	for {
		hi, hiFail = upper()
		if lo+1 >= hi && hiFail == failSilent && !verified[hi] && o.Tries > 1 {
			next = hi // the smallest failure: make sure it was not loss
		}
		if lo+1 >= hi && next == 0 {
			break
		}
		if next == 0 && s.res.Sizes >= o.MaxSizes && hiFail == failSilent && !verified[hi] && o.Tries > 1 {
			next = hi // out of sizes: at least make sure the smallest failure was not loss
		}
		if next == 0 {
			if s.res.Sizes >= o.MaxSizes {
				s.res.Stopped = fmt.Sprintf("size bound reached (%d sizes): the MTU is between %d and %d", o.MaxSizes, lo, hi-1)
				if s.res.Lost > 0 {
					s.res.Stopped += fmt.Sprintf(" (%d probe(s) lost on the way cost sizes; run again)", s.res.Lost)
				}
				break
			}
			next = s.choose(lo, hi)
		}
		size, tries := next, 1
		next = 0
		if size == hi { // a re-send of the smallest silent size (sizes are never tried twice otherwise)
			tries = o.Tries - 1
			verified[size] = true
		}
		r, f, err := s.trySize(ctx, size, tries)
		if err != nil {
			s.res.MTU = lo
			return s.stop(err)
		}
		switch f {
		case failNone:
			lo = max(lo, size)
			if verified[size] {
				s.res.Lost++ // it was silent before: a probe was lost
			}
			for sz := range fails {
				if sz <= size {
					delete(fails, sz) // a bigger or equal size passed: that failure was loss
				}
			}
			if size == pending {
				// The router said so and the size passed: its link is exactly this MTU.
				fails[size+1] = failICMP
			}
		default:
			fails[size] = f
			if m := hint(r, size); m > lo && !s.tried[m] && s.res.Sizes < o.MaxSizes {
				pending, next = m, m
			}
		}
	}
	s.res.MTU = lo
	if lo+1 >= hi {
		s.res.Exact = true
	}
	if hi <= o.Max {
		s.res.Upper = hi
	}
	s.res.Signalled = hiFail == failICMP
	s.res.ICMPUnseen = o.ICMPUnseen
	if hiFail == failSilent && !o.ICMPUnseen {
		if err := s.localise(ctx, hi, lo); err != nil {
			return s.stop(err)
		}
	}
	return nil
}

// stop turns the time bound into a Stopped note; other errors pass through.
func (s *search) stop(err error) error {
	if errors.Is(err, errBudget) {
		s.res.Stopped = fmt.Sprintf("time budget of %v spent", s.o.Budget)
		return nil
	}
	return err
}

func describeFrom(r Reply) string {
	if r.Outcome == LocalTooBig || !r.From.IsValid() {
		return "our own interface"
	}
	return r.From.String()
}

// steps is how many probes bisection needs to settle n unknown sizes.
func steps(n int) int {
	if n <= 0 {
		return 0
	}
	return bits.Len(uint(n)) // ceil(log2(n+1))
}

// choose picks the next size in (lo, hi): the midpoint, or the seed nearest to it among
// those that cost no more in the worst case, or that still leave the search within
// MaxSizes if they split the range badly.
func (s *search) choose(lo, hi int) int {
	mid := lo + (hi-lo)/2
	cost := func(x int) int { return max(steps(hi-x-1), steps(x-lo-1)) }
	best, bestDist := mid, -1
	for _, seed := range s.o.Seeds {
		if seed <= lo || seed >= hi || s.tried[seed] {
			continue
		}
		c := cost(seed)
		if c > cost(mid) && s.res.Sizes+1+c > s.o.MaxSizes {
			continue
		}
		if d := abs(seed - mid); bestDist < 0 || d < bestDist {
			best, bestDist = seed, d
		}
	}
	return best
}

func abs(x int) int {
	if x < 0 {
		return -x
	}
	return x
}

// localise finds the last hop a size that vanishes still reaches: it sends big with TTL 1,
// 2, … until silence, then small with the first silent TTL to learn who that hop is.
func (s *search) localise(ctx context.Context, big, small int) error {
	b := &Blackhole{Size: big}
	s.res.Blackhole = b
	if s.o.MaxHops < 0 {
		return nil
	}
	for ttl := 1; ttl <= s.o.MaxHops; ttl++ {
		r, err := s.send(ctx, big, ttl, s.o.Tries)
		if err != nil {
			return err
		}
		if r.Outcome == TimeExceeded {
			h := Hop{TTL: ttl, Addr: r.From}
			s.res.Hops = append(s.res.Hops, h)
			b.Last = h
			s.logf("%d bytes, ttl %d: reached %s", big, ttl, r.From)
			continue
		}
		switch r.Outcome {
		case Timeout:
		case Arrived, FragNeeded, LocalTooBig:
			// The size that vanished (Tries times) got through, or the path now says why it
			// does not: the silence was loss. Keep what is proven and say the search is cut.
			s.logf("%d bytes, ttl %d: %s from %s: earlier silence was loss", big, ttl, r.Outcome, r.From)
			s.res.Blackhole, s.res.Hops = nil, nil
			s.res.Lost++
			s.res.Exact = false
			if r.Outcome == Arrived {
				s.res.MTU, s.res.Upper = big, 0
			} else {
				s.res.Signalled, s.res.ICMPFrom, s.res.ICMPMTU = true, r.From, r.MTU
			}
			s.res.Stopped = fmt.Sprintf("%d bytes vanished %d times, then drew %s at ttl %d: probe loss on the path; run again", big, s.o.Tries, r.Outcome, ttl)
			return nil
		default:
			// Another answer (an unreachable, say): the path is not simply a black hole.
			s.logf("%d bytes, ttl %d: %s from %s; stop localising", big, ttl, r.Outcome, r.From)
			b.Next = Hop{TTL: ttl, Addr: r.From}
			return nil
		}
		s.logf("%d bytes, ttl %d: no answer to %d tries", big, ttl, s.o.Tries)
		b.Next = Hop{TTL: ttl}
		r, err = s.send(ctx, small, ttl, s.o.Tries)
		if err != nil {
			return err
		}
		if r.Outcome == TimeExceeded || r.Outcome == Arrived {
			b.Next.Addr, b.Sure = r.From, true
			s.logf("%d bytes, ttl %d: reached %s: the large probe dies between hop %d and hop %d", small, ttl, r.From, ttl-1, ttl)
		}
		return nil
	}
	s.res.Stopped = fmt.Sprintf("hop bound reached (%d TTLs) while localising the black hole", s.o.MaxHops)
	return nil
}
