package ike

import (
	"context"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/google/gopacket"
	"github.com/google/gopacket/layers"
	"github.com/google/gopacket/pcapgo"
	"github.com/ipsecpath/ipsecpath/testlab"
)

// crafted is one message we build, the UDP port it goes to, and what tshark -V must print
// for the fields we set.
type crafted struct {
	name string
	port uint16
	msg  []byte
	want []string
}

func craftedMessages(t *testing.T) []crafted {
	t.Helper()
	must := func(b []byte, err error) []byte {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	spi := SPIWithNonce(0x01020304)
	local := mustAddrPort("198.51.100.10:500")
	remote := mustAddrPort("203.0.113.10:500")
	p14, _ := ParseProposal("aes128-sha256-modp2048")
	refuse := func(v2 bool, n NotifyType, data []byte) []byte {
		h := Header{InitiatorSPI: spi, Version: VersionIKEv2, Exchange: ExchangeIKESAInit, Flags: FlagResponse}
		if !v2 {
			h = Header{InitiatorSPI: spi, Version: VersionIKEv1, Exchange: ExchangeInformationalV1}
		}
		return must(AppendMessage(nil, h, SerializeOptions{FixLengths: true}, &Notify{V2: v2, DOI: 1, ProtocolID: 1, Type: n, Data: data}))
	}
	return []crafted{
		{"ikev2-sa-init", 500, must(BuildSAInit(nil, SAInitParams{SPI: spi, Local: local, Remote: remote, Rand: newDetRand()})),
			[]string{"Initiator SPI: 6970737001020304", "Exchange type: IKE_SA_INIT (34)", "DH Group #: Curve25519 (31)",
				"Transform ID (ENCR): ENCR_AES_CBC (12)", "Notify Message Type: NAT_DETECTION_SOURCE_IP (16388)",
				"Notify Message Type: IKEV2_FRAGMENTATION_SUPPORTED (16430)", "Notify Message Type: SIGNATURE_HASH_ALGORITHMS (16431)"}},
		{"ikev2-sa-init-modp2048-3000", 500, must(BuildSAInit(nil, SAInitParams{SPI: spi, Proposals: []ProposalV2{p14.V2(1)}, Group: MODP2048, Size: 3000, Rand: newDetRand()})),
			[]string{"Length: 3000", "DH Group #: 2048 bit MODP group (14)", "Vendor ID: 69707365637061"}},
		{"ikev2-sa-init-4500-cookie", 4500, append(AppendNonESPMarker(nil), must(BuildSAInit(nil, SAInitParams{SPI: spi, Cookie: []byte("cookie-from-responder"), Rand: newDetRand()}))...),
			[]string{"Non-ESP Marker", "Notify Message Type: COOKIE (16390)"}},
		{"ikev1-mm1-psk", 500, must(BuildMainMode(nil, MainModeParams{Cookie: spi})),
			[]string{"Exchange type: Identity Protection (Main Mode) (2)", "Authentication Method: Pre-shared key (1)",
				"Payload: Vendor ID (13) : RFC 3947 Negotiation of NAT-Traversal in the IKE", "Payload: Vendor ID (13) : Cisco Fragmentation", "Encryption Algorithm: AES-CBC (7)",
				"Group Description: 2048 bit MODP group (14)", "Life Duration: 28800"}},
		{"ikev1-mm1-kerberos-3000", 500, must(BuildMainMode(nil, MainModeParams{Cookie: spi, Auth: AuthGSSKerberos, Size: 3000})),
			[]string{"Length: 3000", "Authentication Method: XAUTHInitPreShared (65001)"}},
		{"ikev2-no-proposal-chosen", 500, refuse(true, NotifyNoProposalChosen, nil), []string{"Notify Message Type: NO_PROPOSAL_CHOSEN (14)"}},
		{"ikev2-invalid-ke", 500, refuse(true, NotifyInvalidKEPayload, []byte{0, 14}), []string{"Notify Message Type: INVALID_KE_PAYLOAD (17)"}},
		{"ikev1-no-proposal-chosen", 500, refuse(false, NotifyNoProposalChosen, nil), []string{"Notify Message Type: NO-PROPOSAL-CHOSEN (14)"}},
		{"ikev2-skf", 4500, append(AppendNonESPMarker(nil), must(AppendMessage(nil, Header{InitiatorSPI: spi, ResponderSPI: SPIWithNonce(9), Version: VersionIKEv2,
			Exchange: ExchangeIKEAuth, Flags: FlagInitiator, MessageID: 1}, SerializeOptions{FixLengths: true},
			&SKF{FragmentNumber: 1, TotalFragments: 3, InnerNextPayload: PayloadIDi, Encrypted: make([]byte, 64)}))...),
			[]string{"Payload: Encrypted and Authenticated Fragment (53)", "Fragment Number: 1", "Total Fragments: 3"}},
	}
}

func mustAddrPort(s string) (ap netipAddrPort) { return parseAP(s) }

// TestTsharkDissects writes every message we craft into a pcapng inside IPv4/UDP and has
// tshark -V dissect it: no malformed packet, no error, and the fields we set are visible.
func TestTsharkDissects(t *testing.T) {
	testlab.RequireTools(t, "tshark")
	msgs := craftedMessages(t)
	path := filepath.Join(t.TempDir(), "ike.pcapng")
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	w, err := pcapgo.NewNgWriter(f, layers.LinkTypeIPv4)
	if err != nil {
		t.Fatal(err)
	}
	for i, c := range msgs {
		ip := &layers.IPv4{Version: 4, TTL: 64, Protocol: layers.IPProtocolUDP, SrcIP: net.IPv4(198, 51, 100, 10), DstIP: net.IPv4(203, 0, 113, 10)}
		udp := &layers.UDP{SrcPort: layers.UDPPort(c.port), DstPort: layers.UDPPort(c.port)}
		_ = udp.SetNetworkLayerForChecksum(ip)
		buf := gopacket.NewSerializeBuffer()
		if err := gopacket.SerializeLayers(buf, gopacket.SerializeOptions{FixLengths: true, ComputeChecksums: true}, ip, udp, gopacket.Payload(c.msg)); err != nil {
			t.Fatal(err)
		}
		ci := gopacket.CaptureInfo{Timestamp: time.Unix(1700000000+int64(i), 0), CaptureLength: len(buf.Bytes()), Length: len(buf.Bytes())}
		if err := w.WritePacket(ci, buf.Bytes()); err != nil {
			t.Fatal(err)
		}
	}
	if err := w.Flush(); err != nil {
		t.Fatal(err)
	}
	f.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, "tshark", "-n", "-V", "-o", "udp.check_checksum:TRUE", "-r", path).CombinedOutput()
	if err != nil {
		t.Fatalf("tshark: %v\n%s", err, out)
	}
	frames := frameRE.Split(string(out), -1)[1:]
	if len(frames) != len(msgs) {
		t.Fatalf("tshark printed %d frames, we wrote %d:\n%s", len(frames), len(msgs), out)
	}
	for i, c := range msgs {
		fr := frames[i]
		for _, bad := range []string{"Malformed", "Expert Info (Error", "Expert Info (Warning"} {
			if strings.Contains(fr, bad) {
				t.Errorf("%s: tshark says %q:\n%s", c.name, bad, fr)
			}
		}
		for _, w := range c.want {
			if !strings.Contains(fr, w) {
				t.Errorf("%s: tshark -V does not show %q", c.name, w)
			}
		}
		if t.Failed() && os.Getenv("IKE_TSHARK_DUMP") != "" {
			t.Logf("%s:\n%s", c.name, fr)
		}
	}
}

var frameRE = regexp.MustCompile(`(?m)^Frame \d+:`)

type netipAddrPort = netip.AddrPort

func parseAP(s string) netip.AddrPort { return netip.MustParseAddrPort(s) }
