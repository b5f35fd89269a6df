package main

import (
	"bytes"
	"context"
	"errors"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/ipsecpath/ipsecpath/testlab"
	"github.com/vishvananda/netlink"
)

// TestOutputPathRefusedBeforeRun is issue 9 item 9 at the command line: an --out or --pcap
// path that is a symbolic link, a named pipe, a device node or a directory, or whose
// directory takes no file (/proc), is refused in one line, exit 2, before any probe: nothing
// on stdout (a run prints its report there first) and what is at the path is untouched.
// The target is loopback, so a build that lets the run go ahead probes nothing else.
func TestOutputPathRefusedBeforeRun(t *testing.T) {
	dir := t.TempDir()
	_, link, fifo := testlab.UnsafeFiles(t, dir, ".json", []byte("keep me"))
	type bad struct{ name, path, want string }
	bads := []bad{
		{"symlink", link, "is a symbolic link"},
		{"named pipe", fifo, "is a named pipe"},
		{"directory", dir, "is a directory"},
		{"procfs", "/proc/x.json", "cannot create a file in directory /proc"},
		{"empty", "", "is empty"},
	}
	if os.Geteuid() == 0 {
		null := testlab.NullDevice(t, filepath.Join(dir, "null.json")) // our own node with /dev/null's numbers
		bads = append(bads, bad{"character device", null, "is a character device"})
	}
	before := testlab.SnapshotDir(t, dir)
	for _, cmd := range []string{"check", "ike"} {
		flags := []string{"--out"}
		if cmd == "check" {
			flags = append(flags, "--pcap")
		}
		for _, flag := range flags {
			for _, b := range bads {
				t.Run(cmd+" "+flag+" "+b.name, func(t *testing.T) {
					code, out, errs := runCLI(t, cmd, "127.0.0.1", "--timeout", "1s", flag, b.path)
					oneLine(t, code, out, errs, flag)
					if !strings.Contains(errs, b.want) {
						t.Errorf("stderr %q lacks %q", errs, b.want)
					}
				})
			}
		}
	}
	t.Run("check --pcap same as --out", func(t *testing.T) {
		p := filepath.Join(dir, "same.json")
		code, out, errs := runCLI(t, "check", "127.0.0.1", "--out", p, "--pcap", p)
		oneLine(t, code, out, errs, "--pcap and --out both name")
	})
	if after := testlab.SnapshotDir(t, dir); after != before {
		t.Errorf("the directory changed:\nbefore %s\nafter  %s", before, after)
	}
}

// TestSmallGaps is issue 9 item 14: input that used to be taken silently for something
// else is refused in one line, exit 2, before anything runs. The targets are loopback.
func TestSmallGaps(t *testing.T) {
	dir := t.TempDir()
	for _, c := range []struct {
		name string
		args []string
		want string
	}{
		{"check timeout 1ns", []string{"check", "127.0.0.1", "--timeout", "1ns"}, "--timeout 1ns: want 100ms to 1m0s"},
		{"check timeout 50ms", []string{"check", "127.0.0.1", "--timeout", "50ms"}, "--timeout 50ms: want 100ms"},
		{"check timeout 2m", []string{"check", "127.0.0.1", "--timeout", "2m"}, "--timeout 2m0s: want 100ms to 1m0s"},
		{"pmtu timeout 1ns", []string{"pmtu", "127.0.0.1", "--timeout", "1ns"}, "--timeout 1ns: want 10ms to 1m"},
		{"ike timeout 1ns", []string{"ike", "127.0.0.1", "--timeout", "1ns"}, "--timeout 1ns: want 10ms to 5m"},
		{"check probes empty", []string{"check", "127.0.0.1", "--probes", ""}, "--probes: empty list"},
		{"check probes blank", []string{"check", "127.0.0.1", "--probes", " "}, "--probes: empty list"},
		{"check probes commas", []string{"check", "127.0.0.1", "--probes", ",,"}, "no probes"},
		{"check tcp empty", []string{"check", "127.0.0.1", "--tcp", ""}, "--tcp: no TCP port"},
		{"ike proposals empty", []string{"ike", "127.0.0.1", "--proposals", ""}, "--proposals is empty"},
		{"lab up name empty", []string{"lab", "up", "--name", ""}, "the lab name is empty"},
		{"lab up name bad", []string{"lab", "up", "--name", "Bad_Name"}, `bad lab name "Bad_Name"`},
		{"lab exec name empty", []string{"lab", "exec", "--name", "", "ini", "--", "true"}, "the lab name is empty"},
		{"lab show name empty", []string{"lab", "show", "--name", ""}, "the lab name is empty"},
		{"lab demo name empty", []string{"lab", "demo", "--name", ""}, "the lab name is empty"},
		{"lab down name empty", []string{"lab", "down", ""}, "the lab name is empty"},
		{"diff empty names", []string{"diff", "", filepath.Join(dir, "x.json")}, "empty file name"},
	} {
		t.Run(c.name, func(t *testing.T) {
			if c.args[0] == "lab" && (c.args[1] == "up" || c.args[1] == "demo") {
				// A build that takes '' for "default" would build that lab: take it down.
				_, statErr := os.Stat(filepath.Join(testlab.StateRoot, "default"))
				t.Cleanup(func() {
					if _, err := os.Stat(filepath.Join(testlab.StateRoot, "default")); err == nil && statErr != nil {
						testlab.Down(context.Background(), "default")
					}
				})
			}
			code, out, errs := runCLI(t, c.args...)
			oneLine(t, code, out, errs, c.want)
		})
	}
}

