package probe

import (
	"context"
	"crypto/rand"
	"fmt"
	"hash"
	"net"
	"net/netip"
	"time"

	"github.com/ipsecpath/ipsecpath/ike"

	"github.com/ipsecpath/ipsecpath/probe/wire"
	"github.com/ipsecpath/ipsecpath/report"
)

// natdSeen is one exchange's NAT detection result.
type natdSeen struct {
	name          string
	port          int
	local         string
	ours, gateway *bool
}

// NAT is what the gateway's NAT detection hashes said, over every exchange that carried
// them (IKEv2's NAT_DETECTION_* notifies, IKEv1's NAT-D payloads of Main Mode 4: see
// ike/natd.go), or nil when none did: then nothing was measured. The hashes say whether an
// address or port was rewritten, not which nor into what, so Seen and Kind stay empty.
func (s *IKESurvey) NAT() *report.NAT {
	var all []natdSeen
	for _, x := range s.Exchanges {
		if x.NATDetected != nil || x.NATGateway != nil {
			all = append(all, natdSeen{x.Name(), x.Port, x.LocalAddr, x.NATDetected, x.NATGateway})
		}
	}
	if v := s.NATDv1; v != nil && (v.Ours != nil || v.Gateway != nil) {
		all = append(all, natdSeen{fmt.Sprintf("IKEv1 Main Mode 4 on UDP %d", v.Port), v.Port, v.LocalAddr, v.Ours, v.Gateway})
	}
	if len(all) == 0 {
		return nil
	}
	var ours, theirs *natdSeen
	for i := range all {
		if all[i].ours != nil && *all[i].ours && ours == nil {
			ours = &all[i]
		}
		if all[i].gateway != nil && *all[i].gateway && theirs == nil {
			theirs = &all[i]
		}
	}
	pick := &all[0]
	if ours != nil {
		pick = ours
	} else if theirs != nil {
		pick = theirs
	}
	remote := s.Target
	if a, err := netip.ParseAddr(s.Target); err == nil {
		remote = netip.AddrPortFrom(a, uint16(pick.port)).String()
	}
	n := &report.NAT{Via: "ike-natd", Sent: pick.local}
	switch {
	case ours != nil && theirs != nil:
		n.Detected, n.Side = true, "both"
	case ours != nil:
		n.Detected, n.Side = true, "ours"
	case theirs != nil:
		n.Detected, n.Side = true, "gateway's"
	}
	gw := fmt.Sprintf("its hash of its own address does not match %s, where we sent: the gateway is behind a NAT that forwards %s to it, or fakes that hash to force UDP encapsulation (strongSwan does with encap = yes or kernel-libipsec)", remote, remote)
	switch n.Side {
	case "both":
		n.Detail = fmt.Sprintf("a NAT between us, on our side: the gateway's NAT detection hash of where it saw us come from (%s) does not match our %s, so a NAT rewrote our address or port; and %s. IPsec across it needs NAT-T (IKE and ESP in UDP 4500), and AH cannot cross a NAT at all.",
			pick.name, pick.local, gw)
	case "ours":
		n.Detail = fmt.Sprintf("a NAT between us, on our side: the gateway's NAT detection hash of where it saw us come from (%s) does not match our %s, so a NAT rewrote our address or port. IPsec across it needs NAT-T (IKE and ESP in UDP 4500), and AH cannot cross a NAT at all.",
			pick.name, pick.local)
	case "gateway's":
		n.Detail = fmt.Sprintf("on the gateway's side (%s): %s; our own %s arrived untranslated.", pick.name, gw, pick.local)
		if pick.ours == nil {
			n.Detail = fmt.Sprintf("on the gateway's side (%s): %s; whether our own address is translated was not told.", pick.name, gw)
		}
	default:
		n.Detail = fmt.Sprintf("the gateway's NAT detection hashes (%s) match our %s and its %s: nothing rewrote either.", pick.name, pick.local, remote)
		if pick.ours == nil || pick.gateway == nil {
			n.Detail = fmt.Sprintf("the gateway's NAT detection hashes (%s) show no translation of the addresses they cover.", pick.name)
		}
	}
	if n.Detected {
		n.Advice = NATKeepaliveAdvice(false, 0, 0)
	}
	return n
}

// CheckIKEv1NATD runs ProbeIKEv1NATD on the port of the first IKEv1 exchange the gateway
// accepted, when no IKEv2 answer carried NAT detection hashes (IKEv1 sends them only in
// Main Mode 4), and keeps the result in s.NATDv1. It does nothing when nothing qualifies.
func (s *IKESurvey) CheckIKEv1NATD(ctx context.Context, target netip.Addr, timeout time.Duration) error {
	if s.NAT() != nil {
		return nil
	}
	for _, x := range s.Exchanges {
		if x.Version == 1 && x.Outcome == IKEAccepted {
			v, err := ProbeIKEv1NATD(ctx, target, x.Port, timeout)
			if err != nil {
				return err
			}
			s.NATDv1 = v
			return nil
		}
	}
	return nil
}

