package main

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/ipsecpath/ipsecpath/probe"
)

func init() {
	register(&command{
		name:     "stateful",
		synopsis: "TARGET --agent HOST:PORT --key-file F [--protocols udp500,udp4500,esp,ah] [--max-idle D] [--json | --format F] [--out F]",
		summary:  "measure how long a stateful firewall or NAT keeps an idle IKE/IPsec flow, per protocol",
		long: `A stateful firewall or NAT keeps an IPsec flow only while it is not idle longer than its
timer, and it cannot read the encrypted rekey or delete. When the flow has been quiet for
longer and the far side starts a rekey (or a delete, DPD, or the first packet after an idle
SA was removed), the device drops it and the tunnel breaks one-sided. This measures that
timer per protocol, from the side that matters: the agent on TARGET ('ipsecpath
responder') sends from the far side after a chosen silence, and we see whether it arrives.

How it works: for each protocol we open flows toward TARGET (UDP 500->500 and 4500->4500
from one source port of ours per flow; ESP, AH), the agent answers at once (the flow is
now seen both ways, like real IKE), then each flow stays silent for its own idle time and
the agent sends again (two packets: one lost packet is not a timer). UDP flows are kept
apart by their ports, so many run at once and the sweep costs the longest idle tested, not
the sum; a second, narrower round refines the boundary. ESP and AH have no ports and each
direction has its own SPI, so a device can tie them only by the address pair, and any ESP
packet between the two hosts resets the one state: their tests run one after another
(--max-idle first; if that dies, doubling idle times, then two bisections). Assumed: no
other ESP/AH between the two addresses during the run (a live tunnel would hide the timer).
Behind a NAT the agent answers the port it saw, so the NAT's own mapping timer is measured.

How to read the result, per protocol:
  9.8-10.3 s     the far side's packet still arrived after 9.8 s of silence and did not
                 after 10.3 s: the device's idle timer lies between. Keep traffic on the
                 flow more often than that (DPD, NAT-T keepalive: see the advice lines),
                 or raise the device's timeout; a rekey from the far side after a longer
                 silence dies.
  none up to D   it still arrived after D (--max-idle), the longest silence tested
  not measured   our packets never reached the agent, or the agent's never reached us
                 even right after opening: a block, not a timer ('ipsecpath check')
Idle times count from the flow's last packet we saw: a survived time up to when we asked
the agent (a lower bound), a died time up to when the agent had sent (an upper bound, but for
the delay from the device to us), so the timer lies between them. The total time is printed before the sweep starts: about
--max-idle, more when ESP/AH have a timer (their tests add up).

Exit status: 0 no timer found up to --max-idle for any protocol, 1 a timer was found or a
protocol could not be measured, 2 usage or environment error, or interrupted (Ctrl-C: the
result then holds what was known so far, marked interrupted). Progress goes to stderr,
never with --json. Needs root or CAP_NET_RAW, and the agent on TARGET.`,
		examples: []string{
			"ipsecpath stateful 203.0.113.10 --agent 203.0.113.10:7500 --key-file /etc/ipsecpath.key",
			"ipsecpath stateful 203.0.113.10 --agent 203.0.113.10 --key-file k --protocols udp500,udp4500 --max-idle 3m",
			"ipsecpath stateful 203.0.113.10 --agent 203.0.113.10 --key-file k --max-idle 30s --json --out timers.json",
		},
		run: runStateful,
	})
}

func runStateful(ctx context.Context, e *env, args []string) int {
	c := commands["stateful"]
	fs := newFlags(c)
	af := addAgentFlags(fs, "far-end agent `HOST:PORT` ('ipsecpath responder' on TARGET; port default 7500)")
	protos := fs.String("protocols", "udp500,udp4500,esp,ah", "comma-separated protocol `LIST` (udp500, udp4500, esp, ah, all)")
	maxIdle := fs.Duration("max-idle", probe.DefaultMaxIdle, "longest silence to test (`D`: 30s, 3m, 10m)")
	out := addOutputFlags(fs)
	if done, code := parse(e, c, fs, args); done {
		return code
	}
	target, err := outputTarget(fs, out)
	if err != nil {
		return usageError(e, c, err)
	}
	if err := probe.CheckTarget(target); err != nil {
		return usageError(e, c, err)
	}
	ps, err := probe.ParseStatefulProtos(*protos)
	if err != nil {
		return usageError(e, c, fmt.Errorf("--protocols: %w", err))
	}
	if *maxIdle < probe.MinMaxIdle || *maxIdle > probe.MaxMaxIdle {
		return usageError(e, c, fmt.Errorf("--max-idle %s: want %s to %s", *maxIdle, probe.MinMaxIdle, probe.MaxMaxIdle))
	}
	if *af.agent == "" || *af.keyFile == "" {
		return usageError(e, c, errors.New("needs --agent and --key-file: only the agent on TARGET can send from the far side"))
	}
	agent, key, err := af.load(target)
	if err != nil {
		return usageError(e, c, err)
	}
	typical, extra := probe.StatefulEstimate(*maxIdle, ps)
	if !out.quiet() {
		msg := fmt.Sprintf("stateful: testing idle times up to %s on %s; this takes about %s", *maxIdle, joinProtos(ps), typical.Round(time.Second))
		if extra > 0 {
			msg += fmt.Sprintf(" (a timer found on ESP/AH adds up to %s: their tests run one after another)", extra.Round(time.Second))
		}
		fmt.Fprintln(e.stderr, msg+". Ctrl-C stops it with what is known so far.")
	}
	prog := newProgress(e.stderr, out.quiet())
	var last time.Time
	cfg := probe.StatefulConfig{Target: target, Agent: agent, Key: key, Protocols: ps, MaxIdle: *maxIdle,
		Progress: func(p probe.StatefulProgress) {
			if time.Since(last) < time.Second {
				return
			}
			last = time.Now()
			prog.Printf("%s", p.Status)
		}}
	rep, err := probe.Stateful(ctx, cfg)
	if rep == nil {
		return usageError(e, c, checkErrorLine(err))
	}
	if werr := out.write(e, rep); werr != nil {
		return usageError(e, c, werr)
	}
	switch {
	case err != nil: // the agent failed midway: the report holds what was known
		return usageError(e, c, checkErrorLine(err))
	case rep.Interrupted:
		fmt.Fprintln(e.stderr, "ipsecpath stateful: interrupted: the result holds what was known so far")
		return exitUsage
	case rep.StatefulFailed():
		return exitFail
	}
	return exitOK
}

func joinProtos(ps []probe.StatefulProto) string {
	s := ""
	for i, p := range ps {
		if i > 0 {
			s += ", "
		}
		s += p.Name()
	}
	return s
}
