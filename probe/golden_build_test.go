package probe

// The wire-bytes golden of every probe class: Build at many sizes and parameters, and
// ClassifyHead on what it built, on the answers and ICMP errors it causes, on mutations of
// all of those and on the strongSwan captures of the ike package. testdata/build.golden.gz was
// recorded from the code before the class table (go test -run Golden ./probe -update) and
// pins the bytes and the answers: a refactor of the codecs must leave it unchanged.

import (
	"bufio"
	"bytes"
	"compress/gzip"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"flag"
	"fmt"
	"io"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/ipsecpath/ipsecpath/probe/wire"
)

var updateGolden = flag.Bool("update", false, "rewrite testdata/build.golden from the code as it is")

// goldenIDs are the classes the golden builds: every class, and UDP ports that meet the
// IKE, NAT-T and L2TP recognisers.
func goldenIDs() []ID {
	return append(allClasses(), TCP(1), TCP(65535), UDP(500), UDP(4500), UDP(1701), UDP(65535)+"-frag", "tcp:0", "udp:07", "bogus")
}

// goldenSizes cover each class's minimum, default (0), odd sizes, the fragment boundary
// and the IP maximum.
var goldenSizes = []int{0, 1, 27, 40, 43, 44, 45, 47, 48, 49, 55, 56, 57, 60, 61, 64, 65, 73, 74, 75, 79, 80,
	81, 100, 127, 128, 301, 459, 460, 461, 1279, 1280, 1281, 1400, 1501, 2001, 3000, 5028, 65535, 65536}

type goldenVariant struct {
	name string
	set  func(p *BuildParams)
}

var goldenVariants = []goldenVariant{
	{"plain", func(*BuildParams) {}},
	{"df-ttl9", func(p *BuildParams) { p.DF, p.TTL = true, 9 }},
	{"ports-ipid", func(p *BuildParams) { p.SrcPort, p.DstPort, p.IPID = 1234, 4321, 0x4242 }},
	{"frag576", func(p *BuildParams) { p.FragSize = 576 }},
	{"frag8", func(p *BuildParams) { p.FragSize = 28 }},
	{"nonce2", func(p *BuildParams) { p.Nonce = 0xfffffffe }},
}

// goldenBuild writes one line per build and returns the heads it built.
func goldenBuild(w *strings.Builder) [][2][]byte {
	var heads [][2][]byte
	var out Packets
	for _, p := range []BuildParams{
		{Src: netip.MustParseAddr("2001:db8::1"), Dst: tDst, Nonce: tNonce},
		{Src: tSrc, Dst: netip.MustParseAddr("127.0.0.1"), Nonce: tNonce},
		{Src: tSrc, Dst: netip.MustParseAddr("0.0.0.0"), Nonce: tNonce},
		{Src: tSrc, Dst: tDst, Nonce: 0x10000},
		{Src: tSrc, Dst: tDst, Nonce: 255},
		{Dst: tDst, Nonce: tNonce},
	} {
		fmt.Fprintf(w, "build esp %+v: %v\n", p, Build(ESP, p, &out))
	}
	for _, id := range goldenIDs() {
		for _, size := range goldenSizes {
			for _, v := range goldenVariants {
				p := BuildParams{Src: tSrc, Dst: tDst, Nonce: tNonce, Size: size}
				v.set(&p)
				err := Build(id, p, &out)
				fmt.Fprintf(w, "build %s %d %s: ", id, size, v.name)
				if err != nil {
					fmt.Fprintf(w, "error %v\n", err)
					continue
				}
				writePackets(w, &out)
				for i, pk := range out.Wire {
					if i < 3 || i == len(out.Wire)-1 {
						heads = append(heads, [2][]byte{{pk[9]}, pk[int(pk[0]&0xf)*4:]})
					}
				}
				if len(out.Wire) > 2 && v.name == "plain" {
					goldenReorder(w, id, p, &out)
				}
			}
		}
	}
	return heads
}

func goldenReorder(w *strings.Builder, id ID, p BuildParams, out *Packets) {
	n := len(out.Wire)
	p.Order = make([]int, n)
	for i := range p.Order {
		p.Order[i] = (i + 1) % n
	}
	err := Build(id, p, out)
	fmt.Fprintf(w, "build %s %d order %v: ", id, p.Size, p.Order)
	if err != nil {
		fmt.Fprintf(w, "error %v\n", err)
		return
	}
	writePackets(w, out)
	p.Order = []int{0}
	fmt.Fprintf(w, "build %s %d bad order: error %v\n", id, p.Size, Build(id, p, out))
}

