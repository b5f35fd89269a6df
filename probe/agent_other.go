//go:build !linux

package probe

import (
	"fmt"

	"github.com/ipsecpath/ipsecpath/probe/rawip"
)

// openRaw fails on every OS but Linux: the agent's capture is an AF_PACKET socket and its
// reverse probes go through rawip's raw IPv4 sender. An agent given its own Capture and
// Sender (ResponderConfig) never calls it.
func (r *Responder) openRaw() error {
	return fmt.Errorf("responder: raw sockets and packet capture: %w", rawip.ErrLinuxOnly)
}
