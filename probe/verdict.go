package probe

// The verdict engine: what was sent, what the far end saw and what came back, per probe and
// direction, turned into a report.Result. Pure: no sockets, no clock, so every rule is
// table-tested (verdict_test.go). The rules are DESIGN.md's:
//
//	pass          it arrived: with an agent, the agent (or, reverse, our own capture) saw every
//	              fragment of at least one attempt; without an agent, the target itself answered
//	              (an IKE response, an echo reply, a SYN-ACK, or the target kernel's own ICMP
//	              protocol/port unreachable, which proves arrival)
//	dropped       silence: nothing arrived and nothing came back
//	blocked       an ICMP destination unreachable came back from a device on the path (or an
//	              administratively-prohibited from anyone), or a TCP RST came back that did not
//	              come from the target (the agent never saw the SYN; without an agent, the RST's
//	              TTL shows it came from closer than the target). Reverse alike: the agent
//	              captures the ICMP errors and resets its own probes draw, and we never saw the
//	              probe arrive. The hop is the ICMP error's source, or, for a reset, estimated
//	              from its TTL (Hop.Estimated)
//	frag-dropped  the unfragmented form of the same protocol passes and the fragmented one
//	              arrives not at all
//	partial       some fragments arrived, not all: the detail says which
//	error         the probe could not run: the detail says why
//	skipped       not run, or no honest verdict is possible without an agent: the detail says why

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/ipsecpath/ipsecpath/pmtu"
	"github.com/ipsecpath/ipsecpath/probe/wire"
	"github.com/ipsecpath/ipsecpath/report"
)

// Reply kinds: what answered a probe (Reply.Kind, and report.Evidence.Answer).
const (
	AnswerIKE       = "ike"        // an IKE message from the target (UDP 500 or 4500)
	AnswerEchoReply = "echo-reply" // an ICMP echo reply
	AnswerSYNACK    = "syn-ack"    // a TCP SYN-ACK: the port is open
	AnswerRST       = "rst"        // a TCP RST (from the target: the port is closed)
)

// Reply is an answer to a probe from the far end (or from whatever answered in its name).
type Reply struct {
	Kind string        // AnswerIKE, AnswerEchoReply, AnswerSYNACK, AnswerRST
	From netip.Addr    // source address of the answer
	TTL  uint8         // IP TTL as it arrived here
	RTT  time.Duration // from the send of the attempt it answers
}

// ICMPAnswer is an ICMP error that came back for a probe, matched by its quoted header, with
// the TTL it arrived with (which says how far away its sender is).
type ICMPAnswer struct {
	ICMPError
	TTL uint8
}

// Attempt is one send of a probe (retries are further attempts): the fragments as we cut
// them (one entry for an unfragmented packet) and, with an agent or for reverse probes, the
// ones the receiving end captured.
type Attempt struct {
	Sent []report.Fragment
	Seen []report.Fragment
}

// complete reports whether every fragment sent in a was seen (matched by offset).
func (a Attempt) complete() bool {
	if len(a.Sent) == 0 {
		return false
	}
	for _, s := range a.Sent {
		if !hasOffset(a.Seen, s.Offset) {
			return false
		}
	}
	return true
}

func hasOffset(fs []report.Fragment, off int) bool {
	for _, f := range fs {
		if f.Offset == off {
			return true
		}
	}
	return false
}

// Outcome is everything one probe produced in one direction: the input of Judge.
type Outcome struct {
	Probe     ID
	Direction report.Direction
	// Target is the address the probe went to: the target forward, the initiator reverse.
	Target netip.Addr
	// Observed is true when the receiving end captured what arrived (the agent forward, our
	// own capture reverse): Attempts[i].Seen is then evidence, an empty Seen means "not seen".
	Observed bool
	// Err is set when the probe could not run; Skip, when it was not run, says why.
	Err  error
	Skip string
	// Reference marks an outcome run only to compare with (e.g. a small echo for icmp-large,
	// or the unfragmented form of an asked-for -frag probe): Judge does not report it.
	Reference bool

	Size         int    // bytes on the wire of one attempt, IP header included
	FragmentSize int    // largest fragment cut, IP header included (0: not fragmented)
	Nonce        uint32 // what tied observations to this probe
	SrcPort      int
	DstPort      int
	Attempts     []Attempt
	// Replies and ICMP are what came back to the probe's sender: answers and ICMP errors
	// that reached us (forward), or that the agent captured (reverse).
	Replies []Reply
	ICMP    []ICMPAnswer
	// Search is the pmtu probe's search result, which its verdict is judged from (nil: the
	// search did not run or found nothing); PathMTU is its report form.
	Search  *pmtu.Result
	PathMTU *report.PathMTU
	// Cut is set when the run's time ran out before this probe, without an answer, had
	// left CheckAttempts times: a verdict of silence then rests on fewer attempts, and its
	// detail says so.
	Cut bool
	// FarLocalDrop is a rule of the agent host's own firewall that drops this (forward)
	// probe after the agent's capture saw it arrive, nil when none does.
	FarLocalDrop *report.FirewallRule
}

// smallEcho is the id of the reference probe for icmp-large: a small ICMP echo. It is never
// reported; it tells "the target answers ping" from "large pings get lost".
const smallEcho ID = "icmp-small"

// reference returns the id of the outcome a probe is compared with, or "".
func reference(id ID) ID {
	switch {
	case id == ICMPLarge:
		return smallEcho
	case id.Fragmented():
		return id.Unfragmented()
	}
	return ""
}