// TestDirectedBroadcastRefused is issue 9 item 14: x.y.z.255 on a locally attached /24 went
// out as a probe while 255.255.255.255 was refused. A scratch namespace holds 192.0.2.1/24
// on its (down) loopback and nothing else; check, ike and pmtu refuse 192.0.2.255 there.
// (Its route-less check also shows a prefix said once, another case of item 14.)
func TestDirectedBroadcastRefused(t *testing.T) {
	inNewNetns(t, func() {
		lo, err := netlink.LinkByName("lo")
		if err != nil {
			t.Errorf("lo: %v", err)
			return
		}
		a, err := netlink.ParseAddr("192.0.2.1/24")
		if err != nil {
			t.Errorf("addr: %v", err)
			return
		}
		if err := netlink.AddrAdd(lo, a); err != nil {
			t.Errorf("ip addr add 192.0.2.1/24 dev lo: %v", err)
			return
		}
		for _, cmd := range []string{"check", "ike", "pmtu"} {
			code, out, errs := runCLI(t, cmd, "192.0.2.255", "--timeout", "1s")
			oneLine(t, code, out, errs, "broadcast address of lo's subnet")
		}
		// and an address without a route says so once ("no route to X: probe: no route to X")
		code, out, errs := runCLI(t, "check", "198.51.100.1", "--timeout", "1s")
		oneLine(t, code, out, errs, "no route to 198.51.100.1")
		if n := strings.Count(errs, "no route to"); n != 1 {
			t.Errorf("stderr says \"no route to\" %d times: %q", n, errs)
		}
	})
}

// TestAgentErrorSaysAgentOnce is issue 9 item 14: "agent X: agent X: hello: …". An agent
// that answers with junk gives one line that names it once.
func TestAgentErrorSaysAgentOnce(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		for {
			c, err := ln.Accept()
			if errors.Is(err, net.ErrClosed) || err != nil {
				return
			}
			c.Write([]byte{0xff, 0xff, 0xff, 0xff}) // a frame length no agent sends
			c.Close()
		}
	}()
	key := writeKey(t, t.TempDir(), "key", bytes.Repeat([]byte{7}, 32), 0o600)
	addr := ln.Addr().String()
	code, out, errs := runCLI(t, "check", "127.0.0.1", "--agent", addr, "--key-file", key, "--timeout", "1s")
	oneLine(t, code, out, errs, "agent "+addr+": hello")
	if n := strings.Count(errs, "agent "+addr); n != 1 {
		t.Errorf("stderr names the agent %d times, want once: %q", n, errs)
	}
}

// TestKeyFilePipeRefusedPromptly is issue 9 item 10 at the command line: a named pipe as
// --key-file hung responder, check and pmtu in open(2), deaf to SIGINT. It is refused in
// one line, exit 2, at once.
func TestKeyFilePipeRefusedPromptly(t *testing.T) {
	fifo := testlab.Mkfifo(t, filepath.Join(t.TempDir(), "key"))
	for _, args := range [][]string{
		{"responder", "--listen", "127.0.0.1:17500", "--key-file", fifo},
		{"check", "127.0.0.1", "--agent", "127.0.0.1:7500", "--key-file", fifo},
		{"pmtu", "127.0.0.1", "--agent", "127.0.0.1:7500", "--key-file", fifo},
	} {
		type res struct {
			code     int
			out, err string
		}
		done := make(chan res, 1)
		go func() {
			code, out, errs := runCLI(t, args...)
			done <- res{code, out, errs}
		}()
		select {
		case r := <-done:
			oneLine(t, r.code, r.out, r.err, "is not a regular file (a named pipe)")
		case <-time.After(10 * time.Second):
			// release the blocked open(2) so the test binary can end
			testlab.ReleaseFifo(fifo)
			t.Errorf("%s: still blocked on the key file after 10 s", args[0])
			<-done
		}
	}
}
