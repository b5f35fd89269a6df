package report

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/ipsecpath/ipsecpath/testlab"
)

// TestOutputFileReplacesOnlyRegularFiles is issue 9 item 9: `--out /dev/null` run as root
// renamed the report over the device node. Every output path that is not a regular file or
// absent is refused, by the check before the run, by the atomic write and by CreatePcap,
// and what is there stays as it was.
func TestOutputFileReplacesOnlyRegularFiles(t *testing.T) {
	dir := t.TempDir()
	_, link, fifo := testlab.UnsafeFiles(t, dir, ".json", []byte("keep me"))
	dangling := testlab.Symlink(t, filepath.Join(dir, "nowhere.json"), filepath.Join(dir, "dangling.json"))
	sub := filepath.Join(dir, "sub")
	if err := os.Mkdir(sub, 0o755); err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		name, path, want string
	}{
		{"symlink to a regular file", link, "is a symbolic link"},
		{"dangling symlink", dangling, "is a symbolic link"},
		{"named pipe", fifo, "is a named pipe"},
		{"directory", sub, "is a directory"},
		{"empty", "", "empty file name"},
	}
	if os.Geteuid() == 0 {
		// a device node of our own (the null device's numbers), not /dev/null: if this
		// test ever fails, it must not take the machine's /dev/null with it
		null := testlab.NullDevice(t, filepath.Join(dir, "null"))
		cases = append(cases, struct{ name, path, want string }{"character device", null, "is a character device"})
	} else if testlab.InCI() {
		t.Fatal("the device-node case needs root, and CI=true: refusing to leave it out")
	} else {
		t.Log("not root: the device-node case is left out")
	}
	before := testlab.SnapshotDir(t, dir)
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			check := func(what string, err error) {
				t.Helper()
				if err == nil || !strings.Contains(err.Error(), c.want) || !errors.Is(err, ErrOutputPath) {
					t.Errorf("%s(%q): %v, want an ErrOutputPath containing %q", what, c.path, err, c.want)
				}
				if strings.Contains(err.Error(), "\n") {
					t.Errorf("%s: error of more than one line: %q", what, err)
				}
			}
			check("CheckOutputPath", CheckOutputPath(c.path))
			check("WriteOutputFile", WriteOutputFile(c.path, []byte("{}")))
			_, err := CreatePcap(c.path)
			check("CreatePcap", err)
		})
	}
	if after := testlab.SnapshotDir(t, dir); after != before {
		t.Errorf("the directory changed:\nbefore %s\nafter  %s", before, after)
	}
}

// TestOutputFileWrites: a new file is created mode 0644, a regular file is replaced whole
// and keeps its mode, and no temporary file is left behind.
func TestOutputFileWrites(t *testing.T) {
	dir := t.TempDir()
	fresh := filepath.Join(dir, "new.json")
	if err := CheckOutputPath(fresh); err != nil {
		t.Fatalf("CheckOutputPath(new file): %v", err)
	}
	if err := WriteOutputFile(fresh, []byte("one")); err != nil {
		t.Fatal(err)
	}
	old := testlab.WriteFile(t, filepath.Join(dir, "old.json"), []byte("a longer previous content"), 0o600)
	if err := CheckOutputPath(old); err != nil {
		t.Fatalf("CheckOutputPath(regular file): %v", err)
	}
	if err := WriteOutputFile(old, []byte("two")); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		path, data string
		mode       fs.FileMode
	}{{fresh, "one", 0o644}, {old, "two", 0o600}} {
		fi, err := os.Lstat(c.path)
		if err != nil {
			t.Fatal(err)
		}
		data, _ := os.ReadFile(c.path)
		if !fi.Mode().IsRegular() || fi.Mode().Perm() != c.mode || string(data) != c.data {
			t.Errorf("%s: %v %q, want a regular file %v %q", c.path, fi.Mode(), data, c.mode, c.data)
		}
	}
	if ents, _ := os.ReadDir(dir); len(ents) != 2 {
		t.Errorf("directory holds %d entries, want the 2 files (no temporary left): %v", len(ents), ents)
	}
}

// TestOutputFileDirectory: a directory that does not exist, is not a directory or cannot be
// written is refused by the check before a run (issue 9: `--out /sys/x.json` failed only
// after the whole run).
func TestOutputFileDirectory(t *testing.T) {
	dir := t.TempDir()
	file := testlab.WriteFile(t, filepath.Join(dir, "file"), nil, 0o600)
	cases := []struct{ path, want string }{
		{filepath.Join(dir, "missing", "x.json"), "does not exist"},
		{filepath.Join(file, "x.json"), "not a directory"},
		// sysfs and procfs take no new files, not even from root
		{"/sys/x.json", "cannot create a file in directory /sys"},
		{"/proc/x.json", "cannot create a file in directory /proc"},
	}
	for _, c := range cases {
		err := CheckOutputPath(c.path)
		if err == nil || !strings.Contains(err.Error(), c.want) || !strings.Contains(err.Error(), c.path) {
			t.Errorf("CheckOutputPath(%q): %v, want an error naming it and containing %q", c.path, err, c.want)
		}
	}
}

// TestOutputFileCommitRechecks: a symbolic link or a device placed at the path while the run
// went on is not replaced at the end.
func TestOutputFileCommitRechecks(t *testing.T) {
	dir := t.TempDir()
	victim := testlab.WriteFile(t, filepath.Join(dir, "victim"), []byte("keep me"), 0o600)
	for _, existed := range []bool{false, true} {
		path := filepath.Join(dir, "out.json")
		os.Remove(path)
		if existed {
			testlab.WriteFile(t, path, []byte("old"), 0o644)
		}
		f, err := CreateOutput(path)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := f.WriteString("new"); err != nil {
			t.Fatal(err)
		}
		os.Remove(path)
		testlab.Symlink(t, victim, path)
		if err := f.Commit(); err == nil || !errors.Is(err, ErrOutputPath) {
			t.Errorf("existed %v: Commit over a symlink that appeared: %v, want a refusal", existed, err)
		}
		if to, err := os.Readlink(path); err != nil || to != victim {
			t.Errorf("existed %v: the symlink was replaced: %q %v", existed, to, err)
		}
		if data, _ := os.ReadFile(victim); string(data) != "keep me" {
			t.Errorf("existed %v: the symlink's target was written: %q", existed, data)
		}
	}
	// A pcap whose run ends normally is put in place; Abort leaves nothing.
	pc := filepath.Join(dir, "run.pcapng")
	p, err := CreatePcap(pc)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Lstat(pc); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("the pcap is at its path before Close (%v): a killed run would leave half of it", err)
	}
	if err := p.WritePacket(time.Now(), []byte{0x45, 0, 0, 20, 0, 0, 0, 0, 64, 17, 0, 0, 127, 0, 0, 1, 127, 0, 0, 1}); err != nil {
		t.Fatal(err)
	}
	if err := p.Close(); err != nil {
		t.Fatal(err)
	}
	if fi, err := os.Lstat(pc); err != nil || !fi.Mode().IsRegular() || fi.Size() == 0 {
		t.Errorf("pcap after Close: %v %v", fi, err)
	}
	f, err := CreateOutput(filepath.Join(dir, "aborted"))
	if err != nil {
		t.Fatal(err)
	}
	f.Abort()
	ents, _ := os.ReadDir(dir)
	for _, e := range ents {
		if strings.HasPrefix(e.Name(), ".") || e.Name() == "aborted" {
			t.Errorf("left behind: %s", e.Name())
		}
	}
}
