package main

import (
	"bytes"
	"net/netip"
	"strings"
	"testing"
)

// TestOutputTarget: the output flags are checked before the target (a run with both wrong
// names the flag), then exactly one TARGET address is read.
func TestOutputTarget(t *testing.T) {
	for _, c := range []struct {
		args    []string
		want    netip.Addr
		wantErr string
	}{
		{[]string{"203.0.113.10"}, netip.MustParseAddr("203.0.113.10"), ""},
		{[]string{"203.0.113.10", "--json"}, netip.MustParseAddr("203.0.113.10"), ""},
		{[]string{"not-an-address", "--format", "yaml"}, netip.Addr{}, `--format: unknown format "yaml"`},
		{[]string{"--out", "-"}, netip.Addr{}, "--out -: the report already goes to stdout"},
		{[]string{}, netip.Addr{}, "want one TARGET address, got 0 argument(s)"},
		{[]string{"203.0.113.10", "203.0.113.11"}, netip.Addr{}, "want one TARGET address, got 2 argument(s)"},
		{[]string{"gw.example"}, netip.Addr{}, `target "gw.example" is not an IPv4 address`},
	} {
		fs := newFlags(&command{name: "t"})
		out := addOutputFlags(fs)
		if err := fs.Parse(c.args); err != nil {
			t.Fatalf("%q: %v", c.args, err)
		}
		got, err := outputTarget(fs, out)
		switch {
		case c.wantErr == "" && err != nil:
			t.Errorf("%q: %v", c.args, err)
		case c.wantErr != "" && (err == nil || !strings.HasPrefix(err.Error(), c.wantErr)):
			t.Errorf("%q: error %v, want one starting with %q", c.args, err, c.wantErr)
		case got != c.want:
			t.Errorf("%q: target %v, want %v", c.args, got, c.want)
		}
	}
}

// TestLabNameRoot: a bad lab name is refused first (with or without root), then a run
// without root; a good name as root goes on.
func TestLabNameRoot(t *testing.T) {
	c := &command{name: "lab show"}
	for _, n := range []struct{ name, want string }{
		{"", "ipsecpath lab show: the lab name is empty"},
		{"Bad_Name", `ipsecpath lab show: bad lab name "Bad_Name"`},
	} {
		var stderr bytes.Buffer
		if code := labNameRoot(&env{stdout: &bytes.Buffer{}, stderr: &stderr}, c, n.name); code != exitUsage {
			t.Errorf("name %q: exit %d, want %d", n.name, code, exitUsage)
		}
		if s := stderr.String(); !strings.HasPrefix(s, n.want) || strings.Count(s, "\n") != 1 {
			t.Errorf("name %q: stderr %q, want one line starting with %q", n.name, s, n.want)
		}
	}
	var stderr bytes.Buffer
	code := labNameRoot(&env{stdout: &bytes.Buffer{}, stderr: &stderr}, c, "j1")
	if isRoot() {
		if code != exitOK || stderr.Len() != 0 {
			t.Errorf("good name as root: exit %d, stderr %q; want %d and nothing", code, stderr.String(), exitOK)
		}
	} else if code != exitUsage || !strings.Contains(stderr.String(), "needs root") {
		t.Errorf("good name without root: exit %d, stderr %q; want %d and a 'needs root' line", code, stderr.String(), exitUsage)
	}
}

// TestLabNameArgs: -h stops with exit 0 and help on stdout (no lab opened under an empty
// name), a bad name stops with exit 2, no --name gives the default.
func TestLabNameArgs(t *testing.T) {
	c := &command{name: "lab show"}
	var stdout, stderr bytes.Buffer
	e := &env{stdout: &stdout, stderr: &stderr}
	if name, done, code := labNameArgs(e, c, []string{"-h"}, "default"); !done || code != exitOK || name != "" || !strings.Contains(stdout.String(), "--name") {
		t.Errorf("-h: name %q done %v code %d stdout %q; want done, exit 0 and the help", name, done, code, stdout.String())
	}
	if _, done, code := labNameArgs(e, c, []string{"--name", "Bad_Name"}, "default"); !done || code != exitUsage {
		t.Errorf("bad name: done %v code %d; want done, exit %d", done, code, exitUsage)
	}
	if !isRoot() {
		return // the root check stops the rest, as TestLabNameRoot shows
	}
	if name, done, code := labNameArgs(e, c, nil, "demo"); done || code != exitOK || name != "demo" {
		t.Errorf("no --name: name %q done %v code %d; want the default %q", name, done, code, "demo")
	}
	if name, done, _ := labNameArgs(e, c, []string{"--name", "j1"}, "demo"); done || name != "j1" {
		t.Errorf("--name j1: name %q done %v", name, done)
	}
}
