package probe

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ipsecpath/ipsecpath/report"
	"github.com/ipsecpath/ipsecpath/testlab"
)

// fakeCapture hands out sources that replay a fixed list of packets, as if captured.
type fakeCapture struct {
	mu      sync.Mutex
	packets func(peer netip.Addr) []Seen
	peers   []netip.Addr
	open    int
	lost    int
	sources []*fakeSource
}

// inject hands packets to every open source, as if captured now.
func (f *fakeCapture) inject(pk ...Seen) {
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, s := range f.sources {
		if !s.closed {
			s.pending = append(s.pending, pk...)
		}
	}
}

func (f *fakeCapture) Capture(peer netip.Addr) (PacketSource, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.peers = append(f.peers, peer)
	f.open++
	var pk []Seen
	if f.packets != nil {
		pk = f.packets(peer)
	}
	src := &fakeSource{f: f, pending: pk, lost: f.lost}
	f.sources = append(f.sources, src)
	return src, nil
}

type fakeSource struct {
	f       *fakeCapture
	pending []Seen
	lost    int
	closed  bool
}

func (s *fakeSource) Drain(dst []Seen) ([]Seen, int) {
	if s.f != nil {
		s.f.mu.Lock()
		defer s.f.mu.Unlock()
	}
	dst = append(dst, s.pending...)
	s.pending = nil
	l := s.lost
	s.lost = 0
	return dst, l
}

func (s *fakeSource) Close() error {
	s.f.mu.Lock()
	defer s.f.mu.Unlock()
	if !s.closed {
		s.closed = true
		s.f.open--
	}
	return nil
}

func (f *fakeCapture) openCount() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.open
}

// fakeSender records what it was asked to send.
type fakeSender struct {
	mu    sync.Mutex
	sends []string // "src>dst id nonce size"
	at    []time.Time
}

func (f *fakeSender) SendProbe(ctx context.Context, src, dst netip.Addr, p ReverseProbe) (int, int, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.sends = append(f.sends, fmt.Sprintf("%s>%s %s %d %d", src, dst, p.ID, p.Nonce, p.Size))
	f.at = append(f.at, time.Now())
	if p.ID.Fragmented() {
		return 3, 3000, nil
	}
	return 1, 200, nil
}

func (f *fakeSender) Close() error { return nil }

// logSink collects the agent's log lines.
type logSink struct {
	mu    sync.Mutex
	lines []string
}

func (l *logSink) logf(format string, args ...any) {
	l.mu.Lock()
	l.lines = append(l.lines, fmt.Sprintf(format, args...))
	l.mu.Unlock()
}

func (l *logSink) get() []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]string(nil), l.lines...)
}

type agentFixture struct {
	addr string
	r    *Responder
	capt *fakeCapture
	snd  *fakeSender
	log  *logSink
	stop func()
}

// startAgent runs a Responder with fakes on a loopback listener until the test ends.
func startAgent(t testing.TB, mod func(*ResponderConfig)) *agentFixture {
	t.Helper()
	fx := &agentFixture{capt: &fakeCapture{}, snd: &fakeSender{}, log: &logSink{}}
	cfg := ResponderConfig{Key: testKey, Version: "test", Logf: fx.log.logf, Capture: fx.capt, Sender: fx.snd}
	if mod != nil {
		mod(&cfg)
	}
	r, err := NewResponder(cfg)
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		r.Close()
		t.Fatal(err)
	}
	fx.stop = testlab.Serve(t, r, ln)
	fx.addr, fx.r = ln.Addr().String(), r
	return fx
}

