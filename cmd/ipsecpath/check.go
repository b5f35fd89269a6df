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

	"github.com/spf13/pflag"

	"github.com/ipsecpath/ipsecpath/probe"
	"github.com/ipsecpath/ipsecpath/report"
	"github.com/ipsecpath/ipsecpath/testlab"
)

// checkPathMTU turns on the pmtu probe of a check: probe opens the searches (toward the
// target, and back from an agent that can send) and bounds them by pmtu's own budget.
var checkPathMTU = probe.PathMTUOptions{Enabled: true}

func init() {
	register(&command{
		name:     "check",
		synopsis: "TARGET [--agent HOST:PORT --key-file F] [--probes LIST] [--tcp PORTS] [--tls PORTS [--ca F] [--client-cert F --client-key F] [--sni NAME]] [--proxy URL] [--no-ladder] [--timeout D] [--pace N] [--json | --format F] [--pcap F [--snaplen N]] [--out F]",
		summary:  "check IKE, NAT-T, ESP, AH, fragments, large ICMP and TCP toward TARGET, both directions with an agent",
		long:     checkHelp,
		examples: []string{
			"ipsecpath check 203.0.113.10",
			"ipsecpath check 203.0.113.10 --agent 203.0.113.10:7500 --key-file /etc/ipsecpath.key",
			"ipsecpath check 203.0.113.10 --probes ike,ike-frag,esp,esp-frag --json",
			"ipsecpath check 203.0.113.10 --agent 203.0.113.10 --key-file k --tcp 445,1792,3389 --probes tcp",
			"ipsecpath check 203.0.113.10 --agent 203.0.113.10:7500 --key-file k --out before.json --pcap run.pcapng",
			"ipsecpath check 203.0.113.10 --probes tcp:1792 --tls 1792 --ca hsm-ca.pem --client-cert client.pem --client-key client.key",
			"ipsecpath check 203.0.113.10 --probes tls:443 --proxy http://192.0.2.8:3128",
			"ipsecpath check 203.0.113.10 --agent 203.0.113.10 --key-file k --probes l2tp,l2tp-frag,udp:4789",
			"ipsecpath check 203.0.113.10 --agent 203.0.113.10:7500 --key-file k --out report.html",
		},
		run: runCheck,
	})
}

