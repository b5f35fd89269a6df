//go:build !linux

package testlab

import (
	"errors"
	"runtime"

	"github.com/vishvananda/netlink"
)

// errLinuxOnly: the lab is network namespaces, veth pairs and mounts under /run/netns.
var errLinuxOnly = errors.New("testlab: the lab runs on Linux only (network namespaces), not on " + runtime.GOOS)

// shareNetnsDir has nothing to share outside Linux.
func shareNetnsDir() {}

// deleteNamedNetns: there are no named network namespaces outside Linux.
func deleteNamedNetns(name string) error { return errLinuxOnly }

// pinNeighbours: there are no lab links outside Linux.
func pinNeighbours(map[string]*netlink.Handle, link) error { return errLinuxOnly }
