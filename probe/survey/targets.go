// Package survey runs `check` toward many targets at once, under one global pace, and
// gathers the reports into one matrix (report.Survey).
package survey

import (
	"bytes"
	"encoding/csv"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"

	"github.com/ipsecpath/ipsecpath/probe"
	"go.yaml.in/yaml/v3"
)

// Bounds of a targets file.
const (
	// MaxTargetsFileSize bounds how much of a targets file is read.
	MaxTargetsFileSize = 4 << 20
	// MaxTargets bounds how many targets one survey takes.
	MaxTargets = 10000
)

// Target is one line of a targets file.
type Target struct {
	Addr    netip.Addr
	Agent   string     // HOST:PORT of the agent on Addr, "" for a one-ended check
	KeyFile string     // the agent's key file
	Label   string     // how the matrix names it (besides its address)
	Probes  []probe.ID // nil: every probe
	Netns   string     // the network namespace to check from ("" : where the survey runs)
	Line    int        // where it was declared (1-based), for error messages
}

// columns of a CSV targets file, in the order a file without a header line gives them.
var columns = []string{"target", "agent", "key_file", "label", "probes", "netns"}

// ParseTargets parses a targets file: YAML when name ends in .yaml or .yml or the content
// starts with "targets:" or "- ", else CSV. tcpPorts expands "tcp" in a probe list.
//
// CSV: one target per line, fields target,agent,key_file,label,probes,netns; all but target
// optional (empty fields and missing trailing fields are fine). A first line that starts
// with "target" is a header naming the columns in any order. Lines starting with # and
// blank lines are ignored. Inside the probes field, probes are separated by spaces or
// semicolons (or commas, in a quoted field).
//
// YAML: a list of mappings with the same keys, either at the top level or under "targets:";
// probes may be a list or a string.
func ParseTargets(name string, data []byte, tcpPorts []int) ([]Target, error) {
	if len(data) > MaxTargetsFileSize {
		return nil, fmt.Errorf("targets file is larger than %d bytes", MaxTargetsFileSize)
	}
	var raws []rawTarget
	var err error
	if isYAML(name, data) {
		raws, err = parseYAML(data)
	} else {
		raws, err = parseCSV(data)
	}
	if err != nil {
		return nil, err
	}
	if len(raws) == 0 {
		return nil, errors.New("no targets in the file")
	}
	if len(raws) > MaxTargets {
		return nil, fmt.Errorf("%d targets: at most %d in one survey", len(raws), MaxTargets)
	}
	out := make([]Target, 0, len(raws))
	for _, r := range raws {
		t, err := r.target(tcpPorts)
		if err != nil {
			return nil, fmt.Errorf("line %d: %w", r.Line, err)
		}
		out = append(out, t)
	}
	return out, nil
}

func isYAML(name string, data []byte) bool {
	switch strings.ToLower(filepath.Ext(name)) {
	case ".yaml", ".yml":
		return true
	case ".csv", ".txt":
		return false
	}
	for _, line := range strings.Split(string(data), "\n") {
		line = strings.TrimSpace(line)
		if line == "" || strings.HasPrefix(line, "#") || line == "---" {
			continue
		}
		return strings.HasPrefix(line, "targets:") || strings.HasPrefix(line, "- ")
	}
	return false
}

// rawTarget is a target as written, before validation.
type rawTarget struct {
	Target  string    `yaml:"target"`
	Agent   string    `yaml:"agent"`
	KeyFile string    `yaml:"key_file"`
	Label   string    `yaml:"label"`
	Probes  yamlProbe `yaml:"probes"`
	Netns   string    `yaml:"netns"`
	Line    int       `yaml:"-"`
}

// yamlProbe takes a probe list as a YAML sequence or a string.
type yamlProbe string

func (p *yamlProbe) UnmarshalYAML(n *yaml.Node) error {
	switch n.Kind {
	case yaml.ScalarNode:
		*p = yamlProbe(n.Value)
		return nil
	case yaml.SequenceNode:
		var l []string
		if err := n.Decode(&l); err != nil {
			return err
		}
		*p = yamlProbe(strings.Join(l, ","))
		return nil
	}
	return fmt.Errorf("line %d: probes: want a list or a string", n.Line)
}

func parseYAML(data []byte) ([]rawTarget, error) {
	var doc yaml.Node
	if err := yaml.Unmarshal(data, &doc); err != nil {
		return nil, fmt.Errorf("targets file (YAML): %s", strings.Join(strings.Fields(err.Error()), " "))
	}
	if len(doc.Content) == 0 {
		return nil, nil
	}
	n := doc.Content[0]
	if n.Kind == yaml.MappingNode {
		var list *yaml.Node
		for i := 0; i+1 < len(n.Content); i += 2 {
			if n.Content[i].Value != "targets" {
				return nil, fmt.Errorf("targets file (YAML) line %d: unknown key %q (want targets:)", n.Content[i].Line, n.Content[i].Value)
			}
			list = n.Content[i+1]
		}
		if list == nil {
			return nil, nil
		}
		n = list
	}
	if n.Kind != yaml.SequenceNode {
		return nil, fmt.Errorf("targets file (YAML) line %d: want a list of targets", n.Line)
	}
	out := make([]rawTarget, 0, len(n.Content))
	for _, item := range n.Content {
		if item.Kind != yaml.MappingNode {
			return nil, fmt.Errorf("targets file (YAML) line %d: want a mapping (target: ADDR, agent: …)", item.Line)
		}
		for i := 0; i+1 < len(item.Content); i += 2 {
			if k := item.Content[i].Value; !knownColumn(k) {
				return nil, fmt.Errorf("targets file (YAML) line %d: unknown key %q (keys: %s)", item.Content[i].Line, k, strings.Join(columns, ", "))
			}
		}
		var r rawTarget
		if err := item.Decode(&r); err != nil {
			return nil, fmt.Errorf("targets file (YAML) line %d: %s", item.Line, strings.Join(strings.Fields(err.Error()), " "))
		}
		r.Line = item.Line
		out = append(out, r)
	}
	return out, nil
}

