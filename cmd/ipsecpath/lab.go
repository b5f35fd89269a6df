package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/ipsecpath/ipsecpath/testlab"
)

var labCmd = &command{
	name:     "lab",
	synopsis: "up|down|status|exec|show|profiles|demo [flags]",
	summary:  "build, inspect and tear down a local lab that reproduces an IPsec path fault",
	long: `The lab is six network namespaces on this machine (no traffic leaves it):

  lan-a 192.0.2.10 — ini 198.51.100.10 — r1 — r2 — rsp 203.0.113.10 — lan-b 192.0.2.130
                     (strongSwan)        (routers with       (strongSwan)
                                          the fault)

ini and rsp run strongSwan with an IKEv2 certificate tunnel lan-a ↔ lan-b (IKE_AUTH is
≈3.3 kB, like Kerberos-authenticated IKE) and an IKEv1 Main Mode responder. A profile puts
one fault on r1 or r2 ('lab profiles' lists them). Namespaces are named ipl-NAME-NODE, so
'ip netns exec ipl-dev-ini …' works too. Needs root.

  lab up [--profile P] [--name N] [--ike-fragmentation=false] [--no-gateways]
  lab down [N]                  stop every lab process, delete the namespaces (also after a crash)
  lab status                    labs on this machine
  lab exec [--name N] NODE -- CMD…   run a command inside a node (ini, r1, r2, rsp, lan-a, lan-b)
  lab show [--name N]           the routers' live nftables rules and link MTUs
  lab profiles                  the fault profiles, one line each
  lab demo                      a fragment-dropping path: the agent on rsp, a full check from ini, the report`,
	examples: []string{
		"ipsecpath lab up --profile frag-drop --ike-fragmentation=false --name dev",
		"ipsecpath lab exec --name dev ini -- ping -c 2 -s 5000 203.0.113.10",
		"ipsecpath lab show --name dev",
		"ipsecpath lab down dev",
		"ipsecpath lab demo",
	},
}

func init() {
	labCmd.run = runLab
	register(labCmd)
}

// labSub is one `lab` subcommand.
type labSub struct {
	c   *command
	run func(ctx context.Context, e *env, c *command, args []string) int
}

var labSubs = map[string]labSub{
	"up":       {&command{name: "lab up", synopsis: "[--profile P] [--name N] [--ike-fragmentation=false] [--no-gateways]", summary: "build a lab and bring its IKEv2 tunnel up; prints how long it took"}, labUp},
	"down":     {&command{name: "lab down", synopsis: "[NAME]", summary: "tear a lab down (default name: default), also after its builder was killed"}, labDown},
	"status":   {&command{name: "lab status", synopsis: "", summary: "list the labs on this machine"}, labStatus},
	"exec":     {&command{name: "lab exec", synopsis: "[--name N] NODE -- CMD [ARGS…]", summary: "run a command inside a lab node; its exit code is passed through"}, labExec},
	"show":     {&command{name: "lab show", synopsis: "[--name N]", summary: "print the routers' live nftables rules and link MTUs"}, labShow},
	"profiles": {&command{name: "lab profiles", synopsis: "", summary: "list the fault profiles"}, labProfiles},
	"demo":     {&command{name: "lab demo", synopsis: "[--name N]", summary: "build a fragment-dropping lab, run the agent on rsp and a full check from ini, print the report, tear it down"}, labDemoCmd},
}

func runLab(ctx context.Context, e *env, args []string) int {
	if len(args) == 0 {
		return usageError(e, labCmd, errors.New("missing subcommand: up, down, status, exec, show, profiles or demo"))
	}
	switch args[0] {
	case "-h", "--help", "help":
		printCommandHelp(e.stdout, labCmd, nil)
		return exitOK
	}
	s, ok := labSubs[args[0]]
	if !ok {
		return usageError(e, labCmd, fmt.Errorf("unknown subcommand %q (up, down, status, exec, show, profiles, demo)", args[0]))
	}
	return s.run(ctx, e, s.c, args[1:])
}

