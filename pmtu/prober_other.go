//go:build !linux

package pmtu

import (
	"context"
	"fmt"
	"net/netip"

	"github.com/ipsecpath/ipsecpath/probe/rawip"
)

// errLinuxOnly is what the probers' constructors return on every OS but Linux: they send
// through rawip's raw IPv4 sender and set Linux's path-MTU probe mode.
var errLinuxOnly = fmt.Errorf("pmtu: %w", rawip.ErrLinuxOnly)

// ICMPProber is the ICMP echo prober; on this OS it cannot be made.
type ICMPProber struct{}

// NewICMPProber fails with "raw IP sockets: Linux only".
func NewICMPProber(netip.Addr) (*ICMPProber, error) { return nil, errLinuxOnly }

// InterfaceMTU is unknown: no ICMPProber exists here.
func (*ICMPProber) InterfaceMTU() (int, string) { return 0, "" }

// Source is unknown: no ICMPProber exists here.
func (*ICMPProber) Source() netip.Addr { return netip.Addr{} }

// Close does nothing: no ICMPProber exists here.
func (*ICMPProber) Close() error { return nil }

// Probe fails with "raw IP sockets: Linux only".
func (*ICMPProber) Probe(context.Context, Request) (Reply, error) { return Reply{}, errLinuxOnly }

// TCPProber is the TCP-sized prober; on this OS it cannot be made.
type TCPProber struct{}

// NewTCPProber fails with "raw IP sockets: Linux only".
func NewTCPProber(netip.Addr, int) (*TCPProber, error) { return nil, errLinuxOnly }

// InterfaceMTU is unknown: no TCPProber exists here.
func (*TCPProber) InterfaceMTU() (int, string) { return 0, "" }

// Source is unknown: no TCPProber exists here.
func (*TCPProber) Source() netip.Addr { return netip.Addr{} }

// Port is 0: no TCPProber exists here.
func (*TCPProber) Port() int { return 0 }

// Close does nothing: no TCPProber exists here.
func (*TCPProber) Close() error { return nil }

// Probe fails with "raw IP sockets: Linux only".
func (*TCPProber) Probe(context.Context, Request) (Reply, error) { return Reply{}, errLinuxOnly }
