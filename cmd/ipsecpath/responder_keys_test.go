package main

import (
	"bytes"
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/ipsecpath/ipsecpath/probe"
	"github.com/ipsecpath/ipsecpath/testlab"
)

// syncBuf is a bytes.Buffer safe for the writer goroutine of exec and the test.
type syncBuf struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuf) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuf) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// TestResponderKeyRotation runs `responder --key-file agent.key --key-file agent.key.next`
// (the second absent, as in examples/ipsecpath-responder.service) and rotates its key the
// documented way with SIGHUP: the new key works once written and reloaded, the old one
// stops working for new sessions once replaced, and a session opened with the old key at
// the start is still answered after both reloads. A reload that fails (a key file made
// group-readable) keeps the keys in use and says so.
func TestResponderKeyRotation(t *testing.T) {
	testlab.RequireRoot(t) // raw sockets of the agent (it only listens on loopback here)
	dir := t.TempDir()
	oldKey, newKey := bytes.Repeat([]byte{0x11}, 32), bytes.Repeat([]byte{0x22}, 32)
	cur := writeKey(t, dir, "agent.key", oldKey, 0o600)
	next := filepath.Join(dir, "agent.key.next")
	addr := freePort(t)
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	cmd := helperCmd(t, exe, "responder", "--listen", addr, "--key-file", cur, "--key-file", next)
	var logb syncBuf
	cmd.Stderr = &logb
	startProc(t, cmd)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	hello := func(key []byte) (*probe.AgentClient, error) {
		c, err := probe.DialAgent(ctx, addr, key)
		if err != nil {
			return nil, err
		}
		_, err = c.Hello(ctx)
		return c, err
	}
	var early *probe.AgentClient
	for deadline := time.Now().Add(15 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		if early, err = hello(oldKey); err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the agent did not answer: %v; log:\n%s", err, logb.String())
		}
	}
	defer early.Close()
	hup := func(want string) {
		t.Helper()
		n := strings.Count(logb.String(), "SIGHUP")
		if err := cmd.Process.Signal(syscall.SIGHUP); err != nil {
			t.Fatal(err)
		}
		for deadline := time.Now().Add(10 * time.Second); strings.Count(logb.String(), "SIGHUP") == n; time.Sleep(20 * time.Millisecond) {
			if time.Now().After(deadline) {
				t.Fatalf("no log line after SIGHUP:\n%s", logb.String())
			}
		}
		if !strings.Contains(logb.String(), want) {
			t.Errorf("after SIGHUP the log lacks %q:\n%s", want, logb.String())
		}
	}
	if c, err := hello(newKey); !errors.Is(err, probe.ErrAgentRejected) {
		t.Errorf("new key before it was written: %v, want ErrAgentRejected", err)
	} else if c != nil {
		c.Close()
	}
	// 2. the new key is written and reloaded: both work
	writeKey(t, dir, "agent.key.next", newKey, 0o600)
	hup("reloaded 2 key(s)")
	for name, k := range map[string][]byte{"old": oldKey, "new": newKey} {
		if c, err := hello(k); err != nil {
			t.Errorf("%s key during the rotation: %v", name, err)
		} else {
			c.Close()
		}
	}
	// 4. the new key replaces the old: only it works for new sessions
	if err := os.Rename(next, cur); err != nil {
		t.Fatal(err)
	}
	hup("reloaded 1 key(s) for new sessions (absent: " + next + ")")
	if c, err := hello(oldKey); !errors.Is(err, probe.ErrAgentRejected) {
		t.Errorf("old key after the rotation: %v, want ErrAgentRejected", err)
	} else if c != nil {
		c.Close()
	}
	if c, err := hello(newKey); err != nil {
		t.Errorf("new key after the rotation: %v", err)
	} else {
		c.Close()
	}
	// A broken key file on reload keeps the keys in use.
	if err := os.Chmod(cur, 0o644); err != nil {
		t.Fatal(err)
	}
	hup("key reload failed, the keys in use stay")
	if c, err := hello(newKey); err != nil {
		t.Errorf("new key after a failed reload: %v", err)
	} else {
		c.Close()
	}
	// The session opened with the old key at the start was never dropped.
	if _, err := early.Hello(ctx); err != nil {
		t.Errorf("the early session (old key) after the reloads: %v", err)
	}
}

// TestResponderUnitFile: examples/ipsecpath-responder.service passes `systemd-analyze
// verify` (with ExecStart pointing at an existing binary), runs the agent with both key
// slots, unprivileged with CAP_NET_RAW alone, read-only file system and no home, and reloads
// with SIGHUP.
func TestResponderUnitFile(t *testing.T) {
	b, err := os.ReadFile(filepath.Join("..", "..", "examples", "ipsecpath-responder.service"))
	if err != nil {
		t.Fatal(err)
	}
	unit := string(b)
	for _, want := range []string{
		"ExecStart=/usr/local/bin/ipsecpath responder --listen :7500 --key-file /etc/ipsecpath/agent.key --key-file /etc/ipsecpath/agent.key.next\n",
		"ExecReload=/bin/kill -HUP $MAINPID\n", "User=ipsecpath\n", "CapabilityBoundingSet=CAP_NET_RAW\n",
		"AmbientCapabilities=CAP_NET_RAW\n", "NoNewPrivileges=yes\n", "ProtectSystem=strict\n", "ProtectHome=yes\n",
	} {
		if !strings.Contains(unit, want) {
			t.Errorf("unit lacks %q", want)
		}
	}
	testlab.RequireTools(t, "systemd-analyze")
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "ipsecpath-responder.service")
	os.WriteFile(path, []byte(strings.ReplaceAll(unit, "/usr/local/bin/ipsecpath", exe)), 0o644)
	if out, err := exec.Command("systemd-analyze", "verify", path).CombinedOutput(); err != nil || len(bytes.TrimSpace(out)) > 0 {
		t.Errorf("systemd-analyze verify: %v\n%s", err, out)
	}
}
