package probe

import (
	"bytes"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"syscall"
	"time"

	"github.com/ipsecpath/ipsecpath/report"
)

// The far-end agent's control channel (`ipsecpath responder`, Responder, AgentClient):
// framing, authentication and replay defence.
//
// One TCP connection is one session between an initiator (`ipsecpath check`) and the agent
// (`ipsecpath responder`). The agent speaks first: a greeting, sent on accept and not
// authenticated (so it gives nobody a MAC to guess the key against offline):
//
//	offset size  field
//	     0    4  length of the rest, greetingLen-4 (36)
//	     4    1  protocol version, ControlVersion (2)
//	     5    1  type 0x00, greeting
//	     6    1  status: 0 ready; 1 busy, every connection slot holds a session; 2 busy, the
//	             initiator's address holds MaxSessionsPerPeer sessions already (the agent closes)
//	     7    1  reserved, zero
//	     8   16  instance: random, drawn when the agent starts
//	    24   16  challenge: random, drawn for this connection
//
// Then the initiator sends a request, the agent one reply, in turn. Every message, both
// ways, is one frame:
//
//	offset size  field
//	     0    4  length L of the rest of the frame (big-endian), 76 ≤ L ≤ MaxFrameSize-4
//	     4    1  protocol version, ControlVersion (2)
//	     5    1  message type: requests 0x01-0x05 and 0x10, replies request|0x80, error 0xff
//	     6    2  reserved, zero
//	     8   16  nonce: 16 random bytes, fresh for every message
//	    24    8  timestamp: sender's clock, Unix nanoseconds (signed, big-endian)
//	    32   16  in-reply-to: in a reply, the nonce of the request it answers; in a request,
//	             the challenge for the first request, then the nonce of the agent's last reply
//	    48    n  body: a JSON object, n = L - 76 (may be empty)
//	  48+n   32  HMAC-SHA256 over bytes 0 … 48+n-1 (length field included) with the
//	             connection key: HMAC-SHA256(pre-shared key, "ipsecpath control 2" ‖ instance ‖ challenge)
//
// A receiver reads the 4-byte length first and closes the connection, without reading
// further, if it is out of bounds. It then reads the frame, checks the MAC (constant time),
// the version, the type and the in-reply-to rule, and only then looks at the body. Replay
// defence: the MAC binds every frame to one connection of one agent instance (a frame
// captured elsewhere, or before the agent restarted, fails the MAC), and the in-reply-to
// chain binds each request to the reply before it (a frame replayed or reordered inside the
// connection fails the chain). No nonce cache is shared between sessions, so no initiator
// can fill one to lock the others out. The timestamp must be within ClockWindow of the
// receiver's clock. A frame that fails the MAC, version, type or chain gets no answer: the
// agent closes the connection. An authenticated request that cannot be served gets an
// authenticated error reply (type 0xff, body {"error": "…", "code": "busy"|"invalid"|"clock"}).
//
// Requests and their replies (JSON bodies; see the *Req and *Reply types below):
//
//	0x01 hello            {}                      → agent version, the initiator's address as the
//	                                                 agent sees it (NAT check), the agent's address
//	0x02 start-observing  {}                      → start capturing packets from the initiator's
//	                                                 address as seen on this connection
//	0x03 report           {"after":N,"max":M}     → probe packets captured (probe.Seen) after
//	                                                 cursor N, in pages; counts of lost and other
//	                                                 (non-probe) packets
//	0x04 send-reverse     {"probes":[…],"pace":P} → probes sent toward the initiator, per probe
//	0x05 stop             {}                      → capture stopped; the agent closes the session
//	0x10 announce         {"ip_ids":[…]}          → the IP IDs of fragmented probes the initiator
//	                                                 sends: the agent keeps non-first fragments
//	                                                 only with these IDs
//
// No request names an address: the agent captures from, and sends to, only the address the
// authenticated TCP connection comes from.
//
// Limits (agent.go): MaxAgentConns connections, the oldest unauthenticated one evicted
// first; MaxSessionsPerPeer sessions per initiator address; HandshakeTimeout for the first
// frame; SessionIdleTimeout between requests; MaxSessionBytes per connection;
// MaxSessionSeen packets kept per session and MaxAgentSeen in all; MaxReverseProbes and
// MaxReversePackets per send-reverse request, paced at the agent's --pace.
const (
	// ControlPort is the agent's default TCP port.
	ControlPort = 7500
	// ControlVersion is the protocol version carried in the greeting and every frame. 2:
	// the agent greets first and the MAC binds frames to one connection of one agent instance.
	ControlVersion = 2
	// MaxFrameSize bounds a frame, length field included: larger frames are refused unread.
	MaxFrameSize = 64 << 10
	// ClockWindow is how far a request's timestamp may be from the agent's clock, either
	// way (and a reply's from the initiator's): initiator and agent clocks must agree within it.
	ClockWindow = 30 * time.Second
	// MinKeySize is the shortest pre-shared key accepted.
	MinKeySize = 16
	// maxKeyFileSize bounds how much of a key file is read.
	maxKeyFileSize = 4096

	frameLenSize    = 4
	frameHeaderSize = 48 // length, version, type, reserved, nonce, timestamp, in-reply-to
	frameMACSize    = sha256.Size
	frameMinLen     = frameHeaderSize - frameLenSize + frameMACSize // smallest L: empty body
	frameMaxLen     = MaxFrameSize - frameLenSize                   // largest L
	maxBodySize     = MaxFrameSize - frameHeaderSize - frameMACSize
	nonceSize       = 16

	// greetingLen is the size of the agent's greeting, length field included.
	greetingLen = 40
	// greetingType is the greeting's type byte.
	greetingType = 0x00
	// connKeyLabel starts the input of the connection key's HMAC.
	connKeyLabel = "ipsecpath control 2"
)