// checkHelp is the long help of check (DESIGN.md holds it to its words).
const checkHelp = `Sends every probe class toward TARGET (an IPv4 address) at once, paced, and gives one verdict
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
udp:PORT and udp:PORT-frag (a UDP datagram PORT→PORT, the -frag form 3000 bytes and
IP-fragmented), l2tp and l2tp-frag (an L2TPv2 SCCRQ on UDP 1701, as an L2TP/IPsec client
sends first) are not in 'all': name them. Like ESP they need the agent: a UDP service may
stay silent, so without one only the target kernel's port unreachable counts.
tls:PORT (--tls): a full TLS handshake (crypto/tls) toward TARGET:PORT, verified with --ca
(default the system's CAs) against --sni (default the target address), our certificate
from --client-cert/--client-key when the server asks; its verdict names the step that
failed: no SYN-ACK (dropped), a TCP reset and who sent it (the target, or a device before it,
estimated from the reset's TTL), the server's TLS alert by name (unknown_ca, bad_certificate,
handshake_failure, certificate_expired, …), our own refusal of its certificate (expired, not
yet valid, name mismatch, unknown authority, with its subject and dates), or silence after a
ClientHello larger than a TCP segment (a fragment/MSS problem on the path, not TLS).
--proxy sends tls and tcp probes through an HTTP CONNECT proxy (tcp:PORT then becomes a
CONNECT, forward only); without --proxy, tls probes follow HTTPS_PROXY unless NO_PROXY lists
the target. A proxy that refuses (its status line is quoted) is told apart from one that
could not reach the target (the path behind it).

First, unless --no-ladder, the triage ladder runs ('ipsecpath help ladder'): loopback, the
route and gateway toward TARGET, TARGET itself, and the local preflight (who holds UDP
500/4500 here, local firewall rules). When the underlay is dead ("the default gateway
198.51.100.1 does not answer: fix the underlay first") no probe is sent and the exit status
is 1. A TARGET this host has no route to at all (or a blackhole/unreachable/prohibit route
discards) is refused before anything is sent, in one line, exit 2. A probe this host's own firewall drops on the way out is an error saying so, not a
path verdict.

How to read the verdicts:
  pass          it arrived (the agent saw every fragment; without agent, TARGET answered)
  dropped       silence: a device on the path discards it without a word
  blocked       a device said no: ICMP unreachable/admin-prohibited (its address is the
                hop), or a TCP reset that did not come from TARGET (its TTL places the hop:
                "about hop N", an estimate); reverse alike, from what the agent captured
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
its wait: one attempt of three arriving is loss (pass, noted), none is a drop. The wait is
--timeout until the run has measured round trips, then 4×(SRTT+4·RTTVAR) as TCP computes
its retransmission timeout (RFC 6298), at least 500ms and at most --timeout, counted from when
each attempt left: a broken path on a fast network is called in well under --timeout, a
slow or jittery one still gets its full measured wait. The pmtu
probe is not cut at --timeout: its search runs to its own bounds (at most 30 s per direction).

Evidence for a ticket: --out report.html writes one self-contained page (the path, a line
per probe and direction ending where it died, the evidence on click; it prints to PDF);
--pcap FILE writes every packet sent and captured at both ends (two interfaces, whole
packets up to --snaplen, each with a note naming its probe, direction, attempt and
fragment), which 'ipsecpath pcap explain FILE' reads back per probe.

Every failing probe (dropped, blocked, frag-dropped, partial) is then traced hop by hop, both
directions, as 'ipsecpath trace' does, for at most one --timeout more: its detail names the
two hops the probe dies between ("dies between 198.51.100.1 (hop 1) and 192.0.2.66 (hop 2)")
and its hop object carries last_reached and first_missed. --no-trace skips this.

NAT: with an agent, the header says whether our probes reached it from another address or
port than we sent them from ("NAT: a NAT between us (public address 192.0.2.65): UDP 500 sent
from 198.51.100.10:500 reached the agent from 192.0.2.65:500"), or "NAT: none"; without an
agent nothing is claimed ('ipsecpath ike' reads the gateway's own NAT detection hashes). Behind
a NAT the reverse UDP probes go after ours, to the public address and port the agent saw ours
come from (the mapping they opened), and the rows say what the NAT explains: raw ESP or AH
that did not cross it (use NAT-T; AH never can), the agent's SYNs and echoes that reach the
NAT itself (a port forward would be needed), a reverse UDP drop through a fresh mapping
(the NAT's timer: 'ipsecpath stateful').
The NAT advice covers NAT-T keepalives and whether fragmented UDP 4500 crossed the NAT.

Exit status: 0 every verdict passed (or was skipped), 1 a probe failed, 2 usage or
environment error (bad target, unknown probe, agent unreachable or refusing the key, no
root / CAP_NET_RAW). Progress goes to stderr when the run takes over a second, never
with --json. Needs root or CAP_NET_RAW (raw sockets, packet capture).`

func runCheck(ctx context.Context, e *env, args []string) int {
	c := commands["check"]
	fs := newFlags(c)
	f := addCheckFlags(fs)
	if done, code := parse(e, c, fs, args); done {
		return code
	}
	p, err := f.plan(fs)
	if err != nil {
		return usageError(e, c, err)
	}
	if p.cfg.Pcap, err = f.capture.open(); err != nil {
		return usageError(e, c, err)
	}
	if p.cfg.Pcap != nil {
		defer p.cfg.Pcap.Close()
	}
	prog := newProgress(e.stderr, f.out.quiet())
	p.cfg.Progress = progressPrinter(prog)
	p.started = time.Now()
	var ladder *report.Ladder
	if !*f.svc.noLadder {
		if ladder, err = p.ladder(ctx); err != nil {
			return usageError(e, c, err)
		}
		if ladder != nil && ladder.Stop != "" { // the underlay is dead: no probe is worth sending
			rep := report.New(p.cfg.Target.String(), p.cfg.Agent, p.started)
			rep.Ladder = ladder
			rep.Finish(time.Now())
			if err := f.out.write(e, rep); err != nil {
				return usageError(e, c, err)
			}
			return exitFail
		}
	}
	rep, err := p.run(ctx, ladder)
	if err != nil {
		return usageError(e, c, err)
	}
	if err := f.out.write(e, rep); err != nil {
		return usageError(e, c, err)
	}
	if rep.Failed() {
		return exitFail
	}
	return exitOK
}

