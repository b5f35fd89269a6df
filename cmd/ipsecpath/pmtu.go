package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/netip"
	"strings"
	"time"

	"github.com/ipsecpath/ipsecpath/pmtu"
	"github.com/ipsecpath/ipsecpath/probe"
	"github.com/ipsecpath/ipsecpath/report"
	"github.com/spf13/pflag"
)

func init() {
	register(&command{
		name:     "pmtu",
		synopsis: "TARGET [--agent HOST:PORT --key-file F] [--proto icmp|udp|tcp] [--port N] [--suite S] [--mode tunnel|transport] [--natt] [--min N --max N] [--timeout D] [--json | --format F] [--out F]",
		summary:  "path MTU toward TARGET, PMTU black holes and the hop that makes them, and MTU/MSS advice for IPsec",
		long: `Finds the largest packet that crosses the path to TARGET with don't-fragment set, in a
bounded number of probes: the smallest size (--min) must come back, then the largest
(--max); between the largest that passed and the smallest that failed it bisects, trying a
router's ICMP "fragmentation needed" MTU first and common link MTUs (1500, 1492 PPPoE, 1480,
1476 GRE, 1450 VXLAN, 1420 WireGuard, 1400, 1280 …) whenever they split the range as well.
At most 12 sizes for 576..1500, one-byte precise.

A size that fails with ICMP fragmentation-needed is a narrow link that says so: path MTU
discovery works there. A size that vanishes in silence while a smaller one passes is a
black hole: the big packets of a TCP session or an IPsec tunnel die, and nobody tells the
sender. pmtu then sends that size with TTL 1, 2, … and reports the last hop it reached:
the device after which it dies (its link toward the next hop is the narrow one, and it, or
a filter near it, drops the ICMP). Silence counts only after 3 sends, so loss is not taken
for a black hole.

The advice turns the path MTU into what to configure for the IPsec suite (--suite, --mode,
--natt): the largest inner packet that crosses unfragmented (the tunnel interface MTU in
tunnel mode) and the TCP MSS to clamp to. IPsec adds its bytes after TCP chose its MSS, so
without a clamp every full-size segment is too big for the tunnel.

--proto icmp (default) uses ICMP echo (ICMPv6 toward an IPv6 TARGET, where routers send
Packet Too Big): TARGET must answer pings. --proto tcp sends TCP-sized probes: data
segments (ACK with payload, DF) to --port (default 445), the packets a TCP session's full
segments are. TARGET's kernel answers such an unsolicited ACK with a reset, open port or
not, and that reset says the probe arrived; a stateful firewall that drops segments of no
connection it knows makes every size look lost (use an agent there). With an agent ('ipsecpath responder' on TARGET:
--agent, --key-file) the agent confirms what arrived (--proto udp sends UDP 4500
datagrams, the port ESP-in-UDP uses; tcp the data segments; the agent sees both even when
nothing answers them)
and measures the reverse direction too: the agent sends DF echoes toward us, the way a
rekey or the far side's traffic travels. The far side's routers send their ICMP errors to
the agent, whose capture reports them, so the reverse search tells a black hole from a
link that signals, and localises it, as the forward one does.

Exit status: 0 the path MTU was found and no black hole; 1 a black hole, larger packets
refused without a fragmentation-needed, or a search that did not settle (its row says
"unfinished"); 2 usage or environment error (bad target or range, no route, target does not answer the smallest
probe, no root / CAP_NET_RAW). Progress goes to stderr when the run takes over a second,
never with --json.

--format json (or --json) prints the report contract plus the advice and each direction's
search; markdown and junit the report's own forms; html one self-contained page with the
path, the path MTU, the advice and the search. --out FILE also writes FILE (form from its
extension: .json, .md, .xml, .txt, .html).`,
		examples: []string{
			"ipsecpath pmtu 203.0.113.10",
			"ipsecpath pmtu 203.0.113.10 --suite aes-cbc-sha256 --natt",
			"ipsecpath pmtu 203.0.113.10 --mode transport --json",
			"ipsecpath pmtu 203.0.113.10 --out pmtu.html",
			"ipsecpath pmtu 203.0.113.10 --agent 203.0.113.10:7500 --key-file /etc/ipsecpath.key --proto udp",
			"ipsecpath pmtu 203.0.113.10 --proto tcp --port 443",
			"ipsecpath pmtu 203.0.113.10 --min 1200 --max 9000 --timeout 2s",
		},
		run: runPMTU,
	})
}

