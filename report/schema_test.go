package report_test

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/ipsecpath/ipsecpath/report"
	"github.com/ipsecpath/ipsecpath/report/schematest"
)

// TestSchemaTestdata: every JSON result kept in testdata, as read and written back by
// WriteJSON, and the diff of two of them, validate against their schemas.
func TestSchemaTestdata(t *testing.T) {
	files, err := filepath.Glob("testdata/*.json")
	if err != nil || len(files) == 0 {
		t.Fatalf("no testdata/*.json: %v", err)
	}
	var reps []*report.Report
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		schematest.Validate(t, "check", b)
		r, err := report.ReadJSON(bytes.NewReader(b))
		if err != nil {
			t.Fatalf("%s: %v", f, err)
		}
		var out bytes.Buffer
		if err := r.WriteJSON(&out); err != nil {
			t.Fatal(err)
		}
		schematest.Validate(t, "check", out.Bytes())
		reps = append(reps, r)
	}
	for _, a := range reps {
		for _, b := range reps {
			d := report.Diff(a, b)
			var out bytes.Buffer
			if err := d.WriteJSON(&out); err != nil {
				t.Fatal(err)
			}
			schematest.Validate(t, "diff", out.Bytes())
		}
	}
}

// TestSchemaRejects: the schemas are not vacuous: each change below breaks a valid result.
func TestSchemaRejects(t *testing.T) {
	r := report.New("203.0.113.10", "", time.Date(2026, 11, 23, 9, 0, 0, 0, time.UTC))
	r.Add(report.Result{Probe: "esp", Direction: report.Forward, Verdict: report.Dropped, Detail: "x",
		Hop: &report.Hop{Bracket: &report.Bracket{LastReached: &report.HopRef{TTL: 1, Addr: "198.51.100.1"}, FirstMissed: &report.HopRef{TTL: 2}}}})
	r.Finish(r.Started.Add(time.Second))
	good, err := json.Marshal(r)
	if err != nil {
		t.Fatal(err)
	}
	schematest.Validate(t, "check", good)
	for name, mutate := range map[string]func(m map[string]any){
		"verdict":   func(m map[string]any) { res(m)["verdict"] = "maybe" },
		"direction": func(m map[string]any) { res(m)["direction"] = "sideways" },
		"tool":      func(m map[string]any) { m["tool"] = "other" },
		"started":   func(m map[string]any) { m["started"] = "yesterday" },
		"extra":     func(m map[string]any) { res(m)["evidence"].(map[string]any)["guess"] = 1 },
		"no detail": func(m map[string]any) { delete(res(m), "detail") },
		"hop ttl":   func(m map[string]any) { res(m)["hop"].(map[string]any)["last_reached"].(map[string]any)["ttl"] = 300 },
	} {
		b := mutated(t, good, mutate)
		if err := schematest.Check("check", b); err == nil {
			t.Errorf("%s: a broken result validates: %s", name, b)
		}
	}
}

func res(m map[string]any) map[string]any { return m["results"].([]any)[0].(map[string]any) }
