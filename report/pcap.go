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
	first  string         // the capture point WritePacket uses
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
	p := &Pcap{w: bufio.NewWriterSize(w, 64<<10), points: map[string]int{}, first: points[0]}
	var opts []byte
	opts = appendOpt(opts, ngSHBHardware, runtime.GOARCH)
	opts = appendOpt(opts, ngSHBOS, runtime.GOOS)
	opts = appendOpt(opts, ngSHBUserAppl, Tool+" "+Version)
	var body []byte
	body = binary.LittleEndian.AppendUint32(body, ngByteOrderMagic)
	body = binary.LittleEndian.AppendUint16(body, 1)          // major version
	body = binary.LittleEndian.AppendUint16(body, 0)          // minor version
	body = binary.LittleEndian.AppendUint64(body, ^uint64(0)) // section length: not given
	if _, err := p.w.Write(appendBlock(nil, ngBlockSHB, body, opts)); err != nil {
		return nil, fmt.Errorf("report: new pcap: write section header: %w", err)
	}
	for _, name := range points {
		if _, dup := p.points[name]; dup {
			return nil, fmt.Errorf("report: new pcap: capture point %q named twice", name)
		}
		if _, err := p.point(name); err != nil {
			return nil, fmt.Errorf("report: new pcap: %w", err)
		}
	}
	if err := p.w.Flush(); err != nil {
		return nil, fmt.Errorf("report: new pcap: flush: %w", err)
	}
	return p, nil
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

// idb is the Interface Description Block of a capture point.
func idb(name string) []byte {
	var body []byte
	body = binary.LittleEndian.AppendUint16(body, ngLinkTypeRaw)
	body = binary.LittleEndian.AppendUint16(body, 0) // reserved
	body = binary.LittleEndian.AppendUint32(body, MaxPcapPacket)
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
	if _, err := p.w.Write(idb(name)); err != nil {
		return 0, fmt.Errorf("declare capture point %q: %w", name, err)
	}
	p.points[name] = id
	return id, nil
}

// WritePacket records one raw IP packet at the first capture point.
func (p *Pcap) WritePacket(ts time.Time, ipPacket []byte) error {
	return p.WritePacketAt(p.first, ts, ipPacket, "")
}

// WritePacketAt records one raw IP packet, taken at time ts at capture point point, with a
// comment shown by Wireshark as the packet comment (empty: none; cut at MaxPcapComment
// bytes). The packet is copied out before WritePacketAt returns.
func (p *Pcap) WritePacketAt(point string, ts time.Time, ipPacket []byte, comment string) error {
	if len(ipPacket) == 0 {
		return errors.New("report: pcap: empty packet")
	}
	if len(ipPacket) > MaxPcapPacket {
		return fmt.Errorf("report: pcap: packet of %d bytes is over %d", len(ipPacket), MaxPcapPacket)
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.err != nil {
		return p.err
	}
	id, err := p.point(point)
	if err != nil {
		return p.fail(err)
	}
	if comment != "" {
		comment = cutComment(comment)
	}
	p.buf = appendEPB(p.buf[:0], id, ts, ipPacket, comment)
	if _, err := p.w.Write(p.buf); err != nil {
		return p.fail(fmt.Errorf("write packet: %w", err))
	}
	return nil
}

// Flush writes out what is buffered. Call it before closing the file under the writer.
func (p *Pcap) Flush() error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.err != nil {
		return p.err
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

// appendEPB appends an Enhanced Packet Block to b, with an opt_comment option when comment
// is not empty.
func appendEPB(b []byte, iface int, ts time.Time, data []byte, comment string) []byte {
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
	b = le.AppendUint32(b, uint32(len(data)))
	b = le.AppendUint32(b, uint32(len(data)))
	b = append(b, data...)
	b = append(b, make([]byte, pad4(len(data)))...)
	if comment != "" {
		b = appendOpt(b, ngOptComment, comment)
		b = le.AppendUint32(b, 0) // opt_endofopt
	}
	return le.AppendUint32(b, uint32(total))
}
