package ike

import (
	"fmt"
	"strings"
)

// Proposal is a cryptographic suite in strongSwan's proposal syntax ("aes128-sha256-x25519",
// "aes256gcm16-prfsha384-ecp384"): the algorithms a gateway is configured with, turned into
// an IKEv2 proposal or a list of IKEv1 transforms.
type Proposal struct {
	Text   string
	Encr   []TransformV2 // ENCR transforms with key lengths
	Integ  []uint16      // IKEv2 INTEG ids, empty for AEAD
	PRF    []uint16      // IKEv2 PRF ids
	Hash   []uint16      // IKEv1 hash attribute values (from the integrity keywords)
	Groups []Group
	AEAD   bool
}

type encKW struct {
	v2, v1, keyLen uint16
	aead           bool
}

var encKeywords = map[string]encKW{
	"aes128": {EncrAESCBC, EncV1AESCBC, 128, false}, "aes": {EncrAESCBC, EncV1AESCBC, 128, false},
	"aes192": {EncrAESCBC, EncV1AESCBC, 192, false}, "aes256": {EncrAESCBC, EncV1AESCBC, 256, false},
	"3des":      {EncrDES3, EncV1DES3, 0, false},
	"des":       {2, 1, 0, false},
	"aes128ctr": {EncrAESCTR, 0, 128, false}, "aes256ctr": {EncrAESCTR, 0, 256, false},
	"aes128gcm16": {EncrAESGCM16, 0, 128, true}, "aes128gcm": {EncrAESGCM16, 0, 128, true},
	"aes192gcm16": {EncrAESGCM16, 0, 192, true}, "aes256gcm16": {EncrAESGCM16, 0, 256, true},
	"aes256gcm": {EncrAESGCM16, 0, 256, true}, "aes128gcm12": {EncrAESGCM12, 0, 128, true},
	"aes256gcm12": {EncrAESGCM12, 0, 256, true}, "aes128gcm8": {EncrAESGCM8, 0, 128, true},
	"aes256gcm8": {EncrAESGCM8, 0, 256, true}, "chacha20poly1305": {EncrChaCha20Poly, 0, 0, true},
}

type integKW struct{ integ, prf, hashV1 uint16 }

var integKeywords = map[string]integKW{
	"md5": {IntegHMACMD596, PRFHMACMD5, HashV1MD5}, "sha1": {IntegHMACSHA196, PRFHMACSHA1, HashV1SHA1},
	"sha": {IntegHMACSHA196, PRFHMACSHA1, HashV1SHA1}, "sha256": {IntegHMACSHA256128, PRFHMACSHA256, HashV1SHA256},
	"sha2_256": {IntegHMACSHA256128, PRFHMACSHA256, HashV1SHA256}, "sha384": {IntegHMACSHA384192, PRFHMACSHA384, HashV1SHA384},
	"sha512": {IntegHMACSHA512256, PRFHMACSHA512, HashV1SHA512}, "aesxcbc": {IntegAESXCBC96, PRFAESXCBC, 0},
}

var prfKeywords = map[string]uint16{
	"prfmd5": PRFHMACMD5, "prfsha1": PRFHMACSHA1, "prfsha256": PRFHMACSHA256, "prfsha384": PRFHMACSHA384,
	"prfsha512": PRFHMACSHA512, "prfaesxcbc": PRFAESXCBC,
}

var groupKeywords = map[string]Group{
	"modp768": MODP768, "modp1024": MODP1024, "modp1536": MODP1536, "modp2048": MODP2048, "modp3072": MODP3072,
	"modp4096": MODP4096, "modp6144": MODP6144, "modp8192": MODP8192, "ecp256": ECP256, "ecp384": ECP384,
	"ecp521": ECP521, "curve25519": Curve25519, "x25519": Curve25519, "curve448": Curve448, "x448": Curve448,
}

