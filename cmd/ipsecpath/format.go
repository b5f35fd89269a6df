package main

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"path/filepath"
	"strings"

	"github.com/ipsecpath/ipsecpath/report"
	"github.com/spf13/pflag"
)

// output is how a command that produces a report.Report prints it. Every such command
// (check, and any other that builds a Report) shares these flags, so they mean the same
// everywhere:
//
//	--format F   the form printed on stdout: text (default: the aligned table), json (the
//	             contract of DESIGN.md), markdown (for a ticket) or junit (XML for CI).
//	--json       shorthand for --format json. With a different --format it is a usage error.
//	--out FILE   ALSO write the report to FILE; stdout still gets it. The usual run is
//	             `check … --out before.json`: a person reads the table, and the file is kept
//	             for `ipsecpath diff` or a ticket. FILE's form follows its extension: .json →
//	             json, .md/.markdown → markdown, .xml → junit, .txt/.text → text, .html/.htm →
//	             html (one self-contained page with the path drawn); any other
//	             extension gets the stdout form. FILE is written to a temporary file in the
//	             same directory and renamed, so a killed run never leaves half a report;
//	             it replaces only a regular file (never a device node, a symbolic link or a
//	             directory), and resolve checks that before the run (report.CheckOutputPath).
//	--color      colour the verdicts in the text table (ANSI). Off by default; never used
//	             for --out files.
//
// Use: o := addOutputFlags(fs) before parsing; o.resolve() after (a usage error, exit 2,
// when it fails); o.quiet() to silence progress; o.write(e, r) at the end (an error names
// what could not be written: report it with usageError, exit 2).
type output struct {
	fs     *pflag.FlagSet
	format string // what --format said, then resolved: one of report.Formats
	json   bool
	out    string
	color  bool

	outFormat string // the form of the --out file, set by resolve
}

// addOutputFlags declares --format, --json, --out and --color on fs.
func addOutputFlags(fs *pflag.FlagSet) *output {
	o := &output{fs: fs}
	fs.StringVar(&o.format, "format", report.FormatText,
		"output form on stdout: "+strings.Join(report.Formats, ", "))
	fs.BoolVar(&o.json, "json", false, "shorthand for --format json (the JSON contract)")
	fs.StringVar(&o.out, "out", "", "also write the report to `FILE` (form from its extension: .json, .md, .xml, .txt, .html)")
	fs.BoolVar(&o.color, "color", false, "colour the verdicts of the text table (for a terminal)")
	return o
}

// resolve checks the flags after parsing and settles the stdout and --out forms.
func (o *output) resolve() error {
	if err := report.CheckFormat(o.format); err != nil {
		return fmt.Errorf("--format: unknown format %q (valid: %s)", o.format, strings.Join(report.Formats, ", "))
	}
	if o.json {
		if o.fs != nil && o.fs.Changed("format") && o.format != report.FormatJSON {
			return fmt.Errorf("--json and --format %s contradict each other: give one", o.format)
		}
		o.format = report.FormatJSON
	}
	if o.out == "" && o.fs != nil && o.fs.Changed("out") {
		return errors.New("--out is empty: give a file name (or leave --out out)")
	}
	if o.out == "-" {
		return errors.New("--out -: the report already goes to stdout; give a file name")
	}
	if o.out != "" {
		// fail now rather than after a run of many seconds
		if err := report.CheckOutputPath(o.out); err != nil {
			return fmt.Errorf("--out: %w", err)
		}
		o.outFormat = outFileFormat(o.out, o.format)
	}
	return nil
}

// quiet reports whether progress lines should be suppressed: for the machine forms (json,
// junit), whose readers want nothing but the document.
func (o *output) quiet() bool {
	return o.format == report.FormatJSON || o.format == report.FormatJUnit
}

// write prints r on stdout in the resolved form, then writes the --out file if asked.
func (o *output) write(e *env, r *report.Report) error {
	var err error
	if o.format == report.FormatText {
		err = r.WriteText(e.stdout, report.TextOptions{Color: o.color})
	} else {
		err = report.Render(e.stdout, r, o.format)
	}
	if err != nil {
		return fmt.Errorf("write the report to stdout: %w", err)
	}
	return o.writeFile(func(w io.Writer, format string) error { return report.Render(w, r, format) })
}

// writeFile writes the --out file, if asked, in its resolved form: write renders the
// result in the form it is given.
func (o *output) writeFile(write func(w io.Writer, format string) error) error {
	if o.out == "" {
		return nil
	}
	var buf bytes.Buffer
	if err := write(&buf, o.outFormat); err != nil {
		return fmt.Errorf("--out %s: %w", o.out, err)
	}
	if err := writeFileAtomic(o.out, buf.Bytes()); err != nil {
		return fmt.Errorf("--out: %w", err)
	}
	return nil
}

// outFileFormat picks the form of an --out file from its extension, else fallback.
func outFileFormat(path, fallback string) string {
	switch strings.ToLower(filepath.Ext(path)) {
	case ".json":
		return report.FormatJSON
	case ".md", ".markdown":
		return report.FormatMarkdown
	case ".xml":
		return report.FormatJUnit
	case ".txt", ".text":
		return report.FormatText
	case ".html", ".htm":
		return report.FormatHTML
	}
	return fallback
}

// writeFileAtomic writes data to the output file path (report.WriteOutputFile: a temporary
// file next to it renamed into place, so readers see either the old file or the whole new
// one; only a regular file is ever replaced, never a device node, symbolic link or
// directory). A new file is mode 0644. Its errors name path.
func writeFileAtomic(path string, data []byte) error {
	return report.WriteOutputFile(path, data)
}
