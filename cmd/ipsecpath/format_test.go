package main

import (
	"bytes"
	"encoding/xml"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/ipsecpath/ipsecpath/report"
)

// sampleReport is a small run with one failure, for the output tests.
func sampleReport() *report.Report {
	r := report.New("203.0.113.10", "203.0.113.10:7500", time.Date(2026, 11, 23, 9, 0, 0, 0, time.UTC))
	r.Add(report.Result{Probe: "esp", Direction: report.Forward, Verdict: report.Pass, Detail: "ESP reached the agent."})
	r.Add(report.Result{Probe: "esp-frag", Direction: report.Forward, Verdict: report.FragDropped,
		Detail: "ESP fragments never reached the agent.", Hop: &report.Hop{TTL: 2, Addr: "192.0.2.66"}})
	r.Finish(r.Started.Add(1500 * time.Millisecond))
	return r
}

// parseOutput declares the output flags on a fresh flag set, parses args and resolves.
func parseOutput(t *testing.T, args ...string) (*output, error) {
	t.Helper()
	fs := newFlags(&command{name: "t"})
	o := addOutputFlags(fs)
	if err := fs.Parse(args); err != nil {
		t.Fatalf("parse %q: %v", args, err)
	}
	return o, o.resolve()
}

func TestOutputResolve(t *testing.T) {
	dir := t.TempDir()
	cases := []struct {
		args    []string
		format  string
		out     string // resolved --out form
		quiet   bool
		wantErr string
	}{
		{args: nil, format: "text"},
		{args: []string{"--json"}, format: "json", quiet: true},
		{args: []string{"--format", "json", "--json"}, format: "json", quiet: true},
		{args: []string{"--format", "junit"}, format: "junit", quiet: true},
		{args: []string{"--format", "markdown"}, format: "markdown"},
		{args: []string{"--out", "r.json"}, format: "text", out: "json"},
		{args: []string{"--out", "r.MD"}, format: "text", out: "markdown"},
		{args: []string{"--out", "r.xml", "--json"}, format: "json", out: "junit", quiet: true},
		{args: []string{"--out", "r.log", "--format", "markdown"}, format: "markdown", out: "markdown"},
		{args: []string{"--out", "r.txt", "--json"}, format: "json", out: "text", quiet: true},
		{args: []string{"--format", "yaml"}, wantErr: "valid: text, json, markdown, junit"},
		{args: []string{"--format", "text", "--json"}, wantErr: "contradict"},
		{args: []string{"--out", "-"}, wantErr: "stdout"},
		{args: []string{"--out", dir}, wantErr: "is a directory"},
		{args: []string{"--out", filepath.Join(dir, "missing", "r.json")}, wantErr: "does not exist"},
	}
	for _, c := range cases {
		o, err := parseOutput(t, c.args...)
		if c.wantErr != "" {
			if err == nil || !strings.Contains(err.Error(), c.wantErr) {
				t.Errorf("%q: error %v, want one containing %q", c.args, err, c.wantErr)
			}
			continue
		}
		if err != nil {
			t.Errorf("%q: %v", c.args, err)
			continue
		}
		if o.format != c.format || o.outFormat != c.out || o.quiet() != c.quiet {
			t.Errorf("%q: format %q out %q quiet %v, want %q %q %v", c.args, o.format, o.outFormat, o.quiet(), c.format, c.out, c.quiet)
		}
	}
}

func TestOutputWrite(t *testing.T) {
	dir := t.TempDir()
	jsonPath := filepath.Join(dir, "before.json")
	o, err := parseOutput(t, "--out", jsonPath)
	if err != nil {
		t.Fatal(err)
	}
	var stdout bytes.Buffer
	r := sampleReport()
	if err := o.write(&env{stdout: &stdout, stderr: &bytes.Buffer{}}, r); err != nil {
		t.Fatal(err)
	}
	// stdout gets the table, without colour
	if !strings.Contains(stdout.String(), "esp-frag") || !strings.Contains(stdout.String(), "FAIL: 1 failed, 1 passed") {
		t.Errorf("stdout is not the text table:\n%s", stdout.String())
	}
	if strings.Contains(stdout.String(), "\x1b[") {
		t.Errorf("colour without --color:\n%q", stdout.String())
	}
	// the file is the JSON contract, readable by diff
	f, err := os.Open(jsonPath)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	back, err := report.ReadJSON(f)
	if err != nil {
		t.Fatalf("--out file is not a readable report: %v", err)
	}
	if len(back.Results) != 2 || back.Results[1].Verdict != report.FragDropped {
		t.Errorf("--out file results = %+v", back.Results)
	}
	if fi, err := os.Stat(jsonPath); err != nil || fi.Mode().Perm() != 0o644 {
		t.Errorf("--out file mode: %v %v", fi.Mode(), err)
	}
	// no temporary file is left behind
	if ents, _ := os.ReadDir(dir); len(ents) != 1 {
		t.Errorf("dir holds %d entries, want only before.json", len(ents))
	}

	// --color colours the verdicts; --format junit on stdout is XML
	o, _ = parseOutput(t, "--color")
	stdout.Reset()
	if err := o.write(&env{stdout: &stdout}, r); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(stdout.String(), "\x1b[31mfrag-dropped\x1b[0m") {
		t.Errorf("--color: no red verdict:\n%q", stdout.String())
	}
	o, _ = parseOutput(t, "--format", "junit")
	stdout.Reset()
	if err := o.write(&env{stdout: &stdout}, r); err != nil {
		t.Fatal(err)
	}
	var doc report.JUnitSuites
	if err := xml.Unmarshal(stdout.Bytes(), &doc); err != nil {
		t.Fatalf("--format junit: %v", err)
	}

	// an --out file that cannot be written (its directory went away) is an error naming it
	gone := filepath.Join(dir, "gone")
	if err := os.Mkdir(gone, 0o755); err != nil {
		t.Fatal(err)
	}
	o, err = parseOutput(t, "--out", filepath.Join(gone, "r.json"))
	if err != nil {
		t.Fatal(err)
	}
	if err := os.Remove(gone); err != nil {
		t.Fatal(err)
	}
	if err := o.write(&env{stdout: &bytes.Buffer{}}, r); err == nil || !strings.Contains(err.Error(), "gone/r.json") {
		t.Errorf("write to a missing directory: %v", err)
	}
}