func dial(t testing.TB, addr string, key []byte) *AgentClient {
	t.Helper()
	c, err := DialAgent(context.Background(), addr, key)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// seenOf turns wire packets into what a capture records of them.
func seenOf(t testing.TB, wire ...[]byte) []Seen {
	t.Helper()
	var out []Seen
	for _, w := range wire {
		var h IPv4Header
		if err := h.DecodeFromBytes(w); err != nil {
			t.Fatal(err)
		}
		s := Seen{Src: h.Src, Dst: h.Dst, Proto: h.Proto, IPID: h.ID, Offset: h.Offset, More: h.MF, DF: h.DF, TTL: h.TTL, TotalLen: h.TotalLen}
		if h.Offset == 0 {
			s.Head = append([]byte(nil), h.Payload...) // longer than HeadLen: the agent cuts it
		}
		out = append(out, s)
	}
	return out
}

// buildSeen builds probe id from src to dst and returns what a capture records of it.
func buildSeen(t testing.TB, id ID, src, dst netip.Addr, nonce uint32) []Seen {
	t.Helper()
	var pk Packets
	if err := Build(id, BuildParams{Src: src, Dst: dst, Nonce: nonce}, &pk); err != nil {
		t.Fatal(err)
	}
	return seenOf(t, pk.Wire...)
}

func TestAgentGoodSession(t *testing.T) {
	fx := startAgent(t, nil)
	lo := netip.MustParseAddr("127.0.0.1")
	router := netip.MustParseAddr("192.0.2.66")
	ctx := context.Background()
	c := dial(t, fx.addr, testKey)
	h, err := c.Hello(ctx)
	if err != nil {
		t.Fatalf("Hello: %v", err)
	}
	if h.Protocol != ControlVersion || h.Version != "test" || h.Peer.Addr() != lo || !h.Local.IsValid() || !h.Capture || !h.Sender || h.Pace != DefaultPace {
		t.Fatalf("Hello = %+v", h)
	}
	if h.Skew > time.Second || h.Skew < -time.Second {
		t.Fatalf("skew %v on one machine", h.Skew)
	}
	if err := c.StartObserving(ctx); err != nil {
		t.Fatalf("StartObserving: %v", err)
	}
	if len(fx.capt.peers) != 1 || fx.capt.peers[0] != lo {
		t.Fatalf("capture opened for %v, want exactly [127.0.0.1] (the TCP peer)", fx.capt.peers)
	}
	res, err := c.SendReverse(ctx, []ReverseProbe{{ID: ESP, Nonce: 0x01020306}, {ID: ESPFrag, Nonce: 0x0102030c, Size: 3000}, {ID: "bogus", Nonce: 13}}, 0)
	if err != nil {
		t.Fatalf("SendReverse: %v", err)
	}
	if len(res) != 3 || res[0].Packets != 1 || res[1].Packets != 3 || res[0].Error != "" || !strings.Contains(res[2].Error, "unknown probe") {
		t.Fatalf("SendReverse results %+v", res)
	}
	want := []string{
		fmt.Sprintf("%s>127.0.0.1 esp %d 0", h.Local.Addr(), 0x01020306),
		fmt.Sprintf("%s>127.0.0.1 esp-frag %d 3000", h.Local.Addr(), 0x0102030c),
	}
	if strings.Join(fx.snd.sends, "|") != strings.Join(want, "|") {
		t.Fatalf("sent %q, want %q", fx.snd.sends, want)
	}
	if err := c.Announce(ctx, 0x0304); err != nil { // the IP ID of nonce 0x01020304
		t.Fatalf("Announce: %v", err)
	}
	var s []Seen
	s = append(s, buildSeen(t, ESPFrag, lo, lo, 0x01020304)...) // 3 fragments: kept (IP ID announced)
	s = append(s, buildSeen(t, AH, lo, lo, 0x01020305)...)      // kept
	// A router's admin-prohibited quoting the reverse probe sent to the peer: kept.
	var pk Packets
	if err := Build(ESP, BuildParams{Src: h.Local.Addr(), Dst: lo, Nonce: 0x01020306}, &pk); err != nil {
		t.Fatal(err)
	}
	quoted := append([]byte{3, 13, 0, 0, 0, 0, 0, 0}, pk.Wire[0][:28]...) // IP header + 8 bytes
	s = append(s, Seen{Src: router, Dst: lo, Proto: 1, Head: quoted})
	// Not kept: not from the initiator; echo from elsewhere; the initiator's other traffic;
	// an error quoting a packet to the initiator that no reverse probe of ours was (anyone
	// can forge those); a non-first fragment whose IP ID was not announced.
	s = append(s, Seen{Src: netip.MustParseAddr("192.0.2.99"), Dst: lo, Proto: 50, Head: make([]byte, 40)})
	s = append(s, Seen{Src: netip.MustParseAddr("192.0.2.99"), Dst: lo, Proto: 1, Head: []byte{8, 0, 0, 0, 0, 0, 0, 0}})
	s = append(s, Seen{Src: lo, Dst: lo, Proto: 50, Head: bytes.Repeat([]byte{0xee}, 100)})
	s = append(s, Seen{Src: lo, Dst: lo, Proto: 17, Head: []byte{0x11, 0x94, 0x11, 0x94, 0, 40, 0, 0, 0xde, 0xad, 0xbe, 0xef}})
	if err := Build(ESP, BuildParams{Src: h.Local.Addr(), Dst: lo, Nonce: 0x0a0b0c0d}, &pk); err != nil {
		t.Fatal(err)
	}
	s = append(s, Seen{Src: netip.MustParseAddr("198.18.7.7"), Dst: lo, Proto: 1, Head: append([]byte{3, 13, 0, 0, 0, 0, 0, 0}, pk.Wire[0][:28]...)})
	s = append(s, Seen{Src: lo, Dst: lo, Proto: 50, IPID: 0x7777, Offset: 1256, TotalLen: 600})
	fx.capt.inject(s...)
	var rep *AgentReport
	waitFor(t, "packets collected", func() bool {
		rep, err = c.Report(ctx)
		return err != nil || rep.Other == 6
	})
	if err != nil {
		t.Fatalf("Report: %v", err)
	}
	if len(rep.Seen) != 5 || rep.Other != 6 || !rep.Observing {
		t.Fatalf("Report: %d packets, %d other (observing %v), want 4 probe packets from the initiator, 1 ICMP error, 6 other: %+v",
			len(rep.Seen), rep.Other, rep.Observing, rep.Seen)
	}
	if rep.Seen[1].Offset == 0 || rep.Seen[2].Offset == 0 || rep.Seen[4].Head[1] != 13 || len(rep.Seen[0].Head) != HeadLen {
		t.Fatalf("Report lost fields or kept an oversized head: %+v", rep.Seen)
	}
	for i, want := range []uint32{0x01020304, 0x01020305} {
		if m, ok := classify(&rep.Seen[3*i]); !ok || m.Nonce != want {
			t.Fatalf("packet %d classified %+v, %v; want nonce %#x", 3*i, m, ok, want)
		}
	}
	if err := c.Stop(ctx); err != nil {
		t.Fatalf("Stop: %v", err)
	}
	waitFor(t, "capture closed", func() bool { return fx.capt.openCount() == 0 })
	waitFor(t, "session log line", func() bool { return len(fx.log.get()) == 1 })
	if l := fx.log.get()[0]; !strings.Contains(l, "from 127.0.0.1:") || !strings.Contains(l, "requests, 5 probe packets observed (0 lost, 6 other packets ignored), 4 reverse packets sent") || !strings.Contains(l, "ended: stop") {
		t.Fatalf("log line %q", l)
	}
	if _, err := c.Hello(ctx); err == nil {
		t.Fatalf("Hello after Stop succeeded")
	}
}

func TestAgentReportPages(t *testing.T) {
	fx := startAgent(t, nil)
	const n = 1000
	fx.capt.lost = 5
	fx.capt.packets = func(peer netip.Addr) []Seen {
		s := make([]Seen, n)
		for i := range s {
			// Non-first fragments with announced IP IDs: kept whatever they hold.
			s[i] = Seen{At: time.Now(), Src: peer, Dst: peer, Proto: 50, IPID: uint16(i), Offset: 1480, TotalLen: 1500}
		}
		return s
	}
	ctx := context.Background()
	c := dial(t, fx.addr, testKey)
	announceUpTo(t, c, n)
	if err := c.StartObserving(ctx); err != nil {
		t.Fatal(err)
	}
	var rep *AgentReport
	var err error
	waitFor(t, "all packets", func() bool {
		rep, err = c.Report(ctx)
		return err != nil || len(rep.Seen) == n
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(rep.Seen) != n || rep.Lost != 5 {
		t.Fatalf("got %d packets, %d lost; want %d, 5", len(rep.Seen), rep.Lost, n)
	}
	for i, s := range rep.Seen {
		if s.IPID != uint16(i) {
			t.Fatalf("packet %d has IP ID %d: out of order or duplicated", i, s.IPID)
		}
	}
	again, err := c.Report(ctx)
	if err != nil || len(again.Seen) != n {
		t.Fatalf("second Report: %d packets, %v", len(again.Seen), err)
	}
}

// announceUpTo announces IP IDs 0 … n-1.
func announceUpTo(t testing.TB, c *AgentClient, n int) {
	t.Helper()
	var ids []uint16
	for i := range n {
		if ids = append(ids, uint16(i)); len(ids) == maxAnnounce || i == n-1 {
			if err := c.Announce(context.Background(), ids...); err != nil {
				t.Fatalf("Announce: %v", err)
			}
			ids = ids[:0]
		}
	}
}

func TestAgentWrongKeyNoAnswer(t *testing.T) {
	fx := startAgent(t, nil)
	c := dial(t, fx.addr, []byte("not the agent's key, but long enough"))
	_, err := c.Hello(context.Background())
	if !errors.Is(err, ErrAgentRejected) {
		t.Fatalf("Hello with wrong key: %v, want ErrAgentRejected", err)
	}
	if fx.capt.openCount() != 0 || len(fx.capt.peers) != 0 {
		t.Fatalf("capture touched by an unauthenticated client")
	}
	fx.stop()
	for _, l := range fx.log.get() {
		if strings.HasPrefix(l, "session") {
			t.Fatalf("unauthenticated client logged as a session: %q", l)
		}
	}
}

// rawConn opens a plain TCP connection to the agent, for hand-made frames.
func rawConn(t *testing.T, addr string) net.Conn {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// expectClosed checks the agent closes c without sending a byte.
func expectClosed(t *testing.T, c net.Conn, within time.Duration) {
	t.Helper()
	c.SetReadDeadline(time.Now().Add(within))
	var b [1]byte
	n, err := c.Read(b[:])
	if n != 0 || err == nil || isTimeout(err) {
		t.Fatalf("want the agent to close without answering; read %d bytes, err %v", n, err)
	}
}

func isTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

// rawSession drives a control connection by hand: greeting read, frames sealed with the
// connection key and chained to the agent's last message.
type rawSession struct {
	c     net.Conn
	g     greeting
	key   []byte
	chain [nonceSize]byte
}

// greet reads the agent's greeting on c.
func greet(t *testing.T, c net.Conn, key []byte) *rawSession {
	t.Helper()
	c.SetReadDeadline(time.Now().Add(5 * time.Second))
	s := &rawSession{c: c}
	if err := readGreeting(c, &s.g); err != nil {
		t.Fatalf("greeting: %v", err)
	}
	s.key, s.chain = connKey(key, s.g.Instance, s.g.Challenge), s.g.Challenge
	return s
}

// seal returns the wire form of a request of type typ, chained and signed for this session.
func (s *rawSession) seal(t *testing.T, typ msgType, body string) ([]byte, frame) {
	t.Helper()
	f := frame{Type: typ, Nonce: newNonce(), Time: time.Now(), InReplyTo: s.chain, Body: []byte(body)}
	w, err := appendFrame(nil, s.key, &f)
	if err != nil {
		t.Fatal(err)
	}
	return w, f
}

// exchange sends a sealed request and reads the reply, which moves the chain on.
func (s *rawSession) exchange(t *testing.T, wire []byte) (frame, error) {
	t.Helper()
	if _, err := s.c.Write(wire); err != nil {
		return frame{}, err
	}
	s.c.SetReadDeadline(time.Now().Add(5 * time.Second))
	b, err := readFrame(s.c, nil)
	if err != nil {
		return frame{}, err
	}
	var f frame
	if err := decodeFrame(b, s.key, &f); err != nil {
		return frame{}, err
	}
	s.chain = f.Nonce
	return f, nil
}

// TestAgentReplayRejected: a captured request is served by nobody but the connection it
// was made for: not again on that connection, not on another connection to the same
// agent, not by another agent holding the same key, not by the agent after a restart.
func TestAgentReplayRejected(t *testing.T) {
	fx := startAgent(t, nil)
	s1 := greet(t, rawConn(t, fx.addr), testKey)
	hello, _ := s1.seal(t, msgHello, "")
	if rep, err := s1.exchange(t, hello); err != nil || rep.Type != msgHello|msgReplyBit {
		t.Fatalf("hello: %+v, %v", rep, err)
	}
	start, req := s1.seal(t, msgStartObserving, "")
	rep, err := s1.exchange(t, start)
	if err != nil || rep.Type != msgStartObserving|msgReplyBit || rep.InReplyTo != req.Nonce {
		t.Fatalf("start-observing: %+v, %v", rep, err)
	}
	if fx.capt.openCount() != 1 {
		t.Fatalf("%d captures open, want 1", fx.capt.openCount())
	}
	// Same bytes again on the same connection: not chained to the last reply; closed.
	s1.c.Write(start)
	expectClosed(t, s1.c, 3*time.Second)

	replayTo := func(name, addr string) {
		t.Helper()
		c := rawConn(t, addr)
		c.SetReadDeadline(time.Now().Add(3 * time.Second))
		var g greeting
		if err := readGreeting(c, &g); err != nil {
			t.Fatalf("%s: greeting: %v", name, err)
		}
		c.Write(hello)
		c.Write(start)
		expectClosed(t, c, 3*time.Second)
	}
	replayTo("same agent, new connection", fx.addr)
	other := startAgent(t, nil) // same key: another host, or this agent restarted
	replayTo("another agent with the same key", other.addr)
	if n := other.capt.openCount() + len(other.capt.peers); n != 0 {
		t.Fatalf("the other agent started a capture for a replayed request")
	}
	fx.stop()
	restarted := startAgent(t, nil)
	replayTo("the agent restarted", restarted.addr)
	if len(restarted.capt.peers) != 0 {
		t.Fatalf("the restarted agent started a capture for a replayed request")
	}
	// A reply sent back to the agent as if it were a request: refused (wrong type).
	s3 := greet(t, rawConn(t, restarted.addr), testKey)
	rep.InReplyTo = s3.chain
	rwire, _ := appendFrame(nil, s3.key, &rep)
	s3.c.Write(rwire)
	expectClosed(t, s3.c, 3*time.Second)
}

// TestAgentStaleTimestampRejected: an authentic request with a clock off by more than
// ClockWindow gets an authenticated error that says so (the initiator can tell a clock
// from a key), and the session ends.
func TestAgentStaleTimestampRejected(t *testing.T) {
	fx := startAgent(t, nil)
	for _, off := range []time.Duration{-ClockWindow - 2*time.Second, ClockWindow + 2*time.Second, -time.Hour} {
		s := greet(t, rawConn(t, fx.addr), testKey)
		f := frame{Type: msgHello, Nonce: newNonce(), Time: time.Now().Add(off), InReplyTo: s.chain}
		wire, _ := appendFrame(nil, s.key, &f)
		rep, err := s.exchange(t, wire)
		var e errorReply
		if err != nil || rep.Type != msgError || decodeBody(rep.Body, &e) != nil || e.Code != codeClock || !strings.Contains(e.Error, "off the local clock") {
			t.Fatalf("hello %v off: %+v %+v, %v", off, rep, e, err)
		}
		expectClosed(t, s.c, 3*time.Second)
	}
	// Inside the window: served.
	s := greet(t, rawConn(t, fx.addr), testKey)
	f := frame{Type: msgHello, Nonce: newNonce(), Time: time.Now().Add(-ClockWindow + 5*time.Second), InReplyTo: s.chain}
	wire, _ := appendFrame(nil, s.key, &f)
	if rep, err := s.exchange(t, wire); err != nil || rep.Type != msgHello|msgReplyBit {
		t.Fatalf("hello 25s old: %+v, %v", rep, err)
	}
	for _, l := range fx.log.get() {
		if strings.HasPrefix(l, "session") && !strings.Contains(l, "ended: initiator closed") {
			t.Fatalf("a stale request made a session: %q", l)
		}
	}
}

func TestAgentOversizeFrameClosedUnread(t *testing.T) {
	fx := startAgent(t, nil)
	c := rawConn(t, fx.addr)
	greet(t, c, testKey)
	var hdr [4]byte
	binary.BigEndian.PutUint32(hdr[:], 1<<30) // announces 1 GiB
	start := time.Now()
	if _, err := c.Write(hdr[:]); err != nil {
		t.Fatal(err)
	}
	// The agent must close at once, not wait for the body (HandshakeTimeout is 5s).
	expectClosed(t, c, 2*time.Second)
	if d := time.Since(start); d > time.Second {
		t.Fatalf("closed after %v: the agent waited for the body", d)
	}
	// A frame one byte over MaxFrameSize, also refused.
	c2 := rawConn(t, fx.addr)
	greet(t, c2, testKey)
	binary.BigEndian.PutUint32(hdr[:], MaxFrameSize-frameLenSize+1)
	c2.Write(hdr[:])
	expectClosed(t, c2, 2*time.Second)
}

// fakeAgent listens on loopback and runs handle for each connection in its own goroutine
// until the test ends; it returns the address.
func fakeAgent(t *testing.T, handle func(net.Conn)) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go handle(c)
		}
	}()
	return ln.Addr().String()
}

func TestAgentRequestBoundToReply(t *testing.T) {
	// A fake agent with the right key that answers with a reply to another nonce (a
	// replayed old reply): the client must refuse it.
	addr := fakeAgent(t, func(c net.Conn) {
		defer c.Close()
		g := greeting{Version: ControlVersion, Instance: newNonce(), Challenge: newNonce()}
		c.Write(appendGreeting(nil, &g))
		key := connKey(testKey, g.Instance, g.Challenge)
		b, err := readFrame(c, nil)
		if err != nil {
			return
		}
		var f frame
		if decodeFrame(b, key, &f) != nil {
			return
		}
		bad := frame{Type: f.Type | msgReplyBit, Nonce: newNonce(), Time: time.Now(), InReplyTo: newNonce(), Body: []byte(`{}`)}
		w, _ := appendFrame(nil, key, &bad)
		c.Write(w)
		io.Copy(io.Discard, c)
	})
	c := dial(t, addr, testKey)
	if _, err := c.Hello(context.Background()); !errors.Is(err, ErrFrameReply) {
		t.Fatalf("Hello answered with another request's reply: %v, want ErrFrameReply", err)
	}
	if _, err := c.Hello(context.Background()); err == nil {
		t.Fatalf("client still usable after a bad reply")
	}
}

// TestAgentOlderProtocol: an agent of control protocol 1 waits for the initiator's frame
// and, failing its MAC, closes; either way the initiator says the versions differ, not
// that the key is wrong or that time ran out.
func TestAgentOlderProtocol(t *testing.T) {
	for _, closeAfter := range []time.Duration{50 * time.Millisecond, time.Hour} {
		addr := fakeAgent(t, func(c net.Conn) {
			defer c.Close()
			c.SetReadDeadline(time.Now().Add(closeAfter))
			io.Copy(io.Discard, c)
		})
		ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
		_, err := dial(t, addr, testKey).Hello(ctx)
		cancel()
		if !errors.Is(err, ErrAgentProtocol) || errors.Is(err, ErrAgentRejected) || !strings.Contains(err.Error(), "older than control protocol 2") {
			t.Errorf("agent of protocol 1 closing after %v: %v, want ErrAgentProtocol", closeAfter, err)
		}
	}
}

func TestAgentHonoursContext(t *testing.T) {
	// An agent that accepts and never answers: the client returns at the ctx deadline.
	addr := fakeAgent(t, func(c net.Conn) {
		defer c.Close()
		io.Copy(io.Discard, c)
	})
	c := dial(t, addr, testKey)
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	start := time.Now()
	_, err := c.Hello(ctx)
	if err == nil || time.Since(start) > 2*time.Second {
		t.Fatalf("Hello against a silent agent: %v after %v", err, time.Since(start))
	}
}

func TestAgentUnreachableAndBadAddr(t *testing.T) {
	ln, _ := net.Listen("tcp", "127.0.0.1:0")
	addr := ln.Addr().String()
	ln.Close() // nothing listens there now
	if _, err := DialAgent(context.Background(), addr, testKey); err == nil || !strings.Contains(err.Error(), "connect") {
		t.Fatalf("DialAgent to a closed port: %v", err)
	}
	for _, a := range []string{"127.0.0.1:0", "127.0.0.1:99999", ":7500", "127.0.0.1:x"} {
		if _, err := DialAgent(context.Background(), a, testKey); err == nil {
			t.Fatalf("DialAgent(%q) succeeded", a)
		}
	}
	if _, err := DialAgent(context.Background(), "127.0.0.1:1", []byte("short")); err == nil || !strings.Contains(err.Error(), "at least 16") {
		t.Fatalf("short key: %v", err)
	}
}

// TestAgentSendReverseBounds: a send-reverse request is checked whole before anything is
// sent: absurd sizes, fragment sizes (fragments of 28 bytes carry 8 bytes each: a 3000-byte
// probe would be 375 packets, 30 s of the sender at 100/s), and packet counts are refused
// with an "invalid" error, and nothing leaves; the pace is the agent's.
func TestAgentSendReverseBounds(t *testing.T) {
	fx := startAgent(t, func(c *ResponderConfig) { c.Pace = 50 })
	c := dial(t, fx.addr, testKey)
	ctx := context.Background()
	if _, err := c.SendReverse(ctx, make([]ReverseProbe, MaxReverseProbes+1), 0); err == nil {
		t.Fatalf("client sent more than MaxReverseProbes")
	}
	nonces, err := NewNonces(MaxReverseProbes)
	if err != nil {
		t.Fatal(err)
	}
	many := make([]ReverseProbe, MaxReverseProbes) // 64 × 9 fragments > MaxReversePackets
	for i := range many {
		many[i] = ReverseProbe{ID: ESPFrag, Nonce: nonces[i], Size: 9000, FragSize: 1100}
	}
	for _, tc := range []struct {
		name   string
		probes []ReverseProbe
		want   string
	}{
		{"negative size", []ReverseProbe{{ID: AH, Nonce: nonces[0]}, {ID: ESP, Nonce: nonces[1], Size: -1}}, "size -1 out of range"},
		{"oversize", []ReverseProbe{{ID: AH, Nonce: nonces[0], Size: 70000}}, "size 70000 out of range"},
		{"28-byte fragments", []ReverseProbe{{ID: AH, Nonce: nonces[0]}, {ID: ESPFrag, Nonce: nonces[1], FragSize: 28}}, "fragment size 28 out of range"},
		{"fragment size over the limit", []ReverseProbe{{ID: ESPFrag, Nonce: nonces[1], FragSize: 1 << 20}}, "out of range"},
		{"too many fragments in one probe", []ReverseProbe{{ID: ESPFrag, Nonce: nonces[1], Size: 60000, FragSize: 100}}, "at most 64 per probe"},
		{"too many packets in one request", many, "at most 512 per request"},
		{"repeated ip_id", []ReverseProbe{{ID: ESPFrag, Nonce: nonces[0], IPID: 7}, {ID: AH, Nonce: nonces[1], IPID: 7}, {ID: ESP, Nonce: nonces[2], IPID: 7}}, "ip_id 7 is also probe 0's"},
	} {
		_, err := c.SendReverse(ctx, tc.probes, 0)
		var ae *AgentError
		if !errors.As(err, &ae) || ae.Code != codeInvalid || !strings.Contains(ae.Msg, tc.want) {
			t.Errorf("%s: %v, want an invalid-request error saying %q", tc.name, err, tc.want)
		}
		if errors.Is(err, ErrAgentBusy) || errors.Is(err, ErrAgentRejected) {
			t.Errorf("%s: %v reads as busy or bad key", tc.name, err)
		}
	}
	if n := len(fx.snd.sends); n != 0 {
		t.Fatalf("refused requests sent %d probes: %q", n, fx.snd.sends)
	}
	res, err := c.SendReverse(ctx, []ReverseProbe{{ID: AH, Nonce: nonces[0]}, {ID: AH, Nonce: nonces[1]}, {ID: AH, Nonce: nonces[2], IPID: 4242}, {ID: ESPFrag, Nonce: nonces[3], FragSize: MinReverseFragSize}}, 1000)
	if err != nil {
		t.Fatal(err)
	}
	if res[0].IPID != uint16(nonces[0]) || res[2].IPID != 4242 {
		t.Errorf("results report IP IDs %d and %d, want the nonce's %d and the asked-for 4242", res[0].IPID, res[2].IPID, uint16(nonces[0]))
	}
	for _, r := range res {
		if r.Error != "" {
			t.Fatalf("a valid request: %+v", res)
		}
	}
	// Pace: 50/s even though the client asked for 1000/s: 4 sends need ≥ 3 intervals.
	if n := len(fx.snd.at); n != 4 {
		t.Fatalf("%d sends, want 4", n)
	}
	if d := fx.snd.at[2].Sub(fx.snd.at[0]); d < 35*time.Millisecond {
		t.Fatalf("3 packets in %v at pace 50/s", d)
	}
}

// TestAgentFlood throws junk connections and random bytes at the control port, and holds
// more idle connections than the cap: memory and goroutines stay bounded and a good
// client is served during and after the flood.
func TestAgentFlood(t *testing.T) {
	fx := startAgent(t, func(c *ResponderConfig) {
		c.MaxConns = 16
		c.HandshakeTimeout = 500 * time.Millisecond
	})
	settle := func() (runtime.MemStats, int) {
		runtime.GC()
		runtime.GC()
		var m runtime.MemStats
		runtime.ReadMemStats(&m)
		return m, runtime.NumGoroutine()
	}
	before, g0 := settle()

	// Hold 3× the cap of idle connections that never send a byte.
	var idle []net.Conn
	for range 48 {
		c, err := net.Dial("tcp", fx.addr)
		if err != nil {
			t.Fatal(err)
		}
		idle = append(idle, c)
	}
	// A good client gets through while they are held: it evicts an unauthenticated one.
	good := dial(t, fx.addr, testKey)
	if _, err := good.Hello(context.Background()); err != nil {
		t.Fatalf("good client during idle flood: %v", err)
	}

	// Junk: random bytes, random lengths, maximal announced lengths with partial bodies.
	deadline := time.Now().Add(3 * time.Second)
	var wg sync.WaitGroup
	var sent, conns int64
	var mu sync.Mutex
	for w := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			buf := make([]byte, 70000)
			for i := 0; time.Now().Before(deadline) && i < 200; i++ {
				c, err := net.DialTimeout("tcp", fx.addr, time.Second)
				if err != nil {
					continue
				}
				rand.Read(buf)
				var n int
				switch (w + i) % 3 {
				case 0: // random bytes, random length
					n = 1 + int(buf[0])<<8 | int(buf[1])
				case 1: // a valid-looking maximal length and part of a body
					binary.BigEndian.PutUint32(buf, MaxFrameSize-frameLenSize)
					n = 4 + 30000
				case 2: // a small frame with a random MAC
					binary.BigEndian.PutUint32(buf, frameMinLen+10)
					buf[4] = ControlVersion
					n = 4 + frameMinLen + 10
				}
				c.SetWriteDeadline(time.Now().Add(time.Second))
				k, _ := c.Write(buf[:n])
				c.Close()
				mu.Lock()
				sent += int64(k)
				conns++
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	for _, c := range idle {
		c.Close()
	}
	t.Logf("flood: %d connections, %d bytes of junk, plus 48 idle connections", conns, sent)

	// Still serving during/after: the good session and a new one.
	if _, err := good.Hello(context.Background()); err != nil {
		t.Fatalf("good session after flood: %v", err)
	}
	c2 := dial(t, fx.addr, testKey)
	if _, err := c2.Hello(context.Background()); err != nil {
		t.Fatalf("new client after flood: %v", err)
	}
	good.Close()
	c2.Close()

	// Goroutines return to the baseline; heap stays near where it was.
	var after runtime.MemStats
	var g1 int
	waitFor(t, "goroutines back to baseline", func() bool {
		after, g1 = settle()
		return g1 <= g0+1
	})
	grow := int64(after.HeapInuse) - int64(before.HeapInuse)
	t.Logf("heap in use before %d KiB, after %d KiB (%+d KiB); goroutines %d → %d; total alloc during flood %d MiB",
		before.HeapInuse>>10, after.HeapInuse>>10, grow>>10, g0, g1, (after.TotalAlloc-before.TotalAlloc)>>20)
	if grow > 4<<20 {
		t.Fatalf("heap grew by %d KiB after the flood", grow>>10)
	}
}

func waitFor(t testing.TB, what string, ok func() bool) {
	t.Helper()
	for end := time.Now().Add(10 * time.Second); time.Now().Before(end); time.Sleep(20 * time.Millisecond) {
		if ok() {
			return
		}
	}
	t.Fatalf("timed out waiting for %s", what)
}

// FuzzAgentRequest sends authenticated requests with arbitrary type and body through a
// session: the agent must answer every request type with a well-formed reply or an error
// reply, never panic, and never touch an address other than the peer's.
func FuzzAgentRequest(f *testing.F) {
	f.Add(byte(msgHello), []byte(`{}`))
	f.Add(byte(msgStartObserving), []byte(``))
	f.Add(byte(msgReport), []byte(`{"after":0,"max":5}`))
	f.Add(byte(msgReport), []byte(`{"after":18446744073709551615,"max":-1}`))
	f.Add(byte(msgSendReverse), []byte(`{"probes":[{"id":"esp","nonce":1,"size":100},{"id":"tcp:445"}],"pace":3}`))
	f.Add(byte(msgSendReverse), []byte(`{"probes":[{"id":"ike-frag","size":-5,"frag_size":99999999}]}`))
	f.Add(byte(msgStop), []byte(`null`))
	f.Add(byte(msgAnnounce), []byte(`{"ip_ids":[1,2,65535,1]}`))
	f.Add(byte(msgAnnounce), []byte(`{"ip_ids":[-1,70000]}`))
	f.Add(byte(msgSendReverse), []byte(`{"probes":[{"id":"esp-frag","nonce":305419896,"size":3000,"frag_size":28}]}`))
	peer := netip.MustParseAddrPort("192.0.2.1:40000")
	f.Fuzz(func(t *testing.T, typ byte, body []byte) {
		capt := &fakeCapture{packets: func(p netip.Addr) []Seen {
			return []Seen{{Src: p, Proto: 50, Head: make([]byte, 200)}, {Src: p, Proto: 6, Head: []byte{1}}}
		}}
		snd := &fakeSender{}
		r, err := NewResponder(ResponderConfig{Key: testKey, Capture: capt, Sender: snd, Pace: 1 << 20})
		if err != nil {
			t.Fatal(err)
		}
		s := &session{r: r, peer: peer, local: netip.MustParseAddrPort("192.0.2.2:7500")}
		defer s.close()
		for _, typ := range []msgType{msgStartObserving, msgType(typ)} {
			if len(body) > maxBodySize || !typ.isRequest() {
				return
			}
			ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond) // bounds pacing
			rt, rb := s.handle(ctx, &frame{Type: typ, Body: body})
			cancel()
			if rt != typ|msgReplyBit && rt != msgError {
				t.Fatalf("reply type %s to %s", rt, typ)
			}
			if _, err := encodeBody(rb); err != nil {
				t.Fatalf("reply body does not encode: %v", err)
			}
		}
		for _, sent := range snd.sends {
			if !strings.Contains(sent, ">192.0.2.1 ") {
				t.Fatalf("sent somewhere else than the peer: %s", sent)
			}
		}
	})
}

func TestDialAgentAddrForms(t *testing.T) {
	addr := fakeAgent(t, func(c net.Conn) { c.Close() })
	c, err := DialAgent(context.Background(), addr, testKey)
	if err != nil {
		t.Fatal(err)
	}
	c.Close()
	// Without a port: ControlPort, with or without IPv6 brackets (nothing listens there).
	for _, a := range []string{"127.0.0.1", "[::1]", "::1"} {
		_, err := DialAgent(context.Background(), a, testKey)
		if err == nil || !strings.Contains(err.Error(), ":7500") {
			t.Errorf("DialAgent(%q): %v, want a connect error naming port 7500", a, err)
		}
	}
}

// BenchmarkFrameRoundTrip measures sealing and opening one report request.
func BenchmarkFrameRoundTrip(b *testing.B) {
	body, _ := encodeBody(reportReq{After: 12, Max: 0})
	f := frame{Type: msgReport, Nonce: newNonce(), Time: time.Now(), Body: body}
	var buf []byte
	var g frame
	b.ReportAllocs()
	for b.Loop() {
		buf, _ = appendFrame(buf[:0], testKey, &f)
		if err := decodeFrame(buf, testKey, &g); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkSessionDrain measures the agent's per-packet cost of sorting captured packets
// into probe packets and other traffic (the hot path under a flood).
func BenchmarkSessionDrain(b *testing.B) {
	peer := netip.MustParseAddrPort("198.51.100.10:40000")
	agent := netip.MustParseAddr("203.0.113.10")
	probe := buildSeen(b, ESPFrag, peer.Addr(), agent, 0x01020304)
	junk := Seen{Src: peer.Addr(), Dst: agent, Proto: 50, Head: make([]byte, HeadLen)}
	batch := make([]Seen, 0, 64)
	for len(batch) < 64 {
		batch = append(batch, junk, junk, junk, probe[0])
	}
	src := &fakeSource{f: &fakeCapture{}}
	r := &Responder{keptPeer: map[netip.Addr]int{}}
	s := &session{r: r, peer: peer, local: netip.AddrPortFrom(agent, ControlPort), src: src}
	s.announce([]uint16{0x0304})
	b.ReportAllocs()
	for b.Loop() {
		src.pending = batch
		s.drain()
		s.forgetSeenLocked()
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*len(batch)), "ns/packet")
}

// FuzzAgentReply has a fake agent holding the key answer every client request with an
// arbitrary body (and type): the client must return an error or a result, never panic,
// and never keep more than MaxSessionSeen packets.
func FuzzAgentReply(f *testing.F) {
	f.Add(uint8(0), []byte(`{"protocol":1,"version":"x","peer":"192.0.2.1:5","local":"bad","pace":-1,"capture":true}`))
	f.Add(uint8(0), []byte(`{"seen":[{"src":"192.0.2.1","head":"AAAA"}],"next":1,"more":true}`))
	f.Add(uint8(0), []byte(`{"seen":[],"next":0,"more":true}`))
	f.Add(uint8(0), []byte(`{"seen":[{}],"next":5}`))
	f.Add(uint8(0), []byte(`{"results":[{"id":"esp","packets":-4}]}`))
	f.Add(uint8(1), []byte(`{"error":"no"}`))
	f.Add(uint8(2), []byte(`[1,2,3]`))
	f.Fuzz(func(t *testing.T, mode uint8, body []byte) {
		if len(body) > maxBodySize {
			return
		}
		cc, sc := net.Pipe()
		defer cc.Close()
		go func() {
			defer sc.Close()
			g := greeting{Version: ControlVersion, Instance: newNonce(), Challenge: newNonce()}
			if _, err := sc.Write(appendGreeting(nil, &g)); err != nil {
				return
			}
			key := connKey(testKey, g.Instance, g.Challenge)
			for range 8 {
				b, err := readFrame(sc, nil)
				if err != nil {
					return
				}
				var req frame
				if decodeFrame(b, key, &req) != nil {
					return
				}
				rt := req.Type | msgReplyBit
				switch mode % 3 {
				case 1:
					rt = msgError
				case 2:
					rt = msgType(mode)
				}
				rep := frame{Type: rt, Nonce: newNonce(), Time: time.Now(), InReplyTo: req.Nonce, Body: body}
				w, _ := appendFrame(nil, key, &rep)
				if _, err := sc.Write(w); err != nil {
					return
				}
			}
		}()
		a := &AgentClient{addr: "fuzz", key: testKey, conn: cc}
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		a.Hello(ctx)
		a.StartObserving(ctx)
		if rep, err := a.Report(ctx); err == nil && len(rep.Seen) > MaxSessionSeen {
			t.Fatalf("client kept %d packets", len(rep.Seen))
		}
		if res, err := a.SendReverse(ctx, []ReverseProbe{{ID: ESP, Nonce: 1}}, 0); err == nil && len(res) != 1 {
			t.Fatalf("SendReverse returned %d results for 1 probe", len(res))
		}
		a.Stop(ctx)
	})
}

// TestAgentShutdownEndsSessions: cancelling Serve's context ends open sessions (their
// captures closed) and Serve returns at once, not after SessionIdleTimeout.
func TestAgentShutdownEndsSessions(t *testing.T) {
	fx := startAgent(t, nil)
	c := dial(t, fx.addr, testKey)
	if err := c.StartObserving(context.Background()); err != nil {
		t.Fatal(err)
	}
	idle := rawConn(t, fx.addr) // unauthenticated, idle
	_ = idle
	start := time.Now()
	fx.stop()
	if d := time.Since(start); d > 2*time.Second {
		t.Fatalf("Serve took %v to return", d)
	}
	if fx.capt.openCount() != 0 {
		t.Fatalf("%d captures still open after Serve returned", fx.capt.openCount())
	}
	found := false
	for _, l := range fx.log.get() {
		found = found || strings.Contains(l, "ended: agent shutting down")
	}
	if !found {
		t.Fatalf("no session ended by the shutdown in the log: %q", fx.log.get())
	}
	if _, err := c.Report(context.Background()); err == nil {
		t.Fatalf("Report after shutdown succeeded")
	}
}

// failingListener accepts from a real listener until fail is closed, then fails for good.
type failingListener struct {
	net.Listener
	fail chan struct{}
}

func (l *failingListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	select {
	case <-l.fail:
		if c != nil {
			c.Close()
		}
		return nil, errors.New("listener broke")
	default:
	}
	return c, err
}

// TestAgentListenerFailure: when the listener fails, Serve ends the open sessions and
// returns the error at once.
func TestAgentListenerFailure(t *testing.T) {
	r, err := NewResponder(ResponderConfig{Key: testKey, Capture: &fakeCapture{}, Sender: &fakeSender{}})
	if err != nil {
		t.Fatal(err)
	}
	inner, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer inner.Close()
	ln := &failingListener{Listener: inner, fail: make(chan struct{})}
	done := make(chan error, 1)
	go func() { done <- r.Serve(context.Background(), ln) }()
	c := dial(t, inner.Addr().String(), testKey)
	if _, err := c.Hello(context.Background()); err != nil {
		t.Fatal(err)
	}
	close(ln.fail)
	net.Dial("tcp", inner.Addr().String()) // wakes Accept, which now fails
	select {
	case err := <-done:
		if err == nil || !strings.Contains(err.Error(), "listener broke") {
			t.Fatalf("Serve: %v, want the listener's error", err)
		}
	case <-time.After(3 * time.Second):
		t.Fatalf("Serve did not return after the listener failed (waiting for open sessions?)")
	}
	if _, err := c.Hello(context.Background()); err == nil {
		t.Fatalf("session still served after Serve returned")
	}
}

// TestAgentConcurrentReports: Report from several goroutines at once neither duplicates
// nor loses packets.
func TestAgentConcurrentReports(t *testing.T) {
	fx := startAgent(t, nil)
	fx.capt.packets = func(peer netip.Addr) []Seen {
		s := make([]Seen, 700)
		for i := range s {
			s[i] = Seen{Src: peer, Proto: 50, IPID: uint16(i), Offset: 8}
		}
		return s
	}
	c := dial(t, fx.addr, testKey)
	announceUpTo(t, c, 700)
	if err := c.StartObserving(context.Background()); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "packets collected", func() bool {
		fx.capt.mu.Lock()
		defer fx.capt.mu.Unlock()
		return len(fx.capt.sources) == 1 && len(fx.capt.sources[0].pending) == 0
	})
	var wg sync.WaitGroup
	for range 4 {
		wg.Go(func() {
			rep, err := c.Report(context.Background())
			if err != nil {
				t.Error(err)
				return
			}
			for i, s := range rep.Seen {
				if s.IPID != uint16(i) {
					t.Errorf("packet %d has IP ID %d", i, s.IPID)
					return
				}
			}
		})
	}
	wg.Wait()
	rep, err := c.Report(context.Background())
	if err != nil || len(rep.Seen) != 700 {
		t.Fatalf("after concurrent reports: %d packets, %v", len(rep.Seen), err)
	}
}

// TestAgentFloodFromOneSourceSparesOthers: a flood of idle connections from one address
// keeps evicting its own pending connections; an initiator from another address that is
// slow to send its first frame (a long round trip) is not evicted and is served.
func TestAgentFloodFromOneSourceSparesOthers(t *testing.T) {
	fx := startAgent(t, func(c *ResponderConfig) {
		c.MaxConns = 8
		c.HandshakeTimeout = 3 * time.Second
	})
	stop := make(chan struct{})
	var wg sync.WaitGroup
	var mu sync.Mutex
	var held []net.Conn
	wg.Go(func() {
		d := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1)}}
		for {
			select {
			case <-stop:
				return
			default:
			}
			c, err := d.Dial("tcp", fx.addr)
			if err != nil {
				continue
			}
			mu.Lock()
			held = append(held, c)
			mu.Unlock()
			time.Sleep(time.Millisecond)
		}
	})
	defer func() {
		close(stop)
		wg.Wait()
		for _, c := range held {
			c.Close()
		}
	}()
	time.Sleep(100 * time.Millisecond) // the flood fills the table
	d := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.IPv4(127, 0, 0, 2)}}
	c, err := d.Dial("tcp", fx.addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	rs := greet(t, c, testKey)
	time.Sleep(400 * time.Millisecond) // hundreds of flood connections arrive meanwhile
	wire, req := rs.seal(t, msgHello, "")
	rep, err := rs.exchange(t, wire)
	if err != nil || rep.InReplyTo != req.Nonce {
		t.Fatalf("slow initiator from another address during a one-source flood: %v", err)
	}
	mu.Lock()
	t.Logf("%d flood connections opened while the slow initiator waited", len(held))
	mu.Unlock()
}

