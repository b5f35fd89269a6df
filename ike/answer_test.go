package ike

import (
	"net/netip"
	"reflect"
	"testing"
)

// sentFor is the request a captured answer replies to: its version and initiator SPI, from
// the lab's clean profile (ini 198.51.100.10, rsp 203.0.113.10).
func sentFor(t *testing.T, msg []byte) Sent {
	t.Helper()
	var h Header
	if err := h.DecodeFromBytes(msg); err != nil {
		t.Fatal(err)
	}
	return Sent{Version: h.Major(), SPI: h.InitiatorSPI,
		Local: netip.MustParseAddrPort("198.51.100.10:500"), Remote: netip.MustParseAddrPort("203.0.113.10:500")}
}

// TestReadAnswerGoldens reads what strongSwan 5.9.8 answered in the lab.
func TestReadAnswerGoldens(t *testing.T) {
	mmVIDs := []string{"XAUTH", "Dead Peer Detection v1.0", "IKE Fragmentation", "RFC 3947 NAT-T"}
	mm2 := Answer{Kind: AnswerAccepted, VendorIDs: mmVIDs, Fragmentation: true, NATT: true,
		Chosen: "aes256-sha256-modp2048", ChosenDetail: "Enc=AES KeyLength=256 Hash=SHA2-256 Group=14:modp2048 Auth=PSK LifeType=Seconds LifeDuration=28800"}
	invalidKE := Answer{Kind: AnswerInvalidKE, Notify: NotifyInvalidKEPayload, Group: MODP2048}
	want := map[string]Answer{
		"strongswan-5.9.8-ikev2-sa-init-response": {Kind: AnswerAccepted, Fragmentation: true, NATT: true,
			Chosen: "aes128-sha256-prfsha256-modp2048", ChosenDetail: "AES_CBC_128/HMAC_SHA2_256_128/PRF_HMAC_SHA2_256/MODP_2048"},
		"strongswan-5.9.8-ikev2-invalid-ke":         invalidKE,
		"strongswan-5.9.8-ikev2-invalid-ke-4500":    invalidKE,
		"strongswan-5.9.8-ikev2-cookie":             {Kind: AnswerCookie, CookieSeen: true},
		"strongswan-5.9.8-ikev2-no-proposal-chosen": {Kind: AnswerRefused, Notify: NotifyNoProposalChosen},
		"strongswan-5.9.8-ikev1-mm2":                mm2,
		"strongswan-5.9.8-ikev1-mm2-4500":           mm2,
		"strongswan-5.9.8-ikev1-no-proposal-chosen": {Kind: AnswerRefused, Notify: NotifyNoProposalChosen},
	}
	eachGolden(t, goldenDir, want, func(t *testing.T, g golden, w Answer) {
		a := ReadAnswer(g.msg(), sentFor(t, g.msg()))
		if a.Kind == AnswerCookie && len(a.Cookie) == 0 {
			t.Error("COOKIE without its data")
		}
		a.Cookie = nil
		// The lab's source port is not in the capture: the hashes are checked, their
		// values are TestReadAnswerNATD's.
		if a.Kind == AnswerAccepted && g.msg()[17]>>4 == 2 && !a.NATD.Checked() {
			t.Error("NAT detection hashes not checked")
		}
		a.NATD = NATDCheck{}
		if !reflect.DeepEqual(a, w) {
			t.Errorf("read %+v (%s)\nwant %+v (%s)", a, a.Kind, w, w.Kind)
		}
	})
}

// TestReadAnswerNATD: an accepted IKEv2 answer's NAT detection hashes, checked against the
// addresses we sent from and to (the lab's nat profile, ini behind 192.0.2.65).
func TestReadAnswerNATD(t *testing.T) {
	var msg []byte
	for _, g := range loadGoldens(t, natdDir) {
		if g.name == "strongswan-5.9.8-ikev2-sa-init-response-behind-nat" {
			msg = g.msg()
		}
	}
	s := sentFor(t, msg)
	for _, c := range []struct {
		local       netip.AddrPort
		ours, their bool
	}{{iniAddr, true, true}, {natPublic, false, true}} {
		s.Local, s.Remote = c.local, rspAddr
		a := ReadAnswer(msg, s)
		if a.Kind != AnswerAccepted || a.NATD.Ours == nil || a.NATD.Theirs == nil {
			t.Fatalf("from %s: %+v", c.local, a)
		}
		if *a.NATD.Ours != c.ours || *a.NATD.Theirs != c.their {
			t.Errorf("from %s: ours %v theirs %v, want %v %v", c.local, *a.NATD.Ours, *a.NATD.Theirs, c.ours, c.their)
		}
	}
}