// pmtuOutput is the --json form: the report contract (results, pmtu per direction) plus the
// advice and each direction's search in full.
type pmtuOutput struct {
	*report.Report
	Advice *pmtu.Advice            `json:"advice,omitempty"`
	Search map[string]*pmtu.Result `json:"search"`
}

// pmtuDir is one direction's search result.
type pmtuDir struct {
	dir report.Direction
	res *pmtu.Result
}

// pmtuArgs is what the command line asks for.
type pmtuArgs struct {
	cfg   probe.PMTUConfig
	enc   pmtu.Encap
	out   *output
	agent string
}

func runPMTU(ctx context.Context, e *env, args []string) int {
	c := commands["pmtu"]
	a, done, code := parsePMTU(e, c, args)
	if done {
		return code
	}
	// No uid check: a binary with cap_net_raw works too; a refused raw socket says what is
	// missing (pmtuErrorLine).
	prog := newProgress(e.stderr, a.out.quiet())
	searches, err := probe.OpenPMTU(ctx, a.cfg)
	if err != nil {
		return usageError(e, c, pmtuErrorLine(err))
	}
	defer func() {
		for _, s := range searches {
			s.Close()
		}
	}()
	rep := report.New(a.cfg.Target.String(), a.agent, time.Now())
	po := pmtuOutput{Report: rep, Search: map[string]*pmtu.Result{}}
	rep.PMTU = &report.PMTU{}
	var dirs []pmtuDir
	for _, s := range searches {
		d := s.Direction
		s.Options.Logf = func(format string, args ...any) { prog.Printf("%s: "+format, append([]any{d}, args...)...) }
		res, err := s.Run(ctx)
		if err != nil {
			return usageError(e, c, pmtuErrorLine(fmt.Errorf("%s: %w", d, err)))
		}
		dirs = append(dirs, pmtuDir{d, res})
		po.Search[string(d)] = res
		pm := res.PathMTU()
		if d == report.Reverse {
			rep.PMTU.Reverse = &pm
		} else {
			rep.PMTU.Forward = &pm
		}
		rep.Add(res.Judge(d))
	}
	rep.Finish(time.Now())
	if err := writePMTU(e, &a, &po, dirs); err != nil {
		return usageError(e, c, err)
	}
	if rep.Failed() {
		return exitFail
	}
	return exitOK
}