// labError maps testlab errors to exit codes: bad input and environment → 2, else 1.
func labError(e *env, c *command, err error) int {
	for _, u := range []error{testlab.ErrUnknownProfile, testlab.ErrLabExists, testlab.ErrNoLab, testlab.ErrNotRoot, testlab.ErrMissingTool, testlab.ErrBadName} {
		if errors.Is(err, u) {
			return usageError(e, c, err)
		}
	}
	fmt.Fprintf(e.stderr, "ipsecpath %s: %v\n", c.name, err)
	return exitFail
}

// labNameError refuses a lab name before anything runs: empty (an explicit empty --name is not
// "default"), or not 1-24 of a-z, 0-9 and '-'.
func labNameError(name string) error {
	if name == "" {
		return errors.New("the lab name is empty: give one (1-24 of a-z, 0-9 and '-'), or leave the name out for \"default\"")
	}
	if testlab.CheckName(name) != nil {
		return fmt.Errorf("bad lab name %q: use 1-24 of a-z, 0-9 and '-', starting with a letter or digit", name)
	}
	return nil
}

// labNameRoot refuses a bad lab name, then a run without root: what a lab subcommand that
// touches namespaces checks before anything runs. exitOK means go on.
func labNameRoot(e *env, c *command, name string) int {
	if err := labNameError(name); err != nil {
		return usageError(e, c, err)
	}
	return needRoot(e, c)
}

// labNameArgs parses the flags of a lab subcommand whose one flag is --name (def when not
// given), then checks the name and root (labNameRoot). It returns the name, or done=true
// with the exit code when the command must stop here (-h, a bad flag, name or no root).
func labNameArgs(e *env, c *command, args []string, def string) (name string, done bool, code int) {
	fs := newFlags(c)
	n := fs.String("name", def, "lab name")
	if done, code := parse(e, c, fs, args); done {
		return "", true, code
	}
	if code := labNameRoot(e, c, *n); code != exitOK {
		return "", true, code
	}
	return *n, false, exitOK
}

func needRoot(e *env, c *command) int {
	if !isRoot() {
		return usageError(e, c, errors.New("needs root (network namespaces, strongSwan): run it with sudo"))
	}
	return exitOK
}

func labUp(ctx context.Context, e *env, c *command, args []string) int {
	fs := newFlags(c)
	profile := fs.String("profile", "clean", "fault profile (see 'ipsecpath lab profiles')")
	name := fs.String("name", "default", "lab name: namespaces are ipl-NAME-NODE")
	frag := fs.Bool("ike-fragmentation", true, "strongSwan IKE fragmentation on both gateways (false: IKE_AUTH is IP-fragmented)")
	noGW := fs.Bool("no-gateways", false, "do not start strongSwan (routers and hosts only)")
	if done, code := parse(e, c, fs, args); done {
		return code
	}
	if fs.NArg() > 0 {
		return usageError(e, c, fmt.Errorf("unexpected argument %q", fs.Arg(0)))
	}
	if err := labNameError(*name); err != nil {
		return usageError(e, c, err)
	}
	if _, ok := testlab.ProfileByName(*profile); !ok {
		return usageError(e, c, fmt.Errorf("unknown profile %q (profiles: %s)", *profile, strings.Join(testlab.ProfileNames(), ", ")))
	}
	if code := needRoot(e, c); code != exitOK {
		return code
	}
	t0 := time.Now()
	l, err := testlab.Up(ctx, testlab.Spec{Name: *name, Profile: *profile, IKEFragmentation: frag, NoGateways: *noGW})
	if err != nil {
		return labError(e, c, err)
	}
	took := time.Since(t0)
	printLab(e, l)
	fmt.Fprintf(e.stdout, "\nlab %s up in %.2f s\n", l.Name(), took.Seconds())
	fmt.Fprintf(e.stdout, "next: ipsecpath lab exec --name %s ini -- ping -c 2 203.0.113.10 | ipsecpath lab show --name %s | ipsecpath lab down %s\n", l.Name(), l.Name(), l.Name())
	return exitOK
}

