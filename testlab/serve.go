package testlab

import (
	"context"
	"net"
	"strings"
	"sync"
	"time"
)

// Server is a TCP server with the shape of probe.Responder (the far-end agent): Serve accepts
// on ln until ctx ends and then returns nil; Close releases what the server holds. testlab
// does not import probe (probe's own tests import testlab), so it takes this instead.
type Server interface {
	Serve(ctx context.Context, ln net.Listener) error
	Close() error
}

// ServeStopTimeout bounds how long stopping a server started by Serve waits for Serve to
// return before the test fails (a server that ignores its context).
const ServeStopTimeout = 10 * time.Second

// Serve runs srv on ln in a goroutine until the test ends, or until the stop it returns is
// called (a test can take the server away mid-run). Stopping cancels Serve's context, waits
// for it (failing the test if it returns an error or takes longer than ServeStopTimeout),
// then closes srv; the test's cleanup stops it if the test did not, so nothing outlives the
// test, also when it fails. stop may be called more than once.
func Serve(t TB, srv Server, ln net.Listener) (stop func()) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- srv.Serve(ctx, ln) }()
	var once sync.Once
	stop = func() {
		once.Do(func() {
			cancel()
			select {
			case err := <-done:
				if err != nil {
					t.Errorf("testlab: Serve: %v", err)
				}
			case <-time.After(ServeStopTimeout):
				t.Errorf("testlab: Serve did not return within %s of cancel", ServeStopTimeout)
			}
			if err := srv.Close(); err != nil {
				t.Errorf("testlab: close server: %v", err)
			}
		})
	}
	t.Cleanup(stop)
	return stop
}

// ServeIn listens on addr (TCP, HOST:PORT) inside node and makes the server there with
// newServer, so that every socket either opens lives in node's namespace (the agent's raw
// capture and sender), then runs it as Serve does until the test ends or stop is called.
// A failure to listen or to make the server fails the test, and closes the listener.
func (l *Lab) ServeIn(t TB, node, addr string, newServer func() (Server, error)) (stop func()) {
	t.Helper()
	var srv Server
	ln := DoIn(t, l, node, "server on "+addr, func() (ln net.Listener, err error) {
		if ln, err = net.Listen("tcp", addr); err != nil {
			return nil, err
		}
		if srv, err = newServer(); err != nil {
			ln.Close()
		}
		return ln, err
	})
	return Serve(t, srv, ln)
}

// DoIn runs fn inside node (Lab.Do) and returns its result; an error, fn's or entering the
// node's, fails the test with what ("check", "listen on tcp4 ...") and the node named.
func DoIn[T any](t TB, l *Lab, node, what string, fn func() (T, error)) T {
	t.Helper()
	var v T
	if err := l.Do(node, func() (err error) { v, err = fn(); return err }); err != nil {
		t.Fatalf("%s in %s: %v", what, node, err)
	}
	return v
}

// ListenIn listens on addr (network "tcp", "tcp4"...) inside node, failing the test if it
// cannot; the listener is closed when the test ends (closing it earlier is fine).
func (l *Lab) ListenIn(t TB, node, network, addr string) net.Listener {
	t.Helper()
	ln := DoIn(t, l, node, "listen on "+network+" "+addr, func() (net.Listener, error) { return net.Listen(network, addr) })
	t.Cleanup(func() { ln.Close() })
	return ln
}

// ListenPacketIn opens a packet socket on addr (network "udp4"...) inside node, failing the
// test if it cannot (a port some other test holds); it is closed when the test ends.
func (l *Lab) ListenPacketIn(t TB, node, network, addr string) net.PacketConn {
	t.Helper()
	c := DoIn(t, l, node, "listen on "+network+" "+addr, func() (net.PacketConn, error) { return net.ListenPacket(network, addr) })
	t.Cleanup(func() { c.Close() })
	return c
}

// NftIn loads an nftables ruleset (nft -f -) inside node, failing the test if nft refuses
// it. Rules loaded in a lab node go with the node's namespace.
func (l *Lab) NftIn(t TB, node, ruleset string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if out, err := l.ExecInput(ctx, node, strings.NewReader(ruleset), "nft", "-f", "-"); err != nil {
		t.Fatalf("testlab: nft in %s: %v: %s", node, err, out)
	}
}

// ExecIn runs argv inside node (Lab.Exec, 20 s at most) and returns its output; a command
// that fails fails the test, with its output.
func (l *Lab) ExecIn(t TB, node string, argv ...string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	out, err := l.Exec(ctx, node, argv...)
	if err != nil {
		t.Fatalf("%s: %s: %v: %s", node, strings.Join(argv, " "), err, out)
	}
	return string(out)
}
