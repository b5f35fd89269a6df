package ike

import (
	"bytes"
	"crypto/md5"
	"encoding/hex"
	"errors"
	"math/big"
	"math/rand"
	"net/netip"
	"reflect"
	"strings"
	"testing"
)

// detRand is a deterministic reader so builders give the same bytes every run.
type detRand struct{ r *rand.Rand }

func (d detRand) Read(p []byte) (int, error) { return d.r.Read(p) }

func newDetRand() detRand { return detRand{rand.New(rand.NewSource(1))} }

func mustDecode(t testing.TB, b []byte) *Message {
	t.Helper()
	var m Message
	if err := m.DecodeFromBytes(b); err != nil {
		t.Fatalf("decode: %v\n%s", err, hex.Dump(b))
	}
	return &m
}

func types(m *Message) []PayloadType {
	var ts []PayloadType
	for _, p := range m.Payloads {
		ts = append(ts, p.Type)
	}
	return ts
}

func TestSAInitRoundTrip(t *testing.T) {
	spi := SPIWithNonce(0xdeadbeef)
	local := netip.MustParseAddrPort("198.51.100.10:500")
	remote := netip.MustParseAddrPort("203.0.113.10:500")
	for _, g := range []Group{Curve25519, ECP256, ECP384, ECP521, MODP1024, MODP2048, MODP3072, Curve448} {
		ps, err := ParseProposals("aes128-sha256-" + groupWords[g])
		if err != nil {
			t.Fatal(err)
		}
		// Append onto a prefix: proves append semantics.
		prefix := []byte("foo")
		b, err := BuildSAInit(prefix, SAInitParams{SPI: spi, Proposals: []ProposalV2{ps[0].V2(1)}, Local: local, Remote: remote, Rand: newDetRand()})
		if err != nil {
			t.Fatalf("%s: %v", g, err)
		}
		if !bytes.Equal(b[:3], prefix) {
			t.Fatalf("%s: prefix overwritten", g)
		}
		m := mustDecode(t, b[3:])
		if m.Version != VersionIKEv2 || m.Exchange != ExchangeIKESAInit || m.Flags != FlagInitiator || m.InitiatorSPI != spi {
			t.Fatalf("%s: header %+v", g, m.Header)
		}
		if n, ok := NonceFromSPI(m.InitiatorSPI); !ok || n != 0xdeadbeef {
			t.Fatalf("nonce from SPI: %x %v", n, ok)
		}
		want := []PayloadType{PayloadSA, PayloadKE, PayloadNonce, PayloadNotify, PayloadNotify, PayloadNotify, PayloadNotify}
		if got := types(m); !reflect.DeepEqual(got, want) {
			t.Fatalf("%s: payloads %v, want %v", g, got, want)
		}
		sa, err := ParseSAv2(m.Payloads[0].Body)
		if err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(sa.Proposals[0].Transforms, ps[0].V2(1).Transforms) {
			t.Fatalf("SA %v", sa)
		}
		ke, err := ParseKEv2(m.Payloads[1].Body)
		if err != nil {
			t.Fatal(err)
		}
		if ke.Group != g || len(ke.Data) != g.PublicLen() {
			t.Fatalf("KE group %s len %d, want %s len %d", ke.Group, len(ke.Data), g, g.PublicLen())
		}
		n, err := ParseNotify(true, m.Payloads[3].Body)
		if err != nil || n.Type != NotifyNATDetectionSourceIP || !bytes.Equal(n.Data, NATDetectionHash(spi, [8]byte{}, local)) {
			t.Fatalf("NAT-D source: %+v %v", n, err)
		}
		if int(m.Length) != len(b)-3 {
			t.Fatalf("length %d, message %d", m.Length, len(b)-3)
		}
	}
}

func TestKELengths(t *testing.T) {
	want := map[Group]int{MODP2048: 256, ECP256: 64, Curve25519: 32, ECP384: 96, ECP521: 132, MODP1024: 128, MODP4096: 512, Curve448: 56}
	for g, n := range want {
		k, err := KeyExchange(g, newDetRand())
		if err != nil || len(k) != n {
			t.Errorf("%s: %d bytes, %v; want %d", g, len(k), err, n)
		}
	}
	if _, err := KeyExchange(Group(99), newDetRand()); err == nil {
		t.Error("unknown group accepted")
	}
}

