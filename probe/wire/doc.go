// Package wire holds what the probers put on and read off the wire without touching a
// socket: the IPv4 header codec and our fragmentation, the IPv6 fixed and fragment header
// codec, the Internet checksum and the UDP/TCP pseudo-header sums, the ICMP and ICMPv6 type
// and code numbers with their names, the quoted header of ICMP errors, and the probe
// marker. It builds and tests on any OS; probe and pmtu both import it. (The table of probe
// classes that uses these codecs is probe's class.go.)
package wire
