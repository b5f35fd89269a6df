package rawip

import (
	"context"
	"encoding/binary"
	"errors"
	"net"
	"net/netip"
	"syscall"
	"testing"

	"github.com/ipsecpath/ipsecpath/testlab"
)

// udpPacket is an IPv4/UDP packet of size bytes in wire form from src to dst port 9
// (discard), DF set, checksums left to the kernel (IP) and zero (UDP: none).
func udpPacket(src, dst netip.Addr, size int) []byte {
	b := make([]byte, size)
	b[0] = 0x45
	binary.BigEndian.PutUint16(b[2:], uint16(size))
	binary.BigEndian.PutUint16(b[4:], 0x1234)
	binary.BigEndian.PutUint16(b[6:], 0x4000) // DF
	b[8], b[9] = 64, syscall.IPPROTO_UDP
	s, d := src.As4(), dst.As4()
	copy(b[12:16], s[:])
	copy(b[16:20], d[:])
	binary.BigEndian.PutUint16(b[20:], 40000)
	binary.BigEndian.PutUint16(b[22:], 9)
	binary.BigEndian.PutUint16(b[24:], uint16(size-20))
	return b
}

func openInLab(tb testing.TB, cfg Config) (*Sender, *testlab.Lab) {
	tb.Helper()
	lab := testlab.ForTest(tb, testlab.Spec{NoGateways: true})
	var s *Sender
	if err := lab.Do("ini", func() (err error) { s, err = Open(cfg); return err }); err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { s.Close() })
	return s, lab
}

// The sender puts a packet on a lab link without allocating, refuses one larger than the
// link MTU with EMSGSIZE (probe mode: the interface MTU, not a cached path MTU), refuses
// bytes that are not IPv4, and fails with net.ErrClosed after Close.
func TestSenderLab(t *testing.T) {
	s, lab := openInLab(t, Config{Rate: MaxRate, Burst: 1 << 20})
	ini, rsp := lab.Addr("ini"), lab.Addr("rsp")
	ctx := context.Background()
	pkt := udpPacket(ini, rsp, 100)
	if err := s.WritePacket(ctx, pkt); err != nil {
		t.Fatal(err)
	}
	pkts := [][]byte{pkt, pkt}
	if n := testing.AllocsPerRun(100, func() {
		if _, err := s.Send(ctx, rsp, pkts); err != nil {
			t.Fatal(err)
		}
	}); n != 0 {
		t.Errorf("Send of two packets: %v allocations, want 0", n)
	}
	err := s.Write(rsp, udpPacket(ini, rsp, 1600))
	if !errors.Is(err, syscall.EMSGSIZE) {
		t.Errorf("1600-byte DF packet on a 1500 link: %v, want EMSGSIZE", err)
	}
	if err := s.WritePacket(ctx, []byte{0x60, 0, 0, 0}); err == nil {
		t.Error("WritePacket took 4 bytes of IPv6")
	}
	s.Close()
	if err := s.Write(rsp, pkt); !errors.Is(err, net.ErrClosed) {
		t.Errorf("Write after Close: %v, want net.ErrClosed", err)
	}
}

// BenchmarkWrite is the sender's write path, unpaced: one 100-byte packet from ini to rsp
// in a lab, per op.
func BenchmarkWrite(b *testing.B) {
	s, lab := openInLab(b, Config{Rate: MaxRate, Burst: 1 << 20})
	pkt := udpPacket(lab.Addr("ini"), lab.Addr("rsp"), 100)
	dst := lab.Addr("rsp")
	b.ReportAllocs()
	for b.Loop() {
		if err := s.Write(dst, pkt); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkSendPaced is Send of a 3-packet burst through the pacer at MaxRate.
func BenchmarkSendPaced(b *testing.B) {
	s, lab := openInLab(b, Config{Rate: MaxRate, Burst: 1 << 20})
	pkt := udpPacket(lab.Addr("ini"), lab.Addr("rsp"), 100)
	pkts := [][]byte{pkt, pkt, pkt}
	dst := lab.Addr("rsp")
	ctx := context.Background()
	b.ReportAllocs()
	for b.Loop() {
		if _, err := s.Send(ctx, dst, pkts); err != nil {
			b.Fatal(err)
		}
	}
}
