// Package exporter is ipsecpath's Prometheus multi-target exporter: a scrape of
// /probe?target=ADDR&module=NAME runs that module's check toward ADDR and answers with its
// verdicts as metrics (the pattern of Prometheus's blackbox_exporter: one scrape, one run).
package exporter

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/ipsecpath/ipsecpath/probe"
	"go.yaml.in/yaml/v3"
)

// Defaults and bounds of the configuration.
const (
	// DefaultMaxConcurrent is how many checks run at once (each holds raw sockets and a
	// capture; scrapes beyond it wait, within their timeout, for a slot).
	DefaultMaxConcurrent = 8
	// MaxConfigSize bounds how much of a config file is read.
	MaxConfigSize = 1 << 20
	// DefaultModule is the module a scrape without module= runs, and the only one without a
	// config file: a one-ended check of every probe.
	DefaultModule = "default"
)

// Module is what a scrape runs: a probe list, the agent and timeouts.
type Module struct {
	Name     string
	Probes   []probe.ID    // nil: every probe
	TCPPorts []int         // the tcp probes' ports (nil: probe.DefaultTCPPorts)
	Timeout  time.Duration // the check's wait for answers; the scrape timeout may shorten it
	Pace     int           // packets per second toward the target (0: probe.DefaultRate)
	// AgentPort, when not 0, makes the check two-ended: the agent runs on the target at
	// this port, with the pre-shared key of KeyFile.
	AgentPort int
	KeyFile   string
	Key       []byte
	// Netns runs the check from that network namespace of this host ("": where the
	// exporter runs).
	Netns string
}

// Config is the exporter's configuration.
type Config struct {
	Modules map[string]*Module
	// Allow lists the targets a scrape may name. Empty: any unicast IPv4 address (the
	// exporter then probes whatever a scrape names: say so where it starts).
	Allow []netip.Prefix
	// MaxConcurrent bounds the checks that run at once (0: DefaultMaxConcurrent).
	MaxConcurrent int
}

// DefaultConfig is the configuration without a file: module "default", a one-ended check
// of every probe, and no allow-list.
func DefaultConfig() *Config {
	return &Config{Modules: map[string]*Module{DefaultModule: {Name: DefaultModule, Timeout: probe.DefaultCheckTimeout}},
		MaxConcurrent: DefaultMaxConcurrent}
}

// Allowed says whether a scrape may name target: a unicast IPv4 address (check's own
// rules: no multicast, broadcast or unspecified address) inside the allow-list, if any.
func (c *Config) Allowed(target netip.Addr) error {
	if err := probe.CheckTarget(target); err != nil {
		return err
	}
	if len(c.Allow) == 0 {
		return nil
	}
	for _, p := range c.Allow {
		if p.Contains(target.Unmap()) {
			return nil
		}
	}
	return fmt.Errorf("target %s is not in the exporter's allow-list", target)
}

// ModuleNames lists the modules, sorted.
func (c *Config) ModuleNames() []string {
	var out []string
	for n := range c.Modules {
		out = append(out, n)
	}
	sort.Strings(out)
	return out
}

// fileConfig is the YAML form.
type fileConfig struct {
	Allow         []string              `yaml:"allow"`
	MaxConcurrent int                   `yaml:"max_concurrent"`
	Modules       map[string]fileModule `yaml:"modules"`
}

type fileModule struct {
	Probes    []string `yaml:"probes"`
	TCP       []int    `yaml:"tcp"`
	Timeout   string   `yaml:"timeout"`
	Pace      int      `yaml:"pace"`
	AgentPort int      `yaml:"agent_port"`
	KeyFile   string   `yaml:"key_file"`
	Netns     string   `yaml:"netns"`
}

