package main

import (
	"os"
	"slices"
	"strings"
	"testing"

	"github.com/ipsecpath/ipsecpath/report"
	"github.com/ipsecpath/ipsecpath/report/schematest"
)

// validateOutputs validates every JSON result a CLI run in a test produced: stdout when
// the run asked for --json (or --format json) and did not fail on usage, and every --out
// file that is JSON. runCLI calls it for every run, so each test that reads a JSON result
// also checks it against the schema `ipsecpath schema` prints.
func validateOutputs(t testing.TB, args []string, code int, stdout string) {
	t.Helper()
	if len(args) == 0 || code == exitUsage {
		return
	}
	name := args[0]
	asJSON, outFile := false, ""
	for i, a := range args {
		switch {
		case a == "--json" || a == "--format=json" || (a == "--format" && i+1 < len(args) && args[i+1] == "json"):
			asJSON = true
		case a == "--out" && i+1 < len(args):
			outFile = args[i+1]
		case strings.HasPrefix(a, "--out="):
			outFile = strings.TrimPrefix(a, "--out=")
		}
	}
	if slices.Contains(args, "--help") || slices.Contains(args, "-h") {
		return
	}
	check := func(what string, data []byte) {
		t.Helper()
		if !slices.Contains(report.SchemaNames, name) {
			t.Errorf("%s: %s printed a JSON result but report/schema has no %s.json (add it and its name to report.SchemaNames)", what, name, name)
			return
		}
		schematest.Validate(t, name, data)
	}
	if asJSON && stdout != "" {
		check("stdout", []byte(stdout))
	}
	if outFile != "" && strings.HasSuffix(strings.ToLower(outFile), ".json") {
		if data, err := os.ReadFile(outFile); err == nil {
			check("--out "+outFile, data)
		}
	}
}

// TestSchemaCommand: the bundle and each named schema print, are JSON Schemas the
// validator compiles, and an unknown name is a usage error.
func TestSchemaCommand(t *testing.T) {
	code, out, errs := runCLI(t, "schema")
	if code != exitOK || !strings.Contains(out, `"$schema": "https://json-schema.org/draft/2020-12/schema"`) || errs != "" {
		t.Fatalf("schema: exit %d, stderr %q\n%.300s", code, errs, out)
	}
	for _, n := range append([]string{"defs"}, report.SchemaNames...) {
		code, out, _ := runCLI(t, "schema", n)
		want, _ := report.Schema(n)
		if code != exitOK || out != string(want) {
			t.Errorf("schema %s: exit %d, output differs from report/schema/%s.json", n, code, n)
		}
	}
	if code, _, errs := runCLI(t, "schema", "nope"); code != exitUsage || strings.Count(errs, "\n") != 1 {
		t.Errorf("schema nope: exit %d, stderr %q; want 2 and one line", code, errs)
	}
	if err := schematest.Check("check", []byte(`{"tool":"ipsecpath"}`)); err == nil {
		t.Error("a result without its required fields validates")
	}
	if err := schematest.Check("check", []byte(`{"tool":"ipsecpath","version":"x","target":"t","started":"2026-01-01T00:00:00Z","duration_ms":1,"results":[],"summary":{"pass":0,"fail":0,"skipped":0},"surprise":1}`)); err == nil {
		t.Error("a result with an undocumented field validates: the schema is not closed")
	}
}
