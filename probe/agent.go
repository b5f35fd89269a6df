package probe

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"slices"
	"sync"
	"syscall"
	"time"

	"github.com/vishvananda/netns"

	"github.com/ipsecpath/ipsecpath/report"
)

// Agent limits and timeouts. Unauthenticated input never costs more than
// MaxAgentConns × MaxFrameSize bytes of buffers, for at most HandshakeTimeout each.
const (
	// MaxAgentConns bounds concurrent control connections. When it is reached, a new
	// connection evicts the oldest one that has not authenticated yet, or is refused.
	MaxAgentConns = 32
	// HandshakeTimeout is how long a new connection has to deliver its first valid frame.
	HandshakeTimeout = 5 * time.Second
	// SessionIdleTimeout ends an authenticated session with no request for this long.
	SessionIdleTimeout = 2 * time.Minute
	// ReplyWriteTimeout bounds writing one reply (an initiator that stops reading).
	ReplyWriteTimeout = 10 * time.Second
	// MaxSessionBytes bounds what one connection may send in all (requests are small).
	MaxSessionBytes = 4 << 20
	// MaxSessionSeen bounds the packets kept per session; more are counted as lost.
	MaxSessionSeen = 8192
	// AgentSnap is how many bytes of each packet the agent keeps for the initiator's pcap
	// (Seen.Packet): a whole Ethernet-sized fragment.
	AgentSnap = 1600
	// MaxSessionPacketBytes bounds the packet bytes a session keeps; later packets are
	// reported without them (their verdicts need only the header and Head).
	MaxSessionPacketBytes = 4 << 20
	// MaxReverseProbes bounds the probes in one send-reverse request.
	MaxReverseProbes = 64
	// MaxReverseSize bounds the wire size of one reverse probe (the IP total length limit).
	MaxReverseSize = 65535
	// ReverseSendTimeout bounds one send-reverse request on the agent.
	ReverseSendTimeout = 30 * time.Second
	// DefaultPace is the default rate of reverse probes, in packets per second.
	DefaultPace = 100
	// rejectLogInterval rate-limits the log line about refused connections.
	rejectLogInterval = 10 * time.Second
	// maxReportPage bounds the packets in one report reply (each is a few hundred bytes of JSON).
	maxReportPage = 128
)

// ReverseProbe asks the agent to send one probe toward the initiator. The agent chooses
// the addresses: its own address on the control connection as source, the initiator's
// address as seen on that connection as destination.
type ReverseProbe struct {
	ID       ID     `json:"id"`                  // probe class, e.g. "esp-frag"
	Nonce    uint32 `json:"nonce"`               // carried by the probe, to match what arrives
	Size     int    `json:"size,omitempty"`      // bytes on the wire, IP header included; 0: the class's default
	FragSize int    `json:"frag_size,omitempty"` // -frag forms: largest fragment, bytes; 0: the default
	TTL      uint8  `json:"ttl,omitempty"`       // 0: DefaultTTL
	DF       bool   `json:"df,omitempty"`        // don't-fragment on an unfragmented probe (pmtu)
	// DstPort is, for the UDP probes (ike, natt and their -frag forms), the initiator's port
	// to send to: a flow the initiator opened from that port (stateful). 0: the class's port
	// (500, 4500). The source port stays the class's port. Other probes ignore it.
	DstPort uint16 `json:"dst_port,omitempty"`
}

// ReverseResult says what the agent sent for one ReverseProbe.
type ReverseResult struct {
	ID      ID        `json:"id"`
	Nonce   uint32    `json:"nonce"`
	Packets int       `json:"packets"`         // IP packets (fragments) sent
	Bytes   int       `json:"bytes"`           // bytes sent, IP headers included
	Sent    time.Time `json:"sent"`            // when its first packet left (agent clock)
	Error   string    `json:"error,omitempty"` // why it was not (fully) sent
}

// Capturer starts captures for the agent. Implementations open their sockets in the
// network namespace the Responder was created in (see NewResponder).
type Capturer interface {
	// Capture starts capturing IPv4 packets (every fragment, before reassembly) that
	// come from peer to this host.
	Capture(peer netip.Addr) (PacketSource, error)
}