// Judge turns the outcomes of one run into results, in the order of outs, leaving out the
// Reference outcomes. Each -frag outcome is compared with its unfragmented form in the same
// direction (icmp-large with a small echo), and a TCP RST without an agent is compared with
// the TTL of the target's other answers.
func Judge(outs []Outcome) []report.Result {
	// First the outcomes nothing else is compared with, then those compared with them.
	judged := make(map[string]report.Result, len(outs))
	ref := hopsFromTarget(outs)
	key := func(id ID, d report.Direction) string { return string(d) + "/" + string(id) }
	for i := range outs {
		if reference(outs[i].Probe) == "" {
			judged[key(outs[i].Probe, outs[i].Direction)] = judge(&outs[i], nil, ref)
		}
	}
	all := make([]report.Result, len(outs))
	for i := range outs {
		o := &outs[i]
		r, ok := judged[key(o.Probe, o.Direction)]
		if !ok {
			var base *report.Result
			if b, ok := judged[key(reference(o.Probe), o.Direction)]; ok {
				base = &b
			}
			r = judge(o, base, ref)
		}
		all[i] = r
	}
	echoOnly(outs, all)
	forward := make(map[ID]report.Verdict, len(outs))
	for i, r := range all {
		if outs[i].Direction != report.Reverse {
			forward[outs[i].Probe] = r.Verdict
		}
	}
	res := make([]report.Result, 0, len(outs))
	for i, r := range all {
		o := &outs[i]
		if o.Direction == report.Reverse && r.Verdict == report.Dropped && forward[o.Probe] == report.Pass && o.Probe != PMTU {
			oneWay(&r, o.Probe)
		}
		cutShort(&r, o)
		if !o.Reference {
			res = append(res, r)
		}
	}
	return res
}

// cutShort adds to the detail of a probe called dropped or frag-dropped on fewer attempts
// than CheckAttempts, because the run's time ran out first, that one lost packet may be all
// it saw: the clause goes after the claim, before its advice.
func cutShort(r *report.Result, o *Outcome) {
	n := len(o.Attempts)
	if !o.Cut || n == 0 || n >= CheckAttempts || (r.Verdict != report.Dropped && r.Verdict != report.FragDropped) {
		return
	}
	clause := fmt.Sprintf(" (only %d of %d attempts left before the run's time ran out, so loss is not ruled out; raise --timeout)", n, CheckAttempts)
	if o.Direction == report.Reverse {
		clause = fmt.Sprintf(" (the agent sent only %d of %d attempts before the run's time ran out, so loss is not ruled out; raise --timeout)", n, CheckAttempts)
	}
	at := claimEnd(r.Detail)
	r.Detail = r.Detail[:at] + clause + r.Detail[at:]
}

// claimEnd is where the claim of a detail ends: at its first "; " or ". " outside
// parentheses (the advice follows), else at its final full stop.
func claimEnd(d string) int {
	depth := 0
	for i := 0; i < len(d); i++ {
		switch d[i] {
		case '(':
			depth++
		case ')':
			depth--
		case ';', '.':
			if depth == 0 && (i+1 == len(d) || d[i+1] == ' ') {
				return i
			}
		}
	}
	return len(d)
}

// echoOnly rewrites the detail of a path MTU search that got no answer even to its smallest
// echo when other probes of the same direction passed in this run: the far end is up and
// routed, so it is ICMP echo that does not come through, not "host down or no route".
func echoOnly(outs []Outcome, all []report.Result) {
	passed := map[report.Direction]string{}
	for i, r := range all {
		if r.Verdict == report.Pass && outs[i].Probe != PMTU && !outs[i].Reference && passed[r.Direction] == "" {
			passed[r.Direction] = r.Probe
		}
	}
	for i := range all {
		o, r := &outs[i], &all[i]
		if o.Probe != PMTU || r.Verdict != report.Error || !errors.Is(o.Err, pmtu.ErrNoAnswer) || passed[r.Direction] == "" {
			continue
		}
		if r.Direction == report.Reverse {
			r.Detail = fmt.Sprintf("The path MTU search toward us (the agent's DF echoes) could not run: none of the agent's smallest DF echoes (%d bytes) arrived here, yet the agent's %s did: ICMP echo is filtered on the way back (or by this host's firewall), not the route; the forward search or 'ipsecpath pmtu --proto udp' with the agent measures without echo.", pmtu.DefaultMin, passed[r.Direction])
			continue
		}
		r.Detail = fmt.Sprintf("The path MTU search could not run: not even its smallest echo (%d bytes) was answered, yet %s reached the far end in this run: ICMP echo is filtered on the way (or at the target), the host is up and routed; 'ipsecpath pmtu --proto tcp' (or --proto udp with --agent) measures the path MTU without echo.", pmtu.DefaultMin, passed[r.Direction])
	}
}

// initialTTL guesses the TTL a packet left its sender with from the TTL it arrived with:
// the common initial values are 64 (Linux, BSD, macOS), 128 (Windows) and 255 (network gear).
func initialTTL(ttl uint8) int {
	switch {
	case ttl <= 64:
		return 64
	case ttl <= 128:
		return 128
	}
	return 255
}

// hopCount is how many routers a packet that arrived with ttl crossed.
func hopCount(ttl uint8) int { return initialTTL(ttl) - int(ttl) }

// targetTTL is what other answers from the target say about its distance.
type targetTTL struct {
	ok   bool
	ttl  uint8  // the TTL they arrived with
	hops int    // routers crossed
	from string // which probe's answer it is
	// kernelError names a forward probe the target's kernel answered with ICMP port or
	// protocol unreachable ("ike: ICMP port unreachable"), "" when none was: that kernel
	// rate-limits its ICMP errors, so another probe's silence may be its, not the path's.
	kernelError string
}

// hopsFromTarget finds a forward answer that certainly came from the target itself: an IKE
// response, an echo reply, a SYN-ACK, or the target's own ICMP protocol/port unreachable.
func hopsFromTarget(outs []Outcome) targetTTL {
	t := hopsFromTargetTTL(outs)
	for _, o := range outs {
		if o.Direction != report.Forward || o.Reference {
			continue
		}
		for _, e := range o.ICMP {
			if e.From == o.Target && e.Type == wire.ICMPUnreach && (e.Code == wire.CodeProtoUnreach || e.Code == wire.CodePortUnreach) {
				t.kernelError = string(o.Probe) + ": " + wire.ICMPName(e.Type, e.Code)
				return t
			}
		}
	}
	return t
}

