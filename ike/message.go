package ike

import (
	"encoding/binary"
	"errors"
	"fmt"
)

// Sentinel errors of the decoders; wrapped errors carry the offending offset or type.
var (
	ErrShort           = errors.New("ike: message shorter than the IKE header")
	ErrBadLength       = errors.New("ike: length field disagrees with the data")
	ErrTooLong         = errors.New("ike: message longer than MaxMessageLen")
	ErrPayloadTooShort = errors.New("ike: payload length below the generic header")
	ErrPayloadOverrun  = errors.New("ike: payload runs past the end of the message")
	ErrChainNotEnded   = errors.New("ike: next-payload chain does not end")
	ErrTooManyPayloads = errors.New("ike: more than MaxPayloads payloads")
	ErrMalformed       = errors.New("ike: malformed payload body")
	ErrNotIKE          = errors.New("ike: not an IKE message")
)

// Header is the ISAKMP/IKEv2 header. Version is the whole version byte (VersionIKEv1 or
// VersionIKEv2).
type Header struct {
	InitiatorSPI [8]byte
	ResponderSPI [8]byte
	NextPayload  PayloadType
	Version      uint8
	Exchange     ExchangeType
	Flags        uint8
	MessageID    uint32
	Length       uint32
}

// Major returns the major version: 1 or 2 for the messages this package speaks.
func (h *Header) Major() int { return int(h.Version >> 4) }

// IsResponse reports whether an IKEv2 header has the Response flag. IKEv1 has none: a Main
// Mode answer is recognised by a non-zero responder cookie.
func (h *Header) IsResponse() bool { return h.Flags&FlagResponse != 0 }

// DecodeFromBytes reads the 28-byte header. It does not check Length against data.
func (h *Header) DecodeFromBytes(data []byte) error {
	*h = Header{}
	if len(data) < HeaderLen {
		return ErrShort
	}
	copy(h.InitiatorSPI[:], data[0:8])
	copy(h.ResponderSPI[:], data[8:16])
	h.NextPayload = PayloadType(data[16])
	h.Version = data[17]
	h.Exchange = ExchangeType(data[18])
	h.Flags = data[19]
	h.MessageID = binary.BigEndian.Uint32(data[20:24])
	h.Length = binary.BigEndian.Uint32(data[24:28])
	return nil
}

// AppendMarshal appends the header as it is, Length and NextPayload included.
func (h *Header) AppendMarshal(b []byte) []byte {
	b = append(b, h.InitiatorSPI[:]...)
	b = append(b, h.ResponderSPI[:]...)
	b = append(b, byte(h.NextPayload), h.Version, byte(h.Exchange), h.Flags)
	b = binary.BigEndian.AppendUint32(b, h.MessageID)
	return binary.BigEndian.AppendUint32(b, h.Length)
}

// Payload is one payload of a decoded message: its type (from the previous next-payload
// field), the critical bit, the next-payload field it carries, and its body after the
// generic header. Body slices into the decoded data.
type Payload struct {
	Type     PayloadType
	Next     PayloadType
	Critical bool
	Body     []byte
}

// Message is a decoded IKE message. Payloads slices into a fixed array inside Message and
// every Body into the decoded data: keep the data alive and unchanged while using them.
type Message struct {
	Header
	Payloads []Payload
	// Truncated is set when the header's Length is larger than the data (the rest was
	// lost, or cut by the capture); the payloads that fit were decoded.
	Truncated bool
	buf       [MaxPayloads]Payload
}

