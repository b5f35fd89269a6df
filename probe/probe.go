// Package probe is the raw-socket engine of ipsecpath: it crafts, fragments, sends and captures
// probes, runs the far-end agent and its control channel, and turns what arrived into verdicts.
package probe

import (
	"fmt"
	"net"
	"net/netip"
	"strconv"
	"strings"
	"time"

	"github.com/ipsecpath/ipsecpath/probe/wire"
)

// ID names a probe class, as in the JSON result and --probes (a contract: DESIGN.md). It
// is probe/wire's, with its methods (TCPPort, UDPPort, Fragmented, Unfragmented, Valid).
type ID = wire.ID

// The probe classes (probe/wire's). The -frag forms are at least FragProbeSize bytes on the
// wire and IP-fragmented by us, so they can be compared with the unfragmented form.
const (
	IKE       = wire.IKE       // IKE on UDP 500, a real first message
	IKEFrag   = wire.IKEFrag   // the same, made large like Kerberos-authenticated IKE, IP-fragmented
	NATT      = wire.NATT      // UDP 4500 with the non-ESP marker
	NATTFrag  = wire.NATTFrag  // the same, IP-fragmented
	ESP       = wire.ESP       // IP protocol 50
	ESPFrag   = wire.ESPFrag   // IP protocol 50, fragmented
	AH        = wire.AH        // IP protocol 51
	AHFrag    = wire.AHFrag    // IP protocol 51, fragmented
	ICMPLarge = wire.ICMPLarge // ICMP echo with a 5000-byte payload, like `ping -l 5000`
	PMTU      = wire.PMTU      // largest DF packet that arrives
)

// FragProbeSize is the least size on the wire of a -frag probe, IP header included.
const FragProbeSize = wire.FragProbeSize

// DefaultTCPPorts are the TCP services checked unless --tcp says otherwise: SMB and the
// Luna HSM's NTLS.
var DefaultTCPPorts = []int{445, 1792}

// TCP returns the probe id for a TCP port, e.g. "tcp:445".
func TCP(port int) ID { return wire.TCP(port) }

// fixedIDs are the probe ids other than tcp:PORT, in report order.
var fixedIDs = wire.FixedIDs()

// DefaultIDs returns every probe id in report order, with tcp:PORT for each of tcpPorts,
// and pmtu last.
func DefaultIDs(tcpPorts []int) []ID {
	ids := append([]ID(nil), fixedIDs...)
	for _, p := range tcpPorts {
		ids = append(ids, TCP(p))
	}
	return append(ids, PMTU)
}

// ParseIDs parses a comma-separated --probes list ("ike,esp-frag,tcp:445"). "all" means
// DefaultIDs(tcpPorts); an empty list is an error (not "everything": a list emptied by a
// script's mistake must not run every probe). Unknown ids are an error that names them and
// the valid ones; duplicates are dropped.
func ParseIDs(list string, tcpPorts []int) ([]ID, error) {
	list = strings.TrimSpace(list)
	if list == "all" {
		return DefaultIDs(tcpPorts), nil
	}
	if list == "" {
		return nil, fmt.Errorf("empty list: name the probes (%s, tcp:PORT, pmtu) or 'all'", joinIDs(fixedIDs))
	}
	var ids []ID
	seen := map[ID]bool{}
	for _, f := range strings.Split(list, ",") {
		id := ID(strings.TrimSpace(f))
		if id == "" {
			continue
		}
		if id == "tcp" { // every --tcp port
			for _, p := range tcpPorts {
				if t := TCP(p); !seen[t] {
					seen[t] = true
					ids = append(ids, t)
				}
			}
			continue
		}
		if !id.Valid() {
			return nil, fmt.Errorf("unknown probe %q (valid: %s, tcp:PORT, udp:PORT, udp:PORT-frag, l2tp, l2tp-frag, pmtu, all)", id, joinIDs(fixedIDs))
		}
		if !seen[id] {
			seen[id] = true
			ids = append(ids, id)
		}
	}
	if len(ids) == 0 {
		return nil, fmt.Errorf("no probes in %q", list)
	}
	return ids, nil
}

