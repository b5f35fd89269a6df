//go:build !linux

package probe

import (
	"errors"
	"fmt"
)

// errCaptureLinuxOnly says why no Capture opens here: it is an AF_PACKET socket.
var errCaptureLinuxOnly = errors.New("probe: packet capture (AF_PACKET sockets): Linux only")

// OpenCapture fails on every OS but Linux (the capture is an AF_PACKET socket). The filter
// is still checked, so a bad config says so first.
func OpenCapture(cfg CaptureConfig) (*Capture, error) {
	if _, err := CaptureFilter(cfg); err != nil {
		return nil, err
	}
	return nil, errCaptureLinuxOnly
}

// Stats fails: no Capture opens on this OS.
func (c *Capture) Stats() (CaptureStats, error) {
	return CaptureStats{}, fmt.Errorf("probe: capture stats: %w", errCaptureLinuxOnly)
}
