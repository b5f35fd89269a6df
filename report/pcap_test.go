package report

import (
	"bytes"
	"encoding/binary"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/gopacket"
	"github.com/google/gopacket/layers"
	"github.com/google/gopacket/pcapgo"
	"github.com/ipsecpath/ipsecpath/testlab"
)

// udpPacket builds an IPv4/UDP packet from 198.51.100.10 to 203.0.113.10 with lengths and
// checksums filled in, the way a probe goes on the wire.
func udpPacket(t testing.TB, sport, dport int, payload []byte) []byte {
	t.Helper()
	ip := &layers.IPv4{Version: 4, TTL: 64, Id: 0x1234, Protocol: layers.IPProtocolUDP,
		SrcIP: net.IPv4(198, 51, 100, 10), DstIP: net.IPv4(203, 0, 113, 10)}
	udp := &layers.UDP{SrcPort: layers.UDPPort(sport), DstPort: layers.UDPPort(dport)}
	if err := udp.SetNetworkLayerForChecksum(ip); err != nil {
		t.Fatal(err)
	}
	buf := gopacket.NewSerializeBuffer()
	opts := gopacket.SerializeOptions{FixLengths: true, ComputeChecksums: true}
	if err := gopacket.SerializeLayers(buf, opts, ip, udp, gopacket.Payload(payload)); err != nil {
		t.Fatal(err)
	}
	return append([]byte(nil), buf.Bytes()...)
}

type pcapRecord struct {
	point   string
	ts      time.Time
	pkt     []byte
	comment string
}

// writePcap writes records (the first capture points given up front, others on the fly).
func writePcap(t *testing.T, w io.Writer, recs []pcapRecord, points ...string) {
	t.Helper()
	p, err := NewPcap(w, points...)
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range recs {
		if r.point == "" {
			err = p.WritePacket(r.ts, r.pkt)
		} else {
			err = p.WritePacketAt(r.point, r.ts, r.pkt, r.comment)
		}
		if err != nil {
			t.Fatal(err)
		}
	}
	if err := p.Flush(); err != nil {
		t.Fatal(err)
	}
}

func samplePcapRecords(t *testing.T) []pcapRecord {
	base := time.Date(2026, 11, 23, 9, 0, 0, 123456789, time.UTC)
	return []pcapRecord{
		{ts: base, pkt: udpPacket(t, 500, 500, []byte("ike probe"))},
		{point: "initiator", ts: base.Add(time.Millisecond), pkt: udpPacket(t, 4500, 4500, []byte{0, 0, 0, 0, 1, 2, 3}), comment: "natt probe nonce 0x12345678"},
		{point: "agent", ts: base.Add(2 * time.Millisecond), pkt: udpPacket(t, 500, 500, bytes.Repeat([]byte{0xab}, 1001)), comment: "seen by the agent: ttl 62 — naïve UTF-8"},
		{point: "agent", ts: base.Add(3 * time.Millisecond), pkt: udpPacket(t, 500, 500, []byte("x"))},
	}
}

func TestPcapReadBackWithPcapgo(t *testing.T) {
	var buf bytes.Buffer
	recs := samplePcapRecords(t)
	writePcap(t, &buf, recs)

	r, err := pcapgo.NewNgReader(&buf, pcapgo.DefaultNgReaderOptions)
	if err != nil {
		t.Fatal(err)
	}
	for i, want := range recs {
		data, ci, err := r.ReadPacketData()
		if err != nil {
			t.Fatalf("packet %d: %v", i, err)
		}
		if !bytes.Equal(data, want.pkt) {
			t.Errorf("packet %d: bytes differ:\n got % x\nwant % x", i, data, want.pkt)
		}
		if !ci.Timestamp.Equal(want.ts) {
			t.Errorf("packet %d: time %v, want %v", i, ci.Timestamp, want.ts)
		}
		if ci.Length != len(want.pkt) || ci.CaptureLength != len(want.pkt) {
			t.Errorf("packet %d: lengths %d/%d, want %d", i, ci.CaptureLength, ci.Length, len(want.pkt))
		}
		point := want.point
		if point == "" {
			point = DefaultCapturePoint
		}
		intf, err := r.Interface(ci.InterfaceIndex)
		if err != nil {
			t.Fatalf("packet %d: interface %d: %v", i, ci.InterfaceIndex, err)
		}
		if intf.Name != point || intf.LinkType != layers.LinkTypeRaw {
			t.Errorf("packet %d: interface %q link type %v, want %q RAW", i, intf.Name, intf.LinkType, point)
		}
		pkt := gopacket.NewPacket(data, layers.LayerTypeIPv4, gopacket.Default)
		if u, _ := pkt.Layer(layers.LayerTypeUDP).(*layers.UDP); u == nil || pkt.ErrorLayer() != nil {
			t.Errorf("packet %d does not decode as IPv4/UDP: %v", i, pkt.ErrorLayer())
		}
	}
	if _, _, err := r.ReadPacketData(); err != io.EOF {
		t.Errorf("after the last packet: %v, want EOF", err)
	}
}

