package ike

import (
	"encoding/binary"
	"fmt"
)

// Limits of the SA decoders: real proposals are far smaller.
const (
	maxProposals  = 64
	maxTransforms = 255
	maxAttributes = 32
)

// Attribute is an SA attribute (RFC 2408 §3.3): a basic one (TV: Type with the AF bit,
// 16-bit Value) when Basic, else variable length (TLV: Data).
type Attribute struct {
	Type  uint16 // without the AF bit
	Basic bool
	Value uint16
	Data  []byte
}

// TV returns a basic attribute.
func TV(t, v uint16) Attribute { return Attribute{Type: t, Basic: true, Value: v} }

// Uint returns the attribute's value as a number: Value, or Data big-endian (up to 8 bytes).
func (a Attribute) Uint() uint64 {
	if a.Basic {
		return uint64(a.Value)
	}
	var v uint64
	for i, c := range a.Data {
		if i == 8 {
			break
		}
		v = v<<8 | uint64(c)
	}
	return v
}

// LifeDuration returns a Life Duration attribute: basic when it fits 16 bits, else 4 bytes.
func LifeDuration(seconds uint32) Attribute {
	if seconds <= 0xffff {
		return TV(AttrLifeDuration, uint16(seconds))
	}
	return Attribute{Type: AttrLifeDuration, Data: binary.BigEndian.AppendUint32(nil, seconds)}
}

func appendAttributes(b []byte, attrs []Attribute) []byte {
	for _, a := range attrs {
		if a.Basic {
			b = binary.BigEndian.AppendUint16(b, a.Type|0x8000)
			b = binary.BigEndian.AppendUint16(b, a.Value)
			continue
		}
		b = binary.BigEndian.AppendUint16(b, a.Type&0x7fff)
		b = binary.BigEndian.AppendUint16(b, uint16(len(a.Data)))
		b = append(b, a.Data...)
	}
	return b
}

func parseAttributes(data []byte) ([]Attribute, error) {
	var attrs []Attribute
	for len(data) > 0 {
		if len(attrs) == maxAttributes {
			return nil, fmt.Errorf("%w: more than %d attributes", ErrMalformed, maxAttributes)
		}
		if len(data) < 4 {
			return nil, fmt.Errorf("%w: attribute of %d bytes", ErrMalformed, len(data))
		}
		t := binary.BigEndian.Uint16(data)
		v := binary.BigEndian.Uint16(data[2:])
		if t&0x8000 != 0 {
			attrs = append(attrs, Attribute{Type: t & 0x7fff, Basic: true, Value: v})
			data = data[4:]
			continue
		}
		if int(v) > len(data)-4 {
			return nil, fmt.Errorf("%w: attribute %d length %d, %d bytes left", ErrMalformed, t, v, len(data)-4)
		}
		attrs = append(attrs, Attribute{Type: t, Data: data[4 : 4+int(v)]})
		data = data[4+int(v):]
	}
	return attrs, nil
}

// substructs walks proposal or transform substructures: each starts with last/next (0 or
// want), a reserved byte and a 16-bit length that includes this 4-byte header.
func substructs(data []byte, want byte, max int, fn func(body []byte) error) error {
	n := 0
	for len(data) > 0 {
		if n == max {
			return fmt.Errorf("%w: more than %d substructures", ErrMalformed, max)
		}
		if len(data) < 4 {
			return fmt.Errorf("%w: substructure of %d bytes", ErrMalformed, len(data))
		}
		l := int(binary.BigEndian.Uint16(data[2:]))
		if l < 4 || l > len(data) {
			return fmt.Errorf("%w: substructure length %d, %d bytes left", ErrMalformed, l, len(data))
		}
		last := data[0]
		if err := fn(data[4:l]); err != nil {
			return err
		}
		n++
		data = data[l:]
		if last == 0 {
			if len(data) != 0 {
				return fmt.Errorf("%w: %d bytes after the last substructure", ErrMalformed, len(data))
			}
			return nil
		}
		if last != want {
			return fmt.Errorf("%w: substructure marker %d, want 0 or %d", ErrMalformed, last, want)
		}
	}
	return fmt.Errorf("%w: substructures do not end", ErrMalformed)
}