func printLab(e *env, l *testlab.Lab) {
	p := l.Profile()
	fmt.Fprintf(e.stdout, "lab %s, profile %s: %s\n", l.Name(), p.Name, p.Summary)
	tw := tabwriter.NewWriter(e.stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "node\taddress\tnamespace")
	for _, n := range testlab.Nodes {
		fmt.Fprintf(tw, "%s\t%s\t%s\n", n, l.Addr(n), l.Namespace(n))
	}
	tw.Flush()
	if l.Gateways() {
		frag := "on"
		if !l.IKEFragmentation() {
			frag = "off"
		}
		if l.TunnelUp() {
			fmt.Fprintf(e.stdout, "IKEv2 tunnel lan-a ↔ lan-b: established (IKE fragmentation %s)\n", frag)
		} else {
			fmt.Fprintf(e.stdout, "IKEv2 tunnel lan-a ↔ lan-b: NOT established (IKE fragmentation %s): %v\n", frag, l.TunnelErr())
		}
		fmt.Fprintf(e.stdout, "charon logs: %s, %s\n", l.CharonLog(testlab.NodeIni), l.CharonLog(testlab.NodeRsp))
	}
}

func labDown(ctx context.Context, e *env, c *command, args []string) int {
	fs := newFlags(c)
	if done, code := parse(e, c, fs, args); done {
		return code
	}
	if fs.NArg() > 1 {
		return usageError(e, c, errors.New("one lab name at most"))
	}
	name := "default"
	if fs.NArg() == 1 {
		name = fs.Arg(0)
	}
	if code := labNameRoot(e, c, name); code != exitOK {
		return code
	}
	if err := testlab.Down(ctx, name); err != nil {
		return labError(e, c, err)
	}
	fmt.Fprintf(e.stdout, "lab %s down\n", name)
	return exitOK
}

func labStatus(ctx context.Context, e *env, c *command, args []string) int {
	fs := newFlags(c)
	if done, code := parse(e, c, fs, args); done {
		return code
	}
	labs, err := testlab.List()
	if err != nil {
		return labError(e, c, err)
	}
	if len(labs) == 0 {
		fmt.Fprintln(e.stdout, "no labs")
		return exitOK
	}
	tw := tabwriter.NewWriter(e.stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "name\tprofile\tstate\ttunnel\tnamespaces\tprocesses\tcreated")
	for _, s := range labs {
		state := "up"
		if !s.Ready {
			state = "incomplete (builder died or still building: lab down " + s.Name + ")"
		}
		tunnel := "-"
		if s.Gateways {
			tunnel = map[bool]string{true: "established", false: "down"}[s.TunnelUp]
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%d/6\t%d\t%s\n", s.Name, s.Profile, state, tunnel, s.Namespaces, s.Procs, s.Created.Format(time.RFC3339))
	}
	tw.Flush()
	return exitOK
}

func labExec(ctx context.Context, e *env, c *command, args []string) int {
	fs := newFlags(c)
	name := fs.String("name", "default", "lab name")
	fs.SetInterspersed(false)
	if done, code := parse(e, c, fs, args); done {
		return code
	}
	rest := fs.Args()
	if len(rest) > 0 && rest[0] == "--" {
		rest = rest[1:]
	}
	if len(rest) < 2 {
		return usageError(e, c, errors.New("usage: lab exec [--name N] NODE -- CMD [ARGS…]"))
	}
	node, argv := rest[0], rest[1:]
	if len(argv) > 0 && argv[0] == "--" {
		argv = argv[1:]
	}
	if len(argv) == 0 {
		return usageError(e, c, errors.New("no command after NODE --"))
	}
	if code := labNameRoot(e, c, *name); code != exitOK {
		return code
	}
	l, err := testlab.Open(*name)
	if err != nil {
		return labError(e, c, err)
	}
	if !l.Addr(node).IsValid() {
		return usageError(e, c, fmt.Errorf("unknown node %q (nodes: %s)", node, strings.Join(testlab.Nodes, ", ")))
	}
	cmd := exec.CommandContext(ctx, "ip", append([]string{"netns", "exec", l.Namespace(node)}, argv...)...)
	cmd.Stdin, cmd.Stdout, cmd.Stderr = os.Stdin, e.stdout, e.stderr
	err = cmd.Run()
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		return ee.ExitCode()
	}
	if err != nil {
		return labError(e, c, err)
	}
	return exitOK
}

