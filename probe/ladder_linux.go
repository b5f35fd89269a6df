//go:build linux

package probe

import (
	"net/netip"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

// isDefaultGateway reports whether a default route goes via gw.
func isDefaultGateway(gw netip.Addr) bool {
	rs, err := netlink.RouteList(nil, netlink.FAMILY_V4)
	if err != nil {
		return false
	}
	for _, r := range rs {
		if (r.Dst == nil || r.Dst.IP.IsUnspecified()) && r.Gw != nil {
			if a, ok := netip.AddrFromSlice(r.Gw); ok && a.Unmap() == gw {
				return true
			}
		}
	}
	return false
}

// discardRoute finds the most specific blackhole, unreachable or prohibit route covering dst
// in any routing table: the kernel's route lookup answers such a route with an error only.
func discardRoute(dst netip.Addr) (discarding, bool) {
	rs, err := netlink.RouteListFiltered(netlink.FAMILY_V4, &netlink.Route{Table: unix.RT_TABLE_UNSPEC}, netlink.RT_FILTER_TABLE)
	if err != nil {
		return discarding{}, false
	}
	var best discarding
	found := false
	for _, r := range rs {
		kind := map[int]string{unix.RTN_BLACKHOLE: "blackhole", unix.RTN_UNREACHABLE: "unreachable", unix.RTN_PROHIBIT: "prohibit"}[r.Type]
		if kind == "" {
			continue
		}
		p := netip.PrefixFrom(netip.IPv4Unspecified(), 0)
		if r.Dst != nil {
			a, _ := netip.AddrFromSlice(r.Dst.IP.To4())
			ones, _ := r.Dst.Mask.Size()
			p = netip.PrefixFrom(a, ones)
		}
		if p.Contains(dst) && (!found || p.Bits() > best.dst.Bits()) {
			best, found = discarding{kind: kind, dst: p.Masked()}, true
		}
	}
	return best, found
}

// routeTableSupported is nil: the ladder reads Linux's routes through rtnetlink.
func routeTableSupported() error { return nil }
