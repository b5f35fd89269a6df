package ike

import (
	"bufio"
	"bytes"
	"encoding/hex"
	"os"
	"path/filepath"
	"reflect"
	"strconv"
	"strings"
	"testing"
)

// golden is a captured IKE datagram from testdata/golden/NAME.hex: comment lines (#) name
// the source and carry the tshark line, "port N" the UDP port it came from, then hex.
type golden struct {
	name string
	port int
	udp  []byte
}

// msg is the IKE message: the UDP payload without the non-ESP marker on 4500.
func (g golden) msg() []byte {
	if g.port == 4500 {
		if m, err := StripNonESPMarker(g.udp); err == nil {
			return m
		}
	}
	return g.udp
}

// loadGoldens reads every golden datagram under dir.
func loadGoldens(tb testing.TB, dir string) []golden {
	tb.Helper()
	files, err := filepath.Glob(filepath.Join(dir, "*.hex"))
	if err != nil || len(files) == 0 {
		tb.Fatalf("no golden packets in %s: %v", dir, err)
	}
	var gs []golden
	for _, f := range files {
		data, err := os.ReadFile(f)
		if err != nil {
			tb.Fatal(err)
		}
		g := golden{name: strings.TrimSuffix(filepath.Base(f), ".hex")}
		var hx strings.Builder
		sc := bufio.NewScanner(bytes.NewReader(data))
		for sc.Scan() {
			line := strings.TrimSpace(sc.Text())
			switch {
			case line == "" || strings.HasPrefix(line, "#"):
			case strings.HasPrefix(line, "port "):
				g.port, _ = strconv.Atoi(strings.TrimPrefix(line, "port "))
			default:
				hx.WriteString(line)
			}
		}
		if g.udp, err = hex.DecodeString(hx.String()); err != nil {
			tb.Fatalf("%s: %v", f, err)
		}
		gs = append(gs, g)
	}
	return gs
}

var goldenDir = filepath.Join("testdata", "golden")

// goldenWant is what TestGoldens expects of a golden datagram.
type goldenWant struct {
	version  uint8
	exchange ExchangeType
	types    []PayloadType
	check    func(t *testing.T, m *Message)
}

// TestGoldens decodes what strongSwan 5.9.8 answered in the lab and checks what a probe
// reads from it.
func TestGoldens(t *testing.T) {
	N, SA, KE, No, CR, V := PayloadNotify, PayloadSA, PayloadKE, PayloadNonce, PayloadCertReq, PayloadVendorIDV1
	want := map[string]goldenWant{
		"strongswan-5.9.8-ikev2-sa-init-response": {VersionIKEv2, ExchangeIKESAInit, []PayloadType{SA, KE, No, N, N, CR, N, N, N, N},
			func(t *testing.T, m *Message) {
				sa, err := ParseSAv2(m.Payloads[0].Body)
				if err != nil || len(sa.Proposals) != 1 || sa.Proposals[0].String() != "AES_CBC_128/HMAC_SHA2_256_128/PRF_HMAC_SHA2_256/MODP_2048" ||
					sa.Proposals[0].Keywords() != "aes128-sha256-prfsha256-modp2048" {
					t.Errorf("SA %+v %v", sa, err)
				}
				ke, err := ParseKEv2(m.Payloads[1].Body)
				if err != nil || ke.Group != MODP2048 || len(ke.Data) != 256 {
					t.Errorf("KE %s %d %v", ke.Group, len(ke.Data), err)
				}
				var got []NotifyType
				for _, p := range m.Payloads {
					if p.Type == PayloadNotify {
						n, err := ParseNotify(true, p.Body)
						if err != nil {
							t.Fatal(err)
						}
						got = append(got, n.Type)
					}
				}
				wantN := []NotifyType{NotifyNATDetectionSourceIP, NotifyNATDetectionDestinationIP, NotifyFragmentationSupported,
					NotifySignatureHashAlgorithms, NotifyChildlessIKEv2Supported, NotifyMultipleAuthSupported}
				if !reflect.DeepEqual(got, wantN) {
					t.Errorf("notifies %v, want %v", got, wantN)
				}
				cr, err := ParseCertReq(true, m.Payloads[5].Body)
				if err != nil || cr.Encoding != 4 || len(cr.Authority) != 20 {
					t.Errorf("CERTREQ %+v %v", cr, err)
				}
				if !m.IsResponse() || m.ResponderSPI == [8]byte{} {
					t.Errorf("header %+v", m.Header)
				}
			}},
		"strongswan-5.9.8-ikev2-invalid-ke":      {VersionIKEv2, ExchangeIKESAInit, []PayloadType{N}, notifyIs(true, NotifyInvalidKEPayload, []byte{0, 14})},
		"strongswan-5.9.8-ikev2-invalid-ke-4500": {VersionIKEv2, ExchangeIKESAInit, []PayloadType{N}, notifyIs(true, NotifyInvalidKEPayload, []byte{0, 14})},
		"strongswan-5.9.8-ikev2-cookie":          {VersionIKEv2, ExchangeIKESAInit, []PayloadType{N}, notifyIs(true, NotifyCookie, nil)},
		"strongswan-5.9.8-ikev2-no-proposal-chosen": {VersionIKEv2, ExchangeIKESAInit, []PayloadType{N},
			notifyIs(true, NotifyNoProposalChosen, []byte{})},
		"strongswan-5.9.8-ikev1-mm2":      {VersionIKEv1, ExchangeIdentityProtection, []PayloadType{PayloadSAv1, V, V, V, V}, mm2},
		"strongswan-5.9.8-ikev1-mm2-4500": {VersionIKEv1, ExchangeIdentityProtection, []PayloadType{PayloadSAv1, V, V, V, V}, mm2},
		"strongswan-5.9.8-ikev1-no-proposal-chosen": {VersionIKEv1, ExchangeInformationalV1, []PayloadType{PayloadNotifyV1},
			notifyIs(false, NotifyNoProposalChosen, nil)},
	}
	eachGolden(t, goldenDir, want, func(t *testing.T, g golden, w goldenWant) {
		if g.port == 4500 && !bytes.Equal(g.udp[:4], []byte{0, 0, 0, 0}) {
			t.Fatalf("no non-ESP marker")
		}
		m := mustDecode(t, g.msg())
		if m.Version != w.version || m.Exchange != w.exchange || !reflect.DeepEqual(types(m), w.types) || m.Truncated {
			t.Fatalf("decoded %+v %v", m.Header, types(m))
		}
		if _, ok := NonceFromSPI(m.InitiatorSPI); !ok {
			t.Errorf("initiator SPI %x is not ours", m.InitiatorSPI)
		}
		w.check(t, m)
	})
}

