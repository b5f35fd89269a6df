package testlab

import (
	"context"
	"fmt"
	"os"
	"sync/atomic"
	"testing"
	"time"
)

// ForTestTimeout bounds Up inside ForTest.
const ForTestTimeout = 45 * time.Second

var testSeq atomic.Int32

// ForTest builds a lab for a test: it needs root, ip and nft (and strongSwan unless
// NoGateways), else it skips (fails under CI=true). An empty Name gets a name unique to this
// process and test ("t<pid>-<n>"); a leftover lab of that name is torn down first. The lab
// is closed in t.Cleanup, also when the test fails.
func ForTest(t testing.TB, s Spec) *Lab {
	t.Helper()
	RequireRoot(t)
	RequireTools(t, "ip", "nft")
	if !s.NoGateways {
		RequireTools(t, "swanctl", "prlimit", CharonPath)
	}
	if s.Name == "" {
		s.Name = fmt.Sprintf("t%d-%d", os.Getpid(), testSeq.Add(1))
		_ = Down(context.Background(), s.Name) // pid reuse after a crashed run
	}
	ctx, cancel := context.WithTimeout(context.Background(), ForTestTimeout)
	defer cancel()
	l, err := Up(ctx, s)
	if err != nil {
		t.Fatalf("testlab: up %s (profile %q): %v", s.Name, s.Profile, err)
	}
	t.Cleanup(func() {
		if err := l.Close(); err != nil {
			t.Errorf("testlab: close %s: %v", l.Name(), err)
		}
	})
	return l
}