// TestReadAnswerCrafted covers what the captures do not: an INVALID_KE_PAYLOAD without its
// group, an answer with neither SA nor error, a COOKIE in IKEv1, bytes that do not decode.
func TestReadAnswerCrafted(t *testing.T) {
	spi := SPIWithNonce(7)
	msg := func(v2 bool, bodies ...Body) []byte {
		h := Header{InitiatorSPI: spi, Version: VersionIKEv2, Exchange: ExchangeIKESAInit, Flags: FlagResponse}
		if !v2 {
			h = Header{InitiatorSPI: spi, Version: VersionIKEv1, Exchange: ExchangeInformationalV1}
		}
		b, err := AppendMessage(nil, h, SerializeOptions{FixLengths: true}, bodies...)
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	n := func(v2 bool, typ NotifyType, data []byte) *Notify {
		return &Notify{V2: v2, DOI: 1, ProtocolID: 1, Type: typ, Data: data}
	}
	for _, c := range []struct {
		name    string
		version int
		msg     []byte
		want    Answer
	}{
		{"invalid-ke without group", 2, msg(true, n(true, NotifyInvalidKEPayload, []byte{14})),
			Answer{Kind: AnswerRefused, Notify: NotifyInvalidKEPayload}},
		{"ikev1 invalid-ke is a refusal", 1, msg(false, n(false, NotifyInvalidKEPayload, []byte{0, 14})),
			Answer{Kind: AnswerRefused, Notify: NotifyInvalidKEPayload}},
		{"no SA, no error", 2, msg(true, n(true, NotifyFragmentationSupported, nil)),
			Answer{Kind: AnswerNoSA, Fragmentation: true}},
		{"first error decides", 2, msg(true, n(true, NotifyNoProposalChosen, nil), n(true, NotifyInvalidKEPayload, []byte{0, 14})),
			Answer{Kind: AnswerRefused, Notify: NotifyNoProposalChosen}},
		{"cookie ends the reading", 2, msg(true, n(true, NotifyCookie, []byte("c00kie")), n(true, NotifyNoProposalChosen, nil)),
			Answer{Kind: AnswerCookie, Cookie: []byte("c00kie"), CookieSeen: true}},
		{"ikev1 cookie is only seen", 1, msg(false, n(false, NotifyCookie, []byte("c")), n(false, NotifyNoProposalChosen, nil)),
			Answer{Kind: AnswerRefused, Notify: NotifyNoProposalChosen, CookieSeen: true}},
	} {
		t.Run(c.name, func(t *testing.T) {
			a := ReadAnswer(c.msg, Sent{Version: c.version, SPI: spi})
			if !reflect.DeepEqual(a, c.want) {
				t.Errorf("read %+v, want %+v", a, c.want)
			}
		})
	}
	if a := ReadAnswer([]byte{1, 2, 3}, Sent{Version: 2}); a.Kind != AnswerMalformed || a.Err == nil {
		t.Errorf("3 bytes: %+v", a)
	}
	if AnswerKind(0).String() != "unknown" || AnswerAccepted.String() != "accepted" {
		t.Error("AnswerKind names")
	}
}

// FuzzReadAnswer: the reading never panics, is a function of its input (the same bytes read
// twice give the same answer), keeps nothing of msg (overwriting msg changes no field), and
// its kind says what its fields carry.
func FuzzReadAnswer(f *testing.F) {
	for _, s := range seeds(f) {
		f.Add(s, true)
		f.Add(s, false)
	}
	f.Fuzz(func(t *testing.T, data []byte, v2 bool) {
		s := Sent{Version: 1, SPI: SPIWithNonce(5), Local: netip.MustParseAddrPort("198.51.100.10:500"),
			Remote: netip.MustParseAddrPort("203.0.113.10:500")}
		if v2 {
			s.Version = 2
		}
		msg := append([]byte(nil), data...)
		a := ReadAnswer(msg, s)
		for i := range msg {
			msg[i] ^= 0xff
		}
		b := ReadAnswer(data, s)
		if !reflect.DeepEqual(a, b) {
			t.Fatalf("read twice: %+v, then %+v", a, b)
		}
		if a.Kind < AnswerMalformed || a.Kind > AnswerAccepted {
			t.Fatalf("kind %d", a.Kind)
		}
		if (a.Kind == AnswerMalformed) != (a.Err != nil) {
			t.Fatalf("kind %s, error %v", a.Kind, a.Err)
		}
		if a.Kind == AnswerCookie && (!v2 || !a.CookieSeen) {
			t.Fatalf("cookie answer %+v in version %d", a, s.Version)
		}
		if a.Kind != AnswerCookie && a.Cookie != nil {
			t.Fatalf("%s carries a cookie", a.Kind)
		}
		if (a.Kind == AnswerRefused || a.Kind == AnswerInvalidKE) != a.Notify.Error() {
			t.Fatalf("%s with notify %s", a.Kind, a.Notify)
		}
		if a.Kind == AnswerInvalidKE && (!v2 || a.Notify != NotifyInvalidKEPayload) {
			t.Fatalf("invalid-ke reading %+v in version %d", a, s.Version)
		}
		if a.Kind != AnswerAccepted && (a.Chosen != "" || a.NATD.Checked()) {
			t.Fatalf("%s with a chosen proposal or NAT check: %+v", a.Kind, a)
		}
		if a.Kind == AnswerAccepted && !v2 && a.NATD.Checked() {
			t.Fatal("IKEv1 message 2 has no NAT detection to check")
		}
	})
}