func labShow(ctx context.Context, e *env, c *command, args []string) int {
	name, done, code := labNameArgs(e, c, args, "default")
	if done {
		return code
	}
	l, err := testlab.Open(name)
	if err != nil {
		return labError(e, c, err)
	}
	fmt.Fprint(e.stdout, l.Ruleset())
	return exitOK
}

func labProfiles(ctx context.Context, e *env, c *command, args []string) int {
	fs := newFlags(c)
	if done, code := parse(e, c, fs, args); done {
		return code
	}
	tw := tabwriter.NewWriter(e.stdout, 0, 4, 2, ' ', 0)
	for _, p := range testlab.Profiles() {
		fmt.Fprintf(tw, "%s\t%s\n", p.Name, p.Summary)
	}
	tw.Flush()
	return exitOK
}

func labDemoCmd(ctx context.Context, e *env, c *command, args []string) int {
	name, done, code := labNameArgs(e, c, args, "demo")
	if done {
		return code
	}
	return labDemo(ctx, e, c, name)
}

// labDemo builds a frag-drop lab with strongSwan's IKE fragmentation off, runs the far-end
// agent on rsp and a full check from ini, prints the report, and tears the lab down. Exit 0
// when the check found what the profile defines (every fragmented probe frag-dropped both
// ways, everything else passing; demoSurprises in check.go).
func labDemo(ctx context.Context, e *env, c *command, name string) int {
	off := false
	fmt.Fprintf(e.stdout, "Building lab %q: r2 drops every IP fragment; strongSwan IKE fragmentation off (IKE_AUTH ≈3.3 kB)…\n", name)
	t0 := time.Now()
	l, err := testlab.Up(ctx, testlab.Spec{Name: name, Profile: "frag-drop", IKEFragmentation: &off})
	if err != nil {
		return labError(e, c, err)
	}
	defer func() {
		if err := l.Close(); err != nil {
			fmt.Fprintf(e.stderr, "ipsecpath lab demo: teardown: %v\n", err)
		}
	}()
	fmt.Fprintf(e.stdout, "lab up in %.2f s\n", time.Since(t0).Seconds())
	if l.TunnelUp() {
		fmt.Fprintln(e.stdout, "IKEv2 tunnel lan-a ↔ lan-b: established (unexpected: IKE_AUTH should have been lost)")
	} else {
		fmt.Fprintf(e.stdout, "IKEv2 tunnel lan-a ↔ lan-b: NOT established: %v\n", l.TunnelErr())
	}
	rep, err := demoCheck(ctx, e, l)
	if err != nil {
		fmt.Fprintf(e.stderr, "ipsecpath lab demo: %v\n", err)
		return exitFail
	}
	fmt.Fprintln(e.stdout, "\nA path that drops IP fragments passes small packets and kills large IKE messages:")
	fmt.Fprintln(e.stdout, "turn on IKE fragmentation (RFC 7383) on both gateways, or fix the device that drops fragments.")
	if s := demoSurprises(rep); len(s) > 0 || l.TunnelUp() {
		fmt.Fprintf(e.stderr, "ipsecpath lab demo: the lab did not behave as expected: %s\n", strings.Join(s, "; "))
		return exitFail
	}
	return exitOK
}