var moduleName = regexp.MustCompile(`^[A-Za-z0-9_.-]{1,64}$`)
var netnsName = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$`)

// ParseConfig parses a YAML config (unknown keys are errors) and reads the modules' key
// files with loadKey (probe.LoadKey).
func ParseConfig(data []byte, loadKey func(string) ([]byte, error)) (*Config, error) {
	if len(data) > MaxConfigSize {
		return nil, fmt.Errorf("config larger than %d bytes", MaxConfigSize)
	}
	var fc fileConfig
	dec := yaml.NewDecoder(strings.NewReader(string(data)))
	dec.KnownFields(true)
	if err := dec.Decode(&fc); err != nil {
		// yaml's errors span lines (one per field); the CLI prints one line.
		return nil, fmt.Errorf("config: %s", strings.Join(strings.Fields(err.Error()), " "))
	}
	c := &Config{Modules: map[string]*Module{}, MaxConcurrent: fc.MaxConcurrent}
	if c.MaxConcurrent == 0 {
		c.MaxConcurrent = DefaultMaxConcurrent
	}
	if c.MaxConcurrent < 1 || c.MaxConcurrent > 256 {
		return nil, fmt.Errorf("config: max_concurrent %d: want 1-256", c.MaxConcurrent)
	}
	for _, a := range fc.Allow {
		p, err := netip.ParsePrefix(a)
		if err != nil {
			ad, aerr := netip.ParseAddr(a)
			if aerr != nil || !ad.Is4() {
				return nil, fmt.Errorf("config: allow %q: want an IPv4 address or prefix", a)
			}
			p = netip.PrefixFrom(ad, 32)
		}
		if !p.Addr().Is4() {
			return nil, fmt.Errorf("config: allow %q: only IPv4 targets are supported", a)
		}
		c.Allow = append(c.Allow, p.Masked())
	}
	if len(fc.Modules) == 0 {
		return nil, errors.New("config: no modules")
	}
	for name, fm := range fc.Modules {
		if !moduleName.MatchString(name) {
			return nil, fmt.Errorf("config: module name %q: letters, digits, . _ - only", name)
		}
		m := &Module{Name: name, TCPPorts: fm.TCP, Pace: fm.Pace, AgentPort: fm.AgentPort, KeyFile: fm.KeyFile, Netns: fm.Netns, Timeout: probe.DefaultCheckTimeout}
		for _, p := range m.TCPPorts {
			if p < 1 || p > 65535 {
				return nil, fmt.Errorf("config: module %s: tcp port %d: want 1-65535", name, p)
			}
		}
		if len(fm.Probes) > 0 {
			ids, err := probe.ParseIDs(strings.Join(fm.Probes, ","), m.ports())
			if err != nil {
				return nil, fmt.Errorf("config: module %s: probes: %w", name, err)
			}
			m.Probes = ids
		}
		if fm.Timeout != "" {
			d, err := time.ParseDuration(fm.Timeout)
			if err != nil || d <= 0 || d > probe.MaxCheckTimeout {
				return nil, fmt.Errorf("config: module %s: timeout %q: want a duration up to %s", name, fm.Timeout, probe.MaxCheckTimeout)
			}
			m.Timeout = d
		}
		if m.Pace < 0 || m.Pace > probe.MaxRate {
			return nil, fmt.Errorf("config: module %s: pace %d: want 1-%d", name, m.Pace, probe.MaxRate)
		}
		if m.Netns != "" && !netnsName.MatchString(m.Netns) {
			return nil, fmt.Errorf("config: module %s: netns %q is not a namespace name", name, m.Netns)
		}
		switch {
		case m.AgentPort != 0 && m.KeyFile == "":
			return nil, fmt.Errorf("config: module %s: agent_port needs key_file", name)
		case m.AgentPort == 0 && m.KeyFile != "":
			return nil, fmt.Errorf("config: module %s: key_file without agent_port", name)
		case m.AgentPort < 0 || m.AgentPort > 65535:
			return nil, fmt.Errorf("config: module %s: agent_port %d: want 1-65535", name, m.AgentPort)
		case m.KeyFile != "":
			k, err := loadKey(m.KeyFile)
			if err != nil {
				return nil, fmt.Errorf("config: module %s: %w", name, err)
			}
			m.Key = k
		}
		c.Modules[name] = m
	}
	return c, nil
}

func (m *Module) ports() []int {
	if m.TCPPorts == nil {
		return probe.DefaultTCPPorts
	}
	return m.TCPPorts
}

// checkConfig is m's check toward target, waiting at most wait for answers. Failing probes
// are not traced hop by hop afterwards (NoTrace): the metrics carry no hops, and the trace's
// extra timeout would push a failing path's run past the scrape's timeout, so the scrape
// would fail exactly when the path does.
func (m *Module) checkConfig(target netip.Addr, wait time.Duration) probe.CheckConfig {
	cc := probe.CheckConfig{Target: target, Probes: m.Probes, TCPPorts: m.TCPPorts, Timeout: min(m.Timeout, wait), Pace: m.Pace, NoTrace: true}
	if m.AgentPort != 0 {
		cc.Agent = net.JoinHostPort(target.String(), strconv.Itoa(m.AgentPort))
		cc.Key = m.Key
	}
	return cc
}