// Greeting status bytes.
const (
	greetReady    = 0
	greetBusy     = 1 // every connection slot holds an authenticated session
	greetBusyPeer = 2 // the initiator's address holds MaxSessionsPerPeer sessions
)

// Error reply codes (errorReply.Code).
const (
	codeBusy    = "busy"    // a quota is full: try again later; the key was right
	codeInvalid = "invalid" // the request is refused as it stands (sizes, counts)
	codeClock   = "clock"   // the request's timestamp is outside ClockWindow
)

// msgType is a control message type (the byte at offset 5).
type msgType uint8

const (
	msgHello          msgType = 0x01
	msgStartObserving msgType = 0x02
	msgReport         msgType = 0x03
	msgSendReverse    msgType = 0x04
	msgStop           msgType = 0x05
	msgAnnounce       msgType = 0x10
	msgReplyBit       msgType = 0x80
	msgError          msgType = 0xff
)

func (t msgType) isRequest() bool { return t >= msgHello && t <= msgStop || t == msgAnnounce }

func (t msgType) String() string {
	switch t &^ msgReplyBit {
	case msgHello:
		return "hello"
	case msgStartObserving:
		return "start-observing"
	case msgReport:
		return "report"
	case msgSendReverse:
		return "send-reverse"
	case msgStop:
		return "stop"
	case msgAnnounce:
		return "announce"
	}
	if t == msgError {
		return "error"
	}
	return fmt.Sprintf("type-0x%02x", uint8(t))
}

// Errors of the control channel. Frames that fail these checks are never answered.
var (
	ErrFrameSize    = errors.New("control frame length out of bounds")
	ErrFrameMAC     = errors.New("control frame authentication failed")
	ErrFrameVersion = errors.New("control frame has an unknown protocol version")
	ErrFrameType    = errors.New("control frame has an unexpected message type")
	ErrFrameStale   = errors.New("control frame timestamp outside the clock window")
	ErrFrameReplay  = errors.New("control request not chained to the agent's last message (replayed, reordered, or from another connection)")
	ErrFrameReply   = errors.New("control reply does not answer the request sent")
)

// frame is one decoded control message. Body slices into the buffer it was decoded from.
type frame struct {
	Type      msgType
	Nonce     [nonceSize]byte
	Time      time.Time
	InReplyTo [nonceSize]byte
	Body      []byte
}