// PacketSource is one running capture.
type PacketSource interface {
	// Drain appends the packets captured since the previous call to dst and returns it,
	// with how many packets the capture had to drop since then (its buffer was full).
	Drain(dst []Seen) ([]Seen, int)
	// Close stops the capture and releases its socket.
	Close() error
}

// ReverseSender crafts and sends reverse probes for the agent.
type ReverseSender interface {
	// SendProbe sends every packet (fragment) of probe p from src to dst, back to back,
	// and returns how many packets and bytes went out.
	SendProbe(ctx context.Context, src, dst netip.Addr, p ReverseProbe) (packets, bytes int, err error)
	// Close releases the sender's sockets.
	Close() error
}

// ResponderConfig configures the far-end agent.
type ResponderConfig struct {
	// Key is the pre-shared key (LoadKey); at least MinKeySize bytes.
	Key []byte
	// Keys are further keys accepted besides Key (a rotation: old and new); SetKeys
	// replaces them all while the agent runs.
	Keys [][]byte
	// Version is the agent's version, told to initiators in hello (report.Version).
	Version string
	// Pace caps reverse probes, in packets per second; 0 means DefaultPace.
	Pace int
	// Logf receives one line per authenticated session, and rate-limited lines about
	// refused connections. nil: silent.
	Logf func(format string, args ...any)
	// Capture and Sender replace the raw-socket capture and sender (tests). When Capture
	// is nil, NewResponder needs CAP_NET_RAW.
	Capture Capturer
	Sender  ReverseSender
	// MaxConns and HandshakeTimeout replace MaxAgentConns and HandshakeTimeout (tests);
	// 0 means the constant.
	MaxConns         int
	HandshakeTimeout time.Duration
	// Now replaces time.Now (tests).
	Now func() time.Time
	// LocalDrops, when set, lists this host's own firewall rules that drop probes arriving
	// from an initiator (AgentLocalDrops); hello tells the initiator, since the capture sees
	// a probe before those rules do. nil: not checked.
	LocalDrops func(ctx context.Context, from netip.Addr) []report.FirewallRule
}

// AgentLocalDrops reads this host's nftables ruleset and returns the rules of its input and
// prerouting chains certain to drop or reject probes arriving from from (FirewallDropsArriving);
// nil when nft cannot be read.
func AgentLocalDrops(ctx context.Context, from netip.Addr) []report.FirewallRule {
	rs, err := nftRuleset(ctx)
	if err != nil {
		return nil
	}
	var out []report.FirewallRule
	for _, r := range FirewallDropsArriving(rs, from, DefaultIDs(DefaultTCPPorts)) {
		if r.Certain {
			out = append(out, r)
		}
	}
	return out
}

// Responder is the far-end agent: it serves authenticated control sessions, captures what
// each initiator sends and sends reverse probes toward it. Create it with NewResponder in
// the network namespace it must watch; Serve may then run on any goroutine.
type Responder struct {
	cfg       ResponderConfig
	key       []byte
	keyring   keyring // the keys new sessions may authenticate with (Key, Keys; SetKeys)
	now       func() time.Time
	pace      int
	maxConn   int
	handshake time.Duration
	nonces    *replayCache
	closers   []func() error // raw sockets that keep the kernel quiet, the real capture/sender

	ns         netns.NsHandle // the namespace NewResponder ran in (raw mode), else netns.None()
	rawCapture Capturer       // the AF_PACKET capture, when cfg.Capture is nil
	rawSender  ReverseSender  // the raw-socket sender, when cfg.Sender is nil

	mu       sync.Mutex
	conns    map[*agentConn]struct{}
	rejected int       // connections refused or failed before authenticating, not yet logged
	lastLog  time.Time // last log line about rejected connections
}

// agentConn is one control connection and whether it has authenticated.
type agentConn struct {
	c      net.Conn
	src    netip.Addr // the remote address
	opened time.Time
	authed bool
}