// parsePMTU reads the command line: done with an exit code when the command must stop
// (help, or a usage error already printed).
func parsePMTU(e *env, c *command, args []string) (a pmtuArgs, done bool, code int) {
	fs := newFlags(c)
	agent := fs.String("agent", "", "far-end agent `HOST:PORT` ('ipsecpath responder'; port default 7500)")
	keyFile := fs.String("key-file", "", "the agent's pre-shared key `FILE` (chmod 600)")
	proto := fs.String("proto", "icmp", "probe protocol: icmp (echo; TARGET answers), tcp (data segments to --port; TARGET resets) or udp (UDP 4500; needs --agent)")
	port := fs.Int("port", pmtu.DefaultTCPPort, "TCP port for --proto tcp (`N`)")
	suite := fs.String("suite", string(pmtu.ESPAESGCM16), "IPsec suite for the advice: aes-gcm-16, aes-cbc-sha256, chacha20-poly1305, ah-sha256")
	mode := fs.String("mode", string(pmtu.Tunnel), "IPsec mode for the advice: tunnel or transport")
	natt := fs.Bool("natt", false, "the advice assumes NAT-T (ESP in UDP 4500: 8 bytes more)")
	inner := fs.Int("inner", 0, "IP version of the tunnelled packets for the advice (4 or 6; default: TARGET's)")
	minSize := fs.Int("min", pmtu.DefaultMin, "smallest probe, bytes with the IP header: it must come back (IPv6 default: 1280)")
	maxSize := fs.Int("max", pmtu.DefaultMax, "largest probe, bytes with the IP header")
	timeout := fs.Duration("timeout", pmtu.DefaultTimeout, "longest wait for one probe's answer (`D`); after the first answer, 4 × the RTT")
	a.out = addOutputFlags(fs)
	if done, code := parse(e, c, fs, args); done {
		return a, true, code
	}
	a.agent = *agent
	a.cfg = probe.PMTUConfig{Proto: *proto, Port: *port, Agent: *agent, KeyFile: *keyFile, KeepMax: fs.Changed("max"),
		Options: pmtu.Options{Min: *minSize, Max: *maxSize, Timeout: *timeout}}
	err := a.out.resolve()
	if err == nil {
		err = checkPMTUArgs(fs, &a.cfg)
	}
	if err == nil {
		a.enc, err = encapFromFlags(*suite, *mode, *natt, *inner, a.cfg.Target)
	}
	if err == nil {
		err = checkPMTUProto(fs, &a.cfg)
	}
	if err != nil {
		return a, true, usageError(e, c, err)
	}
	if a.cfg.Target.Is6() && !fs.Changed("min") {
		a.cfg.Options.Min = min(1280, a.cfg.Options.Max) // every IPv6 link carries 1280 (RFC 8200)
	}
	return a, false, exitOK
}

// checkPMTUArgs checks the target and the search's bounds, and sets cfg.Target.
func checkPMTUArgs(fs *pflag.FlagSet, cfg *probe.PMTUConfig) error {
	if fs.NArg() != 1 {
		return fmt.Errorf("want one TARGET address, got %d argument(s)", fs.NArg())
	}
	target, err := netip.ParseAddr(fs.Arg(0))
	if err != nil {
		return fmt.Errorf("target %q is not an IP address", fs.Arg(0))
	}
	target = target.Unmap()
	cfg.Target = target
	if target.IsUnspecified() || target.IsMulticast() || target == netip.AddrFrom4([4]byte{255, 255, 255, 255}) {
		return fmt.Errorf("target %s: not a unicast address", target)
	}
	if ifname, ok := probe.LocalBroadcast(target); ok {
		return fmt.Errorf("target %s: the broadcast address of %s's subnet, not a unicast address", target, ifname)
	}
	if o := cfg.Options; o.Min < 68 || o.Max > 65535 || o.Min > o.Max {
		return fmt.Errorf("--min %d --max %d: want 68 ≤ min ≤ max ≤ 65535", o.Min, o.Max)
	}
	if t := cfg.Options.Timeout; t < 10*time.Millisecond || t > time.Minute {
		return fmt.Errorf("--timeout %s: want 10ms to 1m", t)
	}
	return nil
}

// checkPMTUProto checks --proto, --port and the agent flags.
func checkPMTUProto(fs *pflag.FlagSet, cfg *probe.PMTUConfig) error {
	switch cfg.Proto {
	case "icmp":
	case "udp":
		if cfg.Agent == "" {
			return errors.New("--proto udp needs --agent: only the agent can confirm a UDP probe arrived")
		}
	case "tcp":
		if !cfg.Target.Is4() {
			return fmt.Errorf("--proto tcp: TCP-sized probes are IPv4 only (%s); use icmp toward an IPv6 target", cfg.Target)
		}
	default:
		return fmt.Errorf("--proto %q: want icmp, tcp or udp", cfg.Proto)
	}
	if fs.Changed("port") && cfg.Proto != "tcp" {
		return errors.New("--port goes with --proto tcp")
	}
	if cfg.Port < 1 || cfg.Port > 65535 {
		return fmt.Errorf("--port %d: want 1-65535", cfg.Port)
	}
	if (cfg.Agent == "") != (cfg.KeyFile == "") {
		return errors.New("--agent and --key-file go together: the agent's address and its pre-shared key")
	}
	return nil
}

