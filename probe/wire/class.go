package wire

// The probe classes, one table: for each, its code on the wire, IP protocol, sizes, how to
// write it (what follows the IP header; probe.Build does the header and the fragments) and
// how to recognise a captured head of it or of its answer (ClassifyHead does the ICMP
// errors that quote it). The marker layout is drawn in marker.go.

import (
	"encoding/binary"
	"fmt"
	"io"
	"net/netip"

	"github.com/ipsecpath/ipsecpath/ike"
)

// Class codes in the marker and the IKE SPI: stable, they travel on the wire. TCP's is
// MarkerCodeTCP (10), shared with pmtu; the UDP classes' are in udp_class.go.
const (
	codeIKE       = 1
	codeIKEFrag   = 2
	codeNATT      = 3
	codeNATTFrag  = 4
	codeESP       = 5
	codeESPFrag   = 6
	codeAH        = 7
	codeAHFrag    = 8
	codeICMPLarge = 9
	codePMTU      = 11
)

// Class is one probe class: probe.Build sizes it (Size) and writes it (Write) after the IPv4
// header it puts in front; ClassifyHead recognises it.
type Class struct {
	code  uint8
	id    ID // "" for the classes of a port: tcp:PORT, udp:PORT, udp:PORT-frag
	proto uint8
	frag  bool // IP-fragmented by us
	// minSize is the smallest IP total length; defSize the one of Size 0 (0: Size is needed).
	minSize, defSize int
	// byMarker: a marker with this code names the class wherever it is found (ESP, AH or
	// echo payload), as the first classes did; the UDP classes are named by their own.
	byMarker bool
	// size, when set, replaces sized: the size depends on the content (IKE) or is fixed
	// (TCP). It returns the IP total length and the IKE message to copy, if any.
	size func(c *Class, want int, t *IKETemplates, rand io.Reader) (int, []byte, error)
	// write writes what follows the IP header into b (len: total length - 20).
	write func(b []byte, w classWrite)
	// recognise reads a head (what follows the IP header) of this class's probes or answers.
	// Siblings (x and x-frag) share it: it names either from the code it reads.
	recognise func(head []byte) (Match, bool)
}

// classWrite is what a class's write needs of the probe being built.
type classWrite struct {
	id               ID
	code             uint8
	size             int // IP total length
	nonce            uint32
	src, dst         netip.Addr
	srcPort, dstPort uint16 // 0: the class's own
	ikeMsg           []byte
}

// classes is the table, in code order. (It is filled in init: its recognisers look codes
// up in it.)
var classes []Class