// TestMODPPrimes checks the primes computed from pi: each is a safe prime of the right size,
// and MODP 2048's first and last words are those printed in RFC 3526 §3.
func TestMODPPrimes(t *testing.T) {
	for g, c := range modpK {
		p := MODPPrime(g)
		if p.BitLen() != int(c.bits) {
			t.Errorf("%s: %d bits", g, p.BitLen())
		}
		q := new(big.Int).Rsh(p, 1)
		if !p.ProbablyPrime(1) || !q.ProbablyPrime(1) {
			t.Errorf("%s: not a safe prime", g)
		}
	}
	h := hex.EncodeToString(MODPPrime(MODP2048).Bytes())
	if h[:24] != "ffffffffffffffffc90fdaa2" || h[len(h)-24:] != "8aacaa68ffffffffffffffff" {
		t.Errorf("MODP 2048 = %s…%s", h[:24], h[len(h)-24:])
	}
}

func TestMainModeRoundTrip(t *testing.T) {
	cookie := SPIWithNonce(7)
	b, err := BuildMainMode(nil, MainModeParams{Cookie: cookie, Auth: AuthGSSKerberos})
	if err != nil {
		t.Fatal(err)
	}
	m := mustDecode(t, b)
	if m.Version != VersionIKEv1 || m.Exchange != ExchangeIdentityProtection || m.MessageID != 0 || m.ResponderSPI != [8]byte{} {
		t.Fatalf("header %+v", m.Header)
	}
	if m.Payloads[0].Type != PayloadSAv1 || len(m.Payloads) != 1+len(DefaultVendorIDsV1) {
		t.Fatalf("payloads %v", types(m))
	}
	sa, err := ParseSAv1(m.Payloads[0].Body)
	if err != nil {
		t.Fatal(err)
	}
	if sa.DOI != 1 || sa.Situation != 1 || len(sa.Proposals) != 1 || len(sa.Proposals[0].Transforms) != 17 {
		t.Fatalf("SA %+v", sa)
	}
	tr := sa.Proposals[0].Transforms[0]
	if got := tr.String(); got != "Enc=AES KeyLength=256 Hash=SHA2-256 Auth=GSS-Kerberos Group=14:modp2048 LifeType=Seconds LifeDuration=28800" {
		t.Fatalf("transform 1: %s", got)
	}
	if got := tr.Keywords(); got != "aes256-sha256-modp2048" {
		t.Fatalf("keywords %s", got)
	}
	for i, p := range m.Payloads[1:] {
		if !bytes.Equal(p.Body, DefaultVendorIDsV1[i]) {
			t.Fatalf("VID %d = %x", i, p.Body)
		}
	}
}

func TestPadToSize(t *testing.T) {
	base2, _ := BuildSAInit(nil, SAInitParams{Rand: newDetRand()})
	base1, _ := BuildMainMode(nil, MainModeParams{})
	for size := len(base2); size < len(base2)+9000; size += 37 {
		b, err := BuildSAInit(nil, SAInitParams{Size: size, Rand: newDetRand()})
		if err != nil || len(b) != size {
			t.Fatalf("IKEv2 size %d: got %d, %v", size, len(b), err)
		}
		mustDecode(t, b)
	}
	for d := 0; d < 8; d++ {
		if b, err := BuildSAInit(nil, SAInitParams{Size: len(base2) + d, Rand: newDetRand()}); err != nil || len(b) != len(base2)+d {
			t.Fatalf("IKEv2 +%d: %d %v", d, len(b), err)
		}
	}
	for _, size := range []int{len(base1), len(base1) + 5, 3000, 1472, 65000} {
		b, err := BuildMainMode(nil, MainModeParams{Size: size})
		if err != nil || len(b) != size {
			t.Fatalf("IKEv1 size %d: got %d, %v", size, len(b), err)
		}
		m := mustDecode(t, b)
		if n := len(m.Payloads); n > 1+len(DefaultVendorIDsV1)+maxPadVIDs {
			t.Fatalf("size %d: %d payloads", size, n)
		}
		for _, p := range m.Payloads[1+len(DefaultVendorIDsV1):] {
			if len(p.Body) >= 8 && VendorName(p.Body) != "ipsecpath padding" {
				t.Fatalf("padding VID named %q", VendorName(p.Body))
			}
		}
	}
	if _, err := BuildMainMode(nil, MainModeParams{Size: len(base1) + 2}); !errors.Is(err, ErrSizeUnreachable) {
		t.Fatalf("IKEv1 +2: %v", err)
	}
	if _, err := BuildMainMode(nil, MainModeParams{Size: 100}); !errors.Is(err, ErrSizeUnreachable) {
		t.Fatalf("IKEv1 too small: %v", err)
	}
}

