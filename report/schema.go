package report

import (
	"bytes"
	"embed"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
)

// The JSON Schemas (draft 2020-12) of every --json result, one file per result under
// schema/: defs.json holds what all of them share (the report contract: result, hop,
// evidence, …), and each command's file is the report object plus its own fields, closed
// with unevaluatedProperties so that a field nobody documented fails validation. A new
// command's result (trace, stateful, survey, ladder) is one more file here and one more
// name in SchemaNames.
//
//go:embed schema/*.json
var schemaFS embed.FS

// SchemaBase is the URI every schema's $id starts with; a schema file NAME.json has the
// $id SchemaBase+"NAME.json".
const SchemaBase = "https://github.com/ipsecpath/ipsecpath/report/schema/"

// SchemaNames lists the result schemas: the command whose --json output each describes.
// "defs" (shared definitions) is not a result and is not listed.
var SchemaNames = []string{"check", "ike", "pmtu", "diff", "ladder", "survey"}

// Schema returns the schema file NAME.json ("defs" or one of SchemaNames).
func Schema(name string) ([]byte, error) {
	if name != "defs" && !slices.Contains(SchemaNames, name) {
		return nil, fmt.Errorf("report: no schema %q (known: %s)", name, strings.Join(SchemaNames, ", "))
	}
	b, err := schemaFS.ReadFile("schema/" + name + ".json")
	if err != nil {
		return nil, fmt.Errorf("report: schema %s: %w", name, err)
	}
	return b, nil
}

// SchemaBundle returns one self-contained schema document holding every schema as an
// embedded resource (each keeps its own $id, so their references resolve inside the
// document): a result of any command validates against it, and a consumer that knows which
// command wrote a result can refer to that command's $id directly.
func SchemaBundle() ([]byte, error) {
	defs := map[string]json.RawMessage{}
	var anyOf []map[string]string
	for _, name := range append([]string{"defs"}, SchemaNames...) {
		b, err := Schema(name)
		if err != nil {
			return nil, err
		}
		var compact bytes.Buffer
		if err := json.Compact(&compact, b); err != nil {
			return nil, fmt.Errorf("report: schema %s: %w", name, err)
		}
		defs[name] = json.RawMessage(compact.Bytes())
		if name != "defs" {
			anyOf = append(anyOf, map[string]string{"$ref": SchemaBase + name + ".json"})
		}
	}
	doc := struct {
		Schema      string                     `json:"$schema"`
		ID          string                     `json:"$id"`
		Title       string                     `json:"title"`
		Description string                     `json:"description"`
		AnyOf       []map[string]string        `json:"anyOf"`
		Defs        map[string]json.RawMessage `json:"$defs"`
	}{
		Schema:      "https://json-schema.org/draft/2020-12/schema",
		ID:          SchemaBase + "ipsecpath.json",
		Title:       Tool + " " + Version + ": every --json result",
		Description: "A result of any ipsecpath command (" + strings.Join(SchemaNames, ", ") + "); each command's own schema is in $defs under its name, with its own $id.",
		AnyOf:       anyOf,
		Defs:        defs,
	}
	out, err := json.MarshalIndent(doc, "", "  ")
	if err != nil {
		return nil, fmt.Errorf("report: schema bundle: %w", err)
	}
	return append(out, '\n'), nil
}