// DecodeFromBytes decodes data as an IKE message, resetting m first. It allocates nothing.
// It checks, in order: the header fits; Length ≥ 28 and ≤ MaxMessageLen; Length vs
// len(data) (longer data is cut to Length, shorter sets Truncated); each generic payload
// header fits, its length is ≥ 4 and within what is left; the chain ends (next payload 0)
// exactly at the end, with at most MaxPayloads payloads. SK and SKF payloads end the chain
// whatever their next-payload field says (it names the first encrypted payload).
func (m *Message) DecodeFromBytes(data []byte) error {
	m.Header = Header{}
	m.Payloads = m.buf[:0]
	m.Truncated = false
	if err := m.Header.DecodeFromBytes(data); err != nil {
		return err
	}
	if v := m.Version >> 4; v != 1 && v != 2 {
		return fmt.Errorf("%w: version byte %#02x", ErrNotIKE, m.Version)
	}
	if m.Length < HeaderLen {
		return fmt.Errorf("%w: header length %d < %d", ErrBadLength, m.Length, HeaderLen)
	}
	if m.Length > MaxMessageLen {
		return fmt.Errorf("%w: header length %d", ErrTooLong, m.Length)
	}
	if int(m.Length) < len(data) {
		data = data[:m.Length]
	} else if int(m.Length) > len(data) {
		m.Truncated = true
	}
	next := m.NextPayload
	off := HeaderLen
	for next != PayloadNone {
		if len(m.Payloads) == MaxPayloads {
			return ErrTooManyPayloads
		}
		if len(data)-off < genericHeaderLen {
			if m.Truncated {
				return nil
			}
			return fmt.Errorf("%w: %s at offset %d", ErrChainNotEnded, next, off)
		}
		plen := int(binary.BigEndian.Uint16(data[off+2 : off+4]))
		if plen < genericHeaderLen {
			return fmt.Errorf("%w: %s at offset %d has length %d", ErrPayloadTooShort, next, off, plen)
		}
		if plen > len(data)-off {
			if m.Truncated {
				return nil
			}
			return fmt.Errorf("%w: %s at offset %d has length %d, %d bytes left", ErrPayloadOverrun, next, off, plen, len(data)-off)
		}
		p := Payload{Type: next, Next: PayloadType(data[off]), Critical: data[off+1]&0x80 != 0,
			Body: data[off+genericHeaderLen : off+plen : off+plen]}
		m.Payloads = append(m.Payloads, p)
		off += plen
		if next == PayloadSK || next == PayloadSKF {
			next = PayloadNone // its next field names the first encrypted payload
			break
		}
		next = p.Next
	}
	if off != len(data) && !m.Truncated {
		return fmt.Errorf("%w: %d bytes after the last payload", ErrBadLength, len(data)-off)
	}
	return nil
}

// Find returns the first payload of type t.
func (m *Message) Find(t PayloadType) (Payload, bool) {
	for _, p := range m.Payloads {
		if p.Type == t {
			return p, true
		}
	}
	return Payload{}, false
}

// Body is a payload that can be written: its type and its body after the generic header.
type Body interface {
	PayloadType() PayloadType
	AppendBody(b []byte) []byte
}

// SerializeOptions says which fields AppendMessage computes. With FixLengths false the
// header's Length and NextPayload are written as given, so a probe can lie on purpose;
// the generic payload headers are always computed (use Raw to write a wrong one).
type SerializeOptions struct {
	FixLengths bool
}

// AppendMessage appends a message with header h and the payloads in order. With
// opts.FixLengths it sets the header's NextPayload and Length; every payload's next-payload
// field names the one after it (an SKF/SK payload's names its InnerNext) and its length is
// computed. It returns an error if the message would exceed MaxMessageLen or a payload
// 65535 bytes.
func AppendMessage(b []byte, h Header, opts SerializeOptions, payloads ...Body) ([]byte, error) {
	start := len(b)
	if opts.FixLengths {
		h.NextPayload = PayloadNone
		if len(payloads) > 0 {
			h.NextPayload = payloads[0].PayloadType()
		}
	}
	b = h.AppendMarshal(b)
	for i, p := range payloads {
		next := PayloadNone
		if i+1 < len(payloads) {
			next = payloads[i+1].PayloadType()
		}
		if in, ok := p.(interface{ InnerNext() PayloadType }); ok {
			next = in.InnerNext()
		}
		if r, ok := p.(*Raw); ok {
			b = r.appendWhole(b, next)
			continue
		}
		ph := len(b)
		b = append(b, byte(next), 0, 0, 0)
		b = p.AppendBody(b)
		plen := len(b) - ph
		if plen > 0xffff {
			return b[:start], fmt.Errorf("ike: %s payload of %d bytes exceeds 65535", p.PayloadType(), plen)
		}
		binary.BigEndian.PutUint16(b[ph+2:], uint16(plen))
	}
	total := len(b) - start
	if total > MaxMessageLen {
		return b[:start], fmt.Errorf("%w: %d bytes", ErrTooLong, total)
	}
	if opts.FixLengths {
		binary.BigEndian.PutUint32(b[start+24:], uint32(total))
	}
	return b, nil
}

// Raw is a payload written byte for byte: Type for the previous payload's next field, and
// Body after a generic header whose next field is Next when NextSet (else computed) and
// whose length is Length when non-zero (else computed). It exists so probes can send what
// a careful encoder never would.
type Raw struct {
	Type     PayloadType
	Next     PayloadType
	NextSet  bool
	Critical bool
	Length   uint16
	Data     []byte
}

// PayloadType implements Body.
func (r *Raw) PayloadType() PayloadType { return r.Type }

// AppendBody implements Body: it appends Data.
func (r *Raw) AppendBody(b []byte) []byte { return append(b, r.Data...) }

func (r *Raw) appendWhole(b []byte, next PayloadType) []byte {
	if r.NextSet {
		next = r.Next
	}
	var flags byte
	if r.Critical {
		flags = 0x80
	}
	l := r.Length
	if l == 0 {
		l = uint16(genericHeaderLen + len(r.Data))
	}
	b = append(b, byte(next), flags)
	b = binary.BigEndian.AppendUint16(b, l)
	return append(b, r.Data...)
}
