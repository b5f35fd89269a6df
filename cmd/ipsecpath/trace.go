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
		name:     "trace",
		synopsis: "TARGET --probe ID [--agent HOST:PORT --key-file F] [--max-hops N] [--timeout D] [--pace N] [--json | --format F] [--out F]",
		summary:  "which hop drops a probe: TTL-limited copies of it, both directions with an agent",
		long: `Sends copies of one probe of 'check' (ike, ike-frag, natt, natt-frag, esp, esp-frag, ah,
ah-frag, icmp-large, tcp:PORT) toward TARGET with every TTL from 1 to --max-hops, all at
once (paced), and reads the ICMP time-exceeded each router sends back. The copies differ
only in TTL and IP ID (the same addresses, ports, SPI: a load-balancing router sends them
all down one path, as Paris traceroute does). A small ICMP echo and, for a -frag probe, its
unfragmented form are traced at the same time: they show which hop answers at which TTL
for probes that pass. With an agent ('ipsecpath responder' on TARGET) the agent confirms
arrival, fragment by fragment, and walks the reverse direction toward us the same way.

How to read it, per direction:
  reaches X (hop N)            the far end saw it (with an agent) or answered it
  dies between A (hop i) and B (hop j)
                               A answered time-exceeded for it (it got that far); B answers
                               probes that pass but not this one. The device at fault is A
                               dropping it on its way out, or B on its way in. Hops between
                               them that answer nothing widen the bracket; nothing is guessed.
                               Hop 0 is the sending end itself.
  is refused: …                a device sent an ICMP error (admin-prohibited, …): it is the hop
Fragmented probes: routers send time-exceeded for first fragments only (RFC 1812), so TTLs
localise the first fragment; the agent tells which other fragments arrived. A device that
passes first fragments and drops the rest is reported as such, with the whole path as its
bracket. The answers of every TTL are awaited together. Once the whole path gave a round trip
(the far end's echo reply, or the agent's reports), each copy is given up 4×(SRTT+4·RTTVAR)
after it left (at least 500ms; with an agent, plus its report interval); otherwise, and at
the longest, the trace waits --timeout after the first send and half of it after the last.

Exit status: 0 the probe reached the far end in every direction traced, 1 it did not,
2 usage or environment error. Needs root or CAP_NET_RAW.`,
		examples: []string{
			"ipsecpath trace 203.0.113.10 --probe esp",
			"ipsecpath trace 203.0.113.10 --probe ike-frag --agent 203.0.113.10:7500 --key-file /etc/ipsecpath.key",
			"ipsecpath trace 203.0.113.10 --probe tcp:445 --max-hops 20 --json",
		},
		run: runTrace,
	})
}

func runTrace(ctx context.Context, e *env, args []string) int {
	c := commands["trace"]
	fs := newFlags(c)
	id := fs.String("probe", "", "the probe `ID` to trace (ike, ike-frag, natt, natt-frag, esp, esp-frag, ah, ah-frag, icmp-large, tcp:PORT)")
	af := addAgentFlags(fs, "far-end agent `HOST:PORT` ('ipsecpath responder'; port default 7500)")
	maxHops := fs.Int("max-hops", probe.DefaultTraceMaxHops, fmt.Sprintf("largest TTL sent (`N`, 1-%d)", probe.MaxTraceMaxHops))
	pacing := addPacingFlags(fs, probe.DefaultTraceTimeout, "the longest wait for answers after the first send (`D`); a copy is given up sooner when the trace has measured round trips")
	timeout, pace := pacing.timeout, pacing.pace
	out := addOutputFlags(fs)
	if done, code := parse(e, c, fs, args); done {
		return code
	}
	target, err := outputTarget(fs, out)
	if err != nil {
		return usageError(e, c, err)
	}
	if err := probe.CheckTargetHere(target); err != nil {
		return usageError(e, c, err)
	}
	pid := probe.ID(*id)
	switch {
	case *id == "":
		return usageError(e, c, errors.New("--probe is required: name the probe to trace (e.g. --probe esp-frag)"))
	case !pid.Valid() || pid == probe.PMTU:
		return usageError(e, c, fmt.Errorf("--probe %q: want one of ike, ike-frag, natt, natt-frag, esp, esp-frag, ah, ah-frag, icmp-large, tcp:PORT", *id))
	}
	if *maxHops < 1 || *maxHops > probe.MaxTraceMaxHops {
		return usageError(e, c, fmt.Errorf("--max-hops %d: want 1-%d", *maxHops, probe.MaxTraceMaxHops))
	}
	if err := pacing.check(); err != nil {
		return usageError(e, c, err)
	}
	cfg := probe.TraceConfig{Target: target, Probe: pid, MaxHops: *maxHops, Timeout: *timeout, Pace: *pace}
	if cfg.Agent, cfg.Key, err = af.load(target); err != nil {
		return usageError(e, c, err)
	}
	prog := newProgress(e.stderr, out.quiet())
	said := false
	cfg.Progress = func(phase string) {
		if phase == "waiting" && !said && time.Since(prog.start) >= time.Second {
			said = true
			prog.Printf("tracing %s: every TTL in flight, waiting up to %s for the answers", pid, *timeout)
		}
	}
	rep, err := probe.TraceProbe(ctx, cfg)
	if err != nil {
		return usageError(e, c, checkErrorLine(err))
	}
	if err := out.write(e, rep); err != nil {
		return usageError(e, c, err)
	}
	if rep.Failed() {
		return exitFail
	}
	return exitOK
}
