//go:build linux

package probe

import (
	"context"
	"errors"
	"net"
	"net/netip"
	"os"
	"sync"
	"time"
)

// openWire sets up the raw-socket sender (paced at the agent's pace) and the per-session
// AF_PACKET capture the agent uses when its config does not supply them. The sender's
// socket is opened here, in the agent's namespace; captures open per session, in the same
// namespace (inNamespace).
func (r *Responder) openWire() error {
	if r.cfg.Sender == nil {
		s, err := OpenSender(SenderConfig{Rate: float64(r.pace)})
		if err != nil {
			return rawError("open raw sender", err)
		}
		r.closers = append(r.closers, s.Close)
		r.rawSender = &wireSender{s: s}
	}
	if r.cfg.Capture == nil {
		// Fail now, not at the first session, when capturing is not allowed here.
		if err := r.inNamespace(func() error {
			c, err := OpenCapture(CaptureConfig{Peer: netip.AddrFrom4([4]byte{192, 0, 2, 0})})
			if err != nil {
				return err
			}
			return c.Close()
		}); err != nil {
			return rawError("open packet capture", err)
		}
		r.rawCapture = &observerCapturer{r: r}
	}
	return nil
}

// observerCapturer starts one filtered capture per session, in the agent's namespace.
type observerCapturer struct{ r *Responder }

func (c *observerCapturer) Capture(peer netip.Addr) (PacketSource, error) {
	var cp *Capture
	err := c.r.inNamespace(func() error {
		var err error
		cp, err = OpenCapture(CaptureConfig{Peer: peer, Snap: AgentSnap})
		return err
	})
	if err != nil {
		return nil, err
	}
	src := &agentSource{c: cp, done: make(chan struct{})}
	go src.loop()
	return src, nil
}

// agentSource is one session's capture. It reads every packet the kernel passes (from the
// initiator, and ICMP errors about packets to it) and keeps, up to agentRingCapacity
// between two drains, only those the session's filter keeps (SetKeep): unrelated traffic,
// however much of it, never takes the room of a probe's packets. Kept heads are copied;
// nothing else is retained.
type agentSource struct {
	c    *Capture
	done chan struct{}

	mu      sync.Mutex
	keep    func(*Seen) bool // nil: keep everything until the session sets its filter
	pending []Seen           // kept since the last Drain
	bytes   int              // their Seen.Packet bytes (at most maxPendingPacketBytes)
	lost    int              // kept but no room, and the kernel's drops, since the last Drain
	other   int              // not kept, since the last TakeOther
}

// maxPendingPacketBytes bounds the packet bytes (for the initiator's pcap) one session's
// capture holds between two drains; past it, packets are kept without their bytes.
const maxPendingPacketBytes = 256 << 10

func (s *agentSource) loop() {
	defer close(s.done)
	buf := make([]byte, s.c.SnapLen())
	var h IPv4Header
	for {
		n, err := s.c.Read(buf)
		if err != nil {
			return // closed, or the socket failed: Drain reports what was kept
		}
		at := time.Now()
		if h.DecodeFromBytes(buf[:n]) != nil {
			s.mu.Lock()
			s.other++
			s.mu.Unlock()
			continue
		}
		p := Seen{At: at, Src: h.Src, Dst: h.Dst, Proto: h.Proto, IPID: h.ID, Offset: h.Offset,
			More: h.MF, DF: h.DF, TTL: h.TTL, TotalLen: h.TotalLen}
		if h.Offset == 0 {
			p.Head = h.Payload[:min(len(h.Payload), HeadLen)]
		}
		s.mu.Lock()
		keep := s.keep
		s.mu.Unlock()
		ok := keep == nil || keep(&p)
		s.mu.Lock()
		switch {
		case !ok:
			s.other++
		case len(s.pending) >= agentRingCapacity:
			s.lost++
		default:
			if p.Head != nil {
				p.Head = append([]byte(nil), p.Head...)
			}
			if k := min(n, AgentSnap); s.bytes+k <= maxPendingPacketBytes {
				p.Packet = append([]byte(nil), buf[:k]...)
				s.bytes += k
			}
			s.pending = append(s.pending, p)
		}
		s.mu.Unlock()
	}
}

// SetKeep installs the session's filter.
func (s *agentSource) SetKeep(keep func(*Seen) bool) {
	s.mu.Lock()
	s.keep = keep
	s.mu.Unlock()
}

// Drain appends what was kept since the previous call to dst; lost counts packets kept
// with no room left and those the kernel dropped (the reader was too slow).
func (s *agentSource) Drain(dst []Seen) ([]Seen, int) {
	drops := 0
	if st, err := s.c.Stats(); err == nil {
		drops = int(st.Drops)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	dst = append(dst, s.pending...)
	clear(s.pending)
	s.pending, s.bytes = s.pending[:0], 0
	lost := s.lost + drops
	s.lost = 0
	return dst, lost
}

// TakeOther returns how many packets the filter refused since the previous call.
func (s *agentSource) TakeOther() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	n := s.other
	s.other = 0
	return n
}

func (s *agentSource) Close() error {
	err := s.c.Close()
	<-s.done
	if errors.Is(err, net.ErrClosed) || errors.Is(err, os.ErrClosed) {
		err = nil
	}
	return err
}

// wireSender builds reverse probes with Build and sends them with the raw Sender, which
// paces per destination at the agent's pace. Sessions send concurrently: each probe is
// built in its own buffers (pooled), so no lock is held while a probe waits for its pacer.
// The UDP probes keep the real protocol's ports (500→500, 4500→4500) although charon may
// own those ports here: a raw socket needs no bound port.
type wireSender struct {
	s    *Sender
	pool sync.Pool // *Packets
}

func (w *wireSender) SendProbe(ctx context.Context, src, dst netip.Addr, p ReverseProbe) (int, int, error) {
	pk, _ := w.pool.Get().(*Packets)
	if pk == nil {
		pk = new(Packets)
	}
	defer w.pool.Put(pk)
	if err := buildReverse(src, dst, p, pk); err != nil {
		return 0, 0, err
	}
	if err := w.s.Send(ctx, pk); err != nil {
		return 0, 0, err
	}
	return len(pk.Wire), pk.WireBytes(), nil
}

func (w *wireSender) Close() error { return nil } // the Sender is closed by the Responder