// IKEv1NATD is what IKEv1 NAT detection found: the gateway's NAT-D payloads of Main Mode
// message 4, after a message 3 that only exists to ask for them (the exchange goes no
// further: the gateway keeps a half-open SA until its own timeout, as after any probe).
type IKEv1NATD struct {
	Port      int    `json:"port"`
	LocalAddr string `json:"local_addr,omitempty"`
	// Ours and Gateway as IKEResult.NATDetected and NATGateway (nil: not told).
	Ours    *bool  `json:"nat_detected,omitempty"`
	Gateway *bool  `json:"nat_gateway,omitempty"`
	Hash    string `json:"hash,omitempty"` // the chosen transform's hash, which NAT-D uses
	// Note says why nothing was learnt (no answer, a refusal, no NAT-D in message 4).
	Note string `json:"note,omitempty"`
}

// ProbeIKEv1NATD runs IKEv1 Main Mode messages 1 to 4 with target on port (500 or 4500) to
// read the gateway's NAT-D payloads (RFC 3947), and checks them against the addresses we
// used. timeout bounds each of the two round trips (0: IKEExchangeTimeout). An error means
// the probe could not run; what the gateway did not tell is in Note.
func ProbeIKEv1NATD(ctx context.Context, target netip.Addr, port int, timeout time.Duration) (*IKEv1NATD, error) {
	if timeout <= 0 {
		timeout = IKEExchangeTimeout
	}
	conn, err := dialIKE(target, port, 0)
	if err != nil {
		return nil, err
	}
	defer conn.Close()
	local := conn.LocalAddr().(*net.UDPAddr).AddrPort()
	local = netip.AddrPortFrom(local.Addr().Unmap(), local.Port())
	x := &v1NATDExchange{ctx: ctx, conn: conn, port: port, local: local, remote: netip.AddrPortFrom(target.Unmap(), uint16(port)),
		first: firstRetransmit(timeout, IKETries), buf: make([]byte, ikeReadBuf), out: &IKEv1NATD{Port: port, LocalAddr: local.String()}}
	if port == PortNATT {
		x.prefix = ike.AppendNonESPMarker(nil)
	}
	if _, err := rand.Read(x.cookie[:]); err != nil {
		return nil, fmt.Errorf("probe: ike: cookie: %w", err)
	}
	m2, err := x.mainMode2()
	if err != nil || m2 == nil {
		return x.result(err)
	}
	newHash, group := x.chosen(m2)
	if newHash == nil {
		return x.out, nil
	}
	rcookie := m2.ResponderSPI
	m4, err := x.mainMode4(rcookie, newHash, group)
	if err != nil || m4 == nil {
		return x.result(err)
	}
	src, dst := ike.NATDFromMessage(m4)
	if len(src) == 0 && len(dst) == 0 {
		x.out.Note = "Main Mode 4 carries no NAT-D payload (the gateway did not negotiate NAT-T)"
		return x.out, nil
	}
	n := ike.CheckNATD(func(ap netip.AddrPort) []byte { return ike.NATDHashV1(newHash, x.cookie, rcookie, ap) }, x.local, x.remote, src, dst)
	x.out.Ours, x.out.Gateway = n.Ours, n.Theirs
	return x.out, nil
}

// v1NATDExchange is the state of ProbeIKEv1NATD. A step that returns neither a message nor
// an error has said in out.Note why the exchange goes no further.
type v1NATDExchange struct {
	ctx           context.Context
	conn          *net.UDPConn
	port          int
	local, remote netip.AddrPort
	prefix        []byte // the non-ESP marker on 4500
	cookie        [8]byte
	first         time.Duration
	buf           []byte
	out           *IKEv1NATD
}

// result ends the probe: an error, or what out says.
func (x *v1NATDExchange) result(err error) (*IKEv1NATD, error) {
	if err != nil {
		return nil, err
	}
	return x.out, nil
}

// strip removes the non-ESP marker on 4500 (nil: not an IKE message).
func (x *v1NATDExchange) strip(udp []byte) []byte {
	if x.port != PortNATT {
		return udp
	}
	m, err := ike.StripNonESPMarker(udp)
	if err != nil {
		return nil
	}
	return m
}

// icmpNote says what an ICMP error instead of an answer to message n was.
func icmpNote(n int, icmp *report.ICMP) string {
	return fmt.Sprintf("Main Mode %d drew ICMP ", n) + wire.ICMPBrief(icmp.Type, icmp.Code) + " from " + icmp.From
}