func writePackets(w *strings.Builder, out *Packets) {
	fmt.Fprintf(w, "%s %#x %v>%v proto %d ipid %#x ttl %d size %d %d packets\n", out.ID, out.Nonce, out.Src, out.Dst,
		out.Proto, out.IPID, out.TTL, out.Size, len(out.Wire))
	all := sha256.New()
	for i, pk := range out.Wire {
		fmt.Fprintf(all, "%d %v % x\n", len(pk), out.Frags[i], pk)
		if i < 3 || i == len(out.Wire)-1 {
			fmt.Fprintf(w, "  %d %v %x\n", len(pk), out.Frags[i], pk[:min(len(pk), 72)])
		}
	}
	fmt.Fprintf(w, "  all %x\n", all.Sum(nil)[:16])
}

// goldenAnswers makes, from a probe's head, what comes back: an echo reply, IKE responses,
// a SYN-ACK and a RST, and ICMP errors quoting 8 bytes and the whole head.
func goldenAnswers(proto uint8, head []byte) [][2][]byte {
	var out [][2][]byte
	add := func(p uint8, b []byte) { out = append(out, [2][]byte{{p}, b}) }
	cp := func(b []byte) []byte { return append([]byte(nil), b...) }
	if proto == ProtoICMP && len(head) >= 8 {
		r := cp(head)
		r[0] = wire.ICMPEchoReply
		add(ProtoICMP, r)
	}
	if proto == ProtoUDP && len(head) >= 8+28+4 {
		for _, off := range []int{8, 12} {
			r := cp(head)
			r[off+8] = 0x77 // responder SPI
			add(ProtoUDP, r)
			r = cp(head)
			r[off+19] |= 0x20 // response flag
			add(ProtoUDP, r)
		}
	}
	if proto == ProtoTCP && len(head) >= 20 {
		for _, fl := range []byte{TCPSyn | TCPAck, TCPRst | TCPAck, TCPRst, TCPAck, TCPFin | TCPAck} {
			r := cp(head)
			binary.BigEndian.PutUint32(r[8:12], binary.BigEndian.Uint32(r[4:8])+1)
			r[13] = fl
			add(ProtoTCP, r)
		}
	}
	ip := make([]byte, 20)
	putIPv4Header(ip, 20+len(head), 0x0102, false, 64, proto, tSrc, tDst)
	for _, n := range []int{0, 4, 8, 12, 28, len(head)} {
		if n > len(head) {
			continue
		}
		for _, tc := range [][2]byte{{wire.ICMPUnreach, wire.CodeFragNeeded}, {wire.ICMPTimeExceeded, 0}, {wire.ICMPParamProblem, 0}, {wire.ICMPEcho, 0}} {
			e := append([]byte{tc[0], tc[1], 0, 0, 0, 0, 0x05, 0x78}, ip...)
			add(ProtoICMP, append(e, head[:n]...))
		}
	}
	return out
}

// goldenClassify writes what ClassifyHead says of each head, and a digest of what it says
// of every truncation and one-byte change of it, under every protocol.
func goldenClassify(w *strings.Builder, heads [][2][]byte) {
	seen := map[[32]byte]bool{}
	for _, h := range heads {
		proto, head := h[0][0], h[1][:min(len(h[1]), HeadLen+40)]
		k := sha256.Sum256(append([]byte{proto}, head...))
		if seen[k] {
			continue
		}
		seen[k] = true
		m, ok := ClassifyHead(proto, head)
		fmt.Fprintf(w, "classify %d %x: %+v %v\n", proto, head[:min(len(head), 48)], m, ok)
		d := sha256.New()
		for _, p := range []uint8{ProtoICMP, ProtoTCP, ProtoUDP, ProtoESP, ProtoAH, 0} {
			for n := 0; n <= len(head); n++ {
				m, ok := ClassifyHead(p, head[:n])
				fmt.Fprintf(d, "%d %d %+v %v\n", p, n, m, ok)
			}
			if p != proto {
				continue
			}
			b := append([]byte(nil), head...)
			for i := range b {
				for _, x := range []byte{0x01, 0x20, 0xff} {
					b[i] ^= x
					m, ok := ClassifyHead(p, b)
					b[i] ^= x
					fmt.Fprintf(d, "%d %d^%d %+v %v\n", p, i, x, m, ok)
				}
			}
		}
		fmt.Fprintf(w, "  mutations %x\n", d.Sum(nil)[:12])
	}
}

