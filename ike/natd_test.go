package ike

import (
	"crypto/sha256"
	"encoding/hex"
	"net/netip"
	"path/filepath"
	"testing"
)

// NAT detection against strongSwan's own hashes, captured in the lab's nat profile: ini
// (198.51.100.10) behind r1's masquerade (192.0.2.65), rsp 203.0.113.10. Both charons run
// kernel-libipsec, which fakes their own source hash (UDP encapsulation is forced).

var natdDir = filepath.Join("testdata", "natd")

func natdGolden(t *testing.T, name string) *Message {
	t.Helper()
	for _, g := range loadGoldens(t, natdDir) {
		if g.name == name {
			var m Message
			if err := m.DecodeFromBytes(g.msg()); err != nil {
				t.Fatalf("%s: %v", name, err)
			}
			return &m
		}
	}
	t.Fatalf("no golden %s in %s", name, natdDir)
	return nil
}

var (
	iniAddr   = netip.MustParseAddrPort("198.51.100.10:500")
	natPublic = netip.MustParseAddrPort("192.0.2.65:500")
	rspAddr   = netip.MustParseAddrPort("203.0.113.10:500")
)

func TestNATDHashVectors(t *testing.T) {
	// IKEv2 response (SHA-1, both SPIs): rsp's NAT_DETECTION_DESTINATION_IP hashes where it
	// saw ini: the NAT's public address.
	v2 := natdGolden(t, "strongswan-5.9.8-ikev2-sa-init-response-behind-nat")
	src, dst := NATDFromMessage(v2)
	if len(src) != 1 || len(dst) != 1 {
		t.Fatalf("IKEv2 response: %d source and %d destination hashes, want 1 and 1", len(src), len(dst))
	}
	if got, want := hex.EncodeToString(dst[0]), "9324fe7081e1ab9a0d0853f227b8f62344d7036d"; got != want {
		t.Errorf("NAT_DETECTION_DESTINATION_IP %s, want %s", got, want)
	}
	if got := NATDetectionHash(v2.InitiatorSPI, v2.ResponderSPI, natPublic); string(got) != string(dst[0]) {
		t.Errorf("NATDetectionHash(%s) = %x, want strongSwan's %x", natPublic, got, dst[0])
	}
	// The request (responder SPI zero): ini's NAT_DETECTION_DESTINATION_IP is rsp's address.
	req := natdGolden(t, "strongswan-5.9.8-ikev2-sa-init-request-behind-nat")
	_, rdst := NATDFromMessage(req)
	if len(rdst) != 1 || string(NATDetectionHash(req.InitiatorSPI, [8]byte{}, rspAddr)) != string(rdst[0]) {
		t.Errorf("request's destination hash %x is not NATDetectionHash(%s)", rdst, rspAddr)
	}

	// IKEv1 Main Mode 4 (SHA2-256, the negotiated hash): the first NAT-D is ini as rsp saw it.
	v1 := natdGolden(t, "strongswan-5.9.8-ikev1-mm4-behind-nat")
	src, dst = NATDFromMessage(v1)
	if len(src) != 1 || len(dst) != 1 {
		t.Fatalf("IKEv1 MM4: %d source and %d destination NAT-D, want 1 and 1", len(src), len(dst))
	}
	if got, want := hex.EncodeToString(dst[0]), "219e7ced5bf4c7666c0dbfe5123343d30382bb9f790b428980572363cdc93673"; got != want {
		t.Errorf("first NAT-D %s, want %s", got, want)
	}
	if got := NATDHashV1(HashV1Func(HashV1SHA256), v1.InitiatorSPI, v1.ResponderSPI, natPublic); string(got) != string(dst[0]) {
		t.Errorf("NATDHashV1(sha256, %s) = %x, want strongSwan's %x", natPublic, got, dst[0])
	}
	mm3 := natdGolden(t, "strongswan-5.9.8-ikev1-mm3-behind-nat")
	_, d3 := NATDFromMessage(mm3)
	if len(d3) != 1 || string(NATDHashV1(sha256.New, mm3.InitiatorSPI, mm3.ResponderSPI, rspAddr)) != string(d3[0]) {
		t.Errorf("MM3's first NAT-D %x is not NATDHashV1(%s)", d3, rspAddr)
	}
	// An independent value (python hashlib.sha256 of the same bytes) for the vector itself.
	if got := NATDHashV1(sha256.New, v1.InitiatorSPI, v1.ResponderSPI, rspAddr); hex.EncodeToString(got) != "514f529cd78f5cbcfa6ce2f259e242ad7ef8303de247a42f9123cc7f0c396d63" {
		t.Errorf("NATDHashV1(%s) = %x", rspAddr, got)
	}
}

