//go:build linux

package probe

import (
	"errors"
	"fmt"
	"os"

	"golang.org/x/net/bpf"
	"golang.org/x/sys/unix"
)

// OpenCapture opens a capture in the current network namespace. The filter is attached
// before the socket is bound, so no unfiltered packet is ever queued. Without root or
// CAP_NET_RAW the error wraps os.ErrPermission and says so.
func OpenCapture(cfg CaptureConfig) (*Capture, error) {
	prog, err := CaptureFilter(cfg)
	if err != nil {
		return nil, err
	}
	fd, err := unix.Socket(unix.AF_PACKET, unix.SOCK_DGRAM|unix.SOCK_NONBLOCK|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		err = os.NewSyscallError("socket", err)
		if errors.Is(err, os.ErrPermission) {
			return nil, fmt.Errorf("probe: open packet capture: %s: %w", needRaw, err)
		}
		return nil, fmt.Errorf("probe: open packet capture: %w", err)
	}
	fail := func(op string, err error) (*Capture, error) {
		unix.Close(fd)
		return nil, fmt.Errorf("probe: packet capture: %w", os.NewSyscallError(op, err))
	}
	if err := attachFilter(fd, prog); err != nil {
		return fail("setsockopt SO_ATTACH_FILTER", err)
	}
	// Best effort: a smaller buffer only means earlier kernel drops, which Stats reports.
	_ = unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_RCVBUF, captureRcvBuf)
	if err := unix.Bind(fd, &unix.SockaddrLinklayer{Protocol: htons(unix.ETH_P_IP)}); err != nil {
		return fail("bind", err)
	}
	return &Capture{f: os.NewFile(uintptr(fd), "packet:"+cfg.Peer.String()), peer: cfg.Peer, snap: int(cfg.snap())}, nil
}

func htons(v uint16) uint16 { return v<<8 | v>>8 }

// attachFilter attaches the classic BPF program prog to the socket fd (SO_ATTACH_FILTER).
func attachFilter(fd int, prog []bpf.RawInstruction) error {
	f := make([]unix.SockFilter, len(prog))
	for i, ins := range prog {
		f[i] = unix.SockFilter{Code: ins.Op, Jt: ins.Jt, Jf: ins.Jf, K: ins.K}
	}
	return unix.SetsockoptSockFprog(fd, unix.SOL_SOCKET, unix.SO_ATTACH_FILTER, &unix.SockFprog{Len: uint16(len(f)), Filter: &f[0]})
}

// Stats reads and resets the kernel's counters (PACKET_STATISTICS).
func (c *Capture) Stats() (CaptureStats, error) {
	sc, err := c.f.SyscallConn()
	if err != nil {
		return CaptureStats{}, err
	}
	var st *unix.TpacketStats
	var serr error
	err = sc.Control(func(fd uintptr) {
		st, serr = unix.GetsockoptTpacketStats(int(fd), unix.SOL_PACKET, unix.PACKET_STATISTICS)
	})
	if err != nil {
		return CaptureStats{}, err
	}
	if serr != nil {
		return CaptureStats{}, os.NewSyscallError("getsockopt PACKET_STATISTICS", serr)
	}
	return CaptureStats{Packets: st.Packets, Drops: st.Drops}, nil
}
