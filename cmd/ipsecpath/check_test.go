package main

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/ipsecpath/ipsecpath/probe"
	"github.com/ipsecpath/ipsecpath/report"
	"github.com/ipsecpath/ipsecpath/testlab"
)

// oneLine checks the contract for environment errors: exit 2, nothing on stdout, exactly
// one line on stderr holding want.
func oneLine(t *testing.T, code int, stdout, stderr, want string) {
	t.Helper()
	if code != exitUsage {
		t.Errorf("exit %d, want %d; stderr %q", code, exitUsage, stderr)
	}
	if stdout != "" {
		t.Errorf("stdout %q, want nothing", stdout)
	}
	if strings.Count(stderr, "\n") != 1 || !strings.HasSuffix(stderr, "\n") {
		t.Errorf("stderr is not one line: %q", stderr)
	}
	if !strings.Contains(stderr, want) {
		t.Errorf("stderr %q lacks %q", stderr, want)
	}
}

// TestCheckBadInput: every usage mistake is refused before a packet leaves.
func TestCheckBadInput(t *testing.T) {
	dir := t.TempDir()
	key := writeKey(t, dir, "key", bytes.Repeat([]byte{7}, 32), 0o600)
	open := writeKey(t, dir, "open", bytes.Repeat([]byte{7}, 32), 0o644)
	short := writeKey(t, dir, "short", []byte("short"), 0o600)
	refusesAll(t, "check", []usageCase{
		{"no target", nil, "want one TARGET"},
		{"two targets", []string{"192.0.2.1", "192.0.2.2"}, "want one TARGET"},
		{"bad address", []string{"203.0.113.300"}, `"203.0.113.300" is not an IPv4 address`},
		{"hostname", []string{"gateway.example"}, "is not an IPv4 address"},
		{"multicast", []string{"224.0.0.5"}, "multicast address refused"},
		{"broadcast", []string{"255.255.255.255"}, "broadcast address refused"},
		{"unspecified", []string{"0.0.0.0"}, "unspecified address"},
		{"ipv6", []string{"2001:db8::1"}, "only IPv4 targets"},
		{"unknown probe", []string{"192.0.2.1", "--probes", "ike,gre"}, `unknown probe "gre"`},
		{"bad tcp port", []string{"192.0.2.1", "--tcp", "445,70000"}, `bad TCP port "70000"`},
		{"bad timeout", []string{"192.0.2.1", "--timeout", "-1s"}, "--timeout"},
		{"huge timeout", []string{"192.0.2.1", "--timeout", "1h"}, "--timeout"},
		{"bad pace", []string{"192.0.2.1", "--pace", "0"}, "--pace"},
		{"bad flag", []string{"192.0.2.1", "--frobnicate"}, "unknown flag"},
		{"bad format", []string{"192.0.2.1", "--format", "yaml"}, "unknown format"},
		{"snaplen without pcap", []string{"192.0.2.1", "--snaplen", "200"}, "--snaplen goes with --pcap"},
		{"tiny snaplen", []string{"192.0.2.1", "--pcap", filepath.Join(dir, "x.pcapng"), "--snaplen", "10"}, "--snaplen 10: want 96-262144 bytes"},
		{"agent without key", []string{"192.0.2.1", "--agent", "192.0.2.1:7500"}, "--agent needs --key-file"},
		{"key without agent", []string{"192.0.2.1", "--key-file", key}, "--key-file without --agent"},
		{"missing key file", []string{"192.0.2.1", "--agent", "192.0.2.1", "--key-file", filepath.Join(dir, "nope")}, "no such file"},
		{"world-readable key", []string{"192.0.2.1", "--agent", "192.0.2.1", "--key-file", open}, "chmod 600"},
		{"short key", []string{"192.0.2.1", "--agent", "192.0.2.1", "--key-file", short}, "need at least 16"},
		{"agent elsewhere", []string{"192.0.2.1", "--agent", "192.0.2.2:7500", "--key-file", key}, "the agent must run on the target"},
	})
}

func TestCheckHelp(t *testing.T) {
	code, out, _ := runCLI(t, "check", "--help")
	if code != exitOK {
		t.Fatalf("exit %d", code)
	}
	for _, w := range []string{"How to read the verdicts", "frag-dropped", "partial", "blocked", "--agent", "Exit status"} {
		if !strings.Contains(out, w) {
			t.Errorf("help lacks %q", w)
		}
	}
	if i := strings.LastIndex(out, "Examples:"); i < 0 || strings.Contains(out[i:], "Flags:") {
		t.Errorf("help does not end with examples:\n%s", out)
	}
}

// fakeCapturer and fakeSender let an agent run on loopback without raw sockets: enough to
// test the control channel's failure modes from the CLI.
type fakeCapturer struct{}

func (fakeCapturer) Capture(netip.Addr) (probe.PacketSource, error) { return fakeSource{}, nil }