func hopsFromTargetTTL(outs []Outcome) targetTTL {
	for _, o := range outs {
		if o.Direction != report.Forward {
			continue
		}
		for _, r := range o.Replies {
			if r.Kind != AnswerRST && r.From == o.Target && r.TTL > 0 {
				return targetTTL{ok: true, ttl: r.TTL, hops: hopCount(r.TTL), from: string(o.Probe) + " " + r.Kind}
			}
		}
		for _, e := range o.ICMP {
			if e.From == o.Target && e.TTL > 0 && e.Type == wire.ICMPUnreach &&
				(e.Code == wire.CodeProtoUnreach || e.Code == wire.CodePortUnreach) {
				return targetTTL{ok: true, ttl: e.TTL, hops: hopCount(e.TTL), from: string(o.Probe) + " ICMP " + wire.ICMPName(e.Type, e.Code)}
			}
		}
	}
	return targetTTL{}
}

// judge decides one outcome. base is the verdict of the form it is compared with (nil: none).
func judge(o *Outcome, base *report.Result, ref targetTTL) report.Result {
	r := report.Result{Probe: string(o.Probe), Direction: o.Direction}
	if o.Direction == "" {
		r.Direction = report.Forward
	}
	r.Evidence = evidence(o)
	if base != nil {
		r.Evidence.Compared = base.Probe
	}
	what := describe(o.Probe)
	switch {
	case o.Err != nil:
		r.Verdict = report.Error
		r.Detail = errorDetail(o)
		return r
	case o.Skip != "":
		r.Verdict = report.Skipped
		r.Detail = o.Skip
		return r
	case o.Probe == PMTU:
		return judgePMTU(o, r)
	}
	if o.Observed || o.Direction == report.Reverse {
		return judgeObserved(o, r, base, what)
	}
	return judgeOneEnded(o, r, base, what, ref)
}

// errorDetail says why a probe could not run, as a sentence: a run that ended (or was cut
// off) before the probe had its answer says so, not "context canceled".
func errorDetail(o *Outcome) string {
	name := "The " + string(o.Probe) + " probe"
	if o.Probe == PMTU {
		name = "The path MTU search"
		if o.Direction == report.Reverse {
			name += " toward us (the agent's DF echoes)"
		}
	}
	if errors.Is(o.Err, context.Canceled) || errors.Is(o.Err, context.DeadlineExceeded) {
		return name + " did not finish: the run ended before it had its answer, so nothing was measured; run it again (for the path MTU alone, 'ipsecpath pmtu')."
	}
	if ns := (*notSentError)(nil); errors.As(o.Err, &ns) {
		return fmt.Sprintf("%s was %s.", name, ns)
	}
	msg := strings.TrimSuffix(strings.TrimPrefix(o.Err.Error(), "pmtu: "), ".")
	return fmt.Sprintf("%s could not run: %s.", name, msg)
}

// judgeObserved decides a probe whose receiving end watched for it: forward, the agent;
// reverse, our own capture. What came back to the sender (to us forward, to the agent
// reverse) explains a probe that never arrived.
func judgeObserved(o *Outcome, r report.Result, base *report.Result, what string) report.Result {
	reverse := o.Direction == report.Reverse
	subject, arrived, never, watcher := what, "reached the agent", "never reached the agent", "the agent"
	if reverse {
		subject, arrived, never, watcher = reverseSubject(what), "arrived here", "never arrived here", "our capture"
	}
	saw := anySeen(o)
	if !reverse {
		r.Evidence.AgentSaw = &saw
	}
	if saw {
		r = judgeSeen(o, r, base, what, subject, arrived)
		if fw := o.FarLocalDrop; fw != nil && !reverse {
			// The path delivered it; the far host itself then drops it (its capture is
			// before its firewall). Still the path's pass, but not a daemon's arrival.
			r.Detail = strings.TrimSuffix(r.Detail, ".") + fmt.Sprintf("; but the agent's host's own firewall then %ss it (nft %s chain %s, hook %s: %q), so a daemon there never gets it: a local cause at the far end, not the path.",
				fw.Action, fw.Table, fw.Chain, fw.Hook, fw.Rule)
			r.Evidence.Extra = fmt.Sprintf("the agent's host's nftables rule %q (%s %s, hook %s) %ss it after the capture", fw.Rule, fw.Table, fw.Chain, fw.Hook, fw.Action)
		}
		if e := firstBlocking(o); e != nil {
			r.Evidence.Extra = fmt.Sprintf("%s also came back from %s, but %s saw the probe arrive", wire.ICMPName(e.Type, e.Code), e.From, watcher)
		}
		return r
	}
	// Not seen at all: whatever came back explains why.
	if e := firstBlocking(o); e != nil {
		return blockedByICMP(o, r, *e, what)
	}
	if rst := firstReply(o, AnswerRST); rst != nil && o.Probe.IsTCP() {
		return blockedByRST(o, r, *rst, what)
	}
	if len(o.Replies) > 0 {
		a := o.Replies[0]
		r.Evidence.Answer = a.Kind
		if reverse {
			r.Evidence.Extra = fmt.Sprintf("a %s came back to the agent in the name of %s although nothing arrived here: something on the path answers in this host's name, or our capture watches another interface", a.Kind, a.From)
		} else {
			r.Evidence.Extra = fmt.Sprintf("a %s came back in the name of %s although the agent saw nothing: something on the path answers in the target's name, or the agent captures on another interface", a.Kind, a.From)
		}
	}
	return silent(o, r, base, what, never)
}

