package ike

import (
	"encoding/binary"
	"net/netip"
)

// AnswerKind is what an answer to the first message of an exchange (IKEv2 IKE_SA_INIT,
// IKEv1 Main Mode message 1) asks of the initiator.
type AnswerKind int

const (
	// AnswerMalformed: the answer does not decode (Answer.Err says why).
	AnswerMalformed AnswerKind = iota + 1
	// AnswerCookie: IKEv2 COOKIE (RFC 7296 §2.6): send the request again with Answer.Cookie.
	AnswerCookie
	// AnswerInvalidKE: IKEv2 INVALID_KE_PAYLOAD naming Answer.Group (RFC 7296 §1.2): send
	// again with a key exchange of that group, if it was offered.
	AnswerInvalidKE
	// AnswerRefused: an error notify (Answer.Notify), INVALID_KE_PAYLOAD without a group
	// included.
	AnswerRefused
	// AnswerNoSA: neither an SA nor an error notify.
	AnswerNoSA
	// AnswerAccepted: an SA payload, the proposal the responder chose.
	AnswerAccepted
)

var answerKindNames = [...]string{"", "malformed", "cookie", "invalid-ke", "refused", "no-sa", "accepted"}

func (k AnswerKind) String() string {
	if k > 0 && int(k) < len(answerKindNames) {
		return answerKindNames[k]
	}
	return "unknown"
}

// Sent is what the reading of an answer needs of the request it answers: the version, our
// initiator SPI, and where we sent from and to (for the NAT detection hashes).
type Sent struct {
	Version       int // 1 or 2
	SPI           [8]byte
	Local, Remote netip.AddrPort
}

// Answer is the reading of one answer. Fields that the answer did not carry are zero.
type Answer struct {
	Kind AnswerKind
	Err  error // AnswerMalformed: the decode error
	// Notify is the first error notify (AnswerRefused, AnswerInvalidKE); Group the group an
	// IKEv2 INVALID_KE_PAYLOAD asks for.
	Notify NotifyType
	Group  Group
	// Cookie is the IKEv2 COOKIE's data (a copy); CookieSeen is set for a COOKIE notify in
	// either version (IKEv1 has no COOKIE round, the notify is only recorded).
	Cookie     []byte
	CookieSeen bool
	VendorIDs  []string // VendorName of each vendor ID, in order
	// Fragmentation: IKEV2_FRAGMENTATION_SUPPORTED or the IKEv1 fragmentation vendor ID.
	// NATT: NAT_DETECTION_* notifies or a NAT-T vendor ID.
	Fragmentation, NATT bool
	// Chosen is the accepted proposal in strongSwan syntax, ChosenDetail with IANA names
	// (AnswerAccepted, when the SA parses).
	Chosen, ChosenDetail string
	// NATD is the check of an accepted IKEv2 answer's NAT detection hashes against
	// Sent.Local and Sent.Remote.
	NATD NATDCheck
}

// answerPayloads is what the walk over an answer's payloads collects.
type answerPayloads struct {
	Answer
	refusal         *Notify
	natdSrc         [][]byte
	natdDst         [][]byte
	stoppedAtCookie bool
}

// ReadAnswer reads msg, an IKE message (non-ESP marker removed) answering the request s
// describes. It is pure: it keeps no reference into msg. An IKEv2 COOKIE ends the reading
// (the payloads after it are not read: the request is sent again); otherwise the first error
// notify decides, then the SA payload.
func ReadAnswer(msg []byte, s Sent) Answer {
	var m Message
	if err := m.DecodeFromBytes(msg); err != nil {
		return Answer{Kind: AnswerMalformed, Err: err}
	}
	v2 := s.Version == 2
	w := walkAnswer(&m, v2)
	a := w.Answer
	switch {
	case w.stoppedAtCookie:
		a.Kind = AnswerCookie
	case w.refusal != nil:
		a.Notify = w.refusal.Type
		a.Kind = AnswerRefused
		if w.refusal.Type == NotifyInvalidKEPayload && v2 && len(w.refusal.Data) >= 2 {
			a.Kind = AnswerInvalidKE
			a.Group = Group(binary.BigEndian.Uint16(w.refusal.Data))
		}
	default:
		readSA(&a, &m, s, w.natdSrc, w.natdDst)
	}
	return a
}

// walkAnswer collects the vendor IDs and notifies of m, up to an IKEv2 COOKIE.
func walkAnswer(m *Message, v2 bool) answerPayloads {
	var w answerPayloads
	for _, p := range m.Payloads {
		switch p.Type {
		case PayloadVendorID, PayloadVendorIDV1:
			w.VendorIDs = append(w.VendorIDs, VendorName(p.Body))
			w.Fragmentation = w.Fragmentation || IsFragmentationVID(p.Body)
			w.NATT = w.NATT || IsNATTVID(p.Body)
		case PayloadNotify, PayloadNotifyV1:
			n, err := ParseNotify(v2, p.Body)
			if err != nil {
				continue
			}
			if w.notify(n, v2) {
				return w
			}
		}
	}
	return w
}

// notify records one notify; it reports whether it ends the reading (an IKEv2 COOKIE).
func (w *answerPayloads) notify(n Notify, v2 bool) bool {
	switch n.Type {
	case NotifyCookie:
		w.CookieSeen = true
		if v2 {
			w.Cookie = append([]byte(nil), n.Data...)
			w.stoppedAtCookie = true
			return true
		}
	case NotifyFragmentationSupported:
		w.Fragmentation = true
	case NotifyNATDetectionSourceIP:
		w.NATT = true
		w.natdSrc = append(w.natdSrc, n.Data)
	case NotifyNATDetectionDestinationIP:
		w.NATT = true
		w.natdDst = append(w.natdDst, n.Data)
	default:
		if n.Type.Error() && w.refusal == nil {
			nn := n
			w.refusal = &nn
		}
	}
	return false
}

// readSA reads the chosen proposal of an answer without an error notify, and for IKEv2
// checks the NAT detection hashes.
func readSA(a *Answer, m *Message, s Sent, natdSrc, natdDst [][]byte) {
	v2 := s.Version == 2
	saType := PayloadSAv1
	if v2 {
		saType = PayloadSA
	}
	sa, ok := m.Find(saType)
	if !ok {
		a.Kind = AnswerNoSA
		return
	}
	a.Kind = AnswerAccepted
	if !v2 {
		sv, err := ParseSAv1(sa.Body)
		if err == nil && len(sv.Proposals) > 0 && len(sv.Proposals[0].Transforms) > 0 {
			t := sv.Proposals[0].Transforms[0]
			a.Chosen, a.ChosenDetail = t.Keywords(), t.String()
		}
		return
	}
	sv, err := ParseSAv2(sa.Body)
	if err == nil && len(sv.Proposals) > 0 {
		a.Chosen, a.ChosenDetail = sv.Proposals[0].Keywords(), sv.Proposals[0].String()
	}
	// The responder's hashes of where it saw us come from and of its own address, against
	// where we sent from and to.
	hashOf := func(ap netip.AddrPort) []byte { return NATDetectionHash(s.SPI, m.ResponderSPI, ap) }
	a.NATD = CheckNATD(hashOf, s.Local, s.Remote, natdSrc, natdDst)
}
