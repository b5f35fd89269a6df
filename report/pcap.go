package report

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"runtime"
	"strings"
	"sync"
	"time"
	"unicode/utf8"
)

// DefaultCapturePoint names the pcapng interface of NewPcap when no capture point is given:
// the host that runs `ipsecpath check`.
const DefaultCapturePoint = "initiator"

// Limits of what Pcap records.
const (
	// MaxPcapPacket is the largest packet Pcap records, in bytes: Wireshark's own limit,
	// far above any IP packet (65535 bytes for IPv4).
	MaxPcapPacket = 262144
	// MaxPcapComment is the longest per-packet comment kept, in bytes; longer ones are cut
	// (a pcapng option's length is 16 bits).
	MaxPcapComment = 4096
	// DefaultSnapLen is how many bytes of each packet (each IP fragment) Pcap keeps unless
	// SetSnapLen says otherwise: a whole Ethernet-sized fragment, so a full IKE fragment or
	// ESP packet is in the file as it was on the wire.
	DefaultSnapLen = 1600
	// MinSnapLen is the smallest snap length: an IPv4 header with options and the first
	// bytes of what it carries (a probe's marker, an IKE header).
	MinSnapLen = 96
)

// pcapng block and option codes (draft-ietf-opsawg-pcapng). Pcap writes the blocks itself,
// little endian: gopacket's pcapgo NgWriter has no per-packet options, and importing it
// costs every ipsecpath command 20-100 ms of package initialisation (gopacket/layers).
const (
	ngBlockSHB       = 0x0A0D0D0A // Section Header Block
	ngBlockIDB       = 0x00000001 // Interface Description Block
	ngBlockEPB       = 0x00000006 // Enhanced Packet Block
	ngByteOrderMagic = 0x1A2B3C4D
	ngOptEndOfOpt    = 0      // opt_endofopt
	ngOptComment     = 1      // opt_comment, UTF-8
	ngSHBHardware    = 2      // shb_hardware
	ngSHBOS          = 3      // shb_os
	ngSHBUserAppl    = 4      // shb_userappl
	ngIfName         = 2      // if_name
	ngIfDescription  = 3      // if_description
	ngIfTsresol      = 9      // if_tsresol: one byte, 9 = nanoseconds
	ngIfOS           = 12     // if_os
	ngLinkTypeRaw    = 101    // LINKTYPE_RAW: raw IPv4 or IPv6, no link-layer header
	ngEPBFixedLength = 28 + 4 // type, length, interface, ts high, ts low, caplen, len + trailing length
)

// Pcap writes raw IP packets (IPv4 or IPv6, no link-layer header: link type RAW) to a
// pcapng stream that Wireshark and tshark read, with one pcapng interface per capture
// point ("initiator", "agent", …) and an optional comment per packet. It is safe for
// concurrent use. Flush must be called before the underlying file is closed.
type Pcap struct {
	mu     sync.Mutex
	w      *bufio.Writer
	points map[string]int // capture point → pcapng interface id
	order  []string       // capture points in interface-id order
	first  string         // the capture point WritePacket uses
	snap   int            // bytes kept of each packet (DefaultSnapLen)
	notes  []string       // section header comments (SetSectionComment)
	header bool           // the section header and interfaces are written
	buf    []byte         // scratch for commented packet blocks
	err    error          // the first write error: once set, every write returns it
	file   *OutputFile    // the output file CreatePcap started, committed by Close; nil for NewPcap
	closed bool
}

// CreatePcap starts the output file path (CreateOutput: a temporary file next to it; a
// device node, symbolic link or directory at path is refused) and a pcapng stream in it as
// NewPcap does. Close flushes the stream and renames the file into place, mode 0644.
func CreatePcap(path string, points ...string) (*Pcap, error) {
	f, err := CreateOutput(path)
	if err != nil {
		return nil, fmt.Errorf("report: create pcap: %w", err)
	}
	p, err := NewPcap(f, points...)
	if err != nil {
		f.Abort()
		return nil, err
	}
	p.file = f
	return p, nil
}