type fakeSource struct{}

func (fakeSource) Drain(dst []probe.Seen) ([]probe.Seen, int) { return dst, 0 }
func (fakeSource) Close() error                               { return nil }

type fakeSender struct{}

func (fakeSender) SendProbe(context.Context, netip.Addr, netip.Addr, probe.ReverseProbe) (int, int, error) {
	return 1, 100, nil
}
func (fakeSender) Close() error { return nil }

// TestCheckAgentFailures: an agent that is not there, and one that does not know our key,
// each give one line and exit 2, before any probe is sent (no root needed).
func TestCheckAgentFailures(t *testing.T) {
	dir := t.TempDir()
	key := writeKey(t, dir, "key", bytes.Repeat([]byte{7}, 32), 0o600)
	resp, err := probe.NewResponder(probe.ResponderConfig{Key: bytes.Repeat([]byte{8}, 32), Capture: fakeCapturer{}, Sender: fakeSender{}})
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	testlab.Serve(t, resp, ln)

	// A port nobody listens on: take one and close it.
	l2, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	closed := l2.Addr().String()
	l2.Close()

	t.Run("unreachable", func(t *testing.T) {
		code, out, errs := runCLI(t, "check", "127.0.0.1", "--agent", closed, "--key-file", key)
		oneLine(t, code, out, errs, "connection refused")
	})
	t.Run("wrong key", func(t *testing.T) {
		code, out, errs := runCLI(t, "check", "127.0.0.1", "--agent", ln.Addr().String(), "--key-file", key)
		oneLine(t, code, out, errs, "our --key-file does not hold the agent's key")
	})
	t.Run("busy", func(t *testing.T) {
		// An agent whose only connection slot holds a session: busy, not a wrong key.
		busy, err := probe.NewResponder(probe.ResponderConfig{Key: bytes.Repeat([]byte{7}, 32), Capture: fakeCapturer{}, Sender: fakeSender{}, MaxConns: 1})
		if err != nil {
			t.Fatal(err)
		}
		bl, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		defer testlab.Serve(t, busy, bl)()
		holder, err := probe.DialAgent(context.Background(), bl.Addr().String(), bytes.Repeat([]byte{7}, 32))
		if err != nil {
			t.Fatal(err)
		}
		defer holder.Close()
		if _, err := holder.Hello(context.Background()); err != nil {
			t.Fatal(err)
		}
		code, out, errs := runCLI(t, "check", "127.0.0.1", "--agent", bl.Addr().String(), "--key-file", key)
		oneLine(t, code, out, errs, "the agent is busy: every one of its connection slots holds a session")
		if strings.Contains(errs, "key") {
			t.Errorf("busy agent reported with a word about the key: %q", errs)
		}
	})
	t.Run("agent of protocol 1", func(t *testing.T) {
		// What an agent of the previous release does with a request it cannot authenticate:
		// it says nothing and closes.
		old, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		defer old.Close()
		go func() {
			for {
				c, err := old.Accept()
				if err != nil {
					return
				}
				go func() {
					defer c.Close()
					c.SetReadDeadline(time.Now().Add(200 * time.Millisecond))
					io.Copy(io.Discard, c)
				}()
			}
		}()
		code, out, errs := runCLI(t, "check", "127.0.0.1", "--agent", old.Addr().String(), "--key-file", key)
		oneLine(t, code, out, errs, "older than control protocol 2 (upgrade it)")
	})
}

// TestCheckNotPrivileged runs check as user nobody: no raw socket, one line, exit 2.
func TestCheckNotPrivileged(t *testing.T) {
	testlab.RequireRoot(t) // to become nobody
	dir, bin := copyTestBinary(t)
	code, stdout, stderr := runAsNobody(t, dir, bin, "check", "127.0.0.1", "--probes", "esp")
	if code != exitUsage {
		t.Fatalf("as nobody: exit %d, want 2; stderr %q", code, stderr)
	}
	if got := stderr; got != "ipsecpath check: needs root or CAP_NET_RAW for raw sockets and packet capture (run as root, or setcap cap_net_raw+ep on the binary)\n" {
		t.Fatalf("stderr %q", got)
	}
	if stdout != "" {
		t.Errorf("stdout %q", stdout)
	}
}

