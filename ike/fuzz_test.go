package ike

import (
	"bytes"
	"testing"
)

// seeds are the messages the fuzz targets start from: our builders' output, and the
// golden packets of golden_test.go.
func seeds(tb testing.TB) [][]byte {
	v2, _ := BuildSAInit(nil, SAInitParams{SPI: SPIWithNonce(1), Rand: newDetRand()})
	v2big, _ := BuildSAInit(nil, SAInitParams{SPI: SPIWithNonce(2), Size: 1600, Rand: newDetRand()})
	v1, _ := BuildMainMode(nil, MainModeParams{Cookie: SPIWithNonce(3)})
	v1k, _ := BuildMainMode(nil, MainModeParams{Cookie: SPIWithNonce(4), Auth: AuthGSSKerberos, Size: 700})
	skf, _ := AppendMessage(nil, Header{Version: VersionIKEv2, Exchange: ExchangeIKEAuth, Flags: FlagInitiator, MessageID: 1},
		SerializeOptions{FixLengths: true}, &SKF{FragmentNumber: 1, TotalFragments: 3, InnerNextPayload: PayloadIDi, Encrypted: make([]byte, 48)})
	frag1, _ := AppendMessage(nil, Header{Version: VersionIKEv1, Exchange: ExchangeIdentityProtection},
		SerializeOptions{FixLengths: true}, &FragmentV1{ID: 1, Number: 1, Last: true, Data: []byte("x")})
	out := [][]byte{v2, v2big, v1, v1k, skf, frag1}
	for _, g := range loadGoldens(tb, goldenDir) {
		out = append(out, g.msg())
	}
	return out
}

// FuzzDecode: the decoder never panics, a decoded message re-encodes to the same payloads,
// and every typed parser survives every body.
func FuzzDecode(f *testing.F) {
	for _, s := range seeds(f) {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		var m Message
		if err := m.DecodeFromBytes(data); err != nil {
			return
		}
		if len(m.Payloads) > MaxPayloads {
			t.Fatalf("%d payloads", len(m.Payloads))
		}
		v2 := m.Major() == 2
		var raws []Body
		for _, p := range m.Payloads {
			switch p.Type {
			case PayloadSA:
				_, _ = ParseSAv2(p.Body)
			case PayloadSAv1:
				_, _ = ParseSAv1(p.Body)
			case PayloadKE:
				_, _ = ParseKEv2(p.Body)
			case PayloadNotify, PayloadNotifyV1:
				_, _ = ParseNotify(v2, p.Body)
			case PayloadCertReq, PayloadCertReqV1:
				_, _ = ParseCertReq(v2, p.Body)
			case PayloadSKF:
				_, _ = ParseSKF(p)
			case PayloadFragmentV1:
				_, _ = ParseFragmentV1(p.Body)
			case PayloadVendorID, PayloadVendorIDV1:
				_ = VendorName(p.Body)
			}
			raws = append(raws, &Raw{Type: p.Type, Next: p.Next, NextSet: true, Critical: p.Critical, Data: p.Body})
		}
		if m.Truncated {
			return
		}
		b, err := AppendMessage(nil, m.Header, SerializeOptions{}, raws...)
		if err != nil {
			t.Fatalf("re-encode: %v", err)
		}
		var m2 Message
		if err := m2.DecodeFromBytes(b); err != nil {
			t.Fatalf("re-decode: %v", err)
		}
		if m2.Header != m.Header || len(m2.Payloads) != len(m.Payloads) {
			t.Fatalf("re-decode: %+v / %d payloads, want %+v / %d", m2.Header, len(m2.Payloads), m.Header, len(m.Payloads))
		}
		for i := range m.Payloads {
			if m2.Payloads[i].Type != m.Payloads[i].Type || !bytes.Equal(m2.Payloads[i].Body, m.Payloads[i].Body) {
				t.Fatalf("payload %d differs", i)
			}
		}
	})
}

// FuzzParseSA: the SA parsers (nested proposals, transforms, attributes) never panic and
// what they accept re-encodes to an SA they accept again with the same content.
func FuzzParseSA(f *testing.F) {
	for _, s := range seeds(f) {
		var m Message
		if m.DecodeFromBytes(s) == nil {
			for _, p := range m.Payloads {
				if p.Type == PayloadSA || p.Type == PayloadSAv1 {
					f.Add(p.Body, p.Type == PayloadSA)
				}
			}
		}
	}
	f.Fuzz(func(t *testing.T, body []byte, v2 bool) {
		if v2 {
			sa, err := ParseSAv2(body)
			if err != nil {
				return
			}
			for _, p := range sa.Proposals {
				if len(p.Transforms) > 255 {
					return
				}
			}
			sa2, err := ParseSAv2(sa.AppendBody(nil))
			if err != nil || len(sa2.Proposals) != len(sa.Proposals) {
				t.Fatalf("re-parse: %v", err)
			}
			return
		}
		sa, err := ParseSAv1(body)
		if err != nil {
			return
		}
		for _, p := range sa.Proposals {
			if len(p.Transforms) > 255 {
				return
			}
			for _, tr := range p.Transforms {
				_ = tr.String()
				_ = tr.Keywords()
			}
		}
		sa2, err := ParseSAv1(sa.AppendBody(nil))
		if err != nil || len(sa2.Proposals) != len(sa.Proposals) {
			t.Fatalf("re-parse: %v", err)
		}
	})
}
