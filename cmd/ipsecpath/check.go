package main

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/ipsecpath/ipsecpath/pmtu"
	"github.com/ipsecpath/ipsecpath/probe"
	"github.com/ipsecpath/ipsecpath/report"
	"github.com/ipsecpath/ipsecpath/testlab"
)

// checkPMTU prepares the pmtu probe of a check: the pmtu package's ICMP search (DF echoes,
// black hole localised by TTL), bounded by the check's deadline. The prober's socket opens
// here, in the caller's network namespace.
func checkPMTU(target netip.Addr) (func(context.Context) (*report.PathMTU, error), error) {
	p, err := pmtu.NewICMPProber(target)
	if err != nil {
		return nil, err
	}
	return pmtuSearch(p, p.Close), nil
}

// checkReversePMTU prepares the reverse pmtu probe of a check with an agent: the agent's DF
// echoes toward us over the check's control session (pmtu's agent-confirmed reverse prober:
// arrival seen by our raw ICMP socket, the far side's ICMP errors by the agent's capture),
// so the reverse path MTU, and a black hole on the way back, are measured like the forward
// ones. The socket opens here, in the caller's network namespace.
func checkReversePMTU(agent *probe.AgentClient, from netip.Addr) (func(context.Context) (*report.PathMTU, error), error) {
	c, err := net.ListenPacket("ip4:icmp", "0.0.0.0")
	if err != nil {
		return nil, fmt.Errorf("open raw ICMP socket: %w", err)
	}
	return pmtuSearch(&agentReverse{agent: agent, icmp: c, from: from}, c.Close), nil
}

// pmtuSearch is a path MTU search with p, bounded by its context's deadline; it closes what
// p holds when it returns.
func pmtuSearch(p pmtu.Prober, release func() error) func(context.Context) (*report.PathMTU, error) {
	return func(ctx context.Context) (*report.PathMTU, error) {
		defer release()
		var o pmtu.Options
		if d, ok := ctx.Deadline(); ok {
			o.Budget = time.Until(d)
		}
		res, err := pmtu.Discover(ctx, p, o)
		if res == nil || res.MTU == 0 {
			if err == nil {
				err = errors.New("no size came back")
			}
			return nil, err
		}
		m := res.PathMTU()
		return &m, nil // a search cut short by the deadline still says what it measured
	}
}

