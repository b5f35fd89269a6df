// Package ipsecpath_test holds repository-wide checks: the tree stays gofmt-clean.
package ipsecpath_test

import (
	"os"
	"os/exec"
	"strings"
	"testing"
)

// TestGofmt fails when any Go file in the tree is not gofmt-formatted.
func TestGofmt(t *testing.T) {
	gofmt, err := exec.LookPath("gofmt")
	if err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("gofmt not found: %v", err)
		}
		t.Skipf("gofmt not found: %v", err)
	}
	out, err := exec.Command(gofmt, "-l", ".").CombinedOutput()
	if err != nil {
		t.Fatalf("gofmt -l: %v\n%s", err, out)
	}
	if s := strings.TrimSpace(string(out)); s != "" {
		t.Errorf("files not gofmt-formatted:\n%s", s)
	}
}