func TestPcapReadBackWithTshark(t *testing.T) {
	testlab.RequireTools(t, "tshark")
	path := filepath.Join(t.TempDir(), "probes.pcapng")
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	recs := samplePcapRecords(t)
	writePcap(t, f, recs)
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command("tshark", "-r", path, "-T", "fields", "-E", "separator=|",
		"-e", "frame.interface_name", "-e", "ip.src", "-e", "ip.dst", "-e", "udp.dstport",
		"-e", "frame.len", "-e", "frame.comment", "-e", "_ws.malformed", "-e", "_ws.expert.severity").CombinedOutput()
	if err != nil {
		t.Fatalf("tshark: %v\n%s", err, out)
	}
	var lines []string
	for _, l := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		if strings.HasPrefix(l, "Running as user") { // tshark's warning when run as root
			continue
		}
		lines = append(lines, l)
	}
	// The last two fields: _ws.malformed is empty unless tshark found the packet malformed;
	// the expert severity is empty, or 1048576 (PI_COMMENT) for a packet with a comment.
	want := []string{
		"initiator|198.51.100.10|203.0.113.10|500|37|||",
		"initiator|198.51.100.10|203.0.113.10|4500|35|natt probe nonce 0x12345678||1048576",
		"agent|198.51.100.10|203.0.113.10|500|1029|seen by the agent: ttl 62 — naïve UTF-8||1048576",
		"agent|198.51.100.10|203.0.113.10|500|29|||",
	}
	if len(lines) != len(want) {
		t.Fatalf("tshark printed %d packets, want %d:\n%s", len(lines), len(want), out)
	}
	for i := range want {
		if lines[i] != want[i] {
			t.Errorf("packet %d:\n got %s\nwant %s", i, lines[i], want[i])
		}
	}
}

func TestCreatePcap(t *testing.T) {
	path := filepath.Join(t.TempDir(), "run.pcapng")
	p, err := CreatePcap(path, "initiator", "agent")
	if err != nil {
		t.Fatal(err)
	}
	pkt := udpPacket(t, 500, 500, []byte("ike"))
	if err := p.WritePacketAt("agent", time.Now(), pkt, "seen"); err != nil {
		t.Fatal(err)
	}
	if err := p.Close(); err != nil {
		t.Fatal(err)
	}
	if err := p.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
	if err := p.WritePacket(time.Now(), pkt); err == nil {
		t.Error("write after Close succeeded")
	}
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	r, err := pcapgo.NewNgReader(f, pcapgo.DefaultNgReaderOptions)
	if err != nil {
		t.Fatal(err)
	}
	data, ci, err := r.ReadPacketData()
	if err != nil || !bytes.Equal(data, pkt) || ci.InterfaceIndex != 1 {
		t.Errorf("read back: %v, interface %d, % x", err, ci.InterfaceIndex, data)
	}
	if _, err := CreatePcap(filepath.Join(t.TempDir(), "missing", "x.pcapng")); err == nil {
		t.Error("CreatePcap in a missing directory succeeded")
	}
}

func TestPcapConcurrentWriters(t *testing.T) {
	var buf bytes.Buffer
	p, err := NewPcap(&buf, "initiator", "agent")
	if err != nil {
		t.Fatal(err)
	}
	pkt := udpPacket(t, 500, 500, []byte("concurrent"))
	var wg sync.WaitGroup
	const writers, each = 4, 50
	for g := 0; g < writers; g++ {
		wg.Add(1)
		go func(g int) {
			defer wg.Done()
			for i := 0; i < each; i++ {
				comment := ""
				if i%2 == 0 {
					comment = "c"
				}
				if err := p.WritePacketAt([]string{"initiator", "agent"}[g%2], time.Now(), pkt, comment); err != nil {
					t.Error(err)
					return
				}
			}
		}(g)
	}
	wg.Wait()
	if err := p.Flush(); err != nil {
		t.Fatal(err)
	}
	r, err := pcapgo.NewNgReader(&buf, pcapgo.DefaultNgReaderOptions)
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for {
		data, _, err := r.ReadPacketData()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatalf("after %d packets: %v", n, err)
		}
		if !bytes.Equal(data, pkt) {
			t.Fatalf("packet %d garbled", n)
		}
		n++
	}
	if n != writers*each {
		t.Errorf("read %d packets, want %d", n, writers*each)
	}
}

