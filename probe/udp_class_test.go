package probe

import (
	"encoding/binary"
	"testing"

	"github.com/ipsecpath/ipsecpath/probe/wire"
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
	var out Packets
	for _, id := range []ID{L2TP, L2TPFrag} {
		p := params(id)
		if err := Build(id, p, &out); err != nil {
			t.Fatal(err)
		}
		d := out.Wire[0]
		if id.Fragmented() {
			d = reassemble(t, out.Wire)
		}
		udp := d[20:]
		if sp, dp := binary.BigEndian.Uint16(udp[0:2]), binary.BigEndian.Uint16(udp[2:4]); sp != PortL2TP || dp != PortL2TP {
			t.Fatalf("%s: ports %d→%d, want 1701→1701", id, sp, dp)
		}
		avps := walkL2TP(t, udp[8:])
		if v := avps[[2]uint16{0, 2}]; len(v) != 2 || v[0] != 1 || v[1] != 0 {
			t.Errorf("%s: protocol version % x", id, v)
		}
		if v := avps[[2]uint16{0, 9}]; len(v) != 2 || binary.BigEndian.Uint16(v) != uint16(tNonce&0xffff) {
			t.Errorf("%s: assigned tunnel id % x, want the nonce's low 16 bits", id, v)
		}
		host := avps[[2]uint16{0, 7}]
		if code, _, nonce, ok := wire.ParseMarker(host); !ok || nonce != tNonce || udpClassID(code, PortL2TP) != id {
			t.Errorf("%s: host name % x carries no marker for it", id, host)
		}
	}
	// every size the filler may have to cover tiles exactly
	for size := 20 + 8 + l2tpFixedLen + l2tpAVPHeader; size < 20+8+l2tpFixedLen+2*l2tpMaxAVP+20; size++ {
		p := params(L2TP)
		p.Size = size
		if err := Build(L2TP, p, &out); err != nil {
			t.Fatalf("size %d: %v", size, err)
		}
		walkL2TP(t, out.Wire[0][28:])
	}
	p := params(L2TP)
	p.Size = 20 + 8 + l2tpFixedLen + 3
	if err := Build(L2TP, p, &out); err == nil {
		t.Error("a size that leaves no room for an AVP must be refused")
	}
}

func TestUDPClassIDs(t *testing.T) {
	for _, c := range []struct {
		id    ID
		port  int
		valid bool
	}{
		{"udp:1701", 1701, true}, {"udp:1701-frag", 1701, true}, {"udp:0", 0, false}, {"udp:65536", 0, false},
		{"udp:01701", 0, false}, {"udp:", 0, false}, {"l2tp", 0, true}, {"l2tp-frag", 0, true}, {"udp:x-frag", 0, false},
	} {
		p, ok := c.id.UDPPort()
		if p != c.port || (c.port != 0) != ok {
			t.Errorf("%s: port %d %v, want %d", c.id, p, ok, c.port)
		}
		if c.id.Valid() != c.valid {
			t.Errorf("%s: valid %v, want %v", c.id, c.id.Valid(), c.valid)
		}
	}
	ids, err := ParseIDs("l2tp,l2tp-frag,udp:4789,udp:4789-frag", nil)
	if err != nil || len(ids) != 4 {
		t.Errorf("ParseIDs: %v %v", ids, err)
	}
	if reference(L2TPFrag) != L2TP || reference(UDP(4789)+"-frag") != UDP(4789) {
		t.Error("a -frag UDP class must be compared with its unfragmented form")
	}
}
