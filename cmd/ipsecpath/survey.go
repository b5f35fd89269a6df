package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/spf13/pflag"

	"github.com/ipsecpath/ipsecpath/probe"
	"github.com/ipsecpath/ipsecpath/probe/survey"
	"github.com/ipsecpath/ipsecpath/report"
)

func init() {
	register(&command{
		name:     "survey",
		synopsis: "--targets FILE [--parallel N] [--pace N] [--timeout D] [--tcp PORTS] [--json | --format F] [--out-dir DIR]",
		summary:  "check toward many targets at once, under one global pace: one matrix of target × probe",
		long: `Runs 'check' toward every target of a targets file, several at once, and prints one matrix:
a row per target and direction (→ forward, ← reverse with an agent), a column per probe.

Targets file, CSV (one target per line; # comments; a first line starting with "target" is
a header naming the columns in any order):
  target,agent,key_file,label,probes,netns
  203.0.113.10,203.0.113.10:7500,/etc/ipsecpath.key,hq,
  198.51.100.7,,,branch-7,ike ike-frag natt esp
or YAML (.yaml/.yml), the same keys:
  targets:
    - {target: 203.0.113.10, agent: 203.0.113.10:7500, key_file: /etc/ipsecpath.key, label: hq}
    - {target: 198.51.100.7, label: branch-7, probes: [ike, ike-frag, natt]}
Only target is required. agent and key_file go together (the agent runs on the target).
probes is a probe list as for check (spaces or semicolons between ids; empty: every probe).
netns runs that target's check from inside a network namespace of this host (/run/netns/
NAME, e.g. a VRF or a customer's namespace) instead of from where the survey runs.

Pace: --parallel checks run at once (default 8: IKE to hundreds of hosts at once looks
like an attack to their IDS); --pace is what they send together, in packets per second,
shared equally (each check at most 100/s, like check's default). Path MTU searches, a
few dozen echoes per target, come on top. The whole survey takes about one check's time
per --parallel targets.

How to read the matrix: each cell is the verdict of that probe in that direction (pass,
DROP dropped, BLOCK refused by an ICMP error or a reset, FRAG frag-dropped, PART some
fragments lost, ERR could not run, skip skipped, - not asked); STATUS says per target pass,
FAIL (then "What failed" lists each failed verdict with its detail), SILENT (nothing at all
came back, neither from the target nor from any device on the path: a host that is down, a
wrong address, or a path that filters everything without a word: not a fault of one probe),
or ERROR (the check could not run: agent unreachable, wrong key, no route; the line says
which).

With --out-dir DIR each target's report is written to DIR/<label or address>.json (the
check --json form, for 'ipsecpath diff' against a later survey), and the whole survey to
DIR/survey.json.

Exit status: 0 every target passed, 1 a target failed, was silent or could not be checked,
2 usage or environment error (bad targets file, unreadable key file, no root). Progress goes
to stderr once the survey runs over a second, never with --json. Needs root or CAP_NET_RAW
(and CAP_SYS_ADMIN for netns).`,
		examples: []string{
			"ipsecpath survey --targets sites.csv",
			"ipsecpath survey --targets sites.yaml --parallel 16 --pace 800 --out-dir surveys/$(date +%F)",
			"ipsecpath survey --targets sites.csv --format markdown > survey.md",
			"ipsecpath survey --targets sites.csv --format html > survey.html",
			"ipsecpath diff surveys/2026-11-28/hq.json surveys/2026-11-29/hq.json",
		},
		run: runSurvey,
	})
}

// surveyFormats are the forms survey prints.
var surveyFormats = []string{report.FormatText, report.FormatJSON, report.FormatMarkdown, report.FormatHTML}

// checkWithPMTU is a check with the path MTU searches plugged in, as `check` runs it.
func checkWithPMTU(ctx context.Context, cfg probe.CheckConfig) (*report.Report, error) {
	wirePMTU(&cfg)
	rep, err := probe.Check(ctx, cfg)
	if err != nil {
		return nil, checkErrorLine(err)
	}
	return rep, nil
}

