package ipsecpath_test

import (
	"go/parser"
	"go/token"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// TestBuildsElsewhere keeps the tree building on an OS without raw sockets: the socket
// code is Linux only (//go:build linux) and its !linux files fail with "Linux only", so
// the whole tree builds for darwin and the pure packages pass go vet there, tests included.
func TestBuildsElsewhere(t *testing.T) {
	if testing.Short() {
		t.Skip("cross-builds the tree: skipped with -short")
	}
	gobin, err := exec.LookPath("go")
	if err != nil {
		gobin = filepath.Join(os.Getenv("GOROOT"), "bin", "go")
		if _, serr := os.Stat(gobin); serr != nil {
			if os.Getenv("CI") == "true" {
				t.Fatalf("go not found: %v", err)
			}
			t.Skipf("go not found: %v", err)
		}
	}
	for _, args := range [][]string{
		{"build", "./..."},
		{"vet", "./ike", "./report", "./pmtu", "./probe/wire", "./probe/rawip"},
	} {
		cmd := exec.Command(gobin, args...)
		cmd.Env = append(os.Environ(), "GOOS=darwin", "GOARCH=arm64", "CGO_ENABLED=0")
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Errorf("GOOS=darwin go %s: %v\n%s", strings.Join(args, " "), err, out)
		}
	}
}

// TestNoUnsafeInSockets keeps socket code on golang.org/x/sys/unix's typed socket options:
// no file of probe or pmtu imports package unsafe.
func TestNoUnsafeInSockets(t *testing.T) {
	fset := token.NewFileSet()
	for _, dir := range []string{"probe", "pmtu"} {
		err := filepath.WalkDir(dir, func(path string, d os.DirEntry, err error) error {
			if err != nil || d.IsDir() || !strings.HasSuffix(path, ".go") {
				return err
			}
			f, err := parser.ParseFile(fset, path, nil, parser.ImportsOnly)
			if err != nil {
				return err
			}
			for _, imp := range f.Imports {
				if imp.Path.Value == `"unsafe"` {
					t.Errorf("%s imports unsafe: use golang.org/x/sys/unix's socket option helpers", path)
				}
			}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
	}
}