// NewResponder creates the agent in the current network namespace. Without
// cfg.Capture it opens the AF_PACKET capture and raw sockets here (CAP_NET_RAW), among
// them raw sockets for IP protocols 50 and 51 that are drained and discarded so the kernel,
// which has no ESP/AH handler, does not answer probes with "protocol unreachable".
// Close releases them.
func NewResponder(cfg ResponderConfig) (*Responder, error) {
	if len(cfg.Key) < MinKeySize {
		return nil, fmt.Errorf("responder: key of %d bytes, need at least %d", len(cfg.Key), MinKeySize)
	}
	r := &Responder{
		cfg:     cfg,
		key:     append([]byte(nil), cfg.Key...),
		now:     cfg.Now,
		pace:    cfg.Pace,
		maxConn: cfg.MaxConns,
		nonces:  newReplayCache(0),
		conns:   make(map[*agentConn]struct{}),
		ns:      netns.None(),
	}
	if r.now == nil {
		r.now = time.Now
	}
	if err := r.SetKeys(append([][]byte{r.key}, cfg.Keys...)...); err != nil {
		return nil, err
	}
	if r.pace <= 0 {
		r.pace = DefaultPace
	}
	if r.maxConn <= 0 {
		r.maxConn = MaxAgentConns
	}
	r.handshake = cfg.HandshakeTimeout
	if r.handshake <= 0 {
		r.handshake = HandshakeTimeout
	}
	if cfg.Capture == nil || cfg.Sender == nil {
		if err := r.openRaw(); err != nil {
			r.Close()
			return nil, err
		}
	}
	return r, nil
}

// Close releases the agent's raw sockets. Call it after Serve has returned.
func (r *Responder) Close() error {
	var errs []error
	for i := len(r.closers) - 1; i >= 0; i-- {
		errs = append(errs, r.closers[i]())
	}
	r.closers = nil
	return errors.Join(errs...)
}

func (r *Responder) logf(format string, args ...any) {
	if r.cfg.Logf != nil {
		r.cfg.Logf(format, args...)
	}
}

// Serve accepts control connections on ln until ctx is done, then closes ln and every
// session and returns nil. It returns an error only when ln fails for another reason.
func (r *Responder) Serve(ctx context.Context, ln net.Listener) error {
	var wg sync.WaitGroup
	defer wg.Wait() // runs last: after cancel has ended every session
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	stop := context.AfterFunc(ctx, func() { ln.Close() })
	defer stop()
	backoff := 5 * time.Millisecond
	for {
		c, err := ln.Accept()
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() || errors.Is(err, os.ErrDeadlineExceeded) || isTemporaryAccept(err) {
				// Out of file descriptors and the like: wait, do not spin.
				select {
				case <-time.After(backoff):
				case <-ctx.Done():
					return nil
				}
				backoff = min(2*backoff, time.Second)
				continue
			}
			return fmt.Errorf("responder: accept on %s: %w", ln.Addr(), err)
		}
		backoff = 5 * time.Millisecond
		ac := &agentConn{c: c, opened: r.now()}
		if ap, err := addrPort(c.RemoteAddr()); err == nil {
			ac.src = ap.Addr()
		}
		if !r.admit(ac) {
			c.Close()
			continue
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			r.serveConn(ctx, ac)
		}()
	}
}

// admit registers a new connection. At the cap it evicts the oldest unauthenticated
// connection of the source address that holds the most unauthenticated connections (so a
// flood from one address evicts its own connections, not another initiator's that is
// still on its way to authenticating); if every connection has authenticated, it refuses
// the new one.
func (r *Responder) admit(ac *agentConn) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	if len(r.conns) >= r.maxConn {
		pending := map[netip.Addr]int{}
		for c := range r.conns {
			if !c.authed {
				pending[c.src]++
			}
		}
		pending[ac.src]++ // the newcomer counts against its own address
		var oldest *agentConn
		for c := range r.conns {
			if c.authed {
				continue
			}
			if oldest == nil || pending[c.src] > pending[oldest.src] ||
				pending[c.src] == pending[oldest.src] && c.opened.Before(oldest.opened) {
				oldest = c
			}
		}
		if oldest == nil {
			r.noteRejectLocked()
			return false
		}
		delete(r.conns, oldest)
		oldest.c.Close()
	}
	r.conns[ac] = struct{}{}
	return true
}

