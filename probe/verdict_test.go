package probe

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/ipsecpath/ipsecpath/pmtu"
	"github.com/ipsecpath/ipsecpath/report"
)

// The expectations below are written from the fault each case stands for (which device does
// what to which packet), not from the engine's output.

var (
	vTarget = netip.MustParseAddr("203.0.113.10") // the far end
	vRouter = netip.MustParseAddr("192.0.2.66")   // a router two hops out
	vNear   = netip.MustParseAddr("198.51.100.1") // the first router
)

// frags cuts a fragmented probe of n fragments of 1256 payload bytes each (offsets 0,
// 1256, …), the last without MF.
func frags(n int) []report.Fragment {
	fs := make([]report.Fragment, n)
	for i := range fs {
		fs[i] = report.Fragment{Offset: i * 1256, Length: 1256, More: i < n-1}
	}
	return fs
}

func one() []report.Fragment { return []report.Fragment{{Offset: 0, Length: 100}} }

// att is attempts, each seeing the fragments at the given indexes of sent.
func att(sent []report.Fragment, seen ...[]int) []Attempt {
	as := make([]Attempt, len(seen))
	for i, idx := range seen {
		as[i].Sent = sent
		for _, k := range idx {
			as[i].Seen = append(as[i].Seen, sent[k])
		}
	}
	return as
}

func all(n int) []int {
	s := make([]int, n)
	for i := range s {
		s[i] = i
	}
	return s
}

var none = []int{}

func fwd(id ID, agent bool, a []Attempt) Outcome {
	return Outcome{Probe: id, Direction: report.Forward, Target: vTarget, Observed: agent, Attempts: a}
}

func rev(id ID, a []Attempt) Outcome {
	return Outcome{Probe: id, Direction: report.Reverse, Target: netip.MustParseAddr("198.51.100.10"), Observed: true, Attempts: a}
}

func ica(typ, code uint8, from netip.Addr, ttl uint8) ICMPAnswer {
	return ICMPAnswer{ICMPError: ICMPError{Type: typ, Code: code, From: from}, TTL: ttl}
}

func with(o Outcome, f func(*Outcome)) Outcome { f(&o); return o }

func ref(o Outcome) Outcome { o.Reference = true; return o }

