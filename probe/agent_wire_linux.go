//go:build linux

package probe

import (
	"context"
	"net/netip"
	"sync"
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

// observerCapturer starts one Observer per session, in the agent's namespace.
type observerCapturer struct{ r *Responder }

func (c *observerCapturer) Capture(peer netip.Addr) (PacketSource, error) {
	var o *Observer
	err := c.r.inNamespace(func() error {
		var err error
		o, err = Observe(context.Background(), ObserverConfig{Peer: peer, Snap: AgentSnap})
		return err
	})
	if err != nil {
		return nil, err
	}
	return &observerSource{o: o}, nil
}

// observerSource adapts an Observer to PacketSource: lost packets are those overwritten in
// its ring plus those the kernel dropped.
type observerSource struct {
	o        *Observer
	lostSeen uint64
}

func (s *observerSource) Drain(dst []Seen) ([]Seen, int) {
	dst = append(dst, s.o.Drain()...)
	st := s.o.Stats()
	lost := st.Overwritten + st.KernelDrops
	n := int(lost - s.lostSeen)
	s.lostSeen = lost
	return dst, n
}

func (s *observerSource) Close() error { return s.o.Close() }

// wireSender builds reverse probes with Build and sends them with the raw Sender, which
// paces per destination at the agent's pace. The UDP probes keep the real protocol's
// ports (500→500, 4500→4500) although charon may own those ports here: a raw socket
// needs no bound port.
type wireSender struct {
	s  *Sender
	mu sync.Mutex
	pk Packets // reused buffers: one probe at a time
}

func (w *wireSender) SendProbe(ctx context.Context, src, dst netip.Addr, p ReverseProbe) (int, int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	bp := BuildParams{Src: src, Dst: dst, Nonce: p.Nonce, Size: p.Size, FragSize: p.FragSize, TTL: p.TTL, DF: p.DF}
	if p.ID.Unfragmented() == IKE || p.ID.Unfragmented() == NATT {
		bp.DstPort = p.DstPort
	}
	if err := Build(p.ID, bp, &w.pk); err != nil {
		return 0, 0, err
	}
	if err := w.s.Send(ctx, &w.pk); err != nil {
		return 0, 0, err
	}
	return len(w.pk.Wire), w.pk.WireBytes(), nil
}

func (w *wireSender) Close() error { return nil } // the Sender is closed by the Responder