func (r *Responder) forget(ac *agentConn) {
	r.mu.Lock()
	delete(r.conns, ac)
	r.mu.Unlock()
}

// noteRejectLocked counts a refused or failed connection and logs, at most once per
// rejectLogInterval, how many there were.
func (r *Responder) noteRejectLocked() {
	r.rejected++
	now := r.now()
	if now.Sub(r.lastLog) < rejectLogInterval {
		return
	}
	r.logf("refused %d control connection(s) that did not authenticate (wrong key, replay, stale clock, junk or too many)", r.rejected)
	r.rejected = 0
	r.lastLog = now
}

func (r *Responder) noteReject() {
	r.mu.Lock()
	r.noteRejectLocked()
	r.mu.Unlock()
}

// session is the state of one authenticated control connection.
type session struct {
	r       *Responder
	id      string
	peer    netip.AddrPort // the initiator, as seen on the TCP connection
	local   netip.AddrPort // the agent's end of it
	started time.Time

	mu      sync.Mutex   // guards src, seen, lost, other: the collector goroutine shares them
	src     PacketSource // running capture, or nil
	seen    []Seen       // probe packets kept, in arrival order
	lost    int          // packets lost to full buffers
	other   int          // packets from the initiator that belong to no probe (not kept)
	held    int          // bytes of Seen.Packet kept (at most MaxSessionPacketBytes)
	collect func()       // stops the collector and waits for it; nil when not running

	// counters for the log line
	requests, reversePackets int
	opened                   time.Time
}

// serveConn runs one connection: no answer and a close for anything not authentic.
func (r *Responder) serveConn(ctx context.Context, ac *agentConn) {
	c := ac.c
	defer r.forget(ac)
	defer c.Close()
	stop := context.AfterFunc(ctx, func() { c.Close() })
	defer stop()

	peer, perr := addrPort(c.RemoteAddr())
	local, lerr := addrPort(c.LocalAddr())
	if perr != nil || lerr != nil {
		r.noteReject()
		return
	}
	lr := &limitedReader{c: c, left: MaxSessionBytes}
	s := &session{r: r, peer: peer, local: local, opened: r.now()}
	defer s.close()
	var rbuf, wbuf []byte
	var key []byte // the key this session authenticated with (keyring.match)
	var end string
	for {
		timeout := r.handshake
		if ac.authed {
			timeout = SessionIdleTimeout
		}
		c.SetReadDeadline(time.Now().Add(timeout))
		b, err := readFrame(lr, rbuf[:0])
		if err != nil {
			end = describeEnd(err, ctx)
			break
		}
		rbuf = b
		var f frame
		if key == nil {
			key, err = r.keyring.match(b, &f) // the session keeps this key until it ends
		} else {
			err = decodeFrame(b, key, &f)
		}
		if err != nil {
			end = err.Error()
			break
		}
		if !f.Type.isRequest() || f.InReplyTo != ([nonceSize]byte{}) {
			end = ErrFrameType.Error()
			break
		}
		if err := r.nonces.admit(f.Nonce, f.Time, r.now()); err != nil {
			end = err.Error()
			break
		}
		if !ac.authed {
			r.mu.Lock()
			ac.authed = true
			s.id = sessionID()
			r.mu.Unlock()
		}
		s.requests++
		rt, body := s.handle(ctx, &f)
		reply := frame{Type: rt, Nonce: newNonce(), Time: r.now(), InReplyTo: f.Nonce}
		reply.Body, err = encodeBody(body)
		if err != nil {
			reply.Type = msgError
			reply.Body, _ = encodeBody(errorReply{Error: err.Error()})
		}
		wbuf, err = appendFrame(wbuf[:0], key, &reply)
		if err != nil {
			end = err.Error()
			break
		}
		c.SetWriteDeadline(time.Now().Add(ReplyWriteTimeout))
		if _, err := c.Write(wbuf); err != nil {
			end = "write: " + err.Error()
			break
		}
		if f.Type == msgStop {
			end = "stop"
			break
		}
	}
	if !ac.authed {
		r.noteReject()
		return
	}
	s.stopCapture()
	r.logf("session %s from %s: %d requests, %d probe packets observed (%d lost, %d other packets ignored), %d reverse packets sent, %s, ended: %s",
		s.id, s.peer, s.requests, len(s.seen), s.lost, s.other, s.reversePackets, r.now().Sub(s.opened).Round(time.Millisecond), end)
}

