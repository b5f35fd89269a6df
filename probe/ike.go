package probe

import (
	"context"
	"crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"syscall"
	"time"

	"github.com/ipsecpath/ipsecpath/ike"
	"github.com/ipsecpath/ipsecpath/probe/wire"
	"github.com/ipsecpath/ipsecpath/report"
)

// IKE exchange timing, like a real initiator: IKETries sends, the first answer awaited for
// IKEFirstRetransmit, each next wait IKEBackoff times longer (0.5 + 0.75 + 1.125 s = 2.375 s
// before "no answer", ike-scan's default schedule).
// Everything is also bounded by the caller's context.
const (
	IKEFirstRetransmit = 500 * time.Millisecond
	IKETries           = 3
	// IKEExchangeTimeout is how long one exchange waits in all, retransmits included.
	IKEExchangeTimeout = 2375 * time.Millisecond
	// IKEBackoff is the factor between successive retransmit waits.
	IKEBackoff = 1.5
	// ikeMaxRedo bounds the extra rounds an exchange may take after a COOKIE or an
	// INVALID_KE_PAYLOAD (RFC 7296 §2.6, §1.2), as a real initiator does.
	ikeMaxRedo = 4
	// ikeReadBuf is the largest IKE datagram we read.
	ikeReadBuf = 65536
)

// IKEOutcome is how an IKE exchange ended.
type IKEOutcome string

const (
	IKEAccepted    IKEOutcome = "accepted"    // the gateway chose a proposal (or, stateless, named the KE group it wants)
	IKERefused     IKEOutcome = "refused"     // the gateway answered with an error notify (NO_PROPOSAL_CHOSEN, …)
	IKENoAnswer    IKEOutcome = "no-answer"   // silence after every retransmit
	IKEUnreachable IKEOutcome = "unreachable" // an ICMP error came back instead
	// IKEGatewaySilent: silence from a gateway that answered us just before, in this
	// exchange (a COOKIE, then nothing once we returned it: Cookie is set) or in another
	// exchange of the same run on the same port (SurveyIKE). It says the gateway stopped
	// answering us (strongSwan ignores a peer that holds 5 half-open SAs, for up to 30 s),
	// not that the path dropped the request.
	IKEGatewaySilent IKEOutcome = "gateway-silent"
)

// IKEOptions configures one IKE exchange. The zero value sends IKEv2 IKE_SA_INIT to UDP 500
// from an ephemeral port, at its natural size, with the default proposals.
type IKEOptions struct {
	Version    int // 1 (Main Mode) or 2 (IKE_SA_INIT); 0 means 2
	Port       int // destination port: 500, or 4500 (non-ESP marker added); 0 means 500
	SourcePort int // 0: ephemeral
	// Size is the request's size on the wire, IPv4 and UDP headers (and the non-ESP marker)
	// included; the IKE message is padded with vendor IDs to reach it. 0: natural size.
	// Over the path MTU the kernel fragments it (DF is never set on IKE probes).
	Size int
	// Proposals to offer (strongSwan syntax, ike.ParseProposals); nil: the ike defaults.
	Proposals []ike.Proposal
	Auth      ike.AuthMethod // IKEv1 authentication method; 0: pre-shared key
	// Stateless asks for an answer that leaves no half-open SA on the gateway: IKEv2
	// provokes INVALID_KE_PAYLOAD (ike.SAInitParams.Stateless), IKEv1 offers a transform
	// nobody accepts and expects NO_PROPOSAL_CHOSEN. Used to test paths, not gateways.
	Stateless bool
	Nonce     uint32        // probe nonce carried in the initiator SPI; 0: random
	Timeout   time.Duration // one exchange, retransmits included; 0: IKEExchangeTimeout
	Tries     int           // sends per round; 0: IKETries
}

