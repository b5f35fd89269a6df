package probe

import (
	"context"
	"net/netip"
	"strings"
	"testing"
	"time"
)

// TestParseListsRefuseEmpty is issue 9 item 14: an empty --probes ran every probe. An empty
// list is refused; "all" still means every probe.
func TestParseListsRefuseEmpty(t *testing.T) {
	for _, l := range []string{"", " ", ",", " , "} {
		if ids, err := ParseIDs(l, DefaultTCPPorts); err == nil {
			t.Errorf("ParseIDs(%q) = %v, want an error", l, ids)
		}
		if ports, err := ParseTCPPorts(l); err == nil {
			t.Errorf("ParseTCPPorts(%q) = %v, want an error", l, ports)
		}
	}
	ids, err := ParseIDs("all", DefaultTCPPorts)
	if err != nil || len(ids) != len(DefaultIDs(DefaultTCPPorts)) {
		t.Errorf("ParseIDs(all) = %v, %v; want every default probe", ids, err)
	}
	if ports, err := ParseTCPPorts("445, 1792"); err != nil || len(ports) != 2 {
		t.Errorf("ParseTCPPorts = %v, %v", ports, err)
	}
}

// TestLocalBroadcast: the broadcast address of a subnet attached here (loopback's
// 127.0.0.0/8 is on every host) is refused like 255.255.255.255; its hosts are not.
func TestLocalBroadcast(t *testing.T) {
	bc := netip.MustParseAddr("127.255.255.255")
	if ifn, ok := LocalBroadcast(bc); !ok || ifn != "lo" {
		t.Errorf("LocalBroadcast(%s) = %q, %v; want lo", bc, ifn, ok)
	}
	if err := CheckTargetHere(bc); err == nil || !strings.Contains(err.Error(), "broadcast address of lo's subnet") {
		t.Errorf("CheckTargetHere(%s) = %v", bc, err)
	}
	for _, a := range []string{"127.0.0.1", "127.255.255.254", "2001:db8::ff"} {
		if ifn, ok := LocalBroadcast(netip.MustParseAddr(a)); ok {
			t.Errorf("LocalBroadcast(%s) = %q: not a broadcast address here", a, ifn)
		}
	}
	if err := CheckTargetHere(netip.MustParseAddr("127.0.0.1")); err != nil {
		t.Errorf("CheckTargetHere(127.0.0.1): %v", err)
	}
}

// TestCheckTimeoutBounds is issue 9 item 14: `check --timeout 1ns` ran and judged every
// probe dropped. Check refuses a timeout outside MinCheckTimeout..MaxCheckTimeout before it
// opens anything.
func TestCheckTimeoutBounds(t *testing.T) {
	for _, d := range []time.Duration{time.Nanosecond, MinCheckTimeout - 1, MaxCheckTimeout + 1, -time.Second} {
		_, err := Check(context.Background(), CheckConfig{Target: netip.MustParseAddr("127.0.0.1"), Probes: []ID{ESP}, Timeout: d})
		if err == nil || !strings.Contains(err.Error(), "timeout") {
			t.Errorf("Check with timeout %s: %v, want a timeout error", d, err)
		}
	}
}