func TestJudge(t *testing.T) {
	type want struct {
		probe   ID
		dir     report.Direction
		verdict report.Verdict
		detail  []string // substrings the detail must hold
		hop     string   // hop address, when the verdict localises one
	}
	F, R := report.Forward, report.Reverse
	adminProhibited := ica(3, 13, vRouter, 63)
	cases := []struct {
		name string
		outs []Outcome
		want []want
	}{
		{
			name: "agent saw everything: pass both ways",
			outs: []Outcome{
				fwd(ESP, true, att(one(), all(1))),
				fwd(ESPFrag, true, att(frags(3), all(3))),
				rev(ESP, att(one(), all(1))),
				rev(ESPFrag, att(frags(3), all(3))),
			},
			want: []want{
				{ESP, F, report.Pass, []string{"reached the agent"}, ""},
				{ESPFrag, F, report.Pass, []string{"all 3 fragments"}, ""},
				{ESP, R, report.Pass, []string{"arrived here"}, ""},
				{ESPFrag, R, report.Pass, []string{"all 3 fragments"}, ""},
			},
		},
		{
			name: "frag-drop: a router drops every fragment, both ways",
			outs: []Outcome{
				fwd(IKE, true, att(one(), all(1))),
				fwd(IKEFrag, true, att(frags(3), none, none, none)),
				rev(IKE, att(one(), all(1))),
				rev(IKEFrag, att(frags(3), none, none)),
			},
			want: []want{
				{IKE, F, report.Pass, nil, ""},
				{IKEFrag, F, report.FragDropped, []string{"drops IP fragments", "(ike)"}, ""},
				{IKE, R, report.Pass, nil, ""},
				{IKEFrag, R, report.FragDropped, []string{"from the responder's side"}, ""},
			},
		},
		{
			name: "reverse silence: nothing arrived here and nothing came back to the agent",
			outs: []Outcome{rev(AH, att(one(), none, none, none))},
			want: []want{{AH, R, report.Dropped, []string{"never arrived here", "nothing came back to the agent either"}, ""}},
		},
		{
			name: "nonfirst-frag-drop: only the first fragment gets through",
			outs: []Outcome{
				fwd(ESP, true, att(one(), all(1))),
				fwd(ESPFrag, true, att(frags(3), []int{0}, []int{0})),
			},
			want: []want{
				{ESP, F, report.Pass, nil, ""},
				{ESPFrag, F, report.Partial, []string{"offset 0", "not 1256, 2512", "non-first fragments"}, ""},
			},
		},
		{
			name: "the last fragment is lost",
			outs: []Outcome{fwd(AHFrag, true, att(frags(3), []int{0, 1}))},
			want: []want{{AHFrag, F, report.Partial, []string{"not 2512", "last fragments"}, ""}},
		},
		{
			name: "esp-drop: ESP silently dropped, AH passes, fragments not the cause",
			outs: []Outcome{
				fwd(ESP, true, att(one(), none, none, none)),
				fwd(ESPFrag, true, att(frags(3), none, none)),
				fwd(AH, true, att(one(), all(1))),
			},
			want: []want{
				{ESP, F, report.Dropped, []string{"silently drops", "protocol 50"}, ""},
				{ESPFrag, F, report.Dropped, []string{"unfragmented form is dropped too"}, ""},
				{AH, F, report.Pass, nil, ""},
			},
		},
		{
			name: "ah-reject: a router answers AH with admin-prohibited",
			outs: []Outcome{
				with(fwd(AH, true, att(one(), none)), func(o *Outcome) { o.ICMP = []ICMPAnswer{adminProhibited} }),
				with(fwd(AHFrag, true, att(frags(3), none)), func(o *Outcome) { o.ICMP = []ICMPAnswer{adminProhibited} }),
			},
			want: []want{
				{AH, F, report.Blocked, []string{"192.0.2.66", "administratively prohibited", "protocol 51"}, "192.0.2.66"},
				{AHFrag, F, report.Blocked, []string{"192.0.2.66"}, "192.0.2.66"},
			},
		},
		{
			name: "a router's reject rule answers port unreachable in its own name",
			outs: []Outcome{with(fwd(NATT, true, att(one(), none)), func(o *Outcome) {
				o.ICMP = []ICMPAnswer{ica(3, 3, vNear, 64)}
			})},
			want: []want{{NATT, F, report.Blocked, []string{"198.51.100.1", "port unreachable"}, "198.51.100.1"}},
		},
		{
			name: "tcp445-reset: a middlebox resets in the target's name, the agent never saw the SYN",
			outs: []Outcome{
				with(fwd(TCP(445), true, att(one(), none)), func(o *Outcome) {
					o.Replies = []Reply{{Kind: AnswerRST, From: vTarget, TTL: 63}}
				}),
				with(fwd(TCP(1792), true, att(one(), all(1))), func(o *Outcome) {
					o.Replies = []Reply{{Kind: AnswerRST, From: vTarget, TTL: 62}}
				}),
			},
			want: []want{
				{TCP(445), F, report.Blocked, []string{"never saw the SYN", "TCP 445"}, ""},
				{TCP(1792), F, report.Pass, []string{"reached the agent"}, ""},
			},
		},
		{
			name: "tcp1792-drop: SYN silently dropped",
			outs: []Outcome{fwd(TCP(1792), true, att(one(), none, none))},
			want: []want{{TCP(1792), F, report.Dropped, []string{"permit TCP port 1792"}, ""}},
		},
		{
			name: "random loss: one attempt of three arrived",
			outs: []Outcome{fwd(NATT, true, att(one(), none, all(1), none))},
			want: []want{{NATT, F, report.Pass, []string{"1 of 3 attempts", "packet loss"}, ""}},
		},
		{
			name: "reverse-frag-drop: forward fragments pass, reverse ones are dropped",
			outs: []Outcome{
				fwd(NATT, true, att(one(), all(1))),
				fwd(NATTFrag, true, att(frags(3), all(3))),
				rev(NATT, att(one(), all(1))),
				rev(NATTFrag, att(frags(3), none, none)),
			},
			want: []want{
				{NATT, F, report.Pass, nil, ""},
				{NATTFrag, F, report.Pass, nil, ""},
				{NATT, R, report.Pass, nil, ""},
				{NATTFrag, R, report.FragDropped, []string{"responder's side"}, ""},
			},
		},
		{
			name: "stateful-udp: the responder's UDP 500/4500 dropped, forward passes",
			outs: []Outcome{
				fwd(IKE, true, att(one(), all(1))),
				rev(IKE, att(one(), none, none)),
				rev(NATT, att(one(), none, none)),
			},
			want: []want{
				{IKE, F, report.Pass, nil, ""},
				{IKE, R, report.Dropped, []string{"one way only", "stateful firewall or NAT", "or a rule that filters this direction", "rekey", "from the responder's side", "run 'ipsecpath stateful' to measure the timer"}, ""},
				{NATT, R, report.Dropped, []string{"UDP 4500"}, ""},
			},
		},
		{
			name: "one-ended IKE: gateway answers small, not large",
			outs: []Outcome{
				with(fwd(IKE, false, att(one(), none)), func(o *Outcome) {
					o.Replies = []Reply{{Kind: AnswerIKE, From: vTarget, TTL: 62, RTT: 2 * time.Millisecond}}
				}),
				fwd(IKEFrag, false, att(frags(3), none, none)),
			},
			want: []want{
				{IKE, F, report.Pass, []string{"an IKE response"}, ""},
				{IKEFrag, F, report.FragDropped, []string{"IKE fragmentation"}, ""},
			},
		},
		{
			name: "one-ended udp500-drop: nothing answers",
			outs: []Outcome{
				fwd(IKE, false, att(one(), none, none)),
				fwd(IKEFrag, false, att(frags(3), none, none)),
			},
			want: []want{
				{IKE, F, report.Dropped, []string{"no IKE gateway listens", "--agent"}, ""},
				{IKEFrag, F, report.Dropped, nil, ""},
			},
		},
		{
			name: "one-ended ESP: the target's kernel proves arrival, silence proves nothing",
			outs: []Outcome{
				with(fwd(ESP, false, att(one(), none)), func(o *Outcome) {
					o.ICMP = []ICMPAnswer{ica(3, 2, vTarget, 62)}
				}),
				fwd(ESPFrag, false, att(frags(3), none)),
				fwd(AH, false, att(one(), none)),
			},
			want: []want{
				{ESP, F, report.Pass, []string{"protocol unreachable"}, ""},
				// kernels rate-limit ICMP errors: the silence may be the target's, not a lost fragment
				{ESPFrag, F, report.Dropped, []string{"protocol unreachable from the target's kernel", "rate-limit", "--agent"}, ""},
				{AH, F, report.Skipped, []string{"without an agent", "--agent"}, ""},
			},
		},
		{
			// Seen on a clean scratch path: the target's kernel answered ike and natt with port
			// unreachable, then held back the next ones (its ICMP rate limit), so the -frag forms
			// got nothing although every fragment arrived.
			name: "one-ended UDP: only a kernel port unreachable for the small form, the -frag form silent",
			outs: []Outcome{
				with(fwd(NATT, false, att(one(), none)), func(o *Outcome) {
					o.ICMP = []ICMPAnswer{ica(3, 3, vTarget, 61)}
				}),
				fwd(NATTFrag, false, att(frags(3), none, none, none)),
				with(fwd(IKE, false, att(one(), none)), func(o *Outcome) {
					o.Replies = []Reply{{Kind: AnswerIKE, From: vTarget, TTL: 61}}
				}),
				fwd(IKEFrag, false, att(frags(3), none, none, none)),
			},
			want: []want{
				{NATT, F, report.Pass, []string{"port unreachable"}, ""},
				{NATTFrag, F, report.Dropped, []string{"port unreachable from the target's kernel", "rate-limit", "--agent"}, ""},
				{IKE, F, report.Pass, nil, ""},
				// a service's own answer is not rate-limited like the kernel's ICMP errors
				{IKEFrag, F, report.FragDropped, []string{"drops IP fragments"}, ""},
			},
		},
		{
			// Seen on a scratch path: ike got the target kernel's port unreachable, natt (sent
			// right after) got nothing although it arrived: the kernel's ICMP rate limit.
			name: "one-ended IKE: silence beside another probe's kernel port unreachable",
			outs: []Outcome{
				with(fwd(IKE, false, att(one(), none)), func(o *Outcome) {
					o.ICMP = []ICMPAnswer{ica(3, 3, vTarget, 61)}
				}),
				fwd(NATT, false, att(one(), none, none, none)),
			},
			want: []want{
				{IKE, F, report.Pass, []string{"port unreachable"}, ""},
				{NATT, F, report.Dropped, []string{"ike: ICMP port unreachable", "rate-limit", "--agent"}, ""},
			},
		},
		{
			// Seen on a scratch path: r1 rejects UDP 4500 (natt blocked there) but sends no ICMP
			// for a first fragment (its reject cannot verify a fragment's UDP checksum), and the
			// target's kernel answered ike: natt-frag's silence is natt's filter, not the rest.
			name: "one-ended: the -frag form silent, its small form blocked by a router",
			outs: []Outcome{
				with(fwd(IKE, false, att(one(), none)), func(o *Outcome) {
					o.ICMP = []ICMPAnswer{ica(3, 3, vTarget, 61)}
				}),
				with(fwd(NATT, false, att(one(), none)), func(o *Outcome) {
					o.ICMP = []ICMPAnswer{ica(3, 3, vNear, 64)}
				}),
				fwd(NATTFrag, false, att(frags(3), none, none, none)),
			},
			want: []want{
				{IKE, F, report.Pass, nil, ""},
				{NATT, F, report.Blocked, []string{"198.51.100.1"}, "198.51.100.1"},
				{NATTFrag, F, report.Dropped, []string{"(natt) failed too (blocked, hop 1 (198.51.100.1))", "see that row"}, ""},
			},
		},
		{
			// Seen on a scratch path: the far host's own input rule dropped UDP 500, the
			// agent (capturing before that rule) saw every probe: pass, and says so.
			name: "the agent saw it, its host's own firewall then drops it",
			outs: []Outcome{
				with(fwd(IKE, true, att(one(), all(1))), func(o *Outcome) {
					o.FarLocalDrop = &report.FirewallRule{Table: "inet m", Chain: "min", Hook: "input", Rule: "udp dport 500 drop", Action: "drop"}
				}),
				fwd(NATT, true, att(one(), all(1))),
			},
			want: []want{
				{IKE, F, report.Pass, []string{"reached the agent", "the agent's host's own firewall then drops it", "udp dport 500 drop", "not the path"}, ""},
				{NATT, F, report.Pass, []string{"reached the agent."}, ""},
			},
		},
		{
			// Seen in the survey lab test (a target that does not exist): the first router's
			// host unreachable read "that device's filter blocks it".
			name: "a router's host unreachable is a delivery failure, not a filter",
			outs: []Outcome{
				with(fwd(IKE, false, att(one(), none)), func(o *Outcome) {
					o.ICMP = []ICMPAnswer{ica(3, 1, vNear, 64)}
				}),
				with(rev(ESP, att(one(), none)), func(o *Outcome) {
					o.ICMP = []ICMPAnswer{ica(3, 0, vNear, 62)}
				}),
			},
			want: []want{
				{IKE, F, report.Blocked, []string{"198.51.100.1 could not deliver", "host unreachable", "not a filter"}, "198.51.100.1"},
				{ESP, R, report.Blocked, []string{"198.51.100.1 could not deliver", "network unreachable", "not a filter"}, "198.51.100.1"},
			},
		},
		{
			name: "one-ended IKE: silence and nothing from the target's kernel",
			outs: []Outcome{fwd(NATT, false, att(one(), none, none, none))},
			want: []want{{NATT, F, report.Dropped, []string{"a firewall on 203.0.113.10 itself drops it, or no IKE gateway listens there"}, ""}},
		},
		{
			name: "one-ended reassembly timeout from the target: first fragment arrived",
			outs: []Outcome{with(fwd(NATTFrag, false, att(frags(3), none)), func(o *Outcome) {
				o.ICMP = []ICMPAnswer{ica(11, 1, vTarget, 62)}
			})},
			want: []want{{NATTFrag, F, report.Partial, []string{"reassembly timed out", "non-first"}, ""}},
		},
		{
			name: "one-ended TCP: a RST from closer than the target is a middlebox",
			outs: []Outcome{
				with(fwd(IKE, false, att(one(), none)), func(o *Outcome) {
					o.Replies = []Reply{{Kind: AnswerIKE, From: vTarget, TTL: 62}} // 2 routers away
				}),
				with(fwd(TCP(445), false, att(one(), none)), func(o *Outcome) {
					o.Replies = []Reply{{Kind: AnswerRST, From: vTarget, TTL: 63}} // 1 router away
				}),
				with(fwd(TCP(1792), false, att(one(), none)), func(o *Outcome) {
					o.Replies = []Reply{{Kind: AnswerRST, From: vTarget, TTL: 62}}
				}),
				with(fwd(TCP(22), false, att(one(), none)), func(o *Outcome) {
					o.Replies = []Reply{{Kind: AnswerSYNACK, From: vTarget, TTL: 62}}
				}),
				fwd(TCP(3389), false, att(one(), none, none)),
			},
			want: []want{
				{IKE, F, report.Pass, nil, ""},
				{TCP(445), F, report.Blocked, []string{"1 hop(s) before it", "about hop 2", "estimate"}, ""},
				{TCP(1792), F, report.Pass, []string{"answered with a reset"}, ""},
				{TCP(22), F, report.Pass, []string{"SYN-ACK"}, ""},
				{TCP(3389), F, report.Dropped, []string{"No SYN-ACK, RST or ICMP", "permit TCP port 3389"}, ""},
			},
		},
		{
			name: "one-ended TCP: a RST and nothing to compare it with",
			outs: []Outcome{with(fwd(TCP(445), false, att(one(), none)), func(o *Outcome) {
				o.Replies = []Reply{{Kind: AnswerRST, From: vTarget, TTL: 63}}
			})},
			want: []want{{TCP(445), F, report.Skipped, []string{"--agent"}, ""}},
		},
		{
			name: "one-ended large echo: lost while a small echo is answered",
			outs: []Outcome{
				ref(with(fwd(smallEcho, false, att(one(), none)), func(o *Outcome) {
					o.Replies = []Reply{{Kind: AnswerEchoReply, From: vTarget, TTL: 62}}
				})),
				fwd(ICMPLarge, false, att(frags(4), none)),
			},
			want: []want{{ICMPLarge, F, report.FragDropped, []string{"small echo"}, ""}},
		},
		{
			name: "one-ended large echo: the target answers no ping at all",
			outs: []Outcome{
				ref(fwd(smallEcho, false, att(one(), none))),
				fwd(ICMPLarge, false, att(frags(4), none)),
			},
			want: []want{{ICMPLarge, F, report.Skipped, []string{"does not answer even a small ping"}, ""}},
		},
		{
			name: "one-ended large echo answered",
			outs: []Outcome{with(fwd(ICMPLarge, false, att(frags(4), none)), func(o *Outcome) {
				o.Replies = []Reply{{Kind: AnswerEchoReply, From: vTarget, TTL: 62}}
			})},
			want: []want{{ICMPLarge, F, report.Pass, []string{"both ways"}, ""}},
		},
		{
			name: "with an agent, the large echo that never arrives is frag-dropped against a small one",
			outs: []Outcome{
				ref(fwd(smallEcho, true, att(one(), all(1)))),
				fwd(ICMPLarge, true, att(frags(4), none)),
			},
			want: []want{{ICMPLarge, F, report.FragDropped, nil, ""}},
		},
		{
			name: "could not run, not run",
			outs: []Outcome{
				with(fwd(ESP, true, nil), func(o *Outcome) { o.Err = errors.New("raw socket: operation not permitted") }),
				with(fwd(AH, true, nil), func(o *Outcome) { o.Skip = "Not asked for." }),
			},
			want: []want{
				{ESP, F, report.Error, []string{"operation not permitted"}, ""},
				{AH, F, report.Skipped, []string{"Not asked for."}, ""},
			},
		},
		{
			name: "pmtu: black hole, clean, nothing",
			outs: []Outcome{
				with(fwd(PMTU, false, nil), func(o *Outcome) {
					o.Search = &pmtu.Result{MTU: 1300, Exact: true, Upper: 1301, Blackhole: &pmtu.Blackhole{Size: 1301, Last: pmtu.Hop{TTL: 2}}}
				}),
				with(fwd(PMTU, false, nil), func(o *Outcome) { o.Direction = R; o.Search = &pmtu.Result{MTU: 1500, Exact: true} }),
			},
			want: []want{
				{PMTU, F, report.Dropped, []string{"black hole", "1300"}, ""},
				{PMTU, R, report.Pass, []string{"1500", "full-size"}, ""},
			},
		},
		{
			name: "pmtu: a narrow link that says so",
			outs: []Outcome{with(fwd(PMTU, false, nil), func(o *Outcome) {
				o.Search = &pmtu.Result{MTU: 1400, Exact: true, Upper: 1401, Signalled: true, ICMPFrom: netip.MustParseAddr("192.0.2.65"), ICMPMTU: 1400}
			})},
			want: []want{{PMTU, F, report.Pass, []string{"1400", "192.0.2.65", "fragmentation-needed"}, ""}},
		},
		{
			name: "pmtu: nothing came back",
			outs: []Outcome{with(fwd(PMTU, false, nil), func(o *Outcome) { o.Err = errors.New("no size came back") })},
			want: []want{{PMTU, F, report.Error, []string{"The path MTU search could not run: no size came back."}, ""}},
		},
		{
			// Issue 9.2: a reverse search cut off before its confirmation and hop walk, with no
			// ICMP seen at all, is not "the narrow link says so".
			name: "pmtu: an unfinished reverse search claims no signal",
			outs: []Outcome{with(rev(PMTU, nil), func(o *Outcome) {
				o.Search = &pmtu.Result{MTU: 1300, Upper: 1500, Probes: 9, Stopped: "time budget of 2s spent"}
			})},
			want: []want{{PMTU, R, report.Error, []string{"unfinished", "time budget of 2s spent", "1300", "was not established"}, ""}},
		},
		{
			name: "pmtu: the limit is the agent's own interface",
			outs: []Outcome{with(rev(PMTU, nil), func(o *Outcome) {
				o.Search = &pmtu.Result{MTU: 1280, Exact: true, Upper: 1281, Signalled: true}
			})},
			want: []want{{PMTU, R, report.Pass, []string{"1280", "the agent's own interface"}, ""}},
		},
		{
			name: "pmtu: the limit is our own interface",
			outs: []Outcome{with(fwd(PMTU, false, nil), func(o *Outcome) {
				o.Search = &pmtu.Result{MTU: 1280, Exact: true, Upper: 1281, Signalled: true}
			})},
			want: []want{{PMTU, F, report.Pass, []string{"1280", "our own interface"}, ""}},
		},
		{
			name: "pmtu: a reverse black hole names its hop",
			outs: []Outcome{with(rev(PMTU, nil), func(o *Outcome) {
				o.Search = &pmtu.Result{MTU: 1300, Exact: true, Upper: 1301, Blackhole: &pmtu.Blackhole{Size: 1301, Last: pmtu.Hop{TTL: 1, Addr: netip.MustParseAddr("203.0.113.1")}, Next: pmtu.Hop{TTL: 2, Addr: netip.MustParseAddr("198.51.100.10")}, Sure: true}}
			})},
			want: []want{{PMTU, R, report.Dropped, []string{"black hole on the way back after hop 1 (203.0.113.1)", "1300"}, "203.0.113.1"}},
		},
		{
			// Seen on a scratch path whose first router drops ICMP echo requests both ways:
			// the search's error said "host down, ICMP echo filtered, or no route" beside
			// probes that reached the agent.
			name: "pmtu: no echo answered, while other probes arrived both ways",
			outs: []Outcome{
				fwd(ESP, true, att(one(), all(1))),
				with(fwd(PMTU, true, nil), func(o *Outcome) {
					o.Err = fmt.Errorf("%w (576 bytes, 3 tries, 1s each): host down, ICMP echo filtered, or no route", pmtu.ErrNoAnswer)
				}),
				rev(ESP, att(one(), all(1))),
				with(rev(PMTU, nil), func(o *Outcome) { o.Err = fmt.Errorf("wrapped: %w", pmtu.ErrNoAnswer) }),
				with(rev(AH, nil), func(o *Outcome) { o.Err = fmt.Errorf("wrapped: %w", pmtu.ErrNoAnswer) }),
			},
			want: []want{
				{ESP, F, report.Pass, nil, ""},
				{PMTU, F, report.Error, []string{"esp reached the far end", "ICMP echo is filtered", "--proto tcp"}, ""},
				{ESP, R, report.Pass, nil, ""},
				{PMTU, R, report.Error, []string{"the agent's esp did", "filtered on the way back"}, ""},
				{AH, R, report.Error, []string{"could not run"}, ""},
			},
		},
		{
			name: "pmtu: no echo answered and nothing else arrived",
			outs: []Outcome{
				fwd(ESP, true, att(one(), none, none, none)),
				with(fwd(PMTU, true, nil), func(o *Outcome) {
					o.Err = fmt.Errorf("%w (576 bytes, 3 tries, 1s each): host down, ICMP echo filtered, or no route", pmtu.ErrNoAnswer)
				}),
			},
			want: []want{
				{ESP, F, report.Dropped, nil, ""},
				{PMTU, F, report.Error, []string{"host down, ICMP echo filtered, or no route"}, ""},
			},
		},
		{
			// Seen on a scratch path: hop 2 sends no ICMP at all, so the drop may be there.
			name: "pmtu: a black hole whose next hop answers nothing is bracketed",
			outs: []Outcome{with(fwd(PMTU, true, nil), func(o *Outcome) {
				o.Search = &pmtu.Result{MTU: 1280, Exact: true, Upper: 1281, Blackhole: &pmtu.Blackhole{Size: 1281,
					Last: pmtu.Hop{TTL: 1, Addr: netip.MustParseAddr("198.51.100.1")}, Next: pmtu.Hop{TTL: 2}}}
			})},
			want: []want{{PMTU, F, report.Dropped, []string{"black hole between 198.51.100.1 (hop 1) and hop 2 (address unknown)", "1280"}, "198.51.100.1"}},
		},
		{
			// reverse-mtu-blackhole: forward the narrow link signals, back it black-holes. The
			// reverse row is the black hole's, not the one-way filter sentence of other probes.
			name: "pmtu: black hole on the way back only",
			outs: []Outcome{
				with(fwd(PMTU, false, nil), func(o *Outcome) {
					o.Search = &pmtu.Result{MTU: 1300, Exact: true, Upper: 1301, Signalled: true, ICMPFrom: netip.MustParseAddr("198.51.100.1"), ICMPMTU: 1300}
				}),
				with(rev(PMTU, nil), func(o *Outcome) {
					o.Search = &pmtu.Result{MTU: 1300, Exact: true, Upper: 1301, Blackhole: &pmtu.Blackhole{Size: 1301, Last: pmtu.Hop{TTL: 1, Addr: netip.MustParseAddr("203.0.113.1")}, Next: pmtu.Hop{TTL: 2, Addr: netip.MustParseAddr("198.51.100.10")}, Sure: true}}
				}),
			},
			want: []want{
				{PMTU, F, report.Pass, []string{"1300", "198.51.100.1", "says so"}, ""},
				{PMTU, R, report.Dropped, []string{"black hole on the way back after hop 1 (203.0.113.1)"}, "203.0.113.1"},
			},
		},
		{
			// Issue 9.7: a search the run cut off says so in a sentence, not "context canceled".
			name: "pmtu: cut off before its first answer",
			outs: []Outcome{with(fwd(PMTU, false, nil), func(o *Outcome) {
				o.Err = fmt.Errorf("pmtu: probe of 576 bytes (ttl 64): %w", context.Canceled)
			})},
			want: []want{{PMTU, F, report.Error, []string{"did not finish", "'ipsecpath pmtu'"}, ""}},
		},
		{
			// Issue 9.1: a router on the way back answers the agent's ESP with admin-prohibited;
			// the agent captured it. Blocked, with the router as the hop, as forward.
			name: "reverse-esp-reject: the agent captured the router's admin-prohibited",
			outs: []Outcome{
				fwd(ESP, true, att(one(), all(1))),
				with(rev(ESP, att(one(), none, none)), func(o *Outcome) {
					o.ICMP = []ICMPAnswer{ica(3, 13, netip.MustParseAddr("192.0.2.65"), 63)}
				}),
			},
			want: []want{
				{ESP, F, report.Pass, nil, ""},
				{ESP, R, report.Blocked, []string{"192.0.2.65 rejected the agent's ESP (IP protocol 50) toward this host", "administratively prohibited", "from the responder's side"}, "192.0.2.65"},
			},
		},
		{
			// Issue 9.1: a router on the way back resets the agent's SYN in our name.
			name: "reverse-tcp1792-reset: the agent captured a reset in our name, we never saw the SYN",
			outs: []Outcome{
				fwd(TCP(1792), true, att(one(), all(1))),
				with(rev(TCP(1792), att(one(), none)), func(o *Outcome) {
					o.Replies = []Reply{{Kind: AnswerRST, From: o.Target, TTL: 63}}
				}),
				with(rev(TCP(445), att(one(), all(1))), func(o *Outcome) {
					o.Replies = []Reply{{Kind: AnswerRST, From: o.Target, TTL: 62}} // our own kernel's
				}),
			},
			want: []want{
				{TCP(1792), F, report.Pass, nil, ""},
				{TCP(1792), R, report.Blocked, []string{"reset", "never arrived here", "about hop 2 from the agent", "estimate", "TCP 1792"}, ""},
				{TCP(445), R, report.Pass, []string{"arrived here"}, ""},
			},
		},
		{
			// Issue 9.4: a router drops ICMP echo requests; only the large echo's non-first
			// fragments (no ICMP header) get through. Not a fragment finding.
			name: "echo-filter: small echo lost, large echo's non-first fragments arrive",
			outs: []Outcome{
				ref(fwd(smallEcho, true, att(one(), none, none, none))),
				fwd(ICMPLarge, true, att(frags(4), []int{1, 2, 3}, []int{1, 2, 3}, []int{1, 2, 3})),
				ref(rev(smallEcho, att(one(), none, none, none))),
				rev(ICMPLarge, att(frags(4), []int{1, 2, 3}, []int{1, 2, 3})),
			},
			want: []want{
				{ICMPLarge, F, report.Dropped, []string{"not the first one", "ICMP header", "a small echo failed too (dropped)", "filters ICMP echo requests itself, not fragments", "permit ICMP echo"}, ""},
				{ICMPLarge, R, report.Dropped, []string{"the agent's 5000-byte ICMP echo toward this host", "filters ICMP echo requests"}, ""},
			},
		},
		{
			// The same for a UDP port filter: the large IKE message's non-first fragments carry
			// no port and slip through; the small one is dropped.
			name: "udp500-drop: only non-first fragments of large IKE arrive",
			outs: []Outcome{
				fwd(IKE, true, att(one(), none, none, none)),
				fwd(IKEFrag, true, att(frags(3), []int{1, 2}, []int{1, 2}, []int{1, 2})),
			},
			want: []want{
				{IKE, F, report.Dropped, nil, ""},
				{IKEFrag, F, report.Dropped, []string{"UDP header", "filters IKE (UDP 500) itself, not fragments", "permit UDP 500 both ways"}, ""},
			},
		},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			got := Judge(c.outs)
			if len(got) != len(c.want) {
				t.Fatalf("got %d results, want %d: %+v", len(got), len(c.want), got)
			}
			for i, w := range c.want {
				g := got[i]
				if g.Probe != string(w.probe) || g.Direction != w.dir || g.Verdict != w.verdict {
					t.Errorf("result %d: %s %s %s (%s), want %s %s %s", i, g.Probe, g.Direction, g.Verdict, g.Detail, w.probe, w.dir, w.verdict)
					continue
				}
				for _, s := range w.detail {
					if !strings.Contains(g.Detail, s) {
						t.Errorf("%s %s: detail %q lacks %q", g.Probe, g.Direction, g.Detail, s)
					}
				}
				if w.hop != "" && (g.Hop == nil || g.Hop.Addr != w.hop) {
					t.Errorf("%s %s: hop %+v, want %s", g.Probe, g.Direction, g.Hop, w.hop)
				}
				checkSentence(t, g)
				noFragAdvice(t, c.name, g)
			}
		})
	}
}