func knownColumn(k string) bool {
	for _, c := range columns {
		if c == k {
			return true
		}
	}
	return false
}

func parseCSV(data []byte) ([]rawTarget, error) {
	cr := csv.NewReader(bytes.NewReader(data))
	cr.Comment = '#'
	cr.FieldsPerRecord = -1
	cr.TrimLeadingSpace = true
	cols := columns
	var out []rawTarget
	first := true
	for {
		rec, err := cr.Read()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return nil, fmt.Errorf("targets file (CSV): %w", err)
		}
		line, _ := cr.FieldPos(0)
		if len(rec) == 1 && strings.TrimSpace(rec[0]) == "" {
			continue
		}
		if first && strings.EqualFold(strings.TrimSpace(rec[0]), "target") {
			first = false
			cols = nil
			for _, h := range rec {
				h = strings.ToLower(strings.TrimSpace(h))
				if !knownColumn(h) {
					return nil, fmt.Errorf("line %d: unknown column %q (columns: %s)", line, h, strings.Join(columns, ", "))
				}
				cols = append(cols, h)
			}
			continue
		}
		first = false
		if len(rec) > len(cols) {
			return nil, fmt.Errorf("line %d: %d fields, at most %d (%s)", line, len(rec), len(cols), strings.Join(cols, ","))
		}
		r := rawTarget{Line: line}
		for i, v := range rec {
			v = strings.TrimSpace(v)
			switch cols[i] {
			case "target":
				r.Target = v
			case "agent":
				r.Agent = v
			case "key_file":
				r.KeyFile = v
			case "label":
				r.Label = v
			case "probes":
				r.Probes = yamlProbe(v)
			case "netns":
				r.Netns = v
			}
		}
		out = append(out, r)
	}
	return out, nil
}

// netnsName is what a network namespace name may look like (as under /run/netns).
var netnsName = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$`)

// target validates r.
func (r rawTarget) target(tcpPorts []int) (Target, error) {
	t := Target{Label: r.Label, KeyFile: r.KeyFile, Netns: r.Netns, Line: r.Line}
	if r.Target == "" {
		return t, errors.New("no target address")
	}
	a, err := netip.ParseAddr(r.Target)
	if err != nil {
		return t, fmt.Errorf("target %q is not an IPv4 address", r.Target)
	}
	if err := probe.CheckTarget(a); err != nil {
		return t, err
	}
	t.Addr = a.Unmap()
	for _, c := range r.Label {
		if c < 0x20 || c == 0x7f {
			return t, errors.New("label holds a control character")
		}
	}
	if len(r.Label) > 64 {
		return t, errors.New("label longer than 64 bytes")
	}
	if r.Netns != "" && !netnsName.MatchString(r.Netns) {
		return t, fmt.Errorf("netns %q is not a namespace name", r.Netns)
	}
	switch {
	case r.Agent != "" && r.KeyFile == "":
		return t, errors.New("agent without key_file (the agent's pre-shared key)")
	case r.Agent == "" && r.KeyFile != "":
		return t, errors.New("key_file without agent")
	case r.Agent != "":
		agent, err := agentAddr(r.Agent, t.Addr)
		if err != nil {
			return t, err
		}
		t.Agent = agent
	}
	list := strings.NewReplacer(";", ",", " ", ",").Replace(strings.TrimSpace(string(r.Probes)))
	if list != "" {
		ids, err := probe.ParseIDs(list, tcpPorts)
		if err != nil {
			return t, fmt.Errorf("probes: %w", err)
		}
		t.Probes = ids
	}
	return t, nil
}

// agentAddr completes an agent address (port 7500 when missing) and refuses one that names
// another address than the target: the agent must run where the probes arrive.
func agentAddr(s string, target netip.Addr) (string, error) {
	host, port, err := net.SplitHostPort(s)
	if err != nil {
		host, port = s, strconv.Itoa(probe.ControlPort)
	}
	if p, err := strconv.Atoi(port); err != nil || p < 1 || p > 65535 {
		return "", fmt.Errorf("agent %q: port must be 1-65535", s)
	}
	if a, err := netip.ParseAddr(host); err == nil && a.Unmap() != target {
		return "", fmt.Errorf("agent %s is not on the target %s: the agent must run on the target, where it sees what arrives", s, target)
	}
	return net.JoinHostPort(host, port), nil
}