func TestCheckNATD(t *testing.T) {
	for _, c := range []struct {
		name        string
		local       netip.AddrPort
		ours, their bool
	}{
		// ini behind the NAT: its own address is not what rsp hashed.
		{"behind the NAT", iniAddr, true, true},
		// Had ini itself owned 192.0.2.65, nothing would have rewritten it.
		{"no NAT on our side", natPublic, false, true},
	} {
		for _, g := range []string{"strongswan-5.9.8-ikev2-sa-init-response-behind-nat", "strongswan-5.9.8-ikev1-mm4-behind-nat"} {
			m := natdGolden(t, g)
			hashOf := func(ap netip.AddrPort) []byte { return NATDetectionHash(m.InitiatorSPI, m.ResponderSPI, ap) }
			if m.Major() == 1 {
				hashOf = func(ap netip.AddrPort) []byte { return NATDHashV1(sha256.New, m.InitiatorSPI, m.ResponderSPI, ap) }
			}
			src, dst := NATDFromMessage(m)
			n := CheckNATD(hashOf, c.local, rspAddr, src, dst)
			if !n.Checked() || n.Ours == nil || n.Theirs == nil {
				t.Fatalf("%s %s: nothing checked: %+v", c.name, g, n)
			}
			// rsp runs kernel-libipsec: its own source hash is random, so its side always
			// looks translated.
			if *n.Ours != c.ours || *n.Theirs != c.their || !n.Any() {
				t.Errorf("%s %s: ours %v theirs %v, want %v %v", c.name, g, *n.Ours, *n.Theirs, c.ours, c.their)
			}
		}
	}
	// An answer without hashes says nothing.
	if n := CheckNATD(func(netip.AddrPort) []byte { return nil }, iniAddr, rspAddr, nil, nil); n.Checked() || n.Any() {
		t.Errorf("no hashes: %+v", n)
	}
	if HashV1Func(99) != nil || HashV1Func(HashV1SHA1) == nil {
		t.Error("HashV1Func")
	}
}

// FuzzNATD: NATDFromMessage and CheckNATD on any decodable message never panic, and every
// hash they return lies inside the message.
func FuzzNATD(f *testing.F) {
	for _, dir := range []string{natdDir, goldenDir} {
		for _, g := range loadGoldens(f, dir) {
			f.Add(g.msg())
		}
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		var m Message
		if err := m.DecodeFromBytes(b); err != nil {
			return
		}
		src, dst := NATDFromMessage(&m)
		if len(src)+len(dst) > len(m.Payloads) {
			t.Fatalf("%d hashes from %d payloads", len(src)+len(dst), len(m.Payloads))
		}
		for _, h := range append(src, dst...) {
			if len(h) > len(b) {
				t.Fatalf("hash of %d bytes from a %d-byte message", len(h), len(b))
			}
		}
		n := CheckNATD(func(ap netip.AddrPort) []byte { return NATDetectionHash(m.InitiatorSPI, m.ResponderSPI, ap) }, iniAddr, rspAddr, src, dst)
		if (len(dst) > 0) != (n.Ours != nil) || (len(src) > 0) != (n.Theirs != nil) {
			t.Fatalf("checked %+v from %d/%d hashes", n, len(src), len(dst))
		}
	})
}

// TestBuildMainMode3: our message 3 carries KE, Nonce and the two NAT-D hashes in RFC
// 3947's order, the destination's equal to strongSwan's own in the captured message 3.
func TestBuildMainMode3(t *testing.T) {
	mm3 := natdGolden(t, "strongswan-5.9.8-ikev1-mm3-behind-nat")
	_, want := NATDFromMessage(mm3)
	ke := make([]byte, 256)
	nonce := make([]byte, 32)
	b, err := BuildMainMode3([]byte("foo"), MainMode3Params{CookieI: mm3.InitiatorSPI, CookieR: mm3.ResponderSPI,
		KE: ke, Nonce: nonce, Hash: sha256.New, Local: iniAddr, Remote: rspAddr})
	if err != nil {
		t.Fatal(err)
	}
	if string(b[:3]) != "foo" {
		t.Fatal("BuildMainMode3 does not append")
	}
	var m Message
	if err := m.DecodeFromBytes(b[3:]); err != nil {
		t.Fatal(err)
	}
	var types []PayloadType
	for _, p := range m.Payloads {
		types = append(types, p.Type)
	}
	if len(types) != 4 || types[0] != PayloadKEv1 || types[1] != PayloadNonceV1 || types[2] != PayloadNATDV1 || types[3] != PayloadNATDV1 {
		t.Fatalf("payloads %v, want KE, Nonce, NAT-D, NAT-D", types)
	}
	src, dst := NATDFromMessage(&m)
	if len(dst) != 1 || string(dst[0]) != string(want[0]) {
		t.Errorf("destination NAT-D %x, want strongSwan's %x", dst, want)
	}
	if len(src) != 1 || string(src[0]) != string(NATDHashV1(sha256.New, mm3.InitiatorSPI, mm3.ResponderSPI, iniAddr)) {
		t.Errorf("source NAT-D %x", src)
	}
	if m.InitiatorSPI != mm3.InitiatorSPI || m.ResponderSPI != mm3.ResponderSPI || m.Major() != 1 {
		t.Errorf("header %+v", m.Header)
	}
	if _, err := BuildMainMode3(nil, MainMode3Params{KE: ke, Nonce: nonce[:4], Hash: sha256.New}); err == nil {
		t.Error("a 4-byte nonce was accepted")
	}
}
