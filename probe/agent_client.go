package probe

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/ipsecpath/ipsecpath/report"
)

// Client timeouts, used when the caller's context has no earlier deadline.
const (
	// DialTimeout bounds connecting to the agent.
	DialTimeout = 5 * time.Second
	// RequestTimeout bounds one request and its reply (send-reverse: see ReverseSendTimeout).
	RequestTimeout = 10 * time.Second
)

// controlMSS is the TCP MSS the initiator announces on the control connection: the IPv6
// minimum MTU less 40 bytes of headers, so replies pass any sane path without PMTUD.
const controlMSS = 1240

// Errors of a session with the agent, distinct so that the CLI says which.
var (
	// ErrAgentRejected says the agent greeted us and then closed the connection without
	// answering our request: our key is not the agent's key (or the request was damaged on
	// the way). The agent never says which, by design.
	ErrAgentRejected = errors.New("the agent refused our request without answering: our key is not the agent's key")
	// ErrAgentBusy says the agent is up and has no room for this session now (every
	// connection slot holds a session, or our address holds MaxSessionsPerPeer of them), or
	// one of its quotas is full. Try again later; the key is not in question.
	ErrAgentBusy = errors.New("the agent is busy")
	// ErrAgentProtocol says the other end did not greet us in this control protocol: an
	// ipsecpath agent of another release, or not an ipsecpath agent.
	ErrAgentProtocol = errors.New("control protocol mismatch")
)

// AgentError is an authenticated error reply: the agent understood the request and could
// not serve it (e.g. it cannot capture).
type AgentError struct {
	Addr string // the agent, as dialled
	Op   string // the request, e.g. "start-observing"
	Msg  string // the agent's reason
	Code string // "busy", "invalid", "clock", or empty
}

// Error reads like the client's other errors: "agent ADDR: OP: reason".
func (e *AgentError) Error() string {
	if e.Addr == "" {
		return "agent: " + e.Op + ": " + e.Msg
	}
	return "agent " + e.Addr + ": " + e.Op + ": " + e.Msg
}

// Is makes an error reply with code "busy" match ErrAgentBusy.
func (e *AgentError) Is(target error) bool { return target == ErrAgentBusy && e.Code == codeBusy }

// AgentClient is the initiator's end of a control session with one agent. Its methods
// may be called from several goroutines; requests are sent one at a time. After a
// transport or protocol failure every further call fails: dial again.
type AgentClient struct {
	addr string
	key  []byte
	conn net.Conn

	mu       sync.Mutex
	reportMu sync.Mutex // one Report (several pages) or StartObserving at a time
	broken   error
	answered bool // an authentic reply came: the agent accepted our key and clock
	greeted  bool // the agent's greeting was read: ckey and chain are set
	ckey     []byte
	chain    [nonceSize]byte // in-reply-to of our next request
	rbuf     []byte
	wbuf     []byte
	seen     []Seen // everything fetched since StartObserving
	next     uint64 // the agent's cursor after seen
	lost     int
	clock    ClockEstimate
}

// ClockEstimate is the agent's clock offset as the control channel's round trips give it:
// each reply carries the agent's time; against the midpoint of the request's round trip it
// gives one sample, accurate to half that round trip. The sample of the shortest round trip
// is kept (as NTP does).
type ClockEstimate struct {
	Offset  time.Duration // agent clock minus ours
	Error   time.Duration // half the round trip of the sample kept: the offset is within ± this
	Samples int           // round trips measured
}

// Clock returns the estimate from every round trip so far (Samples 0: none yet).
func (a *AgentClient) Clock() ClockEstimate {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.clock
}

