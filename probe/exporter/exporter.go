package exporter

import (
	"context"
	"errors"
	"fmt"
	"html"
	"net/http"
	"net/netip"
	"strconv"
	"sync"
	"time"

	"github.com/ipsecpath/ipsecpath/probe"
	"github.com/ipsecpath/ipsecpath/report"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// Timing of a scrape.
const (
	// TimeoutOffset is kept back from the scrape's timeout (X-Prometheus-Scrape-Timeout-
	// Seconds) for writing the answer, as blackbox_exporter does.
	TimeoutOffset = 500 * time.Millisecond
	// DefaultScrapeTimeout is assumed when a scrape does not say (Prometheus's default).
	DefaultScrapeTimeout = 10 * time.Second
	// runOverhead is what a check needs besides its wait for answers: setup, the agent's
	// greeting and the last report.
	runOverhead = time.Second
	// minWait is the shortest wait for answers a run is started with.
	minWait = 200 * time.Millisecond
)

// CheckFunc runs one check (probe.Check with the path MTU searches plugged in).
type CheckFunc func(ctx context.Context, cfg probe.CheckConfig) (*report.Report, error)

// Exporter serves /probe and /metrics. Create it with New.
type Exporter struct {
	cfg   *Config
	check CheckFunc
	logf  func(format string, args ...any)

	slots chan struct{} // one per check that may run at once

	mu       sync.Mutex
	inflight map[string]*run        // module|target → the run scrapes share
	targets  map[string]*targetLock // per target (and namespace) with a run: runs toward it never overlap

	reg      *prometheus.Registry
	scrapes  *prometheus.CounterVec
	runs     *prometheus.CounterVec
	shared   *prometheus.CounterVec
	inFlight prometheus.Gauge
	runTime  *prometheus.HistogramVec
}

// targetLock serialises the runs toward one target; it is dropped when no run needs it, so
// the map stays as small as the runs in flight.
type targetLock struct {
	ch    chan bool
	users int // runs holding or waiting for it (under Exporter.mu)
}

// run is one check that one or more scrapes wait for.
type run struct {
	done chan struct{}
	rep  *report.Report
	err  error
	dur  time.Duration
}

// New returns an exporter for cfg; check runs the checks; logf gets one line per failed run
// or refused scrape (nil: silent).
func New(cfg *Config, check CheckFunc, logf func(string, ...any)) *Exporter {
	if logf == nil {
		logf = func(string, ...any) {}
	}
	n := cfg.MaxConcurrent
	if n <= 0 {
		n = DefaultMaxConcurrent
	}
	e := &Exporter{cfg: cfg, check: check, logf: logf, slots: make(chan struct{}, n),
		inflight: map[string]*run{}, targets: map[string]*targetLock{}, reg: prometheus.NewRegistry()}
	e.scrapes = prometheus.NewCounterVec(prometheus.CounterOpts{Name: "ipsecpath_exporter_scrapes_total",
		Help: "Scrapes of /probe by module and result: ok (the check ran), failed (it could not run), refused (bad or disallowed target, unknown module), busy (no slot within the scrape's timeout)."},
		[]string{"module", "result"})
	e.runs = prometheus.NewCounterVec(prometheus.CounterOpts{Name: "ipsecpath_exporter_runs_total",
		Help: "Checks started, by module."}, []string{"module"})
	e.shared = prometheus.NewCounterVec(prometheus.CounterOpts{Name: "ipsecpath_exporter_shared_scrapes_total",
		Help: "Scrapes answered by a check another scrape of the same target and module had started."}, []string{"module"})
	e.inFlight = prometheus.NewGauge(prometheus.GaugeOpts{Name: "ipsecpath_exporter_runs_in_flight",
		Help: "Checks running now."})
	e.runTime = prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "ipsecpath_exporter_run_duration_seconds",
		Help: "How long checks took, by module.", Buckets: []float64{0.5, 1, 2, 3, 5, 8, 13, 21, 34, 60}}, []string{"module"})
	e.reg.MustRegister(e.scrapes, e.runs, e.shared, e.inFlight, e.runTime,
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return e
}

// Handler serves /probe (a check per scrape), /metrics (the exporter's own health) and a
// short page at /.
func (e *Exporter) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("/probe", e.serveProbe)
	mux.Handle("/metrics", promhttp.HandlerFor(e.reg, promhttp.HandlerOpts{}))
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/" {
			http.NotFound(w, r)
			return
		}
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		fmt.Fprint(w, "<html><head><title>ipsecpath exporter</title></head><body><h1>ipsecpath exporter</h1>\n<p><a href=\"/metrics\">/metrics</a>: the exporter's own health.</p>\n<p>/probe?target=ADDR&amp;module=NAME runs a check. Modules:")
		for _, n := range e.cfg.ModuleNames() {
			fmt.Fprintf(w, " <code>%s</code>", html.EscapeString(n))
		}
		fmt.Fprint(w, "</p></body></html>\n")
	})
	return mux
}