// blockedByRST decides a TCP probe that never arrived while a reset came back in the name of
// its destination: a device on the path sent it. Its source address is the destination's,
// so only its TTL places it, and only as an estimate (Hop.Estimated).
func blockedByRST(o *Outcome, r report.Result, rst Reply, what string) report.Result {
	r.Verdict = report.Blocked
	r.Evidence.Answer = AnswerRST // answered_by stays empty: the address on it is not its sender's
	r.Evidence.RTTms = ms(rst.RTT)
	r.Hop = estimatedHop(rst.TTL)
	from := "us"
	if o.Direction == report.Reverse {
		from = "the agent"
	}
	r.Evidence.Inferred = fmt.Sprintf("the reset carried the address %s and arrived at %s with TTL %d: if it left with TTL %d, its sender is %d router(s) away from %s, at hop %d",
		rst.From, from, rst.TTL, initialTTL(rst.TTL), r.Hop.TTL-1, from, r.Hop.TTL)
	if o.Direction == report.Reverse {
		r.Detail = fmt.Sprintf("A TCP reset came back to the agent in the name of this host (%s), but the agent's SYN never arrived here: a device on the way from the responder's side (a firewall or IPS, about hop %d from the agent by the reset's TTL, an estimate) resets %s; permit it there.",
			rst.From, r.Hop.TTL, what)
		return r
	}
	r.Detail = fmt.Sprintf("A TCP reset came back in the name of %s, but the agent never saw the SYN: a device on the path (a firewall or IPS, about hop %d by the reset's TTL, an estimate) resets %s; permit it there.",
		rst.From, r.Hop.TTL, what)
	return r
}

// estimatedHop places the sender of a packet that arrived with ttl, assuming it left with
// the common initial TTL at or above it.
func estimatedHop(ttl uint8) *report.Hop {
	return &report.Hop{TTL: hopCount(ttl) + 1, Estimated: true}
}

// judgeSeen decides from what the receiving end captured (agent forward, ours reverse).
func judgeSeen(o *Outcome, r report.Result, base *report.Result, what, subject, arrived string) report.Result {
	complete, partial := 0, -1
	for i, a := range o.Attempts {
		if a.complete() {
			complete++
		} else if len(a.Seen) > 0 && partial < 0 {
			partial = i
		}
	}
	n := len(o.Attempts)
	switch {
	case complete > 0:
		r.Verdict = report.Pass
		if complete == n {
			r.Detail = fmt.Sprintf("%s %s%s.", capitalize(subject), arrived, fragNote(o))
		} else {
			r.Detail = fmt.Sprintf("%s %s in %d of %d attempts%s: the others were lost, which looks like packet loss on the path, not a filter.",
				capitalize(subject), arrived, complete, n, fragNote(o))
		}
		return r
	case partial >= 0:
		a := o.Attempts[partial]
		seen, missing := splitFragments(a)
		if base != nil && base.Verdict.Failed() && base.Verdict != report.Error && base.Evidence.Attempts > 0 && !hasOffset(seen, 0) {
			return headerFiltered(o, r, base, subject, arrived, seen)
		}
		r.Verdict = report.Partial
		r.Detail = fmt.Sprintf("Of %s only the fragment(s) at offset %s %s, not %s: a device on the path drops %s; allow IP fragments there.",
			subject, offsets(seen), arrived, offsets(missing), whichFragments(seen, missing))
		return r
	}
	if o.Direction == report.Reverse {
		return silent(o, r, base, what, "never arrived here")
	}
	return silent(o, r, base, what, "never reached the agent")
}

// headerFiltered decides a fragmented probe of which only non-first fragments arrived while
// its small form failed too: a filter matches the protocol's header (ICMP type, UDP or TCP
// port), which only the first fragment carries, so the rest slip through. That is the small
// form's fault again, not a fragment finding: the verdict and hop are the small form's.
func headerFiltered(o *Outcome, r report.Result, base *report.Result, subject, arrived string, seen []report.Fragment) report.Result {
	r.Verdict = base.Verdict
	if r.Verdict != report.Blocked {
		r.Verdict = report.Dropped
	}
	r.Hop = base.Hop
	r.Detail = fmt.Sprintf("Of %s only the fragment(s) at offset %s %s, not the first one (the one with the %s header), and %s failed too (%s): the path filters %s itself, not fragments; %s.",
		subject, offsets(seen), arrived, headerName(o.Probe), baseName(base), base.Verdict, filteredName(o.Probe), filterAdvice(o.Probe))
	return r
}

// headerName names the header a probe's first fragment carries.
func headerName(id ID) string {
	switch {
	case id == ICMPLarge:
		return "ICMP"
	case id.IsTCP():
		return "TCP"
	}
	switch id.Unfragmented() {
	case IKE, NATT:
		return "UDP"
	case ESP:
		return "ESP"
	case AH:
		return "AH"
	}
	return "transport"
}

// filteredName names what a filter that drops a probe's small form matches.
func filteredName(id ID) string {
	if id == ICMPLarge || id == smallEcho {
		return "ICMP echo requests"
	}
	return describe(id.Unfragmented())
}

// filterAdvice says what to open for a probe refused by its protocol, not by its size.
func filterAdvice(id ID) string {
	switch {
	case id == ICMPLarge || id == smallEcho:
		return "permit ICMP echo there if ping should work (IPsec itself does not need it)"
	case id.IsTCP():
		return permitAdvice(id)
	}
	switch id.Unfragmented() {
	case IKE:
		return "permit UDP 500 both ways"
	case NATT:
		return "permit UDP 4500 both ways"
	case ESP:
		return "permit IP protocol 50 both ways"
	case AH:
		return "permit IP protocol 51 both ways"
	}
	return "permit it"
}

// silent decides a probe nothing of which arrived: dropped, or frag-dropped when the
// unfragmented form passes.
func silent(o *Outcome, r report.Result, base *report.Result, what, never string) report.Result {
	dir := ""
	if o.Direction == report.Reverse {
		dir = " from the responder's side"
	}
	if base != nil && base.Verdict == report.Pass && fragmentedProbe(o.Probe) {
		r.Verdict = report.FragDropped
		r.Detail = fmt.Sprintf("%s %s while %s arrived: a device on the path drops IP fragments%s; %s.",
			fragSubject(o), never, baseName(base), dir, fragAdvice(o.Probe))
		return r
	}
	r.Verdict = report.Dropped
	extra := ""
	if base != nil && base.Verdict != report.Pass && base.Verdict != report.Skipped {
		form := "the unfragmented form"
		if base.Probe == string(smallEcho) {
			form = "a small echo"
		}
		extra = fmt.Sprintf(" (%s is %s too, so fragments are not the cause)", form, base.Verdict)
	}
	if o.Direction == report.Reverse {
		r.Detail = fmt.Sprintf("%s from the agent never arrived here: a device on the path drops it on the way from the responder's side%s (nothing came back to the agent either: no ICMP error, no reset); %s.",
			capitalize(what), extra, permitAdvice(o.Probe))
		return r
	}
	r.Detail = fmt.Sprintf("%s %s and nothing came back: a device on the path silently drops it%s; %s.",
		capitalize(what), never, extra, permitAdvice(o.Probe))
	return r
}

