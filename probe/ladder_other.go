//go:build !linux

package probe

import (
	"errors"
	"net/netip"
)

// routeTableSupported says that the ladder cannot run here: it reads routes through Linux's
// rtnetlink (route get, blackhole routes, the default gateway).
func routeTableSupported() error {
	return errors.New("ladder: route lookups through rtnetlink: Linux only")
}

// isDefaultGateway is never reached here (routeTableSupported stops the ladder first).
func isDefaultGateway(netip.Addr) bool { return false }

// discardRoute finds nothing here: no rtnetlink to list blackhole routes with.
func discardRoute(netip.Addr) (discarding, bool) { return discarding{}, false }
