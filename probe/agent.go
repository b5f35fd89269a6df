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
	"runtime/debug"
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
	// MaxAgentSeen bounds the packets kept by all sessions together (a few hundred bytes
	// each), and MaxPeerSeen those kept by the sessions of one initiator address: more are
	// counted as lost.
	MaxAgentSeen = 32768
	MaxPeerSeen  = MaxAgentSeen / 2
	// AgentMemoryLimit is the soft memory limit `ipsecpath responder` gives the Go runtime
	// (unless GOMEMLIMIT is set): what the bounds above hold, with room to spare.
	AgentMemoryLimit = 40 << 20
	// MaxSessionsPerPeer bounds the authenticated sessions of one initiator address, so one
	// key holder cannot take every connection slot.
	MaxSessionsPerPeer = 8
	// AgentSnap is how many bytes of each packet the agent keeps for the initiator's pcap
	// (Seen.Packet): a whole Ethernet-sized fragment.
	AgentSnap = 1600
	// MaxSessionPacketBytes bounds the packet bytes a session keeps, and MaxAgentPacketBytes
	// those of all sessions together; later packets are reported without them (their
	// verdicts need only the header and Head).
	MaxSessionPacketBytes = 4 << 20
	MaxAgentPacketBytes   = 8 << 20
	// MaxReverseProbes bounds the probes in one send-reverse request.
	MaxReverseProbes = 64
	// MaxReversePackets bounds the packets (fragments) of one send-reverse request, and
	// MaxReverseProbePackets those of one probe in it: at the default pace a request is
	// sent in at most a few seconds. A request over either bound is refused whole.
	MaxReversePackets      = 512
	MaxReverseProbePackets = 64
	// MinReverseFragSize is the smallest frag_size of a reverse probe: 68 bytes, the IPv4
	// minimum MTU every link carries (RFC 791); smaller fragments test nothing real.
	MinReverseFragSize = 68
	// MaxAnnounced bounds the IP IDs one session may announce.
	MaxAnnounced = 4096
	// maxAnnounce bounds the IP IDs of one announce request.
	maxAnnounce = 256
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
	// agentRingCapacity bounds the packets one session's capture keeps between two drains
	// (every collectInterval). It holds only packets that pass the session's filter, so
	// other traffic, however much, never takes their room.
	agentRingCapacity = 1024
	// freeMemoryInterval: when the last session ends, memory goes back to the system at
	// most this often.
	freeMemoryInterval = time.Second
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
	// IPID is the IP identification every packet (every fragment) of the probe carries;
	// 0: the nonce's low 16 bits. A trace sets it so that its TTL copies of one probe can
	// share one nonce (one SPI, echo id, ports: one five-tuple) and still be told apart.
	// Within a request, a non-zero IPID may not repeat for the same protocol.
	IPID uint16 `json:"ip_id,omitempty"`
}

// buildReverse builds reverse probe p from src to dst into pk, as the agent sends it.
func buildReverse(src, dst netip.Addr, p ReverseProbe, pk *Packets) error {
	bp := BuildParams{Src: src, Dst: dst, Nonce: p.Nonce, Size: p.Size, FragSize: p.FragSize, TTL: p.TTL, DF: p.DF, IPID: p.IPID}
	if p.ID.Unfragmented() == IKE || p.ID.Unfragmented() == NATT {
		bp.DstPort = p.DstPort
	}
	return Build(p.ID, bp, pk)
}

