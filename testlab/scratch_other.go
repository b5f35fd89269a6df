//go:build !linux

package testlab

// InScratchNetns needs Linux network namespaces: elsewhere it skips the test (fails it under
// CI=true, like RequireRoot) and fn does not run.
func InScratchNetns(t TB, fn func()) {
	t.Helper()
	if InCI() {
		t.Fatalf("%v, and CI=true: refusing to skip", errLinuxOnly)
	}
	t.Skipf("%v", errLinuxOnly)
}

// LoopbackUp needs Linux: elsewhere it returns errLinuxOnly.
func LoopbackUp(mtu int) error { return errLinuxOnly }
