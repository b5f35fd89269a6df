package main

import (
	"bytes"
	"context"
	"testing"
	"time"
)

// cliTimeout bounds one in-process run of the CLI in a test.
const cliTimeout = time.Minute

// runCLI runs the CLI in-process with args (the subcommand first) and returns its exit code
// and what it printed on stdout and stderr.
func runCLI(t testing.TB, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	var out, errb bytes.Buffer
	ctx, cancel := context.WithTimeout(context.Background(), cliTimeout)
	defer cancel()
	code = run(ctx, args, &out, &errb)
	validateOutputs(t, args, code, out.String())
	return code, out.String(), errb.String()
}