// ReverseResult says what the agent sent for one ReverseProbe.
type ReverseResult struct {
	ID      ID        `json:"id"`
	Nonce   uint32    `json:"nonce"`
	IPID    uint16    `json:"ip_id,omitempty"` // the IP ID its packets carried (absent from older agents)
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
	instance  [nonceSize]byte // drawn at start: bound into every connection key
	closers   []func() error  // raw sockets that keep the kernel quiet, the real capture/sender

	ns         netns.NsHandle // the namespace NewResponder ran in (raw mode), else netns.None()
	rawCapture Capturer       // the AF_PACKET capture, when cfg.Capture is nil
	rawSender  ReverseSender  // the raw-socket sender, when cfg.Sender is nil

	mu       sync.Mutex
	conns    map[*agentConn]struct{}
	rejected int       // connections refused or failed before authenticating, not yet logged
	lastLog  time.Time // last log line about rejected connections

	// agent-wide budgets (guarded by mu)
	kept      int                // packets kept by all sessions (MaxAgentSeen)
	keptBytes int                // their bytes (Seen.Packet) kept (MaxAgentPacketBytes)
	keptPeer  map[netip.Addr]int // packets kept per initiator address (MaxPeerSeen)
	lastFree  time.Time          // last time memory was handed back to the system
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
		cfg:      cfg,
		key:      append([]byte(nil), cfg.Key...),
		now:      cfg.Now,
		pace:     cfg.Pace,
		maxConn:  cfg.MaxConns,
		instance: newNonce(),
		conns:    make(map[*agentConn]struct{}),
		keptPeer: make(map[netip.Addr]int),
		ns:       netns.None(),
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
		if st := r.admit(ac); st != greetReady {
			// Say "busy" (not a silent close, which reads as a wrong key) and hang up. A
			// fresh socket's send buffer takes 40 bytes without blocking.
			g := greeting{Version: ControlVersion, Status: st, Instance: r.instance}
			c.SetWriteDeadline(time.Now().Add(100 * time.Millisecond))
			c.Write(appendGreeting(nil, &g))
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

// admit registers a new connection and returns greetReady, or the busy status it is
// refused with. A source address that holds MaxSessionsPerPeer sessions gets no more. At
// the cap it evicts the oldest unauthenticated connection of the source address that holds
// the most unauthenticated connections (so a flood from one address evicts its own
// connections, not another initiator's that is still on its way to authenticating); if
// every connection has authenticated, it refuses the new one.
func (r *Responder) admit(ac *agentConn) uint8 {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.peerSessionsLocked(ac.src) >= MaxSessionsPerPeer {
		r.noteRejectLocked()
		return greetBusyPeer
	}
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
			return greetBusy
		}
		delete(r.conns, oldest)
		oldest.c.Close()
	}
	r.conns[ac] = struct{}{}
	return greetReady
}

// peerSessionsLocked counts the authenticated sessions of src.
func (r *Responder) peerSessionsLocked(src netip.Addr) int {
	n := 0
	for c := range r.conns {
		if c.authed && c.src == src {
			n++
		}
	}
	return n
}

// authenticate marks ac as a session unless its address holds MaxSessionsPerPeer already.
func (r *Responder) authenticate(ac *agentConn, s *session) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.peerSessionsLocked(ac.src) >= MaxSessionsPerPeer {
		return false
	}
	ac.authed = true
	s.id = sessionID()
	return true
}

// reserveSeen books room for one kept packet of peer in the agent-wide budgets.
func (r *Responder) reserveSeen(peer netip.Addr) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.kept >= MaxAgentSeen || r.keptPeer[peer] >= MaxPeerSeen {
		return false
	}
	r.kept++
	r.keptPeer[peer]++
	return true
}