// noFragAdvice: a result that is not about fragments (the small form failed as well, or it
// is not a fragment verdict) never advises on fragments, and no detail carries the text of
// an internal error.
func noFragAdvice(t *testing.T, name string, r report.Result) {
	t.Helper()
	if strings.Contains(r.Detail, "context canceled") || strings.Contains(r.Detail, "deadline exceeded") {
		t.Errorf("%s %s %s: internal error text in the detail: %q", name, r.Probe, r.Direction, r.Detail)
	}
	if r.Evidence.Compared == "" || r.Verdict == report.FragDropped || r.Verdict == report.Partial || r.Verdict == report.Pass {
		return
	}
	for _, s := range []string{"allow IP fragments", "allow fragments", "drops first fragments", "drops IP fragments"} {
		if strings.Contains(r.Detail, s) {
			t.Errorf("%s %s %s: %s but advises on fragments: %q", name, r.Probe, r.Direction, r.Verdict, r.Detail)
		}
	}
}

// TestJudgeResetHop: a reset sent in the target's name by a device on the path (forward, the
// agent never saw the SYN; reverse, we never saw the agent's) is blocked at the hop its TTL
// places, marked estimated, and the evidence does not name the target as its sender.
func TestJudgeResetHop(t *testing.T) {
	for _, c := range []struct {
		name string
		outs []Outcome
		ttl  int
	}{
		{"forward, agent", []Outcome{with(fwd(TCP(445), true, att(one(), none)), func(o *Outcome) {
			o.Replies = []Reply{{Kind: AnswerRST, From: vTarget, TTL: 63}} // r2 in the lab: hop 2
		})}, 2},
		{"reverse", []Outcome{with(rev(TCP(1792), att(one(), none)), func(o *Outcome) {
			o.Replies = []Reply{{Kind: AnswerRST, From: o.Target, TTL: 62}} // r1 seen from rsp: hop 3 if 64-2
		})}, 3},
		{"forward, no agent, compared with the target's TTL", []Outcome{
			with(fwd(IKE, false, att(one(), none)), func(o *Outcome) {
				o.Replies = []Reply{{Kind: AnswerIKE, From: vTarget, TTL: 62}}
			}),
			with(fwd(TCP(445), false, att(one(), none)), func(o *Outcome) {
				o.Replies = []Reply{{Kind: AnswerRST, From: vTarget, TTL: 63}}
			}),
		}, 2},
	} {
		t.Run(c.name, func(t *testing.T) {
			res := Judge(c.outs)
			r := res[len(res)-1]
			if r.Verdict != report.Blocked {
				t.Fatalf("%s (%s), want blocked", r.Verdict, r.Detail)
			}
			if r.Hop == nil || r.Hop.TTL != c.ttl || !r.Hop.Estimated || r.Hop.Addr != "" {
				t.Errorf("hop %+v, want ttl %d estimated, no address", r.Hop, c.ttl)
			}
			if r.Evidence.AnsweredBy != "" {
				t.Errorf("answered_by %q: the reset's address is not its sender", r.Evidence.AnsweredBy)
			}
			if r.Evidence.Answer != AnswerRST || !strings.Contains(r.Detail, "estimate") {
				t.Errorf("answer %q, detail %q: want rst and the word estimate", r.Evidence.Answer, r.Detail)
			}
			if s := r.Hop.String(); !strings.Contains(s, "estimated") {
				t.Errorf("hop reads %q, want it marked estimated", s)
			}
		})
	}
}