// ParseProposal parses one proposal in strongSwan syntax. It needs at least one encryption
// algorithm and one DH group; integrity is required unless the cipher is AEAD, and the PRF
// follows the integrity algorithms unless prf… keywords name it.
func ParseProposal(s string) (Proposal, error) {
	p := Proposal{Text: strings.TrimSpace(s)}
	if p.Text == "" {
		return p, fmt.Errorf("ike: empty proposal")
	}
	for _, kw := range strings.Split(strings.ToLower(p.Text), "-") {
		if e, ok := encKeywords[kw]; ok {
			p.Encr = append(p.Encr, TransformV2{Type: TransformENCR, ID: e.v2, KeyLength: e.keyLen})
			if e.aead {
				p.AEAD = true
			}
			continue
		}
		if i, ok := integKeywords[kw]; ok {
			p.Integ = append(p.Integ, i.integ)
			p.Hash = append(p.Hash, i.hashV1)
			p.PRF = append(p.PRF, i.prf)
			continue
		}
		if f, ok := prfKeywords[kw]; ok {
			p.PRF = append(p.PRF, f)
			continue
		}
		if g, ok := groupKeywords[kw]; ok {
			p.Groups = append(p.Groups, g)
			continue
		}
		return p, fmt.Errorf("ike: proposal %q: unknown algorithm %q", p.Text, kw)
	}
	// Explicit prf keywords win over those derived from integrity.
	var explicit []uint16
	for _, kw := range strings.Split(strings.ToLower(p.Text), "-") {
		if f, ok := prfKeywords[kw]; ok {
			explicit = append(explicit, f)
		}
	}
	if len(explicit) > 0 {
		p.PRF = explicit
	}
	switch {
	case len(p.Encr) == 0:
		return p, fmt.Errorf("ike: proposal %q: no encryption algorithm", p.Text)
	case len(p.Groups) == 0:
		return p, fmt.Errorf("ike: proposal %q: no DH group", p.Text)
	case len(p.PRF) == 0:
		return p, fmt.Errorf("ike: proposal %q: no integrity or PRF algorithm", p.Text)
	case !p.AEAD && len(p.Integ) == 0:
		return p, fmt.Errorf("ike: proposal %q: no integrity algorithm for a non-AEAD cipher", p.Text)
	}
	if p.AEAD {
		p.Integ = nil // RFC 7296 §3.3: AEAD proposals carry no integrity transform
	}
	return p, nil
}

// ParseProposals parses a comma-separated list of proposals.
func ParseProposals(list string) ([]Proposal, error) {
	var ps []Proposal
	for _, s := range strings.Split(list, ",") {
		if strings.TrimSpace(s) == "" {
			continue
		}
		p, err := ParseProposal(s)
		if err != nil {
			return nil, err
		}
		ps = append(ps, p)
	}
	if len(ps) == 0 {
		return nil, fmt.Errorf("ike: no proposal in %q", list)
	}
	return ps, nil
}

// V2 returns the proposal as an IKEv2 IKE proposal numbered n.
func (p Proposal) V2(n uint8) ProposalV2 {
	pr := ProposalV2{Number: n, ProtocolID: protoIKE}
	pr.Transforms = append(pr.Transforms, p.Encr...)
	for _, id := range p.Integ {
		pr.Transforms = append(pr.Transforms, TransformV2{Type: TransformINTEG, ID: id})
	}
	for _, id := range p.PRF {
		pr.Transforms = append(pr.Transforms, TransformV2{Type: TransformPRF, ID: id})
	}
	for _, g := range p.Groups {
		pr.Transforms = append(pr.Transforms, TransformV2{Type: TransformDH, ID: uint16(g)})
	}
	return pr
}

// V1 returns the proposal as IKEv1 phase-1 transforms, one per combination of encryption,
// hash and group (as strongSwan does), with the given authentication method and a lifetime
// in seconds. AEAD ciphers and CTR mode do not exist in IKEv1: the error says why, in the
// words of NoV1Form.
func (p Proposal) V1(auth AuthMethod, lifetime uint32) ([]TransformV1, error) {
	ts, why := p.v1(auth, lifetime)
	if why != "" {
		return nil, fmt.Errorf("ike: proposal %q: %s", p.Text, why)
	}
	return ts, nil
}

// NoV1Form says why the proposal cannot be offered in IKEv1, for a person ("IKEv1 has no
// AEAD encryption (AES-GCM)"), or "" when it can.
func (p Proposal) NoV1Form() string {
	_, why := p.v1(AuthPSK, 0)
	return why
}

// v1 is V1, with the reason there is no IKEv1 form instead of an error.
func (p Proposal) v1(auth AuthMethod, lifetime uint32) ([]TransformV1, string) {
	var ts []TransformV1
	for _, e := range p.Encr {
		var v1 uint16
		for _, kw := range encKeywords {
			if kw.v2 == e.ID && kw.keyLen == e.KeyLength {
				v1 = kw.v1
			}
		}
		if v1 == 0 {
			return nil, noV1Cipher(e)
		}
		for _, h := range p.Hash {
			if h == 0 {
				return nil, "IKEv1 has no AES-XCBC hash"
			}
			for _, g := range p.Groups {
				if len(ts) == 255 {
					n := len(p.Encr) * len(p.Hash) * len(p.Groups)
					return nil, fmt.Sprintf("its IKEv1 form needs %d transforms (one per cipher, hash and group), more than the 255 an IKEv1 proposal holds", n)
				}
				attrs := []Attribute{TV(AttrEncryption, v1)}
				if e.KeyLength != 0 {
					attrs = append(attrs, TV(AttrKeyLength, e.KeyLength))
				}
				attrs = append(attrs, TV(AttrHash, h), TV(AttrAuthMethod, uint16(auth)), TV(AttrGroup, uint16(g)),
					TV(AttrLifeType, LifeSeconds), LifeDuration(lifetime))
				ts = append(ts, TransformV1{Number: uint8(len(ts) + 1), ID: transformKeyIKEV1, Attributes: attrs})
			}
		}
	}
	return ts, ""
}

