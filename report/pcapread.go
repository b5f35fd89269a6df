package report

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"
)

// Reading pcapng back: what `ipsecpath pcap explain` rests on. The reader takes any bytes
// (a file from a ticket may be cut short or not ours): every block length is checked
// against the fixed minimum, 4-byte alignment, MaxPcapBlock and what is left; every option
// against its block; every packet's captured length against its block. It reads the
// blocks Pcap writes (section header, interface description, enhanced packet) in either
// byte order, and skips the others.

// Reader limits.
const (
	// MaxPcapBlock bounds one block: a MaxPcapPacket packet with its longest comment.
	MaxPcapBlock = MaxPcapPacket + MaxPcapComment + 1024
	// MaxPcapRecords bounds the records ReadPcap returns; a check writes a few hundred.
	MaxPcapRecords = 1 << 20
	// MaxPcapInterfaces bounds the interfaces of one file.
	MaxPcapInterfaces = 256
)

// ErrNotPcapng means the bytes do not start with a pcapng section header.
var ErrNotPcapng = errors.New("not a pcapng file")

// ErrPcapMalformed means a block, an option or a packet does not fit where it is.
var ErrPcapMalformed = errors.New("malformed pcapng")

// PcapInterface is one capture point of a pcapng file.
type PcapInterface struct {
	Name     string
	LinkType int
	SnapLen  int
	TSResol  time.Duration // one timestamp unit (default a microsecond)
}

// PcapRecord is one packet of a pcapng file.
type PcapRecord struct {
	Interface int // index into PcapFile.Interfaces
	At        time.Time
	Data      []byte // the captured bytes
	WireLen   int    // the packet's length on the wire (the record's original length)
	Comment   string
}

// PcapFile is what ReadPcap found.
type PcapFile struct {
	Comments   []string // the section header's comments
	Interfaces []PcapInterface
	Records    []PcapRecord
}