// AgentHello is what the agent says about itself and about us.
type AgentHello struct {
	Protocol int            // control protocol version
	Version  string         // the agent's ipsecpath version
	Peer     netip.AddrPort // our address as the agent sees it; differs from ours behind NAT
	Local    netip.AddrPort // the agent's address this session reached: reverse probes come from it
	Pace     int            // the agent's cap on reverse probes, packets per second
	Capture  bool           // start-observing works
	Sender   bool           // send-reverse works
	// LocalDrops are the agent host's own firewall rules that drop our probes after its
	// capture saw them (a daemon there never gets them); nil from older agents.
	LocalDrops []report.FirewallRule
	Session    string        // the session id in the agent's log
	Skew       time.Duration // agent clock minus ours, roughly (half a round trip of error)
}

// AgentReport is what the agent captured from us since StartObserving.
type AgentReport struct {
	Seen      []Seen // every packet and fragment, in arrival order (the agent keeps at most MaxSessionSeen)
	Lost      int    // packets captured but not kept because the agent's buffers were full
	Other     int    // packets from us that belong to no probe (other traffic), counted, not kept
	Observing bool   // the capture is running
	// RTT is the round trip of the report's first request on the wire, from our write to
	// its reply, not counting the time it waited for the session's earlier requests (one
	// at a time): a sample of the path's round trip (0: not measured).
	RTT time.Duration
}

// DialAgent connects to the agent at addr ("host:port", or "host" for ControlPort)
// with the pre-shared key. It does not exchange a message: call Hello to check the key.
func DialAgent(ctx context.Context, addr string, key []byte) (*AgentClient, error) {
	if len(key) < MinKeySize {
		return nil, fmt.Errorf("agent %s: key of %d bytes, need at least %d", addr, len(key), MinKeySize)
	}
	if _, _, err := net.SplitHostPort(addr); err != nil {
		addr = net.JoinHostPort(strings.TrimSuffix(strings.TrimPrefix(addr, "["), "]"), strconv.Itoa(ControlPort))
	}
	host, port, err := net.SplitHostPort(addr)
	if err != nil || host == "" {
		return nil, fmt.Errorf("agent %q: want HOST:PORT", addr)
	}
	if p, err := strconv.Atoi(port); err != nil || p < 1 || p > 65535 {
		return nil, fmt.Errorf("agent %q: bad port %q", addr, port)
	}
	// The control channel crosses the very path under test: announce a small MSS so the
	// agent's replies fit a path MTU black hole down to controlMSS+40 bytes (the
	// mtu1300-blackhole lab would otherwise stall every report bigger than 1260 bytes).
	d := net.Dialer{Timeout: DialTimeout, Control: func(_, _ string, rc syscall.RawConn) error {
		var serr error
		if err := rc.Control(func(fd uintptr) {
			serr = syscall.SetsockoptInt(int(fd), syscall.IPPROTO_TCP, syscall.TCP_MAXSEG, controlMSS)
		}); err != nil {
			return err
		}
		return serr
	}}
	c, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("agent %s: connect: %w", addr, err)
	}
	return &AgentClient{addr: addr, key: append([]byte(nil), key...), conn: c}, nil
}

// Addr returns the agent's address as dialled.
func (a *AgentClient) Addr() string { return a.addr }

// Close ends the session without a stop request; the agent stops capturing for it.
func (a *AgentClient) Close() error { return a.conn.Close() }

// Hello checks the key and the clocks and learns how the agent sees us (NAT check).
func (a *AgentClient) Hello(ctx context.Context) (*AgentHello, error) {
	var h helloReply
	t0 := time.Now()
	if err := a.roundTrip(ctx, msgHello, nil, &h); err != nil {
		return nil, err
	}
	t1 := time.Now()
	out := &AgentHello{Protocol: h.Protocol, Version: h.Version, Pace: h.Pace, Capture: h.Capture,
		Sender: h.Sender, Session: h.Session, LocalDrops: h.LocalDrops}
	out.Peer, _ = netip.ParseAddrPort(h.Peer)
	out.Local, _ = netip.ParseAddrPort(h.Local)
	if h.Clock != 0 {
		mid := t0.Add(t1.Sub(t0) / 2)
		out.Skew = time.Unix(0, h.Clock).Sub(mid)
	}
	return out, nil
}

