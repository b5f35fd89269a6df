//go:build linux

package probe

import (
	"errors"
	"fmt"
	"net"
	"runtime"

	"github.com/vishvananda/netns"
)

// quietProtocols are the IP protocols the agent holds raw sockets for while it runs: this
// kernel has no ESP/AH handler and would answer every ESP or AH probe with an ICMP
// "protocol unreachable" that the initiator might take for a filter's answer.
var quietProtocols = []int{50, 51}

// openRaw opens, in the current network namespace, the raw sockets the agent holds: the
// ESP/AH drains, the capture and the sender, and remembers the namespace so per-session
// captures open there too, whatever thread the session runs on.
func (r *Responder) openRaw() error {
	for _, proto := range quietProtocols {
		c, err := net.ListenPacket(fmt.Sprintf("ip4:%d", proto), "0.0.0.0")
		if err != nil {
			return rawError(fmt.Sprintf("open raw socket for IP protocol %d", proto), err)
		}
		go drainRaw(c)
		r.closers = append(r.closers, c.Close)
	}
	ns, err := netns.Get()
	if err != nil {
		return fmt.Errorf("responder: current network namespace: %w", err)
	}
	r.closers = append(r.closers, ns.Close)
	r.ns = ns
	return r.openWire()
}

// inNamespace runs fn on a locked OS thread inside the agent's network namespace when
// that is not the namespace of the current thread, so sockets fn opens live there.
func (r *Responder) inNamespace(fn func() error) error {
	if !r.ns.IsOpen() {
		return fn()
	}
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	cur, err := netns.Get()
	if err != nil {
		return fmt.Errorf("responder: current network namespace: %w", err)
	}
	defer cur.Close()
	if cur.Equal(r.ns) {
		return fn()
	}
	if err := netns.Set(r.ns); err != nil {
		return fmt.Errorf("responder: enter the agent's network namespace: %w", err)
	}
	ferr := fn()
	if err := netns.Set(cur); err != nil {
		// The thread is in the wrong namespace: never unlock it, so Go discards it.
		runtime.LockOSThread()
		return errors.Join(ferr, fmt.Errorf("responder: restore network namespace: %w", err))
	}
	return ferr
}