// appendFrame appends the wire form of f, MAC included, to dst. Body must be at most
// maxBodySize bytes.
func appendFrame(dst []byte, key []byte, f *frame) ([]byte, error) {
	if len(f.Body) > maxBodySize {
		return dst, fmt.Errorf("control: %s body of %d bytes exceeds %d: %w", f.Type, len(f.Body), maxBodySize, ErrFrameSize)
	}
	start := len(dst)
	l := frameMinLen + len(f.Body)
	dst = binary.BigEndian.AppendUint32(dst, uint32(l))
	dst = append(dst, ControlVersion, byte(f.Type), 0, 0)
	dst = append(dst, f.Nonce[:]...)
	dst = binary.BigEndian.AppendUint64(dst, uint64(f.Time.UnixNano()))
	dst = append(dst, f.InReplyTo[:]...)
	dst = append(dst, f.Body...)
	m := hmac.New(sha256.New, key)
	m.Write(dst[start:])
	return m.Sum(dst), nil
}

// decodeFrame decodes and authenticates one whole frame b (length field included). It
// checks, in order: the length against len(b) and the bounds, the MAC, the version and
// the reserved bytes. It does not check the type or the timestamp (the caller knows what
// it expects). On success f.Body slices into b.
func decodeFrame(b []byte, key []byte, f *frame) error {
	*f = frame{}
	if len(b) < frameLenSize {
		return ErrFrameSize
	}
	l := binary.BigEndian.Uint32(b)
	if l < frameMinLen || l > frameMaxLen || int(l) != len(b)-frameLenSize {
		return ErrFrameSize
	}
	macAt := len(b) - frameMACSize
	m := hmac.New(sha256.New, key)
	m.Write(b[:macAt])
	var sum [frameMACSize]byte
	if !hmac.Equal(m.Sum(sum[:0]), b[macAt:]) {
		return ErrFrameMAC
	}
	if b[4] != ControlVersion || b[6] != 0 || b[7] != 0 {
		return ErrFrameVersion
	}
	f.Type = msgType(b[5])
	copy(f.Nonce[:], b[8:24])
	f.Time = time.Unix(0, int64(binary.BigEndian.Uint64(b[24:32])))
	copy(f.InReplyTo[:], b[32:48])
	f.Body = b[frameHeaderSize:macAt]
	return nil
}

// readFrame reads one frame from r into buf (grown as needed, never beyond MaxFrameSize)
// and returns the frame's bytes. An out-of-bounds length is refused before anything
// after the length field is read.
func readFrame(r io.Reader, buf []byte) ([]byte, error) {
	var lb [frameLenSize]byte
	if _, err := io.ReadFull(r, lb[:]); err != nil {
		return nil, err
	}
	l := binary.BigEndian.Uint32(lb[:])
	if l < frameMinLen || l > frameMaxLen {
		return nil, fmt.Errorf("control: frame of %d bytes (allowed %d-%d): %w", l, frameMinLen, frameMaxLen, ErrFrameSize)
	}
	n := frameLenSize + int(l)
	if cap(buf) < n {
		buf = make([]byte, n)
	}
	buf = buf[:n]
	copy(buf, lb[:])
	if _, err := io.ReadFull(r, buf[frameLenSize:]); err != nil {
		if errors.Is(err, io.EOF) {
			err = io.ErrUnexpectedEOF
		}
		return nil, err
	}
	return buf, nil
}

// newNonce returns 16 fresh random bytes.
func newNonce() [nonceSize]byte {
	var n [nonceSize]byte
	rand.Read(n[:]) // crypto/rand.Read never fails (it aborts the program instead)
	return n
}

// checkClock reports ErrFrameStale when t is more than ClockWindow away from now.
func checkClock(t, now time.Time) error {
	d := now.Sub(t)
	if d > ClockWindow || d < -ClockWindow {
		return fmt.Errorf("control: timestamp %s is %s off the local clock (window ±%s): %w",
			t.UTC().Format(time.RFC3339), d.Round(time.Second), ClockWindow, ErrFrameStale)
	}
	return nil
}

// greeting is the agent's first message on a connection (see the package comment above).
type greeting struct {
	Version   uint8
	Status    uint8
	Instance  [nonceSize]byte
	Challenge [nonceSize]byte
}

// appendGreeting appends the wire form of g to dst.
func appendGreeting(dst []byte, g *greeting) []byte {
	dst = binary.BigEndian.AppendUint32(dst, greetingLen-frameLenSize)
	dst = append(dst, g.Version, greetingType, g.Status, 0)
	dst = append(dst, g.Instance[:]...)
	return append(dst, g.Challenge[:]...)
}