func TestVendorIDHashes(t *testing.T) {
	for text, vid := range map[string][]byte{
		"RFC 3947": VendorNATTRFC3947, "draft-ietf-ipsec-nat-t-ike-02\n": VendorNATTDraft02N,
		"draft-ietf-ipsec-nat-t-ike-02": VendorNATTDraft02, "draft-ietf-ipsec-nat-t-ike-03": VendorNATTDraft03,
		"FRAGMENTATION": VendorFragmentation, "strongSwan": VendorStrongSwan, "MS NT5 ISAKMPOAKLEY": VendorMSNT5,
		"MS-Negotiation Discovery Capable": VendorMSNegDiscovery, "Vid-Initial-Contact": VendorMSInitialContact,
	} {
		if h := md5.Sum([]byte(text)); !bytes.Equal(h[:], vid) {
			t.Errorf("MD5(%q) = %x, table has %x", text, h, vid)
		}
	}
	for vid, name := range map[string]string{
		"4a131c81070358455c5728f20e95452f":         "RFC 3947 NAT-T",
		"4048b7d56ebce88525e7de7f00d6c2d380000000": "IKE Fragmentation",
		"1e2b516905991c7d7c96fcbfb587e46100000009": "Windows 8",
		"1e2b516905991c7d7c96fcbfb587e46100000099": "MS NT5 ISAKMPOAKLEY (Windows)",
		"afcad71368a1f1c96b8696fc77570100":         "Dead Peer Detection v1.0",
		"0011":                                     "0011",
	} {
		if got := VendorName(mustHex(vid)); got != name {
			t.Errorf("VendorName(%s) = %q, want %q", vid, got, name)
		}
	}
	if !IsFragmentationVID(VendorFragmentationSS) || !IsNATTVID(VendorNATTRFC3947) || IsNATTVID(VendorDPD) {
		t.Error("IsFragmentationVID/IsNATTVID")
	}
}