func init() {
	register(&command{
		name:     "check",
		synopsis: "TARGET [--agent HOST:PORT --key-file F] [--probes LIST] [--tcp PORTS] [--timeout D] [--pace N] [--json | --format F] [--pcap F] [--out F]",
		summary:  "check IKE, NAT-T, ESP, AH, fragments, large ICMP and TCP toward TARGET, both directions with an agent",
		long: `Sends every probe class toward TARGET (an IPv4 address) at once, paced, and gives one verdict
per probe and direction. With a far-end agent ('ipsecpath responder' on TARGET, --agent and
--key-file) the agent reports what arrived, fragment by fragment, and sends the same probes
back toward us (the reverse direction: how a rekey started by the other side travels).
Without an agent only answers from TARGET itself count (an IKE gateway's response, an echo
reply, a SYN-ACK or reset, the target kernel's ICMP port/protocol unreachable); probes that
get no answer by nature (ESP, AH) are then skipped and say why.

Probes: ike, ike-frag (UDP 500, the -frag form 3000 bytes and IP-fragmented like Kerberos-
authenticated IKE), natt, natt-frag (UDP 4500), esp, esp-frag (IP protocol 50), ah, ah-frag
(51), icmp-large (a 5000-byte echo, like 'ping -l 5000'), tcp:PORT (--tcp, default 445 and
1792), pmtu (path MTU; with an agent also toward us, from the agent's DF echoes). --probes takes a comma-separated list; 'tcp' means every --tcp port.

How to read the verdicts:
  pass          it arrived (the agent saw every fragment; without agent, TARGET answered)
  dropped       silence: a device on the path discards it without a word
  blocked       a device said no: ICMP unreachable/admin-prohibited (its address is the
                hop), or a TCP reset that did not come from TARGET
  frag-dropped  the small form of the same protocol passes, the fragmented one does not:
                a device drops IP fragments (IKE with big certificates or Kerberos dies)
  partial       some fragments arrived, not all: the detail says which offsets
  error         the probe could not run (the detail says why); skipped: not run, and why
With an agent, a verdict rests on what the agent captured: a TCP probe passes when its SYN
reached the agent, whether or not a service listens there (the answer is shown as evidence).
Each row's detail is one sentence saying what to change where. Reverse UDP 500/4500 probes
go out before any of ours, so a stateful firewall meets them cold, as it meets a rekey from
the far side after the flow went idle (state a firewall still holds from a run less than its
idle timeout ago lets them through: wait that long between runs). A probe without an answer is retried twice within
--timeout: one attempt of three arriving is loss (pass, noted), none is a drop.

Every failing probe (dropped, blocked, frag-dropped, partial) is then traced hop by hop, both
directions, as 'ipsecpath trace' does, for about one --timeout more: its detail names the
two hops the probe dies between ("dies between 198.51.100.1 (hop 1) and 192.0.2.66 (hop 2)")
and its hop object carries last_reached and first_missed. --no-trace skips this.

Exit status: 0 every verdict passed (or was skipped), 1 a probe failed, 2 usage or
environment error (bad target, unknown probe, agent unreachable or refusing the key, no
root / CAP_NET_RAW). Progress goes to stderr when the run takes over a second, never
with --json. Needs root or CAP_NET_RAW (raw sockets, packet capture).`,
		examples: []string{
			"ipsecpath check 203.0.113.10",
			"ipsecpath check 203.0.113.10 --agent 203.0.113.10:7500 --key-file /etc/ipsecpath.key",
			"ipsecpath check 203.0.113.10 --probes ike,ike-frag,esp,esp-frag --json",
			"ipsecpath check 203.0.113.10 --agent 203.0.113.10 --key-file k --tcp 445,1792,3389 --probes tcp",
			"ipsecpath check 203.0.113.10 --agent 203.0.113.10:7500 --key-file k --out before.json --pcap run.pcapng",
		},
		run: runCheck,
	})
}

