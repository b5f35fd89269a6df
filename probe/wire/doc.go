// Package wire holds what the probers put on and read off the wire without touching a
// socket: the Internet checksum, the ICMP and ICMPv6 type and code numbers with their names,
// and the probe marker. It builds and tests on any OS; probe and pmtu both import it.
package wire
