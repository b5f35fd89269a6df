package probe

import (
	"bufio"
	"bytes"
	"context"
	"encoding/hex"
	"fmt"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/ipsecpath/ipsecpath/ike"
	"github.com/ipsecpath/ipsecpath/report"
)

// goldenAnswer reads one of the ike package's golden strongSwan answers (UDP payload).
func goldenAnswer(t *testing.T, name string) []byte {
	t.Helper()
	data, err := os.ReadFile(filepath.Join("..", "ike", "testdata", "golden", name+".hex"))
	if err != nil {
		t.Fatal(err)
	}
	var hx strings.Builder
	sc := bufio.NewScanner(bytes.NewReader(data))
	for sc.Scan() {
		l := strings.TrimSpace(sc.Text())
		if l != "" && !strings.HasPrefix(l, "#") && !strings.HasPrefix(l, "port ") {
			hx.WriteString(l)
		}
	}
	b, err := hex.DecodeString(hx.String())
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// fakeGateway answers on loopback the way strongSwan did in the lab, replaying golden
// answers with the request's initiator SPI patched in: the first request is ignored (a
// lost datagram), then COOKIE, then INVALID_KE_PAYLOAD (MODP_2048), then the SA_INIT
// response. It records the requests.
type fakeGateway struct {
	conn               *net.UDPConn
	requests           atomic.Int32
	sawCookie, sawKE14 atomic.Bool
	got                chan []byte // every datagram received, in order
}

func newFakeGateway(t *testing.T) *fakeGateway {
	t.Helper()
	return newFakeGatewayWith(t, [][]byte{nil, goldenAnswer(t, "strongswan-5.9.8-ikev2-cookie"), goldenAnswer(t, "strongswan-5.9.8-ikev2-invalid-ke"),
		goldenAnswer(t, "strongswan-5.9.8-ikev2-sa-init-response")})
}

// newFakeGatewayWith answers the n-th request with answers[n] (nil or beyond the end:
// silence), and records every request in got.
func newFakeGatewayWith(t *testing.T, answers [][]byte) *fakeGateway {
	t.Helper()
	c, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	g := &fakeGateway{conn: c, got: make(chan []byte, 64)}
	go func() {
		buf := make([]byte, 65536)
		for {
			n, from, err := c.ReadFromUDP(buf)
			if err != nil {
				return
			}
			select {
			case g.got <- append([]byte(nil), buf[:n]...):
			default:
			}
			var m ike.Message
			if m.DecodeFromBytes(buf[:n]) != nil || m.Exchange == ike.ExchangeInformationalV1 {
				continue
			}
			i := int(g.requests.Add(1)) - 1
			if p, ok := m.Find(ike.PayloadNotify); ok {
				if nt, _ := ike.ParseNotify(true, p.Body); nt.Type == ike.NotifyCookie {
					g.sawCookie.Store(true)
				}
			}
			if p, ok := m.Find(ike.PayloadKE); ok {
				if ke, _ := ike.ParseKEv2(p.Body); ke.Group == ike.MODP2048 && len(ke.Data) == 256 {
					g.sawKE14.Store(true)
				}
			}
			if i >= len(answers) || answers[i] == nil {
				continue
			}
			a := append([]byte(nil), answers[i]...)
			copy(a[:8], m.InitiatorSPI[:])
			c.WriteToUDP(a, from)
		}
	}()
	return g
}

// TestProbeIKEFlow: retransmit after a lost request, answer the COOKIE, retry with the group
// INVALID_KE_PAYLOAD asks for, read the chosen proposal — on loopback, no root needed.
func TestProbeIKEFlow(t *testing.T) {
	g := newFakeGateway(t)
	port := g.conn.LocalAddr().(*net.UDPAddr).Port
	r, err := ProbeIKE(context.Background(), netip.MustParseAddr("127.0.0.1"), IKEOptions{Version: 2, Port: port, Timeout: 700 * time.Millisecond, Nonce: 42})
	if err != nil {
		t.Fatal(err)
	}
	if r.Outcome != IKEAccepted || r.Chosen != "aes128-sha256-prfsha256-modp2048" || !r.Fragmentation || !r.NATT {
		t.Fatalf("result %+v", r)
	}
	if r.Attempts != 4 || g.requests.Load() != 4 || !g.sawCookie.Load() || !g.sawKE14.Load() {
		t.Fatalf("attempts %d, requests %d, cookie returned %v, KE 14 sent %v", r.Attempts, g.requests.Load(), g.sawCookie.Load(), g.sawKE14.Load())
	}
	if len(r.Steps) != 2 || r.Nonce != 42 || r.RTT <= 0 {
		t.Fatalf("steps %q nonce %d rtt %s", r.Steps, r.Nonce, r.RTT)
	}
	// NAT detection: the golden answer hashes the lab's addresses, not ours.
	if r.NATDetected == nil || !*r.NATDetected {
		t.Errorf("NAT detected %v", r.NATDetected)
	}
}

// TestProbeIKECookieThenSilence: a gateway that answers with a COOKIE and then ignores the
// request carrying it (strongSwan at its half-open limit) has not refused anything: the
// outcome is gateway-silent, no notify, the request arrived, and the report passes the
// path and names the gateway. A second COOKIE, new or the same again, is returned too, as
// charon does, and the exchange goes on.
func TestProbeIKECookieThenSilence(t *testing.T) {
	cookie := goldenAnswer(t, "strongswan-5.9.8-ikev2-cookie")
	for _, tc := range []struct {
		name    string
		answers [][]byte
		sends   int
	}{
		{"cookie then silence", [][]byte{cookie}, 1 + IKETries},
		{"a new cookie then silence", [][]byte{cookie, newCookie(t, cookie)}, 2 + IKETries},
		{"the same cookie twice then silence", [][]byte{cookie, cookie}, 2 + IKETries},
	} {
		t.Run(tc.name, func(t *testing.T) {
			g := newFakeGatewayWith(t, tc.answers)
			port := g.conn.LocalAddr().(*net.UDPAddr).Port
			r, err := ProbeIKE(context.Background(), netip.MustParseAddr("127.0.0.1"), IKEOptions{Version: 2, Port: port, Timeout: 300 * time.Millisecond})
			if err != nil {
				t.Fatal(err)
			}
			if r.Outcome != IKEGatewaySilent || r.Notify != "" || !r.Cookie || !r.Arrived() || r.Answered() || r.Attempts != tc.sends {
				t.Fatalf("%+v", r)
			}
			res := ikeResultToReport("ikev2:500", "127.0.0.1", r)
			if res.Verdict != report.Pass || !strings.Contains(res.Detail, "stopped answering us (half-open limit?)") || res.Evidence.Answer != "cookie" {
				t.Errorf("report: %s %q %q", res.Verdict, res.Detail, res.Evidence.Answer)
			}
		})
	}
}

// TestProbeIKECookieTwice: strongSwan sometimes answers the request that carries its
// COOKIE with the same COOKIE again; the exchange returns it once more and is accepted.
func TestProbeIKECookieTwice(t *testing.T) {
	cookie := goldenAnswer(t, "strongswan-5.9.8-ikev2-cookie")
	g := newFakeGatewayWith(t, [][]byte{cookie, cookie, goldenAnswer(t, "strongswan-5.9.8-ikev2-invalid-ke"), goldenAnswer(t, "strongswan-5.9.8-ikev2-sa-init-response")})
	port := g.conn.LocalAddr().(*net.UDPAddr).Port
	r, err := ProbeIKE(context.Background(), netip.MustParseAddr("127.0.0.1"), IKEOptions{Version: 2, Port: port})
	if err != nil {
		t.Fatal(err)
	}
	if r.Outcome != IKEAccepted || r.Chosen == "" || !r.Cookie || r.Attempts != 4 {
		t.Fatalf("%+v", r)
	}
}

// newCookie is a COOKIE answer like c with different cookie data.
func newCookie(t *testing.T, c []byte) []byte {
	t.Helper()
	n := append([]byte(nil), c...)
	n[len(n)-1] ^= 0xff
	return n
}

// TestProbeIKEReleaseV1: after an accepted Main Mode the exchange sends one unencrypted
// Informational with a NO_PROPOSAL_CHOSEN notify for the ISAKMP SA (both cookies), so
// strongSwan drops its half-open SA; a stateless exchange (refused) sends nothing more.
func TestProbeIKEReleaseV1(t *testing.T) {
	mm2 := goldenAnswer(t, "strongswan-5.9.8-ikev1-mm2")
	var rc [8]byte
	copy(rc[:], mm2[8:16])
	g := newFakeGatewayWith(t, [][]byte{mm2, goldenAnswer(t, "strongswan-5.9.8-ikev1-no-proposal-chosen")})
	port := g.conn.LocalAddr().(*net.UDPAddr).Port
	r, err := ProbeIKE(context.Background(), netip.MustParseAddr("127.0.0.1"), IKEOptions{Version: 1, Port: port, Nonce: 7})
	if err != nil {
		t.Fatal(err)
	}
	if r.Outcome != IKEAccepted || !r.Released {
		t.Fatalf("%+v", r)
	}
	<-g.got // Main Mode message 1
	var rel []byte
	select {
	case rel = <-g.got:
	case <-time.After(2 * time.Second):
		t.Fatal("no release notify")
	}
	var m ike.Message
	if err := m.DecodeFromBytes(rel); err != nil {
		t.Fatal(err)
	}
	spi := ike.SPIWithNonce(7)
	p, ok := m.Find(ike.PayloadNotifyV1)
	if m.Exchange != ike.ExchangeInformationalV1 || m.InitiatorSPI != spi || m.ResponderSPI != rc || !ok {
		t.Fatalf("release: %+v", m.Header)
	}
	if n, err := ike.ParseNotify(false, p.Body); err != nil || n.Type != ike.NotifyNoProposalChosen || !bytes.Equal(n.SPI, append(spi[:], rc[:]...)) {
		t.Fatalf("release notify %+v %v", n, err)
	}
	// Stateless: NO_PROPOSAL_CHOSEN is the answer, nothing to release.
	r, err = ProbeIKE(context.Background(), netip.MustParseAddr("127.0.0.1"), IKEOptions{Version: 1, Port: port, Stateless: true})
	if err != nil || r.Outcome != IKERefused || r.Released {
		t.Fatalf("stateless: %+v %v", r, err)
	}
	<-g.got
	select {
	case b := <-g.got:
		t.Fatalf("stateless exchange sent %d more bytes", len(b))
	case <-time.After(200 * time.Millisecond):
	}
}

// TestProbeIKESilence: no answer at all is IKENoAnswer after IKETries sends, within the
// timeout, and not an error.
func TestProbeIKESilence(t *testing.T) {
	c, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	start := time.Now()
	r, err := ProbeIKE(context.Background(), netip.MustParseAddr("127.0.0.1"), IKEOptions{Version: 1, Port: c.LocalAddr().(*net.UDPAddr).Port, Timeout: 350 * time.Millisecond})
	if err != nil || r.Outcome != IKENoAnswer || r.Attempts != IKETries {
		t.Fatalf("%+v %v", r, err)
	}
	if d := time.Since(start); d > 2*time.Second {
		t.Errorf("took %s", d)
	}
	// A context that ends first ends the exchange.
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	start = time.Now()
	if r, err = ProbeIKE(ctx, netip.MustParseAddr("127.0.0.1"), IKEOptions{Version: 2, Port: c.LocalAddr().(*net.UDPAddr).Port}); err != nil || r.Answered() {
		t.Fatalf("%+v %v", r, err)
	}
	if d := time.Since(start); d > time.Second {
		t.Errorf("ctx of 100ms: took %s", d)
	}
}

// TestProbeIKEPortUnreachable: the target's own ICMP port unreachable (IP_RECVERR) is
// reported with who sent it, and the verdict says the path carried the request.
func TestProbeIKEPortUnreachable(t *testing.T) {
	c, _ := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	port := c.LocalAddr().(*net.UDPAddr).Port
	c.Close() // nothing listens there now
	r, err := ProbeIKE(context.Background(), netip.MustParseAddr("127.0.0.1"), IKEOptions{Version: 2, Port: port, Timeout: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	if r.Outcome != IKEUnreachable || r.ICMP == nil || r.ICMP.Type != 3 || r.ICMP.Code != 3 || r.ICMP.From != "127.0.0.1" {
		t.Fatalf("%+v icmp %+v", r, r.ICMP)
	}
	res := ikeResultToReport("ikev2:x", "127.0.0.1", r)
	if res.Verdict != "pass" || !strings.Contains(res.Detail, "nothing listens") {
		t.Errorf("%+v", res)
	}
}

func TestProbeIKEBadInput(t *testing.T) {
	for _, o := range []IKEOptions{{Version: 3}, {Port: 70000}, {Size: 40}} {
		if _, err := ProbeIKE(context.Background(), netip.MustParseAddr("127.0.0.1"), o); err == nil {
			t.Errorf("%+v accepted", o)
		}
	}
	for _, a := range []string{"224.0.0.5", "255.255.255.255", "0.0.0.0"} {
		if _, err := ProbeIKE(context.Background(), netip.MustParseAddr(a), IKEOptions{}); err == nil {
			t.Errorf("target %s accepted", a)
		}
	}
	if _, err := probeIKEClass(context.Background(), netip.MustParseAddr("127.0.0.1"), ESP, IKEClassOptions{}); err == nil {
		t.Error("probeIKEClass(esp) accepted")
	}
}

// TestRetransmitSchedule: the default budget gives the documented waits, 0.5, 0.75, 1.125 s.
func TestRetransmitSchedule(t *testing.T) {
	if d := firstRetransmit(IKEExchangeTimeout, IKETries) - IKEFirstRetransmit; d > time.Millisecond || d < -time.Millisecond {
		t.Errorf("first wait %s, want %s", firstRetransmit(IKEExchangeTimeout, IKETries), IKEFirstRetransmit)
	}
	if b := retransmitBudget(IKEFirstRetransmit, IKETries); b != IKEExchangeTimeout {
		t.Errorf("budget %s, want %s", b, IKEExchangeTimeout)
	}
}

// TestMarkGatewaySilence: IKEv1's silence on a port where IKEv2 was just answered reads as
// the gateway's limit only when the run shows the gateway limiting us (a COOKIE); without
// that sign it stays a silence, with a note that the other version was answered.
func TestMarkGatewaySilence(t *testing.T) {
	lo := netip.MustParseAddr("127.0.0.1")
	v2 := IKEResult{Version: 2, Port: PortIKE, Outcome: IKEAccepted, Size: 742, AnsweredBy: "127.0.0.1"}
	v1 := IKEResult{Version: 1, Port: PortIKE, Outcome: IKENoAnswer, Size: 784, Attempts: IKETries}
	v1natt := IKEResult{Version: 1, Port: PortNATT, Outcome: IKENoAnswer, Size: 788, Attempts: IKETries}

	// No COOKIE in the run; asked again statelessly, IKEv2 is answered: the gateway ignores
	// IKEv1 (or a device filters it), it is not limiting us.
	var asked []IKEOptions
	answered := func(c IKEOptions) (IKEResult, error) {
		asked = append(asked, c)
		return IKEResult{Version: c.Version, Port: c.Port, Outcome: IKEAccepted, AnsweredBy: "127.0.0.1"}, nil
	}
	rs := []IKEResult{v2, v1, v1natt}
	if err := markGatewaySilence(lo, rs, answered); err != nil {
		t.Fatal(err)
	}
	if rs[1].Outcome != IKENoAnswer || len(rs[1].Steps) != 1 || !strings.Contains(rs[1].Steps[0], "ignores IKEv1") {
		t.Errorf("no COOKIE in the run, the gateway still answers: %+v", rs[1])
	}
	if len(asked) != 1 || asked[0].Version != 2 || asked[0].Port != PortIKE || !asked[0].Stateless {
		t.Errorf("asked again: %+v", asked)
	}
	// Asked again, the gateway wants a COOKIE: it is limiting us.
	rs = []IKEResult{v2, v1, v1natt}
	cookie := func(c IKEOptions) (IKEResult, error) {
		return IKEResult{Version: c.Version, Port: c.Port, Outcome: IKEGatewaySilent, Cookie: true, AnsweredBy: "127.0.0.1"}, nil
	}
	if err := markGatewaySilence(lo, rs, cookie); err != nil || rs[1].Outcome != IKEGatewaySilent {
		t.Errorf("asked again, a COOKIE: %+v %v", rs[1], err)
	}
	// A COOKIE in the run already: no need to ask.
	v2.Cookie = true
	rs = []IKEResult{v2, v1, v1natt}
	if err := markGatewaySilence(lo, rs, nil); err != nil {
		t.Fatal(err)
	}
	if rs[1].Outcome != IKEGatewaySilent || rs[1].Arrived() {
		t.Errorf("COOKIE in the run: %+v", rs[1])
	}
	if rs[2].Outcome != IKENoAnswer {
		t.Errorf("nothing answered on 4500, yet %+v", rs[2])
	}
	res := ikeResultToReport("ikev1:500", "127.0.0.1", rs[1])
	if res.Verdict != report.Error || !strings.Contains(res.Detail, "the gateway stopped answering us (half-open limit?)") {
		t.Errorf("report: %s %q", res.Verdict, res.Detail)
	}
	if res := ikeResultToReport("ikev1:4500", "127.0.0.1", rs[2]); res.Verdict != report.Dropped {
		t.Errorf("4500: %s %q", res.Verdict, res.Detail)
	}
}

// TestIKEICMPMeaning: what an ICMP error in answer to an IKE request is said to mean depends
// on who sent it and its code. Seen on a scratch path: every error from another device read
// "a router on the path refuses IKE", also a host unreachable or a fragmentation-needed.
func TestIKEICMPMeaning(t *testing.T) {
	const target, router = "203.0.113.130", "198.51.100.129"
	for _, c := range []struct {
		ic   *report.ICMP
		want []string
		not  []string
	}{
		{&report.ICMP{Type: 3, Code: 3, From: target}, []string{"nothing listens"}, []string{"firewall"}},
		{&report.ICMP{Type: 3, Code: 13, From: target}, []string{"target's own firewall"}, []string{"nothing listens"}},
		{&report.ICMP{Type: 3, Code: 3, From: router}, []string{"device on the path (198.51.100.129)", "filter"}, []string{"nothing listens"}},
		{&report.ICMP{Type: 3, Code: 13, From: router}, []string{"device on the path", "filter"}, nil},
		{&report.ICMP{Type: 3, Code: 1, From: router}, []string{"cannot deliver", "host unreachable", "not a refusal"}, []string{"filter", "rejects"}},
		{&report.ICMP{Type: 3, Code: 4, From: router, MTU: 1280}, []string{"1280", "path MTU", "not a refusal"}, []string{"filter", "rejects"}},
		{&report.ICMP{Type: 11, Code: 0, From: router}, []string{"TTL ran out", "not a refusal"}, []string{"filter"}},
		{&report.ICMP{Type: 11, Code: 1, From: target}, []string{"only part", "fragments"}, []string{"nothing listens"}},
		{&report.ICMP{Type: 3, Code: 2, From: target}, []string{"nothing listens"}, []string{"firewall"}},
		{&report.ICMP{Type: 3, Code: 10, From: target}, []string{"target's own firewall"}, []string{"nothing listens"}},
		{&report.ICMP{Type: 3, Code: 9, From: router}, []string{"device on the path", "filter"}, nil},
		{&report.ICMP{Type: 12, Code: 0, From: router}, []string{"198.51.100.129 answered with ICMP type 12 code 0"}, []string{"filter", "refusal"}},
		{nil, []string{"not recorded"}, nil},
	} {
		got := IKEICMPMeaning(target, c.ic)
		for _, w := range c.want {
			if !strings.Contains(got, w) {
				t.Errorf("%+v: %q lacks %q", c.ic, got, w)
			}
		}
		for _, n := range c.not {
			if strings.Contains(got, n) {
				t.Errorf("%+v: %q claims %q", c.ic, got, n)
			}
		}
	}
}

// TestIKESurveySucceeded: what `ipsecpath ike` exits 0 on. A plain run needs every exchange
// accepted; --stateless takes an exchange that arrived (a COOKIE, then silence); with
// proposals every offer must be answered and one accepted.
func TestIKESurveySucceeded(t *testing.T) {
	ok := IKEResult{Version: 2, Port: PortIKE, Outcome: IKEAccepted}
	cookieThenSilent := IKEResult{Version: 2, Port: PortNATT, Outcome: IKEGatewaySilent, AnsweredBy: "203.0.113.10", Cookie: true}
	refused := IKEResult{Version: 1, Port: PortIKE, Outcome: IKERefused, Notify: "NO_PROPOSAL_CHOSEN"}
	silent := IKEResult{Version: 1, Port: PortIKE, Outcome: IKENoAnswer}
	for _, c := range []struct {
		name      string
		s         IKESurvey
		stateless bool
		want      bool
	}{
		{"all accepted", IKESurvey{Exchanges: []IKEResult{ok}}, false, true},
		{"a cookie then silence, plain", IKESurvey{Exchanges: []IKEResult{ok, cookieThenSilent}}, false, false},
		{"a cookie then silence, stateless", IKESurvey{Exchanges: []IKEResult{ok, cookieThenSilent}}, true, true},
		{"refused", IKESurvey{Exchanges: []IKEResult{ok, refused}}, false, false},
		{"one proposal accepted, one refused", IKESurvey{Proposals: []IKEProposalResult{{Result: refused}, {Result: ok, Accepted: true}}}, false, true},
		{"no proposal accepted", IKESurvey{Proposals: []IKEProposalResult{{Result: refused}}}, false, false},
		{"a proposal unanswered", IKESurvey{Proposals: []IKEProposalResult{{Result: ok, Accepted: true}, {Result: silent}}}, false, false},
		{"a proposal accepted in IKEv2, not offered in IKEv1 (AEAD)", IKESurvey{Proposals: []IKEProposalResult{{Proposal: "aes256gcm16-prfsha256-ecp256", Version: 2, Port: PortIKE, Result: ok, Accepted: true},
			{Proposal: "aes256gcm16-prfsha256-ecp256", Version: 1, Port: PortIKE, Skipped: "IKEv1 has no AEAD encryption (AES-GCM); offered in IKEv2 only"}}}, false, true},
	} {
		c.s.Target = "203.0.113.10"
		r := c.s.Report(time.Now())
		if got := c.s.Succeeded(r, c.stateless); got != c.want {
			t.Errorf("%s: %v, want %v (summary %+v)", c.name, got, c.want, r.Summary)
		}
	}
}

// TestIKESurveyReportSkipped: a proposal with no IKEv1 form is not offered in IKEv1, and the
// report says so with a skipped row naming it and why; it never renders as a silent
// "IKEv0 on UDP 0" nor counts as a failure. A result that holds nothing (a bug) is an error
// row, not a verdict about the path.
func TestIKESurveyReportSkipped(t *testing.T) {
	gcm, err := ike.ParseProposal("aes256gcm16-prfsha256-ecp256")
	if err != nil {
		t.Fatal(err)
	}
	ok := IKEResult{Version: 2, Port: PortIKE, Outcome: IKEAccepted, Chosen: "aes128-sha256-prfsha256-modp2048", Attempts: 1, Size: 300}
	okV1 := IKEResult{Version: 1, Port: PortIKE, Outcome: IKEAccepted, Chosen: "aes128-sha256-modp2048", Attempts: 1, Size: 200}
	refused := IKEResult{Version: 2, Port: PortIKE, Outcome: IKERefused, Notify: "NO_PROPOSAL_CHOSEN", Attempts: 1, Size: 300}
	s := &IKESurvey{Target: "203.0.113.10", Proposals: []IKEProposalResult{
		{Proposal: gcm.Text, Version: 2, Port: PortIKE, Result: refused, Outcome: refused.Outcome},
		{Proposal: "aes128-sha256-modp2048", Version: 2, Port: PortIKE, Result: ok, Outcome: ok.Outcome, Accepted: true},
		{Proposal: gcm.Text, Version: 1, Port: PortIKE, Skipped: ikeV1Skip(gcm, []int{2, 1})},
		{Proposal: "aes128-sha256-modp2048", Version: 1, Port: PortIKE, Result: okV1, Outcome: okV1.Outcome, Accepted: true},
	}}
	r := s.Report(time.Now())
	var skip *report.Result
	for i, res := range r.Results {
		if strings.Contains(res.Detail, "IKEv0") || strings.Contains(res.Detail, "UDP 0") || res.Verdict == report.Dropped {
			t.Errorf("row %s: %s %q", res.Probe, res.Verdict, res.Detail)
		}
		if res.Probe == "ikev1:500 "+gcm.Text {
			skip = &r.Results[i]
		}
	}
	if skip == nil {
		t.Fatalf("no row for the skipped proposal: %+v", r.Results)
	}
	if want := "not offered: IKEv1 has no AEAD encryption (AES-GCM); offered in IKEv2 only"; skip.Verdict != report.Skipped || skip.Detail != want {
		t.Errorf("skipped proposal: %s %q, want skipped %q", skip.Verdict, skip.Detail, want)
	}
	if r.Summary.Fail != 0 || r.Summary.Skipped != 1 || !s.Succeeded(r, false) {
		t.Errorf("summary %+v, succeeded %v: want no failure, one skip, success", r.Summary, s.Succeeded(r, false))
	}
	if got := ikeV1Skip(gcm, []int{1}); got != "IKEv1 has no AEAD encryption (AES-GCM)" {
		t.Errorf("IKEv1 only: %q", got)
	}

	// Results that hold nothing: an error each, no verdict, no made-up numbers.
	empty := &IKESurvey{Target: "203.0.113.10", Exchanges: []IKEResult{{}},
		Proposals: []IKEProposalResult{{Proposal: "aes128-sha256-modp2048", Version: 1, Port: PortIKE}}}
	r = empty.Report(time.Now())
	if len(r.Results) != 2 {
		t.Fatalf("%d rows, want 2", len(r.Results))
	}
	for _, res := range r.Results {
		if res.Verdict != report.Error || strings.Contains(res.Detail, "IKEv0") || strings.Contains(res.Detail, "UDP 0") ||
			strings.Contains(res.Detail, "0 sends") || !strings.Contains(res.Detail, "says nothing about the path") {
			t.Errorf("empty result %s: %s %q, want an error saying nothing about the path", res.Probe, res.Verdict, res.Detail)
		}
	}
	if empty.Succeeded(r, false) {
		t.Error("a survey of empty results succeeded")
	}
	if x := (IKEResult{}); strings.Contains(x.Name(), "IKEv0") || strings.Contains(x.Name(), "UDP 0") {
		t.Errorf("zero result's name: %q", x.Name())
	}
}

// TestSurveyIKENothingToOffer: IKEv1 only, with proposals that have no IKEv1 form, offers
// nothing: SurveyIKE says why before sending anything.
func TestSurveyIKENothingToOffer(t *testing.T) {
	gcm, err := ike.ParseProposals("aes256gcm16-prfsha256-ecp256,chacha20poly1305-prfsha256-x25519")
	if err != nil {
		t.Fatal(err)
	}
	var progress []string
	s, err := SurveyIKE(context.Background(), netip.MustParseAddr("127.0.0.1"), IKESurveyOptions{Versions: []int{1}, Proposals: gcm,
		Progress: func(f string, a ...any) { progress = append(progress, fmt.Sprintf(f, a...)) }})
	if err == nil || !strings.Contains(err.Error(), "IKEv1 has no AEAD encryption (AES-GCM)") || !strings.Contains(err.Error(), "ChaCha20-Poly1305") {
		t.Fatalf("survey %+v, error %v: want an error naming what IKEv1 lacks", s, err)
	}
	if len(progress) != 0 {
		t.Errorf("progress %q: nothing should have been probed", progress)
	}
}
