// Package testlab builds a lab of network namespaces: two IPsec gateways with real strongSwan,
// two routers between them carrying a fault profile (nftables, link MTUs), and a LAN behind each.
package testlab