func runCheck(ctx context.Context, e *env, args []string) int {
	c := commands["check"]
	fs := newFlags(c)
	agent := fs.String("agent", "", "far-end agent `HOST:PORT` ('ipsecpath responder'; port default 7500)")
	keyFile := fs.String("key-file", "", "the agent's pre-shared key `FILE` (chmod 600)")
	probes := fs.String("probes", "all", "comma-separated probe `LIST` (ike,ike-frag,natt,natt-frag,esp,esp-frag,ah,ah-frag,icmp-large,tcp:PORT,tcp,pmtu,all)")
	tcp := fs.String("tcp", "445,1792", "TCP `PORTS` for the tcp probes")
	timeout := fs.Duration("timeout", probe.DefaultCheckTimeout, "how long to wait for answers (`D`: 2s, 500ms, …)")
	pace := fs.Int("pace", probe.DefaultRate, "packets per second toward the target (`N`), and asked of the agent")
	pcap := fs.String("pcap", "", "write every packet sent and captured (both ends) to `FILE` (pcapng)")
	noTrace := fs.Bool("no-trace", false, "do not trace the failing probes hop by hop after the run (saves about one --timeout)")
	out := addOutputFlags(fs)
	if done, code := parse(e, c, fs, args); done {
		return code
	}
	if err := out.resolve(); err != nil {
		return usageError(e, c, err)
	}
	if *pcap == "" && fs.Changed("pcap") {
		return usageError(e, c, errors.New("--pcap is empty: give a file name (or leave --pcap out)"))
	}
	if err := checkPcapPath(*pcap, out.out); err != nil {
		return usageError(e, c, err)
	}
	if fs.NArg() != 1 {
		return usageError(e, c, fmt.Errorf("want one TARGET address, got %d argument(s)", fs.NArg()))
	}
	target, err := netip.ParseAddr(fs.Arg(0))
	if err != nil {
		return usageError(e, c, fmt.Errorf("target %q is not an IPv4 address", fs.Arg(0)))
	}
	if err := probe.CheckTargetHere(target); err != nil {
		return usageError(e, c, err)
	}
	ports, err := probe.ParseTCPPorts(*tcp)
	if err != nil {
		return usageError(e, c, fmt.Errorf("--tcp: %w", err))
	}
	ids, err := probe.ParseIDs(*probes, ports)
	if err != nil {
		return usageError(e, c, fmt.Errorf("--probes: %w", err))
	}
	if *timeout < probe.MinCheckTimeout || *timeout > probe.MaxCheckTimeout {
		return usageError(e, c, fmt.Errorf("--timeout %s: want %s to %s", *timeout, probe.MinCheckTimeout, probe.MaxCheckTimeout))
	}
	if *pace < 1 || *pace > probe.MaxRate {
		return usageError(e, c, fmt.Errorf("--pace %d: want 1-%d packets per second", *pace, probe.MaxRate))
	}
	cfg := probe.CheckConfig{Target: target, Probes: ids, TCPPorts: ports, Timeout: *timeout, Pace: *pace, PathMTU: checkPMTU, ReversePathMTU: checkReversePMTU, NoTrace: *noTrace}
	switch {
	case *agent != "" && *keyFile == "":
		return usageError(e, c, errors.New("--agent needs --key-file (the agent's pre-shared key)"))
	case *agent == "" && *keyFile != "":
		return usageError(e, c, errors.New("--key-file without --agent: name the agent with --agent HOST:PORT"))
	case *agent != "":
		key, err := probe.LoadKey(*keyFile)
		if err != nil {
			return usageError(e, c, err)
		}
		if err := agentOnTarget(*agent, target); err != nil {
			return usageError(e, c, err)
		}
		cfg.Agent, cfg.Key = *agent, key
	}
	if *pcap != "" {
		p, err := report.CreatePcap(*pcap, "initiator", "agent")
		if err != nil {
			return usageError(e, c, fmt.Errorf("--pcap: %w", err))
		}
		defer p.Close()
		cfg.Pcap = p
	}
	prog := newProgress(e.stderr, out.quiet())
	cfg.Progress = progressPrinter(prog)
	rep, err := probe.Check(ctx, cfg)
	if err != nil {
		return usageError(e, c, checkErrorLine(err))
	}
	if cfg.Pcap != nil {
		if err := cfg.Pcap.Close(); err != nil {
			return usageError(e, c, fmt.Errorf("--pcap: %w", err))
		}
	}
	if err := out.write(e, rep); err != nil {
		return usageError(e, c, err)
	}
	if rep.Failed() {
		return exitFail
	}
	return exitOK
}

// checkPcapPath refuses, before any probe is sent, a --pcap path that could not be written
// at the end (report.CheckOutputPath) or that is also the --out file.
func checkPcapPath(pcap, out string) error {
	if pcap == "" {
		return nil
	}
	if err := report.CheckOutputPath(pcap); err != nil {
		return fmt.Errorf("--pcap: %w", err)
	}
	if out != "" {
		a, aerr := filepath.Abs(pcap)
		b, berr := filepath.Abs(out)
		if aerr == nil && berr == nil && a == b {
			return fmt.Errorf("--pcap and --out both name %s: give two files", pcap)
		}
	}
	return nil
}

// agentOnTarget refuses an agent named by an address other than the target: the agent
// reports what arrives where it runs, so on another host every forward probe would look
// dropped. A name is let through (it may resolve to the target).
func agentOnTarget(agent string, target netip.Addr) error {
	host := agent
	if h, _, err := net.SplitHostPort(agent); err == nil {
		host = h
	}
	a, err := netip.ParseAddr(host)
	if err != nil || a.Unmap() == target.Unmap() {
		return nil
	}
	return fmt.Errorf("--agent %s is not on the target %s: the agent must run on the target, where it sees what arrives", agent, target)
}