func init() {
	ip, udp := IPv4HeaderLen, IPv4HeaderLen+udpHeaderLen
	echo, esp, ah := ip+icmpHeaderLen+MarkerLen, ip+ESPHeaderLen+MarkerLen, ip+ahProbeLen+MarkerLen
	l2tp, marked := udp+l2tpFixedLen, udp+MarkerLen
	classes = []Class{
		{code: codeIKE, id: IKE, proto: ProtoUDP, byMarker: true, size: ikeSize, write: writeIKE, recognise: recogniseIKE},
		{code: codeIKEFrag, id: IKEFrag, proto: ProtoUDP, frag: true, byMarker: true, size: ikeSize, write: writeIKE, recognise: recogniseIKE},
		{code: codeNATT, id: NATT, proto: ProtoUDP, byMarker: true, size: ikeSize, write: writeIKE, recognise: recogniseIKE},
		{code: codeNATTFrag, id: NATTFrag, proto: ProtoUDP, frag: true, byMarker: true, size: ikeSize, write: writeIKE, recognise: recogniseIKE},
		{code: codeESP, id: ESP, proto: ProtoESP, minSize: esp, defSize: DefaultSmallSize, byMarker: true, write: writeESP, recognise: recogniseESP},
		{code: codeESPFrag, id: ESPFrag, proto: ProtoESP, frag: true, minSize: esp, defSize: FragProbeSize, byMarker: true, write: writeESP, recognise: recogniseESP},
		{code: codeAH, id: AH, proto: ProtoAH, minSize: ah, defSize: DefaultSmallSize, byMarker: true, write: writeAH, recognise: recogniseAH},
		{code: codeAHFrag, id: AHFrag, proto: ProtoAH, frag: true, minSize: ah, defSize: FragProbeSize, byMarker: true, write: writeAH, recognise: recogniseAH},
		{code: codeICMPLarge, id: ICMPLarge, proto: ProtoICMP, frag: true, minSize: echo, defSize: ip + icmpHeaderLen + ICMPLargePayload, byMarker: true, write: writeEcho, recognise: recogniseEcho},
		{code: MarkerCodeTCP, proto: ProtoTCP, minSize: ip + tcpSynLen, size: tcpSize, write: writeTCPSyn, recognise: recogniseTCP},
		{code: codePMTU, id: PMTU, proto: ProtoICMP, minSize: echo, byMarker: true, write: writeEcho, recognise: recogniseEcho},
		{code: codeUDP, proto: ProtoUDP, minSize: marked, defSize: DefaultSmallSize, write: writeUDP, recognise: recogniseUDP},
		{code: codeUDPFrag, proto: ProtoUDP, frag: true, minSize: marked, defSize: FragProbeSize, write: writeUDP, recognise: recogniseUDP},
		{code: codeL2TP, id: L2TP, proto: ProtoUDP, minSize: l2tp, defSize: l2tp, size: l2tpSize, write: writeL2TP, recognise: recogniseL2TP},
		{code: codeL2TPFrag, id: L2TPFrag, proto: ProtoUDP, frag: true, minSize: l2tp, defSize: FragProbeSize, size: l2tpSize, write: writeL2TP, recognise: recogniseL2TP},
	}
}

// ClassOf returns the class of id.
func ClassOf(id ID) (*Class, bool) {
	code := uint8(0)
	if _, ok := id.TCPPort(); ok {
		code = MarkerCodeTCP
	} else if c, ok := UDPClassOf(id); ok {
		code = c.Code
	}
	for i := range classes {
		if c := &classes[i]; (code != 0 && c.code == code) || (code == 0 && c.id == id && id != "") {
			return c, true
		}
	}
	return nil, false
}

// classByCode returns the class of a code read off the wire.
func classByCode(code uint8) (*Class, bool) {
	for i := range classes {
		if classes[i].code == code {
			return &classes[i], true
		}
	}
	return nil, false
}

// Code is the class's code on the wire (marker, IKE SPI).
func (c *Class) Code() uint8 { return c.code }

// Proto is the class's IP protocol.
func (c *Class) Proto() uint8 { return c.proto }

// Frag reports whether probes of the class are IP-fragmented by us.
func (c *Class) Frag() bool { return c.frag }

// Size returns the IP total length of a probe of class c for BuildParams.Size want, and
// the IKE message it carries, if any (from t, built with rand: see IKETemplates.Message).
func (c *Class) Size(want int, t *IKETemplates, rand io.Reader) (int, []byte, error) {
	if c.size != nil {
		return c.size(c, want, t, rand)
	}
	size, err := c.sized(want)
	return size, nil, err
}

// Write writes probe id of this class, of size bytes (IP total length), into b: what
// follows the IP header (len(b) is size - 20). ikeMsg is what Size returned.
func (c *Class) Write(b []byte, id ID, size int, p *BuildParams, ikeMsg []byte) {
	c.write(b, classWrite{id: id, code: c.code, size: size, nonce: p.Nonce, src: p.Src, dst: p.Dst,
		srcPort: p.SrcPort, dstPort: p.DstPort, ikeMsg: ikeMsg})
}