// goldenCaptures are the strongSwan IKE captures of the ike package in UDP heads, as they
// are and with our initiator SPI in them.
func goldenCaptures(t *testing.T) [][2][]byte {
	files, err := filepath.Glob("../ike/testdata/golden/*.hex")
	if err != nil || len(files) == 0 {
		t.Fatalf("no IKE captures: %v", err)
	}
	var out [][2][]byte
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		var hx strings.Builder
		port := uint16(500)
		for _, l := range strings.Split(string(b), "\n") {
			if strings.HasPrefix(l, "port 4500") {
				port = 4500
			}
			if !strings.HasPrefix(l, "#") && !strings.HasPrefix(l, "port") {
				hx.WriteString(strings.Join(strings.Fields(l), ""))
			}
		}
		msg, err := hex.DecodeString(hx.String())
		if err != nil {
			t.Fatalf("%s: %v", f, err)
		}
		ours := append([]byte(nil), msg...)
		spi := ikeSPI(1, tNonce)
		if port == 4500 {
			copy(ours[4:], spi[:])
		} else {
			copy(ours, spi[:])
		}
		for _, m := range [][]byte{msg, ours} {
			u := make([]byte, 8, 8+len(m))
			binary.BigEndian.PutUint16(u[0:2], port)
			binary.BigEndian.PutUint16(u[2:4], port)
			out = append(out, [2][]byte{{ProtoUDP}, append(u, m...)})
		}
	}
	return out
}

// fixedRand is a stand-in for crypto/rand that fills every read with 0, 1, 2, …: the IKE
// messages are the same whatever was built before them.
type fixedRand struct{}

func (fixedRand) Read(b []byte) (int, error) {
	for i := range b {
		b[i] = byte(i)
	}
	return len(b), nil
}

// goldenFragment cuts datagrams with options (copied and not), with DF, and already
// fragments, at several sizes.
func goldenFragment(w *strings.Builder) {
	opts := [][]byte{nil, {0x83, 7, 4, 1, 2, 3, 4, 1}, {0x07, 7, 4, 0, 0, 0, 0, 0x94, 4, 0, 0, 0, 0}, {0x01, 0x88, 4, 9, 9, 0}}
	for _, o := range opts {
		for _, n := range []int{0, 7, 8, 9, 100, 1000} {
			for _, ff := range []uint16{0, 0x4000, 0x2000 | 3, 5} {
				ihl := 20 + (len(o)+3)&^3
				d := make([]byte, ihl+n)
				putIPv4Header(d, len(d), 0x77, false, 64, ProtoUDP, tSrc, tDst)
				d[0] = 0x40 | byte(ihl/4)
				copy(d[20:], o)
				binary.BigEndian.PutUint16(d[6:8], ff)
				fill(d[ihl:])
				binary.BigEndian.PutUint16(d[10:12], 0)
				binary.BigEndian.PutUint16(d[10:12], wire.Checksum(d[:ihl]))
				for _, fs := range []int{27, 28, 36, 48, 64, 576, 2000} {
					fr, _, err := Fragment(d, fs, nil, nil)
					all := sha256.New()
					for _, f := range fr {
						all.Write(f)
					}
					fmt.Fprintf(w, "fragment %x+%d %#x at %d: %d %x %v\n", o, n, ff, fs, len(fr), all.Sum(nil)[:16], err)
				}
			}
		}
	}
	fr, _, err := Fragment(make([]byte, 19), 100, nil, nil)
	fmt.Fprintf(w, "fragment short: %v %v\n", fr, err)
	d := make([]byte, 60)
	putIPv4Header(d, 80, 1, false, 64, ProtoUDP, tSrc, tDst)
	fr, _, err = Fragment(d, 100, nil, nil)
	fmt.Fprintf(w, "fragment truncated: %v %v\n", fr, err)
}

func TestGoldenBuild(t *testing.T) {
	defer func(r io.Reader) { ikeRand = r }(ikeRand)
	ikeRand = fixedRand{}
	var w strings.Builder
	heads := goldenBuild(&w)
	goldenFragment(&w)
	var all [][2][]byte
	for _, h := range heads {
		all = append(all, h)
		all = append(all, goldenAnswers(h[0][0], h[1][:min(len(h[1]), HeadLen)])...)
	}
	all = append(all, goldenCaptures(t)...)
	goldenClassify(&w, all)
	path := filepath.Join("testdata", "build.golden.gz")
	if *updateGolden {
		var z bytes.Buffer
		zw, _ := gzip.NewWriterLevel(&z, gzip.BestCompression)
		zw.Write([]byte(w.String()))
		if err := zw.Close(); err != nil {
			t.Fatal(err)
		}
		if err := os.MkdirAll("testdata", 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, z.Bytes(), 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	zr, err := gzip.NewReader(f)
	if err != nil {
		t.Fatal(err)
	}
	got := strings.Split(w.String(), "\n")
	sc := bufio.NewScanner(zr)
	sc.Buffer(nil, 1<<20)
	i, bad := 0, 0
	for ; sc.Scan(); i++ {
		if i >= len(got) || got[i] != sc.Text() {
			g := "(none)"
			if i < len(got) {
				g = got[i]
			}
			t.Errorf("line %d:\n got %s\nwant %s", i+1, g, sc.Text())
			if bad++; bad > 10 {
				t.FailNow()
			}
		}
	}
	if i != len(got)-1 {
		t.Errorf("%d lines, golden has %d", len(got)-1, i)
	}
}