// IKEResult is what one IKE exchange found. Empty fields were not learnt.
type IKEResult struct {
	Version    int        `json:"version"`
	Port       int        `json:"port"`
	SourcePort int        `json:"source_port,omitempty"`
	Size       int        `json:"size"` // bytes on the wire of the last request, IP header included
	Attempts   int        `json:"attempts"`
	Outcome    IKEOutcome `json:"outcome"`
	// Notify is the refusing or steering notify of the last answer (NO_PROPOSAL_CHOSEN,
	// INVALID_KE_PAYLOAD, COOKIE…); WantedGroup the group an INVALID_KE_PAYLOAD asked for.
	Notify      string `json:"notify,omitempty"`
	WantedGroup string `json:"wanted_group,omitempty"`
	// Chosen is the accepted proposal in strongSwan syntax ("aes128-sha256-prfsha256-modp2048"),
	// ChosenDetail with IANA names ("AES_CBC_128/HMAC_SHA2_256_128/PRF_HMAC_SHA2_256/MODP_2048").
	Chosen       string   `json:"chosen,omitempty"`
	ChosenDetail string   `json:"chosen_detail,omitempty"`
	VendorIDs    []string `json:"vendor_ids,omitempty"`
	// Fragmentation: the gateway announced IKE fragmentation (IKEv2
	// IKEV2_FRAGMENTATION_SUPPORTED, RFC 7383; IKEv1 the FRAGMENTATION vendor ID).
	Fragmentation bool `json:"ike_fragmentation"`
	// NATT: the gateway speaks NAT traversal (IKEv2 NAT_DETECTION_* notifies; IKEv1 the
	// RFC 3947 vendor ID or a draft's). NATDetected: its NAT detection hash of our address
	// did not match what we sent from (nil: not known).
	NATT        bool          `json:"nat_t"`
	NATDetected *bool         `json:"nat_detected,omitempty"`
	RTT         time.Duration `json:"-"`
	RTTms       float64       `json:"rtt_ms,omitempty"`
	AnsweredBy  string        `json:"answered_by,omitempty"`
	ICMP        *report.ICMP  `json:"icmp,omitempty"`
	// NATGateway: none of its hashes of its own address matched the address we sent to (it
	// is behind a NAT, or fakes the hash to force UDP encapsulation); nil: not known.
	// LocalAddr is our address:port the hashes were checked against.
	NATGateway *bool  `json:"nat_gateway,omitempty"`
	LocalAddr  string `json:"local_addr,omitempty"`
	// Steps says what happened along the way, e.g. "INVALID_KE_PAYLOAD wants MODP_2048:
	// sent again with a MODP_2048 key exchange, as an initiator does".
	Steps []string `json:"steps,omitempty"`
	Nonce uint32   `json:"probe_nonce"`
	// Cookie: the gateway answered a request of this exchange with a COOKIE (RFC 7296
	// §2.6): the request arrived, whatever came after.
	Cookie bool `json:"cookie,omitempty"`
	// Released: an accepted IKEv1 Main Mode was closed with an unencrypted error notify
	// (ike.BuildNotifyV1), so the gateway can drop the half-open SA it made for us.
	Released bool `json:"released,omitempty"`
}

// Answered reports whether the gateway answered in IKE (accepted or refused).
func (r *IKEResult) Answered() bool { return r.Outcome == IKEAccepted || r.Outcome == IKERefused }

// Arrived reports whether the request is known to have reached the gateway: it answered
// in IKE, or answered this exchange (a COOKIE, an INVALID_KE_PAYLOAD) before it went
// silent.
func (r *IKEResult) Arrived() bool {
	return r.Answered() || (r.Outcome == IKEGatewaySilent && r.AnsweredBy != "")
}

// Name is "IKEv2 on UDP 500" and the like ("IKE (no exchange recorded)" for the zero result).
func (r *IKEResult) Name() string {
	if r.Version == 0 || r.Port == 0 {
		return "IKE (no exchange recorded)"
	}
	return fmt.Sprintf("IKEv%d on UDP %d", r.Version, r.Port)
}

// Recorded reports whether r holds an exchange's outcome. The zero IKEResult (a proposal
// not offered, a job that never ran) does not, and is no verdict on the path.
func (r *IKEResult) Recorded() bool { return r.Outcome != "" && r.Version != 0 && r.Port != 0 }

// IKEOverhead returns the bytes a request carries besides the IKE message: IPv4 and UDP
// headers, and the non-ESP marker on 4500.
func IKEOverhead(port int) int {
	if port == PortNATT {
		return 28 + ike.NonESPMarkerLen
	}
	return 28
}

