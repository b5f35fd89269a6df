package main

import (
	"context"
	"fmt"
	"strings"

	"github.com/ipsecpath/ipsecpath/report"
)

func init() {
	register(&command{
		name:     "schema",
		synopsis: "[NAME]",
		summary:  "print the JSON Schema (draft 2020-12) of every --json result",
		long: `Without NAME: one schema document that accepts the --json result of any command; each
command's own schema is inside it under $defs, with its own $id, so a pipeline can refer to
exactly the one it reads. With NAME (` + strings.Join(report.SchemaNames, ", ") + `, or defs for the shared
definitions): that schema alone, as it is kept in the repository (report/schema/NAME.json).

The schemas are closed: a field that is not in them fails validation, so a pipeline that
validates what it reads notices when a result changes shape.`,
		examples: []string{
			"ipsecpath schema > ipsecpath.schema.json",
			"ipsecpath schema check",
			"ipsecpath check 203.0.113.10 --json > run.json   # then validate run.json with any 2020-12 validator",
		},
		run: runSchema,
	})
}

func runSchema(_ context.Context, e *env, args []string) int {
	c := commands["schema"]
	fs := newFlags(c)
	if done, code := parse(e, c, fs, args); done {
		return code
	}
	var b []byte
	var err error
	switch fs.NArg() {
	case 0:
		b, err = report.SchemaBundle()
	case 1:
		b, err = report.Schema(fs.Arg(0))
	default:
		return usageError(e, c, fmt.Errorf("want at most one schema NAME, got %d arguments", fs.NArg()))
	}
	if err != nil {
		return usageError(e, c, fmt.Errorf("%s", strings.TrimPrefix(err.Error(), "report: ")))
	}
	if _, err := e.stdout.Write(b); err != nil {
		return usageError(e, c, fmt.Errorf("write: %w", err))
	}
	return exitOK
}