func TestProposals(t *testing.T) {
	for in, want := range map[string]string{
		"aes128-sha256-x25519":               "aes128-sha256-prfsha256-curve25519",
		"aes256gcm16-prfsha384-ecp384":       "aes256gcm16-prfsha384-ecp384",
		"aes128-aes256-sha1-sha256-modp2048": "aes128-aes256-sha1-sha256-prfsha1-prfsha256-modp2048",
	} {
		p, err := ParseProposal(in)
		if err != nil {
			t.Fatalf("%s: %v", in, err)
		}
		if got := p.V2(1).Keywords(); got != want {
			t.Errorf("%s → %s, want %s", in, got, want)
		}
	}
	for _, bad := range []string{"", "aes128-sha256", "aes128-modp2048", "rot13-sha1-modp2048", "sha256-modp2048"} {
		if _, err := ParseProposal(bad); err == nil {
			t.Errorf("%q accepted", bad)
		}
	}
	p, _ := ParseProposal("aes256gcm16-prfsha256-ecp256")
	if _, err := p.V1(AuthPSK, 3600); err == nil {
		t.Error("AEAD accepted for IKEv1")
	}
	// NoV1Form names what IKEv1 lacks, and V1's error says the same.
	for in, want := range map[string]string{
		"aes256gcm16-prfsha256-ecp256":      "IKEv1 has no AEAD encryption (AES-GCM)",
		"aes128gcm8-prfsha1-modp2048":       "IKEv1 has no AEAD encryption (AES-GCM)",
		"chacha20poly1305-prfsha256-x25519": "IKEv1 has no AEAD encryption (ChaCha20-Poly1305)",
		"aes128ctr-sha256-modp2048":         "IKEv1 has no AES-CTR encryption",
		"aes128-aesxcbc-modp2048":           "IKEv1 has no AES-XCBC hash",
		"aes128-sha256-modp2048":            "",
		"3des-md5-modp1024":                 "",
	} {
		p, err := ParseProposal(in)
		if err != nil {
			t.Fatalf("%s: %v", in, err)
		}
		_, err = p.V1(AuthPSK, 3600)
		if got := p.NoV1Form(); got != want || (err == nil) != (want == "") || (err != nil && !strings.HasSuffix(err.Error(), ": "+want)) {
			t.Errorf("%s: NoV1Form %q, V1 error %v; want %q", in, got, err, want)
		}
	}
	// 5 ciphers × 5 hashes × 10 groups fit in one IKEv1 proposal, × 11 groups do not.
	fit := "aes128-aes192-aes256-3des-des-md5-sha1-sha256-sha384-sha512-modp768-modp1024-modp1536-modp2048-modp3072-modp4096-modp6144-modp8192-ecp256-ecp384"
	for in, want := range map[string]string{fit: "", fit + "-ecp521": "its IKEv1 form needs 275 transforms (one per cipher, hash and group), more than the 255 an IKEv1 proposal holds"} {
		p, _ := ParseProposal(in)
		ts, err := p.V1(AuthPSK, 3600)
		if got := p.NoV1Form(); got != want || (err == nil) != (want == "") || (want == "" && len(ts) != 250) {
			t.Errorf("%d groups: NoV1Form %q, %d transforms, error %v; want %q", len(p.Groups), got, len(ts), err, want)
		}
	}
	got := ProposalV2{Transforms: []TransformV2{{TransformENCR, EncrAESCBC, 128}, {TransformINTEG, IntegHMACSHA256128, 0},
		{TransformPRF, PRFHMACSHA256, 0}, {TransformDH, uint16(Curve25519), 0}}}.String()
	if got != "AES_CBC_128/HMAC_SHA2_256_128/PRF_HMAC_SHA2_256/CURVE_25519" {
		t.Errorf("String: %s", got)
	}
}

func TestNonESPMarker(t *testing.T) {
	msg, _ := BuildSAInit(nil, SAInitParams{Rand: newDetRand()})
	udp := append(AppendNonESPMarker(nil), msg...)
	got, err := StripNonESPMarker(udp)
	if err != nil || !bytes.Equal(got, msg) {
		t.Fatalf("strip: %v", err)
	}
	if _, err := StripNonESPMarker([]byte{0, 0, 0, 1, 0}); !errors.Is(err, ErrESPPacket) {
		t.Fatalf("ESP: %v", err)
	}
	if _, err := StripNonESPMarker([]byte{0xff}); !errors.Is(err, ErrKeepalive) {
		t.Fatalf("keepalive: %v", err)
	}
}

// TestDecodeErrors: every bound the decoder checks, with the sentinel it returns.
func TestDecodeErrors(t *testing.T) {
	good, _ := BuildSAInit(nil, SAInitParams{Rand: newDetRand()})
	mut := func(f func(b []byte) []byte) []byte { return f(append([]byte{}, good...)) }
	cases := []struct {
		name string
		data []byte
		want error
	}{
		{"short", good[:27], ErrShort},
		{"version", mut(func(b []byte) []byte { b[17] = 0x30; return b }), ErrNotIKE},
		{"length below header", mut(func(b []byte) []byte { b[27] = 10; b[26] = 0; b[25] = 0; return b }), ErrBadLength},
		{"length huge", mut(func(b []byte) []byte { b[24] = 1; return b }), ErrTooLong},
		{"payload length 3", mut(func(b []byte) []byte { b[30], b[31] = 0, 3; return b }), ErrPayloadTooShort},
		{"payload overrun", mut(func(b []byte) []byte { b[30], b[31] = 0xff, 0xff; return b }), ErrPayloadOverrun},
		{"trailing bytes", mut(func(b []byte) []byte { b = append(b, 0, 0, 0, 0); b[27] += 4; return b }), ErrBadLength},
		{"chain does not end", mut(func(b []byte) []byte { b[len(b)-12] = byte(PayloadNonce); return b }), nil},
	}
	for _, c := range cases {
		var m Message
		err := m.DecodeFromBytes(c.data)
		if c.want == nil {
			if err == nil {
				t.Errorf("%s: accepted", c.name)
			}
			continue
		}
		if !errors.Is(err, c.want) {
			t.Errorf("%s: %v, want %v", c.name, err, c.want)
		}
	}
	var m Message
	if err := m.DecodeFromBytes(good[:len(good)-5]); err != nil || !m.Truncated {
		t.Errorf("truncated: %v %v", err, m.Truncated)
	}
}

