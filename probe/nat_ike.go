package probe

import (
	"fmt"
	"net/netip"

	"github.com/ipsecpath/ipsecpath/report"
)

// NAT is what the gateway's NAT detection hashes said, over every exchange that carried
// them (IKEv2's NAT_DETECTION_* notifies; see ike/natd.go), or nil when none did: then
// nothing was measured. The hashes say whether an address or port was rewritten, not which
// nor into what, so Seen and Kind stay empty.
func (s *IKESurvey) NAT() *report.NAT {
	var ours, theirs, checked *IKEResult
	for i := range s.Exchanges {
		x := &s.Exchanges[i]
		if x.NATDetected == nil && x.NATGateway == nil {
			continue
		}
		if checked == nil {
			checked = x
		}
		if x.NATDetected != nil && *x.NATDetected && ours == nil {
			ours = x
		}
		if x.NATGateway != nil && *x.NATGateway && theirs == nil {
			theirs = x
		}
	}
	if checked == nil {
		return nil
	}
	pick := checked
	if ours != nil {
		pick = ours
	} else if theirs != nil {
		pick = theirs
	}
	remote := s.Target
	if a, err := netip.ParseAddr(s.Target); err == nil {
		remote = netip.AddrPortFrom(a, uint16(pick.Port)).String()
	}
	n := &report.NAT{Via: "ike-natd", Sent: pick.LocalAddr}
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
		n.Detail = fmt.Sprintf("a NAT between us, on our side: the gateway's NAT detection hash of where it saw us come from (%s) does not match our %s, so a NAT rewrote our address or port; and %s. IKE floats to UDP 4500 and ESP must be UDP-encapsulated (NAT-T); raw ESP and AH cannot cross a NAT.",
			pick.Name(), pick.LocalAddr, gw)
	case "ours":
		n.Detail = fmt.Sprintf("a NAT between us, on our side: the gateway's NAT detection hash of where it saw us come from (%s) does not match our %s, so a NAT rewrote our address or port. IKE floats to UDP 4500 and ESP must be UDP-encapsulated (NAT-T); raw ESP and AH cannot cross a NAT.",
			pick.Name(), pick.LocalAddr)
	case "gateway's":
		n.Detail = fmt.Sprintf("on the gateway's side (%s): %s; our own %s arrived untranslated.", pick.Name(), gw, pick.LocalAddr)
		if pick.NATDetected == nil {
			n.Detail = fmt.Sprintf("on the gateway's side (%s): %s; whether our own address is translated was not told.", pick.Name(), gw)
		}
	default:
		n.Detail = fmt.Sprintf("the gateway's NAT detection hashes (%s) match our %s and its %s: nothing rewrote either.", pick.Name(), pick.LocalAddr, remote)
		if pick.NATDetected == nil || pick.NATGateway == nil {
			n.Detail = fmt.Sprintf("the gateway's NAT detection hashes (%s) show no translation of the addresses they cover.", pick.Name())
		}
	}
	if n.Detected {
		n.Advice = NATKeepaliveAdvice(false, 0, 0)
	}
	return n
}
