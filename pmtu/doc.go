// Package pmtu finds the path MTU toward a target with DF probes, tells a black hole (large
// packets vanish and no ICMP "fragmentation needed" comes back) from a narrow link, and
// localises it by TTL. It also does the IPsec overhead arithmetic (ESP/AH, tunnel/transport,
// NAT-T, IPv4/IPv6) that turns a path MTU into a tunnel MTU and a TCP MSS clamp.
//
// The search (Discover) is pure: it talks to the network only through a Prober, so it is
// tested with fakes and a fake clock. NewICMPProber is the real prober: ICMP echo requests
// with our own IPv4 header (DF set, chosen size and TTL) from a raw socket, or ICMPv6
// echoes with don't-fragment and a hop limit toward an IPv6 target. NewTCPProber sends
// TCP-sized probes (ACK data segments, DF) whose arrival the target's reset shows.
package pmtu
