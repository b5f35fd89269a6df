package probe

// The generic UDP and L2TP probe classes (probe/wire's udp_class.go draws them): udp:PORT,
// udp:PORT-frag, l2tp and l2tp-frag, and how the verdicts name them.

import (
	"strconv"

	"github.com/ipsecpath/ipsecpath/probe/wire"
)

// PortL2TP is L2TP's UDP port.
const PortL2TP = wire.PortL2TP

// The L2TP probe classes.
const (
	L2TP     = wire.L2TP     // an L2TPv2 SCCRQ on UDP 1701, as an L2TP/IPsec client sends first
	L2TPFrag = wire.L2TPFrag // the same, IP-fragmented
)

// UDP returns the probe id of a generic UDP probe toward a port, e.g. "udp:1701".
func UDP(port int) ID { return wire.UDP(port) }

// udpClass is what the verdicts read of a UDP class (wire.UDPClass): its port, and whether
// it is L2TP.
type udpClass struct {
	port int
	l2tp bool
}

// udpClassOf returns the UDP class of id (udp:PORT[-frag], l2tp[-frag]).
func udpClassOf(id ID) (udpClass, bool) {
	c, ok := wire.UDPClassOf(id)
	return udpClass{port: c.Port, l2tp: c.L2TP}, ok
}

// describeUDPClass names a UDP class probe in a network engineer's words.
func describeUDPClass(id ID) (string, bool) {
	c, ok := udpClassOf(id)
	if !ok {
		return "", false
	}
	large := ""
	if id.Fragmented() {
		large = "large "
	}
	if c.l2tp {
		return large + "L2TP (an SCCRQ on UDP 1701)", true
	}
	return large + "UDP " + strconv.Itoa(c.port), true
}
