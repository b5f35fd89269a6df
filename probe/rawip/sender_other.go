//go:build !linux

package rawip

import (
	"errors"
	"net/netip"
)

// ErrLinuxOnly is what opening a raw IP socket returns on every OS but Linux: the sender
// relies on Linux's IP_HDRINCL semantics (wire-form headers, IP_PMTUDISC_PROBE).
var ErrLinuxOnly = errors.New("raw IP sockets: Linux only")

// Sender is the raw IPv4 sender; on this OS it cannot be opened.
type Sender struct{ pacer *Pacer }

// Open fails with ErrLinuxOnly.
func Open(Config) (*Sender, error) { return nil, ErrLinuxOnly }

// Close does nothing: no Sender opens here.
func (*Sender) Close() error { return nil }

// Write fails with ErrLinuxOnly.
func (*Sender) Write(netip.Addr, []byte) error { return ErrLinuxOnly }
