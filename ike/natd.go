package ike

import (
	"crypto/md5"
	"crypto/sha1"
	"crypto/sha256"
	"crypto/sha512"
	"encoding/binary"
	"fmt"
	"hash"
	"net/netip"
)

// NAT detection (IKEv2: RFC 7296 §2.23; IKEv1: RFC 3947 §3.2). Each end hashes the
// addresses and ports it sends from and to, with both SPIs (cookies):
//
//	HASH(SPIi | SPIr | IP | port)
//
// IKEv2 always uses SHA-1 and carries the hashes in NAT_DETECTION_SOURCE_IP (the sender's own
// address, one per local address it may send from) and NAT_DETECTION_DESTINATION_IP (the
// address it sends to) notifies, from IKE_SA_INIT on. IKEv1 uses the hash algorithm of the
// negotiated ISAKMP SA and carries NAT-D payloads in Main Mode messages 3 and 4: the first
// is the destination's address, the others the sender's. A hash that does not match what
// the receiver knows means a NAT rewrote that address or port on the way.
//
// strongSwan sends a random source hash when configured with encap = yes (and whenever
// kernel-libipsec needs UDP encapsulation): its own side then looks NATed on purpose.

// NATDHashV1 is the IKEv1 NAT-D hash of ap with the cookies, under newHash (the ISAKMP SA's
// hash algorithm: HashV1Func).
func NATDHashV1(newHash func() hash.Hash, cookieI, cookieR [8]byte, ap netip.AddrPort) []byte {
	h := newHash()
	h.Write(cookieI[:])
	h.Write(cookieR[:])
	h.Write(ap.Addr().Unmap().AsSlice())
	h.Write(binary.BigEndian.AppendUint16(nil, ap.Port()))
	return h.Sum(nil)
}

// HashV1Func returns the hash of an IKEv1 Hash-Algorithm attribute value (HashV1MD5 …
// HashV1SHA512), or nil for one it does not know.
func HashV1Func(alg uint16) func() hash.Hash {
	switch alg {
	case HashV1MD5:
		return md5.New
	case HashV1SHA1:
		return sha1.New
	case HashV1SHA256:
		return sha256.New
	case HashV1SHA384:
		return sha512.New384
	case HashV1SHA512:
		return sha512.New
	}
	return nil
}

// NATDCheck is what an answer's NAT detection hashes say about the path, checked against the
// addresses we used. A nil field means the answer carried no hash to check it with.
type NATDCheck struct {
	// Ours is true when the peer's hash of where it saw us come from matches none of our
	// address:port as we sent from: a NAT in front of us (between us and the peer, on our
	// side of the path) rewrote our address or port.
	Ours *bool
	// Theirs is true when none of the peer's hashes of its own address matches the
	// address:port we sent to: the peer sits behind a NAT, or fakes its hash to force UDP
	// encapsulation (strongSwan's encap = yes).
	Theirs *bool
}

// Any reports whether either side was found translated.
func (n NATDCheck) Any() bool { return (n.Ours != nil && *n.Ours) || (n.Theirs != nil && *n.Theirs) }

// Checked reports whether the answer carried any hash to check.
func (n NATDCheck) Checked() bool { return n.Ours != nil || n.Theirs != nil }

// NATDFromMessage collects the NAT detection hashes of a decoded answer: for IKEv2 the
// NAT_DETECTION_SOURCE_IP (src) and NAT_DETECTION_DESTINATION_IP (dst) notifies; for IKEv1
// the NAT-D payloads (RFC 3947, or the drafts' payload 130): the first is the destination
// (dst), the rest the sender's own addresses (src). The slices point into m's buffer.
func NATDFromMessage(m *Message) (src, dst [][]byte) {
	v2 := m.Major() == 2
	first := true
	for _, p := range m.Payloads {
		switch {
		case v2 && p.Type == PayloadNotify:
			n, err := ParseNotify(true, p.Body)
			if err != nil {
				continue
			}
			switch n.Type {
			case NotifyNATDetectionSourceIP:
				src = append(src, n.Data)
			case NotifyNATDetectionDestinationIP:
				dst = append(dst, n.Data)
			}
		case !v2 && (p.Type == PayloadNATDV1 || p.Type == PayloadNATDDraft):
			if first {
				dst = append(dst, p.Body)
				first = false
			} else {
				src = append(src, p.Body)
			}
		}
	}
	return src, dst
}

// CheckNATD checks an answer's hashes: dst (its hashes of where it sent the answer: us as it
// saw us) against hash(local), and src (its own addresses) against hash(remote). hashOf
// computes a hash of an address:port with the exchange's SPIs (NATDetectionHash for
// IKEv2, NATDHashV1 for IKEv1).
func CheckNATD(hashOf func(netip.AddrPort) []byte, local, remote netip.AddrPort, src, dst [][]byte) NATDCheck {
	var out NATDCheck
	if len(dst) > 0 {
		out.Ours = nomatch(hashOf(local), dst)
	}
	if len(src) > 0 {
		out.Theirs = nomatch(hashOf(remote), src)
	}
	return out
}

// nomatch returns a pointer to true when want is none of got.
func nomatch(want []byte, got [][]byte) *bool {
	translated := true
	for _, g := range got {
		if string(g) == string(want) {
			translated = false
		}
	}
	return &translated
}

// MainMode3Params describes IKEv1 Main Mode message 3 sent only to read the responder's
// NAT-D payloads in message 4: key exchange, nonce and our two NAT-D hashes (RFC 3947 §3.2:
// the destination first, then our own address).
type MainMode3Params struct {
	CookieI, CookieR [8]byte
	KE               []byte           // our public value in the chosen group (KeyExchange)
	Nonce            []byte           // 8 to 256 bytes (RFC 2409 §5)
	Hash             func() hash.Hash // the chosen transform's hash (HashV1Func)
	Local, Remote    netip.AddrPort   // where we send from and to
}

// BuildMainMode3 appends Main Mode message 3: KE, Nonce, NAT-D(Remote), NAT-D(Local).
func BuildMainMode3(b []byte, p MainMode3Params) ([]byte, error) {
	if p.Hash == nil || len(p.KE) == 0 || len(p.Nonce) < 8 || len(p.Nonce) > 256 {
		return b, fmt.Errorf("%w: Main Mode 3 needs a hash, a key exchange and a nonce of 8 to 256 bytes", ErrMalformed)
	}
	h := Header{InitiatorSPI: p.CookieI, ResponderSPI: p.CookieR, Version: VersionIKEv1, Exchange: ExchangeIdentityProtection}
	return AppendMessage(b, h, SerializeOptions{FixLengths: true},
		&Data{Type: PayloadKEv1, Data: p.KE}, Nonce(false, p.Nonce),
		NATD(NATDHashV1(p.Hash, p.CookieI, p.CookieR, p.Remote)),
		NATD(NATDHashV1(p.Hash, p.CookieI, p.CookieR, p.Local)))
}
