package main

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/ipsecpath/ipsecpath/testlab"
)

// buildBinary builds ipsecpath into a directory anyone can read (the not-root case runs it
// as nobody).
func buildBinary(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	for _, d := range []string{dir, filepath.Dir(dir)} { // t.TempDir's parent is 0700 too
		if err := os.Chmod(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	bin := filepath.Join(dir, "ipsecpath")
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	out, err := exec.CommandContext(ctx, "go", "build", "-o", bin, ".").CombinedOutput()
	if err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	return bin
}

type result struct {
	code           int
	stdout, stderr string
}

func runBin(t *testing.T, bin string, mod func(*exec.Cmd), args ...string) result {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, args...)
	var o, e bytes.Buffer
	cmd.Stdout, cmd.Stderr = &o, &e
	if mod != nil {
		mod(cmd)
	}
	err := cmd.Run()
	code := 0
	if ee, ok := err.(*exec.ExitError); ok {
		code = ee.ExitCode()
	} else if err != nil {
		t.Fatalf("run %v: %v", args, err)
	}
	return result{code, o.String(), e.String()}
}

// oneLineExit2 checks the contract for bad input: exit 2 and exactly one line on stderr.
func oneLineExit2(t *testing.T, what string, r result, want string) {
	t.Helper()
	lines := strings.Split(strings.TrimRight(r.stderr, "\n"), "\n")
	if r.code != exitUsage || len(lines) != 1 || !strings.Contains(r.stderr, want) {
		t.Errorf("%s: exit %d, stderr %q; want exit 2 and one line containing %q", what, r.code, r.stderr, want)
	}
}

func assertNoLab(t *testing.T, name string) {
	t.Helper()
	out, _ := exec.Command("ip", "netns", "list").CombinedOutput()
	if strings.Contains(string(out), "ipl-"+name+"-") {
		t.Errorf("namespaces of %s left:\n%s", name, out)
	}
	if _, err := os.Stat(filepath.Join(testlab.StateRoot, name)); !os.IsNotExist(err) {
		t.Errorf("state of %s left (%v)", name, err)
	}
}

// labCLITest prepares a test of the `lab` subcommands run as their own processes: it needs
// root, go, ip, nft and swanctl, runs in parallel, and returns the built binary and a lab
// name (prefix and our pid), which is torn down when the test ends whatever happened.
func labCLITest(t *testing.T, prefix string) (bin, name string) {
	t.Helper()
	testlab.RequireRoot(t)
	testlab.RequireTools(t, "go", "ip", "nft", "swanctl")
	t.Parallel()
	bin = buildBinary(t)
	name = prefix + strconv.Itoa(os.Getpid())
	t.Cleanup(func() { _ = testlab.Down(context.Background(), name) })
	return bin, name
}

// labDownCLI runs `lab down NAME`, which must succeed and leave nothing of the lab.
func labDownCLI(t *testing.T, bin, name string) {
	t.Helper()
	if r := runBin(t, bin, nil, "lab", "down", name); r.code != 0 {
		t.Fatalf("lab down: %+v", r)
	}
	assertNoLab(t, name)
}

func TestLabProfilesList(t *testing.T) {
	var o, e bytes.Buffer
	if code := run(context.Background(), []string{"lab", "profiles"}, &o, &e); code != exitOK {
		t.Fatalf("exit %d: %s", code, e.String())
	}
	lines := strings.Split(strings.TrimSpace(o.String()), "\n")
	if len(lines) != len(testlab.Profiles()) || len(lines) != 21 {
		t.Fatalf("want 21 profiles, got %d:\n%s", len(lines), o.String())
	}
	for i, p := range testlab.ProfileNames() {
		if f := strings.Fields(lines[i]); f[0] != p || len(f) < 4 {
			t.Errorf("line %d: %q, want profile %s with a summary", i, lines[i], p)
		}
	}
	code := run(context.Background(), []string{"lab", "up", "--profile", "bogus"}, &o, &e)
	if code != exitUsage || !strings.Contains(e.String(), `unknown profile "bogus"`) {
		t.Errorf("unknown profile: exit %d, %q", code, e.String())
	}
}

func TestLabCLIBadInput(t *testing.T) {
	bin, name := labCLITest(t, "cbad-")
	oneLineExit2(t, "unknown profile", runBin(t, bin, nil, "lab", "up", "--name", name, "--profile", "nope"), `unknown profile "nope"`)
	assertNoLab(t, name)
	oneLineExit2(t, "bad name", runBin(t, bin, nil, "lab", "up", "--name", "Bad/Name"), "bad lab name")
	oneLineExit2(t, "unknown subcommand", runBin(t, bin, nil, "lab", "sideways"), "unknown subcommand")
	oneLineExit2(t, "down of no lab", runBin(t, bin, nil, "lab", "down", name), "no such lab")
	nobody := func(c *exec.Cmd) {
		c.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: 65534, Gid: 65534}}
	}
	oneLineExit2(t, "not root", runBin(t, bin, nobody, "lab", "up", "--name", name), "needs root")
	assertNoLab(t, name)
	// strongSwan missing: a PATH with ip, nft and prlimit but no swanctl.
	pathDir := t.TempDir()
	for _, tool := range []string{"ip", "nft", "prlimit", "sh"} {
		p, err := exec.LookPath(tool)
		if err != nil {
			t.Fatal(err)
		}
		if err := os.Symlink(p, filepath.Join(pathDir, tool)); err != nil {
			t.Fatal(err)
		}
	}
	noSwan := func(c *exec.Cmd) { c.Env = append(os.Environ(), "PATH="+pathDir) }
	oneLineExit2(t, "strongSwan missing", runBin(t, bin, noSwan, "lab", "up", "--name", name), "swanctl not found")
	assertNoLab(t, name)
	// A name that clashes with a running lab: refused, the running lab untouched.
	if r := runBin(t, bin, nil, "lab", "up", "--name", name, "--no-gateways"); r.code != 0 {
		t.Fatalf("lab up: %+v", r)
	}
	oneLineExit2(t, "clash", runBin(t, bin, nil, "lab", "up", "--name", name, "--no-gateways"), "already exists")
	if r := runBin(t, bin, nil, "lab", "exec", "--name", name, "ini", "--", "ping", "-c", "1", "-W", "2", "203.0.113.10"); r.code != 0 {
		t.Errorf("the running lab broke after the clash: %+v", r)
	}
	oneLineExit2(t, "unknown node", runBin(t, bin, nil, "lab", "exec", "--name", name, "r9", "--", "true"), `unknown node "r9"`)
	labDownCLI(t, bin, name)
}

