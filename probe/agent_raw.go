package probe

import (
	"errors"
	"fmt"
	"net"
	"os"
)

// drainRaw reads and discards what a raw socket receives until it is closed: the agent
// sees packets through its capture; this socket only keeps the kernel quiet.
func drainRaw(c net.PacketConn) {
	var buf [2048]byte
	for {
		if _, _, err := c.ReadFrom(buf[:]); err != nil {
			if errors.Is(err, net.ErrClosed) {
				return
			}
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				continue
			}
			return
		}
	}
}

// rawError wraps a raw-socket failure, naming the missing privilege on EPERM.
func rawError(op string, err error) error {
	if errors.Is(err, os.ErrPermission) {
		return fmt.Errorf("responder: %s: needs root or CAP_NET_RAW: %w", op, err)
	}
	return fmt.Errorf("responder: %s: %w", op, err)
}