// sized applies the class's default and bounds to want.
func (c *Class) sized(want int) (int, error) {
	if want == 0 {
		if c.defSize == 0 {
			return 0, fmt.Errorf("%s needs a size", c.id)
		}
		want = c.defSize
	}
	if want < c.minSize || want > 65535 {
		return 0, fmt.Errorf("size %d: want %d–65535 bytes", want, c.minSize)
	}
	return want, nil
}

// ikeSize sizes ike, ike-frag, natt and natt-frag by their IKE_SA_INIT: its natural size,
// the -frag forms' FragProbeSize, or want, and returns the message.
func ikeSize(c *Class, want int, t *IKETemplates, rand io.Reader) (int, []byte, error) {
	ikeOff := IPv4HeaderLen + udpHeaderLen
	if c.code == codeNATT || c.code == codeNATTFrag {
		ikeOff += nonESPMarkerSz
	}
	n := 0 // the natural size of the message
	switch {
	case want != 0:
		n = want - ikeOff
	case c.frag: // the same message for ike-frag and natt-frag: one template serves both
		n = FragProbeSize - IPv4HeaderLen - udpHeaderLen
	}
	msg, err := t.Message(n, rand)
	if err != nil {
		return 0, nil, err
	}
	size := ikeOff + len(msg)
	if size > 65535 {
		return 0, nil, fmt.Errorf("size %d: want %d–65535 bytes", size, size)
	}
	return size, msg, nil
}

// tcpSize: tcp:PORT is always a 44-byte SYN.
func tcpSize(c *Class, _ int, _ *IKETemplates, _ io.Reader) (int, []byte, error) {
	return c.minSize, nil, nil
}

// l2tpSize: an SCCRQ is l2tpFixedLen bytes or has room for at least one filler AVP.
func l2tpSize(c *Class, want int, _ *IKETemplates, _ io.Reader) (int, []byte, error) {
	if want > c.minSize && want < c.minSize+l2tpAVPHeader {
		return 0, nil, fmt.Errorf("size %d: an L2TP probe is %d bytes, or at least %d", want, c.minSize, c.minSize+l2tpAVPHeader)
	}
	size, err := c.sized(want)
	return size, nil, err
}

// ports returns the UDP or TCP ports of a probe: the class's, unless BuildParams says.
func (w *classWrite) ports(sp, dp uint16) (uint16, uint16) {
	if w.srcPort != 0 {
		sp = w.srcPort
	}
	if w.dstPort != 0 {
		dp = w.dstPort
	}
	return sp, dp
}

// writeIKE: UDP 500→500 (4500→4500 and the non-ESP marker for natt), then the IKE_SA_INIT
// with the class and nonce in its initiator SPI.
func writeIKE(b []byte, w classWrite) {
	sp, dp := uint16(PortIKE), uint16(PortIKE)
	msg := b[udpHeaderLen:]
	if w.code == codeNATT || w.code == codeNATTFrag {
		sp, dp = PortNATT, PortNATT
		clear(msg[:nonESPMarkerSz])
		msg = msg[nonESPMarkerSz:]
	}
	sp, dp = w.ports(sp, dp)
	copy(msg, w.ikeMsg)
	spi := ProbeIKESPI(w.code, w.nonce)
	copy(msg[0:8], spi[:])
	PutUDP(b, sp, dp, w.src, w.dst)
}

// writeESP: SPI = sequence = nonce, then the marker and filler.
func writeESP(b []byte, w classWrite) {
	binary.BigEndian.PutUint32(b[0:4], w.nonce)
	binary.BigEndian.PutUint32(b[4:8], w.nonce)
	PutMarker(b[8:], w.code, w.size, w.nonce)
	Fill(b[8+MarkerLen:])
}