// checkSentence holds every result to the report's promise: a contract verdict and one
// sentence a person can act on.
func checkSentence(t *testing.T, r report.Result) {
	t.Helper()
	if !r.Verdict.Valid() {
		t.Errorf("%s: invalid verdict %q", r.Probe, r.Verdict)
	}
	if r.Detail == "" || !strings.HasSuffix(r.Detail, ".") || strings.Contains(r.Detail, "\n") {
		t.Errorf("%s %s: detail is not one sentence: %q", r.Probe, r.Direction, r.Detail)
	}
	if r.Detail[0] >= 'a' && r.Detail[0] <= 'z' {
		t.Errorf("%s %s: detail starts in lower case: %q", r.Probe, r.Direction, r.Detail)
	}
}

func TestJudgeEvidence(t *testing.T) {
	o := with(fwd(ESPFrag, true, att(frags(3), []int{0})), func(o *Outcome) { o.Size = 3000; o.Nonce = 0xdeadbeef })
	got := Judge([]Outcome{o})[0]
	ev := got.Evidence
	if ev.Size != 3000 || ev.Attempts != 1 || ev.ProbeID != 0xdeadbeef || len(ev.FragmentsSent) != 3 || len(ev.FragmentsSeen) != 1 {
		t.Errorf("evidence %+v", ev)
	}
	if ev.AgentSaw == nil || !*ev.AgentSaw {
		t.Errorf("agent_saw %v, want true", ev.AgentSaw)
	}
	// Without an agent, agent_saw stays nil ("not measured"), and no fragments are "seen".
	o.Observed = false
	got = Judge([]Outcome{o})[0]
	if got.Evidence.AgentSaw != nil || got.Evidence.FragmentsSeen != nil {
		t.Errorf("one-ended evidence claims agent observations: %+v", got.Evidence)
	}
}