func TestLabCLIRoundTrip(t *testing.T) {
	bin, name := labCLITest(t, "crt-")
	r := runBin(t, bin, nil, "lab", "up", "--name", name, "--profile", "mtu1400")
	if r.code != 0 || !strings.Contains(r.stdout, "up in") || !strings.Contains(r.stdout, "tunnel lan-a ↔ lan-b: established") {
		t.Fatalf("lab up: %+v", r)
	}
	t.Logf("lab up said: %s", r.stdout[strings.Index(r.stdout, "lab "+name+" up in"):])
	if r := runBin(t, bin, nil, "lab", "status"); !strings.Contains(r.stdout, name) || !strings.Contains(r.stdout, "established") {
		t.Errorf("lab status: %+v", r)
	}
	if r := runBin(t, bin, nil, "lab", "show", "--name", name); !strings.Contains(r.stdout, "== r1") || !strings.Contains(r.stdout, "link east0 mtu 1400") {
		t.Errorf("lab show: %+v", r)
	}
	if r := runBin(t, bin, nil, "lab", "exec", "--name", name, "lan-a", "--", "ping", "-c", "1", "-W", "2", "192.0.2.130"); r.code != 0 {
		t.Errorf("lab exec ping through the tunnel: %+v", r)
	}
	if r := runBin(t, bin, nil, "lab", "exec", "--name", name, "ini", "--", "sh", "-c", "exit 7"); r.code != 7 {
		t.Errorf("lab exec should pass the exit code through: %+v", r)
	}
	labDownCLI(t, bin, name)
}

// TestLabCLISigkillMidUp: SIGKILL `lab up` while it builds, then `lab down` removes every
// namespace and process it had made.
func TestLabCLISigkillMidUp(t *testing.T) {
	bin, name := labCLITest(t, "ckill-")
	dir := filepath.Join(testlab.StateRoot, name)
	var pids []int
	for attempt := 1; ; attempt++ {
		// udp500-drop keeps Up busy for seconds after both charons started.
		cmd := exec.Command(bin, "lab", "up", "--name", name, "--profile", "udp500-drop")
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		deadline := time.Now().Add(30 * time.Second)
		for {
			b, _ := os.ReadFile(filepath.Join(dir, "procs"))
			if strings.Count(string(b), "\n") >= 2 {
				pids = nil
				for _, line := range strings.Split(strings.TrimSpace(string(b)), "\n") {
					p, _ := strconv.Atoi(strings.Fields(line)[0])
					pids = append(pids, p)
				}
				break
			}
			if time.Now().After(deadline) {
				_ = cmd.Process.Kill()
				t.Fatalf("lab up never started its charons")
			}
			time.Sleep(5 * time.Millisecond)
		}
		_ = cmd.Process.Signal(syscall.SIGKILL)
		_ = cmd.Wait()
		var st struct{ Ready bool }
		b, _ := os.ReadFile(filepath.Join(dir, "state.json"))
		_ = json.Unmarshal(b, &st)
		if !st.Ready {
			break
		}
		if attempt == 3 {
			t.Fatal("could not kill lab up before it finished, 3 times")
		}
		if r := runBin(t, bin, nil, "lab", "down", name); r.code != 0 {
			t.Fatalf("lab down: %+v", r)
		}
	}
	for _, p := range pids {
		if syscall.Kill(p, 0) != nil {
			t.Errorf("charon %d should outlive the killed builder", p)
		}
	}
	if r := runBin(t, bin, nil, "lab", "status"); !strings.Contains(r.stdout, "incomplete") {
		t.Errorf("lab status should flag the half-built lab: %+v", r)
	}
	oneLineExit2(t, "up over a half-built lab", runBin(t, bin, nil, "lab", "up", "--name", name), "already exists")
	labDownCLI(t, bin, name)
	for _, p := range pids {
		if b, err := os.ReadFile("/proc/" + strconv.Itoa(p) + "/stat"); err == nil && !strings.Contains(string(b), ") Z ") {
			t.Errorf("process %d still running after lab down: %s", p, b)
		}
	}
}