// oneWay rewrites the detail of a reverse probe dropped while the same probe passed forward:
// the path passes it one way only. For IKE and NAT-T, cold probes cannot tell the two devices
// that do this apart: a stateful firewall or NAT that admits UDP 500/4500 from the far side
// only for a flow it holds (none yet, or forgotten after an idle timer: a rekey or delete the
// responder starts after such an idle period dies), or a static one-way rule. The detail says
// both and points to the measurement that tells them apart.
func oneWay(rev *report.Result, id ID) {
	what := describe(id)
	if id.Unfragmented() == IKE || id.Unfragmented() == NATT {
		rev.Detail = fmt.Sprintf("%s from the responder's side never arrived although ours reached the agent: a device on the path passes it one way only, either a stateful firewall or NAT that admits it from that side only for a flow it holds (it had none for these cold probes, or forgot it after an idle timer, which also kills a rekey or delete the responder starts after the tunnel idles) or a rule that filters this direction; run 'ipsecpath stateful' to measure the timer, and permit %s both ways or raise the device's UDP idle timeout above the IKE/IPsec rekey interval.", capitalize(what), udpPort(id))
		return
	}
	rev.Detail = fmt.Sprintf("%s from the responder's side never arrived although ours reached the agent: a device on the path filters this direction only; %s.", capitalize(what), permitAdvice(id))
}

// judgeOneEnded decides a forward probe without an agent: only answers count.
func judgeOneEnded(o *Outcome, r report.Result, base *report.Result, what string, ref targetTTL) report.Result {
	// An answer from the target itself proves arrival.
	for _, a := range o.Replies {
		if a.Kind == AnswerRST || a.From != o.Target {
			continue
		}
		r.Verdict = report.Pass
		r.Evidence.Answer, r.Evidence.AnsweredBy = a.Kind, a.From.String()
		r.Evidence.RTTms = ms(a.RTT)
		r.Evidence.Inferred = "the target answered (" + a.Kind + ")"
		r.Detail = fmt.Sprintf("%s reached %s: it answered with %s%s.", capitalize(what), a.From, answerName(a.Kind), fragNote(o))
		if o.Probe == ICMPLarge {
			r.Detail = fmt.Sprintf("%s reached %s and its equally large reply came back: fragments pass both ways%s.", capitalize(what), a.From, fragNote(o))
		}
		return r
	}
	for _, e := range o.ICMP {
		if e.From == o.Target && e.Type == wire.ICMPUnreach && (e.Code == wire.CodeProtoUnreach || e.Code == wire.CodePortUnreach) {
			r.Verdict = report.Pass
			r.Evidence.ICMP = icmpEvidence(e)
			r.Evidence.Inferred = "the target's kernel answered " + wire.ICMPName(e.Type, e.Code) + ", so the probe arrived"
			r.Detail = fmt.Sprintf("%s reached %s: its kernel answered %s (nothing there listens for it, but the path carries it).",
				capitalize(what), e.From, wire.ICMPName(e.Type, e.Code))
			return r
		}
	}
	for _, e := range o.ICMP {
		if e.From == o.Target && e.Type == wire.ICMPTimeExceeded && e.Code == wire.CodeReassemblyTimeout {
			r.Verdict = report.Partial
			r.Evidence.ICMP = icmpEvidence(e)
			r.Evidence.Inferred = "the target reported a fragment reassembly timeout: it got the first fragment but not all"
			r.Detail = fmt.Sprintf("%s reassembly timed out at %s: the first fragment arrived, later ones did not; a device on the path drops non-first fragments (run with --agent to see which).",
				capitalize(what), e.From)
			return r
		}
	}
	if e := firstBlocking(o); e != nil {
		return blockedByICMP(o, r, *e, what)
	}
	if rst := firstReply(o, AnswerRST); rst != nil {
		return judgeRST(o, r, *rst, what, ref)
	}
	// Silence. Only where the far end answers by itself does silence say something.
	switch {
	case o.Probe == ICMPLarge:
		if base != nil && base.Verdict == report.Pass {
			r.Verdict = report.FragDropped
			r.Detail = fmt.Sprintf("%s got no reply while a small echo did: fragments are dropped on the path, one way or the other (run with --agent to tell which direction).", capitalize(what))
			r.Evidence.Inferred = "compared with a small echo to the same target, which was answered"
			return r
		}
		r.Verdict = report.Skipped
		r.Detail = "No verdict without an agent: the target does not answer even a small ping, so silence says nothing about fragments."
		return r
	case o.Probe.IsUDPClass() && (base == nil || base.Verdict != report.Pass):
		r.Verdict = report.Skipped
		r.Detail = fmt.Sprintf("No verdict without an agent: a UDP service that gets %s may stay silent, and the target's kernel sent no port unreachable, so silence proves nothing; run 'ipsecpath responder' there and pass --agent.", what)
		return r
	case isESPorAH(o.Probe):
		if base != nil && base.Verdict == report.Pass {
			if kernelErrorOnly(base) {
				return silentBesideKernelError(o, r, base)
			}
			r.Verdict = report.FragDropped
			r.Evidence.Inferred = "compared with the unfragmented form, which the target's kernel answered"
			r.Detail = fmt.Sprintf("%s got no answer while %s did: a device on the path drops IP fragments, one way or the other; %s.", fragSubject(o), baseName(base), fragAdvice(o.Probe))
			return r
		}
		r.Verdict = report.Skipped
		r.Detail = fmt.Sprintf("No verdict without an agent: a target that handles %s stays silent, so silence proves nothing; run 'ipsecpath responder' there and pass --agent.", what)
		return r
	}
	r.Evidence.Inferred = "no answer from the target within the timeout"
	if base != nil && (base.Verdict == report.Dropped || base.Verdict == report.Blocked) {
		// Whatever stopped the unfragmented form explains this silence: say so, not the
		// generic causes (the hop is the base's, not observed for this probe: not copied).
		at := ""
		if base.Hop != nil {
			at = ", " + base.Hop.String()
		}
		r.Verdict = report.Dropped
		r.Detail = fmt.Sprintf("No answer to %s, and %s failed too (%s%s): what stops the small form stops this one, whatever its size; see that row.", what, baseName(base), base.Verdict, at)
		return r
	}
	if base != nil && base.Verdict == report.Pass && kernelErrorOnly(base) {
		return silentBesideKernelError(o, r, base)
	}
	if base != nil && base.Verdict == report.Pass {
		r.Verdict = report.FragDropped
		r.Detail = fmt.Sprintf("%s got no answer while %s did: a device on the path drops IP fragments, one way or the other; %s.", fragSubject(o), baseName(base), fragAdvice(o.Probe))
		return r
	}
	r.Verdict = report.Dropped
	switch {
	case o.Probe.IsTCP():
		r.Detail = fmt.Sprintf("No SYN-ACK, RST or ICMP came back for %s: a host answers a SYN either way, so the path or a host firewall drops it; %s.", what, permitAdvice(o.Probe))
	case ref.kernelError != "" && (o.Probe.Unfragmented() == IKE || o.Probe.Unfragmented() == NATT):
		r.Detail = fmt.Sprintf("No answer to %s, while the target's kernel answered %s: the path or a firewall on the target may drop it, or nothing listens there either and the target's kernel sent no more ICMP errors for now (kernels rate-limit them; Linux sends about one a second after a burst of six). Run with --agent to tell them apart.", what, ref.kernelError)
	default:
		r.Detail = fmt.Sprintf("No answer to %s: the path or a firewall on %s itself drops it, or no IKE gateway listens there (run with --agent to tell them apart).", what, o.Target)
	}
	return r
}

