package testlab

import (
	"context"
	"fmt"
	"os"
	"regexp"
	"sync"
	"sync/atomic"
	"time"
)

// ForTestTimeout bounds Up inside ForTest.
const ForTestTimeout = 45 * time.Second

var (
	testSeq   atomic.Int32
	sweepOnce sync.Once
	testName  = regexp.MustCompile(`^t[0-9]+-[0-9]+$`)
)

// sweepStaleTestLabs tears down labs that ForTest named (t<pid>-<n>) in a test process that
// has died without its cleanups (go test's timeout panic, SIGKILL): their builder is gone,
// so nothing can still be using them.
func sweepStaleTestLabs() {
	labs, err := List()
	if err != nil {
		return
	}
	for _, lab := range labs {
		if !testName.MatchString(lab.Name) {
			continue
		}
		st, err := readState(lab.Name)
		if err != nil || !st.builderGone() || st.BuilderPid == os.Getpid() {
			continue
		}
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		_ = Down(ctx, lab.Name)
		cancel()
	}
}

// ForTest builds a lab for a test: it needs root, ip and nft (and strongSwan unless
// NoGateways), else it skips (fails under CI=true). An empty Name gets a name unique to this
// process and test ("t<pid>-<n>"); a leftover lab of that name is torn down first. The lab
// is closed in t.Cleanup, also when the test fails.
func ForTest(t TB, s Spec) *Lab {
	t.Helper()
	RequireRoot(t)
	RequireTools(t, "ip", "nft")
	if !s.NoGateways {
		RequireTools(t, "swanctl", "prlimit", CharonPath)
	}
	sweepOnce.Do(sweepStaleTestLabs)
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