// checkFlags are the flags of check, registered in the order its help lists them.
type checkFlags struct {
	agent   agentFlags
	probes  *string
	tcp     *string
	pacing  pacingFlags
	capture pcapFlags
	noTrace *bool
	out     *output
	svc     *serviceFlags
}

func addCheckFlags(fs *pflag.FlagSet) *checkFlags {
	f := &checkFlags{agent: addAgentFlags(fs, "far-end agent `HOST:PORT` ('ipsecpath responder'; port default 7500)")}
	f.probes = fs.String("probes", "all", "comma-separated probe `LIST` (ike,ike-frag,natt,natt-frag,esp,esp-frag,ah,ah-frag,icmp-large,tcp:PORT,tcp,pmtu,all; also udp:PORT, udp:PORT-frag, l2tp, l2tp-frag, tls:PORT)")
	f.tcp = fs.String("tcp", "445,1792", "TCP `PORTS` for the tcp probes")
	f.pacing = addPacingFlags(fs, probe.DefaultCheckTimeout, "the longest wait for answers (`D`: 2s, 500ms, …); a run waits less when answers come back fast: 4×(SRTT+4·RTTVAR) of the round trips it measured, at least 500ms (retries at a quarter of that)")
	f.capture = addPcapFlags(fs)
	f.noTrace = fs.Bool("no-trace", false, "do not trace the failing probes hop by hop after the run (saves up to one --timeout)")
	f.out = addOutputFlags(fs)
	f.svc = addServiceFlags(fs)
	return f
}

// checkPlan is a check as its command line asks for it.
type checkPlan struct {
	cfg     probe.CheckConfig
	ports   []int
	svc     *servicePlan
	started time.Time
}

// plan reads the parsed flags, checked in this order (the first bad one is the usage
// error), up to the route toward the target: a target this host has no route to is an
// environment error, refused before anything is sent (and before the ladder, whose loopback
// rung would otherwise speak first); a dead loopback or gateway is the ladder's finding.
func (f *checkFlags) plan(fs *pflag.FlagSet) (*checkPlan, error) {
	if err := f.out.resolve(); err != nil {
		return nil, err
	}
	if err := f.capture.check(f.out.out); err != nil {
		return nil, err
	}
	target, err := targetArg(fs)
	if err != nil {
		return nil, err
	}
	if err := probe.CheckTargetHere(target); err != nil {
		return nil, err
	}
	p := &checkPlan{}
	if p.ports, err = probe.ParseTCPPorts(*f.tcp); err != nil {
		return nil, fmt.Errorf("--tcp: %w", err)
	}
	if p.svc, err = f.probeList(target, p.ports); err != nil {
		return nil, err
	}
	if err := f.pacing.check(); err != nil {
		return nil, err
	}
	if err := f.capture.checkSnapLen(); err != nil {
		return nil, err
	}
	p.cfg = probe.CheckConfig{Target: target, Probes: p.svc.rawIDs, TCPPorts: p.ports, Timeout: *f.pacing.timeout, Pace: *f.pacing.pace, NoTrace: *f.noTrace}
	wirePMTU(&p.cfg)
	if p.cfg.Agent, p.cfg.Key, err = f.agent.load(target); err != nil {
		return nil, err
	}
	if err := probe.CheckRoute(target); err != nil {
		return nil, err
	}
	return p, nil
}

// wirePMTU gives a check its path MTU searches: forward, and with an agent the reverse one.
func wirePMTU(cfg *probe.CheckConfig) {
	cfg.PathMTU = checkPathMTU
}

// probeList reads --probes (tls:PORT entries and --tls go to the service plan, the rest to
// the raw engine: servicePlan.rawIDs).
func (f *checkFlags) probeList(target netip.Addr, ports []int) (*servicePlan, error) {
	rawList, hadTLS := stripTLS(*f.probes)
	var ids []probe.ID
	if !hadTLS || strings.Trim(rawList, ", ") != "" {
		var err error
		if ids, err = probe.ParseIDs(rawList, ports); err != nil {
			return nil, fmt.Errorf("--probes: %w", err)
		}
	}
	return planServices(f.svc, target, *f.probes, ids)
}

