package wire

// The generic UDP and L2TP probe classes:
//
//	udp:PORT, udp:PORT-frag  UDP PORT→PORT, the payload starts with the marker (code 12, 13)
//	l2tp, l2tp-frag          UDP 1701→1701, an L2TPv2 SCCRQ (RFC 2661 §6.1) whose Host
//	                         Name AVP starts with the marker (code 14, 15) and whose
//	                         Assigned Tunnel ID is the nonce's low 16 bits
//
// The -frag forms are FragProbeSize bytes and IP-fragmented by us, like every -frag form;
// the L2TP one is made large with vendor-specific AVPs (M bit clear: a receiver ignores them).

import "encoding/binary"

// Marker class codes of the UDP classes (the codes of class.go's table, continued).
const (
	codeUDP      = 12
	codeUDPFrag  = 13
	codeL2TP     = 14
	codeL2TPFrag = 15
)

// UDPClass is what the UDP classes share: port and class code.
type UDPClass struct {
	Port int
	Code uint8
	L2TP bool // an L2TP SCCRQ rather than the marker alone
}

// UDPClassOf returns the UDP class of id (udp:PORT[-frag], l2tp[-frag]).
func UDPClassOf(id ID) (UDPClass, bool) {
	frag := id.Fragmented()
	if p, ok := id.UDPPort(); ok {
		c := UDPClass{Port: p, Code: codeUDP}
		if frag {
			c.Code = codeUDPFrag
		}
		return c, true
	}
	switch id {
	case L2TP:
		return UDPClass{Port: PortL2TP, Code: codeL2TP, L2TP: true}, true
	case L2TPFrag:
		return UDPClass{Port: PortL2TP, Code: codeL2TPFrag, L2TP: true}, true
	}
	return UDPClass{}, false
}

// udpClassID is the id a captured UDP probe of code to port belongs to.
func udpClassID(code uint8, port int) ID {
	switch code {
	case codeUDP:
		return UDP(port)
	case codeUDPFrag:
		return UDP(port) + "-frag"
	case codeL2TP:
		return L2TP
	case codeL2TPFrag:
		return L2TPFrag
	}
	return ""
}

// L2TP control message layout of the probe (all big-endian).
const (
	l2tpFlagsControl = 0xc802 // T=1 L=1 S=1, version 2
	l2tpHeaderLen    = 12     // flags, length, tunnel id, session id, Ns, Nr
	l2tpAVPHeader    = 6      // M/H/length, vendor id, attribute type
	l2tpMaxAVP       = 1023   // the AVP length field is 10 bits
	l2tpHostName     = "ipsecpath"
	// l2tpMarkerOff is where the marker sits after the UDP header: the L2TP header, the
	// Message Type AVP (8) and the Protocol Version AVP (8), then the Host Name AVP's header.
	l2tpMarkerOff = l2tpHeaderLen + 8 + 8 + l2tpAVPHeader
	// l2tpFixedLen is the SCCRQ without filler: up to the host name, then Framing
	// Capabilities (10) and Assigned Tunnel ID (8).
	l2tpFixedLen = l2tpMarkerOff + MarkerLen + len(l2tpHostName) + 10 + 8
	l2tpVendor   = 0xffff // vendor id of the filler AVPs (no vendor has it)
)

// putL2TPAVP writes one AVP (vendor 0 unless vendor set) and returns its length.
func putL2TPAVP(b []byte, mandatory bool, vendor uint16, typ uint16, value []byte) int {
	n := l2tpAVPHeader + len(value)
	hdr := uint16(n)
	if mandatory {
		hdr |= 0x8000
	}
	binary.BigEndian.PutUint16(b[0:2], hdr)
	binary.BigEndian.PutUint16(b[2:4], vendor)
	binary.BigEndian.PutUint16(b[4:6], typ)
	copy(b[6:], value)
	return n
}

