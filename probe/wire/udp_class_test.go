package wire

import (
	"encoding/binary"
	"testing"
)

// walkL2TP checks an L2TP control message as RFC 2661 §3.1/§4.1 define it and returns its
// AVPs (vendor, type → value): the length field equals the message, every AVP is at least
// 6 bytes and they tile the rest exactly.
func walkL2TP(t *testing.T, b []byte) map[[2]uint16][]byte {
	t.Helper()
	if len(b) < l2tpHeaderLen || binary.BigEndian.Uint16(b[0:2]) != l2tpFlagsControl {
		t.Fatalf("not an L2TPv2 control message: % x", b[:min(len(b), 12)])
	}
	if n := int(binary.BigEndian.Uint16(b[2:4])); n != len(b) {
		t.Fatalf("length field %d, message %d bytes", n, len(b))
	}
	avps := map[[2]uint16][]byte{}
	first := true
	for o := l2tpHeaderLen; o < len(b); {
		if len(b)-o < l2tpAVPHeader {
			t.Fatalf("%d bytes left at %d: no room for an AVP", len(b)-o, o)
		}
		n := int(binary.BigEndian.Uint16(b[o:]) & 0x3ff)
		if n < l2tpAVPHeader || o+n > len(b) {
			t.Fatalf("AVP at %d has length %d (message %d)", o, n, len(b))
		}
		k := [2]uint16{binary.BigEndian.Uint16(b[o+2:]), binary.BigEndian.Uint16(b[o+4:])}
		if first && (k != [2]uint16{0, 0} || binary.BigEndian.Uint16(b[o+6:]) != 1) {
			t.Fatalf("first AVP %v, want Message Type SCCRQ (1)", k)
		}
		first = false
		if k[0] == 0 {
			avps[k] = b[o+l2tpAVPHeader : o+n]
		}
		o += n
	}
	return avps
}

func TestL2TPSCCRQ(t *testing.T) {
	for _, id := range []ID{L2TP, L2TPFrag} {
		d, err := writeProbe(id, 0, tProbe.Nonce)
		if err != nil {
			t.Fatal(err)
		}
		udp := d[20:]
		if sp, dp := binary.BigEndian.Uint16(udp[0:2]), binary.BigEndian.Uint16(udp[2:4]); sp != PortL2TP || dp != PortL2TP {
			t.Fatalf("%s: ports %d→%d, want 1701→1701", id, sp, dp)
		}
		avps := walkL2TP(t, udp[8:])
		if v := avps[[2]uint16{0, 2}]; len(v) != 2 || v[0] != 1 || v[1] != 0 {
			t.Errorf("%s: protocol version % x", id, v)
		}
		if v := avps[[2]uint16{0, 9}]; len(v) != 2 || binary.BigEndian.Uint16(v) != uint16(tProbe.Nonce&0xffff) {
			t.Errorf("%s: assigned tunnel id % x, want the nonce's low 16 bits", id, v)
		}
		host := avps[[2]uint16{0, 7}]
		if code, _, nonce, ok := ParseMarker(host); !ok || nonce != tProbe.Nonce || udpClassID(code, PortL2TP) != id {
			t.Errorf("%s: host name % x carries no marker for it", id, host)
		}
	}
	// every size the filler may have to cover tiles exactly
	for size := 20 + 8 + l2tpFixedLen + l2tpAVPHeader; size < 20+8+l2tpFixedLen+2*l2tpMaxAVP+20; size++ {
		d, err := writeProbe(L2TP, size, tProbe.Nonce)
		if err != nil {
			t.Fatalf("size %d: %v", size, err)
		}
		walkL2TP(t, d[28:])
	}
	if _, err := writeProbe(L2TP, 20+8+l2tpFixedLen+3, tProbe.Nonce); err == nil {
		t.Error("a size that leaves no room for an AVP must be refused")
	}
}
