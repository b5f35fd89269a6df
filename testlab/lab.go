package testlab

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/vishvananda/netns"
)

// UpTimeout bounds a whole Up when the caller's context has no earlier deadline: namespaces,
// links, the profile, two charons, and an IKE_SA that may need its retransmits to fail.
const UpTimeout = 60 * time.Second

// Errors Up and Down return for bad input or environment; the CLI turns them into exit 2.
var (
	ErrUnknownProfile = errors.New("unknown profile")
	ErrLabExists      = errors.New("lab already exists")
	ErrNoLab          = errors.New("no such lab")
	ErrNotRoot        = errors.New("needs root (network namespaces)")
	ErrMissingTool    = errors.New("missing program")
	ErrBadName        = errors.New("bad lab name")
)

// Spec declares a lab.
type Spec struct {
	Name             string // lab name; namespaces are ipl-<Name>-<node>; "" → "default"
	Profile          string // fault profile, "" → "clean"
	IKEFragmentation *bool  // strongSwan `fragmentation` on both gateways, nil → yes
	NoGateways       bool   // true: do not start strongSwan (faster labs for probe tests)
}

// Lab is a running lab. Methods are safe for concurrent use; Close tears everything down.
type Lab struct {
	name    string
	dir     string
	st      *state
	profile Profile

	closeOnce sync.Once
	closeErr  error
}

// Name is the lab's name.
func (l *Lab) Name() string { return l.name }

// Profile is the lab's fault profile.
func (l *Lab) Profile() Profile { return l.profile }

// IKEFragmentation reports the strongSwan `fragmentation` setting the gateways run with.
func (l *Lab) IKEFragmentation() bool { return l.st.IKEFragmentation }

// Gateways reports whether strongSwan runs on ini and rsp (false with NoGateways).
func (l *Lab) Gateways() bool { return !l.st.NoGateways }

// Namespace is the network namespace name of node ("ipl-<name>-ini").
func (l *Lab) Namespace(node string) string { return nsName(l.name, node) }

// Addr is node's primary address (ini 198.51.100.10, rsp 203.0.113.10, r1 198.51.100.1,
// r2 203.0.113.1, lan-a 192.0.2.10, lan-b 192.0.2.130); the zero Addr for an unknown node.
func (l *Lab) Addr(node string) netip.Addr { return primary[node] }

// Dir is the lab's state directory.
func (l *Lab) Dir() string { return l.dir }

// TunnelUp reports whether the IKEv2 CHILD_SA lan-a ↔ lan-b was INSTALLED when Up finished.
func (l *Lab) TunnelUp() bool { return l.st.TunnelUp }

// TunnelErr says why the tunnel did not come up at Up (nil if it did, or with NoGateways).
func (l *Lab) TunnelErr() error {
	if l.st.TunnelErr == "" {
		return nil
	}
	return errors.New(l.st.TunnelErr)
}

func knownNode(node string) error {
	if _, ok := primary[node]; !ok {
		return fmt.Errorf("testlab: unknown node %q (nodes: %s)", node, strings.Join(Nodes, ", "))
	}
	return nil
}

// Up builds the lab: six namespaces, five veth links, routes, the fault profile and, unless
// NoGateways, a charon on ini and rsp with the IKEv2 tunnel initiated. A profile that keeps
// the tunnel from coming up does not make Up fail: see TunnelUp and TunnelErr. On any error
// everything built so far is torn down.
func Up(ctx context.Context, s Spec) (*Lab, error) {
	t0 := time.Now()
	if s.Name == "" {
		s.Name = "default"
	}
	if s.Profile == "" {
		s.Profile = "clean"
	}
	if err := validName(s.Name); err != nil {
		return nil, err
	}
	prof, ok := ProfileByName(s.Profile)
	if !ok {
		return nil, fmt.Errorf("testlab: %w %q (profiles: %s)", ErrUnknownProfile, s.Profile, strings.Join(ProfileNames(), ", "))
	}
	if os.Geteuid() != 0 {
		return nil, fmt.Errorf("testlab: %w", ErrNotRoot)
	}
	if err := checkTools(prof, s.NoGateways); err != nil {
		return nil, err
	}
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, UpTimeout)
		defer cancel()
	}
	dir := stateDir(s.Name)
	if err := claim(ctx, s.Name); err != nil {
		return nil, err
	}
	frag := s.IKEFragmentation == nil || *s.IKEFragmentation
	l := &Lab{name: s.Name, dir: dir, profile: prof, st: &state{
		Name: s.Name, Profile: prof.Name, IKEFragmentation: frag, NoGateways: s.NoGateways,
		Created: time.Now().UTC(), BuilderPid: os.Getpid(),
	}}
	l.st.BuilderStart, _ = procStart(os.Getpid())
	if err := l.build(ctx); err != nil {
		_ = l.Close()
		return nil, err
	}
	l.st.Ready = true
	l.st.UpSeconds = time.Since(t0).Seconds()
	if err := writeState(dir, l.st); err != nil {
		_ = l.Close()
		return nil, err
	}
	return l, nil
}