// parseProposals reads the proposals of an SA body and their transforms, laid out alike in
// both versions (RFC 2408 §3.5-3.6, RFC 7296 §3.3.1): a proposal is its number, protocol ID,
// SPI size, transform count and SPI, then its transforms (2 marks "more proposals"); a
// transform is a 4-byte head and attributes (3 marks "more transforms"). newProposal makes a
// proposal from its head; addTransform adds a transform (tb: its body, head first) to it.
// ver ("IKEv1", "IKEv2") names the version in errors. The proposals read before an error
// are returned with it.
func parseProposals[P any](body []byte, ver string, newProposal func(num, proto byte, spi []byte) P, addTransform func(p *P, tb []byte, attrs []Attribute)) ([]P, error) {
	var ps []P
	err := substructs(body, 2, maxProposals, func(pb []byte) error {
		if len(pb) < 4 || int(pb[2]) > len(pb)-4 {
			return fmt.Errorf("%w: %s proposal of %d bytes", ErrMalformed, ver, len(pb))
		}
		p := newProposal(pb[0], pb[1], pb[4:4+int(pb[2])])
		err := substructs(pb[4+int(pb[2]):], 3, maxTransforms, func(tb []byte) error {
			if len(tb) < 4 {
				return fmt.Errorf("%w: %s transform of %d bytes", ErrMalformed, ver, len(tb))
			}
			attrs, err := parseAttributes(tb[4:])
			if err != nil {
				return err
			}
			addTransform(&p, tb, attrs)
			return nil
		})
		if err != nil {
			return err
		}
		ps = append(ps, p)
		return nil
	})
	return ps, err
}

func appendSubstruct(b []byte, last bool, more byte, body func([]byte) []byte) []byte {
	start := len(b)
	m := more
	if last {
		m = 0
	}
	b = append(b, m, 0, 0, 0)
	b = body(b)
	binary.BigEndian.PutUint16(b[start+2:], uint16(len(b)-start))
	return b
}

// TransformV1 is an IKEv1 transform: Number, ID (KEY_IKE for phase 1) and attributes.
type TransformV1 struct {
	Number     uint8
	ID         uint8
	Attributes []Attribute
}

// Attr returns the first attribute of type t.
func (t TransformV1) Attr(typ uint16) (Attribute, bool) {
	for _, a := range t.Attributes {
		if a.Type == typ {
			return a, true
		}
	}
	return Attribute{}, false
}

// String describes a phase-1 transform the way ike-scan does: "Enc=AES KeyLength=128
// Hash=SHA2-256 Group=14:modp2048 Auth=PSK LifeType=Seconds LifeDuration=28800".
func (t TransformV1) String() string {
	s := ""
	add := func(f string, args ...any) {
		if s != "" {
			s += " "
		}
		s += fmt.Sprintf(f, args...)
	}
	for _, a := range t.Attributes {
		v := a.Uint()
		switch a.Type {
		case AttrEncryption:
			add("Enc=%s", EncV1Name(uint16(v)))
		case AttrKeyLength:
			add("KeyLength=%d", v)
		case AttrHash:
			add("Hash=%s", HashV1Name(uint16(v)))
		case AttrGroup:
			if w, ok := groupWords[Group(v)]; ok {
				add("Group=%d:%s", v, w)
			} else {
				add("Group=%d:%s", v, Group(v))
			}
		case AttrAuthMethod:
			add("Auth=%s", AuthMethod(v))
		case AttrLifeType:
			if v == uint64(LifeSeconds) {
				add("LifeType=Seconds")
			} else {
				add("LifeType=KBytes")
			}
		case AttrLifeDuration:
			add("LifeDuration=%d", v)
		default:
			add("Attr%d=%d", a.Type, v)
		}
	}
	return s
}

// ProposalV1 is an IKEv1 proposal.
type ProposalV1 struct {
	Number     uint8
	ProtocolID uint8
	SPI        []byte
	Transforms []TransformV1
}

// SAv1 is an IKEv1 SA payload (DOI IPSEC, SIT_IDENTITY_ONLY for phase 1).
type SAv1 struct {
	DOI       uint32
	Situation uint32
	Proposals []ProposalV1
}

// PayloadType implements Body.
func (*SAv1) PayloadType() PayloadType { return PayloadSAv1 }

