package main

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"os"
	"strings"
	"time"

	"github.com/ipsecpath/ipsecpath/probe"
	"github.com/ipsecpath/ipsecpath/probe/exporter"
)

func init() {
	register(&command{
		name:     "exporter",
		synopsis: "--listen ADDR [--config FILE] [--allow PREFIX]...",
		summary:  "Prometheus multi-target exporter: a scrape of /probe?target=&module= runs a check",
		long: `Serves Prometheus the way blackbox_exporter does: each scrape of
/probe?target=ADDR&module=NAME runs that module's check toward ADDR and answers with its
verdicts; Prometheus decides what is probed and how often (one scrape, one run), shards and
alerts. /metrics carries the exporter's own health (scrapes, runs, slots, process).

Metrics of a /probe scrape:
  ipsecpath_check_success                      1 the check ran, 0 it could not (see the log)
  ipsecpath_probe_success{probe,direction}     1 pass, 0 failed (skipped probes: no series)
  ipsecpath_probe_verdict{probe,direction,verdict}  1 for the verdict it got, 0 for the others
  ipsecpath_path_mtu_bytes{direction}          path MTU; ipsecpath_path_mtu_blackhole 1: a PMTUD black hole
  ipsecpath_probe_duration_seconds             how long the check took
  ipsecpath_rtt_seconds{probe}                 round trip of the forward probe's answer

Config (YAML; without --config there is one module, default: a one-ended check of every
probe, so the exporter runs with no file at all):
  allow: [203.0.113.0/24, 198.51.100.7]   # targets a scrape may name
  max_concurrent: 8                      # checks at once; further scrapes wait for a slot
  modules:
    default: {timeout: 2s}
    ike-only: {probes: [ike, ike-frag, natt, natt-frag], pace: 50}
    agent: {agent_port: 7500, key_file: /etc/ipsecpath/agent.key, timeout: 3s}
    vrf-blue: {netns: blue}              # check from network namespace /run/netns/blue
A module with agent_port checks two-ended: the agent ('ipsecpath responder') runs on the
target at that port. probes, tcp, timeout and pace mean what check's flags mean.

Scrapes of the same target and module that arrive while a check runs share its result;
checks toward one target never overlap (another module waits), so a target sees one
check's pace at a time. The scrape's X-Prometheus-Scrape-Timeout-Seconds, less 0.5 s,
bounds the run: the module's timeout is shortened to fit. Keep the scrape interval well
above the check's duration.

Safety: the exporter sends IKE, ESP, AH, fragments and TCP SYNs to whatever target a
scrape names. Give it an allow-list (allow: in the config, or --allow) of the gateways and
prefixes it is for: a scrape naming anything else gets 403 and nothing is sent. Without one
it probes any unicast IPv4 address and says so when it starts. Like check it refuses
multicast, broadcast and unspecified targets. Listen on the address Prometheus reaches (not
every address) or put it behind a firewall: there is no authentication on /probe.

Exit status 2: bad flag, bad config, unreadable key file, or the port cannot be opened. It
runs until SIGINT or SIGTERM. Needs root or CAP_NET_RAW, like check.`,
		examples: []string{
			"ipsecpath exporter --listen 127.0.0.1:9877",
			"ipsecpath exporter --listen 192.0.2.5:9877 --config /etc/ipsecpath/exporter.yml",
			"ipsecpath exporter --listen :9877 --allow 203.0.113.0/24 --allow 198.51.100.7",
			"curl 'http://127.0.0.1:9877/probe?target=203.0.113.10&module=default'",
		},
		run: runExporter,
	})
}

func runExporter(ctx context.Context, e *env, args []string) int {
	c := commands["exporter"]
	fs := newFlags(c)
	listen := fs.String("listen", ":9877", "HTTP address `ADDR:PORT` to serve /probe and /metrics on")
	configFile := fs.String("config", "", "modules and allow-list, YAML `FILE` (see above)")
	allow := fs.StringArray("allow", nil, "also allow scrapes to name this `PREFIX` or address (repeatable)")
	if done, code := parse(e, c, fs, args); done {
		return code
	}
	if fs.NArg() != 0 {
		return usageError(e, c, fmt.Errorf("unexpected argument %q (the exporter takes only flags)", fs.Arg(0)))
	}
	cfg := exporter.DefaultConfig()
	if *configFile != "" {
		data, err := readBounded(*configFile, exporter.MaxConfigSize)
		if err != nil {
			return usageError(e, c, fmt.Errorf("--config: %w", err))
		}
		if cfg, err = exporter.ParseConfig(data, probe.LoadKey); err != nil {
			return usageError(e, c, fmt.Errorf("--config %s: %w", *configFile, err))
		}
	}
	for _, a := range *allow {
		p, err := netip.ParsePrefix(a)
		if err != nil {
			ad, aerr := netip.ParseAddr(a)
			if aerr != nil || !ad.Is4() {
				return usageError(e, c, fmt.Errorf("--allow %q: want an IPv4 address or prefix", a))
			}
			p = netip.PrefixFrom(ad, 32)
		}
		if !p.Addr().Is4() {
			return usageError(e, c, fmt.Errorf("--allow %q: only IPv4 targets are supported", a))
		}
		cfg.Allow = append(cfg.Allow, p.Masked())
	}
	// Fail now, not at the first scrape, when raw sockets cannot be opened.
	snd, err := probe.OpenSender(probe.SenderConfig{})
	if errors.Is(err, os.ErrPermission) {
		return usageError(e, c, errors.New("needs root or CAP_NET_RAW (every scrape runs a check with raw sockets)"))
	}
	if err != nil {
		return usageError(e, c, err)
	}
	snd.Close()
	ln, err := net.Listen("tcp", *listen)
	if err != nil {
		return usageError(e, c, fmt.Errorf("--listen: %w", err))
	}
	lg := &lineLog{w: e.stderr, prefix: "exporter"}
	ex := exporter.New(cfg, checkWithPMTU, lg.Printf)
	srv := &http.Server{Handler: ex.Handler(), ReadHeaderTimeout: 10 * time.Second}
	lg.Printf("listening on %s; modules: %s", ln.Addr(), strings.Join(cfg.ModuleNames(), ", "))
	if len(cfg.Allow) == 0 {
		lg.Printf("no allow-list: a scrape can make this host probe any unicast IPv4 address (set allow: in --config, or --allow)")
	} else {
		var ps []string
		for _, p := range cfg.Allow {
			ps = append(ps, p.String())
		}
		lg.Printf("scrapes may name targets in: %s", strings.Join(ps, ", "))
	}
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	select {
	case err := <-errc:
		return usageError(e, c, err)
	case <-ctx.Done():
	}
	sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	srv.Shutdown(sctx)
	lg.Printf("stopped")
	return exitOK
}