// writePMTU prints the result in the asked form on stdout, and in the --out file's form
// there. The advice sizes the tunnel for the narrower direction.
func writePMTU(e *env, a *pmtuArgs, po *pmtuOutput, dirs []pmtuDir) error {
	mtu := 0
	for _, d := range dirs {
		if mtu == 0 || d.res.MTU < mtu {
			mtu = d.res.MTU
		}
	}
	adv, advErr := a.enc.Advise(mtu)
	if advErr == nil {
		po.Advice = &adv
	}
	what := a.cfg.Proto
	if what == "tcp" {
		what = fmt.Sprintf("tcp port %d", a.cfg.Port)
	}
	target := a.cfg.Target
	write := func(w io.Writer, format string) error {
		switch format {
		case report.FormatJSON:
			b, err := json.MarshalIndent(po, "", "  ")
			if err != nil {
				return fmt.Errorf("write json: %w", err)
			}
			_, err = fmt.Fprintf(w, "%s\n", b)
			return err
		case report.FormatText:
			writePMTUText(w, target, what, dirs, po.Advice, advErr, a.enc)
			return nil
		case report.FormatHTML:
			var b strings.Builder
			writePMTUText(&b, target, what, dirs, po.Advice, advErr, a.enc)
			search, advice, _ := strings.Cut(b.String(), "\nadvice")
			return po.Report.WriteHTML(w, report.HTMLOptions{Title: "ipsecpath pmtu " + target.String() + " (" + what + ")",
				Advice:   strings.Split(strings.TrimSpace("advice"+advice), "\n"),
				Sections: []report.HTMLSection{{Title: "The search", Lines: strings.Split(strings.TrimSpace(search), "\n")}}})
		}
		return report.Render(w, po.Report, format)
	}
	if err := write(e.stdout, a.out.format); err != nil {
		return fmt.Errorf("write the result: %w", err)
	}
	if a.out.out == "" {
		return nil
	}
	var buf bytes.Buffer
	if err := write(&buf, a.out.outFormat); err != nil {
		return fmt.Errorf("--out %s: %w", a.out.out, err)
	}
	if err := writeFileAtomic(a.out.out, buf.Bytes()); err != nil {
		return fmt.Errorf("--out %s: %w", a.out.out, err)
	}
	return nil
}

// encapFromFlags builds the encapsulation the advice is for; the outer IP version is the
// target's.
func encapFromFlags(suite, mode string, natt bool, inner int, target netip.Addr) (pmtu.Encap, error) {
	s, err := pmtu.ParseSuite(suite)
	if err != nil {
		return pmtu.Encap{}, fmt.Errorf("--suite: %w", err)
	}
	m, err := pmtu.ParseMode(mode)
	if err != nil {
		return pmtu.Encap{}, fmt.Errorf("--mode: %w", err)
	}
	outer := 4
	if target.Is6() {
		outer = 6
	}
	enc := pmtu.Encap{Suite: s, Mode: m, NATT: natt, Outer: outer, Inner: inner}
	if err := enc.Validate(); err != nil {
		return pmtu.Encap{}, errors.New(strings.TrimPrefix(err.Error(), "pmtu: "))
	}
	return enc, nil
}

// where says in words where a black hole in direction d is.
func where(d report.Direction, b *pmtu.Blackhole) string {
	switch {
	case b.Last.TTL == 0 && b.Next.TTL == 0:
		return "on the way (not localised)"
	case b.Last.TTL == 0 && d == report.Reverse:
		return "before the first hop answered (the agent's own link or its first router)"
	case b.Last.TTL == 0:
		return "before the first hop answered (our own link or the first router)"
	case b.Sure:
		return fmt.Sprintf("after hop %d (%s), on its link toward hop %d (%s)", b.Last.TTL, b.Last.Addr, b.Next.TTL, b.Next.Addr)
	default:
		return fmt.Sprintf("after hop %d (%s); hop %d does not answer, so the drop may be there", b.Last.TTL, b.Last.Addr, b.Next.TTL)
	}
}