// mainMode2 sends Main Mode 1 and reads the gateway's message 2.
func (x *v1NATDExchange) mainMode2() (*ike.Message, error) {
	msg1, err := ike.BuildMainMode(append([]byte(nil), x.prefix...), ike.MainModeParams{Cookie: x.cookie})
	if err != nil {
		return nil, fmt.Errorf("probe: ike: main mode 1: %w", err)
	}
	ans, _, _, icmp, err := exchangeUDP(x.ctx, x.conn, msg1, x.buf, x.first, IKETries, func(udp []byte) ([]byte, bool) {
		msg := x.strip(udp)
		var h ike.Header
		if msg == nil || h.DecodeFromBytes(msg) != nil || h.InitiatorSPI != x.cookie || h.Major() != 1 {
			return nil, false
		}
		return msg, true
	})
	switch {
	case err != nil:
		return nil, err
	case icmp != nil:
		x.out.Note = icmpNote(1, icmp)
		return nil, nil
	case ans == nil:
		x.out.Note = "no answer to Main Mode 1 (a gateway that answered the survey's may be limiting half-open SAs from us)"
		return nil, nil
	}
	var m2 ike.Message
	if err := m2.DecodeFromBytes(ans); err != nil {
		x.out.Note = "Main Mode 2 does not decode: " + err.Error()
		return nil, nil
	}
	return &m2, nil
}

// chosen reads the hash and group of the transform message 2 chose (nil hash: none we can
// compute, out.Note says why).
func (x *v1NATDExchange) chosen(m2 *ike.Message) (func() hash.Hash, ike.Group) {
	sa, ok := m2.Find(ike.PayloadSAv1)
	if !ok {
		x.out.Note = "the gateway refused Main Mode 1 (no SA in its answer)"
		return nil, 0
	}
	s, err := ike.ParseSAv1(sa.Body)
	if err != nil || len(s.Proposals) == 0 || len(s.Proposals[0].Transforms) == 0 {
		x.out.Note = "Main Mode 2 carries no usable transform"
		return nil, 0
	}
	t := s.Proposals[0].Transforms[0]
	ha, hok := t.Attr(ike.AttrHash)
	ga, gok := t.Attr(ike.AttrGroup)
	newHash := ike.HashV1Func(ha.Value)
	group := ike.Group(ga.Value)
	if !hok || !gok || newHash == nil || group.PublicLen() == 0 {
		x.out.Note = "the chosen transform's hash or group is not one we can compute (" + t.String() + ")"
		return nil, 0
	}
	x.out.Hash = t.String()
	return newHash, group
}

// mainMode4 sends Main Mode 3 (a key exchange of group, a nonce, our NAT-D payloads) and
// reads the gateway's message 4.
func (x *v1NATDExchange) mainMode4(rcookie [8]byte, newHash func() hash.Hash, group ike.Group) (*ike.Message, error) {
	ke, err := ike.KeyExchange(group, rand.Reader)
	if err != nil {
		return nil, err
	}
	nonce := make([]byte, 32)
	if _, err := rand.Read(nonce); err != nil {
		return nil, fmt.Errorf("probe: ike: nonce: %w", err)
	}
	msg3, err := ike.BuildMainMode3(append([]byte(nil), x.prefix...), ike.MainMode3Params{CookieI: x.cookie, CookieR: rcookie,
		KE: ke, Nonce: nonce, Hash: newHash, Local: x.local, Remote: x.remote})
	if err != nil {
		return nil, fmt.Errorf("probe: ike: main mode 3: %w", err)
	}
	var m4 ike.Message
	ans, _, _, icmp, err := exchangeUDP(x.ctx, x.conn, msg3, x.buf, x.first, IKETries, func(udp []byte) ([]byte, bool) {
		msg := x.strip(udp)
		if msg == nil || m4.DecodeFromBytes(msg) != nil || m4.InitiatorSPI != x.cookie || m4.ResponderSPI != rcookie {
			return nil, false
		}
		if _, ok := m4.Find(ike.PayloadKEv1); !ok {
			return nil, false // message 2 again, or a notify: keep waiting
		}
		return msg, true
	})
	switch {
	case err != nil:
		return nil, err
	case icmp != nil:
		x.out.Note = icmpNote(3, icmp)
		return nil, nil
	case ans == nil:
		x.out.Note = "no Main Mode 4 after our message 3"
		return nil, nil
	}
	if err := m4.DecodeFromBytes(ans); err != nil {
		x.out.Note = "Main Mode 4 does not decode: " + err.Error()
		return nil, nil
	}
	return &m4, nil
}
