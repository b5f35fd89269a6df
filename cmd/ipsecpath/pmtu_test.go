package main

import (
	"bytes"
	"encoding/json"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/ipsecpath/ipsecpath/pmtu"
	"github.com/ipsecpath/ipsecpath/report"
	"github.com/ipsecpath/ipsecpath/testlab"
)

// TestPMTUBadInput: usage mistakes are refused with one line and exit 2, before any packet.
func TestPMTUBadInput(t *testing.T) {
	dir := t.TempDir()
	key := writeKey(t, dir, "key", bytes.Repeat([]byte{7}, 32), 0o600)
	refusesAll(t, "pmtu", []usageCase{
		{"no target", nil, "want one TARGET"},
		{"two targets", []string{"192.0.2.1", "192.0.2.2"}, "want one TARGET"},
		{"not an address", []string{"gateway.example"}, "not an IP address"},
		{"multicast", []string{"224.0.0.1"}, "not a unicast"},
		{"broadcast", []string{"255.255.255.255"}, "not a unicast"},
		{"min above max", []string{"192.0.2.1", "--min", "1400", "--max", "1300"}, "--min 1400 --max 1300"},
		{"min too small", []string{"192.0.2.1", "--min", "20"}, "68 ≤ min"},
		{"max too big", []string{"192.0.2.1", "--max", "70000"}, "max ≤ 65535"},
		{"bad suite", []string{"192.0.2.1", "--suite", "3des"}, "--suite: unknown suite"},
		{"bad mode", []string{"192.0.2.1", "--mode", "beet"}, "--mode: unknown mode"},
		{"ah over nat", []string{"192.0.2.1", "--suite", "ah-sha256", "--natt"}, "AH cannot cross NAT"},
		{"inner 5", []string{"192.0.2.1", "--inner", "5"}, "inner IP version 5"},
		{"proto tcp ipv6", []string{"2001:db8::1", "--proto", "tcp"}, "TCP-sized probes are IPv4 only"},
		{"port without tcp", []string{"192.0.2.1", "--port", "443"}, "--port goes with --proto tcp"},
		{"port 0", []string{"192.0.2.1", "--proto", "tcp", "--port", "0"}, "--port 0"},
		{"port 65536", []string{"192.0.2.1", "--proto", "tcp", "--port", "65536"}, "--port 65536"},
		{"proto sctp", []string{"192.0.2.1", "--proto", "sctp"}, "want icmp, tcp or udp"},
		{"udp without agent", []string{"192.0.2.1", "--proto", "udp"}, "needs --agent"},
		{"agent without key", []string{"192.0.2.1", "--agent", "192.0.2.1:7500"}, "go together"},
		{"key without agent", []string{"192.0.2.1", "--key-file", key}, "go together"},
		{"zero timeout", []string{"192.0.2.1", "--timeout", "0s"}, "--timeout 0s"},
		{"unknown flag", []string{"192.0.2.1", "--bogus"}, "unknown flag"},
	})
}

func TestPMTUHelp(t *testing.T) {
	code, out, _ := runCLI(t, "pmtu", "--help")
	if code != exitOK || !strings.Contains(out, "black hole") || !strings.Contains(out, "--suite") || !strings.Contains(out, "Examples:") {
		t.Errorf("help: exit %d\n%s", code, out)
	}
}

// inNewNetns runs fn in a fresh network namespace holding only a loopback that is down:
// no route anywhere, no IPv6 (testlab.InScratchNetns; fn reports with t.Errorf).
func inNewNetns(t *testing.T, fn func()) {
	t.Helper()
	testlab.InScratchNetns(t, fn)
}

// TestPMTUNoRoute: an IPv6 target when the path has no IPv6, and an IPv4 target without a
// route, are environment errors: one line, exit 2. Once IPv6 exists (::1), it works.
func TestPMTUNoRoute(t *testing.T) {
	inNewNetns(t, func() {
		code, out, errs := runCLI(t, "pmtu", "2001:db8::1")
		oneLine(t, code, out, errs, "the path has no IPv6")
		code, out, errs = runCLI(t, "pmtu", "192.0.2.1")
		oneLine(t, code, out, errs, "no route to the target")
		// With the loopback up, ::1 is the one IPv6 target there is: ICMPv6, IPv6 advice.
		if err := testlab.LoopbackUp(0); err != nil {
			t.Errorf("loopback up: %v", err)
			return
		}
		code, out, errs = runCLI(t, "pmtu", "::1")
		if code != exitOK || !strings.Contains(out, "path MTU toward ::1 (icmp): 1500 bytes") || !strings.Contains(out, "IPv6 in IPv6") {
			t.Errorf("pmtu ::1: exit %d\n%s\n%s", code, out, errs)
		}
	})
}