// NewPcap starts a pcapng stream on w: a section header, then one interface per capture
// point, in order. Without points it has one interface, DefaultCapturePoint. WritePacket
// records on the first capture point; WritePacketAt on any, declaring new ones as needed.
func NewPcap(w io.Writer, points ...string) (*Pcap, error) {
	if len(points) == 0 {
		points = []string{DefaultCapturePoint}
	}
	if err := checkPoint(points[0]); err != nil {
		return nil, fmt.Errorf("report: new pcap: %w", err)
	}
	p := &Pcap{w: bufio.NewWriterSize(w, 64<<10), points: map[string]int{}, first: points[0], snap: DefaultSnapLen}
	for _, name := range points {
		if _, dup := p.points[name]; dup {
			return nil, fmt.Errorf("report: new pcap: capture point %q named twice", name)
		}
		if _, err := p.point(name); err != nil {
			return nil, fmt.Errorf("report: new pcap: %w", err)
		}
	}
	return p, nil
}

// SetSnapLen sets how many bytes of each packet are kept (MinSnapLen–MaxPcapPacket; the
// default is DefaultSnapLen). A record keeps the packet's length on the wire as its
// original length whatever is cut. It must be called before the first packet is written.
func (p *Pcap) SetSnapLen(n int) error {
	if n < MinSnapLen || n > MaxPcapPacket {
		return fmt.Errorf("report: pcap: snap length %d: want %d–%d bytes", n, MinSnapLen, MaxPcapPacket)
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.header {
		return errors.New("report: pcap: snap length set after the first packet")
	}
	p.snap = n
	return nil
}

// SnapLen returns how many bytes of each packet are kept.
func (p *Pcap) SnapLen() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.snap
}

// SetSectionComment adds a comment to the section header (Wireshark: Statistics → Capture
// File Properties), e.g. how the two ends' clocks were aligned. The header is written with
// the first packet (or at Flush or Close): comments added later are refused.
func (p *Pcap) SetSectionComment(comment string) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.header {
		return errors.New("report: pcap: section comment added after the header was written")
	}
	if comment != "" {
		p.notes = append(p.notes, cutComment(comment))
	}
	return nil
}

// writeHeader writes the section header and the interfaces declared so far, once. The
// caller holds p.mu (or owns p alone).
func (p *Pcap) writeHeader() error {
	if p.header {
		return nil
	}
	var opts []byte
	for _, c := range p.notes {
		opts = appendOpt(opts, ngOptComment, c)
	}
	opts = appendOpt(opts, ngSHBHardware, runtime.GOARCH)
	opts = appendOpt(opts, ngSHBOS, runtime.GOOS)
	opts = appendOpt(opts, ngSHBUserAppl, Tool+" "+Version)
	var body []byte
	body = binary.LittleEndian.AppendUint32(body, ngByteOrderMagic)
	body = binary.LittleEndian.AppendUint16(body, 1)          // major version
	body = binary.LittleEndian.AppendUint16(body, 0)          // minor version
	body = binary.LittleEndian.AppendUint64(body, ^uint64(0)) // section length: not given
	if _, err := p.w.Write(appendBlock(nil, ngBlockSHB, body, opts)); err != nil {
		return fmt.Errorf("write section header: %w", err)
	}
	for _, name := range p.order {
		if _, err := p.w.Write(idb(name, p.snap)); err != nil {
			return fmt.Errorf("declare capture point %q: %w", name, err)
		}
	}
	p.header = true
	return nil
}

// appendOpt appends one pcapng option (code, length, value padded to 4 bytes) to b.
func appendOpt(b []byte, code uint16, value string) []byte {
	b = binary.LittleEndian.AppendUint16(b, code)
	b = binary.LittleEndian.AppendUint16(b, uint16(len(value)))
	b = append(b, value...)
	return append(b, make([]byte, pad4(len(value)))...)
}

