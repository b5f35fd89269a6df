//go:build !linux

package probe

import (
	"errors"
	"net"
	"net/netip"

	"github.com/ipsecpath/ipsecpath/report"
)

// errIKELinuxOnly says why no IKE probe runs here: its socket reads ICMP errors from the
// error queue (IP_RECVERR) and never sets DF (IP_PMTUDISC_DONT), both Linux socket options.
var errIKELinuxOnly = errors.New("probe: ike: UDP sockets with IP_RECVERR: Linux only")

// dialIKE fails on every OS but Linux (see errIKELinuxOnly).
func dialIKE(netip.Addr, int, int) (*net.UDPConn, error) { return nil, errIKELinuxOnly }

// readICMPError is never reached here: dialIKE opened no socket.
func readICMPError(*net.UDPConn) *report.ICMP { return nil }

// pathMTU is unknown (0) here: dialIKE opens no socket to ask.
func pathMTU(netip.Addr, int) int { return 0 }