// writeAH: next header 59, a 12-byte ICV, SPI = sequence = nonce, then the marker.
func writeAH(b []byte, w classWrite) {
	b[0], b[1], b[2], b[3] = ProtoNone, ahProbeLen/4-2, 0, 0
	binary.BigEndian.PutUint32(b[4:8], w.nonce)
	binary.BigEndian.PutUint32(b[8:12], w.nonce)
	for i := 0; i < ahProbeICVLen; i += 4 { // an ICV that looks like one
		binary.BigEndian.PutUint32(b[12+i:], w.nonce*2654435761+uint32(i))
	}
	PutMarker(b[ahProbeLen:], w.code, w.size, w.nonce)
	Fill(b[ahProbeLen+MarkerLen:])
}

// writeEcho: an echo request with id/seq = nonce, then the marker.
func writeEcho(b []byte, w classWrite) {
	b[0], b[1], b[2], b[3] = ICMPEcho, 0, 0, 0
	binary.BigEndian.PutUint16(b[4:6], uint16(w.nonce>>16))
	binary.BigEndian.PutUint16(b[6:8], uint16(w.nonce))
	PutMarker(b[8:], w.code, w.size, w.nonce)
	Fill(b[8+MarkerLen:])
	binary.BigEndian.PutUint16(b[2:4], Checksum(b))
}

// writeTCPSyn: a SYN to the id's port, ISN = nonce, source port from the nonce.
func writeTCPSyn(b []byte, w classWrite) {
	port, _ := w.id.TCPPort()
	sp := w.srcPort
	if sp == 0 {
		sp = uint16(32768 + w.nonce%28232)
	}
	PutTCPSyn(b, sp, uint16(port), w.nonce, w.src, w.dst)
}

// writeUDP: UDP PORT→PORT, the marker, filler.
func writeUDP(b []byte, w classWrite) {
	port, _ := w.id.UDPPort()
	sp, dp := w.ports(uint16(port), uint16(port))
	PutMarker(b[udpHeaderLen:], w.code, w.size, w.nonce)
	Fill(b[udpHeaderLen+MarkerLen:])
	PutUDP(b, sp, dp, w.src, w.dst)
}

// writeL2TP: UDP 1701→1701, an SCCRQ with the marker in its Host Name.
func writeL2TP(b []byte, w classWrite) {
	sp, dp := w.ports(PortL2TP, PortL2TP)
	putL2TPSCCRQ(b[udpHeaderLen:], w.code, w.size, w.nonce)
	PutUDP(b, sp, dp, w.src, w.dst)
}

// markerMatch names what a marker read in an ESP, AH or echo payload says.
func markerMatch(code uint8, n int, nonce uint32, k Kind) (Match, bool) {
	c, ok := classByCode(code)
	if !ok || !c.byMarker {
		return Match{}, false
	}
	return Match{ID: c.id, Nonce: nonce, Kind: k, DatagramLen: n}, true
}

// recogniseESP: SPI = nonce, then the marker.
func recogniseESP(head []byte) (Match, bool) {
	var e ESPHeader
	if e.DecodeFromBytes(head) != nil {
		return Match{}, false
	}
	return recogniseSPI(e.SPI, e.Payload)
}

// recogniseAH: AH SPI = nonce, then (after the ICV) the marker.
func recogniseAH(head []byte) (Match, bool) {
	var a AHHeader
	if a.DecodeFromBytes(head) != nil {
		return Match{}, false
	}
	return recogniseSPI(a.SPI, a.Payload)
}

// recogniseSPI: the marker at the start of payload, its nonce the SPI.
func recogniseSPI(spi uint32, payload []byte) (Match, bool) {
	code, n, nonce, ok := ParseMarker(payload)
	if !ok || nonce != spi {
		return Match{}, false
	}
	return markerMatch(code, n, nonce, KindProbe)
}

// recogniseEcho: an echo request (probe) or reply whose id/seq is the marker's nonce.
func recogniseEcho(head []byte) (Match, bool) {
	if len(head) < 8 || (head[0] != ICMPEcho && head[0] != ICMPEchoReply) {
		return Match{}, false
	}
	code, n, nonce, ok := ParseMarker(head[8:])
	if !ok || uint32(binary.BigEndian.Uint16(head[4:6]))<<16|uint32(binary.BigEndian.Uint16(head[6:8])) != nonce {
		return Match{}, false
	}
	return markerMatch(code, n, nonce, kindOf(head[0] == ICMPEchoReply))
}