func TestPcapRejects(t *testing.T) {
	if _, err := NewPcap(io.Discard, "initiator", "initiator"); err == nil {
		t.Error("a capture point named twice was accepted")
	}
	if _, err := NewPcap(io.Discard, ""); err == nil {
		t.Error("an empty capture point name was accepted")
	}
	p, err := NewPcap(io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if err := p.WritePacket(time.Now(), nil); err == nil {
		t.Error("an empty packet was accepted")
	}
	if err := p.WritePacket(time.Now(), make([]byte, MaxPcapPacket+1)); err == nil {
		t.Error("an oversized packet was accepted")
	}
	if err := p.WritePacketAt("bad\nname", time.Now(), []byte{0x45}, ""); err == nil {
		t.Error("a capture point with a newline was accepted")
	}
}

// failWriter fails every write after the first n bytes.
type failWriter struct{ n int }

func (w *failWriter) Write(b []byte) (int, error) {
	if len(b) > w.n {
		return 0, os.ErrClosed
	}
	w.n -= len(b)
	return len(b), nil
}

func TestPcapWriteErrorSticks(t *testing.T) {
	p, err := NewPcap(&failWriter{n: 1 << 10})
	if err != nil {
		t.Fatal(err)
	}
	pkt := udpPacket(t, 500, 500, make([]byte, 1400))
	// Packets are buffered: the failure shows at the latest when the buffer is written out.
	err = p.WritePacketAt("initiator", time.Now(), pkt, "with a comment")
	if err == nil {
		err = p.Flush()
	}
	if err == nil {
		t.Fatal("write past the writer's end did not fail")
	}
	if err := p.WritePacket(time.Now(), pkt); err == nil {
		t.Error("a write after a failed one succeeded")
	}
	if err := p.Flush(); err == nil {
		t.Error("Flush after a failed write succeeded")
	}
	if err := p.Close(); err == nil {
		t.Error("Close after a failed write returned no error")
	}
}

func TestCutComment(t *testing.T) {
	long := strings.Repeat("é", MaxPcapComment) // 2 bytes each
	c := cutComment(long)
	if len(c) > MaxPcapComment || !strings.HasPrefix(long, c) || len(c) < MaxPcapComment-1 {
		t.Errorf("cut to %d bytes", len(c))
	}
	if got := cutComment("a\xffb"); got != "a?b" {
		t.Errorf("invalid UTF-8 became %q", got)
	}
}

func BenchmarkPcapWritePacket(b *testing.B) {
	benchPcapWrite(b, func(p *Pcap, ts time.Time, pkt []byte) error { return p.WritePacket(ts, pkt) })
}

func BenchmarkPcapWritePacketWithComment(b *testing.B) {
	benchPcapWrite(b, func(p *Pcap, ts time.Time, pkt []byte) error {
		return p.WritePacketAt("agent", ts, pkt, "esp-frag fragment 2 of 3 seen")
	})
}

// benchPcapWrite times write recording a 1428-byte UDP 500 packet into a pcapng written to
// io.Discard.
func benchPcapWrite(b *testing.B, write func(p *Pcap, ts time.Time, pkt []byte) error) {
	p, err := NewPcap(io.Discard)
	if err != nil {
		b.Fatal(err)
	}
	pkt := udpPacket(b, 500, 500, make([]byte, 1400))
	ts := time.Now()
	b.ReportAllocs()
	b.SetBytes(int64(len(pkt)))
	for b.Loop() {
		if err := write(p, ts, pkt); err != nil {
			b.Fatal(err)
		}
	}
}

// A packet the capture cut short is recorded with its length on the wire as the original
// length: tshark marks it "packet size limited during capture", not malformed. Written the
// old way (original length = what was kept) the same bytes are malformed — the bug a user
// met — which shows the check below can fail.
func TestPcapCutPacketNotMalformed(t *testing.T) {
	testlab.RequireTools(t, "tshark")
	pkt := make([]byte, 510) // IPv4 + UDP 500 + a 482-byte IKE message
	pkt[0], pkt[8], pkt[9] = 0x45, 64, 17
	binary.BigEndian.PutUint16(pkt[2:], 510)
	copy(pkt[12:], []byte{198, 51, 100, 10, 203, 0, 113, 10})
	binary.BigEndian.PutUint16(pkt[20:], 500)
	binary.BigEndian.PutUint16(pkt[22:], 500)
	binary.BigEndian.PutUint16(pkt[24:], 490)
	pkt[28+17] = 0x20 // IKE version 2.0
	pkt[28+18] = 34   // IKE_SA_INIT
	binary.BigEndian.PutUint32(pkt[28+24:], 482)
	bad := func(wire int) int {
		path := filepath.Join(t.TempDir(), "cut.pcapng")
		p, err := CreatePcap(path)
		if err != nil {
			t.Fatal(err)
		}
		if err := p.WriteRecord(DefaultCapturePoint, time.Unix(1_800_000_000, 0), pkt[:84], wire, "cut to 84 bytes"); err != nil {
			t.Fatal(err)
		}
		if err := p.Close(); err != nil {
			t.Fatal(err)
		}
		out, err := exec.Command("tshark", "-r", path, "-Y", "_ws.malformed || _ws.expert.severity == error").Output()
		if err != nil {
			t.Fatalf("tshark: %v", err)
		}
		return strings.Count(string(out), "\n")
	}
	if n := bad(IPWireLength(pkt[:84])); n != 0 {
		t.Errorf("recorded with its wire length (510): tshark finds %d malformed or error records, want 0", n)
	}
	if n := bad(84); n == 0 {
		t.Error("recorded the old way (original length 84): tshark finds nothing wrong, so the check above proves nothing")
	}
}