func TestDecodeAllocs(t *testing.T) {
	b, _ := BuildSAInit(nil, SAInitParams{Size: 3000, Rand: newDetRand()})
	var m Message
	allocs := testing.AllocsPerRun(100, func() {
		if err := m.DecodeFromBytes(b); err != nil {
			t.Fatal(err)
		}
		for _, p := range m.Payloads {
			if p.Type == PayloadNotify {
				if _, err := ParseNotify(true, p.Body); err != nil {
					t.Fatal(err)
				}
			}
		}
	})
	if allocs != 0 {
		t.Fatalf("DecodeFromBytes + ParseNotify: %v allocs, want 0", allocs)
	}
}

func TestLieOnPurpose(t *testing.T) {
	h := Header{InitiatorSPI: SPIWithNonce(1), Version: VersionIKEv2, Exchange: ExchangeIKESAInit, Length: 9999, NextPayload: PayloadKE}
	b, err := AppendMessage(nil, h, SerializeOptions{}, &Raw{Type: PayloadNonce, Length: 2, Data: []byte{1, 2, 3}})
	if err != nil {
		t.Fatal(err)
	}
	want := "697073700000000100000000000000002220220000000000" + "0000270f" + "00000002010203"
	if got := hex.EncodeToString(b); got != want {
		t.Fatalf("got  %s\nwant %s", got, want)
	}
}

// TestBuildNotifyV1 checks the release message byte for byte: header with both cookies,
// Informational, not encrypted, one notify (DOI 1, protocol ISAKMP, 16-byte SPI = the
// cookies, the type asked for), 28 + 28 bytes.
func TestBuildNotifyV1(t *testing.T) {
	ic, rc := SPIWithNonce(0x01020304), [8]byte{9, 8, 7, 6, 5, 4, 3, 2}
	b, err := BuildNotifyV1([]byte("x"), ic, rc, 0x11223344, NotifyNoProposalChosen)
	if err != nil {
		t.Fatal(err)
	}
	if b[0] != 'x' {
		t.Fatal("prefix overwritten")
	}
	want, _ := hex.DecodeString("6970737001020304" + "0908070605040302" + "0b" + "10" + "05" + "00" + "11223344" + "00000038" +
		"00" + "00" + "001c" + "00000001" + "01" + "10" + "000e" + "6970737001020304" + "0908070605040302")
	if !bytes.Equal(b[1:], want) {
		t.Fatalf("got\n%s\nwant\n%s", hex.Dump(b[1:]), hex.Dump(want))
	}
	m := mustDecode(t, b[1:])
	p, ok := m.Find(PayloadNotifyV1)
	if !ok {
		t.Fatalf("payloads %v", types(m))
	}
	n, err := ParseNotify(false, p.Body)
	if err != nil || n.Type != NotifyNoProposalChosen || !bytes.Equal(n.SPI, append(ic[:], rc[:]...)) {
		t.Fatalf("notify %+v, %v", n, err)
	}
}