// describeEnd turns a read error into the reason a session ended.
func describeEnd(err error, ctx context.Context) string {
	switch {
	case ctx.Err() != nil:
		return "agent shutting down"
	case errors.Is(err, errSessionBytes):
		return err.Error()
	case errors.Is(err, os.ErrDeadlineExceeded):
		return "idle timeout"
	case errors.Is(err, net.ErrClosed):
		return "connection closed"
	case errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF):
		return "initiator closed the connection"
	}
	return err.Error()
}

// handle serves one authenticated request and returns the reply type and body.
func (s *session) handle(ctx context.Context, f *frame) (msgType, any) {
	fail := func(format string, args ...any) (msgType, any) {
		return msgError, errorReply{Error: fmt.Sprintf(format, args...)}
	}
	reply := f.Type | msgReplyBit
	switch f.Type {
	case msgHello:
		h := helloReply{
			Protocol: ControlVersion,
			Version:  s.r.cfg.Version,
			Peer:     s.peer.String(),
			Local:    s.local.String(),
			Pace:     s.r.pace,
			Capture:  s.r.capturer() != nil,
			Sender:   s.r.sender() != nil,
			Clock:    s.r.now().UnixNano(),
			Session:  s.id,
		}
		if f := s.r.cfg.LocalDrops; f != nil {
			h.LocalDrops = f(ctx, s.peer.Addr().Unmap())
		}
		return reply, h
	case msgStartObserving:
		capt := s.r.capturer()
		if capt == nil {
			return fail("this agent cannot capture")
		}
		s.stopCapture()
		src, err := capt.Capture(s.peer.Addr())
		if err != nil {
			return fail("start capture from %s: %v", s.peer.Addr(), err)
		}
		s.startCapture(src)
		return reply, observeReply{Peer: s.peer.Addr().String(), Started: s.started}
	case msgReport:
		var q reportReq
		if err := decodeBody(f.Body, &q); err != nil {
			return fail("%v", err)
		}
		s.drain()
		return reply, s.page(q)
	case msgSendReverse:
		var q sendReverseReq
		if err := decodeBody(f.Body, &q); err != nil {
			return fail("%v", err)
		}
		res, err := s.sendReverse(ctx, q)
		if err != nil {
			return fail("%v", err)
		}
		return reply, sendReverseReply{Results: res}
	case msgStop:
		s.stopCapture()
		return reply, struct{}{}
	}
	return fail("unknown request %s", f.Type)
}

// collectInterval is how often a session moves packets from its capture ring into its
// list of probe packets: the ring (DefaultObserverCapacity) holds 8192 packets, enough
// for 800k packets/s of background traffic from the initiator between two runs.
const collectInterval = 10 * time.Millisecond

// startCapture makes src the session's capture and starts the collector, which drains it
// every collectInterval, so that background traffic from the initiator (a busy gateway's
// tunnel) cannot push probe packets out of the capture ring between two reports.
func (s *session) startCapture(src PacketSource) {
	s.mu.Lock()
	s.src, s.started = src, s.r.now()
	s.seen, s.lost, s.other, s.held = s.seen[:0], 0, 0, 0
	s.mu.Unlock()
	stop, done := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(done)
		t := time.NewTicker(collectInterval)
		defer t.Stop()
		for {
			select {
			case <-stop:
				return
			case <-t.C:
				s.drain()
			}
		}
	}()
	s.collect = func() { close(stop); <-done }
}

