//go:build !linux

package probe

import (
	"context"
	"errors"
	"net/netip"
)

// errPMTULinuxOnly: the path MTU probers use Linux raw sockets.
var errPMTULinuxOnly = errors.New("path MTU search: Linux only (raw IPv4 sockets)")

// OpenPMTU is Linux only.
func OpenPMTU(context.Context, PMTUConfig) ([]*PMTUSearch, error) { return nil, errPMTULinuxOnly }

func openCheckSearches(netip.Addr, *AgentClient, netip.Addr, PathMTUOptions) (fwd, rev *PMTUSearch, err error) {
	return nil, nil, errPMTULinuxOnly
}