// recogniseIKE: UDP to or from 500 (or 4500 after the non-ESP marker) whose initiator SPI
// is ours, or the ike package's SPIWithNonce form; a responder SPI or the response flag
// make it an answer.
func recogniseIKE(head []byte) (Match, bool) {
	if len(head) < 8 {
		return Match{}, false
	}
	sp, dp := binary.BigEndian.Uint16(head[0:2]), binary.BigEndian.Uint16(head[2:4])
	msg := head[8:]
	if sp == PortNATT || dp == PortNATT {
		if len(msg) < 4 || binary.BigEndian.Uint32(msg[0:4]) != 0 {
			return Match{}, false
		}
		msg = msg[4:]
	} else if sp != PortIKE && dp != PortIKE {
		return Match{}, false
	}
	code, nonce, ok := parseIKESPI(msg)
	if !ok && len(msg) >= 8 {
		// The ike package's SPIWithNonce form ("ipsp" nonce) used by one-ended IKE probes.
		if nonce, ok = ike.NonceFromSPI([8]byte(msg[:8])); ok {
			code = codeIKE
			if len(head)-len(msg) > udpHeaderLen {
				code = codeNATT
			}
		}
	}
	if !ok {
		return Match{}, false
	}
	n := 0 // the datagram's length, from the IKE length (IHL 5 assumed, as we send)
	if len(msg) >= ikeHeaderLen {
		n = int(binary.BigEndian.Uint32(msg[24:28])) + IPv4HeaderLen + len(head) - len(msg)
	}
	answer := len(msg) >= 28 && (binary.BigEndian.Uint64(msg[8:16]) != 0 || msg[19]&0x20 != 0)
	return markerMatch(code, n, nonce, kindOf(answer))
}

// kindOf is KindReply for an answer from the far end, else KindProbe.
func kindOf(answer bool) Kind {
	if answer {
		return KindReply
	}
	return KindProbe
}

// recogniseTCP: a SYN (any: confirm the nonce), a SYN-ACK or RST acknowledging nonce+1, or
// a TCP-sized path MTU probe (pmtu.TCPProbe): an ACK data segment whose payload starts with
// the marker, nonce = its sequence number.
func recogniseTCP(head []byte) (Match, bool) {
	if len(head) < 20 {
		return Match{}, false
	}
	sp, dp := binary.BigEndian.Uint16(head[0:2]), binary.BigEndian.Uint16(head[2:4])
	seq, ack := binary.BigEndian.Uint32(head[4:8]), binary.BigEndian.Uint32(head[8:12])
	flags := head[13]
	switch {
	case flags&(TCPSyn|TCPAck|TCPRst) == TCPSyn:
		return Match{ID: TCP(int(dp)), Nonce: seq, Kind: KindProbe, TCPFlags: flags}, true
	case flags&TCPAck != 0 && flags&(TCPSyn|TCPRst) != 0:
		return Match{ID: TCP(int(sp)), Nonce: ack - 1, Kind: KindReply, TCPFlags: flags}, true
	case flags&(TCPSyn|TCPRst|TCPFin|TCPAck) == TCPAck:
		off := int(head[12]>>4) * 4
		if off < 20 || len(head) < off+MarkerLen {
			return Match{}, false
		}
		code, n, nonce, ok := ParseMarker(head[off:])
		if !ok || code != MarkerCodeTCP || nonce != seq {
			return Match{}, false
		}
		return Match{ID: TCP(int(dp)), Nonce: nonce, Kind: KindProbe, DatagramLen: n, TCPFlags: flags}, true
	}
	return Match{}, false
}