// checkTools fails with ErrMissingTool when a program the lab runs is not installed.
func checkTools(p Profile, noGateways bool) error {
	need := []string{"ip"}
	if len(p.Rules) > 0 {
		need = append(need, "nft")
	}
	if !noGateways {
		need = append(need, "swanctl", "prlimit")
		if _, err := os.Stat(CharonPath); err != nil {
			return fmt.Errorf("testlab: %w: strongSwan's charon (%s): install strongswan-charon and libcharon-extra-plugins", ErrMissingTool, CharonPath)
		}
	}
	for _, n := range need {
		if _, err := exec.LookPath(n); err != nil {
			return fmt.Errorf("testlab: %w: %s not found in PATH", ErrMissingTool, n)
		}
	}
	return nil
}

// claim creates the lab's state directory (the lock against a second Up of the same name).
// A state directory whose namespaces are all gone is stale and removed; a lab that still has
// namespaces (running, or left by a killed builder) is refused: `lab down NAME` cleans it.
func claim(ctx context.Context, name string) error {
	if err := os.MkdirAll(StateRoot, 0o755); err != nil {
		return fmt.Errorf("testlab: create %s: %w", StateRoot, err)
	}
	dir := stateDir(name)
	for attempt := 0; attempt < 2; attempt++ {
		err := os.Mkdir(dir, 0o755)
		if err == nil {
			break
		}
		if !errors.Is(err, os.ErrExist) || attempt > 0 {
			return fmt.Errorf("testlab: create state dir %s: %w", dir, err)
		}
		if labHasNamespaces(name) {
			return fmt.Errorf("testlab: %w: %q is running (or was left behind): run 'ipsecpath lab down %s'", ErrLabExists, name, name)
		}
		if st, err := readState(name); err == nil && !st.Ready && !st.builderGone() {
			return fmt.Errorf("testlab: %w: %q is being built by pid %d", ErrLabExists, name, st.BuilderPid)
		}
		if err := Down(ctx, name); err != nil && !errors.Is(err, ErrNoLab) {
			return fmt.Errorf("testlab: remove stale state of %s: %w", name, err)
		}
	}
	if labHasNamespaces(name) {
		_ = os.RemoveAll(dir)
		return fmt.Errorf("testlab: %w: namespaces ipl-%s-* exist without state: run 'ipsecpath lab down %s'", ErrLabExists, name, name)
	}
	return nil
}

func labHasNamespaces(name string) bool {
	for _, n := range Nodes {
		if nsInode(nsName(name, n)) != 0 {
			return true
		}
	}
	return false
}

func (l *Lab) build(ctx context.Context) error {
	if err := writeState(l.dir, l.st); err != nil {
		return err
	}
	handles := map[string]netns.NsHandle{}
	defer func() {
		for _, h := range handles {
			h.Close()
		}
	}()
	for _, n := range Nodes {
		h, err := newNamedNetns(l.Namespace(n))
		if err != nil {
			return err
		}
		handles[n] = h
	}
	mtu := map[string]int{}
	if l.profile.MiddleMTU != 0 {
		mtu[NodeR1+"/east0"] = l.profile.MiddleMTU
	}
	if err := buildTopology(handles, mtu); err != nil {
		return err
	}
	if err := l.applyProfile(ctx, handles); err != nil {
		return err
	}
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("testlab: build lab %s: %w", l.name, err)
	}
	if l.st.NoGateways {
		return nil
	}
	return l.startGateways(ctx)
}

// Close tears the lab down: it stops every process the lab started (by recorded pid and
// starttime) and any other process still inside its namespaces, deletes the namespaces and
// the state directory. It is idempotent.
func (l *Lab) Close() error {
	l.closeOnce.Do(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		l.closeErr = Down(ctx, l.name)
		if errors.Is(l.closeErr, ErrNoLab) {
			l.closeErr = nil
		}
	})
	return l.closeErr
}

