//go:build !linux

package probe

import "fmt"

// InNetns runs fn where the caller is for name ""; a named network namespace exists only
// on Linux, so any other name fails without running fn.
func InNetns(name string, fn func() error) error {
	if name == "" {
		return fn()
	}
	return fmt.Errorf("network namespace %q: network namespaces: Linux only", name)
}