// ParseTCPPorts parses a --tcp list ("445,1792"); a list without a port is an error.
func ParseTCPPorts(list string) ([]int, error) {
	var ports []int
	for _, f := range strings.Split(list, ",") {
		f = strings.TrimSpace(f)
		if f == "" {
			continue
		}
		p, err := strconv.Atoi(f)
		if err != nil || p < 1 || p > 65535 {
			return nil, fmt.Errorf("bad TCP port %q (want 1-65535)", f)
		}
		ports = append(ports, p)
	}
	if len(ports) == 0 {
		return nil, fmt.Errorf("no TCP port in %q (to run no TCP probe, leave tcp out of --probes)", list)
	}
	return ports, nil
}

func joinIDs(ids []ID) string {
	s := make([]string, len(ids))
	for i, id := range ids {
		s[i] = string(id)
	}
	return strings.Join(s, ", ")
}

// CheckTarget refuses addresses no probe may go to: unspecified, multicast, broadcast, and
// IPv6 (the probes are IPv4 for now).
func CheckTarget(a netip.Addr) error {
	switch {
	case !a.IsValid():
		return fmt.Errorf("no target address")
	case !a.Is4() && !a.Is4In6():
		return fmt.Errorf("target %s: only IPv4 targets are supported", a)
	case a.IsUnspecified():
		return fmt.Errorf("target %s: unspecified address", a)
	case a.IsMulticast():
		return fmt.Errorf("target %s: multicast address refused", a)
	case a == netip.AddrFrom4([4]byte{255, 255, 255, 255}):
		return fmt.Errorf("target %s: broadcast address refused", a)
	}
	return nil
}

// CheckTargetHere is CheckTarget plus LocalBroadcast: the directed broadcast address of a
// subnet attached to this host (x.y.z.255 on a local /24) is refused like 255.255.255.255.
// It reads the interfaces of the caller's network namespace.
func CheckTargetHere(a netip.Addr) error {
	if err := CheckTarget(a); err != nil {
		return err
	}
	if ifname, ok := LocalBroadcast(a); ok {
		return fmt.Errorf("target %s: the broadcast address of %s's subnet refused (every host there would get the probes)", a, ifname)
	}
	return nil
}

// LocalBroadcast reports whether a is the broadcast address of the IPv4 subnet of an
// interface of this host (its address with every host bit set; /31 and /32 have none), and
// which interface. Interfaces that cannot be read are passed over.
func LocalBroadcast(a netip.Addr) (ifname string, ok bool) {
	a = a.Unmap()
	if !a.Is4() {
		return "", false
	}
	ifs, err := net.Interfaces()
	if err != nil {
		return "", false
	}
	for _, ifc := range ifs {
		addrs, err := ifc.Addrs()
		if err != nil {
			continue
		}
		for _, ad := range addrs {
			n, isNet := ad.(*net.IPNet)
			if !isNet {
				continue
			}
			ip4 := n.IP.To4()
			ones, bits := n.Mask.Size()
			if ip4 == nil || bits != 32 || ones > 30 {
				continue
			}
			var b [4]byte
			for i := range b {
				b[i] = ip4[i] | ^n.Mask[len(n.Mask)-4+i]
			}
			if netip.AddrFrom4(b) == a {
				return ifc.Name, true
			}
		}
	}
	return "", false
}

// Seen is one IPv4 packet or fragment as captured by AF_PACKET, before reassembly: what the
// agent (or the initiator, for reverse probes and answers) reports having received.
type Seen struct {
	At       time.Time  `json:"at"`
	Src      netip.Addr `json:"src"`
	Dst      netip.Addr `json:"dst"`
	Proto    uint8      `json:"proto"`     // IP protocol
	IPID     uint16     `json:"ip_id"`     // IP identification
	Offset   int        `json:"offset"`    // fragment offset in bytes
	More     bool       `json:"mf"`        // more-fragments flag
	DF       bool       `json:"df"`        // don't-fragment flag
	TTL      uint8      `json:"ttl"`       // as it arrived
	TotalLen int        `json:"total_len"` // IP total length
	// Head is up to HeadLen bytes after the IP header of a first fragment (Offset 0): the
	// transport header and the start of its payload, where every probe carries its nonce.
	Head []byte `json:"head,omitempty"`
	// Packet is the packet (any fragment) as captured, from its IP header on, up to the
	// capture's snap length (ObserverConfig.Snap), for a pcap; empty when not kept.
	Packet []byte `json:"packet,omitempty"`
}

// HeadLen is how many bytes after the IP header Seen keeps from a first fragment.
const HeadLen = 64