// appendBlock appends a whole pcapng block: type, total length, body, options ended by
// opt_endofopt (when there are any), total length again.
func appendBlock(b []byte, typ uint32, body, opts []byte) []byte {
	if len(opts) > 0 {
		opts = append(opts, 0, 0, 0, 0) // opt_endofopt
	}
	total := 12 + len(body) + len(opts)
	b = binary.LittleEndian.AppendUint32(b, typ)
	b = binary.LittleEndian.AppendUint32(b, uint32(total))
	b = append(b, body...)
	b = append(b, opts...)
	return binary.LittleEndian.AppendUint32(b, uint32(total))
}

func pad4(n int) int { return (4 - n&3) & 3 }

// idb is the Interface Description Block of a capture point that keeps snap bytes of each
// packet.
func idb(name string, snap int) []byte {
	var body []byte
	body = binary.LittleEndian.AppendUint16(body, ngLinkTypeRaw)
	body = binary.LittleEndian.AppendUint16(body, 0) // reserved
	body = binary.LittleEndian.AppendUint32(body, uint32(snap))
	var opts []byte
	opts = appendOpt(opts, ngIfName, name)
	opts = appendOpt(opts, ngIfDescription, "raw IP packets as "+Tool+" sent or saw them at the "+name)
	opts = appendOpt(opts, ngIfTsresol, "\x09") // nanoseconds
	opts = appendOpt(opts, ngIfOS, runtime.GOOS)
	return appendBlock(nil, ngBlockIDB, body, opts)
}

func checkPoint(name string) error {
	if name == "" || len(name) > 64 || !utf8.ValidString(name) || strings.ContainsAny(name, "\x00\n") {
		return fmt.Errorf("bad capture point name %q (1-64 bytes of text)", name)
	}
	return nil
}

// point returns the interface id of a capture point, declaring it first if it is new.
// The caller holds p.mu (or owns p alone).
func (p *Pcap) point(name string) (int, error) {
	if id, ok := p.points[name]; ok {
		return id, nil
	}
	if err := checkPoint(name); err != nil {
		return 0, err
	}
	id := len(p.points)
	if p.header {
		if _, err := p.w.Write(idb(name, p.snap)); err != nil {
			return 0, fmt.Errorf("declare capture point %q: %w", name, err)
		}
	}
	p.points[name] = id
	p.order = append(p.order, name)
	return id, nil
}

// WritePacket records one raw IP packet at the first capture point.
func (p *Pcap) WritePacket(ts time.Time, ipPacket []byte) error {
	return p.WritePacketAt(p.first, ts, ipPacket, "")
}

// WritePacketAt records one raw IP packet, taken at time ts at capture point point, with a
// comment shown by Wireshark as the packet comment (empty: none; cut at MaxPcapComment
// bytes). ipPacket may be what a capture kept of a longer packet: the record's original
// length is the length its IP header gives (IPv4 total length, IPv6 payload length + 40)
// when that is longer, so Wireshark shows the packet as cut short by the capture, not as a
// malformed short packet. At most the snap length (SetSnapLen) is kept. The packet is
// copied out before WritePacketAt returns.
func (p *Pcap) WritePacketAt(point string, ts time.Time, ipPacket []byte, comment string) error {
	return p.WriteRecord(point, ts, ipPacket, IPWireLength(ipPacket), comment)
}

// IPWireLength is the length of the IP packet whose first bytes are b, as its header says
// (IPv4 total length, IPv6 payload length + 40), or len(b) when b holds no such header or
// the header says less.
func IPWireLength(b []byte) int {
	n := 0
	switch {
	case len(b) >= 20 && b[0]>>4 == 4:
		n = int(binary.BigEndian.Uint16(b[2:4]))
	case len(b) >= 40 && b[0]>>4 == 6:
		n = 40 + int(binary.BigEndian.Uint16(b[4:6]))
	}
	return max(n, len(b))
}

