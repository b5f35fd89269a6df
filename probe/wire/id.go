package wire

import (
	"strconv"
	"strings"
)

// ID names a probe class, as in the JSON result and --probes (a contract: DESIGN.md, where
// it is spelled probe.ID; probe re-exports every name here).
type ID string

// The probe classes. The -frag forms are at least FragProbeSize bytes on the wire and
// IP-fragmented by us, so they can be compared with the unfragmented form.
const (
	IKE       ID = "ike"        // IKE on UDP 500, a real first message
	IKEFrag   ID = "ike-frag"   // the same, made large like Kerberos-authenticated IKE, IP-fragmented
	NATT      ID = "natt"       // UDP 4500 with the non-ESP marker
	NATTFrag  ID = "natt-frag"  // the same, IP-fragmented
	ESP       ID = "esp"        // IP protocol 50
	ESPFrag   ID = "esp-frag"   // IP protocol 50, fragmented
	AH        ID = "ah"         // IP protocol 51
	AHFrag    ID = "ah-frag"    // IP protocol 51, fragmented
	ICMPLarge ID = "icmp-large" // ICMP echo with a 5000-byte payload, like `ping -l 5000`
	PMTU      ID = "pmtu"       // largest DF packet that arrives
	L2TP      ID = "l2tp"       // an L2TPv2 SCCRQ on UDP 1701, as an L2TP/IPsec client sends first
	L2TPFrag  ID = "l2tp-frag"  // the same, IP-fragmented
)

// FragProbeSize is the least size on the wire of a -frag probe, IP header included.
const FragProbeSize = 3000

// fixedIDs are the probe ids of a check other than tcp:PORT, in report order.
var fixedIDs = []ID{IKE, IKEFrag, NATT, NATTFrag, ESP, ESPFrag, AH, AHFrag, ICMPLarge}

// FixedIDs returns the probe ids of a check other than tcp:PORT and pmtu, in report order.
func FixedIDs() []ID { return append([]ID(nil), fixedIDs...) }

// TCP returns the probe id for a TCP port, e.g. "tcp:445".
func TCP(port int) ID { return ID("tcp:" + strconv.Itoa(port)) }

// UDP returns the probe id of a generic UDP probe toward a port, e.g. "udp:1701".
func UDP(port int) ID { return ID("udp:" + strconv.Itoa(port)) }

// TCPPort returns the port of a tcp:PORT id, and false for any other id.
func (id ID) TCPPort() (int, bool) { return id.port("tcp:") }

// port returns the port after prefix in id (1–65535, as strconv.Atoi reads it).
func (id ID) port(prefix string) (int, bool) {
	s, ok := strings.CutPrefix(string(id), prefix)
	if !ok {
		return 0, false
	}
	p, err := strconv.Atoi(s)
	if err != nil || p < 1 || p > 65535 {
		return 0, false
	}
	return p, true
}

// IsTCP reports whether id is a tcp:PORT id.
func (id ID) IsTCP() bool { _, ok := id.TCPPort(); return ok }

// TLSPort returns the port of a tls:PORT id (probe's TLS service probes), and false for
// any other id.
func (id ID) TLSPort() (int, bool) { return id.port("tls:") }

// UDPPort returns the port of a udp:PORT or udp:PORT-frag id, and false for any other id.
func (id ID) UDPPort() (int, bool) {
	s, ok := strings.CutPrefix(string(id.Unfragmented()), "udp:")
	if !ok {
		return 0, false
	}
	p, err := strconv.Atoi(s)
	if err != nil || p < 1 || p > 65535 || s[0] < '1' || s[0] > '9' { // no sign, no leading zero: one spelling per port
		return 0, false
	}
	return p, true
}

// Fragmented reports whether id is the IP-fragmented form of a class.
func (id ID) Fragmented() bool { return strings.HasSuffix(string(id), "-frag") }

// Unfragmented returns the unfragmented form of a -frag id ("esp-frag" → "esp"), else id.
func (id ID) Unfragmented() ID { return ID(strings.TrimSuffix(string(id), "-frag")) }

// IsUDPClass reports whether id is one of the UDP classes: udp:PORT[-frag], l2tp[-frag].
func (id ID) IsUDPClass() bool { _, ok := UDPClassOf(id); return ok }

// Valid reports whether id is a probe id of the contract.
func (id ID) Valid() bool {
	if _, ok := id.TCPPort(); ok {
		return true
	}
	if _, ok := UDPClassOf(id); ok {
		return true
	}
	if id == PMTU {
		return true
	}
	for _, k := range fixedIDs {
		if id == k {
			return true
		}
	}
	return false
}