// ReadPcap reads a pcapng stream (one or more sections). Interfaces of later sections are
// appended after those of earlier ones.
func ReadPcap(r io.Reader) (*PcapFile, error) {
	f := &PcapFile{}
	var bo binary.ByteOrder
	base := 0 // first interface of the current section
	var hdr [8]byte
	for first := true; ; first = false {
		if _, err := io.ReadFull(r, hdr[:]); err != nil {
			if err == io.EOF && !first {
				return f, nil
			}
			if first {
				return nil, fmt.Errorf("report: read pcapng: %w", ErrNotPcapng)
			}
			return nil, fmt.Errorf("report: read pcapng: block header cut short: %w", ErrPcapMalformed)
		}
		typ := binary.LittleEndian.Uint32(hdr[:4])
		if typ == ngBlockSHB {
			// The byte order comes from the magic after the length.
			var magic [4]byte
			if _, err := io.ReadFull(r, magic[:]); err != nil {
				return nil, fmt.Errorf("report: read pcapng: section header cut short: %w", ErrPcapMalformed)
			}
			switch {
			case binary.LittleEndian.Uint32(magic[:]) == ngByteOrderMagic:
				bo = binary.LittleEndian
			case binary.BigEndian.Uint32(magic[:]) == ngByteOrderMagic:
				bo = binary.BigEndian
			default:
				if first {
					return nil, fmt.Errorf("report: read pcapng: %w", ErrNotPcapng)
				}
				return nil, fmt.Errorf("report: read pcapng: section header with a bad byte-order magic: %w", ErrPcapMalformed)
			}
			total, err := blockLen(bo.Uint32(hdr[4:8]), 28)
			if err != nil {
				return nil, err
			}
			body := make([]byte, total-8)
			copy(body, magic[:])
			if _, err := io.ReadFull(r, body[4:]); err != nil {
				return nil, fmt.Errorf("report: read pcapng: section header cut short: %w", ErrPcapMalformed)
			}
			if err := checkTrailer(bo, body, total); err != nil {
				return nil, err
			}
			base = len(f.Interfaces)
			err = walkOpts(bo, body[16:len(body)-4], func(code uint16, v []byte) {
				if code == ngOptComment {
					f.Comments = append(f.Comments, string(v))
				}
			})
			if err != nil {
				return nil, err
			}
			continue
		}
		if first {
			return nil, fmt.Errorf("report: read pcapng: %w", ErrNotPcapng)
		}
		typ = bo.Uint32(hdr[:4])
		total, err := blockLen(bo.Uint32(hdr[4:8]), 12)
		if err != nil {
			return nil, err
		}
		body := make([]byte, total-8)
		if _, err := io.ReadFull(r, body); err != nil {
			return nil, fmt.Errorf("report: read pcapng: block of %d bytes cut short: %w", total, ErrPcapMalformed)
		}
		if err := checkTrailer(bo, body, total); err != nil {
			return nil, err
		}
		body = body[:len(body)-4]
		switch typ {
		case ngBlockIDB:
			if len(body) < 8 {
				return nil, fmt.Errorf("report: read pcapng: interface block of %d bytes: %w", total, ErrPcapMalformed)
			}
			if len(f.Interfaces) >= MaxPcapInterfaces {
				return nil, fmt.Errorf("report: read pcapng: more than %d interfaces: %w", MaxPcapInterfaces, ErrPcapMalformed)
			}
			in := PcapInterface{LinkType: int(bo.Uint16(body[0:2])), SnapLen: int(bo.Uint32(body[4:8])), TSResol: time.Microsecond}
			err := walkOpts(bo, body[8:], func(code uint16, v []byte) {
				switch code {
				case ngIfName:
					in.Name = string(v)
				case ngIfTsresol:
					if len(v) >= 1 {
						in.TSResol = tsResol(v[0])
					}
				}
			})
			if err != nil {
				return nil, err
			}
			f.Interfaces = append(f.Interfaces, in)
		case ngBlockEPB:
			if len(body) < 20 {
				return nil, fmt.Errorf("report: read pcapng: packet block of %d bytes: %w", total, ErrPcapMalformed)
			}
			iface := base + int(bo.Uint32(body[0:4]))
			if bo.Uint32(body[0:4]) >= MaxPcapInterfaces || iface >= len(f.Interfaces) {
				return nil, fmt.Errorf("report: read pcapng: packet on undeclared interface %d: %w", bo.Uint32(body[0:4]), ErrPcapMalformed)
			}
			ts := uint64(bo.Uint32(body[4:8]))<<32 | uint64(bo.Uint32(body[8:12]))
			caplen, wire := bo.Uint32(body[12:16]), bo.Uint32(body[16:20])
			if uint64(caplen) > uint64(len(body)-20) {
				return nil, fmt.Errorf("report: read pcapng: packet of %d captured bytes in a block of %d: %w", caplen, total, ErrPcapMalformed)
			}
			if wire < caplen || wire > MaxPcapPacket {
				return nil, fmt.Errorf("report: read pcapng: original length %d with %d captured: %w", wire, caplen, ErrPcapMalformed)
			}
			if len(f.Records) >= MaxPcapRecords {
				return nil, fmt.Errorf("report: read pcapng: more than %d packets", MaxPcapRecords)
			}
			padded := int(caplen) + pad4(int(caplen))
			if padded > len(body)-20 {
				return nil, fmt.Errorf("report: read pcapng: packet padding beyond its block: %w", ErrPcapMalformed)
			}
			rec := PcapRecord{Interface: iface, Data: body[20 : 20+caplen], WireLen: int(wire),
				At: stampAt(ts, f.Interfaces[iface].TSResol)}
			err := walkOpts(bo, body[20+padded:], func(code uint16, v []byte) {
				if code == ngOptComment && rec.Comment == "" {
					rec.Comment = string(v)
				}
			})
			if err != nil {
				return nil, err
			}
			f.Records = append(f.Records, rec)
		}
	}
}

// blockLen checks a block's total length: at least min, a multiple of 4, at most MaxPcapBlock.
func blockLen(total uint32, min int) (int, error) {
	if total < uint32(min) || total%4 != 0 || total > MaxPcapBlock {
		return 0, fmt.Errorf("report: read pcapng: block length %d (want %d–%d, a multiple of 4): %w", total, min, MaxPcapBlock, ErrPcapMalformed)
	}
	return int(total), nil
}

// checkTrailer checks that a block's body (after type and length) ends with its length again.
func checkTrailer(bo binary.ByteOrder, body []byte, total int) error {
	if len(body) < 4 || bo.Uint32(body[len(body)-4:]) != uint32(total) {
		return fmt.Errorf("report: read pcapng: block of %d bytes does not end with its length: %w", total, ErrPcapMalformed)
	}
	return nil
}

// walkOpts calls fn for each option of b until opt_endofopt or the end of b.
func walkOpts(bo binary.ByteOrder, b []byte, fn func(code uint16, v []byte)) error {
	for len(b) > 0 {
		if len(b) < 4 {
			return fmt.Errorf("report: read pcapng: option header cut short: %w", ErrPcapMalformed)
		}
		code, n := bo.Uint16(b[0:2]), int(bo.Uint16(b[2:4]))
		if code == ngOptEndOfOpt {
			return nil
		}
		if 4+n+pad4(n) > len(b) {
			return fmt.Errorf("report: read pcapng: option %d of %d bytes beyond its block: %w", code, n, ErrPcapMalformed)
		}
		fn(code, b[4:4+n])
		b = b[4+n+pad4(n):]
	}
	return nil
}