// Down tears lab name down from its state directory and namespace names alone, so it works
// after the builder was SIGKILLed: recorded processes (only if their /proc starttime still
// matches), then any process inside the lab's namespaces, then the namespaces and the state.
func Down(ctx context.Context, name string) error {
	if err := validName(name); err != nil {
		return err
	}
	dir := stateDir(name)
	_, statErr := os.Stat(dir)
	if errors.Is(statErr, os.ErrNotExist) && !labHasNamespaces(name) {
		return fmt.Errorf("testlab: %w %q", ErrNoLab, name)
	}
	procs, err := readProcs(dir)
	if err != nil {
		return err
	}
	inodes := map[uint64]bool{}
	for _, n := range Nodes {
		if ino := nsInode(nsName(name, n)); ino != 0 {
			inodes[ino] = true
		}
	}
	stopProcs(procs, StopGrace)
	if len(inodes) > 0 {
		// Whatever else still runs inside the lab (a capture started with Exec whose
		// caller died) holds the namespace: it belongs to the lab and goes with it.
		stopProcs(pidsInNetns(inodes), StopGrace)
	}
	var errs []error
	for _, n := range Nodes {
		ns := nsName(name, n)
		if nsInode(ns) == 0 {
			continue
		}
		if err := deleteNamedNetns(ns); err != nil {
			errs = append(errs, err)
		}
	}
	if err := ctx.Err(); err != nil {
		errs = append(errs, fmt.Errorf("testlab: down %s: %w", name, err))
	}
	if len(errs) == 0 {
		if err := os.RemoveAll(dir); err != nil {
			errs = append(errs, fmt.Errorf("testlab: remove %s: %w", dir, err))
		}
	}
	return errors.Join(errs...)
}

// Status is one lab found in the state directory.
type Status struct {
	Name             string
	Profile          string
	IKEFragmentation bool
	Gateways         bool
	Ready            bool      // Up finished (false: being built, or its builder died)
	TunnelUp         bool      // CHILD_SA installed at Up
	Namespaces       int       // how many of its six namespaces exist
	Procs            int       // recorded processes still alive
	Created          time.Time // when Up started
	UpSeconds        float64   // how long Up took
}

// List returns the labs found in StateRoot, sorted by name.
func List() ([]Status, error) {
	ents, err := os.ReadDir(StateRoot)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("testlab: list %s: %w", StateRoot, err)
	}
	var out []Status
	for _, e := range ents {
		if !e.IsDir() || validName(e.Name()) != nil {
			continue
		}
		s := Status{Name: e.Name()}
		if st, err := readState(e.Name()); err == nil {
			s.Profile, s.IKEFragmentation, s.Gateways = st.Profile, st.IKEFragmentation, !st.NoGateways
			s.Ready, s.TunnelUp, s.Created, s.UpSeconds = st.Ready, st.TunnelUp, st.Created, st.UpSeconds
		}
		for _, n := range Nodes {
			if nsInode(nsName(e.Name(), n)) != 0 {
				s.Namespaces++
			}
		}
		procs, _ := readProcs(stateDir(e.Name()))
		for _, p := range procs {
			if st, ok := procStart(p.pid); ok && st == p.start {
				s.Procs++
			}
		}
		out = append(out, s)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out, nil
}

// Open attaches to a lab that a previous Up (possibly another process) built. Close on the
// returned Lab tears that lab down.
func Open(name string) (*Lab, error) {
	if err := validName(name); err != nil {
		return nil, err
	}
	st, err := readState(name)
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return nil, fmt.Errorf("testlab: %w %q", ErrNoLab, name)
		}
		return nil, err
	}
	prof, ok := ProfileByName(st.Profile)
	if !ok {
		return nil, fmt.Errorf("testlab: lab %s: %w %q in state", name, ErrUnknownProfile, st.Profile)
	}
	return &Lab{name: name, dir: stateDir(name), st: st, profile: prof}, nil
}

// ExecWaitDelay bounds how long Exec waits for output after its context ends and the
// command was killed.
const ExecWaitDelay = 2 * time.Second

// Exec runs argv inside node's network namespace (with `ip netns exec`, which also gives it
// a fresh mount namespace) and returns its combined output.
func (l *Lab) Exec(ctx context.Context, node string, argv ...string) ([]byte, error) {
	return l.execIn(ctx, node, nil, argv...)
}

// ExecInput is Exec with stdin.
func (l *Lab) ExecInput(ctx context.Context, node string, stdin io.Reader, argv ...string) ([]byte, error) {
	return l.execIn(ctx, node, stdin, argv...)
}