// AppendBody implements Body.
func (sa *SAv1) AppendBody(b []byte) []byte {
	b = binary.BigEndian.AppendUint32(b, sa.DOI)
	b = binary.BigEndian.AppendUint32(b, sa.Situation)
	for i, p := range sa.Proposals {
		b = appendSubstruct(b, i == len(sa.Proposals)-1, byte(PayloadProposalV1), func(b []byte) []byte {
			b = append(b, p.Number, p.ProtocolID, byte(len(p.SPI)), byte(len(p.Transforms)))
			b = append(b, p.SPI...)
			for j, t := range p.Transforms {
				b = appendSubstruct(b, j == len(p.Transforms)-1, byte(PayloadTransformV1), func(b []byte) []byte {
					b = append(b, t.Number, t.ID, 0, 0)
					return appendAttributes(b, t.Attributes)
				})
			}
			return b
		})
	}
	return b
}

// ParseSAv1 decodes the body of an IKEv1 SA payload.
func ParseSAv1(body []byte) (SAv1, error) {
	var sa SAv1
	if len(body) < 8 {
		return sa, fmt.Errorf("%w: IKEv1 SA of %d bytes", ErrMalformed, len(body))
	}
	sa.DOI = binary.BigEndian.Uint32(body)
	sa.Situation = binary.BigEndian.Uint32(body[4:])
	var err error
	sa.Proposals, err = parseProposals(body[8:], "IKEv1", func(num, proto byte, spi []byte) ProposalV1 {
		return ProposalV1{Number: num, ProtocolID: proto, SPI: spi}
	}, func(p *ProposalV1, tb []byte, attrs []Attribute) {
		p.Transforms = append(p.Transforms, TransformV1{Number: tb[0], ID: tb[1], Attributes: attrs})
	})
	return sa, err
}

// TransformV2 is an IKEv2 transform; KeyLength is its Key Length attribute (0: none).
type TransformV2 struct {
	Type      TransformType
	ID        uint16
	KeyLength uint16
}

func (t TransformV2) String() string {
	s := TransformName(t.Type, t.ID)
	if t.KeyLength != 0 {
		s += fmt.Sprintf("_%d", t.KeyLength)
	}
	return s
}

// ProposalV2 is an IKEv2 proposal.
type ProposalV2 struct {
	Number     uint8
	ProtocolID uint8
	SPI        []byte
	Transforms []TransformV2
}

// String writes the proposal the way strongSwan logs it:
// "AES_CBC_128/HMAC_SHA2_256_128/PRF_HMAC_SHA2_256/CURVE_25519".
func (p ProposalV2) String() string {
	s := ""
	for _, t := range p.Transforms {
		if s != "" {
			s += "/"
		}
		s += t.String()
	}
	return s
}

// Get returns the first transform of type t.
func (p ProposalV2) Get(t TransformType) (TransformV2, bool) {
	for _, x := range p.Transforms {
		if x.Type == t {
			return x, true
		}
	}
	return TransformV2{}, false
}

// SAv2 is an IKEv2 SA payload.
type SAv2 struct {
	Proposals []ProposalV2
}

// PayloadType implements Body.
func (*SAv2) PayloadType() PayloadType { return PayloadSA }

// AppendBody implements Body.
func (sa *SAv2) AppendBody(b []byte) []byte {
	for i, p := range sa.Proposals {
		b = appendSubstruct(b, i == len(sa.Proposals)-1, 2, func(b []byte) []byte {
			b = append(b, p.Number, p.ProtocolID, byte(len(p.SPI)), byte(len(p.Transforms)))
			b = append(b, p.SPI...)
			for j, t := range p.Transforms {
				b = appendSubstruct(b, j == len(p.Transforms)-1, 3, func(b []byte) []byte {
					b = append(b, byte(t.Type), 0)
					b = binary.BigEndian.AppendUint16(b, t.ID)
					if t.KeyLength != 0 {
						b = appendAttributes(b, []Attribute{TV(AttrKeyLength, t.KeyLength)})
					}
					return b
				})
			}
			return b
		})
	}
	return b
}

// ParseSAv2 decodes the body of an IKEv2 SA payload.
func ParseSAv2(body []byte) (SAv2, error) {
	var sa SAv2
	var err error
	sa.Proposals, err = parseProposals(body, "IKEv2", func(num, proto byte, spi []byte) ProposalV2 {
		return ProposalV2{Number: num, ProtocolID: proto, SPI: spi}
	}, func(p *ProposalV2, tb []byte, attrs []Attribute) {
		t := TransformV2{Type: TransformType(tb[0]), ID: binary.BigEndian.Uint16(tb[2:])}
		for _, a := range attrs {
			if a.Type == AttrKeyLength {
				t.KeyLength = uint16(a.Uint())
			}
		}
		p.Transforms = append(p.Transforms, t)
	})
	return sa, err
}

