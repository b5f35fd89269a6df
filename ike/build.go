package ike

import (
	"crypto/rand"
	"crypto/sha1"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net/netip"
)

// spiTag marks the first half of an initiator SPI made by SPIWithNonce.
var spiTag = [4]byte{'i', 'p', 's', 'p'}

// SPIWithNonce returns an initiator SPI (IKEv1: initiator cookie) that carries a probe
// nonce: "ipsp" then the nonce big-endian, so whoever sees the message (the far-end agent,
// a capture) can tie it to the probe that sent it.
func SPIWithNonce(nonce uint32) [8]byte {
	var s [8]byte
	copy(s[:4], spiTag[:])
	binary.BigEndian.PutUint32(s[4:], nonce)
	return s
}

// NonceFromSPI returns the probe nonce of an SPI made by SPIWithNonce.
func NonceFromSPI(spi [8]byte) (uint32, bool) {
	if [4]byte(spi[:4]) != spiTag {
		return 0, false
	}
	return binary.BigEndian.Uint32(spi[4:]), true
}

// ErrSizeUnreachable means a message cannot be padded to exactly the size asked for.
var ErrSizeUnreachable = errors.New("ike: cannot pad the message to that size")

// Padding limits: each padding vendor ID carries at most maxPadChunk bytes, and a message
// gets at most maxPadVIDs of them (strongSwan accepts up to 20 vendor IDs per message) –
// beyond that the chunks grow.
const (
	maxPadChunk = 4096
	maxPadVIDs  = 8
	minPadVID   = genericHeaderLen + 1
)

// padTo pads bodies ps to a message of size bytes (0: leaves them as they are) with
// padding vendor IDs. A gap of 1 to minPadVID-1 bytes, too small for one, goes to short,
// which fills it otherwise or says why it cannot. ErrSizeUnreachable when the message is
// already larger.
func padTo(ps []Body, size int, v2 bool, short func(d int) error) ([]Body, error) {
	if size == 0 {
		return ps, nil
	}
	d := size - bodyLen(ps)
	switch {
	case d < 0:
		return ps, fmt.Errorf("%w: %d bytes asked, the message is already %d", ErrSizeUnreachable, size, size-d)
	case d > 0 && d < minPadVID:
		return ps, short(d)
	}
	return append(ps, padding(v2, d)...), nil
}

// padding returns vendor-ID payloads that add exactly d bytes (d ≥ minPadVID or 0).
func padding(v2 bool, d int) []Body {
	if d <= 0 {
		return nil
	}
	n := (d + maxPadChunk + genericHeaderLen - 1) / (maxPadChunk + genericHeaderLen)
	if n > maxPadVIDs {
		n = maxPadVIDs
	}
	for n > 1 && d/n < minPadVID {
		n--
	}
	var out []Body
	for i := 0; i < n; i++ {
		sz := d / n
		if i == n-1 {
			sz = d - (n-1)*(d/n)
		}
		data := make([]byte, sz-genericHeaderLen)
		copy(data, PaddingVendorID)
		for j := len(PaddingVendorID); j < len(data); j++ {
			data[j] = byte(j)
		}
		out = append(out, VendorID(v2, data))
	}
	return out
}

func bodyLen(ps []Body) int {
	n := HeaderLen
	for _, p := range ps {
		n += genericHeaderLen + len(p.AppendBody(nil))
	}
	return n
}

// NATDetectionHash is the NAT detection hash of RFC 7296 §2.23 and RFC 3947 §3.2:
// SHA-1(SPIi | SPIr | IP | port), with the responder SPI zero in a first message.
func NATDetectionHash(spii, spir [8]byte, ap netip.AddrPort) []byte {
	h := sha1.New()
	h.Write(spii[:])
	h.Write(spir[:])
	ip := ap.Addr().Unmap()
	h.Write(ip.AsSlice())
	h.Write(binary.BigEndian.AppendUint16(nil, ap.Port()))
	return h.Sum(nil)
}

// DefaultProposalsV2 is what BuildSAInit offers when told nothing: what current gateways
// (strongSwan, Windows, Cisco, Fortinet, Palo Alto) accept by default, CBC and AEAD apart
// as RFC 7296 §3.3 requires.
const DefaultProposalsV2 = "aes256-aes128-sha256-sha384-sha512-sha1-curve25519-ecp256-ecp384-modp2048-modp3072-modp4096-modp1024," +
	"aes256gcm16-aes128gcm16-prfsha256-prfsha384-prfsha512-prfsha1-curve25519-ecp256-ecp384-modp2048-modp3072-modp4096-modp1024"

// DefaultProposalsV1 is what BuildMainMode offers when told nothing: AES with SHA-2 and
// SHA-1 over the common groups, and 3DES-SHA1-MODP1024 as older Windows and Cisco peers use.
const DefaultProposalsV1 = "aes256-aes128-sha256-sha1-modp2048-ecp256-curve25519-modp1024,3des-sha1-modp1024"

