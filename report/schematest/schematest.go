// Package schematest validates JSON results against the schemas of package report with a
// maintained validator (santhosh-tekuri/jsonschema). Tests only: the ipsecpath binary does
// not link it.
package schematest

import (
	"bytes"
	"encoding/json"
	"fmt"
	"sync"

	"github.com/ipsecpath/ipsecpath/report"
	"github.com/santhosh-tekuri/jsonschema/v6"
)

// TB is the part of testing.TB that Validate uses.
type TB interface {
	Helper()
	Errorf(format string, args ...any)
	Fatalf(format string, args ...any)
}

var (
	once     sync.Once
	compiled map[string]*jsonschema.Schema
	compErr  error
)

func compile() {
	c := jsonschema.NewCompiler()
	c.AssertFormat()
	for _, name := range append([]string{"defs"}, report.SchemaNames...) {
		b, err := report.Schema(name)
		if err != nil {
			compErr = err
			return
		}
		doc, err := jsonschema.UnmarshalJSON(bytes.NewReader(b))
		if err != nil {
			compErr = fmt.Errorf("schema %s: %w", name, err)
			return
		}
		if err := c.AddResource(report.SchemaBase+name+".json", doc); err != nil {
			compErr = fmt.Errorf("schema %s: %w", name, err)
			return
		}
	}
	bundle, err := report.SchemaBundle()
	if err != nil {
		compErr = err
		return
	}
	doc, err := jsonschema.UnmarshalJSON(bytes.NewReader(bundle))
	if err != nil {
		compErr = fmt.Errorf("schema bundle: %w", err)
		return
	}
	if err := c.AddResource(report.SchemaBase+"ipsecpath.json", doc); err != nil {
		compErr = fmt.Errorf("schema bundle: %w", err)
		return
	}
	compiled = map[string]*jsonschema.Schema{}
	for _, name := range append([]string{"ipsecpath"}, report.SchemaNames...) {
		s, err := c.Compile(report.SchemaBase + name + ".json")
		if err != nil {
			compErr = fmt.Errorf("compile schema %s: %w", name, err)
			return
		}
		compiled[name] = s
	}
}

// Check validates data, one JSON document, against the schema of the command name (one of
// report.SchemaNames, or "ipsecpath" for the bundle that accepts any result).
func Check(name string, data []byte) error {
	once.Do(compile)
	if compErr != nil {
		return compErr
	}
	s, ok := compiled[name]
	if !ok {
		return fmt.Errorf("schematest: no schema %q", name)
	}
	inst, err := jsonschema.UnmarshalJSON(bytes.NewReader(data))
	if err != nil {
		return fmt.Errorf("not JSON: %w", err)
	}
	if err := s.Validate(inst); err != nil {
		return fmt.Errorf("%s result does not match its schema: %v", name, err)
	}
	return nil
}

// Validate fails t when data is not a valid result of command name (see Check).
func Validate(t TB, name string, data []byte) {
	t.Helper()
	if err := Check(name, data); err != nil {
		t.Errorf("%v\n%s", err, clip(data))
	}
}

// ValidateValue marshals v as the command would print it and validates it.
func ValidateValue(t TB, name string, v any) {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatalf("marshal %s result: %v", name, err)
	}
	Validate(t, name, b)
}

func clip(b []byte) []byte {
	if len(b) > 4000 {
		return append(b[:4000:4000], "…"...)
	}
	return b
}
