package probe

import (
	"context"
	"fmt"
	"net"
	"net/netip"
	"time"

	"github.com/ipsecpath/ipsecpath/report"
)

// statefulAgentKeepalive is how often a sweep that is only waiting still talks to the agent:
// the agent ends a session silent for SessionIdleTimeout.
const statefulAgentKeepalive = 30 * time.Second

// statefulWire is the real statefulNet: our raw sender and capture, and the agent.
type statefulWire struct {
	target, src netip.Addr
	agent       *AgentClient
	sender      *Sender
	obs         *Observer
	socks       []*net.UDPConn   // our flows' UDP ports, held so the kernel answers nothing
	quiet       []net.PacketConn // raw ESP/AH sockets: no "protocol unreachable" for reverse packets
	pk          Packets
	nonces      []uint32
	agentSeen   int
	lastAgent   time.Time
	nat         natState          // what the agent saw of our addresses and ports (nat.go)
	natPorts    map[uint32]uint16 // opener nonce → our UDP source port
}

// openStatefulWire connects to the agent (first: a wrong key is the commonest mistake),
// opens the raw sender, our capture and the sockets that keep our kernel quiet.
func openStatefulWire(ctx context.Context, cfg StatefulConfig) (w *statefulWire, err error) {
	src, err := SourceFor(cfg.Target)
	if err != nil {
		return nil, envErr("no route to %s: %w", cfg.Target, err)
	}
	if cfg.Agent == "" {
		return nil, envErr("stateful needs the far-end agent (--agent): only it can send from the far side")
	}
	w = &statefulWire{target: cfg.Target, src: src}
	defer func() {
		if err != nil {
			w.close()
		}
	}()
	sctx, cancel := context.WithTimeout(ctx, setupTimeout)
	defer cancel()
	if w.agent, err = DialAgent(sctx, cfg.Agent, cfg.Key); err != nil {
		return nil, envErr("%w", err)
	}
	h, err := w.agent.Hello(sctx)
	if err != nil {
		return nil, envErr("agent %s: %w", cfg.Agent, err)
	}
	if !h.Capture || !h.Sender {
		return nil, envErr("agent %s cannot capture and send packets (it needs root or CAP_NET_RAW)", cfg.Agent)
	}
	w.nat.control(w.agent.conn.LocalAddr(), h.Peer)
	agentIP := h.Local.Addr().Unmap()
	if !agentIP.IsValid() {
		agentIP = cfg.Target
	}
	if w.sender, err = OpenSender(SenderConfig{}); err != nil {
		return nil, &CheckError{Err: err}
	}
	for _, p := range cfg.Protocols {
		if p.udp() {
			continue
		}
		c, err := net.ListenPacket(fmt.Sprintf("ip4:%d", p.protoNumber()), src.String())
		if err != nil {
			return nil, &CheckError{Err: rawError(fmt.Sprintf("open raw socket for IP protocol %d", p.protoNumber()), err)}
		}
		go drainRaw(c)
		w.quiet = append(w.quiet, c)
	}
	if err := w.agent.StartObserving(sctx); err != nil {
		return nil, envErr("agent %s: start observing: %w", cfg.Agent, err)
	}
	w.lastAgent = time.Now()
	if w.obs, err = Observe(ctx, ObserverConfig{Peer: agentIP}); err != nil {
		return nil, &CheckError{Err: err}
	}
	return w, nil
}

func (p StatefulProto) protoNumber() int {
	switch p {
	case StatefulESP:
		return ProtoESP
	case StatefulAH:
		return ProtoAH
	}
	return ProtoUDP
}

func (w *statefulWire) close() {
	if w.agent != nil {
		sctx, cancel := context.WithTimeout(context.Background(), time.Second)
		w.agent.Stop(sctx)
		cancel()
		w.agent.Close()
	}
	if w.obs != nil {
		w.obs.Close()
	}
	if w.sender != nil {
		w.sender.Close()
	}
	for _, c := range w.socks {
		c.Close()
	}
	for _, c := range w.quiet {
		c.Close()
	}
}