// kernelErrorOnly reports whether a one-ended pass rests on the target kernel's ICMP
// port/protocol unreachable alone, not on an answer from a service.
func kernelErrorOnly(base *report.Result) bool {
	return base.Evidence.ICMP != nil && base.Evidence.Answer == ""
}

// silentBesideKernelError decides a fragmented probe that got no answer while its small form
// got only the target kernel's ICMP error. Kernels rate-limit ICMP errors per destination
// (Linux: about one a second after a burst of six), so that silence is as well explained by
// the target holding back its next ICMP error as by fragments lost on the path: dropped, not
// frag-dropped, and the detail says both.
func silentBesideKernelError(o *Outcome, r report.Result, base *report.Result) report.Result {
	r.Verdict = report.Dropped
	r.Evidence.Inferred = "no answer from the target within the timeout; the unfragmented form got only the target kernel's ICMP error, which kernels rate-limit"
	r.Detail = fmt.Sprintf("%s got no answer while %s got %s from the target's kernel: either IP fragments are lost on the path, or the target's kernel sent no more ICMP errors for now (kernels rate-limit them; Linux sends about one a second after a burst of six). Run with --agent to tell them apart.",
		fragSubject(o), baseName(base), wire.ICMPName(uint8(base.Evidence.ICMP.Type), uint8(base.Evidence.ICMP.Code)))
	return r
}

// judgeRST decides a TCP RST without an agent by comparing its TTL with the target's.
func judgeRST(o *Outcome, r report.Result, rst Reply, what string, ref targetTTL) report.Result {
	r.Evidence.Answer, r.Evidence.AnsweredBy = AnswerRST, rst.From.String()
	r.Evidence.RTTms = ms(rst.RTT)
	if !ref.ok {
		r.Verdict = report.Skipped
		r.Evidence.Inferred = fmt.Sprintf("RST arrived with TTL %d; nothing else from the target answered to compare it with", rst.TTL)
		r.Detail = fmt.Sprintf("A TCP reset came back for %s, from the target or from a firewall answering in its name: nothing else from the target answered to tell them apart; run with --agent.", what)
		return r
	}
	hops := hopCount(rst.TTL)
	if hops < ref.hops {
		r.Verdict = report.Blocked
		r.Evidence.AnsweredBy = "" // the address on the reset is the target's, its sender is not
		r.Evidence.Inferred = fmt.Sprintf("RST arrived with TTL %d (%d hops away), the target's own answers (%s) with TTL %d (%d hops): the RST came from a device %d hop(s) closer",
			rst.TTL, hops, ref.from, ref.ttl, ref.hops, ref.hops-hops)
		r.Hop = estimatedHop(rst.TTL)
		r.Detail = fmt.Sprintf("A TCP reset for %s came in the target's name from a device %d hop(s) before it (about hop %d: its TTL gives it away, an estimate), not from the target: a device on the path (a firewall, IPS or router filter) resets it; permit it there.",
			what, ref.hops-hops, r.Hop.TTL)
		return r
	}
	r.Verdict = report.Pass
	r.Evidence.Inferred = fmt.Sprintf("RST arrived with TTL %d (%d hops away), like the target's own answers (%s, TTL %d): the target itself refused",
		rst.TTL, hops, ref.from, ref.ttl)
	r.Detail = fmt.Sprintf("%s reached the target, which answered with a reset: nothing listens on that port, but the path carries it.", capitalize(what))
	return r
}