// StartObserving makes the agent capture every packet and fragment that comes from our
// address (as the agent sees it). A second call restarts the capture with nothing seen.
func (a *AgentClient) StartObserving(ctx context.Context) error {
	a.reportMu.Lock()
	defer a.reportMu.Unlock()
	var r observeReply
	if err := a.roundTrip(ctx, msgStartObserving, nil, &r); err != nil {
		return err
	}
	a.mu.Lock()
	a.seen, a.next, a.lost = nil, 0, 0
	a.mu.Unlock()
	return nil
}

// Report returns every probe packet the agent has captured from us since StartObserving
// (packets with a probe's marker, every non-first fragment, ICMP errors quoting a probe;
// other traffic is only counted). Each call fetches only what is new (in pages) and
// returns the whole list, in arrival order; the returned slice is the caller's.
func (a *AgentClient) Report(ctx context.Context) (*AgentReport, error) {
	a.reportMu.Lock()
	defer a.reportMu.Unlock()
	var observing bool
	var other int
	var rtt time.Duration
	for {
		a.mu.Lock()
		after := a.next
		a.mu.Unlock()
		var r reportReply
		took, err := a.timedRoundTrip(ctx, msgReport, reportReq{After: after}, &r)
		if err != nil {
			return nil, err
		}
		if rtt == 0 {
			rtt = took
		}
		if r.Next < after || r.Next-after != uint64(len(r.Seen)) {
			return nil, a.fail(fmt.Errorf("agent %s: report: cursor %d→%d with %d packets: %w", a.addr, after, r.Next, len(r.Seen), ErrFrameReply))
		}
		a.mu.Lock()
		room := max(MaxSessionSeen-len(a.seen), 0)
		a.seen = append(a.seen, r.Seen[:min(room, len(r.Seen))]...)
		a.next, a.lost = r.Next, r.Lost
		full := len(a.seen) >= MaxSessionSeen
		a.mu.Unlock()
		observing, other = r.Observing, r.Other
		if !r.More || len(r.Seen) == 0 || full {
			break
		}
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	return &AgentReport{Seen: append([]Seen(nil), a.seen...), Lost: a.lost, Other: other, Observing: observing, RTT: rtt}, nil
}

// SendReverse asks the agent to send probes toward us, paced at pace packets per second
// (0: the agent's pace, which also caps it). It returns when all were sent, with one
// result per probe in order. At most MaxReverseProbes per call.
func (a *AgentClient) SendReverse(ctx context.Context, probes []ReverseProbe, pace int) ([]ReverseResult, error) {
	if len(probes) > MaxReverseProbes {
		return nil, fmt.Errorf("agent %s: send-reverse: %d probes, at most %d per request", a.addr, len(probes), MaxReverseProbes)
	}
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, ReverseSendTimeout+RequestTimeout)
		defer cancel()
	}
	var r sendReverseReply
	if err := a.roundTrip(ctx, msgSendReverse, sendReverseReq{Probes: probes, Pace: pace}, &r); err != nil {
		return nil, err
	}
	if len(r.Results) != len(probes) {
		return nil, a.fail(fmt.Errorf("agent %s: send-reverse: %d results for %d probes: %w", a.addr, len(r.Results), len(probes), ErrFrameReply))
	}
	return r.Results, nil
}

// Announce tells the agent the IP IDs of fragmented probes we send, before we send them:
// the agent keeps non-first fragments from us only when their IP ID was announced (their
// first fragment, which may be the one lost, carries the probe's marker; the others carry
// nothing but the IP ID). At most maxAnnounce IDs per call.
func (a *AgentClient) Announce(ctx context.Context, ipids ...uint16) error {
	if len(ipids) == 0 {
		return nil
	}
	if len(ipids) > maxAnnounce {
		return fmt.Errorf("agent %s: announce: %d IP IDs, at most %d per request", a.addr, len(ipids), maxAnnounce)
	}
	var r announceReply
	return a.roundTrip(ctx, msgAnnounce, announceReq{IPIDs: ipids}, &r)
}