// scrapeBudget is how long a scrape's run may take: the scrape's timeout header, less
// TimeoutOffset.
func scrapeBudget(r *http.Request) (time.Duration, error) {
	budget := DefaultScrapeTimeout
	if h := r.Header.Get("X-Prometheus-Scrape-Timeout-Seconds"); h != "" {
		s, err := strconv.ParseFloat(h, 64)
		if err != nil || s <= 0 || s > 3600 {
			return 0, fmt.Errorf("bad X-Prometheus-Scrape-Timeout-Seconds %q", h)
		}
		budget = time.Duration(s * float64(time.Second))
	}
	return budget - TimeoutOffset, nil
}

func (e *Exporter) serveProbe(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	modName := q.Get("module")
	if modName == "" {
		modName = DefaultModule
	}
	m, ok := e.cfg.Modules[modName]
	if !ok {
		e.refuse(w, modName, http.StatusBadRequest, fmt.Sprintf("unknown module %q", modName))
		return
	}
	ts := q.Get("target")
	target, err := netip.ParseAddr(ts)
	if err != nil {
		e.refuse(w, modName, http.StatusBadRequest, fmt.Sprintf("target %q is not an IPv4 address", ts))
		return
	}
	target = target.Unmap()
	if err := e.cfg.Allowed(target); err != nil {
		e.refuse(w, modName, http.StatusForbidden, err.Error())
		return
	}
	budget, err := scrapeBudget(r)
	if err != nil {
		e.refuse(w, modName, http.StatusBadRequest, err.Error())
		return
	}
	wait := budget - runOverhead
	if wait < minWait {
		e.refuse(w, modName, http.StatusBadRequest, fmt.Sprintf("scrape timeout too short: a check needs at least %s", minWait+runOverhead+TimeoutOffset))
		return
	}
	ctx, cancel := context.WithTimeout(r.Context(), budget)
	defer cancel()
	rn, err := e.join(ctx, m, target, budget, wait)
	if err != nil {
		e.scrapes.WithLabelValues(modName, "busy").Inc()
		e.logf("scrape of %s (module %s): %v", target, modName, err)
		http.Error(w, err.Error(), http.StatusServiceUnavailable)
		return
	}
	reg := prometheus.NewRegistry()
	result := "ok"
	if rn.err != nil {
		result = "failed"
	}
	e.scrapes.WithLabelValues(modName, result).Inc()
	register(reg, rn)
	promhttp.HandlerFor(reg, promhttp.HandlerOpts{}).ServeHTTP(w, r)
}

func (e *Exporter) refuse(w http.ResponseWriter, module string, code int, msg string) {
	e.scrapes.WithLabelValues(module, "refused").Inc()
	e.logf("refused a scrape: %s", msg)
	http.Error(w, msg, code)
}

// join returns the finished run of m toward target: the one in flight if another scrape
// started it, else a new one bounded by budget. It gives up when ctx ends first.
func (e *Exporter) join(ctx context.Context, m *Module, target netip.Addr, budget, wait time.Duration) (*run, error) {
	key := m.Name + "|" + target.String()
	e.mu.Lock()
	rn, ok := e.inflight[key]
	if ok {
		e.shared.WithLabelValues(m.Name).Inc()
	} else {
		rn = &run{done: make(chan struct{})}
		e.inflight[key] = rn
		// The same address in two namespaces is two hosts (labs, VRFs): one lock each.
		tk := m.Netns + "|" + target.String()
		lock, ok := e.targets[tk]
		if !ok {
			lock = &targetLock{ch: make(chan bool, 1)}
			e.targets[tk] = lock
		}
		lock.users++
		// The run is not tied to this scrape's connection: others may be waiting for it.
		go e.start(m, target, key, tk, rn, lock, time.Now().Add(budget), wait)
	}
	e.mu.Unlock()
	select {
	case <-rn.done:
		return rn, nil
	case <-ctx.Done():
		return nil, fmt.Errorf("no result within the scrape's timeout (%d checks at once at most; another run toward %s may hold it)", cap(e.slots), target)
	}
}