// tsResol decodes if_tsresol: a power of 10 (high bit clear) or of 2 (high bit set).
func tsResol(v byte) time.Duration {
	exp := int(v & 0x7f)
	if v&0x80 != 0 {
		if exp > 30 {
			return 1 // finer than a nanosecond: counted as a nanosecond
		}
		return time.Duration(max(int64(time.Second)>>exp, 1))
	}
	if exp > 9 {
		return 1
	}
	d := time.Second
	for range exp {
		d /= 10
	}
	return d
}

func stampAt(ts uint64, unit time.Duration) time.Time {
	if unit <= 0 {
		unit = 1
	}
	sec := uint64(time.Second / unit)
	if sec == 0 {
		sec = 1
	}
	return time.Unix(int64(ts/sec), int64(ts%sec)*int64(unit))
}

// Probe notes: the comment `ipsecpath check --pcap` puts on every record, key=value words
// after "ipsecpath:", e.g.
//
//	ipsecpath: probe=esp-frag dir=forward attempt=2 role=sent frag=1480+1480 mf nonce=0x1a2b3c4d
//	ipsecpath: probe=ike dir=forward attempt=1 role=arrived frag=0+328 ike=8f3e…:0000…:0 nonce=…
//
// role is sent (left the sending end), arrived (seen at the receiving end), answer (the
// target's own answer to a forward probe), icmp (an ICMP error about the probe), other (not
// tied to any probe of the run) or control (the agent's control connection).

// PcapNotePrefix starts every probe note.
const PcapNotePrefix = "ipsecpath:"

// PcapNote is a parsed probe note.
type PcapNote struct {
	Probe     string
	Direction Direction
	Attempt   int
	Role      string
	Frag      string // "offset+length", with " mf" when more fragments follow
	IKE       string // "ispi:rspi:msgid" of an IKE header, when the packet holds one
	Nonce     string
	Extra     string // anything after "--": free text
}

// String formats a note as it is written in the pcap.
func (n PcapNote) String() string {
	var b strings.Builder
	b.WriteString(PcapNotePrefix)
	kv := func(k, v string) {
		if v != "" {
			b.WriteString(" " + k + "=" + v)
		}
	}
	kv("probe", n.Probe)
	kv("dir", string(n.Direction))
	if n.Attempt > 0 {
		kv("attempt", strconv.Itoa(n.Attempt))
	}
	kv("role", n.Role)
	if n.Frag != "" {
		off, mf := strings.CutSuffix(n.Frag, " mf")
		kv("frag", off)
		if mf {
			b.WriteString(" mf")
		}
	}
	kv("ike", n.IKE)
	kv("nonce", n.Nonce)
	if n.Extra != "" {
		b.WriteString(" -- " + n.Extra)
	}
	return b.String()
}

// ParsePcapNote parses a record's comment; ok is false when it is not a probe note.
func ParsePcapNote(s string) (n PcapNote, ok bool) {
	rest, ok := strings.CutPrefix(s, PcapNotePrefix)
	if !ok {
		return PcapNote{}, false
	}
	rest, n.Extra, _ = strings.Cut(rest, " -- ")
	for _, w := range strings.Fields(rest) {
		k, v, _ := strings.Cut(w, "=")
		switch k {
		case "probe":
			n.Probe = v
		case "dir":
			n.Direction = Direction(v)
		case "attempt":
			n.Attempt, _ = strconv.Atoi(v)
		case "role":
			n.Role = v
		case "frag":
			n.Frag = v
		case "mf":
			if n.Frag != "" {
				n.Frag += " mf"
			}
		case "ike":
			n.IKE = v
		case "nonce":
			n.Nonce = v
		}
	}
	return n, n.Role != ""
}

// PcapProbe is what a pcapng file holds of one probe in one direction (Probes).
type PcapProbe struct {
	Probe     string
	Direction Direction
	Attempts  []PcapAttempt
}

// PcapAttempt is one attempt of a probe: what left one end and what reached the other.
type PcapAttempt struct {
	N       int
	Sent    []string // fragments ("offset+length", " mf" when more follow) as they left
	Arrived []string // fragments as they reached the far end (distinct)
	Where   string   // the capture point that saw them arrive
	Answers []string // the target's answers (forward), with the capture point
	ICMP    []string // ICMP errors about it, with the capture point
	IKE     []string // "ispi:rspi:msgid" of its IKE headers, sent and seen
}

