package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"sort"
	"strings"
	"time"

	"github.com/ipsecpath/ipsecpath/report"
	"github.com/spf13/pflag"
)

// Exit codes (DESIGN.md).
const (
	exitOK    = 0 // every verdict passed, or the command succeeded
	exitFail  = 1 // a probe failed, or diff found a regression
	exitUsage = 2 // usage or environment error, one clear line on stderr
)

// env is what a subcommand may touch: its writers, so tests can capture output.
type env struct {
	stdout io.Writer
	stderr io.Writer
}

// command is one subcommand. Each lives in its own file and registers itself in init.
type command struct {
	name     string
	synopsis string // the argument line, e.g. "TARGET [--agent HOST:PORT] …"
	summary  string // one line for `ipsecpath help`
	long     string // how to read what it prints
	examples []string
	// run parses args (after the subcommand name) and does the work.
	run func(ctx context.Context, e *env, args []string) int
}

var commands = map[string]*command{}

func register(c *command) {
	if _, dup := commands[c.name]; dup {
		panic("ipsecpath: command registered twice: " + c.name)
	}
	commands[c.name] = c
}

// run is the whole CLI: it returns the process exit code.
func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	e := &env{stdout: stdout, stderr: stderr}
	if len(args) == 0 {
		printHelp(stderr)
		return exitUsage
	}
	switch args[0] {
	case "help", "-h", "--help":
		if len(args) > 1 {
			if c, ok := commands[args[1]]; ok {
				// The command prints its own help, flags included.
				return c.run(ctx, e, append(args[2:len(args):len(args)], "--help"))
			}
			fmt.Fprintf(stderr, "ipsecpath help: unknown command %q (try 'ipsecpath help')\n", args[1])
			return exitUsage
		}
		printHelp(stdout)
		return exitOK
	case "version", "--version":
		fmt.Fprintf(stdout, "ipsecpath %s\n", report.Version)
		return exitOK
	}
	c, ok := commands[args[0]]
	if !ok {
		fmt.Fprintf(stderr, "ipsecpath: unknown command %q (try 'ipsecpath help')\n", args[0])
		return exitUsage
	}
	return c.run(ctx, e, args[1:])
}

func printHelp(w io.Writer) {
	fmt.Fprint(w, `ipsecpath finds where a network path breaks IKE/IPsec: dropped IP fragments, blocked
ESP/AH/UDP 500/UDP 4500, black-holed path MTU discovery, stateful firewalls that forget an
idle IPsec flow, and cut TCP services. It sends crafted probes; a far-end agent
('ipsecpath responder') reports exactly what arrived, per protocol and per direction.

Usage: ipsecpath <command> [flags]

Commands:
`)
	names := make([]string, 0, len(commands))
	for n := range commands {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		fmt.Fprintf(w, "  %-10s %s\n", n, commands[n].summary)
	}
	fmt.Fprint(w, `  help       this text, or 'ipsecpath help COMMAND'
  version    print the version

Exit codes: 0 every verdict passed (or the command succeeded), 1 a probe failed or diff
found a regression, 2 usage or environment error.
`)
}

func printCommandHelp(w io.Writer, c *command, fs *pflag.FlagSet) {
	fmt.Fprintf(w, "Usage: ipsecpath %s %s\n\n%s\n", c.name, c.synopsis, c.summary)
	if c.long != "" {
		fmt.Fprintf(w, "\n%s\n", strings.TrimRight(c.long, "\n"))
	}
	if fs != nil && fs.HasFlags() {
		// pflag marks every boolean "--json[=true|false]"; keep the columns, drop the noise.
		usages := strings.ReplaceAll(fs.FlagUsages(), "[=true|false]", "             ")
		fmt.Fprintf(w, "\nFlags:\n%s", usages)
	}
	if len(c.examples) > 0 {
		fmt.Fprintln(w, "\nExamples:")
		for _, ex := range c.examples {
			fmt.Fprintf(w, "  %s\n", ex)
		}
	}
}

// newFlags returns the flag set of a subcommand: errors are returned, never printed by pflag.
func newFlags(c *command) *pflag.FlagSet {
	fs := pflag.NewFlagSet(c.name, pflag.ContinueOnError)
	fs.SetOutput(io.Discard)
	fs.SortFlags = false
	return fs
}

// parse parses args for c. It returns done=true with an exit code when the command must
// stop here: -h/--help (exit 0, help on stdout) or a bad flag (exit 2, one line on stderr).
func parse(e *env, c *command, fs *pflag.FlagSet, args []string) (done bool, code int) {
	err := fs.Parse(args)
	if errors.Is(err, pflag.ErrHelp) {
		printCommandHelp(e.stdout, c, fs)
		return true, exitOK
	}
	if err != nil {
		return true, usageError(e, c, err)
	}
	return false, exitOK
}

// usageError prints one line for a usage or environment error and returns exit code 2.
func usageError(e *env, c *command, err error) int {
	name := "ipsecpath"
	if c != nil {
		name += " " + c.name
	}
	fmt.Fprintf(e.stderr, "%s: %v\n", name, err)
	return exitUsage
}

// isRoot reports whether we run with uid 0; privileged commands say so in one line otherwise.
func isRoot() bool { return os.Geteuid() == 0 }

// progress prints status lines on stderr once a run has taken longer than a second, and
// never when quiet (--json). Safe for one goroutine at a time.
type progress struct {
	w     io.Writer
	quiet bool
	start time.Time
}

func newProgress(w io.Writer, quiet bool) *progress {
	return &progress{w: w, quiet: quiet, start: time.Now()}
}

// Printf prints a status line if the run has been going for more than a second.
func (p *progress) Printf(format string, args ...any) {
	if p == nil || p.quiet || time.Since(p.start) < time.Second {
		return
	}
	fmt.Fprintf(p.w, "[%5.1fs] %s\n", time.Since(p.start).Seconds(), fmt.Sprintf(format, args...))
}
