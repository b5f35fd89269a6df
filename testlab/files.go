package testlab

import (
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"syscall"
)

// The file-system fixtures below are for the tests of report, probe and cmd/ipsecpath that
// prove an output path or key file is refused when it is not a plain regular file. They live
// here, not in probe/probetest, because report's own tests use them and probe imports report.

// WriteFile writes data to path and sets its mode to exactly perm (not perm less the
// umask), failing the test on error. It returns path.
func WriteFile(t TB, path string, data []byte, perm fs.FileMode) string {
	t.Helper()
	if err := os.WriteFile(path, data, perm); err != nil {
		t.Fatalf("testlab: %v", err)
	}
	if err := os.Chmod(path, perm); err != nil {
		t.Fatalf("testlab: %v", err)
	}
	return path
}

// Symlink makes link a symbolic link to target, failing the test on error. It returns link.
func Symlink(t TB, target, link string) string {
	t.Helper()
	if err := os.Symlink(target, link); err != nil {
		t.Fatalf("testlab: %v", err)
	}
	return link
}

// Mkfifo makes a named pipe at path (mode 0600), failing the test on error. It returns path.
func Mkfifo(t TB, path string) string {
	t.Helper()
	if err := syscall.Mkfifo(path, 0o600); err != nil {
		t.Fatalf("testlab: mkfifo %s: %v", path, err)
	}
	return path
}

// ReleaseFifo opens the named pipe at path for writing and closes it again, which lets an
// open(2) for reading that is blocked on it return (so a test that failed because a reader
// hung there can still end).
func ReleaseFifo(path string) {
	if w, err := os.OpenFile(path, os.O_WRONLY, 0); err == nil {
		w.Close()
	}
}

// UnsafeFiles makes in dir the entries a path check must tell apart: a regular file holding
// data (mode 0600), a symbolic link to it and a named pipe, named regular, link and fifo
// followed by suffix (".json" for an output path). It returns their paths.
func UnsafeFiles(t TB, dir, suffix string, data []byte) (regular, link, fifo string) {
	t.Helper()
	regular = WriteFile(t, filepath.Join(dir, "regular"+suffix), data, 0o600)
	link = Symlink(t, regular, filepath.Join(dir, "link"+suffix))
	fifo = Mkfifo(t, filepath.Join(dir, "fifo"+suffix))
	return regular, link, fifo
}

// NullDevice makes a character device node at path with the null device's numbers (1, 3),
// mode 0666: a device of the test's own, so that a test that fails cannot take the machine's
// /dev/null with it. It needs root; it fails the test on error. It returns path.
func NullDevice(t TB, path string) string {
	t.Helper()
	if err := syscall.Mknod(path, syscall.S_IFCHR|0o666, 1<<8|3); err != nil {
		t.Fatalf("testlab: mknod %s: %v", path, err)
	}
	return path
}

// SnapshotDir describes every entry of dir in one string (name, type and mode, and a
// symbolic link's target or a regular file's content), so that a test can prove a directory
// unchanged.
func SnapshotDir(t TB, dir string) string {
	t.Helper()
	ents, err := os.ReadDir(dir)
	if err != nil {
		t.Fatalf("testlab: %v", err)
	}
	var b strings.Builder
	for _, e := range ents {
		p := filepath.Join(dir, e.Name())
		fi, err := os.Lstat(p)
		if err != nil {
			t.Fatalf("testlab: %v", err)
		}
		b.WriteString(e.Name() + " " + fi.Mode().String())
		switch {
		case fi.Mode()&fs.ModeSymlink != 0:
			to, _ := os.Readlink(p)
			b.WriteString(" -> " + to)
		case fi.Mode().IsRegular():
			data, _ := os.ReadFile(p)
			b.WriteString(" " + string(data))
		}
		b.WriteString("; ")
	}
	return b.String()
}