// ProbeIKE runs one IKE exchange with target the way a real initiator starts one: it sends
// IKEv1 Main Mode message 1 or IKEv2 IKE_SA_INIT, retransmits (IKETries sends, waits
// growing IKEBackoff times from IKEFirstRetransmit), answers a COOKIE and an INVALID_KE_PAYLOAD by sending
// again as RFC 7296 says, and reads the gateway's answer. The socket is a plain UDP socket
// opened in the caller's network namespace. A gateway that does not answer is not an
// error: the result says IKENoAnswer. Errors mean the probe could not run (bad options, no
// socket, the source port is taken).
func ProbeIKE(ctx context.Context, target netip.Addr, opts IKEOptions) (IKEResult, error) {
	opts, err := prepareIKE(target, opts)
	if err != nil {
		return IKEResult{}, err
	}
	conn, err := dialIKE(target, opts.Port, opts.SourcePort)
	if err != nil {
		return IKEResult{Version: opts.Version, Port: opts.Port, Outcome: IKENoAnswer, Nonce: opts.Nonce}, err
	}
	defer conn.Close()
	return exchangeIKE(ctx, conn, target, opts)
}

// prepareIKE checks opts and fills in the defaults.
func prepareIKE(target netip.Addr, opts IKEOptions) (IKEOptions, error) {
	if err := CheckTarget(target); err != nil {
		return opts, fmt.Errorf("probe: ike: %w", err)
	}
	if opts.Version == 0 {
		opts.Version = 2
	}
	if opts.Port == 0 {
		opts.Port = PortIKE
	}
	if opts.Version != 1 && opts.Version != 2 {
		return opts, fmt.Errorf("probe: ike: version %d (want 1 or 2)", opts.Version)
	}
	if opts.Port < 1 || opts.Port > 65535 || opts.SourcePort < 0 || opts.SourcePort > 65535 {
		return opts, fmt.Errorf("probe: ike: bad port %d/%d", opts.SourcePort, opts.Port)
	}
	if opts.Timeout <= 0 {
		opts.Timeout = IKEExchangeTimeout
	}
	if opts.Tries <= 0 {
		opts.Tries = IKETries
	}
	if opts.Nonce == 0 {
		var b [4]byte
		if _, err := rand.Read(b[:]); err != nil {
			return opts, fmt.Errorf("probe: ike: nonce: %w", err)
		}
		opts.Nonce = binary.BigEndian.Uint32(b[:]) | 1
	}
	return opts, nil
}