// checkErrorLine makes a check's environment error one clear line.
func checkErrorLine(err error) error {
	switch {
	case errors.Is(err, os.ErrPermission):
		return errors.New("needs root or CAP_NET_RAW for raw sockets and packet capture (run as root, or setcap cap_net_raw+ep on the binary)")
	case errors.Is(err, probe.ErrAgentRejected):
		return fmt.Errorf("the agent refused us: wrong key, clocks more than %s apart, or not an ipsecpath agent", probe.ClockWindow)
	}
	return errors.New(strings.ReplaceAll(err.Error(), "\n", " "))
}

// progressPrinter turns check progress into a status line when something changed, at most
// twice a second (and, via progress, only once the run took over a second).
func progressPrinter(p *progress) func(probe.CheckProgress) {
	var last probe.CheckProgress
	var at time.Time
	return func(cp probe.CheckProgress) {
		if cp == last || (cp.Phase == last.Phase && time.Since(at) < 500*time.Millisecond) {
			return
		}
		last, at = cp, time.Now()
		switch cp.Phase {
		case "reverse-udp":
			p.Printf("agent sends reverse UDP 500/4500 probes first")
		case "tracing":
			p.Printf("tracing the failing probes hop by hop (--no-trace skips this)")
		case "done":
			p.Printf("%d/%d probes answered; done", cp.Decided, cp.Total)
		default:
			p.Printf("%s: %d/%d probes answered", cp.Phase, cp.Decided, cp.Total)
		}
	}
}

// demoCheck is the heart of `lab demo`: the far-end agent in-process inside rsp (a random
// key, never written anywhere), a full check from ini toward rsp, and the report on
// e.stdout. It returns the report; the caller judges it and tears the lab down.
func demoCheck(ctx context.Context, e *env, l *testlab.Lab) (*report.Report, error) {
	key := make([]byte, 32)
	if _, err := rand.Read(key); err != nil {
		return nil, fmt.Errorf("agent key: %w", err)
	}
	rsp := l.Addr(testlab.NodeRsp)
	addr := net.JoinHostPort(rsp.String(), fmt.Sprint(probe.ControlPort))
	var resp *probe.Responder
	var ln net.Listener
	if err := l.Do(testlab.NodeRsp, func() error {
		var err error
		if resp, err = probe.NewResponder(probe.ResponderConfig{Key: key, Version: report.Version}); err != nil {
			return err
		}
		ln, err = net.Listen("tcp", addr)
		return err
	}); err != nil {
		if resp != nil {
			resp.Close()
		}
		return nil, fmt.Errorf("agent on rsp: %w", err)
	}
	sctx, stop := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() { defer close(done); resp.Serve(sctx, ln) }()
	defer func() { stop(); <-done; resp.Close() }()
	fmt.Fprintf(e.stdout, "Agent on rsp (%s); check from ini toward %s, both directions…\n\n", addr, rsp)
	var rep *report.Report
	err := l.Do(testlab.NodeIni, func() error {
		var err error
		rep, err = probe.Check(ctx, probe.CheckConfig{Target: rsp, Agent: addr, Key: key, PathMTU: checkPMTU, ReversePathMTU: checkReversePMTU})
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("check: %w", err)
	}
	if err := rep.WriteText(e.stdout, report.TextOptions{}); err != nil {
		return nil, err
	}
	return rep, nil
}

// demoSurprises lists where a check of the frag-drop lab differs from what the profile
// defines (r2 drops every IPv4 fragment, both ways): every fragmented probe frag-dropped in
// both directions, everything else passing. Empty: the demo showed what it should.
func demoSurprises(rep *report.Report) []string {
	var out []string
	for _, r := range rep.Results {
		want := report.Pass
		if id := probe.ID(r.Probe); id.Fragmented() || id == probe.ICMPLarge {
			want = report.FragDropped
		}
		if r.Verdict != want {
			out = append(out, fmt.Sprintf("%s %s: %s, expected %s", r.Probe, r.Direction, r.Verdict, want))
		}
	}
	return out
}
