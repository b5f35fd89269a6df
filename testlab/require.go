package testlab

import (
	"os"
	"os/exec"
	"testing"
)

// InCI reports whether we run under CI (CI=true): privileged tests must then run, not skip.
func InCI() bool { return os.Getenv("CI") == "true" }

// RequireRoot stops a test that needs root (namespaces, raw sockets): on a laptop it skips
// and says why; under CI=true it fails loudly, because CI runs as root and must test.
func RequireRoot(tb testing.TB) {
	tb.Helper()
	if os.Geteuid() == 0 {
		return
	}
	if InCI() {
		tb.Fatalf("needs root (namespaces, raw sockets) and CI=true: refusing to skip")
	}
	tb.Skipf("needs root for network namespaces and raw sockets (run as root, or CI=true to make this fatal)")
}

// RequireTools stops a test when a program it drives is missing: skip on a laptop, fail
// under CI=true. `make test` installs them all.
func RequireTools(tb testing.TB, names ...string) {
	tb.Helper()
	for _, n := range names {
		if _, err := exec.LookPath(n); err != nil {
			if InCI() {
				tb.Fatalf("%s not found (make deps installs it) and CI=true: refusing to skip", n)
			}
			tb.Skipf("%s not found: run 'make deps' as root to install it", n)
		}
	}
}