// readGreeting reads the agent's greeting. It returns ErrAgentProtocol when what arrives is
// not a greeting of this protocol version, and io.EOF when the agent closed first.
func readGreeting(r io.Reader, g *greeting) error {
	var b [greetingLen]byte
	if n, err := io.ReadFull(r, b[:frameLenSize+2]); err != nil {
		if n > 0 && errors.Is(err, io.ErrUnexpectedEOF) {
			return fmt.Errorf("%w: the agent sent %d bytes that are not a greeting and closed the connection", ErrAgentProtocol, n)
		}
		return err
	}
	if b[4] != ControlVersion {
		return fmt.Errorf("%w: the agent speaks control protocol %d, this ipsecpath speaks %d: run the same ipsecpath release on both ends", ErrAgentProtocol, b[4], ControlVersion)
	}
	if binary.BigEndian.Uint32(b[:4]) != greetingLen-frameLenSize || b[5] != greetingType {
		return fmt.Errorf("%w: the agent's first message is not a greeting", ErrAgentProtocol)
	}
	if _, err := io.ReadFull(r, b[frameLenSize+2:]); err != nil {
		if errors.Is(err, io.EOF) {
			err = io.ErrUnexpectedEOF
		}
		return err
	}
	if b[7] != 0 {
		return fmt.Errorf("%w: the agent's greeting has a reserved byte set", ErrAgentProtocol)
	}
	*g = greeting{Version: b[4], Status: b[6]}
	copy(g.Instance[:], b[8:24])
	copy(g.Challenge[:], b[24:40])
	return nil
}

// connKey derives the key that authenticates one connection's frames from the pre-shared
// key, the agent's instance and the connection's challenge.
func connKey(key []byte, instance, challenge [nonceSize]byte) []byte {
	m := hmac.New(sha256.New, key)
	m.Write([]byte(connKeyLabel))
	m.Write(instance[:])
	m.Write(challenge[:])
	return m.Sum(nil)
}

// Bodies of the control messages (JSON inside the authenticated frame).

// helloReply answers hello.
type helloReply struct {
	Protocol int    `json:"protocol"` // ControlVersion
	Version  string `json:"version"`  // the agent's ipsecpath version
	Peer     string `json:"peer"`     // the initiator's address:port as the agent sees it
	Local    string `json:"local"`    // the agent's address:port this connection reached
	Pace     int    `json:"pace"`     // reverse probes: the agent's packets per second
	Capture  bool   `json:"capture"`  // the agent can capture (start-observing works)
	Sender   bool   `json:"sender"`   // the agent can send reverse probes
	Clock    int64  `json:"clock_ns"` // the agent's clock when it answered (Unix ns)
	Session  string `json:"session"`  // short session id the agent logs
	// LocalDrops are the agent host's own firewall rules that drop probes arriving from
	// the initiator (after the agent's capture saw them); absent from older agents.
	LocalDrops []report.FirewallRule `json:"local_drops,omitempty"`
}

// observeReply answers start-observing.
type observeReply struct {
	Peer    string    `json:"peer"`    // the address captured from
	Started time.Time `json:"started"` // when the capture started (agent clock)
}

// reportReq asks for captured packets after a cursor.
type reportReq struct {
	After uint64 `json:"after"` // number of packets already fetched
	Max   int    `json:"max"`   // at most this many in the reply (0: as many as fit)
}

// reportReply carries captured packets [After, Next).
type reportReply struct {
	Seen      []Seen `json:"seen"`
	Next      uint64 `json:"next"`      // cursor for the next request
	More      bool   `json:"more"`      // more packets are waiting after Next
	Lost      int    `json:"lost"`      // packets captured but not kept: the agent's buffer was full
	Other     int    `json:"other"`     // packets from the initiator that belong to no probe (not kept)
	Observing bool   `json:"observing"` // the capture is running
}

// sendReverseReq asks the agent to send probes toward the initiator.
type sendReverseReq struct {
	Probes []ReverseProbe `json:"probes"`
	Pace   int            `json:"pace,omitempty"` // packets per second; the agent's --pace caps it
}

// sendReverseReply says what was sent.
type sendReverseReply struct {
	Results []ReverseResult `json:"results"`
}

// announceReq tells the agent the IP IDs of fragmented probes the initiator sends.
type announceReq struct {
	IPIDs []uint16 `json:"ip_ids"`
}

