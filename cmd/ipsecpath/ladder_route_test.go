package main

import (
	"net"
	"strings"
	"testing"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"

	"github.com/ipsecpath/ipsecpath/report"
)

// TestCheckRouteBeforeLadder: in a scratch namespace (a fresh one: lo is down, so not even
// 127.0.0.1 is reachable), a target with no route at all, or one a blackhole route
// discards, is an environment error: one line, exit 2, before the ladder or anything else
// runs. A target that is routed (on a veth whose peer stays down) gets the ladder, whose loopback rung
// stops the check (exit 1) and says what was seen: lo is down, read from the interface.
func TestCheckRouteBeforeLadder(t *testing.T) {
	inNewNetns(t, func() {
		lo, err := netlink.LinkByName("lo")
		if err != nil {
			t.Errorf("lo: %v", err)
			return
		}
		if lo.Attrs().Flags&net.FlagUp != 0 {
			t.Errorf("lo is up in a fresh namespace: the premise of this test is wrong")
			return
		}
		d := &netlink.Veth{LinkAttrs: netlink.LinkAttrs{Name: "d0"}, PeerName: "d1"}
		if err := netlink.LinkAdd(d); err != nil {
			t.Errorf("ip link add d0 type veth peer d1: %v", err)
			return
		}
		a, _ := netlink.ParseAddr("192.0.2.1/24")
		if err := netlink.AddrAdd(d, a); err != nil {
			t.Errorf("ip addr add 192.0.2.1/24 dev d0: %v", err)
			return
		}
		if err := netlink.LinkSetUp(d); err != nil {
			t.Errorf("ip link set d0 up: %v", err)
			return
		}
		_, bh, _ := net.ParseCIDR("198.51.100.0/24")
		if err := netlink.RouteAdd(&netlink.Route{Dst: bh, Type: unix.RTN_BLACKHOLE}); err != nil {
			t.Errorf("ip route add blackhole 198.51.100.0/24: %v", err)
			return
		}

		code, out, errs := runCLI(t, "check", "203.0.113.1", "--timeout", "1s")
		oneLine(t, code, out, errs, "no route to 203.0.113.1 from this host (network is unreachable)")
		code, out, errs = runCLI(t, "check", "198.51.100.1", "--timeout", "1s")
		oneLine(t, code, out, errs, "no route to 198.51.100.1: this host's routing table discards it (a blackhole route for 198.51.100.0/24)")

		// Routed: the ladder runs, and stops at loopback.
		code, out, errs = runCLI(t, "check", "192.0.2.2", "--probes", "ike", "--timeout", "1s")
		if code != exitFail || errs != "" ||
			!strings.Contains(out, "This host's loopback interface lo is down, so it cannot even reach its own 127.0.0.1: bring it up (ip link set lo up) first") ||
			!strings.Contains(out, "loopback  127.0.0.1       no-route") || strings.Contains(out, "route     192.0.2.2") {
			t.Errorf("check 192.0.2.2 with lo down: exit %d, stderr %q\n%s", code, errs, out)
		}
		code, out, _ = runCLI(t, "check", "192.0.2.2", "--probes", "ike", "--timeout", "1s", "--json")
		rep, err := report.ReadJSON(strings.NewReader(out))
		if code != exitFail || err != nil || rep.Ladder == nil || len(rep.Ladder.Rungs) != 1 || len(rep.Results) != 0 ||
			!strings.HasSuffix(rep.Ladder.Rungs[0].Detail, ": the loopback interface lo is down.") {
			t.Errorf("check --json with lo down: exit %d, err %v\n%s", code, err, out)
		}
	})
}
