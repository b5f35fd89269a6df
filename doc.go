// Package ipsecpath is the module root: the tool lives in cmd/ipsecpath and the packages
// probe, ike, pmtu, report and testlab; this package holds only repository-wide tests.
package ipsecpath