// exchangeIKE runs one exchange over conn, a socket from dialIKE to target (opened where
// the caller wanted it: sockets keep the network namespace of the thread that opened them).
func exchangeIKE(ctx context.Context, conn *net.UDPConn, target netip.Addr, opts IKEOptions) (IKEResult, error) {
	res := IKEResult{Version: opts.Version, Port: opts.Port, Outcome: IKENoAnswer, Nonce: opts.Nonce}
	local := conn.LocalAddr().(*net.UDPAddr).AddrPort()
	res.SourcePort = int(local.Port())
	remote := netip.AddrPortFrom(target.Unmap(), uint16(opts.Port))

	x := &ikeExchange{opts: opts, local: local, remote: remote, spi: ike.SPIWithNonce(opts.Nonce)}
	ctx, cancel := context.WithTimeout(ctx, opts.Timeout*time.Duration(ikeMaxRedo+1))
	defer cancel()
	firstWait := firstRetransmit(opts.Timeout, opts.Tries)
	buf := make([]byte, ikeReadBuf)
	for round := 0; round <= ikeMaxRedo; round++ {
		msg, err := x.build()
		if err != nil {
			return res, fmt.Errorf("probe: ike: build %s: %w", res.Name(), err)
		}
		res.Size = len(msg) + 28
		answer, rtt, sends, icmp, err := exchangeUDP(ctx, conn, msg, buf, firstWait, opts.Tries, x.matches)
		res.Attempts += sends
		if err != nil {
			return res, fmt.Errorf("probe: ike: %s to %s: %w", res.Name(), remote, err)
		}
		if icmp != nil {
			res.Outcome, res.ICMP = IKEUnreachable, icmp
			return res, nil
		}
		if answer == nil {
			res.Outcome = IKENoAnswer
			if x.cookie != nil {
				// The COOKIE itself was an answer: the path carried the request, the
				// gateway stopped answering us. Not a refusal, not a verdict on the path.
				res.Outcome, res.Notify = IKEGatewaySilent, ""
				res.Steps = append(res.Steps, fmt.Sprintf("after we returned its COOKIE the gateway stopped answering us (%d sends): half-open limit? (strongSwan ignores a peer that holds 5 half-open SAs, for up to 30 s); the path carried the request", sends))
				return res, nil
			}
			if round > 0 {
				// It answered the first request of this exchange (INVALID_KE_PAYLOAD),
				// then not the one sent again as it asked: the gateway, not the path.
				res.Outcome, res.Notify = IKEGatewaySilent, ""
				res.Steps = append(res.Steps, fmt.Sprintf("no answer to the request sent again as the gateway asked (%d sends): it stopped answering us (half-open limit?); the path carried the first request", sends))
			}
			return res, nil
		}
		res.RTT, res.RTTms, res.AnsweredBy = rtt, float64(rtt.Microseconds())/1000, remote.Addr().String()
		if again := x.interpret(&res, answer); !again {
			if opts.Version == 1 && res.Outcome == IKEAccepted && !opts.Stateless {
				res.Released = x.releaseV1(conn, answer)
				if res.Released {
					res.Steps = append(res.Steps, "closed with an unencrypted NO_PROPOSAL_CHOSEN notify, so the gateway can drop the half-open SA this exchange made (strongSwan does)")
				}
			}
			return res, nil
		}
	}
	// The gateway kept answering: a refusal we could not satisfy, or COOKIEs only (it did
	// not take the ones we returned: strongSwan 5.9 rejects every cookie as expired in the
	// first seconds after it starts, when its uptime is short).
	if res.Notify != "" {
		res.Outcome = IKERefused
		res.Steps = append(res.Steps, fmt.Sprintf("gave up after %d rounds of COOKIE/INVALID_KE_PAYLOAD", ikeMaxRedo+1))
	} else {
		res.Outcome = IKEGatewaySilent
		res.Steps = append(res.Steps, fmt.Sprintf("gave up after %d rounds: the gateway asked for a COOKIE every time and took none of those we returned", ikeMaxRedo+1))
	}
	return res, nil
}

// releaseV1 ends an IKEv1 Main Mode the gateway answered (message 2 in answer): one
// unencrypted Informational with a NO_PROPOSAL_CHOSEN notify for the ISAKMP SA, which makes
// strongSwan destroy the half-open SA at once instead of holding it 30 s against its
// per-peer limit. It reports whether the notify was sent (it is not acknowledged).
func (x *ikeExchange) releaseV1(conn *net.UDPConn, answer []byte) bool {
	var h ike.Header
	if h.DecodeFromBytes(answer) != nil || h.Exchange != ike.ExchangeIdentityProtection || h.ResponderSPI == [8]byte{} {
		return false
	}
	var mid [4]byte
	if _, err := rand.Read(mid[:]); err != nil {
		return false
	}
	var b []byte
	if x.opts.Port == PortNATT {
		b = ike.AppendNonESPMarker(b)
	}
	b, err := ike.BuildNotifyV1(b, x.spi, h.ResponderSPI, binary.BigEndian.Uint32(mid[:])|1, ike.NotifyNoProposalChosen)
	if err != nil {
		return false
	}
	_, err = conn.Write(b)
	return err == nil
}

// ikeExchange is the state of one exchange across its rounds.
type ikeExchange struct {
	opts          IKEOptions
	local, remote netip.AddrPort
	spi           [8]byte
	cookie        []byte
	group         ike.Group // KE group of the next IKEv2 request (0: the first offered)
	retriedGroups map[ike.Group]bool
	offered       []ike.ProposalV2
}

