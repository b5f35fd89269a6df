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
	"github.com/ipsecpath/ipsecpath/probe/wire"
	"github.com/ipsecpath/ipsecpath/report"
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

Exit status: 0 the path MTU was found and no black hole; 1 a black hole; 2 usage or
environment error (bad target or range, no route, target does not answer the smallest
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

// pmtuRun is what one direction's search needs and gives.
type pmtuRun struct {
	dir    report.Direction
	prober pmtu.Prober
	opts   pmtu.Options
	res    *pmtu.Result
	close  func() error
}

func runPMTU(ctx context.Context, e *env, args []string) int {
	c := commands["pmtu"]
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
	out := addOutputFlags(fs)
	if done, code := parse(e, c, fs, args); done {
		return code
	}
	if err := out.resolve(); err != nil {
		return usageError(e, c, err)
	}
	if fs.NArg() != 1 {
		return usageError(e, c, fmt.Errorf("want one TARGET address, got %d argument(s)", fs.NArg()))
	}
	target, err := netip.ParseAddr(fs.Arg(0))
	if err != nil {
		return usageError(e, c, fmt.Errorf("target %q is not an IP address", fs.Arg(0)))
	}
	target = target.Unmap()
	if target.IsUnspecified() || target.IsMulticast() || target == netip.AddrFrom4([4]byte{255, 255, 255, 255}) {
		return usageError(e, c, fmt.Errorf("target %s: not a unicast address", target))
	}
	if ifname, ok := probe.LocalBroadcast(target); ok {
		return usageError(e, c, fmt.Errorf("target %s: the broadcast address of %s's subnet, not a unicast address", target, ifname))
	}
	if *minSize < 68 || *maxSize > 65535 || *minSize > *maxSize {
		return usageError(e, c, fmt.Errorf("--min %d --max %d: want 68 ≤ min ≤ max ≤ 65535", *minSize, *maxSize))
	}
	if *timeout < 10*time.Millisecond || *timeout > time.Minute {
		return usageError(e, c, fmt.Errorf("--timeout %s: want 10ms to 1m", *timeout))
	}
	enc, err := encapFromFlags(*suite, *mode, *natt, *inner, target)
	if err != nil {
		return usageError(e, c, err)
	}
	switch *proto {
	case "icmp":
	case "udp":
		if *agent == "" {
			return usageError(e, c, errors.New("--proto udp needs --agent: only the agent can confirm a UDP probe arrived"))
		}
	case "tcp":
		if !target.Is4() {
			return usageError(e, c, fmt.Errorf("--proto tcp: TCP-sized probes are IPv4 only (%s); use icmp toward an IPv6 target", target))
		}
	default:
		return usageError(e, c, fmt.Errorf("--proto %q: want icmp, tcp or udp", *proto))
	}
	if fs.Changed("port") && *proto != "tcp" {
		return usageError(e, c, errors.New("--port goes with --proto tcp"))
	}
	if *port < 1 || *port > 65535 {
		return usageError(e, c, fmt.Errorf("--port %d: want 1-65535", *port))
	}
	if (*agent == "") != (*keyFile == "") {
		return usageError(e, c, errors.New("--agent and --key-file go together: the agent's address and its pre-shared key"))
	}
	// No uid check: a binary with cap_net_raw works too; a refused raw socket says what is
	// missing (pmtuErrorLine).
	prog := newProgress(e.stderr, out.quiet())
	base := pmtu.Options{Min: *minSize, Max: *maxSize, Timeout: *timeout}
	if target.Is6() && !fs.Changed("min") {
		base.Min = min(1280, base.Max) // every IPv6 link carries 1280 (RFC 8200)
	}
	var runs []*pmtuRun
	if *agent != "" {
		runs, err = agentRuns(ctx, target, *agent, *keyFile, *proto, *port, base)
		if err != nil {
			return usageError(e, c, pmtuErrorLine(err))
		}
	} else {
		var p interface {
			pmtu.Prober
			InterfaceMTU() (int, string)
			Close() error
		}
		if *proto == "tcp" {
			p, err = pmtu.NewTCPProber(target, *port)
		} else {
			p, err = pmtu.NewICMPProber(target)
		}
		if err != nil {
			return usageError(e, c, pmtuErrorLine(err))
		}
		o := base
		if m, _ := p.InterfaceMTU(); m > 0 && !fs.Changed("max") && m < o.Max {
			o.Max = max(m, o.Min) // our own link is the first limit
		}
		runs = []*pmtuRun{{dir: report.Forward, prober: p, opts: o, close: p.Close}}
	}
	defer func() {
		for _, r := range runs {
			if r.close != nil {
				r.close()
			}
		}
	}()

	rep := report.New(target.String(), *agent, time.Now())
	po := pmtuOutput{Report: rep, Search: map[string]*pmtu.Result{}}
	rep.PMTU = &report.PMTU{}
	for _, r := range runs {
		d := r.dir
		r.opts.Logf = func(format string, args ...any) { prog.Printf("%s: "+format, append([]any{d}, args...)...) }
		res, err := pmtu.Discover(ctx, r.prober, r.opts)
		if err != nil {
			return usageError(e, c, pmtuErrorLine(fmt.Errorf("%s: %w", d, err)))
		}
		r.res = res
		po.Search[string(d)] = res
		pm := res.PathMTU()
		if d == report.Reverse {
			rep.PMTU.Reverse = &pm
		} else {
			rep.PMTU.Forward = &pm
		}
		rep.Add(pmtuResult(d, res))
	}
	rep.Finish(time.Now())

	// The advice sizes the tunnel for the narrower direction.
	mtu := 0
	for _, r := range runs {
		if mtu == 0 || r.res.MTU < mtu {
			mtu = r.res.MTU
		}
	}
	adv, advErr := enc.Advise(mtu)
	if advErr == nil {
		po.Advice = &adv
	}
	what := *proto
	if what == "tcp" {
		what = fmt.Sprintf("tcp port %d", *port)
	}
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
			writePMTUText(w, target, what, runs, po.Advice, advErr, enc)
			return nil
		case report.FormatHTML:
			var b strings.Builder
			writePMTUText(&b, target, what, runs, po.Advice, advErr, enc)
			search, advice, _ := strings.Cut(b.String(), "\nadvice")
			return rep.WriteHTML(w, report.HTMLOptions{Title: "ipsecpath pmtu " + target.String() + " (" + what + ")",
				Advice:   strings.Split(strings.TrimSpace("advice"+advice), "\n"),
				Sections: []report.HTMLSection{{Title: "The search", Lines: strings.Split(strings.TrimSpace(search), "\n")}}})
		}
		return report.Render(w, rep, format)
	}
	if err := write(e.stdout, out.format); err != nil {
		return usageError(e, c, fmt.Errorf("write the result: %w", err))
	}
	if out.out != "" {
		var buf bytes.Buffer
		if err := write(&buf, out.outFormat); err != nil {
			return usageError(e, c, fmt.Errorf("--out %s: %w", out.out, err))
		}
		if err := writeFileAtomic(out.out, buf.Bytes()); err != nil {
			return usageError(e, c, fmt.Errorf("--out %s: %w", out.out, err))
		}
	}
	if rep.Failed() {
		return exitFail
	}
	return exitOK
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

