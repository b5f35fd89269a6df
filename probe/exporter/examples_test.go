package exporter

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"testing"

	"github.com/ipsecpath/ipsecpath/probe/survey"
	"github.com/ipsecpath/ipsecpath/testlab"
)

// TestExamples: the files in examples/ are what they claim to be: promtool accepts the
// Prometheus config and the alerting rules, the exporter config parses (its key file is
// not read here), and both targets files parse into the same three targets.
func TestExamples(t *testing.T) {
	dir := filepath.Join("..", "..", "examples")
	testlab.RequireTools(t, "promtool")
	for _, args := range [][]string{
		{"check", "config", filepath.Join(dir, "prometheus.yml")},
		{"check", "rules", filepath.Join(dir, "ipsecpath-rules.yml")},
	} {
		if out, err := exec.Command("promtool", args...).CombinedOutput(); err != nil {
			t.Errorf("promtool %v: %v\n%s", args, err, out)
		}
	}
	b, err := os.ReadFile(filepath.Join(dir, "exporter.yml"))
	if err != nil {
		t.Fatal(err)
	}
	var keys []string
	c, err := ParseConfig(b, func(p string) ([]byte, error) { keys = append(keys, p); return bytes.Repeat([]byte{1}, 32), nil })
	if err != nil {
		t.Fatalf("exporter.yml: %v", err)
	}
	if len(c.Modules) != 3 || len(c.Allow) != 2 || len(keys) != 1 {
		t.Errorf("exporter.yml: %d modules, %d allowed, key files %v", len(c.Modules), len(c.Allow), keys)
	}
	var parsed [][]survey.Target
	for _, name := range []string{"targets.csv", "targets.yaml"} {
		b, err := os.ReadFile(filepath.Join(dir, name))
		if err != nil {
			t.Fatal(err)
		}
		ts, err := survey.ParseTargets(name, b, nil)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		for i := range ts {
			ts[i].Line = 0
		}
		parsed = append(parsed, ts)
	}
	if len(parsed[0]) != 3 || len(parsed[1]) != 3 {
		t.Fatalf("targets: %d and %d", len(parsed[0]), len(parsed[1]))
	}
	for i := range parsed[0] {
		a, b := parsed[0][i], parsed[1][i]
		if a.Addr != b.Addr || a.Agent != b.Agent || a.Label != b.Label || a.Netns != b.Netns || len(a.Probes) != len(b.Probes) {
			t.Errorf("targets.csv and targets.yaml differ at %d: %+v vs %+v", i, a, b)
		}
	}
}