func TestHopCount(t *testing.T) {
	for _, c := range []struct {
		ttl  uint8
		hops int
	}{{64, 0}, {62, 2}, {128, 0}, {120, 8}, {255, 0}, {250, 5}, {1, 63}} {
		if h := hopCount(c.ttl); h != c.hops {
			t.Errorf("hopCount(%d) = %d, want %d", c.ttl, h, c.hops)
		}
	}
}

// BenchmarkJudge judges a full run with an agent: 11 probes both ways plus references.
func BenchmarkJudge(b *testing.B) {
	var outs []Outcome
	for _, id := range []ID{IKE, IKEFrag, NATT, NATTFrag, ESP, ESPFrag, AH, AHFrag, ICMPLarge, TCP(445), TCP(1792)} {
		sent := one()
		if fragmentedProbe(id) {
			sent = frags(3)
		}
		outs = append(outs, fwd(id, true, att(sent, all(len(sent)))), rev(id, att(sent, none, none)))
	}
	outs = append(outs, ref(fwd(smallEcho, true, att(one(), all(1)))))
	b.ReportAllocs()
	for b.Loop() {
		Judge(outs)
	}
}

// TestReverseDetailGrammar: every reverse detail reads as a sentence ("the agent's ESP …",
// never "the agent's a 5000-byte ICMP echo"), whatever the probe and its fate.
func TestReverseDetailGrammar(t *testing.T) {
	sent := []report.Fragment{{Offset: 0, Length: 1280, More: true}, {Offset: 1280, Length: 1280, More: true}, {Offset: 2560, Length: 100}}
	for _, id := range DefaultIDs(DefaultTCPPorts) {
		if id == PMTU {
			continue
		}
		for _, seen := range [][]int{all(3), none, {0}} {
			for _, r := range Judge([]Outcome{rev(id, att(sent, seen))}) {
				if strings.Contains(r.Detail, "agent's a ") || strings.Contains(r.Detail, "agent's an ") {
					t.Errorf("%s %v: %q", id, seen, r.Detail)
				}
			}
		}
	}
}