// Stop ends the capture and the session; the connection is closed afterwards.
func (a *AgentClient) Stop(ctx context.Context) error {
	err := a.roundTrip(ctx, msgStop, nil, nil)
	a.conn.Close()
	return err
}

func (a *AgentClient) fail(err error) error {
	a.mu.Lock()
	if a.broken == nil {
		a.broken = err
	}
	a.mu.Unlock()
	a.conn.Close()
	return err
}

// roundTrip sends one request and reads its reply into out. It honours ctx (its
// deadline, or RequestTimeout) and marks the client broken on any transport error.
func (a *AgentClient) roundTrip(ctx context.Context, t msgType, body, out any) error {
	_, err := a.timedRoundTrip(ctx, t, body, out)
	return err
}

// timedRoundTrip is roundTrip, and returns the request's own round trip: from writing it
// to reading its reply, after it had the session (0 when it did not get that far).
func (a *AgentClient) timedRoundTrip(ctx context.Context, t msgType, body, out any) (rtt time.Duration, err error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	err = a.exchange(ctx, t, body, out, &rtt)
	return rtt, err
}

// exchange is one request and its reply; the caller holds a.mu. It sets *rtt once the
// reply was read.
func (a *AgentClient) exchange(ctx context.Context, t msgType, body, out any, rtt *time.Duration) error {
	if a.broken != nil {
		return fmt.Errorf("agent %s: %s: session unusable after an earlier failure: %w", a.addr, t, a.broken)
	}
	b, err := encodeBody(body)
	if err != nil {
		return fmt.Errorf("agent %s: %s: %w", a.addr, t, err)
	}
	deadline, ok := ctx.Deadline()
	if !ok {
		deadline = time.Now().Add(RequestTimeout)
	}
	a.conn.SetDeadline(deadline)
	fired := make(chan struct{})
	stop := context.AfterFunc(ctx, func() {
		defer close(fired)
		a.conn.SetDeadline(time.Unix(1, 0))
	})
	defer func() {
		if !stop() {
			// ctx fired: its past deadline must be set before the next request sets its
			// own, or it would land on that request and break the session.
			<-fired
		}
	}()

	broken := func(err error) error {
		a.broken = err
		a.conn.Close()
		return err
	}
	if !a.greeted {
		if err := a.readGreeting(ctx, t); err != nil {
			return broken(err)
		}
	}
	req := frame{Type: t, Nonce: newNonce(), Time: time.Now(), InReplyTo: a.chain, Body: b}
	if a.wbuf, err = appendFrame(a.wbuf[:0], a.ckey, &req); err != nil {
		return fmt.Errorf("agent %s: %s: %w", a.addr, t, err)
	}
	t0 := time.Now()
	if _, err := a.conn.Write(a.wbuf); err != nil {
		return broken(a.transportError(ctx, t, "send", err))
	}
	rb, err := readFrame(a.conn, a.rbuf[:0])
	t1 := time.Now()
	if err != nil {
		return broken(a.transportError(ctx, t, "read reply", err))
	}
	*rtt = t1.Sub(t0)
	a.rbuf = rb
	var f frame
	if err := decodeFrame(rb, a.ckey, &f); err != nil {
		return broken(fmt.Errorf("agent %s: %s: %w", a.addr, t, err))
	}
	if f.InReplyTo != req.Nonce || (f.Type != t|msgReplyBit && f.Type != msgError) {
		return broken(fmt.Errorf("agent %s: %s: got %s: %w", a.addr, t, f.Type, ErrFrameReply))
	}
	a.chain = f.Nonce
	if err := checkClock(f.Time, time.Now()); err != nil {
		return broken(fmt.Errorf("agent %s: %s: %w", a.addr, t, err))
	}
	if half := t1.Sub(t0) / 2; a.clock.Samples == 0 || half < a.clock.Error {
		a.clock.Offset, a.clock.Error = f.Time.Sub(t0.Add(half)), half
	}
	a.clock.Samples++
	a.answered = true
	if f.Type == msgError {
		var e errorReply
		if err := decodeBody(f.Body, &e); err != nil {
			return broken(fmt.Errorf("agent %s: %s: %w", a.addr, t, err))
		}
		return &AgentError{Addr: a.addr, Op: t.String(), Msg: e.Error, Code: e.Code}
	}
	if err := decodeBody(f.Body, out); err != nil {
		return broken(fmt.Errorf("agent %s: %s: %w", a.addr, t, err))
	}
	return nil
}

