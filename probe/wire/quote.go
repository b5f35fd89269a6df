package wire

import (
	"encoding/binary"
	"net/netip"
)

// Quote is what an ICMP error quotes of the IPv4 packet that caused it: the header's
// protocol, destination and IP ID, and the bytes after the header (RFC 792: at least 8).
type Quote struct {
	Proto uint8
	Dst   netip.Addr
	IPID  uint16
	Next  []byte // from the end of the quoted header (IHL) to the end of the message
}

// ParseQuotedIPv4 reads the IPv4 header at the start of q (what an ICMP error quotes, after
// its 8-byte ICMP header), with its IHL checked against what is there, and at least after
// bytes following it. ok is false for anything else. It never panics.
func ParseQuotedIPv4(q []byte, after int) (Quote, bool) {
	if len(q) < 20 || q[0]>>4 != 4 {
		return Quote{}, false
	}
	ihl := int(q[0]&0x0f) * 4
	if ihl < 20 || len(q) < ihl+after {
		return Quote{}, false
	}
	dst, _ := netip.AddrFromSlice(q[16:20])
	return Quote{Proto: q[9], Dst: dst, IPID: binary.BigEndian.Uint16(q[4:]), Next: q[ihl:]}, true
}
