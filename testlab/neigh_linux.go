//go:build linux

package testlab

import (
	"fmt"
	"net"

	"github.com/vishvananda/netlink"
)

// pinNeighbours gives each end of a link a permanent ARP entry for the other end, so no
// packet in the lab waits for ARP. A router that must resolve its next hop queues packets
// meanwhile, only unres_qlen_bytes of them (212992 bytes: 256 small probes, the rest are
// dropped), and under load resolution sometimes took longer than a test waited for its
// first probes (an unanswered ARP request is retried a second later, retrans_time_ms).
func pinNeighbours(nl map[string]*netlink.Handle, l link) error {
	type end struct {
		node, ifname, addr string
		idx                int
		mac                net.HardwareAddr
	}
	ends := []*end{{node: l.nodeA, ifname: l.ifA, addr: l.addrA}, {node: l.nodeB, ifname: l.ifB, addr: l.addrB}}
	for _, e := range ends {
		lk, err := nl[e.node].LinkByName(e.ifname)
		if err != nil {
			return fmt.Errorf("testlab: %s: find %s: %w", e.node, e.ifname, err)
		}
		e.idx, e.mac = lk.Attrs().Index, lk.Attrs().HardwareAddr
	}
	for i, e := range ends {
		peer := ends[1-i]
		ip, _, err := net.ParseCIDR(peer.addr)
		if err != nil {
			return fmt.Errorf("testlab: parse %s: %w", peer.addr, err)
		}
		n := &netlink.Neigh{LinkIndex: e.idx, Family: netlink.FAMILY_V4, State: netlink.NUD_PERMANENT,
			IP: ip, HardwareAddr: peer.mac}
		if err := nl[e.node].NeighSet(n); err != nil {
			return fmt.Errorf("testlab: %s: neighbour %s (%s of %s) on %s: %w", e.node, ip, peer.mac, peer.node, e.ifname, err)
		}
	}
	return nil
}
