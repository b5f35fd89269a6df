package main

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/ipsecpath/ipsecpath/probe"
	"github.com/ipsecpath/ipsecpath/testlab"
)

// writeKey writes a key file with the given contents and mode.
func writeKey(t *testing.T, dir, name string, data []byte, mode os.FileMode) string {
	t.Helper()
	return testlab.WriteFile(t, filepath.Join(dir, name), data, mode)
}

func TestResponderBadInput(t *testing.T) {
	dir := t.TempDir()
	good := writeKey(t, dir, "good", bytes.Repeat([]byte{7}, 32), 0o600)
	world := writeKey(t, dir, "world", bytes.Repeat([]byte{7}, 32), 0o644)
	group := writeKey(t, dir, "group", bytes.Repeat([]byte{7}, 32), 0o640)
	short := writeKey(t, dir, "short", []byte("0123456789abcde"), 0o600)
	for _, tc := range []struct {
		name string
		args []string
		want string
	}{
		{"no key file", []string{"responder"}, "--key-file is required"},
		{"world-readable key", []string{"responder", "--key-file", world}, "group or others may access it"},
		{"group-readable key", []string{"responder", "--key-file", group}, "group or others may access it"},
		{"short key", []string{"responder", "--key-file", short}, "15-byte key, need at least 16"},
		{"missing key", []string{"responder", "--key-file", filepath.Join(dir, "nope")}, "no such file"},
		{"pace 0", []string{"responder", "--key-file", good, "--pace", "0"}, "--pace 0"},
		{"pace huge", []string{"responder", "--key-file", good, "--pace", "1000000"}, "--pace 1000000"},
		{"listen not an address", []string{"responder", "--key-file", good, "--listen", "agent.example:7500"}, "must be an IP address"},
		{"listen bad port", []string{"responder", "--key-file", good, "--listen", "127.0.0.1:70000"}, "port must be 1-65535"},
		{"listen empty", []string{"responder", "--key-file", good, "--listen", ""}, "--listen is empty"},
		{"unknown flag", []string{"responder", "--key-file", good, "--bogus"}, "unknown flag"},
		{"stray argument", []string{"responder", "--key-file", good, "203.0.113.10"}, "unexpected argument"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			code, out, errs := runCLI(t, tc.args...)
			if code != exitUsage {
				t.Fatalf("exit %d, want 2; stderr %q", code, errs)
			}
			if out != "" || strings.Count(errs, "\n") != 1 || !strings.HasPrefix(errs, "ipsecpath responder: ") || !strings.Contains(errs, tc.want) {
				t.Fatalf("want one line on stderr containing %q; stdout %q, stderr %q", tc.want, out, errs)
			}
		})
	}
}

func TestResponderHelp(t *testing.T) {
	code, out, _ := runCLI(t, "responder", "--help")
	if code != exitOK || !strings.Contains(out, "--key-file") || !strings.Contains(out, "head -c 32 /dev/urandom > agent.key && chmod 600 agent.key") {
		t.Fatalf("help: exit %d\n%s", code, out)
	}
}

func TestListenAddr(t *testing.T) {
	for in, want := range map[string]string{
		":7500":            ":7500",
		"127.0.0.1":        "127.0.0.1:7500",
		"127.0.0.1:9000":   "127.0.0.1:9000",
		"::1":              "[::1]:7500",
		"[::1]:9000":       "[::1]:9000",
		"203.0.113.10:750": "203.0.113.10:750",
	} {
		got, err := listenAddr(in)
		if err != nil || got != want {
			t.Errorf("listenAddr(%q) = %q, %v; want %q", in, got, err, want)
		}
	}
}

// TestResponderHelperProcess is not a test: the tests below run the test binary as the
// responder (as another user, or to send it a signal) through it.
func TestResponderHelperProcess(t *testing.T) {
	if os.Getenv("IPSECPATH_RESPONDER_HELPER") != "1" {
		return // not a test by itself
	}
	args := strings.Split(os.Getenv("IPSECPATH_RESPONDER_ARGS"), "\x1f")
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	os.Exit(run(ctx, args, os.Stdout, os.Stderr))
}