// TestAgentHelloLocalDrops: the agent tells the initiator which of its own host's firewall
// rules drop probes from it (asked for the initiator's address), and says nothing without
// the check configured.
func TestAgentHelloLocalDrops(t *testing.T) {
	rule := report.FirewallRule{Table: "inet m", Chain: "min", Hook: "input", Rule: "udp dport 500 drop", Action: "drop", Probes: []string{"ike", "ike-frag"}, Certain: true}
	var asked []netip.Addr
	fx := startAgent(t, func(c *ResponderConfig) {
		c.LocalDrops = func(_ context.Context, from netip.Addr) []report.FirewallRule {
			asked = append(asked, from)
			return []report.FirewallRule{rule}
		}
	})
	h, err := dial(t, fx.addr, testKey).Hello(context.Background())
	if err != nil {
		t.Fatalf("Hello: %v", err)
	}
	if len(asked) != 1 || asked[0] != netip.MustParseAddr("127.0.0.1") {
		t.Errorf("LocalDrops asked for %v, want [127.0.0.1] (the TCP peer)", asked)
	}
	if len(h.LocalDrops) != 1 || h.LocalDrops[0].Rule != rule.Rule || len(h.LocalDrops[0].Probes) != 2 {
		t.Errorf("Hello.LocalDrops = %+v, want [%+v]", h.LocalDrops, rule)
	}
	plain := startAgent(t, nil)
	if h, err := dial(t, plain.addr, testKey).Hello(context.Background()); err != nil || h.LocalDrops != nil {
		t.Errorf("without LocalDrops: %+v, %v; want none", h, err)
	}
}