// start runs a check once it has a slot and the target's lock, before deadline.
func (e *Exporter) start(m *Module, target netip.Addr, key, tk string, rn *run, lock *targetLock, deadline time.Time, wait time.Duration) {
	defer func() {
		e.mu.Lock()
		delete(e.inflight, key)
		if lock.users--; lock.users == 0 {
			delete(e.targets, tk)
		}
		e.mu.Unlock()
		close(rn.done)
	}()
	ctx, cancel := context.WithDeadline(context.Background(), deadline)
	defer cancel()
	select {
	case e.slots <- struct{}{}:
		defer func() { <-e.slots }()
	case <-ctx.Done():
		rn.err = errors.New("no free slot before the scrape's timeout (max_concurrent)")
		return
	}
	select {
	case lock.ch <- true:
		defer func() { <-lock.ch }()
	case <-ctx.Done():
		rn.err = fmt.Errorf("another check toward %s still ran at the scrape's timeout", target)
		return
	}
	// What is left of the budget after waiting for a slot bounds the wait for answers.
	if left := time.Until(deadline) - runOverhead; left < wait {
		wait = left
	}
	if wait < minWait {
		rn.err = errors.New("too little of the scrape's timeout left after waiting for a slot")
		return
	}
	e.runs.WithLabelValues(m.Name).Inc()
	e.inFlight.Inc()
	defer e.inFlight.Dec()
	t0 := time.Now()
	err := probe.InNetns(m.Netns, func() error {
		var err error
		rn.rep, err = e.check(ctx, m.checkConfig(target, wait))
		return err
	})
	rn.dur = time.Since(t0)
	e.runTime.WithLabelValues(m.Name).Observe(rn.dur.Seconds())
	if err != nil {
		rn.err, rn.rep = err, nil
		e.logf("check of %s (module %s) could not run: %v", target, m.Name, err)
	}
}

// register puts a run's metrics into reg.
func register(reg *prometheus.Registry, rn *run) {
	gauge := func(name, help string) prometheus.Gauge {
		g := prometheus.NewGauge(prometheus.GaugeOpts{Name: name, Help: help})
		reg.MustRegister(g)
		return g
	}
	ok := gauge("ipsecpath_check_success", "1 if the check ran (its verdicts follow), 0 if it could not run (agent unreachable or refusing the key, no route: see the exporter's log).")
	gauge("ipsecpath_probe_duration_seconds", "How long the check took.").Set(rn.dur.Seconds())
	if rn.err != nil {
		return
	}
	ok.Set(1)
	success := prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "ipsecpath_probe_success",
		Help: "1 if the probe passed in that direction, 0 if it failed (dropped, blocked, frag-dropped, partial or error). Skipped probes have no series."},
		[]string{"probe", "direction"})
	verdict := prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "ipsecpath_probe_verdict",
		Help: "The probe's verdict in that direction: 1 for the verdict it got, 0 for every other."},
		[]string{"probe", "direction", "verdict"})
	mtu := prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "ipsecpath_path_mtu_bytes",
		Help: "Path MTU measured in that direction (forward toward the target; reverse with an agent)."}, []string{"direction"})
	blackhole := prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "ipsecpath_path_mtu_blackhole",
		Help: "1 if larger packets vanished without an ICMP fragmentation-needed in that direction (a PMTUD black hole)."}, []string{"direction"})
	rtt := prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "ipsecpath_rtt_seconds",
		Help: "Round trip of the answer to the forward probe, when one came back."}, []string{"probe"})
	reg.MustRegister(success, verdict, mtu, blackhole, rtt)
	for _, res := range rn.rep.Results {
		d := string(res.Direction)
		for _, v := range report.Verdicts {
			val := 0.0
			if v == res.Verdict {
				val = 1
			}
			verdict.WithLabelValues(res.Probe, d, string(v)).Set(val)
		}
		if res.Verdict != report.Skipped {
			val := 0.0
			if res.Verdict == report.Pass {
				val = 1
			}
			success.WithLabelValues(res.Probe, d).Set(val)
		}
		if res.Direction == report.Forward && res.Evidence.RTTms > 0 {
			rtt.WithLabelValues(res.Probe).Set(res.Evidence.RTTms / 1000)
		}
	}
	if p := rn.rep.PMTU; p != nil {
		for d, m := range map[string]*report.PathMTU{"forward": p.Forward, "reverse": p.Reverse} {
			if m == nil || m.MTU == 0 {
				continue
			}
			mtu.WithLabelValues(d).Set(float64(m.MTU))
			b := 0.0
			if m.Blackhole {
				b = 1
			}
			blackhole.WithLabelValues(d).Set(b)
		}
	}
}