// blockedByICMP decides a probe an ICMP error came back for.
func blockedByICMP(o *Outcome, r report.Result, e ICMPAnswer, what string) report.Result {
	r.Evidence.ICMP = icmpEvidence(e)
	name := wire.ICMPName(e.Type, e.Code)
	if e.Type == wire.ICMPTimeExceeded {
		r.Verdict = report.Dropped
		r.Hop = icmpHop(e)
		subject := what
		if o.Direction == report.Reverse {
			subject = reverseSubject(what)
		}
		r.Detail = fmt.Sprintf("%s came back from %s for %s: the packet's TTL ran out there (a routing loop?); check the routes at %s.", name, e.From, subject, e.From)
		return r
	}
	r.Verdict = report.Blocked
	r.Hop = icmpHop(e)
	// net/host unreachable (and their "unknown" and source-route forms) from a router: it
	// could not deliver, which is routing or a dead target, not a filter.
	undeliverable := e.From != o.Target && (e.Code == wire.CodeNetUnreach || e.Code == wire.CodeHostUnreach || e.Code == 5 || e.Code == 6 || e.Code == 7)
	if o.Direction == report.Reverse {
		subject := reverseSubject(what)
		switch {
		case undeliverable:
			r.Detail = fmt.Sprintf("%s could not deliver %s (%s), and told the agent so: it has no route toward this host, or this host does not answer on that device's link; a routing problem, not a filter: check the routes toward this host there.", e.From, subject, name)
		case e.Code == wire.CodeFragNeeded:
			r.Detail = fmt.Sprintf("%s cannot forward %s of %d bytes with DF set (next-hop MTU %d), and told the agent so: keep packets under that size or let them be fragmented.", e.From, subject, o.Size, e.MTU)
		case e.From == o.Target:
			r.Detail = fmt.Sprintf("This host (%s) rejected %s with %s, sent to the agent: a firewall here refuses it; permit it on this host.", e.From, subject, name)
		default:
			r.Detail = fmt.Sprintf("%s rejected %s with %s, sent back to the agent: that device's filter blocks it on the way from the responder's side; %s there.", e.From, subject, name, permitAdvice(o.Probe))
		}
		return r
	}
	switch {
	case undeliverable:
		r.Detail = fmt.Sprintf("%s could not deliver %s (%s): it has no route toward %s, or %s does not answer on that device's link (down, or a wrong address); a routing problem or a dead target, not a filter: check that the target is up and routed there.", e.From, what, name, o.Target, o.Target)
	case e.Code == wire.CodeFragNeeded:
		r.Detail = fmt.Sprintf("%s cannot forward %s of %d bytes with DF set (next-hop MTU %d): keep packets under that size or let them be fragmented.", e.From, what, o.Size, e.MTU)
	case e.From == o.Target:
		r.Detail = fmt.Sprintf("The target %s itself rejected %s with %s: its own firewall refuses it; permit it on the target.", e.From, what, name)
	default:
		r.Detail = fmt.Sprintf("%s rejected %s with %s: that device's filter blocks it; %s there.", e.From, what, name, permitAdvice(o.Probe))
	}
	return r
}

// judgePMTU decides the pmtu probe from the path MTU search, in the words of
// pmtu.Result.Judge (the pmtu command's too); the row keeps the probe's own evidence beside
// the search's.
func judgePMTU(o *Outcome, r report.Result) report.Result {
	j := o.Search.Judge(r.Direction)
	r.Verdict, r.Detail, r.Hop = j.Verdict, j.Detail, j.Hop
	r.Evidence.Size, r.Evidence.Attempts = j.Evidence.Size, j.Evidence.Attempts
	r.Evidence.ICMP, r.Evidence.Extra = j.Evidence.ICMP, j.Evidence.Extra
	return r
}

// evidence fills what every verdict rests on.
func evidence(o *Outcome) report.Evidence {
	ev := report.Evidence{
		Size:         o.Size,
		Attempts:     len(o.Attempts),
		FragmentSize: o.FragmentSize,
		ProbeID:      o.Nonce,
		SourcePort:   o.SrcPort,
		DestPort:     o.DstPort,
	}
	if len(o.Attempts) > 0 {
		ev.FragmentsSent = o.Attempts[0].Sent
		if len(ev.FragmentsSent) < 2 {
			ev.FragmentsSent = nil // an unfragmented packet: Size says it all
		}
	}
	// The seen fragments of the best attempt: a complete one, else the first with any.
	best := -1
	for i, a := range o.Attempts {
		if a.complete() {
			best = i
			break
		}
		if best < 0 && len(a.Seen) > 0 {
			best = i
		}
	}
	if best >= 0 && o.Observed {
		ev.FragmentsSeen = o.Attempts[best].Seen
	}
	for _, a := range o.Replies {
		if a.From == o.Target && a.Kind != AnswerRST {
			ev.Answer, ev.AnsweredBy, ev.RTTms = a.Kind, a.From.String(), ms(a.RTT)
			break
		}
	}
	return ev
}

func anySeen(o *Outcome) bool {
	for _, a := range o.Attempts {
		if len(a.Seen) > 0 {
			return true
		}
	}
	return false
}

// firstBlocking returns the first ICMP error that says a device refused the probe: any
// destination unreachable except a protocol/port unreachable from the target itself (that one
// proves arrival), or a TTL exceeded in transit.
func firstBlocking(o *Outcome) *ICMPAnswer {
	for i, e := range o.ICMP {
		switch e.Type {
		case wire.ICMPUnreach:
			if e.From == o.Target && (e.Code == wire.CodeProtoUnreach || e.Code == wire.CodePortUnreach) {
				continue
			}
			return &o.ICMP[i]
		case wire.ICMPTimeExceeded:
			if e.Code == wire.CodeTTLExceeded {
				return &o.ICMP[i]
			}
		}
	}
	return nil
}

func firstReply(o *Outcome, kind string) *Reply {
	for i, a := range o.Replies {
		if a.Kind == kind {
			return &o.Replies[i]
		}
	}
	return nil
}

// icmpHop localises the device that sent an ICMP error: its address, and its distance in
// hops from the TTL the error arrived with (0 when that is unknown).
func icmpHop(e ICMPAnswer) *report.Hop {
	h := &report.Hop{Addr: e.From.String()}
	if e.TTL > 0 {
		h.TTL = hopCount(e.TTL) + 1
	}
	return h
}

