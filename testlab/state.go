package testlab

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// StateRoot holds one directory per lab: state.json, procs (one "pid starttime label" line
// per process the lab started), the gateways' charon dirs and logs. It lets `lab down`
// clean up after a builder that was SIGKILLed.
const StateRoot = "/run/ipsecpath/labs"

// StopGrace is how long a lab process gets between SIGTERM and SIGKILL.
const StopGrace = 5 * time.Second

var nameRE = regexp.MustCompile(`^[a-z0-9][a-z0-9-]{0,23}$`)

// validName checks a lab name: lower-case letters, digits and '-', at most 24 characters
// (it becomes part of namespace names and of charon's vici socket path).
func validName(name string) error {
	if !nameRE.MatchString(name) {
		return fmt.Errorf("testlab: %w %q: use 1-24 of a-z, 0-9 and '-', starting with a letter or digit", ErrBadName, name)
	}
	return nil
}

// CheckName reports whether name is a valid lab name (1-24 of a-z, 0-9 and '-', starting
// with a letter or digit); the empty name is refused here (Spec turns "" into "default").
func CheckName(name string) error { return validName(name) }

// nsName is the namespace of node in lab name.
func nsName(name, node string) string { return "ipl-" + name + "-" + node }

func stateDir(name string) string { return filepath.Join(StateRoot, name) }

// state is what state.json records about a lab.
type state struct {
	Name             string    `json:"name"`
	Profile          string    `json:"profile"`
	IKEFragmentation bool      `json:"ike_fragmentation"`
	NoGateways       bool      `json:"no_gateways"`
	Created          time.Time `json:"created"`
	BuilderPid       int       `json:"builder_pid"`
	BuilderStart     uint64    `json:"builder_start"` // /proc starttime of BuilderPid
	Ready            bool      `json:"ready"`         // Up finished
	TunnelUp         bool      `json:"tunnel_up"`
	TunnelErr        string    `json:"tunnel_err,omitempty"`
	UpSeconds        float64   `json:"up_seconds"`
}

func writeState(dir string, st *state) error {
	b, err := json.MarshalIndent(st, "", "  ")
	if err != nil {
		return fmt.Errorf("testlab: encode state: %w", err)
	}
	tmp := filepath.Join(dir, ".state.json.tmp")
	if err := os.WriteFile(tmp, b, 0o644); err != nil {
		return fmt.Errorf("testlab: write state: %w", err)
	}
	if err := os.Rename(tmp, filepath.Join(dir, "state.json")); err != nil {
		return fmt.Errorf("testlab: write state: %w", err)
	}
	return nil
}

func readState(name string) (*state, error) {
	b, err := os.ReadFile(filepath.Join(stateDir(name), "state.json"))
	if err != nil {
		return nil, fmt.Errorf("testlab: read state of lab %s: %w", name, err)
	}
	var st state
	if err := json.Unmarshal(b, &st); err != nil {
		return nil, fmt.Errorf("testlab: decode state of lab %s: %w", name, err)
	}
	return &st, nil
}

// procRecord is one process a lab started.
type procRecord struct {
	pid   int
	start uint64 // /proc/pid/stat field 22: guards against pid reuse
	label string
}

// procStart returns field 22 (starttime) of /proc/pid/stat, and whether the process is
// alive (exists and is not a zombie).
func procStart(pid int) (uint64, bool) {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return 0, false
	}
	s := string(b)
	i := strings.LastIndexByte(s, ')') // comm may hold spaces and parentheses
	if i < 0 || i+2 > len(s) {
		return 0, false
	}
	f := strings.Fields(s[i+2:]) // f[0] is field 3 (state)
	if len(f) < 20 {
		return 0, false
	}
	st, err := strconv.ParseUint(f[19], 10, 64)
	if err != nil {
		return 0, false
	}
	return st, f[0] != "Z" && f[0] != "X"
}

// recordProc appends a started process to the lab's procs file (append: crash-safe enough
// that `lab down` finds everything recorded before a SIGKILL).
func recordProc(dir string, r procRecord) error {
	f, err := os.OpenFile(filepath.Join(dir, "procs"), os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o644)
	if err != nil {
		return fmt.Errorf("testlab: record pid %d: %w", r.pid, err)
	}
	_, err = fmt.Fprintf(f, "%d %d %s\n", r.pid, r.start, r.label)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("testlab: record pid %d: %w", r.pid, err)
	}
	return nil
}

func readProcs(dir string) ([]procRecord, error) {
	f, err := os.Open(filepath.Join(dir, "procs"))
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("testlab: read pids: %w", err)
	}
	defer f.Close()
	var out []procRecord
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		var r procRecord
		if n, _ := fmt.Sscanf(sc.Text(), "%d %d %s", &r.pid, &r.start, &r.label); n >= 2 && r.pid > 1 {
			out = append(out, r)
		}
	}
	return out, sc.Err()
}

// nsInode returns the inode of a named network namespace (0 if it does not exist).
func nsInode(ns string) uint64 {
	var st syscall.Stat_t
	if err := syscall.Stat(filepath.Join("/run/netns", ns), &st); err != nil {
		return 0
	}
	return st.Ino
}

// pidsInNetns lists processes whose network namespace is one of inodes.
func pidsInNetns(inodes map[uint64]bool) []procRecord {
	ents, err := os.ReadDir("/proc")
	if err != nil {
		return nil
	}
	var out []procRecord
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil || pid == os.Getpid() {
			continue
		}
		var st syscall.Stat_t
		if err := syscall.Stat("/proc/"+e.Name()+"/ns/net", &st); err != nil || !inodes[st.Ino] {
			continue
		}
		if start, alive := procStart(pid); alive {
			out = append(out, procRecord{pid: pid, start: start, label: "in-lab"})
		}
	}
	return out
}

// stopProcs sends SIGTERM to every process that still matches its recorded starttime, waits
// up to grace for all of them, then SIGKILLs what is left.
func stopProcs(procs []procRecord, grace time.Duration) {
	alive := func(r procRecord) bool {
		st, ok := procStart(r.pid)
		return ok && st == r.start
	}
	var live []procRecord
	for _, r := range procs {
		if alive(r) {
			_ = syscall.Kill(r.pid, syscall.SIGTERM)
			live = append(live, r)
		}
	}
	deadline := time.Now().Add(grace)
	for len(live) > 0 && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
		next := live[:0]
		for _, r := range live {
			if alive(r) {
				next = append(next, r)
			}
		}
		live = next
	}
	for _, r := range live {
		_ = syscall.Kill(r.pid, syscall.SIGKILL)
	}
	// Give SIGKILLed processes a moment to leave (their parent or init reaps them).
	for i := 0; i < 100 && len(live) > 0; i++ {
		next := live[:0]
		for _, r := range live {
			if alive(r) {
				next = append(next, r)
			}
		}
		live = next
		if len(live) > 0 {
			time.Sleep(10 * time.Millisecond)
		}
	}
}

// builderGone reports whether the process that built the lab has exited (its pid is dead or
// now belongs to a process with another starttime).
func (st *state) builderGone() bool {
	start, alive := procStart(st.BuilderPid)
	return !alive || (st.BuilderStart != 0 && start != st.BuilderStart)
}