// SAInitParams describes an IKEv2 IKE_SA_INIT request.
type SAInitParams struct {
	SPI       [8]byte      // initiator SPI; SPIWithNonce puts a probe nonce there
	Proposals []ProposalV2 // nil: DefaultProposalsV2
	Group     Group        // KE group; 0: the first DH transform of the first proposal
	KE        []byte       // nil: KeyExchange(Group)
	Nonce     []byte       // nil: 32 random bytes (RFC 7296: 16 to 256 bytes)
	Cookie    []byte       // from a COOKIE notify: sent back first (RFC 7296 §2.6)
	// Local and Remote, when valid, add NAT_DETECTION_SOURCE_IP/DESTINATION_IP; a
	// responder answers with its own only if we sent ours.
	Local, Remote   netip.AddrPort
	NoFragmentation bool     // leave out IKEV2_FRAGMENTATION_SUPPORTED
	NoSignatureHash bool     // leave out SIGNATURE_HASH_ALGORITHMS
	VendorIDs       [][]byte // extra vendor IDs
	// Size, when non-zero, is the length of the whole IKE message: vendor IDs that
	// responders ignore are added to reach it exactly.
	Size int
	// Stateless adds MODP_768 (which no current gateway allows) to every proposal's DH
	// list and sends a KE for it. A responder that accepts a proposal then answers
	// INVALID_KE_PAYLOAD naming the group it wants, and one that accepts none answers
	// NO_PROPOSAL_CHOSEN: either way the answer proves the message arrived, and the
	// responder keeps no half-open IKE SA (strongSwan ignores a peer with 5 of them).
	Stateless bool
	Rand      io.Reader // nil: crypto/rand
}

// StatelessGroup is the KE group of a Stateless IKE_SA_INIT.
const StatelessGroup = MODP768

// BuildSAInit appends an IKE_SA_INIT request that a real gateway answers: SA, KE of the
// right length for its group, Ni, and the notifies a current initiator sends.
func BuildSAInit(b []byte, p SAInitParams) ([]byte, error) {
	rnd := p.Rand
	if rnd == nil {
		rnd = rand.Reader
	}
	props := p.Proposals
	if props == nil {
		ps, err := ParseProposals(DefaultProposalsV2)
		if err != nil {
			return b, err
		}
		for i, x := range ps {
			props = append(props, x.V2(uint8(i+1)))
		}
	}
	g := p.Group
	if p.Stateless {
		withDecoy := make([]ProposalV2, len(props))
		for i, pr := range props {
			pr.Transforms = append(append([]TransformV2(nil), pr.Transforms...), TransformV2{Type: TransformDH, ID: uint16(StatelessGroup)})
			withDecoy[i] = pr
		}
		props, g = withDecoy, StatelessGroup
	}
	if g == 0 {
		for _, pr := range props {
			if t, ok := pr.Get(TransformDH); ok {
				g = Group(t.ID)
				break
			}
		}
	}
	ke := p.KE
	if ke == nil {
		var err error
		if ke, err = KeyExchange(g, rnd); err != nil {
			return b, err
		}
	}
	nonce := p.Nonce
	if nonce == nil {
		nonce = make([]byte, 32)
		if _, err := io.ReadFull(rnd, nonce); err != nil {
			return b, fmt.Errorf("ike: nonce: %w", err)
		}
	}
	var ps []Body
	if p.Cookie != nil {
		ps = append(ps, &Notify{V2: true, Type: NotifyCookie, Data: p.Cookie})
	}
	ps = append(ps, &SAv2{Proposals: props}, &KE{V2: true, Group: g, Data: ke})
	nonceAt := len(ps)
	ps = append(ps, Nonce(true, nonce))
	if p.Local.IsValid() && p.Remote.IsValid() {
		ps = append(ps,
			&Notify{V2: true, Type: NotifyNATDetectionSourceIP, Data: NATDetectionHash(p.SPI, [8]byte{}, p.Local)},
			&Notify{V2: true, Type: NotifyNATDetectionDestinationIP, Data: NATDetectionHash(p.SPI, [8]byte{}, p.Remote)})
	}
	if !p.NoFragmentation {
		ps = append(ps, &Notify{V2: true, Type: NotifyFragmentationSupported})
	}
	if !p.NoSignatureHash {
		ps = append(ps, &Notify{V2: true, Type: NotifySignatureHashAlgorithms, Data: []byte{0, 2, 0, 3, 0, 4}})
	}
	for _, v := range p.VendorIDs {
		ps = append(ps, VendorID(true, v))
	}
	// A gap too small for a padding vendor ID grows the nonce instead.
	ps, err := padTo(ps, p.Size, true, func(d int) error {
		if len(nonce)+d > 256 {
			return fmt.Errorf("%w: %d bytes", ErrSizeUnreachable, p.Size)
		}
		grown := append(append([]byte{}, nonce...), make([]byte, d)...)
		if _, err := io.ReadFull(rnd, grown[len(nonce):]); err != nil {
			return fmt.Errorf("ike: nonce: %w", err)
		}
		ps[nonceAt] = Nonce(true, grown)
		return nil
	})
	if err != nil {
		return b, err
	}
	h := Header{InitiatorSPI: p.SPI, Version: VersionIKEv2, Exchange: ExchangeIKESAInit, Flags: FlagInitiator}
	return AppendMessage(b, h, SerializeOptions{FixLengths: true}, ps...)
}