// ladder runs the triage ladder before the probes. A missing raw socket is left to the
// check itself when it has raw probes to send (it refuses after greeting the agent, so a
// wrong key or an unreachable agent is said first).
func (p *checkPlan) ladder(ctx context.Context) (*report.Ladder, error) {
	lport := probe.LadderTCPPort
	if len(p.ports) > 0 {
		lport = p.ports[0]
	}
	ids := p.cfg.Probes
	l, _, err := probe.RunLadder(ctx, probe.LadderConfig{Target: p.cfg.Target.String(), TCPPort: lport, Preflight: true,
		Probes: append(append([]probe.ID(nil), ids...), p.svc.ids...)})
	switch {
	case errors.Is(err, os.ErrPermission) && len(ids) > 0:
	case errors.Is(err, os.ErrPermission):
		return nil, errors.New("the ladder needs root or CAP_NET_RAW (a raw ICMP socket): run as root, or skip it with --no-ladder")
	case err != nil:
		return nil, checkErrorLine(err)
	}
	return l, nil
}

// run sends the raw probes (when any) and the service probes, and gives the report with
// the ladder's findings, the local firewall's verdicts, and the --pcap file closed.
func (p *checkPlan) run(ctx context.Context, ladder *report.Ladder) (*report.Report, error) {
	var rep *report.Report
	if len(p.cfg.Probes) > 0 {
		var err error
		if rep, err = probe.Check(ctx, p.cfg); err != nil {
			return nil, checkErrorLine(err)
		}
	} else {
		rep = report.New(p.cfg.Target.String(), p.cfg.Agent, p.started)
	}
	for _, r := range p.svc.Run(ctx, probe.DefaultServiceTimeout) {
		rep.Add(r)
	}
	rep.Ladder = ladder
	rep.LocalFirewallVerdicts()
	rep.Started = p.started.UTC().Truncate(time.Millisecond)
	rep.Finish(time.Now())
	if p.cfg.Pcap != nil {
		if err := p.cfg.Pcap.Close(); err != nil {
			return nil, fmt.Errorf("--pcap: %w", err)
		}
	}
	return rep, nil
}

// pcapFlags are --pcap and --snaplen.
type pcapFlags struct {
	fs      *pflag.FlagSet
	pcap    *string
	snaplen *int
}

func addPcapFlags(fs *pflag.FlagSet) pcapFlags {
	return pcapFlags{fs: fs,
		pcap:    fs.String("pcap", "", "write every packet sent and captured (both ends) to `FILE` (pcapng; 'ipsecpath pcap explain FILE' reads it back)"),
		snaplen: fs.Int("snaplen", report.DefaultSnapLen, "with --pcap: keep at most `N` bytes of each packet (each IP fragment)"),
	}
}

// check refuses an empty --pcap, and one that could not be written or is the --out file.
func (f pcapFlags) check(out string) error {
	if *f.pcap == "" && f.fs.Changed("pcap") {
		return errors.New("--pcap is empty: give a file name (or leave --pcap out)")
	}
	return checkPcapPath(*f.pcap, out)
}

// checkSnapLen refuses --snaplen without --pcap, and out of its range.
func (f pcapFlags) checkSnapLen() error {
	switch {
	case f.fs.Changed("snaplen") && *f.pcap == "":
		return errors.New("--snaplen goes with --pcap FILE")
	case *f.snaplen < report.MinSnapLen || *f.snaplen > report.MaxPcapPacket:
		return fmt.Errorf("--snaplen %d: want %d-%d bytes", *f.snaplen, report.MinSnapLen, report.MaxPcapPacket)
	}
	return nil
}

// open creates the --pcap file (nil without --pcap).
func (f pcapFlags) open() (*report.Pcap, error) {
	if *f.pcap == "" {
		return nil, nil
	}
	p, err := report.CreatePcap(*f.pcap, "initiator", "agent")
	if err != nil {
		return nil, fmt.Errorf("--pcap: %w", err)
	}
	if err := p.SetSnapLen(*f.snaplen); err != nil {
		p.Close()
		return nil, fmt.Errorf("--snaplen: %s", strings.TrimPrefix(err.Error(), "report: pcap: "))
	}
	return p, nil
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
		return errors.New("the agent greeted us and refused our first request without answering: our --key-file does not hold the agent's key")
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
		cfg := probe.CheckConfig{Target: rsp, Agent: addr, Key: key}
		wirePMTU(&cfg)
		rep, err = probe.Check(ctx, cfg)
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
