package report_test

import (
	"encoding/json"
	"testing"
)

// mutated decodes good, a JSON object, applies mutate to it and returns it encoded again:
// the schema tests' way of breaking one field of a valid document.
func mutated(t *testing.T, good []byte, mutate func(map[string]any)) []byte {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal(good, &m); err != nil {
		t.Fatal(err)
	}
	mutate(m)
	b, err := json.Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	return b
}
