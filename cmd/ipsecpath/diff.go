package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"slices"
	"strings"

	"github.com/ipsecpath/ipsecpath/report"
)

func init() {
	register(&command{
		name:     "diff",
		synopsis: "BEFORE.json AFTER.json [--json | --format text|json|markdown|html] [--force]",
		summary:  "compare two runs (before and after a change): regressions, fixes, path MTU",
		long: `Reads two results written by 'check --json' or 'check --out F.json' and matches them by
probe and direction. It lists:

  REGRESSIONS  passed before, fail now (dropped, blocked, frag-dropped, partial, error)
  FIXES        failed before, pass now
  CHANGED      any other verdict change, e.g. dropped -> blocked, or pass -> skipped
  ONLY BEFORE  probes the second run did not run; ONLY AFTER: new ones
  PATH MTU     a different path MTU; a black hole that appeared counts as a regression

--format prints the difference as text (the default), json, markdown (for a ticket) or html
(one self-contained page); --json is short for --format json.

Two runs against different targets are different paths, not a before and an after: diff
refuses them (exit 2) unless --force, and then says so in what it prints.

Exit status: 0 no regression, 1 at least one regression, 2 a file is missing or is not an
ipsecpath result, or the targets differ without --force (one line says what is wrong).`,
		examples: []string{
			"ipsecpath check 203.0.113.10 --agent 203.0.113.10:7500 --key-file k --out before.json",
			"# … change the firewall, then:",
			"ipsecpath check 203.0.113.10 --agent 203.0.113.10:7500 --key-file k --out after.json",
			"ipsecpath diff before.json after.json",
			"ipsecpath diff before.json after.json --json | jq .regressions",
			"ipsecpath diff before.json after.json --format html > change.html",
		},
		run: runDiff,
	})
}

func runDiff(_ context.Context, e *env, args []string) int {
	c := commands["diff"]
	flags := newFlags(c)
	asJSON := flags.Bool("json", false, "print the difference as JSON (regressions, fixes, changed, only_before, only_after, pmtu_changes)")
	format := flags.String("format", report.FormatText, "output form: "+strings.Join(report.DiffFormats, ", "))
	force := flags.Bool("force", false, "compare runs against different targets anyway")
	if done, code := parse(e, c, flags, args); done {
		return code
	}
	if !slices.Contains(report.DiffFormats, *format) {
		return usageError(e, c, fmt.Errorf("--format: unknown format %q (valid: %s)", *format, strings.Join(report.DiffFormats, ", ")))
	}
	if *asJSON {
		if flags.Changed("format") && *format != report.FormatJSON {
			return usageError(e, c, fmt.Errorf("--json and --format %s contradict each other: give one", *format))
		}
		*format = report.FormatJSON
	}
	if flags.NArg() != 2 {
		return usageError(e, c, fmt.Errorf("want two files, BEFORE.json and AFTER.json; got %d argument(s)", flags.NArg()))
	}
	before, err := readReport(flags.Arg(0))
	if err != nil {
		return usageError(e, c, err)
	}
	after, err := readReport(flags.Arg(1))
	if err != nil {
		return usageError(e, c, err)
	}
	if err := report.CheckComparable(before, after); err != nil && !*force {
		return usageError(e, c, fmt.Errorf("%s and %s: %s; give --force to compare them anyway", flags.Arg(0), flags.Arg(1), strings.TrimPrefix(err.Error(), "report: ")))
	}
	d := report.Diff(before, after)
	if err := d.Render(e.stdout, *format); err != nil {
		return usageError(e, c, err)
	}
	if d.Regression {
		return exitFail
	}
	return exitOK
}

// maxReportBytes bounds what diff reads of one file: a real result is a few kB.
const maxReportBytes = 64 << 20

// readReport reads one result file; its errors start with the file's name and say what is
// wrong with it, in one line.
func readReport(name string) (*report.Report, error) {
	if name == "" {
		return nil, errors.New("empty file name: give two result files")
	}
	f, err := os.Open(name)
	if err != nil {
		var pe *fs.PathError
		if errors.As(err, &pe) {
			err = pe.Err
		}
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, maxReportBytes+1))
	if err != nil {
		return nil, fmt.Errorf("%s: read: %w", name, err)
	}
	if len(data) > maxReportBytes {
		return nil, fmt.Errorf("%s: larger than %d MiB: not an ipsecpath result", name, maxReportBytes>>20)
	}
	r, err := report.ReadJSON(bytes.NewReader(data))
	if err != nil {
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	return r, nil
}