func icmpEvidence(e ICMPAnswer) *report.ICMP {
	return &report.ICMP{Type: int(e.Type), Code: int(e.Code), From: e.From.String(), MTU: e.MTU, Text: wire.ICMPName(e.Type, e.Code)}
}

func answerName(kind string) string {
	switch kind {
	case AnswerIKE:
		return "an IKE response"
	case AnswerEchoReply:
		return "an echo reply"
	case AnswerSYNACK:
		return "a SYN-ACK (the port is open)"
	}
	return kind
}

// reverseSubject names a reverse probe as the subject of a sentence: "the agent's ESP (IP
// protocol 50) toward this host", without "the agent's a 5000-byte ICMP echo".
func reverseSubject(what string) string {
	what = strings.TrimPrefix(strings.TrimPrefix(what, "a "), "an ")
	return "the agent's " + what + " toward this host"
}

// describe names a probe in a network engineer's words.
func describe(id ID) string {
	if p, ok := id.TCPPort(); ok {
		return "TCP " + strconv.Itoa(p)
	}
	if d, ok := describeUDPClass(id); ok {
		return d
	}
	switch id {
	case IKE:
		return "IKE (UDP 500)"
	case IKEFrag:
		return "large IKE (UDP 500)"
	case NATT:
		return "NAT-T IKE (UDP 4500)"
	case NATTFrag:
		return "large NAT-T (UDP 4500)"
	case ESP:
		return "ESP (IP protocol 50)"
	case ESPFrag:
		return "large ESP (IP protocol 50)"
	case AH:
		return "AH (IP protocol 51)"
	case AHFrag:
		return "large AH (IP protocol 51)"
	case ICMPLarge:
		return "a 5000-byte ICMP echo"
	case smallEcho:
		return "a small ICMP echo"
	case PMTU:
		return "the path MTU probe"
	}
	return string(id)
}

// permitAdvice says what to open for a probe.
func permitAdvice(id ID) string {
	if p, ok := id.TCPPort(); ok {
		return "permit TCP port " + strconv.Itoa(p)
	}
	if c, ok := udpClassOf(id); ok {
		return "permit UDP " + strconv.Itoa(c.port) + " (and its fragments) both ways"
	}
	switch id.Unfragmented() {
	case IKE:
		return "permit UDP 500 (and its fragments) both ways"
	case NATT:
		return "permit UDP 4500 both ways"
	case ESP:
		return "permit IP protocol 50 (and its fragments) both ways"
	case AH:
		return "permit IP protocol 51 (and its fragments) both ways"
	case ICMPLarge, smallEcho:
		return "permit ICMP echo and its fragments"
	}
	return "permit it"
}

// udpPort names the UDP port of an IKE or NAT-T probe.
func udpPort(id ID) string {
	if id.Unfragmented() == NATT {
		return "UDP 4500"
	}
	return "UDP 500"
}

func isESPorAH(id ID) bool {
	u := id.Unfragmented()
	return u == ESP || u == AH
}

// fragSubject names a fragmented probe and how many fragments it was cut into.
func fragSubject(o *Outcome) string {
	s := capitalize(describe(o.Probe.Unfragmented()))
	if len(o.Attempts) > 0 && len(o.Attempts[0].Sent) > 1 {
		s += fmt.Sprintf(" cut into %d fragments", len(o.Attempts[0].Sent))
	}
	return s
}

// baseName names what a fragmented probe was compared with.
func baseName(base *report.Result) string {
	if base.Probe == string(smallEcho) {
		return "a small echo"
	}
	return "the same probe unfragmented (" + base.Probe + ")"
}

// fragAdvice says what to do about dropped fragments of a protocol.
func fragAdvice(id ID) string {
	switch id.Unfragmented() {
	case IKE, NATT:
		return "allow fragments there, or turn on IKE fragmentation (RFC 7383) on both gateways"
	case ESP, AH:
		return "allow fragments there, or lower the tunnel MTU and clamp the TCP MSS so IPsec packets need no fragmenting"
	}
	return "allow fragments there"
}

// fragmentedProbe reports whether id is sent IP-fragmented: the -frag forms and icmp-large.
func fragmentedProbe(id ID) bool { return id.Fragmented() || id == ICMPLarge }

// fragNote says how many fragments arrived, for fragmented probes.
func fragNote(o *Outcome) string {
	if len(o.Attempts) == 0 || len(o.Attempts[0].Sent) < 2 {
		return ""
	}
	return fmt.Sprintf(" (all %d fragments)", len(o.Attempts[0].Sent))
}

// splitFragments returns the fragments of a that were seen and those that were not.
func splitFragments(a Attempt) (seen, missing []report.Fragment) {
	for _, s := range a.Sent {
		if hasOffset(a.Seen, s.Offset) {
			seen = append(seen, s)
		} else {
			missing = append(missing, s)
		}
	}
	return seen, missing
}

func offsets(fs []report.Fragment) string {
	if len(fs) == 0 {
		return "none"
	}
	o := make([]int, len(fs))
	for i, f := range fs {
		o[i] = f.Offset
	}
	sort.Ints(o)
	s := make([]string, len(o))
	for i, v := range o {
		s[i] = strconv.Itoa(v)
	}
	return strings.Join(s, ", ")
}

// whichFragments names the pattern of loss: non-first fragments, the first one, the last one.
func whichFragments(seen, missing []report.Fragment) string {
	firstSeen := hasOffset(seen, 0)
	switch {
	case firstSeen && len(seen) == 1:
		return "non-first fragments"
	case !firstSeen && len(missing) == 1:
		return "first fragments (the ones with the transport header)"
	}
	lastMissing := false
	for _, m := range missing {
		if !m.More {
			lastMissing = true
		}
	}
	if lastMissing && len(missing) == 1 {
		return "last fragments"
	}
	return "some fragments"
}

func capitalize(s string) string {
	if s == "" {
		return s
	}
	if s[0] >= 'a' && s[0] <= 'z' {
		return string(s[0]-'a'+'A') + s[1:]
	}
	return s
}

func ms(d time.Duration) float64 {
	return float64(d.Microseconds()) / 1000
}