func (x *ikeExchange) build() ([]byte, error) {
	var b []byte
	if x.opts.Port == PortNATT {
		b = ike.AppendNonESPMarker(b)
	}
	size := 0
	if x.opts.Size != 0 {
		size = x.opts.Size - IKEOverhead(x.opts.Port)
		if size < ike.HeaderLen {
			return nil, fmt.Errorf("size %d: below the %d bytes of headers", x.opts.Size, IKEOverhead(x.opts.Port)+ike.HeaderLen)
		}
	}
	if x.opts.Version == 1 {
		p := ike.MainModeParams{Cookie: x.spi, Auth: x.opts.Auth, Size: size}
		if x.opts.Stateless {
			p.Transforms = unacceptableV1(x.opts.Auth)
		} else if x.opts.Proposals != nil {
			auth := x.opts.Auth
			if auth == 0 {
				auth = ike.AuthPSK
			}
			for _, pr := range x.opts.Proposals {
				ts, err := pr.V1(auth, 28800)
				if err != nil {
					return nil, err
				}
				p.Transforms = append(p.Transforms, ts...)
			}
			for i := range p.Transforms {
				p.Transforms[i].Number = uint8(i + 1)
			}
		}
		return ike.BuildMainMode(b, p)
	}
	if x.offered == nil && x.opts.Proposals != nil {
		for i, pr := range x.opts.Proposals {
			x.offered = append(x.offered, pr.V2(uint8(i+1)))
		}
	}
	p := ike.SAInitParams{SPI: x.spi, Proposals: x.offered, Group: x.group, Cookie: x.cookie,
		Local: x.local, Remote: x.remote, Size: size, Stateless: x.opts.Stateless && x.group == 0}
	return ike.BuildSAInit(b, p)
}

// unacceptableV1 is a Main Mode transform no current gateway accepts (DES, MD5, the
// 768-bit group), so the answer is NO_PROPOSAL_CHOSEN and the responder keeps no state.
func unacceptableV1(auth ike.AuthMethod) []ike.TransformV1 {
	if auth == 0 {
		auth = ike.AuthPSK
	}
	return []ike.TransformV1{{Number: 1, ID: 1, Attributes: []ike.Attribute{
		ike.TV(ike.AttrEncryption, 1), ike.TV(ike.AttrHash, ike.HashV1MD5), ike.TV(ike.AttrAuthMethod, uint16(auth)),
		ike.TV(ike.AttrGroup, uint16(ike.MODP768)), ike.TV(ike.AttrLifeType, ike.LifeSeconds), ike.LifeDuration(600)}}}
}

// matches reports whether a datagram is the answer to this exchange: an IKE message of
// our version with our initiator SPI, and for IKEv2 the response to IKE_SA_INIT.
func (x *ikeExchange) matches(udp []byte) ([]byte, bool) {
	msg := udp
	if x.opts.Port == PortNATT {
		var err error
		if msg, err = ike.StripNonESPMarker(udp); err != nil {
			return nil, false
		}
	}
	var h ike.Header
	if h.DecodeFromBytes(msg) != nil || h.InitiatorSPI != x.spi || h.Major() != x.opts.Version {
		return nil, false
	}
	if x.opts.Version == 2 && (!h.IsResponse() || h.Exchange != ike.ExchangeIKESAInit || h.MessageID != 0) {
		return nil, false
	}
	if x.opts.Version == 1 && h.Exchange != ike.ExchangeIdentityProtection && h.Exchange != ike.ExchangeInformationalV1 {
		return nil, false
	}
	return msg, true
}

// interpret fills res from an answer; it returns true when the exchange must be sent again
// (COOKIE, or INVALID_KE_PAYLOAD naming a group we offered).
func (x *ikeExchange) interpret(res *IKEResult, msg []byte) bool {
	a := ike.ReadAnswer(msg, ike.Sent{Version: x.opts.Version, SPI: x.spi, Local: x.local, Remote: x.remote})
	if a.Kind == ike.AnswerMalformed {
		res.Outcome = IKERefused
		res.Notify = "malformed answer"
		res.Steps = append(res.Steps, "the answer does not decode: "+a.Err.Error())
		return false
	}
	res.Notify, res.WantedGroup = "", ""
	res.VendorIDs = append(res.VendorIDs[:0], a.VendorIDs...)
	res.Fragmentation = res.Fragmentation || a.Fragmentation
	res.NATT = res.NATT || a.NATT
	res.Cookie = res.Cookie || a.CookieSeen
	switch a.Kind {
	case ike.AnswerCookie:
		x.takeCookie(res, a.Cookie)
		return true
	case ike.AnswerInvalidKE:
		res.Notify, res.WantedGroup = a.Notify.String(), a.Group.String()
		return x.invalidKE(res, a.Group)
	case ike.AnswerRefused:
		res.Outcome, res.Notify = IKERefused, a.Notify.String()
	case ike.AnswerNoSA:
		res.Outcome, res.Notify = IKERefused, "answer without SA or notify"
	case ike.AnswerAccepted:
		res.Outcome = IKEAccepted
		res.Chosen, res.ChosenDetail = a.Chosen, a.ChosenDetail
		if x.opts.Version == 2 {
			res.NATDetected, res.NATGateway = a.NATD.Ours, a.NATD.Theirs
			if a.NATD.Checked() {
				res.LocalAddr = x.local.String()
			}
		}
	}
	return false
}