// readGreeting reads the agent's greeting and derives the connection key. The caller holds
// a.mu and has set the connection's deadline.
func (a *AgentClient) readGreeting(ctx context.Context, t msgType) error {
	var g greeting
	start := time.Now()
	if err := readGreeting(a.conn, &g); err != nil {
		closed := errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, syscall.ECONNRESET)
		var ne net.Error
		timeout := errors.As(err, &ne) && ne.Timeout()
		switch {
		case errors.Is(err, ErrAgentProtocol):
			return fmt.Errorf("agent %s: %s: %w", a.addr, t, err)
		case ctx.Err() == nil && closed:
			return fmt.Errorf("agent %s: %s: %w: the agent closed the connection without greeting us: it is an ipsecpath agent older than control protocol %d (upgrade it) or not an ipsecpath agent", a.addr, t, ErrAgentProtocol, ControlVersion)
		case timeout && !errors.Is(ctx.Err(), context.Canceled):
			// TCP connected, so the host answers; 40 bytes cross any path.
			return fmt.Errorf("agent %s: %s: %w: the agent accepted the connection but sent no greeting in %s: an ipsecpath agent older than control protocol %d waits for us to speak first (upgrade it), or this is not an ipsecpath agent",
				a.addr, t, ErrAgentProtocol, time.Since(start).Round(100*time.Millisecond), ControlVersion)
		}
		return a.transportError(ctx, t, "read greeting", err)
	}
	switch g.Status {
	case greetReady:
	case greetBusy:
		return fmt.Errorf("agent %s: %s: %w: every one of its connection slots holds a session; try again when one ends", a.addr, t, ErrAgentBusy)
	case greetBusyPeer:
		return fmt.Errorf("agent %s: %s: %w: our address holds %d sessions with it already (its limit per initiator); try again when one ends", a.addr, t, ErrAgentBusy, MaxSessionsPerPeer)
	default:
		return fmt.Errorf("agent %s: %s: %w: greeting with unknown status %d", a.addr, t, ErrAgentProtocol, g.Status)
	}
	a.ckey = connKey(a.key, g.Instance, g.Challenge)
	a.chain = g.Challenge
	a.greeted = true
	return nil
}

// transportError explains a failed send or read: a silent close before any answer means
// rejection; after the agent has answered, it means the agent ended the session (it stopped
// or restarted). The caller holds a.mu.
func (a *AgentClient) transportError(ctx context.Context, t msgType, op string, err error) error {
	closed := errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, syscall.ECONNRESET) || errors.Is(err, syscall.EPIPE)
	switch {
	case ctx.Err() != nil:
		return fmt.Errorf("agent %s: %s: %w", a.addr, t, ctx.Err())
	case closed && a.answered:
		return fmt.Errorf("agent %s: %s: the agent closed the session it had accepted (it stopped or restarted): %w", a.addr, t, err)
	case closed:
		return fmt.Errorf("agent %s: %s: %w", a.addr, t, ErrAgentRejected)
	case errors.Is(err, ErrFrameSize):
		return fmt.Errorf("agent %s: %s: %w", a.addr, t, err)
	}
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		return fmt.Errorf("agent %s: %s: no answer in time: %w", a.addr, t, err)
	}
	return fmt.Errorf("agent %s: %s: %s: %w", a.addr, t, op, err)
}
