package probe

import (
	"fmt"
	"runtime"

	"github.com/vishvananda/netns"
)

// InNetns runs fn on a locked OS thread switched into the named network namespace
// (/run/netns/NAME, as `ip netns add` makes them, e.g. a VRF or a lab node) and switches
// back before returning; "" runs fn where the caller is. Sockets fn opens stay in that
// namespace, so a Check run by fn probes from there: its setup opens every socket in its own
// goroutine. Goroutines fn starts do not run in the namespace. If switching back fails the
// thread stays locked and the Go runtime discards it with the goroutine.
func InNetns(name string, fn func() error) error {
	if name == "" {
		return fn()
	}
	h, err := netns.GetFromName(name)
	if err != nil {
		return fmt.Errorf("network namespace %q: %w", name, err)
	}
	defer h.Close()
	errc := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		orig, err := netns.Get()
		if err != nil {
			errc <- fmt.Errorf("network namespace: current: %w", err)
			return
		}
		defer orig.Close()
		if err := netns.Set(h); err != nil {
			runtime.UnlockOSThread()
			errc <- fmt.Errorf("network namespace %q: enter: %w", name, err)
			return
		}
		ferr := fn()
		if err := netns.Set(orig); err != nil {
			errc <- fmt.Errorf("network namespace %q: leave: %w", name, err)
			return
		}
		runtime.UnlockOSThread()
		errc <- ferr
	}()
	return <-errc
}
