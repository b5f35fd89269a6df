package probe

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/ipsecpath/ipsecpath/report"
)

// PreflightPorts are the local UDP ports whose holders the preflight names (IKE, NAT-T).
var PreflightPorts = []int{500, 4500}

// PreflightNftTimeout bounds the `nft list ruleset` call.
const PreflightNftTimeout = 5 * time.Second

// RunPreflight checks this host, in the calling thread's network namespace: which processes
// hold UDP 500 and 4500 (the kernel's socket tables, /proc/thread-self/net/udp{,6}, mapped
// to processes by socket inode through /proc/PID/fd), and which rules of the local nftables
// ruleset drop or reject what probes send or the answers they wait for.
func RunPreflight(ctx context.Context, target netip.Addr, probes []ID) *report.Preflight {
	p := &report.Preflight{Sockets: []report.LocalSocket{}, Firewall: []report.FirewallRule{}}
	socks, err := localUDPSockets(PreflightPorts)
	if err != nil {
		p.Notes = append(p.Notes, fmt.Sprintf("Could not read this host's UDP socket table: %v.", err))
	}
	if socks != nil {
		p.Sockets = socks
	}
	for _, s := range socks {
		who := "no process found holding it (a kernel socket, or one in another process we cannot read)"
		if s.PID != 0 {
			who = fmt.Sprintf("held by %s (pid %d)", s.Process, s.PID)
		}
		p.Notes = append(p.Notes, fmt.Sprintf("UDP %d is bound on this host at %s, %s: answers to our IKE/NAT-T probes on that port reach it too, and an IKE daemon here may answer or retransmit on its own.", s.Port, s.Addr, who))
	}
	if len(socks) == 0 && err == nil {
		p.Notes = append(p.Notes, "Nothing on this host holds UDP 500 or 4500.")
	}
	if probes == nil {
		probes = DefaultIDs(DefaultTCPPorts)
	}
	ruleset, err := nftRuleset(ctx)
	if err != nil {
		p.FirewallNote = fmt.Sprintf("Local firewall not checked: %v.", err)
		return p
	}
	p.FirewallChecked = true
	if fw := FirewallDrops(ruleset, target, probes); fw != nil {
		p.Firewall = fw
	}
	for _, r := range p.Firewall {
		what := "may drop"
		if r.Certain {
			what = "drops"
		}
		dir := "before it leaves this host"
		if r.Hook == "input" || r.Hook == "prerouting" {
			dir = "when the answers come back to this host"
		}
		p.Notes = append(p.Notes, fmt.Sprintf("This host's own firewall %s %s %s (nft %s chain %s, hook %s: %q): a local cause, not the path.",
			what, strings.Join(r.Probes, ", "), dir, r.Table, r.Chain, r.Hook, r.Rule))
	}
	if len(p.Firewall) == 0 {
		p.Notes = append(p.Notes, "This host's nftables ruleset (iptables-nft rules included) drops none of the probes; legacy iptables rules, if any, are not read.")
	}
	return p
}

// nftRuleset lists the nftables ruleset of this network namespace.
func nftRuleset(ctx context.Context) (string, error) {
	path, err := exec.LookPath("nft")
	if err != nil {
		return "", errors.New("nft is not installed (iptables-nft rules would show there; legacy iptables is not read)")
	}
	ctx, cancel := context.WithTimeout(ctx, PreflightNftTimeout)
	defer cancel()
	out, err := exec.CommandContext(ctx, path, "list", "ruleset").CombinedOutput()
	if err != nil {
		return "", fmt.Errorf("nft list ruleset: %w: %s", err, strings.TrimSpace(string(out)))
	}
	return string(out), nil
}