// TestCheckCLILab runs the whole command inside the lab: agent in rsp, check from ini with
// --json, --out and --pcap. frag-drop fails (exit 1) with the fragmented forms frag-dropped;
// clean passes (exit 0). On every profile the pcap is checked (checkPcapEvidence: tshark
// finds nothing malformed, every probe's sends and sightings are tied, pcap explain agrees
// with the verdicts), and the --out HTML report is opened in Chromium (checkHTMLInChromium).
func TestCheckCLILab(t *testing.T) {
	testlab.RequireRoot(t)
	testlab.RequireTools(t, "tshark")
	for _, c := range []struct {
		profile string
		code    int
		want    map[string]report.Verdict // forward and reverse
	}{
		{"clean", exitOK, map[string]report.Verdict{"ike-frag": report.Pass, "esp": report.Pass, "tcp:445": report.Pass}},
		{"frag-drop", exitFail, map[string]report.Verdict{"ike": report.Pass, "ike-frag": report.FragDropped, "esp-frag": report.FragDropped, "icmp-large": report.FragDropped}},
		// forward only: the reverse UDP burst meets the forgotten flow and is dropped
		{"stateful-udp", exitFail, map[string]report.Verdict{"ike": report.Pass, "esp": report.Pass, "natt-frag": report.Pass}},
		// first fragments pass, the rest do not: pcap explain must say "in part"
		{"nonfirst-frag-drop", exitFail, map[string]report.Verdict{"esp": report.Pass, "esp-frag": report.Partial, "ike-frag": report.Partial}},
	} {
		t.Run(c.profile, func(t *testing.T) {
			t.Parallel()
			l := testlab.ForTest(t, testlab.Spec{Profile: c.profile, NoGateways: true})
			dir := t.TempDir()
			agent, key := labAgentKey(t, l, dir)

			outName := "run.md"
			if c.profile != "clean" {
				outName = "run.html" // the HTML report, opened in Chromium below
			}
			pcap, md := filepath.Join(dir, "run.pcapng"), filepath.Join(dir, outName)
			var out, errb bytes.Buffer
			var code int
			l.Do("ini", func() error {
				code = run(context.Background(), []string{"check", l.Addr("rsp").String(), "--agent", agent, "--key-file", key,
					"--json", "--pcap", pcap, "--out", md}, &out, &errb)
				return nil
			})
			validateOutputs(t, []string{"check", "--json"}, code, out.String())
			if code != c.code {
				t.Fatalf("exit %d, want %d; stderr %q", code, c.code, errb.String())
			}
			if errb.Len() != 0 {
				t.Errorf("--json run wrote on stderr: %q", errb.String())
			}
			rep, err := report.ReadJSON(&out)
			if err != nil {
				t.Fatal(err)
			}
			for _, r := range rep.Results {
				if w, ok := c.want[r.Probe]; ok && r.Verdict != w && (c.profile != "stateful-udp" || r.Direction == report.Forward) {
					t.Errorf("%s %s: %s (%s), want %s", r.Probe, r.Direction, r.Verdict, r.Detail, w)
				}
			}
			checkPcapEvidence(t, pcap, rep)
			if strings.HasSuffix(md, ".html") {
				checkHTMLInChromium(t, md, c.profile, rep)
			}
			if b, err := os.ReadFile(md); err != nil || !bytes.Contains(b, []byte("ike-frag")) {
				t.Errorf("--out %s: %v, %d bytes", md, err, len(b))
			}
			tctx, tcancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer tcancel()
			pk, err := exec.CommandContext(tctx, "tshark", "-r", pcap, "-T", "fields", "-e", "ip.proto").CombinedOutput()
			if err != nil {
				t.Fatalf("tshark -r %s: %v\n%s", pcap, err, pk)
			}
			protos := map[string]int{}
			for _, p := range strings.Fields(string(pk)) {
				protos[p]++
			}
			for _, p := range []string{"1", "6", "17", "50", "51"} { // ICMP, TCP, UDP, ESP, AH
				if protos[p] == 0 {
					t.Errorf("pcap holds no IP protocol %s packet: %v", p, protos)
				}
			}
		})
	}
}

// TestLabDemo runs `ipsecpath lab demo` as a user would (strongSwan on both gateways, IKE
// fragmentation off; charon owns UDP 500/4500 there and the agent still sees every probe):
// frag-drop makes every fragmented probe frag-dropped both ways and everything else pass
// (demoSurprises), exit 0, and the lab is gone afterwards.
func TestLabDemo(t *testing.T) {
	testlab.RequireRoot(t)
	testlab.RequireTools(t, "ip", "nft", "swanctl", "prlimit", testlab.CharonPath)
	name := fmt.Sprintf("t%d-demo", os.Getpid())
	t.Cleanup(func() { testlab.Down(context.Background(), name) })
	var out, errb bytes.Buffer
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	code := run(ctx, []string{"lab", "demo", "--name", name}, &out, &errb)
	if code != exitOK {
		t.Fatalf("exit %d; stderr %q\n%s", code, errb.String(), out.String())
	}
	for _, w := range []string{"NOT established", "frag-dropped", "ike-frag", "turn on IKE fragmentation"} {
		if !strings.Contains(out.String(), w) {
			t.Errorf("demo output lacks %q:\n%s", w, out.String())
		}
	}
	nss, _ := exec.Command("ip", "netns", "list").Output()
	if strings.Contains(string(nss), "ipl-"+name+"-") {
		t.Errorf("lab %s left namespaces behind:\n%s", name, nss)
	}
}