// Whole reports whether every fragment sent in this attempt arrived.
func (a *PcapAttempt) Whole() bool {
	if len(a.Sent) == 0 || len(a.Arrived) < len(a.Sent) {
		return false
	}
	got := map[string]bool{}
	for _, f := range a.Arrived {
		got[f] = true
	}
	for _, f := range a.Sent {
		if !got[f] {
			return false
		}
	}
	return true
}

// Outcome sums up the attempts: "whole" (some attempt arrived whole), "part" (fragments
// arrived, never all of one attempt), "none" (nothing arrived) or "unsent" (the file holds
// no send of it).
func (p *PcapProbe) Outcome() string {
	sent, any := false, false
	for i := range p.Attempts {
		a := &p.Attempts[i]
		if a.Whole() {
			return "whole"
		}
		sent = sent || len(a.Sent) > 0
		any = any || len(a.Arrived) > 0
	}
	switch {
	case any:
		return "part"
	case sent:
		return "none"
	}
	return "unsent"
}

// Probes groups the records that carry a probe note by probe and direction, in order of
// probe id, direction and attempt, and counts the records tied to no probe.
func (f *PcapFile) Probes() (probes []PcapProbe, untied int) {
	type key struct {
		probe string
		dir   Direction
	}
	idx := map[key]int{}
	seen := map[string]bool{}
	for _, rec := range f.Records {
		n, ok := ParsePcapNote(rec.Comment)
		if !ok || n.Probe == "" || n.Role == "other" || n.Role == "control" {
			untied++
			continue
		}
		k := key{n.Probe, n.Direction}
		i, ok := idx[k]
		if !ok {
			i = len(probes)
			idx[k] = i
			probes = append(probes, PcapProbe{Probe: n.Probe, Direction: n.Direction})
		}
		p := &probes[i]
		j := -1
		for x := range p.Attempts {
			if p.Attempts[x].N == n.Attempt {
				j = x
			}
		}
		if j < 0 {
			p.Attempts = append(p.Attempts, PcapAttempt{N: n.Attempt})
			j = len(p.Attempts) - 1
		}
		a := &p.Attempts[j]
		frag := n.Frag
		if frag == "" {
			frag = "0+" + strconv.Itoa(max(rec.WireLen-20, 0))
		}
		at := f.pointName(rec.Interface)
		switch n.Role {
		case "sent":
			a.Sent = append(a.Sent, frag)
		case "arrived":
			dup := fmt.Sprintf("%s/%d/%s/%s", n.Probe, n.Attempt, n.Direction, frag)
			if !seen[dup] {
				seen[dup] = true
				a.Arrived = append(a.Arrived, frag)
				a.Where = at
			}
		case "answer":
			a.Answers = append(a.Answers, strings.TrimSpace(n.Extra+" (at the "+at+")"))
		case "icmp":
			a.ICMP = append(a.ICMP, strings.TrimSpace(n.Extra+" (at the "+at+")"))
		}
		if n.IKE != "" && !slices.Contains(a.IKE, n.IKE) {
			a.IKE = append(a.IKE, n.IKE)
		}
	}
	sort.SliceStable(probes, func(i, j int) bool {
		if probes[i].Probe != probes[j].Probe {
			return probes[i].Probe < probes[j].Probe
		}
		return probes[i].Direction < probes[j].Direction
	})
	for i := range probes {
		sort.SliceStable(probes[i].Attempts, func(a, b int) bool { return probes[i].Attempts[a].N < probes[i].Attempts[b].N })
	}
	return probes, untied
}

func (f *PcapFile) pointName(i int) string {
	if i >= 0 && i < len(f.Interfaces) && f.Interfaces[i].Name != "" {
		return f.Interfaces[i].Name
	}
	return "interface " + strconv.Itoa(i)
}