func writePMTUText(w io.Writer, target netip.Addr, proto string, dirs []pmtuDir, adv *pmtu.Advice, advErr error, enc pmtu.Encap) {
	for _, r := range dirs {
		res := r.res
		exact := ""
		if !res.Exact {
			exact = fmt.Sprintf(" (at least; the first failure is at most %d)", max(res.Upper, res.MTU+1))
		}
		if r.dir == report.Reverse {
			fmt.Fprintf(w, "reverse path MTU from %s toward us (the agent's DF echoes): %d bytes%s\n", target, res.MTU, exact)
		} else {
			fmt.Fprintf(w, "%s path MTU toward %s (%s): %d bytes%s\n", r.dir, target, proto, res.MTU, exact)
		}
		switch b := res.Blackhole; {
		case b != nil:
			fmt.Fprintf(w, "  black hole: yes: %d-byte packets vanish %s, and no ICMP fragmentation-needed comes back\n", b.Size, where(r.dir, b))
		case res.Signalled && res.ICMPFrom.IsValid():
			fmt.Fprintf(w, "  black hole: no: %s sends ICMP fragmentation-needed (MTU %d)\n", res.ICMPFrom, res.ICMPMTU)
		case res.Signalled && r.dir == report.Reverse:
			fmt.Fprintf(w, "  black hole: no: the agent's own interface refused larger DF packets\n")
		case res.Signalled:
			fmt.Fprintf(w, "  black hole: no: our own interface's MTU is %d\n", res.ICMPMTU)
		case res.ICMPUnseen && res.Upper > 0:
			fmt.Fprintf(w, "  black hole: cannot tell from here: routers send their ICMP to the agent (check from the agent's side)\n")
		default:
			fmt.Fprintf(w, "  black hole: no\n")
		}
		fmt.Fprintf(w, "  probes: %d (%d sizes), %.1f s\n", res.Probes, res.Sizes, res.Elapsed.Seconds())
		if res.Lost > 0 {
			fmt.Fprintf(w, "  loss: %d probe(s) vanished once and came back on a retry\n", res.Lost)
		}
		if res.Stopped != "" {
			fmt.Fprintf(w, "  stopped early: %s\n", res.Stopped)
		}
	}
	natt := ""
	if enc.NATT {
		natt = ", NAT-T"
	}
	if advErr != nil {
		fmt.Fprintf(w, "advice (%s, %s%s): %v\n", enc.Suite, enc.Mode, natt, strings.TrimPrefix(advErr.Error(), "pmtu: "))
		return
	}
	fmt.Fprintf(w, "advice for %s, %s mode%s, IPv%d in IPv%d, over a %d-byte path:\n", adv.Suite, adv.Mode, natt, adv.Inner, adv.Outer, adv.PathMTU)
	fmt.Fprintf(w, "  largest inner packet  %d bytes (IPsec adds %d)\n", adv.MaxInner, adv.Overhead)
	if adv.TunnelMTU > 0 {
		fmt.Fprintf(w, "  tunnel interface MTU  %d\n", adv.TunnelMTU)
	}
	fmt.Fprintf(w, "  TCP MSS clamp         %d\n", adv.MSS)
	if adv.Note != "" {
		fmt.Fprintf(w, "  note: %s\n", adv.Note)
	}
}

// pmtuErrorLine makes an environment error one clear line.
func pmtuErrorLine(err error) error {
	switch {
	case errors.Is(err, pmtu.ErrPermission):
		return errors.New("needs root or CAP_NET_RAW for raw sockets (run as root, or setcap cap_net_raw+ep on the binary)")
	}
	return errors.New(strings.ReplaceAll(err.Error(), "\n", " "))
}