// KE is a key-exchange payload. IKEv2 carries the Group in front of the public value
// (V2 true); IKEv1 carries the value alone.
type KE struct {
	V2    bool
	Group Group
	Data  []byte
}

// PayloadType implements Body.
func (k *KE) PayloadType() PayloadType { return versioned(k.V2, PayloadKE, PayloadKEv1) }

// AppendBody implements Body.
func (k *KE) AppendBody(b []byte) []byte {
	if k.V2 {
		b = binary.BigEndian.AppendUint16(b, uint16(k.Group))
		b = append(b, 0, 0)
	}
	return append(b, k.Data...)
}

// ParseKEv2 decodes the body of an IKEv2 KE payload.
func ParseKEv2(body []byte) (KE, error) {
	if len(body) < 4 {
		return KE{}, fmt.Errorf("%w: KE of %d bytes", ErrMalformed, len(body))
	}
	return KE{V2: true, Group: Group(binary.BigEndian.Uint16(body)), Data: body[4:]}, nil
}

// Data is a payload whose body is opaque bytes: nonce, vendor ID, NAT-D hash, certificate.
type Data struct {
	Type PayloadType
	Data []byte
}

// PayloadType implements Body.
func (d *Data) PayloadType() PayloadType { return d.Type }

// AppendBody implements Body.
func (d *Data) AppendBody(b []byte) []byte { return append(b, d.Data...) }

// Nonce, VendorID and NATD return opaque payloads of the right type for the version.
func Nonce(v2 bool, n []byte) *Data {
	return &Data{Type: versioned(v2, PayloadNonce, PayloadNonceV1), Data: n}
}

// VendorID returns a vendor ID payload.
func VendorID(v2 bool, id []byte) *Data {
	return &Data{Type: versioned(v2, PayloadVendorID, PayloadVendorIDV1), Data: id}
}

// versioned is the type number of a payload that both IKE versions carry under their own
// numbers: v2t in IKEv2 (RFC 7296), v1t in IKEv1 (RFC 2408).
func versioned(v2 bool, v2t, v1t PayloadType) PayloadType {
	if v2 {
		return v2t
	}
	return v1t
}

// NATD returns an IKEv1 NAT-D payload (RFC 3947) carrying hash. IKEv2 uses Notify
// NAT_DETECTION_SOURCE_IP / NAT_DETECTION_DESTINATION_IP instead.
func NATD(hash []byte) *Data { return &Data{Type: PayloadNATDV1, Data: hash} }

// Notify is a notify payload. IKEv1 carries a DOI in front (V2 false).
type Notify struct {
	V2         bool
	DOI        uint32
	ProtocolID uint8
	SPI        []byte
	Type       NotifyType
	Data       []byte
}

// PayloadType implements Body.
func (n *Notify) PayloadType() PayloadType { return versioned(n.V2, PayloadNotify, PayloadNotifyV1) }

// AppendBody implements Body.
func (n *Notify) AppendBody(b []byte) []byte {
	if !n.V2 {
		b = binary.BigEndian.AppendUint32(b, n.DOI)
	}
	b = append(b, n.ProtocolID, byte(len(n.SPI)))
	b = binary.BigEndian.AppendUint16(b, uint16(n.Type))
	b = append(b, n.SPI...)
	return append(b, n.Data...)
}

// ParseNotify decodes a notify body of either version (v2 selects the layout). It
// allocates nothing: SPI and Data slice into body.
func ParseNotify(v2 bool, body []byte) (Notify, error) {
	n := Notify{V2: v2}
	if !v2 {
		if len(body) < 4 {
			return n, fmt.Errorf("%w: IKEv1 notify of %d bytes", ErrMalformed, len(body))
		}
		n.DOI = binary.BigEndian.Uint32(body)
		body = body[4:]
	}
	if len(body) < 4 {
		return n, fmt.Errorf("%w: notify of %d bytes", ErrMalformed, len(body))
	}
	n.ProtocolID = body[0]
	spi := int(body[1])
	n.Type = NotifyType(binary.BigEndian.Uint16(body[2:]))
	if spi > len(body)-4 {
		return n, fmt.Errorf("%w: notify SPI size %d, %d bytes left", ErrMalformed, spi, len(body)-4)
	}
	n.SPI = body[4 : 4+spi]
	n.Data = body[4+spi:]
	return n, nil
}