// reserveBytes books n bytes of kept packets (Seen.Packet) in the agent-wide budget.
func (r *Responder) reserveBytes(n int) bool {
	if n == 0 {
		return true
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.keptBytes+n > MaxAgentPacketBytes {
		return false
	}
	r.keptBytes += n
	return true
}

// releaseSeen gives back n packets of peer's reservations and their bytes.
func (r *Responder) releaseSeen(peer netip.Addr, n, bytes int) {
	if n == 0 && bytes == 0 {
		return
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	r.keptBytes -= bytes
	r.kept -= n
	if r.keptPeer[peer] -= n; r.keptPeer[peer] <= 0 {
		delete(r.keptPeer, peer)
	}
}

// sessionEnded hands memory back to the system when no session is left (the runtime
// would otherwise keep it for minutes), at most once per freeMemoryInterval.
func (r *Responder) sessionEnded() {
	r.mu.Lock()
	idle := r.kept == 0 && r.now().Sub(r.lastFree) >= freeMemoryInterval
	for c := range r.conns {
		idle = idle && !c.authed
	}
	if idle {
		r.lastFree = r.now()
	}
	r.mu.Unlock()
	if idle {
		debug.FreeOSMemory()
	}
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

	mu      sync.Mutex   // guards src, seen, lost, other, scratch
	src     PacketSource // running capture, or nil
	seen    []Seen       // probe packets kept, in arrival order; each Head its own
	lost    int          // packets lost to full buffers
	other   int          // packets from the initiator that belong to no probe (not kept)
	held    int          // bytes of Seen.Packet kept (at most MaxSessionPacketBytes)
	collect func()       // stops the collector and waits for it; nil when not running
	scratch []Seen       // what one drain returned, before sorting (reused)

	fmu        sync.RWMutex // guards announced, nAnnounced, sent: the capture's reader filters with them
	announced  *ipidSet     // IP IDs of the initiator's fragmented probes (announce)
	nAnnounced int
	sent       *ipidSet // IP IDs of the reverse probes sent toward the initiator
	build      Packets  // send-reverse validation (built, counted, not sent)

	// counters for the log line
	requests, reversePackets int
	opened                   time.Time
}

// serveConn runs one connection: a greeting, then no answer and a close for anything
// not authentic.
func (r *Responder) serveConn(ctx context.Context, ac *agentConn) {
	c := ac.c
	defer func() {
		r.forget(ac)
		if ac.authed {
			r.sessionEnded()
		}
	}()
	defer c.Close()
	stop := context.AfterFunc(ctx, func() { c.Close() })
	defer stop()

	peer, perr := addrPort(c.RemoteAddr())
	local, lerr := addrPort(c.LocalAddr())
	if perr != nil || lerr != nil {
		r.noteReject()
		return
	}
	g := greeting{Version: ControlVersion, Status: greetReady, Instance: r.instance, Challenge: newNonce()}
	c.SetWriteDeadline(time.Now().Add(ReplyWriteTimeout))
	if _, err := c.Write(appendGreeting(nil, &g)); err != nil {
		r.noteReject()
		return
	}
	chain := g.Challenge // the in-reply-to the next request must carry
	lr := &limitedReader{c: c, left: MaxSessionBytes}
	s := &session{r: r, peer: peer, local: local, opened: r.now()}
	defer s.close()
	var rbuf, wbuf []byte
	var key []byte // the connection key this session authenticated with (keyring.match)
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
			// The session keeps the key it authenticated with until it ends.
			key, err = r.keyring.match(b, g.Instance, g.Challenge, &f)
		} else {
			err = decodeFrame(b, key, &f)
		}
		if err != nil {
			end = err.Error()
			break
		}
		if !f.Type.isRequest() {
			end = ErrFrameType.Error()
			break
		}
		if f.InReplyTo != chain {
			end = ErrFrameReplay.Error()
			break
		}
		var rt msgType
		var body any
		last := f.Type == msgStop
		switch cerr := checkClock(f.Time, r.now()); {
		case cerr != nil:
			// Authentic (the MAC is right): say so, and end the session.
			rt, body, last = msgError, errorReply{Error: cerr.Error(), Code: codeClock}, true
			end = cerr.Error()
		case !ac.authed && !r.authenticate(ac, s):
			rt, body, last = msgError, errorReply{Code: codeBusy,
				Error: fmt.Sprintf("%s holds %d sessions with this agent already (its limit per initiator)", peer.Addr(), MaxSessionsPerPeer)}, true
			end = "too many sessions from " + peer.Addr().String()
		default:
			s.requests++
			rt, body = s.handle(ctx, &f)
		}
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
		chain = reply.Nonce
		c.SetWriteDeadline(time.Now().Add(ReplyWriteTimeout))
		if _, err := c.Write(wbuf); err != nil {
			end = "write: " + err.Error()
			break
		}
		if last {
			if f.Type == msgStop {
				end = "stop"
			}
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
			return msgError, errorReply{Error: err.Error(), Code: codeInvalid}
		}
		return reply, sendReverseReply{Results: res}
	case msgAnnounce:
		var q announceReq
		if err := decodeBody(f.Body, &q); err != nil {
			return fail("%v", err)
		}
		if len(q.IPIDs) > maxAnnounce {
			return msgError, errorReply{Code: codeInvalid, Error: fmt.Sprintf("%d IP IDs in one announce, at most %d", len(q.IPIDs), maxAnnounce)}
		}
		n, ok := s.announce(q.IPIDs)
		if !ok {
			return msgError, errorReply{Code: codeBusy, Error: fmt.Sprintf("this session announced %d IP IDs, at most %d", n, MaxAnnounced)}
		}
		return reply, announceReply{Announced: n}
	case msgStop:
		s.stopCapture()
		return reply, struct{}{}
	}
	return fail("unknown request %s", f.Type)
}

// collectInterval is how often a session moves packets from its capture into its list of
// probe packets: the capture keeps up to agentRingCapacity packets that pass the session's
// filter in between (100,000 probe packets/s); background traffic is not kept at all.
const collectInterval = 10 * time.Millisecond