func (l *Lab) execIn(ctx context.Context, node string, stdin io.Reader, argv ...string) ([]byte, error) {
	if err := knownNode(node); err != nil {
		return nil, err
	}
	if len(argv) == 0 {
		return nil, fmt.Errorf("testlab: exec in %s: no command", node)
	}
	cmd := exec.CommandContext(ctx, "ip", append([]string{"netns", "exec", l.Namespace(node)}, argv...)...)
	cmd.Stdin = stdin
	cmd.WaitDelay = ExecWaitDelay
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Run(); err != nil {
		return out.Bytes(), fmt.Errorf("testlab: %s: %s: %w", node, strings.Join(argv, " "), err)
	}
	return out.Bytes(), nil
}

// Proc is a background process started in a lab node.
type Proc struct {
	cmd  *exec.Cmd
	log  string
	done chan struct{}
	err  error
}

// Pid is the process id (that of the command itself: `ip netns exec` execs it).
func (p *Proc) Pid() int { return p.cmd.Process.Pid }

// LogPath is the file that receives the process's stdout and stderr.
func (p *Proc) LogPath() string { return p.log }

// Output returns what the process wrote so far to stdout and stderr.
func (p *Proc) Output() []byte {
	b, _ := os.ReadFile(p.log)
	return b
}

// Wait waits for the process to exit and returns its exit error.
func (p *Proc) Wait() error {
	<-p.done
	return p.err
}

// Stop sends SIGTERM, waits up to StopGrace, then SIGKILLs; it returns once the process is gone.
// A process that exited on SIGTERM is not an error.
func (p *Proc) Stop() error {
	select {
	case <-p.done:
		return nil
	default:
	}
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.done:
		return nil
	case <-time.After(StopGrace):
	}
	_ = p.cmd.Process.Kill()
	<-p.done
	return nil
}

// Start runs argv in the background inside node's namespace, in its own process group (so a
// Ctrl-C at the terminal does not reach it), output to a log file in the lab's directory.
// Its pid and starttime are recorded so Close and Down stop it. When ctx ends the process
// gets SIGTERM, and SIGKILL StopGrace later.
func (l *Lab) Start(ctx context.Context, node string, argv ...string) (*Proc, error) {
	return l.start(ctx, node, nil, argv...)
}

func (l *Lab) start(ctx context.Context, node string, env []string, argv ...string) (*Proc, error) {
	if err := knownNode(node); err != nil {
		return nil, err
	}
	if len(argv) == 0 {
		return nil, fmt.Errorf("testlab: start in %s: no command", node)
	}
	logDir := filepath.Join(l.dir, "logs")
	if err := os.MkdirAll(logDir, 0o755); err != nil {
		return nil, fmt.Errorf("testlab: log dir: %w", err)
	}
	lf, err := os.CreateTemp(logDir, node+"-"+filepath.Base(argv[0])+"-*.log")
	if err != nil {
		return nil, fmt.Errorf("testlab: log file for %s: %w", argv[0], err)
	}
	defer lf.Close()
	cmd := exec.CommandContext(ctx, "ip", append([]string{"netns", "exec", l.Namespace(node)}, argv...)...)
	cmd.Cancel = func() error { return cmd.Process.Signal(syscall.SIGTERM) }
	cmd.WaitDelay = StopGrace
	cmd.Stdout, cmd.Stderr = lf, lf
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if env != nil {
		cmd.Env = env
	}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("testlab: %s: start %s: %w", node, strings.Join(argv, " "), err)
	}
	p := &Proc{cmd: cmd, log: lf.Name(), done: make(chan struct{})}
	go func() { p.err = cmd.Wait(); close(p.done) }()
	start, _ := procStart(cmd.Process.Pid)
	if err := recordProc(l.dir, procRecord{pid: cmd.Process.Pid, start: start, label: node + ":" + filepath.Base(argv[0])}); err != nil {
		_ = p.Stop()
		return nil, err
	}
	return p, nil
}

// Do runs fn on a locked OS thread switched into node's network namespace and switches back
// before returning. Sockets fn opens stay in that namespace; goroutines fn starts do not run
// in it.
func (l *Lab) Do(node string, fn func() error) error {
	if err := knownNode(node); err != nil {
		return err
	}
	h, err := netns.GetFromName(l.Namespace(node))
	if err != nil {
		return fmt.Errorf("testlab: open namespace %s: %w", l.Namespace(node), err)
	}
	defer h.Close()
	return withNetns(h, fn)
}
