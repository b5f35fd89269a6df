package probe

import "testing"

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