// TestVersionedPayloadTypes pins the type number each payload that both versions carry gets
// per version: IKEv2 numbers from RFC 7296 §3.2, IKEv1 numbers from RFC 2408 §3.1.
func TestVersionedPayloadTypes(t *testing.T) {
	for _, c := range []struct {
		name   string
		typeOf func(v2 bool) PayloadType
		v2, v1 PayloadType
	}{
		{"KE", func(v2 bool) PayloadType { return (&KE{V2: v2}).PayloadType() }, 34, 4},
		{"Notify", func(v2 bool) PayloadType { return (&Notify{V2: v2}).PayloadType() }, 41, 11},
		{"CertReq", func(v2 bool) PayloadType { return (&CertReq{V2: v2}).PayloadType() }, 38, 7},
		{"Nonce", func(v2 bool) PayloadType { return Nonce(v2, nil).PayloadType() }, 40, 10},
		{"VendorID", func(v2 bool) PayloadType { return VendorID(v2, nil).PayloadType() }, 43, 13},
	} {
		if got := c.typeOf(true); got != c.v2 {
			t.Errorf("%s IKEv2: payload type %d, want %d", c.name, got, c.v2)
		}
		if got := c.typeOf(false); got != c.v1 {
			t.Errorf("%s IKEv1: payload type %d, want %d", c.name, got, c.v1)
		}
	}
}

// TestParseSAMalformed: both versions read proposals and transforms alike: a bad one is
// ErrMalformed naming the version and the part, and the proposals read before it come back.
func TestParseSAMalformed(t *testing.T) {
	// One proposal (number 1, protocol 1, no SPI, one transform) whose transform has a body
	// of 2 bytes, less than a transform's 4-byte head.
	shortTransform := []byte{0, 0, 0, 14, 1, 1, 0, 1, 0, 0, 0, 6, 1, 1}
	if _, err := ParseSAv2(shortTransform); !errors.Is(err, ErrMalformed) || !strings.Contains(err.Error(), "IKEv2 transform of 2 bytes") {
		t.Errorf("IKEv2 short transform: %v", err)
	}
	if _, err := ParseSAv1(append([]byte{0, 0, 0, 1, 0, 0, 0, 1}, shortTransform...)); !errors.Is(err, ErrMalformed) || !strings.Contains(err.Error(), "IKEv1 transform of 2 bytes") {
		t.Errorf("IKEv1 short transform: %v", err)
	}

	p1 := ProposalV2{Number: 1, ProtocolID: 1, Transforms: []TransformV2{{Type: 1, ID: 20, KeyLength: 128}}}
	p2 := ProposalV2{Number: 2, ProtocolID: 1, Transforms: []TransformV2{{Type: 4, ID: 19}}}
	body := (&SAv2{Proposals: []ProposalV2{p1, p2}}).AppendBody(nil)
	second := int(body[2])<<8 | int(body[3])
	body[second+4+2] = 255 // the second proposal's SPI size runs past its end
	sa, err := ParseSAv2(body)
	if !errors.Is(err, ErrMalformed) || !strings.Contains(err.Error(), "IKEv2 proposal of") {
		t.Errorf("IKEv2 bad SPI size: %v", err)
	}
	if len(sa.Proposals) != 1 || !reflect.DeepEqual(sa.Proposals[0].Transforms, p1.Transforms) || sa.Proposals[0].Number != 1 {
		t.Errorf("IKEv2 bad second proposal: got proposals %+v, want the first one alone", sa.Proposals)
	}

	v1 := ProposalV1{Number: 1, ProtocolID: 1, Transforms: []TransformV1{{Number: 1, ID: 1, Attributes: []Attribute{TV(1, 7)}}}}
	body = (&SAv1{DOI: 1, Situation: 1, Proposals: []ProposalV1{v1, v1}}).AppendBody(nil)
	second = 8 + (int(body[10])<<8 | int(body[11]))
	body[second+4+2] = 255
	sa1, err := ParseSAv1(body)
	if !errors.Is(err, ErrMalformed) || !strings.Contains(err.Error(), "IKEv1 proposal of") {
		t.Errorf("IKEv1 bad SPI size: %v", err)
	}
	if len(sa1.Proposals) != 1 || !reflect.DeepEqual(sa1.Proposals[0].Transforms, v1.Transforms) {
		t.Errorf("IKEv1 bad second proposal: got proposals %+v, want the first one alone", sa1.Proposals)
	}
}