// Explain writes, per probe and direction, what left one end and what reached the other,
// from the records' notes alone: a line of outcome, then per attempt the fragments sent,
// the fragments seen at the far end, answers and ICMP errors, and the SPIs and message ID
// of its IKE headers (the way two captures are correlated by hand). It returns how many
// probe rows it wrote.
func (f *PcapFile) Explain(w io.Writer) (int, error) {
	ew := &errWriter{w: w}
	for _, c := range f.Comments {
		ew.printf("# %s\n", oneLine(c))
	}
	probes, untied := f.Probes()
	// A run without an agent has no record at the agent: arrival is then known only from
	// the target's answers, and silence does not say where the probe went.
	oneEnded := true
	for _, rec := range f.Records {
		if f.pointName(rec.Interface) == "agent" {
			oneEnded = false
			break
		}
	}
	if oneEnded && len(probes) > 0 {
		ew.printf("# no record at an agent: a one-ended run; what reached the far end is known only from its answers\n")
	}
	for i := range probes {
		p := &probes[i]
		from, to := "initiator", "agent"
		if p.Direction == Reverse {
			from, to = "agent", "initiator"
		}
		answered, refused := false, false
		for _, a := range p.Attempts {
			answered = answered || len(a.Answers) > 0
			refused = refused || len(a.ICMP) > 0
		}
		var sum string
		switch out := p.Outcome(); {
		case oneEnded && out != "unsent":
			switch {
			case answered:
				sum = "answered by the target (no agent: the answer shows it arrived)"
			case refused:
				sum = "an ICMP error came back for it"
			default:
				sum = "no answer (no agent to say whether it arrived)"
			}
		case out == "whole":
			sum = "reached the " + to + " whole"
		case out == "part":
			sum = "reached the " + to + " in part: some fragments, never all of one attempt"
		case out == "none":
			sum = "never reached the " + to
		default:
			sum = "no send of it in this file"
		}
		ew.printf("%s %s: %s (%s)\n", p.Probe, p.Direction, sum, plural(len(p.Attempts), "attempt", "attempts"))
		for _, a := range p.Attempts {
			ew.printf("  attempt %d: left the %s: %s\n", a.N, from, listOr(a.Sent, "nothing recorded"))
			switch {
			case oneEnded:
			case len(a.Arrived) == 0:
				ew.printf("    reached the %s: nothing\n", to)
			default:
				ew.printf("    reached the %s: %s (%d of %d)\n", to, strings.Join(a.Arrived, ", "), len(a.Arrived), len(a.Sent))
			}
			for _, s := range a.Answers {
				ew.printf("    answer: %s\n", s)
			}
			for _, s := range a.ICMP {
				ew.printf("    icmp error: %s\n", s)
			}
			if len(a.IKE) > 0 {
				ew.printf("    ike (initiator spi:responder spi:message id): %s\n", strings.Join(a.IKE, ", "))
			}
		}
	}
	f.explainIKE(ew)
	if untied > 0 {
		ew.printf("not tied to a probe: %s (answers to nothing of ours, the agent's control connection, the path MTU search)\n", plural(untied, "packet", "packets"))
	}
	return len(probes), ew.err
}

// explainIKE lists the IKE messages of the file by initiator SPI and message ID, the way
// two captures are matched by hand: for each, every record that holds it, in time order,
// with where it was taken and what it was (sent, arrived, answer).
func (f *PcapFile) explainIKE(ew *errWriter) {
	type sighting struct {
		at   time.Time
		what string
	}
	byMsg := map[string][]sighting{}
	var order []string
	for _, rec := range f.Records {
		n, ok := ParsePcapNote(rec.Comment)
		if !ok || n.IKE == "" {
			continue
		}
		ispi, rest, _ := strings.Cut(n.IKE, ":")
		rspi, msgid, _ := strings.Cut(rest, ":")
		key := ispi + " message " + msgid
		if _, seen := byMsg[key]; !seen {
			order = append(order, key)
		}
		what := n.Role + " at the " + f.pointName(rec.Interface)
		if n.Probe != "" {
			what += " (" + n.Probe + " " + string(n.Direction) + ", attempt " + strconv.Itoa(n.Attempt) + ")"
		}
		if strings.Trim(rspi, "0") != "" {
			what += " with responder SPI " + rspi
		}
		byMsg[key] = append(byMsg[key], sighting{rec.At, what})
	}
	if len(order) == 0 {
		return
	}
	ew.printf("IKE messages by initiator SPI and message ID:\n")
	for _, k := range order {
		ss := byMsg[k]
		sort.SliceStable(ss, func(i, j int) bool { return ss[i].at.Before(ss[j].at) })
		parts := make([]string, len(ss))
		for i, s := range ss {
			parts[i] = s.what
		}
		ew.printf("  %s: %s\n", k, strings.Join(parts, "; "))
	}
}

func listOr(s []string, empty string) string {
	if len(s) == 0 {
		return empty
	}
	return strings.Join(s, ", ") + " (" + strconv.Itoa(len(s)) + " packet" + map[bool]string{true: "", false: "s"}[len(s) == 1] + ")"
}

type errWriter struct {
	w   io.Writer
	err error
}

func (e *errWriter) printf(format string, args ...any) {
	if e.err == nil {
		_, e.err = fmt.Fprintf(e.w, format, args...)
	}
}
