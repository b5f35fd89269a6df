package testlab

import (
	"fmt"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"runtime"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
)

// Node names, exactly as DESIGN.md's lab table.
const (
	NodeLanA = "lan-a" // host behind ini, 192.0.2.10
	NodeIni  = "ini"   // initiator gateway, 198.51.100.10
	NodeR1   = "r1"    // router next to ini, 198.51.100.1 / 192.0.2.65
	NodeR2   = "r2"    // router next to rsp, 192.0.2.66 / 203.0.113.1
	NodeRsp  = "rsp"   // responder gateway, 203.0.113.10
	NodeLanB = "lan-b" // host behind rsp, 192.0.2.130
)

// Nodes lists every node from the lan-a side to the lan-b side.
var Nodes = []string{NodeLanA, NodeIni, NodeR1, NodeR2, NodeRsp, NodeLanB}

// Subnets of the lab (RFC 5737 documentation ranges only).
var (
	LanA   = netip.MustParsePrefix("192.0.2.0/26")    // lan-a — ini
	West   = netip.MustParsePrefix("198.51.100.0/24") // ini — r1
	Middle = netip.MustParsePrefix("192.0.2.64/26")   // r1 — r2 (the faulty core)
	East   = netip.MustParsePrefix("203.0.113.0/24")  // r2 — rsp
	LanB   = netip.MustParsePrefix("192.0.2.128/26")  // rsp — lan-b
)

// primary is each node's primary address (what Addr returns).
var primary = map[string]netip.Addr{
	NodeLanA: netip.MustParseAddr("192.0.2.10"),
	NodeIni:  netip.MustParseAddr("198.51.100.10"),
	NodeR1:   netip.MustParseAddr("198.51.100.1"),
	NodeR2:   netip.MustParseAddr("203.0.113.1"),
	NodeRsp:  netip.MustParseAddr("203.0.113.10"),
	NodeLanB: netip.MustParseAddr("192.0.2.130"),
}

// link is one veth pair: interface A in node A, interface B in node B, both ends one MTU.
type link struct {
	nodeA, ifA, addrA string
	nodeB, ifB, addrB string
}

// links are the five veth pairs. Interface names are fixed inside each namespace, so labs
// never clash on host interface names (the veths are created directly in their namespaces).
var links = []link{
	{NodeLanA, "eth0", "192.0.2.10/26", NodeIni, "lan0", "192.0.2.1/26"},
	{NodeIni, "wan0", "198.51.100.10/24", NodeR1, "west0", "198.51.100.1/24"},
	{NodeR1, "east0", "192.0.2.65/26", NodeR2, "west0", "192.0.2.66/26"},
	{NodeR2, "east0", "203.0.113.1/24", NodeRsp, "wan0", "203.0.113.10/24"},
	{NodeRsp, "lan0", "192.0.2.129/26", NodeLanB, "eth0", "192.0.2.130/26"},
}

// route is a static route; gw "" with blackhole true is a blackhole route.
type route struct {
	node, dst, gw string
	blackhole     bool
}

// routes: gateways and LAN hosts use a default route toward the next lab node (the lab has
// no link to the host, so nothing leaves it). r1 and r2 know each other's far subnet but not
// the LANs: LAN traffic can only cross inside the tunnel. The blackholes stop ini and rsp
// from forwarding LAN traffic in clear while no CHILD_SA exists (kernel-libipsec installs no
// XFRM policy; its table 220 routes win while the SA is up).
var routes = []route{
	{node: NodeLanA, dst: "0.0.0.0/0", gw: "192.0.2.1"},
	{node: NodeIni, dst: "0.0.0.0/0", gw: "198.51.100.1"},
	{node: NodeIni, dst: "192.0.2.128/26", blackhole: true},
	{node: NodeR1, dst: "203.0.113.0/24", gw: "192.0.2.66"},
	{node: NodeR2, dst: "198.51.100.0/24", gw: "192.0.2.65"},
	{node: NodeRsp, dst: "0.0.0.0/0", gw: "203.0.113.1"},
	{node: NodeRsp, dst: "192.0.2.0/26", blackhole: true},
	{node: NodeLanB, dst: "0.0.0.0/0", gw: "192.0.2.129"},
}

// forwarders are the nodes with ip_forward on.
var forwarders = []string{NodeIni, NodeR1, NodeR2, NodeRsp}

// withNetns runs fn on a locked OS thread switched into ns and switches back. If switching
// back fails the thread stays locked, so the Go runtime throws it away with the goroutine.
func withNetns(ns netns.NsHandle, fn func() error) error {
	errc := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		orig, err := netns.Get()
		if err != nil {
			errc <- fmt.Errorf("testlab: get current netns: %w", err)
			return // thread stays locked and dies with this goroutine
		}
		defer orig.Close()
		if err := netns.Set(ns); err != nil {
			runtime.UnlockOSThread()
			errc <- fmt.Errorf("testlab: enter netns: %w", err)
			return
		}
		ferr := fn()
		if err := netns.Set(orig); err != nil {
			errc <- fmt.Errorf("testlab: restore netns: %w", err)
			return // do not unlock: this thread is in the wrong namespace
		}
		runtime.UnlockOSThread()
		errc <- ferr
	}()
	return <-errc
}