// pmtuResult is the report row of one direction, judged the way check judges its pmtu probe.
func pmtuResult(d report.Direction, res *pmtu.Result) report.Result {
	pm := res.PathMTU()
	r := report.Result{Probe: "pmtu", Direction: d, Verdict: report.Pass, Hop: pm.Hop,
		Evidence: report.Evidence{Size: res.MTU, Attempts: res.Probes}}
	if res.ICMPFrom.IsValid() || res.ICMPMTU > 0 {
		r.Evidence.ICMP = &report.ICMP{Type: wire.ICMPUnreach, Code: wire.CodeFragNeeded, MTU: res.ICMPMTU}
		if res.ICMPFrom.IsValid() {
			r.Evidence.ICMP.From = res.ICMPFrom.String()
		}
	}
	if res.Stopped != "" {
		r.Evidence.Extra = "search stopped early: " + res.Stopped
	}
	switch b := res.Blackhole; {
	case b != nil:
		r.Verdict = report.Dropped
		r.Detail = fmt.Sprintf("Path MTU black hole: packets over %d bytes with DF set vanish %s without an ICMP fragmentation-needed; let ICMP type 3 code 4 through there, or clamp the MSS and lower the tunnel MTU.", res.MTU, where(b))
	case res.MTU >= pmtu.DefaultMax:
		r.Detail = fmt.Sprintf("Path MTU is %d bytes: full-size packets pass with DF set.", res.MTU)
	case res.ICMPUnseen && res.Upper > 0:
		r.Detail = fmt.Sprintf("Path MTU is %d bytes toward us; whether the narrow link sends ICMP fragmentation-needed can only be seen at the agent's end.", res.MTU)
	case res.Signalled && !res.ICMPFrom.IsValid():
		// LocalTooBig: the sending host's own interface refused the larger size.
		r.Detail = fmt.Sprintf("Path MTU is %d bytes, set by %s own interface MTU (larger DF packets were refused before leaving; no router on the path said anything); size tunnels for it (MSS clamp, tunnel MTU).", res.MTU, senderOf(d))
	case res.Signalled:
		r.Detail = fmt.Sprintf("Path MTU is %d bytes and the narrow link (%s) says so with ICMP fragmentation-needed, so PMTU discovery works; size tunnels for it (MSS clamp, tunnel MTU).", res.MTU, res.ICMPFrom)
	default:
		r.Detail = fmt.Sprintf("Path MTU is at least %d bytes (the largest size tried).", res.MTU)
	}
	return r
}

// senderOf names whose interface a probe in direction d leaves by: ours forward, the agent's
// reverse.
func senderOf(d report.Direction) string {
	if d == report.Reverse {
		return "the agent's"
	}
	return "our"
}

// where says in words where a black hole is.
func where(b *pmtu.Blackhole) string {
	switch {
	case b.Last.TTL == 0 && b.Next.TTL == 0:
		return "on the way (not localised)"
	case b.Last.TTL == 0:
		return "before the first hop answered (our own link or the first router)"
	case b.Sure:
		return fmt.Sprintf("after hop %d (%s), on its link toward hop %d (%s)", b.Last.TTL, b.Last.Addr, b.Next.TTL, b.Next.Addr)
	default:
		return fmt.Sprintf("after hop %d (%s); hop %d does not answer, so the drop may be there", b.Last.TTL, b.Last.Addr, b.Next.TTL)
	}
}

func writePMTUText(w io.Writer, target netip.Addr, proto string, runs []*pmtuRun, adv *pmtu.Advice, advErr error, enc pmtu.Encap) {
	for _, r := range runs {
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
			fmt.Fprintf(w, "  black hole: yes: %d-byte packets vanish %s, and no ICMP fragmentation-needed comes back\n", b.Size, where(b))
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
