//go:build !linux

package rawip

import "net/netip"

// Sender is the raw IPv4 sender; on this OS it cannot be opened.
type Sender struct{ pacer *Pacer }

// Open fails with ErrLinuxOnly.
func Open(Config) (*Sender, error) { return nil, ErrLinuxOnly }

// Close does nothing: no Sender opens here.
func (*Sender) Close() error { return nil }

// Write fails with ErrLinuxOnly.
func (*Sender) Write(netip.Addr, []byte) error { return ErrLinuxOnly }