// takeCookie keeps the gateway's COOKIE for the next round. Every COOKIE is followed, a
// repeated one too (as charon does: the gateway may have changed its secret, or not yet
// taken ours), within ikeMaxRedo rounds. A COOKIE is never the exchange's outcome.
func (x *ikeExchange) takeCookie(res *IKEResult, cookie []byte) {
	again := x.cookie != nil
	x.cookie = cookie
	if again {
		res.Steps = append(res.Steps, "the gateway asked for a COOKIE again: sent again with it")
	} else {
		res.Steps = append(res.Steps, "the gateway asked for a COOKIE (it is under load or holds half-open SAs from us): sent again with it")
	}
}

// invalidKE answers an IKEv2 INVALID_KE_PAYLOAD asking for want: accepted when we provoked
// it (stateless), sent again once with that group when we offered it, refused otherwise. It
// returns true when the request must be sent again.
func (x *ikeExchange) invalidKE(res *IKEResult, want ike.Group) bool {
	if x.opts.Stateless && x.group == 0 {
		// What we provoked: the proposal is acceptable, the decoy group is not.
		res.Outcome = IKEAccepted
		res.Steps = append(res.Steps, fmt.Sprintf("INVALID_KE_PAYLOAD wants %s, as provoked: a proposal is acceptable and the gateway keeps no state", want))
		return false
	}
	if x.retriedGroups == nil {
		x.retriedGroups = map[ike.Group]bool{}
	}
	if want.PublicLen() > 0 && !x.retriedGroups[want] && x.offers(want) {
		x.retriedGroups[want] = true
		x.group = want
		res.Steps = append(res.Steps, fmt.Sprintf("INVALID_KE_PAYLOAD wants %s: sent again with a %s key exchange, as an initiator does", want, want))
		return true
	}
	res.Outcome = IKERefused
	res.Steps = append(res.Steps, fmt.Sprintf("INVALID_KE_PAYLOAD wants %s, which we did not offer", want))
	return false
}

// offers reports whether group g is in a proposal this exchange sent.
func (x *ikeExchange) offers(g ike.Group) bool {
	props := x.offered
	if props == nil {
		ps, err := ike.ParseProposals(ike.DefaultProposalsV2)
		if err != nil {
			return false
		}
		for i, p := range ps {
			props = append(props, p.V2(uint8(i+1)))
		}
	}
	for _, p := range props {
		for _, t := range p.Transforms {
			if t.Type == ike.TransformDH && ike.Group(t.ID) == g {
				return true
			}
		}
	}
	return false
}

