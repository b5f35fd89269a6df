//go:build linux

package testlab

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync"

	"golang.org/x/sys/unix"
)

var netnsDirOnce sync.Once

// shareNetnsDir makes /run/netns a shared mount point, as `ip netns add` does: the mount
// namespace each `ip netns exec` creates (charon lives in one) then gets slave copies of the
// namespace bind mounts, and deleting a lab's namespaces on the host unmounts them there too
// instead of keeping them alive until every charon of every other lab has exited.
func shareNetnsDir() {
	netnsDirOnce.Do(func() {
		const dir = "/run/netns"
		_ = os.MkdirAll(dir, 0o755)
		err := unix.Mount("", dir, "none", unix.MS_SHARED|unix.MS_REC, "")
		if err != unix.EINVAL {
			return
		}
		// Not a mount point yet: bind it onto itself first, but only while it is empty.
		// Binding over existing namespace mounts would leave the originals hidden below
		// the bind, unreachable by path: never deletable again until reboot.
		if ents, err := os.ReadDir(dir); err != nil || len(ents) > 0 {
			return
		}
		if unix.Mount(dir, dir, "none", unix.MS_BIND|unix.MS_REC, "") == nil {
			_ = unix.Mount("", dir, "none", unix.MS_SHARED|unix.MS_REC, "")
		}
	})
}

// deleteNamedNetns removes /run/netns/name: unmount (a plain file left behind, not a mount
// point, is fine) and remove.
func deleteNamedNetns(name string) error {
	p := filepath.Join("/run/netns", name)
	if err := unix.Unmount(p, unix.MNT_DETACH); err != nil && err != unix.EINVAL && err != unix.ENOENT {
		return fmt.Errorf("testlab: unmount %s: %w", p, err)
	}
	if err := os.Remove(p); err != nil && !os.IsNotExist(err) {
		if errors.Is(err, unix.EBUSY) {
			return fmt.Errorf("testlab: remove %s: %w (a second mount of it is hidden under a later bind mount of /run/netns)", p, err)
		}
		return fmt.Errorf("testlab: remove %s: %w", p, err)
	}
	return nil
}