// startCapture makes src the session's capture and starts the collector, which drains it
// every collectInterval, so that background traffic from the initiator (a busy gateway's
// tunnel) cannot push probe packets out of the capture ring between two reports.
func (s *session) startCapture(src PacketSource) {
	if f, ok := src.(interface{ SetKeep(func(*Seen) bool) }); ok {
		f.SetKeep(s.keep) // filter as packets are read: junk never fills the capture's room
	}
	s.mu.Lock()
	s.src, s.started = src, s.r.now()
	s.forgetSeenLocked()
	s.lost, s.other = 0, 0
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

// forgetSeenLocked drops the packets kept and gives their room back to the agent.
func (s *session) forgetSeenLocked() {
	s.r.releaseSeen(s.peer.Addr(), len(s.seen), s.held)
	clear(s.seen)
	s.seen, s.held = s.seen[:0], 0
}

// maxScratch bounds the drain buffer a session keeps between drains.
const maxScratch = 2 * agentRingCapacity

// drain moves what the capture holds into the session, keeping at most MaxSessionSeen
// packets (and no more than the agent-wide budgets allow): see keep. Other packets are
// counted. Each kept packet gets its own copy of its head, so nothing else the capture
// returned stays reachable.
func (s *session) drain() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.src == nil {
		return
	}
	var lost int
	s.scratch, lost = s.src.Drain(s.scratch[:0])
	s.lost += lost
	if o, ok := s.src.(interface{ TakeOther() int }); ok {
		s.other += o.TakeOther()
	}
	for i := range s.scratch {
		p := &s.scratch[i]
		if !s.keep(p) {
			s.other++
			continue
		}
		if len(s.seen) >= MaxSessionSeen || !s.r.reserveSeen(s.peer.Addr()) {
			s.lost++
			continue
		}
		q := *p
		if q.Head != nil {
			q.Head = append([]byte(nil), q.Head[:min(len(q.Head), HeadLen)]...)
		}
		if len(q.Packet) > AgentSnap || s.held+len(q.Packet) > MaxSessionPacketBytes || !s.r.reserveBytes(len(q.Packet)) {
			q.Packet = nil // reported without its bytes: the budgets are spent
		} else if q.Packet != nil {
			q.Packet = append([]byte(nil), q.Packet...)
			s.held += len(q.Packet)
		}
		s.seen = append(s.seen, q)
	}
	clear(s.scratch)
	if cap(s.scratch) > maxScratch {
		s.scratch = nil
	}
}

// keep reports whether p belongs to one of the session's probes:
//   - from the initiator (not the control connection): a first fragment with a probe's
//     marker, or one that answers a probe (a reset, an echo reply); a non-first fragment
//     whose IP ID the initiator announced (it carries nothing else to go by);
//   - from anyone: an ICMP error quoting a reverse probe this session sent (its IP ID), e.g.
//     a router's admin-prohibited. Errors quoting anything else are not the session's.
func (s *session) keep(p *Seen) bool {
	s.fmu.RLock()
	defer s.fmu.RUnlock()
	if isICMPError(p) {
		e, err := ParseICMPError(p)
		return err == nil && e.Quoted.Dst == s.peer.Addr() && s.sent.has(e.Quoted.IPID)
	}
	if p.Src != s.peer.Addr() || s.isControl(p) {
		return false
	}
	if p.Offset > 0 {
		return s.announced.has(p.IPID)
	}
	_, ok := ClassifyHead(p.Proto, p.Head)
	return ok
}

// announce adds IP IDs the initiator will use for fragmented probes; it returns how many
// the session has announced, and false when that would exceed MaxAnnounced.
func (s *session) announce(ids []uint16) (int, bool) {
	s.fmu.Lock()
	defer s.fmu.Unlock()
	if s.announced == nil {
		s.announced = new(ipidSet)
	}
	fresh := 0
	for i, id := range ids {
		if !s.announced.has(id) && !slices.Contains(ids[:i], id) {
			fresh++
		}
	}
	if s.nAnnounced+fresh > MaxAnnounced {
		return s.nAnnounced, false
	}
	for _, id := range ids {
		s.announced.add(id)
	}
	s.nAnnounced += fresh
	return s.nAnnounced, true
}

// noteSent records the IP ID of a reverse probe sent toward the initiator, so that ICMP
// errors quoting it are kept.
func (s *session) noteSent(ipid uint16) {
	s.fmu.Lock()
	defer s.fmu.Unlock()
	if s.sent == nil {
		s.sent = new(ipidSet)
	}
	s.sent.add(ipid)
}

// ipidSet is a set of IP IDs: a bitmap of 8 KB, bounded whatever goes in. A nil set is empty.
type ipidSet [65536 / 64]uint64