// exchangeUDP sends msg and waits for a datagram match accepts, resending up to tries times,
// waiting firstWait and then IKEBackoff times longer each time, within ctx. It returns the matched
// message (a sub-slice of buf), the time since the last send, the number of sends, and an
// ICMP error if one came back instead. Datagrams match rejects are ignored.
func exchangeUDP(ctx context.Context, c *net.UDPConn, msg, buf []byte, firstWait time.Duration, tries int,
	match func([]byte) ([]byte, bool)) (answer []byte, rtt time.Duration, sends int, icmp *report.ICMP, err error) {
	wait := firstWait
	for sends < tries {
		if ctx.Err() != nil {
			return nil, 0, sends, nil, nil
		}
		sent := time.Now()
		if _, err := c.Write(msg); err != nil {
			if ic := readICMPError(c); ic != nil {
				return nil, 0, sends + 1, ic, nil
			}
			if errors.Is(err, syscall.EMSGSIZE) {
				return nil, 0, sends, nil, fmt.Errorf("send %d bytes: %w", len(msg), err)
			}
			// A stale ICMP error from an earlier send surfaces here; try again.
			sends++
			continue
		}
		sends++
		deadline := sent.Add(wait)
		if d, ok := ctx.Deadline(); ok && d.Before(deadline) {
			deadline = d
		}
		for {
			if err := c.SetReadDeadline(deadline); err != nil {
				return nil, 0, sends, nil, fmt.Errorf("set deadline: %w", err)
			}
			n, err := c.Read(buf)
			if err != nil {
				if errors.Is(err, os.ErrDeadlineExceeded) {
					break
				}
				if ic := readICMPError(c); ic != nil {
					return nil, 0, sends, ic, nil
				}
				if errors.Is(err, net.ErrClosed) {
					return nil, 0, sends, nil, err
				}
				continue
			}
			if m, ok := match(buf[:n]); ok {
				return m, time.Since(sent), sends, nil, nil
			}
		}
		wait = time.Duration(float64(wait) * IKEBackoff)
	}
	return nil, 0, sends, nil, nil
}

// IKEICMPMeaning says what an ICMP error that came back instead of an IKE answer means, from
// who sent it (the target itself or another device) and its type and code: only a port or
// protocol unreachable from the target says that nothing listens there, only a rejection
// says a filter, and a routing or size error says neither.
func IKEICMPMeaning(target string, ic *report.ICMP) string {
	if ic == nil {
		return "an ICMP error came back, its sender not recorded"
	}
	fromTarget := ic.From == target
	unreach := ic.Type == wire.ICMPUnreach
	nothingListens := unreach && (ic.Code == wire.CodeProtoUnreach || ic.Code == wire.CodePortUnreach)
	prohibited := unreach && (ic.Code == wire.CodeNetProhibited || ic.Code == wire.CodeHostProhibited || ic.Code == wire.CodeAdminProhibited)
	switch {
	case nothingListens && fromTarget:
		return "the target itself answered: the path carries IKE, but nothing listens for it there"
	case prohibited && fromTarget:
		return "the target's own firewall rejects it (administratively prohibited): the path carries IKE up to the target"
	case nothingListens || prohibited:
		return fmt.Sprintf("a device on the path (%s) rejects IKE: its filter blocks it", ic.From)
	case unreach && ic.Code == wire.CodeFragNeeded:
		return fmt.Sprintf("%s cannot forward a request this large with DF set (next-hop MTU %d): a path MTU limit, not a refusal", ic.From, ic.MTU)
	case unreach:
		return fmt.Sprintf("%s cannot deliver it (%s): no route toward the target there, or the target does not answer on its link; not a refusal of IKE", ic.From, wire.ICMPBrief(ic.Type, ic.Code))
	case ic.Type == wire.ICMPTimeExceeded && ic.Code == wire.CodeReassemblyTimeout:
		return fmt.Sprintf("%s got only part of the fragmented request (reassembly timed out): fragments are lost on the way", ic.From)
	case ic.Type == wire.ICMPTimeExceeded:
		return fmt.Sprintf("the request's TTL ran out at %s: a routing loop, or a path longer than the TTL; not a refusal of IKE", ic.From)
	}
	return fmt.Sprintf("%s answered with ICMP type %d code %d", ic.From, ic.Type, ic.Code)
}

// backoffParts is 1 + IKEBackoff + IKEBackoff² + … for tries waits.
func backoffParts(tries int) float64 {
	parts, w := 0.0, 1.0
	for range tries {
		parts += w
		w *= IKEBackoff
	}
	return parts
}

// firstRetransmit is the first wait that makes tries growing waits add up to budget.
func firstRetransmit(budget time.Duration, tries int) time.Duration {
	return time.Duration(float64(budget) / backoffParts(tries))
}

// retransmitBudget is what tries waits add up to when the first is first.
func retransmitBudget(first time.Duration, tries int) time.Duration {
	return time.Duration(float64(first) * backoffParts(tries))
}
