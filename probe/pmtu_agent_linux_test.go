package probe

import (
	"net/netip"
	"testing"

	"github.com/ipsecpath/ipsecpath/pmtu"
	"github.com/ipsecpath/ipsecpath/probe/wire"
)

// TestICMPAboutReverse: an ICMP error in the agent's capture that quotes the agent's reverse
// pmtu echo (as r2 sends it in the mtu1400 lab) is that probe's answer, with the router's
// address and MTU; other nonces, other messages and short captures are not.
func TestICMPAboutReverse(t *testing.T) {
	const nonce = 0x1234abcd
	agentIP, us, r2 := netip.MustParseAddr("203.0.113.10"), netip.MustParseAddr("198.51.100.10"), netip.MustParseAddr("203.0.113.1")
	var pk Packets
	if err := Build(PMTU, BuildParams{Src: agentIP, Dst: us, Nonce: nonce, Size: 1500, DF: true}, &pk); err != nil {
		t.Fatal(err)
	}
	icmp := func(typ, code byte, mtu uint16) []byte {
		return append([]byte{typ, code, 0, 0, 0, 0, byte(mtu >> 8), byte(mtu)}, pk.Wire[0][:HeadLen-wire.ICMPHeaderLen]...)
	}
	seen := func(head []byte) *Seen {
		return &Seen{Src: r2, Dst: agentIP, Proto: ProtoICMP, TotalLen: 20 + len(head), Head: head}
	}
	if r, ok := icmpAboutReverse(seen(icmp(wire.ICMPUnreach, wire.CodeFragNeeded, 1400)), nonce); !ok || r.Outcome != pmtu.FragNeeded || r.MTU != 1400 || r.From != r2 {
		t.Errorf("frag-needed: %+v, %v", r, ok)
	}
	if r, ok := icmpAboutReverse(seen(icmp(wire.ICMPTimeExceeded, wire.CodeTTLExceeded, 0)), nonce); !ok || r.Outcome != pmtu.TimeExceeded || r.From != r2 {
		t.Errorf("time exceeded: %+v, %v", r, ok)
	}
	if r, ok := icmpAboutReverse(seen(icmp(wire.ICMPUnreach, wire.CodeAdminProhibited, 0)), nonce); !ok || r.Outcome != pmtu.Unreachable || r.Code != wire.CodeAdminProhibited {
		t.Errorf("admin-prohibited: %+v, %v", r, ok)
	}
	for name, s := range map[string]*Seen{
		"other nonce": seen(icmp(wire.ICMPUnreach, wire.CodeFragNeeded, 1400)),
		"echo itself": {Src: agentIP, Proto: ProtoICMP, Head: pk.Wire[0][20:HeadLen]},
		"short":       seen([]byte{wire.ICMPUnreach, wire.CodeFragNeeded, 0}),
		"fragment":    {Src: r2, Proto: ProtoICMP, Offset: 1480, Head: icmp(wire.ICMPUnreach, wire.CodeFragNeeded, 1400)},
	} {
		n := uint32(nonce)
		if name == "other nonce" {
			n++
		}
		if r, ok := icmpAboutReverse(s, n); ok {
			t.Errorf("%s: taken as %+v", name, r)
		}
	}
}