func (w *statefulWire) Nonce() (uint32, error) {
	if len(w.nonces) == 0 {
		var err error
		if w.nonces, err = NewNonces(256); err != nil {
			return 0, err
		}
	}
	n := w.nonces[0]
	w.nonces = w.nonces[1:]
	return n, nil
}

func (w *statefulWire) Open(ctx context.Context, p StatefulProto, f *sflow, nonce uint32) error {
	if p.udp() && f.port == 0 {
		c, err := net.ListenUDP("udp4", &net.UDPAddr{IP: w.src.AsSlice()})
		if err != nil {
			return fmt.Errorf("hold a UDP port: %w", err)
		}
		w.socks = append(w.socks, c)
		go drainUDP(c)
		f.port = uint16(c.LocalAddr().(*net.UDPAddr).Port)
	}
	if w.natPorts == nil {
		w.natPorts = map[uint32]uint16{}
	}
	w.natPorts[nonce] = f.port
	bp := BuildParams{Src: w.src, Dst: w.target, Nonce: nonce, SrcPort: f.port}
	if err := Build(p.probeID(), bp, &w.pk); err != nil {
		return err
	}
	return w.sender.Send(ctx, &w.pk)
}

// drainUDP discards what a flow's UDP socket receives (the capture sees it) until closed.
func drainUDP(c *net.UDPConn) {
	var buf [2048]byte
	for {
		if _, _, err := c.ReadFromUDP(buf[:]); err != nil {
			return // closed (net.ErrClosed), or broken: nothing to keep reading
		}
	}
}

func (w *statefulWire) Reverse(ctx context.Context, rs []statefulReverse) error {
	probes := make([]ReverseProbe, len(rs))
	for i, r := range rs {
		probes[i] = ReverseProbe{ID: r.Proto.probeID(), Nonce: r.Nonce, DstPort: r.Port}
	}
	res, err := w.agent.SendReverse(ctx, probes, 0)
	w.lastAgent = time.Now()
	if err != nil {
		return err
	}
	for _, r := range res {
		if r.Error != "" {
			return fmt.Errorf("agent could not send %s: %s", r.ID, r.Error)
		}
	}
	return nil
}

func (w *statefulWire) Poll(ctx context.Context, withAgent bool) (fwd, rev []statefulSeen, err error) {
	for _, s := range w.obs.Drain() {
		if s.Offset != 0 {
			continue
		}
		if m, ok := ClassifyHead(s.Proto, s.Head); ok && m.Kind == KindProbe {
			rev = append(rev, statefulSeen{Nonce: m.Nonce, At: s.At})
		}
	}
	if !withAgent && time.Since(w.lastAgent) < statefulAgentKeepalive {
		return nil, rev, nil
	}
	rep, err := w.agent.Report(ctx)
	w.lastAgent = time.Now()
	if err != nil {
		return nil, rev, err
	}
	for i := w.agentSeen; i < len(rep.Seen); i++ {
		s := &rep.Seen[i]
		if s.Offset != 0 {
			continue
		}
		m, ok := ClassifyHead(s.Proto, s.Head)
		if !ok || m.Kind != KindProbe {
			continue
		}
		w.nat.note(w.src, &pending{sport: w.natPorts[m.Nonce]}, s)
		fs := statefulSeen{Nonce: m.Nonce, At: s.At}
		if s.Proto == ProtoUDP && len(s.Head) >= 2 {
			fs.Port = uint16(s.Head[0])<<8 | uint16(s.Head[1])
		}
		fwd = append(fwd, fs)
	}
	w.agentSeen = len(rep.Seen)
	return fwd, rev, nil
}

// natResult is what the agent saw of our addresses and ports (nil: nothing measured).
func (w *statefulWire) natResult() *report.NAT { return w.nat.result() }