// stopCapture stops the collector, collects what is left and closes the capture. The
// packets kept stay readable.
func (s *session) stopCapture() {
	if s.collect != nil {
		s.collect()
		s.collect = nil
	}
	s.drain()
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.src != nil {
		s.src.Close()
		s.src = nil
	}
}

// drain moves what the capture holds into the session, keeping at most MaxSessionSeen
// packets: probe packets (first fragments with a probe's marker, every non-first
// fragment) from the initiator, minus the control connection itself, and ICMP errors
// quoting a probe (the capture passes only errors about packets sent to the initiator:
// answers to reverse probes, e.g. a router's admin-prohibited). Other packets are counted.
func (s *session) drain() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.src == nil {
		return
	}
	start := len(s.seen)
	var lost int
	s.seen, lost = s.src.Drain(s.seen)
	s.lost += lost
	kept := s.seen[:start]
	for _, p := range s.seen[start:] {
		if (p.Src != s.peer.Addr() && !isICMPError(&p)) || s.isControl(&p) || !isProbePacket(&p) {
			s.other++
			continue
		}
		if len(p.Head) > HeadLen {
			p.Head = p.Head[:HeadLen]
		}
		if len(p.Packet) > AgentSnap || s.held+len(p.Packet) > MaxSessionPacketBytes {
			p.Packet = nil
		}
		s.held += len(p.Packet)
		if len(kept) >= MaxSessionSeen {
			s.lost++
			continue
		}
		kept = append(kept, p)
	}
	clear(s.seen[len(kept):])
	s.seen = kept
}

// isProbePacket reports whether p may belong to a probe: a non-first fragment (its first
// fragment may be lost: partial), or a first fragment that carries a probe's marker, answers
// a probe or is an ICMP error quoting one.
func isProbePacket(p *Seen) bool {
	if p.Offset > 0 {
		return true
	}
	_, ok := ClassifyHead(p.Proto, p.Head)
	return ok
}

// isICMPError reports whether p is an ICMP destination unreachable, time exceeded or
// parameter problem message.
func isICMPError(p *Seen) bool {
	return p.Proto == 1 && p.Offset == 0 && len(p.Head) > 0 && (p.Head[0] == 3 || p.Head[0] == 11 || p.Head[0] == 12)
}

// isControl reports whether p is a segment of this control connection.
func (s *session) isControl(p *Seen) bool {
	if p.Proto != 6 || p.Offset != 0 || len(p.Head) < 4 {
		return false
	}
	sp := uint16(p.Head[0])<<8 | uint16(p.Head[1])
	dp := uint16(p.Head[2])<<8 | uint16(p.Head[3])
	// Both directions: on loopback the agent's own replies come "from" the initiator too.
	return (sp == s.peer.Port() && dp == s.local.Port()) || (sp == s.local.Port() && dp == s.peer.Port())
}

// page returns the packets after q.After, as many as fit in one reply.
func (s *session) page(q reportReq) reportReply {
	s.mu.Lock()
	defer s.mu.Unlock()
	rep := reportReply{Lost: s.lost, Other: s.other, Observing: s.src != nil, Next: uint64(len(s.seen))}
	if q.After >= uint64(len(s.seen)) {
		rep.Seen = []Seen{}
		return rep
	}
	n := len(s.seen) - int(q.After)
	if q.Max > 0 && n > q.Max {
		n = q.Max
	}
	n = min(n, maxReportPage)
	for ; n > 0; n /= 2 {
		rep.Seen = s.seen[q.After : q.After+uint64(n)]
		rep.Next = q.After + uint64(n)
		rep.More = rep.Next < uint64(len(s.seen))
		if b, err := encodeBody(rep); err == nil && len(b) <= maxBodySize {
			break
		}
	}
	rep.Seen = slices.Clone(rep.Seen) // encoded after the lock is released
	return rep
}

