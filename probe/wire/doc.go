// Package wire holds what the probers put on and read off the wire without touching a
// socket: the IPv4 header codec and our fragmentation, the IPv6 fixed and fragment header
// codec, the Internet checksum and the UDP/TCP pseudo-header sums, the ICMP and ICMPv6 type
// and code numbers with their names, the quoted header of ICMP errors, the probe
// marker, and the one table of probe classes (class.go: each class's code, protocol, sizes,
// how to write it and how to recognise it), with the names it speaks in: ID, Match, Kind,
// BuildParams. It builds and tests on any OS; probe and pmtu both import it. probe re-exports
// these names (probe.ID is wire.ID) and keeps Build, which puts the IPv4 header in front of
// what a class writes and fragments it into its reusable Packets.
package wire
