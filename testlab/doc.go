// Package testlab builds a lab of network namespaces: two IPsec gateways with real strongSwan,
// two routers between them carrying a fault profile (nftables, link MTUs), and a LAN behind each.
//
//	lan-a 192.0.2.10 ─ ini 198.51.100.10 ─ r1 ─(192.0.2.64/26)─ r2 ─ rsp 203.0.113.10 ─ lan-b 192.0.2.130
//
// Each node is a named network namespace ipl-<lab>-<node> (visible to `ip netns`); commands
// run in it through `ip netns exec`, which also gives each one its own mount namespace.
// Up builds a lab from a Spec, ForTest does it for a test with cleanup, Close and Down tear
// it down. Everything a lab starts is recorded under StateRoot/<lab> (pid and /proc
// starttime), so Down works from that directory alone after the builder was SIGKILLed.
//
// ini and rsp run charon with kernel-libipsec (this kernel has no in-kernel ESP: ESP is
// always in UDP 4500), each with its own /run, strongswan.conf and vici socket, memory
// capped by prlimit and MALLOC_ARENA_MAX=1. Connections: ConnIKEv2 (certificates, CHILD_SA
// lan-a ↔ lan-b, initiated by Up) and ConnIKEv1 (Main Mode, PSK, host-to-host LAN addresses,
// initiated only on demand), with IKEProposals, IKEv1Proposals and ESPProposals. The CA and
// RSA-4096 gateway certificates are generated once and cached in CertCache.
package testlab