// sendReverse sends the requested probes toward the initiator, paced.
func (s *session) sendReverse(ctx context.Context, q sendReverseReq) ([]ReverseResult, error) {
	snd := s.r.sender()
	if snd == nil {
		return nil, errors.New("this agent cannot send reverse probes")
	}
	if len(q.Probes) > MaxReverseProbes {
		return nil, fmt.Errorf("%d reverse probes in one request, at most %d", len(q.Probes), MaxReverseProbes)
	}
	pace := s.r.pace
	if q.Pace > 0 && q.Pace < pace {
		pace = q.Pace
	}
	ctx, cancel := context.WithTimeout(ctx, ReverseSendTimeout)
	defer cancel()
	dst, src := s.peer.Addr(), s.local.Addr()
	res := make([]ReverseResult, len(q.Probes))
	next := time.Now()
	for i, p := range q.Probes {
		res[i] = ReverseResult{ID: p.ID, Nonce: p.Nonce}
		switch {
		case !p.ID.Valid():
			res[i].Error = fmt.Sprintf("unknown probe %q", p.ID)
			continue
		case p.Size < 0 || p.Size > MaxReverseSize || p.FragSize < 0 || p.FragSize > MaxReverseSize:
			res[i].Error = fmt.Sprintf("size %d / fragment size %d out of range", p.Size, p.FragSize)
			continue
		}
		if wait := time.Until(next); wait > 0 {
			t := time.NewTimer(wait)
			select {
			case <-t.C:
			case <-ctx.Done():
				t.Stop()
			}
		}
		if err := ctx.Err(); err != nil {
			res[i].Error = "not sent: " + err.Error()
			continue
		}
		res[i].Sent = s.r.now()
		n, nb, err := snd.SendProbe(ctx, src, dst, p)
		res[i].Packets, res[i].Bytes = n, nb
		s.reversePackets += n
		if err != nil {
			res[i].Error = err.Error()
		}
		next = time.Now().Add(time.Duration(max(n, 1)) * time.Second / time.Duration(pace))
	}
	return res, nil
}

// close ends the session's capture.
func (s *session) close() { s.stopCapture() }

func (r *Responder) capturer() Capturer {
	if r.cfg.Capture != nil {
		return r.cfg.Capture
	}
	return r.rawCapture
}

func (r *Responder) sender() ReverseSender {
	if r.cfg.Sender != nil {
		return r.cfg.Sender
	}
	return r.rawSender
}

// addrPort converts a TCP address to a netip.AddrPort with IPv4-mapped addresses unmapped.
func addrPort(a net.Addr) (netip.AddrPort, error) {
	ta, ok := a.(*net.TCPAddr)
	if !ok {
		ap, err := netip.ParseAddrPort(a.String())
		if err != nil {
			return netip.AddrPort{}, fmt.Errorf("responder: address %s: %w", a, err)
		}
		return netip.AddrPortFrom(ap.Addr().Unmap(), ap.Port()), nil
	}
	ap := ta.AddrPort()
	return netip.AddrPortFrom(ap.Addr().Unmap(), ap.Port()), nil
}

// sessionID returns a short random id for log lines.
func sessionID() string {
	var b [4]byte
	rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

var errSessionBytes = fmt.Errorf("session sent more than %d bytes", MaxSessionBytes)

// limitedReader ends a connection that sends more than its byte budget.
type limitedReader struct {
	c    net.Conn
	left int
}

func (l *limitedReader) Read(p []byte) (int, error) {
	if l.left <= 0 {
		return 0, errSessionBytes
	}
	if len(p) > l.left {
		p = p[:l.left]
	}
	n, err := l.c.Read(p)
	l.left -= n
	return n, err
}

// isTemporaryAccept reports accept errors worth waiting out: out of file descriptors,
// a connection aborted before it was accepted.
func isTemporaryAccept(err error) bool {
	return errors.Is(err, syscall.EMFILE) || errors.Is(err, syscall.ENFILE) ||
		errors.Is(err, syscall.ECONNABORTED) || errors.Is(err, syscall.ENOBUFS) || errors.Is(err, syscall.ENOMEM)
}
