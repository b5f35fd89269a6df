package main

import (
	"errors"
	"fmt"
	"net/netip"
	"time"

	"github.com/spf13/pflag"

	"github.com/ipsecpath/ipsecpath/probe"
)

// agentFlags are --agent and --key-file, which check, trace and stateful share.
type agentFlags struct {
	agent, keyFile *string
}

// addAgentFlags registers --agent (described by agentHelp) and --key-file on fs.
func addAgentFlags(fs *pflag.FlagSet, agentHelp string) agentFlags {
	return agentFlags{
		agent:   fs.String("agent", "", agentHelp),
		keyFile: fs.String("key-file", "", "the agent's pre-shared key `FILE` (chmod 600)"),
	}
}

// load checks that the two flags come together, reads the key and checks that the agent
// runs on target. Neither flag given is no agent: "", nil, nil.
func (a agentFlags) load(target netip.Addr) (agent string, key []byte, err error) {
	switch {
	case *a.agent != "" && *a.keyFile == "":
		return "", nil, errors.New("--agent needs --key-file (the agent's pre-shared key)")
	case *a.agent == "" && *a.keyFile != "":
		return "", nil, errors.New("--key-file without --agent: name the agent with --agent HOST:PORT")
	case *a.agent == "":
		return "", nil, nil
	}
	if key, err = probe.LoadKey(*a.keyFile); err != nil {
		return "", nil, err
	}
	if err := agentOnTarget(*a.agent, target); err != nil {
		return "", nil, err
	}
	return *a.agent, key, nil
}

// pacingFlags are --timeout and --pace as check and trace take them.
type pacingFlags struct {
	timeout *time.Duration
	pace    *int
}

// addPacingFlags registers --timeout (default def, described by timeoutHelp) and --pace.
func addPacingFlags(fs *pflag.FlagSet, def time.Duration, timeoutHelp string) pacingFlags {
	return pacingFlags{
		timeout: fs.Duration("timeout", def, timeoutHelp),
		pace:    fs.Int("pace", probe.DefaultRate, "packets per second toward the target (`N`), and asked of the agent"),
	}
}

// check refuses a --timeout or --pace out of their ranges.
func (p pacingFlags) check() error {
	if *p.timeout < probe.MinCheckTimeout || *p.timeout > probe.MaxCheckTimeout {
		return fmt.Errorf("--timeout %s: want %s to %s", *p.timeout, probe.MinCheckTimeout, probe.MaxCheckTimeout)
	}
	if *p.pace < 1 || *p.pace > probe.MaxRate {
		return fmt.Errorf("--pace %d: want 1-%d packets per second", *p.pace, probe.MaxRate)
	}
	return nil
}

// outputTarget is how a command that probes one TARGET and prints a report starts, once its
// flags are parsed: the output flags resolved, then the one TARGET read (targetArg). Its
// error is a usage error.
func outputTarget(fs *pflag.FlagSet, out *output) (netip.Addr, error) {
	if err := out.resolve(); err != nil {
		return netip.Addr{}, err
	}
	return targetArg(fs)
}

// targetArg reads the one TARGET argument, an IPv4 address.
func targetArg(fs *pflag.FlagSet) (netip.Addr, error) {
	if fs.NArg() != 1 {
		return netip.Addr{}, fmt.Errorf("want one TARGET address, got %d argument(s)", fs.NArg())
	}
	target, err := netip.ParseAddr(fs.Arg(0))
	if err != nil {
		return netip.Addr{}, fmt.Errorf("target %q is not an IPv4 address", fs.Arg(0))
	}
	return target, nil
}