func runSurvey(ctx context.Context, e *env, args []string) int {
	c := commands["survey"]
	fs := newFlags(c)
	f := addSurveyFlags(fs)
	if done, code := parse(e, c, fs, args); done {
		return code
	}
	cfg, err := f.config(fs)
	if err != nil {
		return usageError(e, c, err)
	}
	quiet := *f.format == report.FormatJSON
	cfg.Progress = surveyProgress(newProgress(e.stderr, quiet))
	s, err := survey.Run(ctx, cfg)
	if err != nil {
		return usageError(e, c, err)
	}
	if *f.outDir != "" {
		if err := writeSurveyDir(*f.outDir, s); err != nil {
			return usageError(e, c, fmt.Errorf("--out-dir: %w", err))
		}
	}
	if err := writeSurvey(e.stdout, *f.format, s); err != nil {
		return usageError(e, c, fmt.Errorf("write the survey to stdout: %w", err))
	}
	if s.Failed() {
		return exitFail
	}
	return exitOK
}

// surveyFlags are the flags of survey, registered in the order its help lists them.
type surveyFlags struct {
	targets, tcp, format, outDir *string
	parallel, pace               *int
	timeout                      *time.Duration
	asJSON                       *bool
}

func addSurveyFlags(fs *pflag.FlagSet) *surveyFlags {
	f := &surveyFlags{}
	f.targets = fs.String("targets", "", "targets `FILE` (CSV or YAML, see above; required)")
	f.parallel = fs.Int("parallel", survey.DefaultParallel, "checks at once (`N`)")
	f.pace = fs.Int("pace", survey.DefaultPace, "packets per second all checks send together (`N`)")
	f.timeout = fs.Duration("timeout", probe.DefaultCheckTimeout, "each check's wait for answers (`D`)")
	f.tcp = fs.String("tcp", "445,1792", "TCP `PORTS` for the tcp probes")
	f.format = fs.String("format", report.FormatText, "output form on stdout: "+strings.Join(surveyFormats, ", "))
	f.asJSON = fs.Bool("json", false, "shorthand for --format json")
	f.outDir = fs.String("out-dir", "", "write each target's report and survey.json into `DIR` (for 'ipsecpath diff')")
	return f
}

// config reads the parsed flags and the targets file, checked in this order (the first bad
// one is the usage error), and plans the survey.
func (f *surveyFlags) config(fs *pflag.FlagSet) (survey.Config, error) {
	var cfg survey.Config
	if fs.NArg() != 0 {
		return cfg, fmt.Errorf("unexpected argument %q (targets come from --targets FILE)", fs.Arg(0))
	}
	if err := f.resolveFormat(fs); err != nil {
		return cfg, err
	}
	if *f.targets == "" {
		return cfg, errors.New("--targets FILE is required")
	}
	if *f.timeout <= 0 || *f.timeout > probe.MaxCheckTimeout {
		return cfg, fmt.Errorf("--timeout %s: want more than 0 and at most %s", *f.timeout, probe.MaxCheckTimeout)
	}
	ports, err := probe.ParseTCPPorts(*f.tcp)
	if err != nil {
		return cfg, fmt.Errorf("--tcp: %w", err)
	}
	data, err := readBounded(*f.targets, survey.MaxTargetsFileSize)
	if err != nil {
		return cfg, fmt.Errorf("--targets: %w", err)
	}
	list, err := survey.ParseTargets(*f.targets, data, ports)
	if err != nil {
		return cfg, fmt.Errorf("--targets %s: %w", *f.targets, err)
	}
	if *f.parallel < 1 || *f.parallel > survey.MaxParallel {
		return cfg, fmt.Errorf("--parallel %d: want 1-%d", *f.parallel, survey.MaxParallel)
	}
	if *f.pace < 1 {
		return cfg, fmt.Errorf("--pace %d: want at least 1 packet per second", *f.pace)
	}
	cfg = survey.Config{Targets: list, Parallel: *f.parallel, Pace: *f.pace, Timeout: *f.timeout, TCPPorts: ports, Check: checkWithPMTU}
	if _, _, _, err := survey.Plan(cfg); err != nil {
		return cfg, err
	}
	if *f.outDir != "" {
		if err := writableDir(*f.outDir); err != nil {
			return cfg, fmt.Errorf("--out-dir: %w", err)
		}
	}
	return cfg, nil
}