// noV1Cipher says why an encryption transform has no IKEv1 form.
func noV1Cipher(e TransformV2) string {
	switch e.ID {
	case EncrAESGCM16, EncrAESGCM12, EncrAESGCM8:
		return "IKEv1 has no AEAD encryption (AES-GCM)"
	case EncrChaCha20Poly:
		return "IKEv1 has no AEAD encryption (ChaCha20-Poly1305)"
	case EncrAESCTR:
		return "IKEv1 has no AES-CTR encryption"
	}
	return fmt.Sprintf("%s has no IKEv1 form", e)
}

var encNamesV2 = map[uint16]string{2: "des", EncrAESCBC: "aes", EncrAESCTR: "aes", EncrAESGCM16: "aes", EncrAESGCM12: "aes",
	EncrAESGCM8: "aes", EncrDES3: "3des", EncrChaCha20Poly: "chacha20poly1305"}

var groupWords = map[Group]string{MODP768: "modp768", MODP1024: "modp1024", MODP1536: "modp1536", MODP2048: "modp2048",
	MODP3072: "modp3072", MODP4096: "modp4096", MODP6144: "modp6144", MODP8192: "modp8192", ECP256: "ecp256",
	ECP384: "ecp384", ECP521: "ecp521", Curve25519: "curve25519", Curve448: "curve448"}

// Keywords writes a chosen IKEv2 proposal in strongSwan syntax, e.g. "aes128-sha256-prfsha256-curve25519",
// so it can be compared with a gateway's configuration.
func (p ProposalV2) Keywords() string {
	var kw []string
	for _, t := range p.Transforms {
		switch t.Type {
		case TransformENCR:
			s := encNamesV2[t.ID]
			if s == "" {
				s = TransformName(t.Type, t.ID)
			}
			if t.KeyLength != 0 {
				s += fmt.Sprint(t.KeyLength)
			}
			switch t.ID {
			case EncrAESCTR:
				s += "ctr"
			case EncrAESGCM16:
				s += "gcm16"
			case EncrAESGCM12:
				s += "gcm12"
			case EncrAESGCM8:
				s += "gcm8"
			}
			kw = append(kw, s)
		case TransformINTEG, TransformPRF:
			name := ""
			for _, k := range []string{"md5", "sha1", "sha256", "sha384", "sha512", "aesxcbc"} {
				v := integKeywords[k]
				if (t.Type == TransformINTEG && v.integ == t.ID) || (t.Type == TransformPRF && v.prf == t.ID) {
					name = k
				}
			}
			if name == "" {
				name = TransformName(t.Type, t.ID)
			}
			if t.Type == TransformPRF {
				name = "prf" + name
			}
			kw = append(kw, name)
		case TransformDH:
			if w, ok := groupWords[Group(t.ID)]; ok {
				kw = append(kw, w)
			} else {
				kw = append(kw, Group(t.ID).String())
			}
		}
	}
	return strings.Join(kw, "-")
}

// Keywords writes a chosen IKEv1 transform in strongSwan syntax, e.g. "aes128-sha256-modp2048".
func (t TransformV1) Keywords() string {
	var enc, hash, grp string
	var keyLen uint64
	for _, a := range t.Attributes {
		switch a.Type {
		case AttrEncryption:
			if a.Uint() == uint64(EncV1AESCBC) {
				enc = "aes"
			} else {
				enc = strings.ToLower(EncV1Name(uint16(a.Uint())))
			}
		case AttrKeyLength:
			keyLen = a.Uint()
		case AttrHash:
			switch uint16(a.Uint()) {
			case HashV1MD5:
				hash = "md5"
			case HashV1SHA1:
				hash = "sha1"
			case HashV1SHA256:
				hash = "sha256"
			case HashV1SHA384:
				hash = "sha384"
			case HashV1SHA512:
				hash = "sha512"
			default:
				hash = HashV1Name(uint16(a.Uint()))
			}
		case AttrGroup:
			if w, ok := groupWords[Group(a.Uint())]; ok {
				grp = w
			} else {
				grp = Group(a.Uint()).String()
			}
		}
	}
	if keyLen != 0 {
		enc += fmt.Sprint(keyLen)
	}
	return enc + "-" + hash + "-" + grp
}