// TestPMTUCLILab runs the command in the lab from ini toward rsp: text and JSON, the three
// MTU profiles, a target that does not exist, and the agent's reverse direction.
func TestPMTUCLILab(t *testing.T) {
	testlab.RequireRoot(t)
	type want struct {
		mtu       int
		blackhole bool
		code      int
		text      []string
	}
	for _, c := range []struct {
		profile string
		want    want
	}{
		{"clean", want{1500, false, exitOK, []string{"path MTU toward 203.0.113.10 (icmp): 1500 bytes", "black hole: no", "TCP MSS clamp         1406"}}},
		{"mtu1400", want{1400, false, exitOK, []string{"1400 bytes", "198.51.100.1 sends ICMP fragmentation-needed (MTU 1400)", "tunnel interface MTU  1346"}}},
		{"mtu1300-blackhole", want{1300, true, exitFail, []string{"1300 bytes", "black hole: yes", "after hop 1 (198.51.100.1), on its link toward hop 2 (192.0.2.66)"}}},
	} {
		t.Run(c.profile, func(t *testing.T) {
			t.Parallel()
			l := testlab.ForTest(t, testlab.Spec{Profile: c.profile, NoGateways: true})
			target := l.Addr("rsp").String()
			var code, jcode, tcode int
			var out, errs, jout, jerrs, tout, terrs string
			page := filepath.Join(t.TempDir(), "pmtu.html")
			l.Do("ini", func() error {
				code, out, errs = runCLI(t, "pmtu", target)
				jcode, jout, jerrs = runCLI(t, "pmtu", target, "--json", "--out", page)
				tcode, tout, terrs = runCLI(t, "pmtu", target, "--proto", "tcp")
				return nil
			})
			// TCP-sized probes to port 445 (the MTU profiles filter no TCP) find the same.
			if tcode != c.want.code {
				t.Errorf("--proto tcp: exit %d, want %d; stderr %q", tcode, c.want.code, terrs)
			}
			tcpText := append([]string{"path MTU toward " + target + " (tcp port 445): "}, c.want.text...)
			for _, s := range tcpText {
				if !strings.Contains(tout, s) && !strings.Contains(s, "(icmp)") {
					t.Errorf("--proto tcp text lacks %q:\n%s", s, tout)
				}
			}
			if code != c.want.code || jcode != c.want.code {
				t.Fatalf("exit %d (json %d), want %d; stderr %q %q", code, jcode, c.want.code, errs, jerrs)
			}
			for _, s := range c.want.text {
				if !strings.Contains(out, s) {
					t.Errorf("text lacks %q:\n%s", s, out)
				}
			}
			if jerrs != "" {
				t.Errorf("--json wrote on stderr: %q", jerrs)
			}
			var o struct {
				report.Report
				Advice struct {
					MSS int `json:"tcp_mss"`
				} `json:"advice"`
			}
			if err := json.Unmarshal([]byte(jout), &o); err != nil {
				t.Fatalf("json: %v\n%s", err, jout)
			}
			f := o.PMTU.Forward
			if f == nil || f.MTU != c.want.mtu || f.Blackhole != c.want.blackhole || o.Advice.MSS != c.want.mtu-94 {
				t.Errorf("json pmtu %+v advice mss %d; want mtu %d blackhole %v mss %d", f, o.Advice.MSS, c.want.mtu, c.want.blackhole, c.want.mtu-94)
			}
			if c.want.blackhole && (f.Hop == nil || f.Hop.TTL != 1 || f.Hop.Addr != "198.51.100.1") {
				t.Errorf("black hole hop %+v, want ttl 1 198.51.100.1", f.Hop)
			}
			// The report half reads back as a report (diff takes it).
			rep, err := report.ReadJSON(strings.NewReader(jout))
			if err != nil {
				t.Fatalf("report.ReadJSON: %v", err)
			}
			// --out F.html: the same run as a page with the path MTU, the advice and the search.
			b, err := os.ReadFile(page)
			if err != nil {
				t.Fatalf("--out %s: %v", page, err)
			}
			for _, s := range []string{"<!DOCTYPE html>", "<strong>Path MTU</strong>: forward " + strconv.Itoa(c.want.mtu), "<strong>Advice</strong>", "TCP MSS clamp         " + strconv.Itoa(c.want.mtu-94), "<h2>The search</h2>"} {
				if !strings.Contains(string(b), s) {
					t.Errorf("--out %s lacks %q", page, s)
				}
			}
			if c.want.blackhole {
				checkHTMLInChromium(t, page, "pmtu-"+c.profile, rep)
			}
		})
	}
	t.Run("unreachable", func(t *testing.T) {
		t.Parallel()
		l := testlab.ForTest(t, testlab.Spec{Profile: "clean", NoGateways: true})
		var code int
		var out, errs string
		l.Do("ini", func() error {
			code, out, errs = runCLI(t, "pmtu", "203.0.113.99", "--timeout", "200ms")
			return nil
		})
		oneLine(t, code, out, errs, "does not answer even the smallest probe")
	})
	for _, c := range []struct {
		profile string
		mtu     int
	}{{"clean", 1500}, {"mtu1400", 1400}} {
		t.Run("agent-"+c.profile, func(t *testing.T) {
			t.Parallel()
			l := testlab.ForTest(t, testlab.Spec{Profile: c.profile, NoGateways: true})
			dir := t.TempDir()
			agent, key := labAgentKey(t, l, dir)
			for _, proto := range []string{"icmp", "udp", "tcp"} {
				var code int
				var out, errs string
				l.Do("ini", func() error {
					code, out, errs = runCLI(t, "pmtu", l.Addr("rsp").String(), "--agent", agent, "--key-file", key, "--proto", proto, "--json")
					return nil
				})
				if code != exitOK {
					t.Fatalf("%s: exit %d, stderr %q", proto, code, errs)
				}
				var rep report.Report
				if err := json.Unmarshal([]byte(out), &rep); err != nil {
					t.Fatal(err)
				}
				f, r := rep.PMTU.Forward, rep.PMTU.Reverse
				if f == nil || r == nil || f.MTU != c.mtu || r.MTU != c.mtu || f.Blackhole || r.Blackhole {
					t.Fatalf("%s: forward %+v reverse %+v; want %d both ways, no black hole", proto, f, r, c.mtu)
				}
				t.Logf("%s: forward %d in %d probes, reverse %d in %d probes", proto, f.MTU, f.Probes, r.MTU, r.Probes)
				// clean: 576 and 1500 pass. mtu1400: 576 passes, 1500 draws "need 1400", 1400
				// passes: three, as with ICMP alone.
				if want := map[int]int{1500: 2, 1400: 3}[c.mtu]; f.Probes != want {
					t.Errorf("%s: forward took %d probes, want %d:\n%s", proto, f.Probes, want, out)
				}
				// Reverse the same: r2's "need 1400" about the agent's 1500-byte echo reaches
				// the agent, whose capture reports it.
				if want := map[int]int{1500: 2, 1400: 3}[c.mtu]; r.Probes != want {
					t.Errorf("%s: reverse took %d probes, want %d:\n%s", proto, r.Probes, want, out)
				}
			}
		})
	}
}