// resolveFormat settles --format and --json into one of surveyFormats.
func (f *surveyFlags) resolveFormat(fs *pflag.FlagSet) error {
	if *f.asJSON {
		if fs.Changed("format") && *f.format != report.FormatJSON {
			return fmt.Errorf("--json and --format %s contradict each other: give one", *f.format)
		}
		*f.format = report.FormatJSON
	}
	switch *f.format {
	case report.FormatText, report.FormatJSON, report.FormatMarkdown, report.FormatHTML:
		return nil
	}
	return fmt.Errorf("--format: unknown format %q for a survey (valid: %s)", *f.format, strings.Join(surveyFormats, ", "))
}

// writeSurvey prints the survey in one of surveyFormats.
func writeSurvey(w io.Writer, format string, s *report.Survey) error {
	switch format {
	case report.FormatJSON:
		return s.WriteJSON(w)
	case report.FormatMarkdown:
		return s.WriteMarkdown(w)
	case report.FormatHTML:
		return s.WriteHTML(w)
	}
	return s.WriteText(w)
}

// readBounded reads at most limit bytes of a regular file.
func readBounded(path string, limit int64) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return nil, err
	}
	if !fi.Mode().IsRegular() {
		return nil, fmt.Errorf("%s is not a regular file", path)
	}
	if fi.Size() > limit {
		return nil, fmt.Errorf("%s is larger than %d bytes", path, limit)
	}
	var b bytes.Buffer
	if _, err := b.ReadFrom(f); err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return b.Bytes(), nil
}

// writableDir checks that dir is a directory we can create files in, before any probe.
func writableDir(dir string) error {
	fi, err := os.Stat(dir)
	if err != nil {
		return err
	}
	if !fi.IsDir() {
		return fmt.Errorf("%s is not a directory", dir)
	}
	f, err := os.CreateTemp(dir, ".ipsecpath-probe*")
	if err != nil {
		return fmt.Errorf("%s is not writable: %w", dir, err)
	}
	f.Close()
	return os.Remove(f.Name())
}

// writeSurveyDir writes each target's report as DIR/<label or address>.json (made unique
// with -2, -3…) and the survey as DIR/survey.json, and records the file names in s.
func writeSurveyDir(dir string, s *report.Survey) error {
	used := map[string]bool{"survey": true}
	for i := range s.Targets {
		t := &s.Targets[i]
		if t.Report == nil {
			continue
		}
		base := fileSafe(t.Label)
		if base == "" {
			base = fileSafe(t.Target)
		}
		name := base
		for n := 2; used[name]; n++ {
			name = fmt.Sprintf("%s-%d", base, n)
		}
		used[name] = true
		var buf bytes.Buffer
		if err := t.Report.WriteJSON(&buf); err != nil {
			return err
		}
		path := filepath.Join(dir, name+".json")
		if err := writeFileAtomic(path, buf.Bytes()); err != nil {
			return err // it names path
		}
		t.File = path
	}
	s.OutDir = dir
	var buf bytes.Buffer
	if err := s.WriteJSON(&buf); err != nil {
		return err
	}
	return writeFileAtomic(filepath.Join(dir, "survey.json"), buf.Bytes())
}

// fileSafe keeps letters, digits, dot, dash and underscore of s (others become _), never
// starting with a dot.
func fileSafe(s string) string {
	b := []byte(s)
	for i, c := range b {
		ok := c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_' || c == '.'
		if !ok || (i == 0 && c == '.') {
			b[i] = '_'
		}
	}
	return string(b)
}

// surveyProgress prints the survey's state when a check finished, and otherwise at most
// twice a second.
func surveyProgress(p *progress) func(survey.Progress) {
	var mu sync.Mutex
	var at time.Time
	lastDone := 0
	return func(sp survey.Progress) {
		mu.Lock()
		defer mu.Unlock()
		if sp.Done == lastDone && time.Since(at) < 500*time.Millisecond {
			return
		}
		lastDone, at = sp.Done, time.Now()
		line := fmt.Sprintf("survey: %d/%d targets done, %d failing", sp.Done, sp.Total, sp.Failed)
		if len(sp.Running) > 0 {
			line += "; running: " + strings.Join(sp.Running, ", ")
		}
		p.Printf("%s", line)
	}
}
