package testlab

import (
	"flag"
	"os"
	"testing"
)

// labParallel is how many lab tests run at once unless -parallel is given: a lab test mostly
// waits (ping timeouts, IKE retransmits, conntrack idle), so more than GOMAXPROCS (2 here)
// of them keep the wall time down without loading the CPUs.
const labParallel = "6"

func TestMain(m *testing.M) {
	flag.Parse()
	set := false
	flag.Visit(func(f *flag.Flag) { set = set || f.Name == "test.parallel" })
	if !set {
		_ = flag.Set("test.parallel", labParallel)
	}
	os.Exit(m.Run())
}