// nobody is the uid and gid tests drop to.
const nobody = 65534

// copyTestBinary copies the running test binary into a new directory that user nobody may
// enter and run from (the build's own directory is root's alone), removed when the test ends.
func copyTestBinary(t *testing.T) (dir, bin string) {
	t.Helper()
	dir, err := os.MkdirTemp("", "ipt-cli-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	data, err := os.ReadFile(exe)
	if err != nil {
		t.Fatal(err)
	}
	bin = filepath.Join(dir, "ipsecpath.test")
	if err := os.WriteFile(bin, data, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	return dir, bin
}

// runAsNobody runs the CLI from bin (a copyTestBinary) as user nobody in dir and returns
// its exit code and output.
func runAsNobody(t *testing.T, dir, bin string, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	cmd := helperCmd(t, bin, args...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: nobody, Gid: nobody}}
	cmd.Dir = dir
	var o, e bytes.Buffer
	cmd.Stdout, cmd.Stderr = &o, &e
	err := cmd.Run()
	var ee *exec.ExitError
	if err != nil && !errors.As(err, &ee) {
		t.Fatalf("run %v as nobody: %v", args, err)
	}
	validateOutputs(t, args, cmd.ProcessState.ExitCode(), o.String())
	return cmd.ProcessState.ExitCode(), o.String(), e.String()
}

func helperCmd(t *testing.T, exe string, args ...string) *exec.Cmd {
	cmd := exec.Command(exe, "-test.run=^TestResponderHelperProcess$", "-test.count=1")
	cmd.Env = append(os.Environ(), "IPSECPATH_RESPONDER_HELPER=1", "IPSECPATH_RESPONDER_ARGS="+strings.Join(args, "\x1f"))
	return cmd
}

// TestResponderNotPrivileged runs the responder as user nobody: one line, exit 2.
func TestResponderNotPrivileged(t *testing.T) {
	testlab.RequireRoot(t) // to become nobody
	dir, bin := copyTestBinary(t)
	key := writeKey(t, dir, "key", bytes.Repeat([]byte{9}, 32), 0o600)
	for _, p := range []string{dir, key} {
		if err := os.Chown(p, nobody, nobody); err != nil {
			t.Fatal(err)
		}
	}
	code, _, errOut := runAsNobody(t, dir, bin, "responder", "--key-file", key, "--listen", "127.0.0.1:7599")
	if code != exitUsage {
		t.Fatalf("as nobody: exit %d, want 2; stderr %q", code, errOut)
	}
	if errOut != "ipsecpath responder: needs root or CAP_NET_RAW (raw sockets to capture probes and send reverse ones)\n" {
		t.Fatalf("stderr %q", errOut)
	}

	// The same binary with the CAP_NET_RAW file capability: nobody may run the agent.
	testlab.RequireTools(t, "setcap")
	if out, err := exec.Command("setcap", "cap_net_raw+ep", bin).CombinedOutput(); err != nil {
		t.Fatalf("setcap: %v: %s", err, out)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	var stderr bytes.Buffer
	cmd := helperCmd(t, bin, "responder", "--key-file", key, "--listen", addr)
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: nobody, Gid: nobody}}
	cmd.Dir = dir
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	var c net.Conn
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
		if c, err = net.Dial("tcp", addr); err == nil {
			c.Close()
			break
		}
	}
	cmd.Process.Signal(syscall.SIGTERM)
	werr := cmd.Wait()
	if err != nil || werr != nil || !strings.Contains(stderr.String(), "listening on "+addr) {
		t.Fatalf("as nobody with CAP_NET_RAW: dial %v, exit %v; stderr %q", err, werr, stderr.String())
	}
}