// putL2TPSCCRQ writes an SCCRQ filling b exactly (len(b) ≥ l2tpFixedLen) with the marker
// in its Host Name AVP; what is left over becomes vendor AVPs of filler.
func putL2TPSCCRQ(b []byte, code uint8, dgramLen int, nonce uint32) {
	binary.BigEndian.PutUint16(b[0:2], l2tpFlagsControl)
	binary.BigEndian.PutUint16(b[2:4], uint16(len(b)))
	clear(b[4:l2tpHeaderLen]) // tunnel 0, session 0, Ns 0, Nr 0: a new tunnel
	o := l2tpHeaderLen
	o += putL2TPAVP(b[o:], true, 0, 0, []byte{0, 1}) // Message Type: SCCRQ
	o += putL2TPAVP(b[o:], true, 0, 2, []byte{1, 0}) // Protocol Version 1.0
	binary.BigEndian.PutUint16(b[o:], uint16(l2tpAVPHeader+MarkerLen+len(l2tpHostName))|0x8000)
	binary.BigEndian.PutUint16(b[o+2:], 0)
	binary.BigEndian.PutUint16(b[o+4:], 7) // Host Name
	PutMarker(b[o+6:], code, dgramLen, nonce)
	copy(b[o+6+MarkerLen:], l2tpHostName)
	o += l2tpAVPHeader + MarkerLen + len(l2tpHostName)
	o += putL2TPAVP(b[o:], true, 0, 3, []byte{0, 0, 0, 3}) // Framing Capabilities: sync+async
	var tid [2]byte
	binary.BigEndian.PutUint16(tid[:], uint16(nonce))
	o += putL2TPAVP(b[o:], true, 0, 9, tid[:]) // Assigned Tunnel ID
	for o < len(b) {
		n := min(len(b)-o, l2tpMaxAVP)
		if rest := len(b) - o - n; rest > 0 && rest < l2tpAVPHeader {
			n -= l2tpAVPHeader // leave room for one more AVP header
		}
		binary.BigEndian.PutUint16(b[o:], uint16(n))
		binary.BigEndian.PutUint16(b[o+2:], l2tpVendor)
		binary.BigEndian.PutUint16(b[o+4:], 0)
		Fill(b[o+l2tpAVPHeader : o+n])
		o += n
	}
}

// recogniseL2TP recognises our L2TP probes: UDP to or from 1701, an L2TP control message
// with the marker (code 14 or 15) in its Host Name AVP.
func recogniseL2TP(head []byte) (Match, bool) {
	if len(head) < udpHeaderLen {
		return Match{}, false
	}
	sp, dp := binary.BigEndian.Uint16(head[0:2]), binary.BigEndian.Uint16(head[2:4])
	payload := head[udpHeaderLen:]
	if (sp != PortL2TP && dp != PortL2TP) || len(payload) < l2tpMarkerOff+MarkerLen ||
		binary.BigEndian.Uint16(payload[0:2]) != l2tpFlagsControl {
		return Match{}, false
	}
	code, n, nonce, ok := ParseMarker(payload[l2tpMarkerOff:])
	if !ok || (code != codeL2TP && code != codeL2TPFrag) {
		return Match{}, false
	}
	return Match{ID: udpClassID(code, PortL2TP), Nonce: nonce, Kind: KindProbe, DatagramLen: n}, true
}

// recogniseUDP recognises our generic UDP probes: the payload starts with the marker
// (code 12 or 13), the class's port is the destination port.
func recogniseUDP(head []byte) (Match, bool) {
	if len(head) < udpHeaderLen {
		return Match{}, false
	}
	code, n, nonce, ok := ParseMarker(head[udpHeaderLen:])
	if !ok || (code != codeUDP && code != codeUDPFrag) {
		return Match{}, false
	}
	dp := binary.BigEndian.Uint16(head[2:4])
	return Match{ID: udpClassID(code, int(dp)), Nonce: nonce, Kind: KindProbe, DatagramLen: n}, true
}