// eachGolden runs check in a subtest on every golden datagram of dir with its expectation
// in want: a golden without one, or an expectation without its golden, fails.
func eachGolden[W any](t *testing.T, dir string, want map[string]W, check func(*testing.T, golden, W)) {
	t.Helper()
	gs := loadGoldens(t, dir)
	if len(gs) != len(want) {
		t.Fatalf("%d golden files, %d expectations", len(gs), len(want))
	}
	for _, g := range gs {
		t.Run(g.name, func(t *testing.T) {
			w, ok := want[g.name]
			if !ok {
				t.Fatalf("no expectation for %s", g.name)
			}
			check(t, g, w)
		})
	}
}

func notifyIs(v2 bool, typ NotifyType, data []byte) func(*testing.T, *Message) {
	return func(t *testing.T, m *Message) {
		n, err := ParseNotify(v2, m.Payloads[0].Body)
		if err != nil || n.Type != typ || (data != nil && !bytes.Equal(n.Data, data)) {
			t.Errorf("notify %s data %x (%v), want %s %x", n.Type, n.Data, err, typ, data)
		}
		if typ == NotifyCookie && len(n.Data) == 0 {
			t.Error("empty cookie")
		}
	}
}

func mm2(t *testing.T, m *Message) {
	sa, err := ParseSAv1(m.Payloads[0].Body)
	if err != nil || len(sa.Proposals) != 1 || len(sa.Proposals[0].Transforms) != 1 {
		t.Fatalf("SA %+v %v", sa, err)
	}
	tr := sa.Proposals[0].Transforms[0]
	if tr.Keywords() != "aes256-sha256-modp2048" {
		t.Errorf("chosen %s (%s)", tr.Keywords(), tr)
	}
	var names []string
	for _, p := range m.Payloads[1:] {
		names = append(names, VendorName(p.Body))
	}
	if want := []string{"XAUTH", "Dead Peer Detection v1.0", "IKE Fragmentation", "RFC 3947 NAT-T"}; !reflect.DeepEqual(names, want) {
		t.Errorf("vendor IDs %v, want %v", names, want)
	}
	if m.ResponderSPI == [8]byte{} {
		t.Error("no responder cookie")
	}
}

func BenchmarkDecodeGolden(b *testing.B) {
	for _, g := range loadGoldens(b, goldenDir) {
		msg := g.msg()
		b.Run(g.name, func(b *testing.B) { benchDecode(b, msg) })
	}
}