// CertReq is a certificate request: the encoding (4 = X.509 signature) and the authority
// (IKEv2: SHA-1 hashes of trusted CA keys; IKEv1: a DN, or empty for any).
type CertReq struct {
	V2        bool
	Encoding  uint8
	Authority []byte
}

// PayloadType implements Body.
func (c *CertReq) PayloadType() PayloadType {
	return versioned(c.V2, PayloadCertReq, PayloadCertReqV1)
}

// AppendBody implements Body.
func (c *CertReq) AppendBody(b []byte) []byte { return append(append(b, c.Encoding), c.Authority...) }

// ParseCertReq decodes a certificate request body.
func ParseCertReq(v2 bool, body []byte) (CertReq, error) {
	if len(body) < 1 {
		return CertReq{}, fmt.Errorf("%w: empty CERTREQ", ErrMalformed)
	}
	return CertReq{V2: v2, Encoding: body[0], Authority: body[1:]}, nil
}

// SKF is the header of an IKEv2 encrypted fragment (RFC 7383 §2.5): fragment number and
// total, then the encrypted data (IV, ciphertext, ICV) which this package does not open.
// InnerNextPayload is the first inner payload's type in fragment 1, 0 in the others.
type SKF struct {
	FragmentNumber   uint16
	TotalFragments   uint16
	InnerNextPayload PayloadType
	Encrypted        []byte
}

// PayloadType implements Body.
func (*SKF) PayloadType() PayloadType { return PayloadSKF }

// InnerNext is the next-payload field an SKF payload carries.
func (s *SKF) InnerNext() PayloadType { return s.InnerNextPayload }

// AppendBody implements Body.
func (s *SKF) AppendBody(b []byte) []byte {
	b = binary.BigEndian.AppendUint16(b, s.FragmentNumber)
	b = binary.BigEndian.AppendUint16(b, s.TotalFragments)
	return append(b, s.Encrypted...)
}

// ParseSKF decodes an SKF payload (body and the next-payload field it carried). Fragment
// numbers start at 1 and never exceed the total (RFC 7383 §2.6.1).
func ParseSKF(p Payload) (SKF, error) {
	if len(p.Body) < 4 {
		return SKF{}, fmt.Errorf("%w: SKF of %d bytes", ErrMalformed, len(p.Body))
	}
	s := SKF{FragmentNumber: binary.BigEndian.Uint16(p.Body), TotalFragments: binary.BigEndian.Uint16(p.Body[2:]),
		InnerNextPayload: p.Next, Encrypted: p.Body[4:]}
	if s.FragmentNumber == 0 || s.FragmentNumber > s.TotalFragments {
		return s, fmt.Errorf("%w: SKF fragment %d of %d", ErrMalformed, s.FragmentNumber, s.TotalFragments)
	}
	return s, nil
}

// FragmentV1 is an IKEv1 fragment payload (type 132, as Cisco, Windows and strongSwan send
// it after both sides sent the FRAGMENTATION vendor ID): fragment id, number (from 1) and
// whether it is the last.
type FragmentV1 struct {
	ID     uint16
	Number uint8
	Last   bool
	Data   []byte
}

// PayloadType implements Body.
func (*FragmentV1) PayloadType() PayloadType { return PayloadFragmentV1 }

// AppendBody implements Body.
func (f *FragmentV1) AppendBody(b []byte) []byte {
	b = binary.BigEndian.AppendUint16(b, f.ID)
	var last byte
	if f.Last {
		last = 1
	}
	return append(append(b, f.Number, last), f.Data...)
}

// ParseFragmentV1 decodes an IKEv1 fragment payload body.
func ParseFragmentV1(body []byte) (FragmentV1, error) {
	if len(body) < 4 {
		return FragmentV1{}, fmt.Errorf("%w: IKEv1 fragment of %d bytes", ErrMalformed, len(body))
	}
	return FragmentV1{ID: binary.BigEndian.Uint16(body), Number: body[2], Last: body[3]&1 != 0, Data: body[4:]}, nil
}