// MainModeParams describes IKEv1 Main Mode message 1.
type MainModeParams struct {
	Cookie     [8]byte       // initiator cookie; SPIWithNonce puts a probe nonce there
	Transforms []TransformV1 // nil: DefaultProposalsV1 with Auth
	Auth       AuthMethod    // for the default transforms; 0: pre-shared key
	Lifetime   uint32        // seconds, for the default transforms; 0: 28800 (8 h)
	// VendorIDs: nil sends RFC 3947 NAT-T and its drafts, FRAGMENTATION and DPD, so the
	// answer says whether the responder supports them. Use an empty non-nil slice for none.
	VendorIDs [][]byte
	Size      int // as in SAInitParams; IKEv1 cannot grow by 1 to 4 bytes
}

// DefaultVendorIDsV1 is what BuildMainMode sends unless told otherwise.
var DefaultVendorIDsV1 = [][]byte{VendorNATTRFC3947, VendorNATTDraft03, VendorNATTDraft02N, VendorFragmentation, VendorDPD}

// BuildMainMode appends IKEv1 Main Mode message 1: an SA with one ISAKMP proposal and its
// transforms, and vendor IDs.
func BuildMainMode(b []byte, p MainModeParams) ([]byte, error) {
	ts := p.Transforms
	if ts == nil {
		auth := p.Auth
		if auth == 0 {
			auth = AuthPSK
		}
		life := p.Lifetime
		if life == 0 {
			life = 28800
		}
		ps, err := ParseProposals(DefaultProposalsV1)
		if err != nil {
			return b, err
		}
		for _, pr := range ps {
			t, err := pr.V1(auth, life)
			if err != nil {
				return b, err
			}
			ts = append(ts, t...)
		}
		for i := range ts {
			ts[i].Number = uint8(i + 1)
		}
	}
	if len(ts) > 255 {
		return b, fmt.Errorf("ike: %d IKEv1 transforms, at most 255", len(ts))
	}
	sa := &SAv1{DOI: doiIPsecV1, Situation: situationIdentityV1,
		Proposals: []ProposalV1{{Number: 1, ProtocolID: protoIKE, Transforms: ts}}}
	ps := []Body{sa}
	vids := p.VendorIDs
	if vids == nil {
		vids = DefaultVendorIDsV1
	}
	for _, v := range vids {
		ps = append(ps, VendorID(false, v))
	}
	ps, err := padTo(ps, p.Size, false, func(d int) error {
		return fmt.Errorf("%w: an IKEv1 message of %d bytes cannot grow by %d", ErrSizeUnreachable, p.Size-d, d)
	})
	if err != nil {
		return b, err
	}
	h := Header{InitiatorSPI: p.Cookie, Version: VersionIKEv1, Exchange: ExchangeIdentityProtection}
	return AppendMessage(b, h, SerializeOptions{FixLengths: true}, ps...)
}

// BuildNotifyV1 appends an unencrypted IKEv1 Informational message carrying one error
// notify about the ISAKMP SA of icookie and rcookie (its SPI is the two cookies), as an
// initiator sends when it gives up on a Main Mode after the responder's first answer.
// strongSwan destroys a half-open (Main Mode) IKE_SA that receives an error notify, so a
// probe that learnt what it wanted from message 2 leaves no state behind; gateways that
// ignore unauthenticated notifies keep the SA until it times out.
func BuildNotifyV1(b []byte, icookie, rcookie [8]byte, messageID uint32, t NotifyType) ([]byte, error) {
	spi := make([]byte, 0, 16)
	spi = append(append(spi, icookie[:]...), rcookie[:]...)
	h := Header{InitiatorSPI: icookie, ResponderSPI: rcookie, Version: VersionIKEv1, Exchange: ExchangeInformationalV1, MessageID: messageID}
	return AppendMessage(b, h, SerializeOptions{FixLengths: true}, &Notify{DOI: doiIPsecV1, ProtocolID: protoIKE, SPI: spi, Type: t})
}
