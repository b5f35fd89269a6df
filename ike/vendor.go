package ike

import (
	"bytes"
	"encoding/hex"
)

// Vendor IDs this package sends or names. Most are the MD5 hash of a text; where so, the
// text is in the comment and TestVendorIDHashes checks it. Sources: RFC 3947 §3.1 (NAT-T),
// RFC 3706 §7 (DPD), draft-beaulieu-ike-xauth-02 (XAUTH), and the Vendor ID table shipped
// with ike-scan 1.9 (Debian package ike-scan, /usr/share/ike-scan/ike-vendor-ids, by Roy
// Hills), which lists the Microsoft, Cisco and strongSwan values as seen on the wire.
var (
	VendorNATTRFC3947      = mustHex("4a131c81070358455c5728f20e95452f")         // MD5("RFC 3947")
	VendorNATTDraft02N     = mustHex("90cb80913ebb696e086381b5ec427b1f")         // MD5("draft-ietf-ipsec-nat-t-ike-02\n")
	VendorNATTDraft02      = mustHex("cd60464335df21f87cfdb2fc68b6a448")         // MD5("draft-ietf-ipsec-nat-t-ike-02")
	VendorNATTDraft03      = mustHex("7d9419a65310ca6f2c179d9215529d56")         // MD5("draft-ietf-ipsec-nat-t-ike-03")
	VendorFragmentation    = mustHex("4048b7d56ebce88525e7de7f00d6c2d3")         // MD5("FRAGMENTATION"), IKEv1 fragmentation
	VendorFragmentationSS  = mustHex("4048b7d56ebce88525e7de7f00d6c2d380000000") // as strongSwan and Cisco send it
	VendorDPD              = mustHex("afcad71368a1f1c96b8696fc77570100")         // RFC 3706
	VendorXAUTH            = mustHex("09002689dfd6b712")                         // truncated MD5 of the XAUTH draft name
	VendorCiscoUnity       = mustHex("12f5f28c457168a9702d9fe274cc0100")         // MD5("CISCO-UNITY") with version 1.0 in the last bytes
	VendorStrongSwan       = mustHex("882fe56d6fd20dbc2251613b2ebe5beb")         // MD5("strongSwan")
	VendorMSNT5            = mustHex("1e2b516905991c7d7c96fcbfb587e461")         // MD5("MS NT5 ISAKMPOAKLEY") + 4-byte version
	VendorMSNegDiscovery   = mustHex("fb1de3cdf341b7ea16b7e5be0855f120")         // MD5("MS-Negotiation Discovery Capable")
	VendorMSInitialContact = mustHex("26244d38eddb61b3172a36e3d0cfb819")         // MD5("Vid-Initial-Contact")
)

func mustHex(s string) []byte {
	b, err := hex.DecodeString(s)
	if err != nil {
		panic(err)
	}
	return b
}

// knownVendor is a vendor ID prefix and its name. Longer prefixes are listed first where
// they refine a shorter one.
type knownVendor struct {
	prefix []byte
	name   string
}

var knownVendors = []knownVendor{
	{VendorNATTRFC3947, "RFC 3947 NAT-T"},
	{VendorNATTDraft02N, "draft-ietf-ipsec-nat-t-ike-02\\n"},
	{VendorNATTDraft02, "draft-ietf-ipsec-nat-t-ike-02"},
	{VendorNATTDraft03, "draft-ietf-ipsec-nat-t-ike-03"},
	{VendorFragmentation, "IKE Fragmentation"},
	{VendorDPD, "Dead Peer Detection v1.0"},
	{VendorDPD[:14], "Dead Peer Detection"},
	{VendorXAUTH, "XAUTH"},
	{VendorCiscoUnity, "Cisco Unity"},
	{mustHex("1f07f70eaa6514d3b0fa96542a"), "Cisco VPN Concentrator"},
	{VendorStrongSwan, "strongSwan"},
	{append(append([]byte{}, VendorMSNT5...), 0, 0, 0, 2), "Windows 2000"},
	{append(append([]byte{}, VendorMSNT5...), 0, 0, 0, 3), "Windows XP SP1"},
	{append(append([]byte{}, VendorMSNT5...), 0, 0, 0, 4), "Windows 2003 or XP SP2"},
	{append(append([]byte{}, VendorMSNT5...), 0, 0, 0, 5), "Windows Vista"},
	{append(append([]byte{}, VendorMSNT5...), 0, 0, 0, 6), "Windows 2008"},
	{append(append([]byte{}, VendorMSNT5...), 0, 0, 0, 7), "Windows 7"},
	{append(append([]byte{}, VendorMSNT5...), 0, 0, 0, 8), "Windows 2008 R2"},
	{append(append([]byte{}, VendorMSNT5...), 0, 0, 0, 9), "Windows 8"},
	{append(append([]byte{}, VendorMSNT5...), 0, 0, 0, 0x10), "Windows 2012"},
	{VendorMSNT5, "MS NT5 ISAKMPOAKLEY (Windows)"},
	{VendorMSNegDiscovery, "MS-Negotiation Discovery Capable"},
	{VendorMSInitialContact, "Microsoft Initial-Contact"},
	{mustHex("e3a5966a76379fe707228231e5ce8652"), "IKE CGA version 1"},
	{mustHex("214ca4faffa7f32d6748e5303395ae83"), "MS-MamieExists"},
	{mustHex("7003cbc1097dbe9c2600ba6983bc8b35"), "KAME/racoon"},
	{mustHex("5b362bc820f6"), "SonicWall"},
	{mustHex("4f45"), "Openswan/Libreswan"},
	{PaddingVendorID[:8], "ipsecpath padding"},
}

// VendorName names a vendor ID by the longest known prefix, else returns its hex.
func VendorName(id []byte) string {
	best := -1
	for i, k := range knownVendors {
		if len(k.prefix) <= len(id) && bytes.HasPrefix(id, k.prefix) && (best < 0 || len(k.prefix) > len(knownVendors[best].prefix)) {
			best = i
		}
	}
	if best < 0 || (len(knownVendors[best].prefix) == 2 && len(id) != 12) { // "OE" prefix: 12-byte Openswan VIDs only
		return hex.EncodeToString(id)
	}
	return knownVendors[best].name
}

// IsFragmentationVID reports whether id announces IKEv1 fragmentation support.
func IsFragmentationVID(id []byte) bool { return bytes.HasPrefix(id, VendorFragmentation) }

// IsNATTVID reports whether id announces NAT traversal (RFC 3947 or its drafts).
func IsNATTVID(id []byte) bool {
	for _, v := range [][]byte{VendorNATTRFC3947, VendorNATTDraft02N, VendorNATTDraft02, VendorNATTDraft03} {
		if bytes.Equal(id, v) {
			return true
		}
	}
	return false
}

// PaddingVendorID starts every vendor ID this package adds to make a message bigger:
// "ipsecpath-pad" and a zero, then filler. Responders ignore vendor IDs they do not know
// (RFC 2408 §3.16, RFC 7296 §3.12).
var PaddingVendorID = []byte("ipsecpath-pad\x00")