// WriteRecord records data, the first bytes of a packet that was wireLen bytes long on
// the wire, taken at time ts at capture point point, with a comment (see WritePacketAt).
// Of data at most the snap length is kept; the record's original length is wireLen (at
// least len(data)).
func (p *Pcap) WriteRecord(point string, ts time.Time, data []byte, wireLen int, comment string) error {
	if len(data) == 0 {
		return errors.New("report: pcap: empty packet")
	}
	if len(data) > MaxPcapPacket || wireLen > MaxPcapPacket {
		return fmt.Errorf("report: pcap: packet of %d bytes is over %d", max(len(data), wireLen), MaxPcapPacket)
	}
	wireLen = max(wireLen, len(data))
	p.mu.Lock()
	defer p.mu.Unlock()
	if err := p.begin(); err != nil {
		return err
	}
	id, err := p.point(point)
	if err != nil {
		return p.fail(err)
	}
	if comment != "" {
		comment = cutComment(comment)
	}
	if len(data) > p.snap {
		data = data[:p.snap]
	}
	p.buf = appendEPB(p.buf[:0], id, ts, data, wireLen, comment)
	if _, err := p.w.Write(p.buf); err != nil {
		return p.fail(fmt.Errorf("write packet: %w", err))
	}
	return nil
}

// Flush writes out what is buffered. Call it before closing the file under the writer.
func (p *Pcap) Flush() error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if err := p.begin(); err != nil {
		return err
	}
	if err := p.w.Flush(); err != nil {
		return p.fail(fmt.Errorf("flush: %w", err))
	}
	return nil
}

// Close flushes the stream and, if CreatePcap started the file, puts it in place (or, after
// a write error, removes it: path is left as it was). Writes after Close fail. Closing
// twice returns nil.
func (p *Pcap) Close() error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		return nil
	}
	p.closed = true
	err := p.err
	if err == nil {
		err = p.writeHeader()
	}
	if err == nil {
		if ferr := p.w.Flush(); ferr != nil {
			err = fmt.Errorf("report: pcap: flush: %w", ferr)
		}
	}
	if p.file != nil {
		if err != nil {
			p.file.Abort()
		} else if cerr := p.file.Commit(); cerr != nil {
			err = fmt.Errorf("report: pcap: %w", cerr)
		}
	}
	if p.err == nil {
		p.err = errors.New("report: pcap: closed")
	}
	return err
}

// begin starts a write; the caller holds p.mu. A writer that failed stays failed, and the
// section header goes out before anything else.
func (p *Pcap) begin() error {
	if p.err != nil {
		return p.err
	}
	if err := p.writeHeader(); err != nil {
		return p.fail(err)
	}
	return nil
}

// fail records the first write error: after a partial block the stream cannot continue.
func (p *Pcap) fail(err error) error {
	p.err = fmt.Errorf("report: pcap: %w", err)
	return p.err
}

// cutComment bounds a comment to MaxPcapComment bytes without splitting a UTF-8 sequence.
func cutComment(s string) string {
	s = strings.ToValidUTF8(s, "?")
	if len(s) <= MaxPcapComment {
		return s
	}
	s = s[:MaxPcapComment]
	for !utf8.ValidString(s) {
		s = s[:len(s)-1]
	}
	return s
}

// appendEPB appends an Enhanced Packet Block to b: data as captured, from a packet of
// wireLen bytes on the wire, with an opt_comment option when comment is not empty.
func appendEPB(b []byte, iface int, ts time.Time, data []byte, wireLen int, comment string) []byte {
	optLen := 0
	if comment != "" {
		optLen = 4 + len(comment) + pad4(len(comment)) + 4 // comment option, then opt_endofopt
	}
	total := ngEPBFixedLength + len(data) + pad4(len(data)) + optLen
	le := binary.LittleEndian
	nanos := uint64(ts.UnixNano())
	b = le.AppendUint32(b, ngBlockEPB)
	b = le.AppendUint32(b, uint32(total))
	b = le.AppendUint32(b, uint32(iface))
	b = le.AppendUint32(b, uint32(nanos>>32))
	b = le.AppendUint32(b, uint32(nanos))
	b = le.AppendUint32(b, uint32(len(data))) // captured length
	b = le.AppendUint32(b, uint32(wireLen))   // original length
	b = append(b, data...)
	b = append(b, make([]byte, pad4(len(data)))...)
	if comment != "" {
		b = appendOpt(b, ngOptComment, comment)
		b = le.AppendUint32(b, 0) // opt_endofopt
	}
	return le.AppendUint32(b, uint32(total))
}