func (m *ipidSet) has(id uint16) bool { return m != nil && m[id/64]&(1<<(id%64)) != 0 }
func (m *ipidSet) add(id uint16)      { m[id/64] |= 1 << (id % 64) }

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

// checkReverse validates a send-reverse request before anything shared is touched: the
// number of probes, each probe's sizes, and the packets the request would send (each probe
// is built, not sent, to count them). It returns, per probe, the error that keeps it from
// being sent (an unknown probe id, a size its class cannot take), or an error refusing the
// whole request when it is out of bounds.
func (s *session) checkReverse(q *sendReverseReq, src, dst netip.Addr) ([]string, error) {
	if len(q.Probes) > MaxReverseProbes {
		return nil, fmt.Errorf("%d reverse probes in one request, at most %d", len(q.Probes), MaxReverseProbes)
	}
	defer func() {
		if cap(s.build.dgram) > 4<<10 { // do not keep a 64 KB buffer per idle session
			s.build = Packets{}
		}
	}()
	errs := make([]string, len(q.Probes))
	total := 0
	for i, p := range q.Probes {
		switch {
		case p.Size < 0 || p.Size > MaxReverseSize:
			return nil, fmt.Errorf("probe %d (%s): size %d out of range (0 for the default, at most %d)", i, p.ID, p.Size, MaxReverseSize)
		case p.FragSize != 0 && (p.FragSize < MinReverseFragSize || p.FragSize > MaxReverseSize):
			return nil, fmt.Errorf("probe %d (%s): fragment size %d out of range (0 for the default, or %d–%d: every IPv4 link carries %d-byte packets)",
				i, p.ID, p.FragSize, MinReverseFragSize, MaxReverseSize, MinReverseFragSize)
		case !p.ID.Valid():
			errs[i] = fmt.Sprintf("unknown probe %q", p.ID)
			continue
		}
		if p.IPID != 0 {
			for j, o := range q.Probes[:i] {
				if o.IPID == p.IPID && o.ID.Valid() && protoOf(o.ID) == protoOf(p.ID) {
					return nil, fmt.Errorf("probe %d (%s): ip_id %d is also probe %d's: fragments of different probes would share one reassembly key", i, p.ID, p.IPID, j)
				}
			}
		}
		if err := buildReverse(src, dst, p, &s.build); err != nil { // as the sender builds it
			errs[i] = err.Error()
			continue
		}
		n := len(s.build.Wire)
		if n > MaxReverseProbePackets {
			return nil, fmt.Errorf("probe %d (%s): %d bytes in fragments of at most %d make %d packets, at most %d per probe",
				i, p.ID, s.build.Size, max(p.FragSize, DefaultFragSize), n, MaxReverseProbePackets)
		}
		if total += n; total > MaxReversePackets {
			return nil, fmt.Errorf("the request makes more than %d packets, at most %d per request: split it", MaxReversePackets, MaxReversePackets)
		}
	}
	return errs, nil
}

// sendReverse sends the requested probes toward the initiator, paced. The request is
// validated whole first (checkReverse): one that is refused sends nothing.
func (s *session) sendReverse(ctx context.Context, q sendReverseReq) ([]ReverseResult, error) {
	snd := s.r.sender()
	if snd == nil {
		return nil, errors.New("this agent cannot send reverse probes")
	}
	dst, src := s.peer.Addr(), s.local.Addr()
	errs, err := s.checkReverse(&q, src, dst)
	if err != nil {
		return nil, err
	}
	pace := s.r.pace
	if q.Pace > 0 && q.Pace < pace {
		pace = q.Pace
	}
	ctx, cancel := context.WithTimeout(ctx, ReverseSendTimeout)
	defer cancel()
	res := make([]ReverseResult, len(q.Probes))
	next := time.Now()
	for i, p := range q.Probes {
		res[i] = ReverseResult{ID: p.ID, Nonce: p.Nonce, Error: errs[i]}
		if errs[i] != "" {
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
		res[i].IPID = p.IPID
		if p.IPID == 0 {
			res[i].IPID = uint16(p.Nonce) // Build's default
		}
		s.noteSent(res[i].IPID) // noted first: an ICMP error can be quick
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

// close ends the session's capture and gives back what it kept.
func (s *session) close() {
	s.stopCapture()
	s.mu.Lock()
	s.forgetSeenLocked()
	s.seen, s.scratch = nil, nil
	s.mu.Unlock()
}

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