// TestResponderServesAndStops runs the real responder (raw sockets, root) on loopback,
// has a session with it, and stops it with SIGTERM: exit 0, one log line per session.
func TestResponderServesAndStops(t *testing.T) {
	testlab.RequireRoot(t)
	dir := t.TempDir()
	keyBytes := bytes.Repeat([]byte{5}, 32)
	key := writeKey(t, dir, "key", keyBytes, 0o600)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	cmd := helperCmd(t, exe, "responder", "--key-file", key, "--listen", addr)
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if cmd.ProcessState == nil {
			cmd.Process.Kill()
			cmd.Wait()
		}
	})
	lines := make(chan string, 16)
	go func() {
		sc := bufio.NewScanner(stderr)
		for sc.Scan() {
			lines <- sc.Text()
		}
		close(lines)
	}()
	// next returns the next stderr line containing want, skipping others (e.g. the
	// rate-limited line about refused connections).
	next := func(want string) string {
		t.Helper()
		timeout := time.After(10 * time.Second)
		for {
			select {
			case l, ok := <-lines:
				if !ok {
					t.Fatalf("stderr closed before a line containing %q", want)
				}
				t.Logf("responder: %s", l)
				if strings.Contains(l, want) {
					return l
				}
			case <-timeout:
				t.Fatalf("no stderr line containing %q within 10s", want)
			}
		}
	}
	next("listening on " + addr)

	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	// Wrong key first: no answer, no session line.
	bad, err := probe.DialAgent(ctx, addr, bytes.Repeat([]byte{6}, 32))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := bad.Hello(ctx); !errors.Is(err, probe.ErrAgentRejected) {
		t.Fatalf("wrong key: %v", err)
	}
	bad.Close()
	a, err := probe.DialAgent(ctx, addr, keyBytes)
	if err != nil {
		t.Fatal(err)
	}
	h, err := a.Hello(ctx)
	if err != nil {
		t.Fatalf("Hello: %v", err)
	}
	if !h.Capture || !h.Sender || h.Peer.Addr().String() != "127.0.0.1" {
		t.Fatalf("Hello %+v: want capture and sender ready, peer 127.0.0.1", h)
	}
	if err := a.StartObserving(ctx); err != nil {
		t.Fatalf("StartObserving: %v", err)
	}
	if _, err := a.Report(ctx); err != nil {
		t.Fatalf("Report: %v", err)
	}
	if err := a.Stop(ctx); err != nil {
		t.Fatalf("Stop: %v", err)
	}
	l := next("session " + h.Session + " from 127.0.0.1:")
	if !strings.Contains(l, "4 requests, 0 probe packets observed (0 lost") || !strings.Contains(l, "ended: stop") {
		t.Fatalf("session line %q", l)
	}
	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	next("stopped")
	if err := cmd.Wait(); err != nil {
		t.Fatalf("after SIGTERM: %v, want exit 0", err)
	}
}

