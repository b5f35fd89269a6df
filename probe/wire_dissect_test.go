package probe

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/gopacket"
	"github.com/google/gopacket/layers"
	"github.com/google/gopacket/pcapgo"
	"github.com/ipsecpath/ipsecpath/testlab"
)

// writePcapng writes raw IPv4 packets to a pcapng file.
func writePcapng(t *testing.T, path string, pkts [][]byte) {
	t.Helper()
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	w, err := pcapgo.NewNgWriter(f, layers.LinkTypeRaw)
	if err != nil {
		t.Fatal(err)
	}
	at := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	for i, p := range pkts {
		ci := gopacket.CaptureInfo{Timestamp: at.Add(time.Duration(i) * time.Millisecond), CaptureLength: len(p), Length: len(p)}
		if err := w.WritePacket(ci, p); err != nil {
			t.Fatal(err)
		}
	}
	if err := w.Flush(); err != nil {
		t.Fatal(err)
	}
}

// tshark dissects every probe we craft (fragments reassembled by tshark) without a
// malformed-packet or error-level expert note, with checksum validation on, and shows the
// fields that carry the nonce.
func TestTsharkDissectsProbes(t *testing.T) {
	testlab.RequireTools(t, "tshark")
	var all [][]byte
	var out Packets
	for _, id := range allClasses() {
		if err := Build(id, params(id), &out); err != nil {
			t.Fatal(err)
		}
		for _, w := range out.Wire {
			all = append(all, append([]byte(nil), w...))
		}
	}
	path := filepath.Join(t.TempDir(), "probes.pcapng")
	writePcapng(t, path, all)

	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	checks := []string{"-o", "ip.check_checksum:TRUE", "-o", "udp.check_checksum:TRUE", "-o", "tcp.check_checksum:TRUE"}
	v, err := exec.CommandContext(ctx, "tshark", append([]string{"-n", "-V", "-r", path}, checks...)...).CombinedOutput()
	if err != nil {
		t.Fatalf("tshark: %v\n%s", err, v)
	}
	text := string(v)
	for _, bad := range []string{"Malformed", "Expert Info (Error", "[Checksum Status: Bad]", "incorrect"} {
		if i := strings.Index(text, bad); i >= 0 {
			t.Errorf("tshark says %q:\n%s", bad, text[max(0, i-600):min(len(text), i+200)])
		}
	}
	// The nonce is visible where we put it.
	fields, err := exec.CommandContext(ctx, "tshark", "-n", "-r", path, "-T", "fields", "-E", "separator=,",
		"-e", "esp.spi", "-e", "ah.spi", "-e", "icmp.ident", "-e", "isakmp.ispi", "-e", "tcp.seq_raw",
		"-e", "ip.fragment.count").CombinedOutput()
	if err != nil {
		t.Fatalf("tshark fields: %v\n%s", err, fields)
	}
	f := string(fields)
	for _, want := range []string{"0x5a5a0102", "23130", "495001015a5a0102", "495002015a5a0102", "495003015a5a0102", "495004015a5a0102", "1515847938"} {
		if !strings.Contains(strings.ToLower(f), strings.ToLower(want)) {
			t.Errorf("tshark fields lack %s:\n%s", want, f)
		}
	}
	t.Logf("tshark -T fields (esp.spi, ah.spi, icmp.ident, isakmp.ispi, tcp.seq_raw, ip.fragment.count):\n%s", f)
}

// tcpdump prints each golden packet the way the golden's comment says.
func TestTcpdumpReadsGoldens(t *testing.T) {
	testlab.RequireTools(t, "tcpdump")
	var pkts [][]byte
	for _, g := range goldens {
		var out Packets
		if err := Build(g.id, g.p, &out); err != nil {
			t.Fatal(err)
		}
		pkts = append(pkts, out.Wire[0])
	}
	path := filepath.Join(t.TempDir(), "goldens.pcapng")
	writePcapng(t, path, pkts)
	out, err := exec.Command("tcpdump", "-nv", "-tt", "-r", path).Output()
	if err != nil {
		t.Fatalf("tcpdump: %v", err)
	}
	// tcpdump -v prints two lines per packet; join them and drop the timestamp.
	var lines []string
	for _, l := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		if strings.HasPrefix(l, " ") && len(lines) > 0 {
			lines[len(lines)-1] += " " + strings.TrimSpace(l)
			continue
		}
		if _, rest, ok := strings.Cut(l, " "); ok {
			lines = append(lines, rest)
		}
	}
	if len(lines) != len(goldens) {
		t.Fatalf("tcpdump printed %d packets, want %d:\n%s", len(lines), len(goldens), out)
	}
	for i, g := range goldens {
		if lines[i] != g.dump {
			t.Errorf("%s:\n tcpdump %s\n golden  %s", g.id, lines[i], g.dump)
		}
	}
}
