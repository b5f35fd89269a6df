package main

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"strings"
	"time"

	"github.com/ipsecpath/ipsecpath/probe"
	"github.com/ipsecpath/ipsecpath/report"
	"github.com/spf13/pflag"
)

func init() {
	register(&command{
		name:     "ladder",
		synopsis: "TARGET [--dns ADDR] [--tcp-port N] [--no-preflight] [--json | --format F] [--out F]",
		summary:  "triage ladder toward TARGET: loopback, route and gateway, DNS server, target; local preflight",
		long: `Climbs the ladder a network engineer climbs by hand before blaming IPsec, one line per rung:
  loopback  127.0.0.1 answers (this host's own stack works)
  route     the kernel's route toward TARGET (netlink route get): its gateway and interface
  gateway   that gateway answers
  dns       when TARGET is a name: the DNS server (--dns, else /etc/resolv.conf's first
            nameserver) resolves it
  target    TARGET answers
A rung is dead only when nothing at all comes back: a silent ICMP echo is followed by a TCP
SYN (to --tcp-port) and a UDP probe (to port 33434) to the same address. A rung that answers
those but not echo is 'echo-filtered': only ping is filtered, the address is alive.

Verdicts per rung: pass, echo-filtered (alive, echo filtered), dead (nothing came back),
unreachable (another device sent ICMP unreachable for it; its address is shown), no-route
(this host has no route), error (could not be tested: the detail says why), skipped.
When loopback, the route or the gateway is dead, one sentence says so ("the default gateway
198.51.100.1 does not answer: fix the underlay first"); 'check' then sends no probe.

The local preflight (unless --no-preflight) names the process holding UDP 500 and 4500 on
this host (from the kernel's socket tables, like 'ss -ulpn') and the rules of this host's
own nftables ruleset that drop or reject what 'check' sends: a local cause, not the path.

Exit status: 0 every rung passed or is echo-filtered, 1 a rung failed, 2 usage or
environment error (needs root or CAP_NET_RAW for the ICMP socket).`,
		examples: []string{
			"ipsecpath ladder 203.0.113.10",
			"ipsecpath ladder hsm.example.net --dns 192.0.2.53",
			"ipsecpath ladder 203.0.113.10 --json",
		},
		run: runLadder,
	})
}

func runLadder(ctx context.Context, e *env, args []string) int {
	c := commands["ladder"]
	fs := newFlags(c)
	dns := fs.String("dns", "", "DNS server `ADDR` to resolve a name TARGET with (default: /etc/resolv.conf's first nameserver)")
	tcpPort := fs.Int("tcp-port", probe.LadderTCPPort, "TCP `PORT` of the SYN sent when a rung does not answer echo")
	noPre := fs.Bool("no-preflight", false, "skip the local preflight (UDP 500/4500 holders, local firewall)")
	out := addOutputFlags(fs)
	if done, code := parse(e, c, fs, args); done {
		return code
	}
	if err := out.resolve(); err != nil {
		return usageError(e, c, err)
	}
	if fs.NArg() != 1 {
		return usageError(e, c, fmt.Errorf("want one TARGET (an IPv4 address or a name), got %d argument(s)", fs.NArg()))
	}
	cfg := probe.LadderConfig{Target: fs.Arg(0), TCPPort: *tcpPort, Preflight: !*noPre}
	if err := ladderFlags(&cfg, *dns, *tcpPort); err != nil {
		return usageError(e, c, err)
	}
	if a, err := netip.ParseAddr(cfg.Target); err == nil {
		if err := probe.CheckTarget(a); err != nil {
			return usageError(e, c, err)
		}
	}
	started := time.Now()
	l, resolved, err := probe.RunLadder(ctx, cfg)
	if errors.Is(err, os.ErrPermission) {
		return usageError(e, c, errors.New("needs root or CAP_NET_RAW for its raw ICMP socket (run as root, or setcap cap_net_raw+ep on the binary)"))
	}
	if err != nil {
		return usageError(e, c, err)
	}
	target := cfg.Target
	if resolved.IsValid() {
		target = resolved.String()
	}
	rep := report.New(target, "", started)
	rep.Ladder = l
	rep.Finish(time.Now())
	if out.format == report.FormatText {
		if err := report.WriteLadderText(e.stdout, l); err != nil {
			return usageError(e, c, err)
		}
		if out.out != "" {
			if err := out.writeFileOnly(rep); err != nil {
				return usageError(e, c, err)
			}
		}
	} else if err := out.write(e, rep); err != nil {
		return usageError(e, c, err)
	}
	if l.Failed() || l.Stop != "" {
		return exitFail
	}
	return exitOK
}

// ladderFlags checks --dns and --tcp-port.
func ladderFlags(cfg *probe.LadderConfig, dns string, tcpPort int) error {
	if tcpPort < 1 || tcpPort > 65535 {
		return fmt.Errorf("--tcp-port %d: want 1-65535", tcpPort)
	}
	if dns != "" {
		a, err := netip.ParseAddr(dns)
		if err != nil || !a.Unmap().Is4() {
			return fmt.Errorf("--dns %q: want an IPv4 address", dns)
		}
		cfg.DNSServer = a.Unmap()
	}
	return nil
}

