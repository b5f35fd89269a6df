package testlab

import (
	"os"
	"os/exec"
)

// TB is the part of testing.TB that ForTest and the Require helpers use. A *testing.T or
// *testing.B satisfies it; taking this instead of testing.TB keeps the "testing" package
// out of the ipsecpath binary, which imports testlab for `ipsecpath lab`.
type TB interface {
	Helper()
	Errorf(format string, args ...any)
	Fatalf(format string, args ...any)
	Skipf(format string, args ...any)
	Cleanup(func())
}

// InCI reports whether we run under CI (CI=true): privileged tests must then run, not skip.
func InCI() bool { return os.Getenv("CI") == "true" }

// RequireRoot stops a test that needs root (namespaces, raw sockets): on a laptop it skips
// and says why; under CI=true it fails loudly, because CI runs as root and must test.
func RequireRoot(tb TB) {
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
func RequireTools(tb TB, names ...string) {
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