// localUDPSockets lists sockets bound to the given local UDP ports, from the socket tables
// of the calling thread's network namespace, with the process holding each.
func localUDPSockets(ports []int) ([]report.LocalSocket, error) {
	var out []report.LocalSocket
	var firstErr error
	for _, proto := range []string{"udp", "udp6"} {
		f, err := os.Open("/proc/thread-self/net/" + proto)
		if err != nil {
			if firstErr == nil && !errors.Is(err, os.ErrNotExist) {
				firstErr = err
			}
			continue
		}
		socks, err := ParseProcNetUDP(f, proto, ports)
		f.Close()
		if err != nil && firstErr == nil {
			firstErr = err
		}
		out = append(out, socks...)
	}
	if len(out) > 0 {
		owners := socketOwners()
		for i := range out {
			if pid, ok := owners[out[i].Inode]; ok {
				out[i].PID = pid
				out[i].Process = readProcString(pid, "comm")
				out[i].Cmdline = strings.TrimSpace(strings.ReplaceAll(readProcString(pid, "cmdline"), "\x00", " "))
			}
		}
	}
	return out, firstErr
}

// ParseProcNetUDP reads a /proc/net/udp or udp6 table and returns the sockets whose local
// port is one of ports. Lines it cannot read are skipped.
func ParseProcNetUDP(r io.Reader, proto string, ports []int) ([]report.LocalSocket, error) {
	want := map[int]bool{}
	for _, p := range ports {
		want[p] = true
	}
	var out []report.LocalSocket
	sc := bufio.NewScanner(r)
	first := true
	for sc.Scan() {
		if first { // header
			first = false
			continue
		}
		f := strings.Fields(sc.Text())
		if len(f) < 10 {
			continue
		}
		host, portHex, ok := strings.Cut(f[1], ":")
		if !ok {
			continue
		}
		port, err := strconv.ParseUint(portHex, 16, 16)
		if err != nil || !want[int(port)] {
			continue
		}
		inode, err := strconv.ParseUint(f[9], 10, 64)
		if err != nil {
			continue
		}
		addr, ok := procHexAddr(host)
		if !ok {
			continue
		}
		out = append(out, report.LocalSocket{Proto: proto, Addr: netip.AddrPortFrom(addr, uint16(port)).String(), Port: int(port), Inode: inode})
	}
	return out, sc.Err()
}

// procHexAddr decodes the address of /proc/net/udp{,6}: 8 or 32 hex digits, each 32-bit
// word in host (little-endian) byte order.
func procHexAddr(s string) (netip.Addr, bool) {
	if len(s) != 8 && len(s) != 32 {
		return netip.Addr{}, false
	}
	var b [16]byte
	n := len(s) / 2
	for i := 0; i < n; i++ {
		v, err := strconv.ParseUint(s[2*i:2*i+2], 16, 8)
		if err != nil {
			return netip.Addr{}, false
		}
		w := i / 4
		b[w*4+3-i%4] = byte(v)
	}
	if n == 4 {
		return netip.AddrFrom4([4]byte(b[:4])), true
	}
	return netip.AddrFrom16(b).Unmap(), true
}

// socketOwners maps socket inodes to the pid holding them, from /proc/*/fd. Processes we
// cannot read are skipped.
func socketOwners() map[uint64]int {
	owners := map[uint64]int{}
	dirs, _ := filepath.Glob("/proc/[0-9]*/fd")
	sort.Strings(dirs)
	for _, d := range dirs {
		pid, err := strconv.Atoi(filepath.Base(filepath.Dir(d)))
		if err != nil {
			continue
		}
		fds, err := os.ReadDir(d)
		if err != nil {
			continue
		}
		for _, fd := range fds {
			l, err := os.Readlink(filepath.Join(d, fd.Name()))
			if err != nil || !strings.HasPrefix(l, "socket:[") {
				continue
			}
			if ino, err := strconv.ParseUint(strings.TrimSuffix(strings.TrimPrefix(l, "socket:["), "]"), 10, 64); err == nil {
				if _, seen := owners[ino]; !seen {
					owners[ino] = pid
				}
			}
		}
	}
	return owners
}

func readProcString(pid int, name string) string {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/%s", pid, name))
	if err != nil {
		return ""
	}
	return strings.TrimSpace(string(b))
}
