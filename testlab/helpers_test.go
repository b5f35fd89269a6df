package testlab

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"
)

// These helpers drive plain tools (ping, tcpdump, nc, hping3, nft) inside a lab, so the
// tests prove each fault independently of ipsecpath's own code.

func testCtx(t *testing.T, d time.Duration) context.Context {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	return ctx
}

// capture is a tcpdump running in a node, printing one line per packet.
type capture struct {
	t    *testing.T
	p    *Proc
	desc string
}

// startCapture starts tcpdump on node/iface with a BPF filter and waits until it listens.
func startCapture(t *testing.T, l *Lab, node, iface, filter string) *capture {
	t.Helper()
	ctx := testCtx(t, 60*time.Second)
	argv := []string{"tcpdump", "-Z", "root", "--immediate-mode", "-l", "-nn", "-i", iface}
	if filter != "" {
		argv = append(argv, filter)
	}
	p, err := l.Start(ctx, node, argv...)
	if err != nil {
		t.Fatalf("start tcpdump in %s: %v", node, err)
	}
	t.Cleanup(func() { _ = p.Stop() })
	deadline := time.Now().Add(10 * time.Second)
	for !strings.Contains(string(p.Output()), "listening on") {
		if time.Now().After(deadline) {
			t.Fatalf("tcpdump in %s/%s not listening: %s", node, iface, p.Output())
		}
		time.Sleep(20 * time.Millisecond)
	}
	return &capture{t: t, p: p, desc: node + "/" + iface + " [" + filter + "]"}
}

// stop ends the capture and returns the packet lines.
func (c *capture) stop() []string {
	time.Sleep(200 * time.Millisecond) // last packets in flight
	_ = c.p.Stop()
	var pk []string
	for _, line := range strings.Split(string(c.p.Output()), "\n") {
		if strings.Contains(line, " IP ") {
			pk = append(pk, line)
		}
	}
	c.t.Logf("capture %s: %d packets", c.desc, len(pk))
	return pk
}

// count is stop, counting packets.
func (c *capture) count() int { return len(c.stop()) }

// ping runs iputils ping in node and reports whether any reply came back, with the output.
func ping(t *testing.T, l *Lab, node, dst string, args ...string) (bool, string) {
	t.Helper()
	ctx := testCtx(t, 20*time.Second)
	argv := append([]string{"ping", "-n", "-c", "2", "-i", "0.2", "-W", "1"}, args...)
	argv = append(argv, dst)
	out, err := l.Exec(ctx, node, argv...)
	return err == nil && strings.Contains(string(out), " received") && !strings.Contains(string(out), " 0 received"), string(out)
}

func mustPing(t *testing.T, l *Lab, node, dst string, args ...string) {
	t.Helper()
	if ok, out := ping(t, l, node, dst, args...); !ok {
		t.Fatalf("ping %s → %s %v should pass:\n%s", node, dst, args, out)
	}
}

func mustNotPing(t *testing.T, l *Lab, node, dst string, args ...string) string {
	t.Helper()
	ok, out := ping(t, l, node, dst, args...)
	if ok {
		t.Fatalf("ping %s → %s %v should fail:\n%s", node, dst, args, out)
	}
	return out
}

// mustExec runs a command in node and fails the test on error.
func mustExec(t *testing.T, l *Lab, node string, argv ...string) string {
	t.Helper()
	out, err := l.Exec(testCtx(t, 30*time.Second), node, argv...)
	if err != nil {
		t.Fatalf("%s: %v\n%s", node, err, out)
	}
	return string(out)
}

// tcpListen starts an nc TCP listener on rsp's port.
func tcpListen(t *testing.T, l *Lab, node string, port int) {
	t.Helper()
	p, err := l.Start(testCtx(t, 60*time.Second), node, "nc", "-k", "-l", "-n", fmt.Sprint(port))
	if err != nil {
		t.Fatalf("nc listener: %v", err)
	}
	t.Cleanup(func() { _ = p.Stop() })
	deadline := time.Now().Add(5 * time.Second)
	for {
		out, _ := l.Exec(testCtx(t, 5*time.Second), node, "ss", "-Hltn", fmt.Sprintf("sport = :%d", port))
		if strings.Contains(string(out), "LISTEN") {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("nc on %s:%d not listening", node, port)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// tcpConnect tries a TCP connection with nc -z and returns nc's result and output.
func tcpConnect(t *testing.T, l *Lab, node, dst string, port int) (bool, string) {
	t.Helper()
	out, err := l.Exec(testCtx(t, 10*time.Second), node, "nc", "-z", "-v", "-n", "-w", "2", dst, fmt.Sprint(port))
	return err == nil, string(out)
}

// nftCounter sums the packet counters of the rules in node's ipsecpath table.
func nftCounter(t *testing.T, l *Lab, node string) int {
	t.Helper()
	out := mustExec(t, l, node, "nft", "list", "table", "ip", "ipsecpath")
	n := 0
	for _, line := range strings.Split(out, "\n") {
		f := strings.Fields(line)
		for i := 0; i+1 < len(f); i++ {
			if f[i] == "packets" {
				var v int
				fmt.Sscan(f[i+1], &v)
				n += v
			}
		}
	}
	return n
}