// writeFileOnly writes the --out file alone (stdout was printed another way).
func (o *output) writeFileOnly(r *report.Report) error {
	if o.out == "" {
		return nil
	}
	var b strings.Builder
	if err := report.Render(&b, r, o.outFormat); err != nil {
		return fmt.Errorf("--out %s: %w", o.out, err)
	}
	if err := writeFileAtomic(o.out, []byte(b.String())); err != nil {
		return fmt.Errorf("--out %s: %w", o.out, err)
	}
	return nil
}

// serviceFlags are check's flags for tls:PORT probes and proxied TCP.
type serviceFlags struct {
	tls        *string
	ca         *string
	clientCert *string
	clientKey  *string
	sni        *string
	proxy      *string
	noLadder   *bool
	fs         *pflag.FlagSet // to tell an explicit empty --tls from an absent one
}

func addServiceFlags(fs *pflag.FlagSet) *serviceFlags {
	return &serviceFlags{
		fs:         fs,
		noLadder:   fs.Bool("no-ladder", false, "skip the triage ladder (loopback, gateway, target; local preflight) run before the probes"),
		tls:        fs.String("tls", "", "TCP `PORTS` for tls:PORT probes (a full TLS handshake), e.g. 1792,443"),
		ca:         fs.String("ca", "", "PEM `FILE` of the CA(s) the tls probes trust (default: the system's)"),
		clientCert: fs.String("client-cert", "", "PEM `FILE`: our client certificate for tls probes"),
		clientKey:  fs.String("client-key", "", "PEM `FILE`: the client certificate's key"),
		sni:        fs.String("sni", "", "server `NAME` sent in the ClientHello and checked in the certificate (default: the target address)"),
		proxy:      fs.String("proxy", "", "HTTP CONNECT proxy `URL` (http://HOST:PORT) for tls and tcp probes (without it, tls probes use HTTPS_PROXY unless NO_PROXY lists the target)"),
	}
}

// servicePlan is what check runs beside the raw probes: TLS handshakes, and TCP connects
// through a proxy.
type servicePlan struct {
	probe.ServicePlan            // ProxyTCP: tcp:PORT probes sent through the proxy instead of as raw SYNs
	ids               []probe.ID // the tls ids, for the preflight
	rawIDs            []probe.ID // what the raw engine still runs
	hasProxy          bool
}

// planServices reads the service flags: tls ids from --tls and --probes, the TLS material,
// the proxy. ids is --probes parsed without tls ids.
func planServices(sf *serviceFlags, target netip.Addr, probesFlag string, ids []probe.ID) (*servicePlan, error) {
	sp := &servicePlan{ServicePlan: probe.ServicePlan{Base: probe.ServiceConfig{Target: target, ServerName: *sf.sni}}}
	var ports []int
	if sf.fs.Changed("tls") {
		var err error
		if ports, err = probe.ParseTCPPorts(*sf.tls); err != nil {
			return nil, fmt.Errorf("--tls: %w", err)
		}
	}
	for _, f := range strings.Split(probesFlag, ",") {
		if p, ok := probe.ID(strings.TrimSpace(f)).TLSPort(); ok {
			ports = append(ports, p)
		}
	}
	seen := map[int]bool{}
	for _, p := range ports {
		if !seen[p] {
			seen[p] = true
			sp.TLSPorts = append(sp.TLSPorts, p)
			sp.ids = append(sp.ids, probe.TLS(p))
		}
	}
	if (*sf.ca != "" || *sf.clientCert != "" || *sf.sni != "") && len(sp.TLSPorts) == 0 {
		return nil, errors.New("--ca, --client-cert and --sni are for tls probes: add --tls PORTS (or tls:PORT to --probes)")
	}
	if *sf.ca != "" {
		b, err := os.ReadFile(*sf.ca)
		if err != nil {
			return nil, fmt.Errorf("--ca: %w", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(b) {
			return nil, fmt.Errorf("--ca %s: no PEM certificate in it", *sf.ca)
		}
		sp.Base.RootCAs = pool
	}
	switch {
	case (*sf.clientCert == "") != (*sf.clientKey == ""):
		return nil, errors.New("--client-cert and --client-key go together")
	case *sf.clientCert != "":
		c, err := tls.LoadX509KeyPair(*sf.clientCert, *sf.clientKey)
		if err != nil {
			return nil, fmt.Errorf("--client-cert/--client-key: %w", err)
		}
		sp.Base.Certificate = &c
	}
	proxy, err := probe.ProxyFor(*sf.proxy, target, 443)
	if err != nil {
		return nil, fmt.Errorf("--proxy: %w", err)
	}
	sp.Base.Proxy = proxy
	sp.hasProxy = proxy != nil
	// HTTPS_PROXY is for HTTPS clients: it carries tls probes only. An explicit --proxy also
	// carries the tcp:PORT probes (a CONNECT instead of a raw SYN, forward only).
	proxyTCP := sp.hasProxy && *sf.proxy != ""
	for _, id := range ids {
		if p, ok := id.TCPPort(); ok && proxyTCP {
			sp.ProxyTCP = append(sp.ProxyTCP, p)
			continue
		}
		sp.rawIDs = append(sp.rawIDs, id)
	}
	return sp, nil
}

// stripTLS removes tls:PORT entries from a --probes list (the raw engine does not know them).
func stripTLS(list string) (string, bool) {
	var keep []string
	any := false
	for _, f := range strings.Split(list, ",") {
		if _, ok := probe.ID(strings.TrimSpace(f)).TLSPort(); ok {
			any = true
			continue
		}
		keep = append(keep, f)
	}
	return strings.Join(keep, ","), any
}
