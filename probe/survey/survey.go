package survey

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"sync"
	"time"

	"github.com/ipsecpath/ipsecpath/probe"
	"github.com/ipsecpath/ipsecpath/report"
)

// Defaults of a survey.
const (
	// DefaultParallel is how many checks run at once. The IPsec guides warn that IKE sent to
	// hundreds of hosts at once looks like an attack; raise it knowingly.
	DefaultParallel = 8
	// MaxParallel bounds --parallel: every check holds raw sockets and a packet capture.
	MaxParallel = 64
	// DefaultPace is the packets per second all checks together send at most.
	DefaultPace = 400
)

// Config is a survey.
type Config struct {
	Targets []Target
	// Parallel is how many checks run at once (0: DefaultParallel).
	Parallel int
	// Pace is what all checks together send at most, in packets per second (0: DefaultPace).
	// Each check gets Pace divided by the checks that run at once, and never more than
	// probe.DefaultRate: the sum of the rates of the running checks stays within Pace. The
	// path MTU searches (a few dozen echoes per target) come on top.
	Pace int
	// Timeout and TCPPorts are every check's (see probe.CheckConfig).
	Timeout  time.Duration
	TCPPorts []int
	// Check runs one check (probe.Check with the path MTU searches plugged in). It is called
	// in the target's network namespace, on a goroutine of its own.
	Check func(ctx context.Context, cfg probe.CheckConfig) (*report.Report, error)
	// LoadKey reads a key file (nil: probe.LoadKey). Every key file is read before any
	// check starts.
	LoadKey func(path string) ([]byte, error)
	// Progress, when set, is called (from several goroutines, serialised) as checks move on.
	Progress func(Progress)
}

// Progress is where a survey stands.
type Progress struct {
	Total, Done, Failed int
	// Running names each running check and its own progress ("lab-a: probing 10/22").
	Running []string
}

// Plan settles the parallelism and the per-check pace of cfg: parallel checks at once,
// each at perTarget packets per second. An error says why cfg cannot run.
func Plan(cfg Config) (parallel, pace, perTarget int, err error) {
	parallel, pace = cfg.Parallel, cfg.Pace
	if parallel == 0 {
		parallel = DefaultParallel
	}
	if pace == 0 {
		pace = DefaultPace
	}
	if parallel < 1 || parallel > MaxParallel {
		return 0, 0, 0, fmt.Errorf("parallel %d: want 1-%d", parallel, MaxParallel)
	}
	if pace < 1 || pace > probe.MaxRate*MaxParallel {
		return 0, 0, 0, fmt.Errorf("pace %d: want 1-%d packets per second", pace, probe.MaxRate*MaxParallel)
	}
	parallel = max(1, min(parallel, len(cfg.Targets)))
	perTarget = min(pace/parallel, probe.DefaultRate)
	if perTarget < 1 {
		return 0, 0, 0, fmt.Errorf("pace %d packets/s shared by %d checks at once leaves less than 1 per check: lower --parallel or raise --pace", pace, parallel)
	}
	return parallel, pace, perTarget, nil
}

// Run checks every target, at most parallel at once, and returns the survey with the
// targets in the file's order. A target whose check cannot run is a TargetError row, not an
// error of Run; Run fails only on bad configuration (a key file that cannot be read) before
// anything was sent, or when ctx ends (then it says how far it got).
func Run(ctx context.Context, cfg Config) (*report.Survey, error) {
	parallel, pace, perTarget, err := Plan(cfg)
	if err != nil {
		return nil, err
	}
	if cfg.Check == nil {
		return nil, errors.New("survey: no check function")
	}
	load := cfg.LoadKey
	if load == nil {
		load = probe.LoadKey
	}
	keys := map[string][]byte{}
	for _, t := range cfg.Targets {
		if t.KeyFile == "" || keys[t.KeyFile] != nil {
			continue
		}
		k, err := load(t.KeyFile)
		if err != nil {
			return nil, fmt.Errorf("line %d: %w", t.Line, err)
		}
		keys[t.KeyFile] = k
	}
	started := time.Now()
	s := &report.Survey{Tool: report.Tool, Version: report.Version, Kind: "survey",
		Started: started.UTC().Truncate(time.Millisecond), Parallel: parallel, Pace: pace, TargetPace: perTarget,
		Targets: make([]report.SurveyTarget, len(cfg.Targets))}
	st := &state{cfg: cfg, running: map[int]string{}, total: len(cfg.Targets)}
	sem := make(chan struct{}, parallel)
	var wg sync.WaitGroup
	for i, t := range cfg.Targets {
		s.Targets[i] = report.SurveyTarget{Label: t.Label, Target: t.Addr.String(), Agent: t.Agent, Netns: t.Netns}
		select {
		case sem <- struct{}{}:
		case <-ctx.Done():
		}
		if ctx.Err() != nil {
			break
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			cc := probe.CheckConfig{Target: t.Addr, Agent: t.Agent, Key: keys[t.KeyFile], Probes: t.Probes,
				TCPPorts: cfg.TCPPorts, Timeout: cfg.Timeout, Pace: perTarget}
			name := t.Label
			if name == "" {
				name = t.Addr.String()
			}
			cc.Progress = func(p probe.CheckProgress) {
				st.update(i, fmt.Sprintf("%s: %s %d/%d", name, p.Phase, p.Decided, p.Total))
			}
			st.update(i, name+": starting")
			var rep *report.Report
			err := probe.InNetns(t.Netns, func() error {
				var err error
				rep, err = cfg.Check(ctx, cc)
				return err
			})
			row := &s.Targets[i]
			if err != nil {
				row.Status, row.Error = report.TargetError, err.Error()
			} else {
				row.Report, row.Status = rep, report.StatusOf(rep)
			}
			st.finish(i, row.Status.Failed())
		}()
	}
	wg.Wait()
	if ctx.Err() != nil {
		return nil, fmt.Errorf("survey interrupted after %d of %d targets: %w", st.done, st.total, ctx.Err())
	}
	s.DurationMs = time.Since(started).Milliseconds()
	s.Summarize()
	return s, nil
}

// state is the progress of a running survey.
type state struct {
	cfg     Config
	mu      sync.Mutex
	running map[int]string
	total   int
	done    int
	failed  int
}

func (st *state) update(i int, what string) {
	st.mu.Lock()
	defer st.mu.Unlock()
	st.running[i] = what
	st.report()
}

func (st *state) finish(i int, failed bool) {
	st.mu.Lock()
	defer st.mu.Unlock()
	delete(st.running, i)
	st.done++
	if failed {
		st.failed++
	}
	st.report()
}

// report calls Progress; the caller holds st.mu, which serialises the calls.
func (st *state) report() {
	if st.cfg.Progress == nil {
		return
	}
	idx := make([]int, 0, len(st.running))
	for i := range st.running {
		idx = append(idx, i)
	}
	sort.Ints(idx)
	p := Progress{Total: st.total, Done: st.done, Failed: st.failed}
	for _, i := range idx {
		p.Running = append(p.Running, st.running[i])
	}
	st.cfg.Progress(p)
}