// TestPMTUNotRoot: without root or CAP_NET_RAW the command says what it needs; with
// CAP_NET_RAW alone it runs (checked as user nobody through setpriv).
func TestPMTUNotRoot(t *testing.T) {
	if os.Geteuid() != 0 {
		code, out, errs := runCLI(t, "pmtu", "192.0.2.1")
		oneLine(t, code, out, errs, "needs root or CAP_NET_RAW")
		return
	}
	testlab.RequireTools(t, "setpriv") // to drop root; fails under CI=true instead of skipping
	bin := buildBinary(t)
	cmd := exec.Command("setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", bin, "pmtu", "192.0.2.1")
	var errb bytes.Buffer
	cmd.Stderr = &errb
	err := cmd.Run()
	code := cmd.ProcessState.ExitCode()
	if err == nil || code != exitUsage || !strings.Contains(errb.String(), "needs root or CAP_NET_RAW") {
		t.Errorf("as nobody: exit %d, %v, stderr %q", code, err, errb.String())
	}
	// With CAP_NET_RAW alone (no root) it works: toward loopback, the only place a test may
	// probe outside a lab.
	cmd = exec.Command("setpriv", "--reuid=65534", "--regid=65534", "--clear-groups",
		"--inh-caps=+net_raw", "--ambient-caps=+net_raw", bin, "pmtu", "127.0.0.1")
	var outb bytes.Buffer
	errb.Reset()
	cmd.Stdout, cmd.Stderr = &outb, &errb
	if err := cmd.Run(); err != nil || !strings.Contains(outb.String(), "path MTU toward 127.0.0.1 (icmp): 1500 bytes") {
		t.Errorf("as nobody with cap_net_raw: %v\nstdout %s\nstderr %s", err, outb.String(), errb.String())
	}
}

// TestWhereBlackhole: the text's black-hole place names whose link it may be: ours forward,
// the agent's on the way back; a localised one names the hops.
func TestWhereBlackhole(t *testing.T) {
	unlocalised := &pmtu.Blackhole{Size: 1301, Next: pmtu.Hop{TTL: 1, Addr: netip.MustParseAddr("198.51.100.1")}}
	if got := where(report.Forward, unlocalised); !strings.Contains(got, "our own link") {
		t.Errorf("forward: %s", got)
	}
	if got := where(report.Reverse, unlocalised); !strings.Contains(got, "the agent's own link") || strings.Contains(got, "our") {
		t.Errorf("reverse: %s", got)
	}
	sure := &pmtu.Blackhole{Size: 1301, Last: pmtu.Hop{TTL: 1, Addr: netip.MustParseAddr("198.51.100.1")}, Next: pmtu.Hop{TTL: 2, Addr: netip.MustParseAddr("192.0.2.66")}, Sure: true}
	if got, want := where(report.Reverse, sure), "after hop 1 (198.51.100.1), on its link toward hop 2 (192.0.2.66)"; got != want {
		t.Errorf("localised: %q, want %q", got, want)
	}
}
