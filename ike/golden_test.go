package ike

import "encoding/hex"

// golden is a captured IKE message, named by its source, with the tshark line that
// dissected it.
type golden struct {
	name string
	udp  string // the UDP payload in hex (with the non-ESP marker on 4500)
	port int
}

func (g golden) msg() []byte {
	b, err := hex.DecodeString(g.udp)
	if err != nil {
		panic(g.name + ": " + err.Error())
	}
	if g.port == 4500 {
		if m, err := StripNonESPMarker(b); err == nil {
			return m
		}
	}
	return b
}

var goldens = []golden{}