// TestResponderInLab runs the responder command in the lab's rsp (its own process, as a
// user would) with r1 dropping non-first fragments both ways, and talks to it from ini:
// the agent reports the whole ESP probe and only the first fragment of esp-frag, and of its
// reverse probes ini receives the same.
func TestResponderInLab(t *testing.T) {
	l := testlab.ForTest(t, testlab.Spec{Profile: "nonfirst-frag-drop", NoGateways: true})
	ini, rsp := l.Addr("ini"), l.Addr("rsp")
	keyBytes := bytes.Repeat([]byte{3}, 32)
	key := writeKey(t, t.TempDir(), "key", keyBytes, 0o600)
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	addr := net.JoinHostPort(rsp.String(), "7500")
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	args := strings.Join([]string{"responder", "--listen", addr, "--key-file", key, "--pace", "200"}, "\x1f")
	proc, err := l.Start(ctx, "rsp", "env", "IPSECPATH_RESPONDER_HELPER=1", "IPSECPATH_RESPONDER_ARGS="+args,
		exe, "-test.run=^TestResponderHelperProcess$", "-test.count=1")
	if err != nil {
		t.Fatal(err)
	}
	defer proc.Stop()

	// Connect from ini once the agent listens.
	var a *probe.AgentClient
	var h *probe.AgentHello
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(100 * time.Millisecond) {
		err = l.Do("ini", func() error {
			var err error
			a, err = probe.DialAgent(ctx, addr, keyBytes)
			return err
		})
		if err == nil {
			if h, err = a.Hello(ctx); err == nil {
				break
			}
			a.Close()
		}
		if time.Now().After(deadline) {
			t.Fatalf("agent in rsp not answering: %v\n%s", err, proc.Output())
		}
	}
	defer a.Close()
	if h.Peer.Addr() != ini || h.Local.Addr() != rsp || !h.Capture || !h.Sender || h.Pace != 200 {
		t.Fatalf("Hello %+v", h)
	}
	if err := a.StartObserving(ctx); err != nil {
		t.Fatal(err)
	}
	var snd *probe.Sender
	var back *probe.Observer
	if err := l.Do("ini", func() error {
		var err error
		if snd, err = probe.OpenSender(probe.SenderConfig{}); err != nil {
			return err
		}
		back, err = probe.Observe(context.Background(), probe.ObserverConfig{Peer: rsp})
		return err
	}); err != nil {
		t.Fatal(err)
	}
	defer snd.Close()
	defer back.Close()
	nonces, err := probe.NewNonces(4)
	if err != nil {
		t.Fatal(err)
	}
	var pk probe.Packets
	ipid := map[probe.ID]uint16{}
	for i, id := range []probe.ID{probe.ESP, probe.ESPFrag} {
		if err := probe.Build(id, probe.BuildParams{Src: ini, Dst: rsp, Nonce: nonces[i]}, &pk); err != nil {
			t.Fatal(err)
		}
		ipid[id] = pk.IPID
		if err := snd.Send(ctx, &pk); err != nil {
			t.Fatal(err)
		}
	}
	// offsets returns the fragment offsets per IP ID from src in seen.
	offsets := func(seen []probe.Seen, src netip.Addr) map[uint16][]int {
		m := map[uint16][]int{}
		for _, s := range seen {
			if s.Src == src && s.Proto == 50 {
				m[s.IPID] = append(m[s.IPID], s.Offset)
			}
		}
		return m
	}
	time.Sleep(300 * time.Millisecond) // the second and third fragments would be here by now
	rep, err := a.Report(ctx)
	if err != nil {
		t.Fatal(err)
	}
	got := offsets(rep.Seen, ini)
	if fmt.Sprint(got[ipid[probe.ESP]]) != "[0]" || fmt.Sprint(got[ipid[probe.ESPFrag]]) != "[0]" {
		t.Fatalf("agent saw offsets %v: want esp [0] and esp-frag only its first fragment [0]", got)
	}
	t0 := time.Now()
	res, err := a.SendReverse(ctx, []probe.ReverseProbe{{ID: probe.ESP, Nonce: nonces[2]}, {ID: probe.ESPFrag, Nonce: nonces[3]}}, 0)
	if err != nil {
		t.Fatal(err)
	}
	if res[0].Packets != 1 || res[1].Packets < 3 || res[0].Error != "" || res[1].Error != "" {
		t.Fatalf("reverse results %+v", res)
	}
	time.Sleep(300 * time.Millisecond)
	rgot := offsets(back.Since(t0), rsp)
	if fmt.Sprint(rgot[uint16(nonces[2])]) != "[0]" || fmt.Sprint(rgot[uint16(nonces[3])]) != "[0]" {
		t.Fatalf("ini saw reverse offsets %v: want esp [0] and esp-frag [0] only", rgot)
	}
	if err := a.Stop(ctx); err != nil {
		t.Fatal(err)
	}
	if err := proc.Stop(); err != nil {
		t.Logf("stop: %v", err)
	}
	out := string(proc.Output())
	if !strings.Contains(out, "responder: session "+h.Session+" from "+ini.String()) || !strings.Contains(out, "responder: stopped") {
		t.Fatalf("responder log:\n%s", out)
	}
	t.Logf("responder log:\n%s", out)
}
