package probe

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/ipsecpath/ipsecpath/testlab"
)

// nobodyUID is user nobody on Debian, the owner of the "other user's key" case.
const nobodyUID = 65534

// TestLoadKeyRefusesUnsafeFiles is issue 9 item 10: a named pipe hung `responder` and `check`
// in open(2), deaf to SIGINT; a key owned by another user was accepted by a root agent; a
// symbolic link was followed. Each is refused, promptly, in one line.
func TestLoadKeyRefusesUnsafeFiles(t *testing.T) {
	dir := t.TempDir()
	good := bytes.Repeat([]byte{0x5a}, 32)
	key, link, fifo := testlab.UnsafeFiles(t, dir, "", good)
	cases := []struct{ name, path, want string }{
		{"named pipe", fifo, "not a regular file (a named pipe)"},
		{"symlink to a good key", link, "is a symbolic link"},
		{"directory", dir, "not a regular file (a directory)"},
		{"character device", "/dev/null", "not a regular file (a character device)"},
	}
	if os.Geteuid() == 0 {
		other := testlab.WriteFile(t, filepath.Join(dir, "other"), good, 0o600)
		if err := os.Chown(other, nobodyUID, nobodyUID); err != nil {
			t.Fatal(err)
		}
		cases = append(cases, struct{ name, path, want string }{"owned by nobody", other, "owned by uid 65534"})
	} else if testlab.InCI() {
		t.Fatal("the other-owner case needs root (chown), and CI=true: refusing to leave it out")
	} else {
		t.Log("not root: the other-owner case is left out")
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			type res struct {
				k   []byte
				err error
			}
			done := make(chan res, 1)
			go func() {
				k, err := LoadKey(c.path)
				done <- res{k, err}
			}()
			var r res
			select {
			case r = <-done:
			case <-time.After(5 * time.Second):
				if c.path == fifo {
					// release the blocked open(2) so the test binary can end
					testlab.ReleaseFifo(fifo)
				}
				t.Fatalf("LoadKey(%s) still blocked after 5 s", c.path)
			}
			if r.err == nil || !strings.Contains(r.err.Error(), c.want) || strings.Contains(r.err.Error(), "\n") {
				t.Errorf("LoadKey(%s) = %q, %v; want one line containing %q", c.path, r.k, r.err, c.want)
			}
		})
	}
	// the file itself, and a symlink in a directory part of the path, still load
	sub := testlab.Symlink(t, dir, filepath.Join(dir, "sub"))
	for _, p := range []string{key, filepath.Join(sub, filepath.Base(key))} {
		if k, err := LoadKey(p); err != nil || !bytes.Equal(k, good) {
			t.Errorf("LoadKey(%s) = %q, %v; want the key", p, k, err)
		}
	}
}