// announceReply answers announce.
type announceReply struct {
	Announced int `json:"announced"` // IP IDs this session has announced in all
}

// errorReply is the body of an error reply.
type errorReply struct {
	Error string `json:"error"`
	Code  string `json:"code,omitempty"` // codeBusy, codeInvalid, codeClock; empty: other
}

// encodeBody marshals v as a frame body, bounded by maxBodySize.
func encodeBody(v any) ([]byte, error) {
	if v == nil {
		return nil, nil
	}
	b, err := json.Marshal(v)
	if err != nil {
		return nil, fmt.Errorf("control: encode body: %w", err)
	}
	if len(b) > maxBodySize {
		return nil, fmt.Errorf("control: body of %d bytes exceeds %d: %w", len(b), maxBodySize, ErrFrameSize)
	}
	return b, nil
}

// decodeBody unmarshals an authenticated body into v; an empty body leaves v as is.
func decodeBody(b []byte, v any) error {
	if len(bytes.TrimSpace(b)) == 0 || v == nil {
		return nil
	}
	if err := json.Unmarshal(b, v); err != nil {
		return fmt.Errorf("control: decode body: %w", err)
	}
	return nil
}

// LoadKey reads the agent's pre-shared key from path. The key is the file's bytes, one
// trailing newline removed (so `echo`-made keys work the same on both ends). It refuses a
// symbolic link (the last path element is not followed), anything but a regular file (a
// named pipe or device is opened without blocking and refused, never read), a file owned
// by anyone but the running user or root, one readable or writable by group or others
// (chmod 600), one larger than 4096 bytes, and a key shorter than MinKeySize bytes. Make
// one with:
//
//	head -c 32 /dev/urandom > key && chmod 600 key
func LoadKey(path string) ([]byte, error) {
	// O_NONBLOCK: open(2) of a FIFO without a writer would wait forever, deaf to signals.
	f, err := os.OpenFile(path, os.O_RDONLY|syscall.O_NONBLOCK|syscall.O_NOFOLLOW|syscall.O_NOCTTY, 0)
	if errors.Is(err, syscall.ELOOP) {
		if fi, lerr := os.Lstat(path); lerr == nil && fi.Mode()&os.ModeSymlink != 0 {
			return nil, fmt.Errorf("key file %s is a symbolic link: give the file itself", path)
		}
	}
	if err != nil {
		return nil, fmt.Errorf("key file: %w", err)
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return nil, fmt.Errorf("key file: %w", err)
	}
	if !st.Mode().IsRegular() {
		return nil, fmt.Errorf("key file %s is not a regular file (%s)", path, fileKind(st.Mode()))
	}
	if sys, ok := st.Sys().(*syscall.Stat_t); ok {
		if me := uint32(os.Geteuid()); sys.Uid != me && sys.Uid != 0 {
			return nil, fmt.Errorf("key file %s is owned by uid %d, not by this user (uid %d) or root: its owner can change the key (chown it to this user)", path, sys.Uid, me)
		}
	}
	if perm := st.Mode().Perm(); perm&0o077 != 0 {
		return nil, fmt.Errorf("key file %s has mode %04o: group or others may access it (chmod 600 %s)", path, perm, path)
	}
	b, err := io.ReadAll(io.LimitReader(f, maxKeyFileSize+1))
	if err != nil {
		return nil, fmt.Errorf("key file %s: %w", path, err)
	}
	if len(b) > maxKeyFileSize {
		return nil, fmt.Errorf("key file %s is larger than %d bytes", path, maxKeyFileSize)
	}
	b = bytes.TrimSuffix(b, []byte("\n"))
	b = bytes.TrimSuffix(b, []byte("\r"))
	if len(b) < MinKeySize {
		return nil, fmt.Errorf("key file %s holds a %d-byte key, need at least %d (head -c 32 /dev/urandom > %s)", path, len(b), MinKeySize, path)
	}
	return b, nil
}

// fileKind names what a non-regular file is, for an error message.
func fileKind(m os.FileMode) string {
	switch {
	case m.IsDir():
		return "a directory"
	case m&os.ModeNamedPipe != 0:
		return "a named pipe"
	case m&os.ModeCharDevice != 0:
		return "a character device"
	case m&os.ModeDevice != 0:
		return "a block device"
	case m&os.ModeSocket != 0:
		return "a socket"
	}
	return "mode " + m.String()
}
