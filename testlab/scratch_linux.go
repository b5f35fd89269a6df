//go:build linux

package testlab

import (
	"fmt"
	"runtime"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
)

// InScratchNetns runs fn on a goroutine of its own whose thread is in a new, unnamed network
// namespace holding only a loopback that is down: no address, no route anywhere. The
// thread stays locked and exits with the goroutine, so it never runs other code in there;
// the namespace goes with its last reference (a socket fn leaves open keeps it, and
// everything sent on it stays inside). It needs root (RequireRoot). fn does not run on the
// test's goroutine: it reports failures with t.Errorf (or hands an error back), not
// t.Fatal; a failure to make the namespace is reported with t.Errorf and fn does not run.
func InScratchNetns(t TB, fn func()) {
	t.Helper()
	RequireRoot(t)
	done := make(chan struct{})
	go func() {
		defer close(done)
		runtime.LockOSThread() // never unlocked: the thread exits with the goroutine
		orig, err := netns.Get()
		if err != nil {
			t.Errorf("testlab: netns: %v", err)
			return
		}
		defer orig.Close()
		ns, err := netns.New() // enters it
		if err != nil {
			t.Errorf("testlab: netns: new: %v", err)
			return
		}
		defer ns.Close()
		defer netns.Set(orig)
		fn()
	}()
	<-done
}

// LoopbackUp sets the loopback of the calling thread's network namespace up, at mtu bytes
// if mtu > 0 (inside InScratchNetns).
func LoopbackUp(mtu int) error {
	lo, err := netlink.LinkByName("lo")
	if err == nil && mtu > 0 {
		err = netlink.LinkSetMTU(lo, mtu)
	}
	if err == nil {
		err = netlink.LinkSetUp(lo)
	}
	if err != nil {
		return fmt.Errorf("testlab: loopback: %w", err)
	}
	return nil
}