// newNamedNetns creates /run/netns/name (so `ip netns` sees it) without moving the caller.
func newNamedNetns(name string) (netns.NsHandle, error) {
	shareNetnsDir()
	var h netns.NsHandle
	errc := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		orig, err := netns.Get()
		if err != nil {
			errc <- fmt.Errorf("testlab: get current netns: %w", err)
			return
		}
		defer orig.Close()
		h, err = netns.NewNamed(name)
		if rerr := netns.Set(orig); rerr != nil {
			if err == nil {
				h.Close()
			}
			errc <- fmt.Errorf("testlab: restore netns after creating %s: %w", name, rerr)
			return // thread stays locked, discarded
		}
		runtime.UnlockOSThread()
		if err != nil {
			errc <- fmt.Errorf("testlab: create netns %s: %w", name, err)
			return
		}
		errc <- nil
	}()
	if err := <-errc; err != nil {
		return netns.None(), err
	}
	return h, nil
}

// writeSysctls writes /proc/sys keys ("net/ipv4/ip_forward") inside ns.
func writeSysctls(ns netns.NsHandle, kv [][2]string) error {
	return withNetns(ns, func() error {
		for _, p := range kv {
			f := filepath.Join("/proc/sys", p[0])
			if err := os.WriteFile(f, []byte(p[1]+"\n"), 0o644); err != nil {
				return fmt.Errorf("testlab: sysctl %s=%s: %w", p[0], p[1], err)
			}
		}
		return nil
	})
}

// buildTopology creates the veths, addresses, routes and sysctls. handles maps node → netns.
// mtu maps "nodeA/ifA" of a link to a non-default MTU applied to both of its ends.
func buildTopology(handles map[string]netns.NsHandle, mtu map[string]int) error {
	nl := map[string]*netlink.Handle{}
	defer func() {
		for _, h := range nl {
			h.Close()
		}
	}()
	for _, n := range Nodes {
		h, err := netlink.NewHandleAt(handles[n])
		if err != nil {
			return fmt.Errorf("testlab: netlink handle in %s: %w", n, err)
		}
		nl[n] = h
		lo, err := h.LinkByName("lo")
		if err != nil {
			return fmt.Errorf("testlab: %s: find lo: %w", n, err)
		}
		if err := h.LinkSetUp(lo); err != nil {
			return fmt.Errorf("testlab: %s: set lo up: %w", n, err)
		}
		// IPv6 off before any veth exists ("default" applies to new interfaces). ICMP errors
		// (time exceeded, frag-needed, unreachable) unthrottled: the kernel's per-peer
		// limit of about one per second would make hop and path MTU probes flaky.
		kv := [][2]string{{"net/ipv6/conf/all/disable_ipv6", "1"}, {"net/ipv6/conf/default/disable_ipv6", "1"},
			{"net/ipv4/icmp_ratelimit", "0"}}
		for _, f := range forwarders {
			if f == n {
				kv = append(kv, [2]string{"net/ipv4/ip_forward", "1"})
			}
		}
		if err := writeSysctls(handles[n], kv); err != nil {
			return fmt.Errorf("%w (node %s)", err, n)
		}
	}
	for _, l := range links {
		m := 1500
		if v, ok := mtu[l.nodeA+"/"+l.ifA]; ok {
			m = v
		}
		veth := &netlink.Veth{
			LinkAttrs:     netlink.LinkAttrs{Name: l.ifA, MTU: m},
			PeerName:      l.ifB,
			PeerNamespace: netlink.NsFd(int(handles[l.nodeB])),
			PeerMTU:       uint32(m),
		}
		if err := nl[l.nodeA].LinkAdd(veth); err != nil {
			return fmt.Errorf("testlab: veth %s/%s — %s/%s: %w", l.nodeA, l.ifA, l.nodeB, l.ifB, err)
		}
		for _, end := range [][3]string{{l.nodeA, l.ifA, l.addrA}, {l.nodeB, l.ifB, l.addrB}} {
			h := nl[end[0]]
			lk, err := h.LinkByName(end[1])
			if err != nil {
				return fmt.Errorf("testlab: %s: find %s: %w", end[0], end[1], err)
			}
			if lk.Attrs().MTU != m {
				if err := h.LinkSetMTU(lk, m); err != nil {
					return fmt.Errorf("testlab: %s: mtu %d on %s: %w", end[0], m, end[1], err)
				}
			}
			a, err := netlink.ParseAddr(end[2])
			if err != nil {
				return fmt.Errorf("testlab: parse %s: %w", end[2], err)
			}
			if err := h.AddrAdd(lk, a); err != nil {
				return fmt.Errorf("testlab: %s: address %s on %s: %w", end[0], end[2], end[1], err)
			}
			if err := h.LinkSetUp(lk); err != nil {
				return fmt.Errorf("testlab: %s: set %s up: %w", end[0], end[1], err)
			}
		}
		if err := pinNeighbours(nl, l); err != nil {
			return err
		}
	}
	for _, r := range routes {
		_, dst, err := net.ParseCIDR(r.dst)
		if err != nil {
			return fmt.Errorf("testlab: parse route %s: %w", r.dst, err)
		}
		rt := &netlink.Route{Dst: dst}
		if r.blackhole {
			rt.Type = 6 // RTN_BLACKHOLE
		} else {
			rt.Gw = net.ParseIP(r.gw)
		}
		if err := nl[r.node].RouteAdd(rt); err != nil {
			return fmt.Errorf("testlab: %s: route %s via %s: %w", r.node, r.dst, r.gw, err)
		}
	}
	return nil
}
