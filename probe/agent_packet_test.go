package probe

import (
	"net/netip"
	"testing"
)

// The agent keeps the bytes of the probe packets it reports (for the initiator's pcap),
// each up to AgentSnap, and at most MaxSessionPacketBytes of them per session: later
// packets are still reported, without their bytes.
func TestSessionDrainPacketBudget(t *testing.T) {
	peer := netip.MustParseAddrPort("198.51.100.10:40000")
	agent := netip.MustParseAddr("203.0.113.10")
	probe := buildSeen(t, ESPFrag, peer.Addr(), agent, 0x01020304)
	big := make([]byte, AgentSnap)
	var batch []Seen
	for range MaxSessionPacketBytes/AgentSnap + 10 {
		p := probe[0]
		p.Packet = big
		batch = append(batch, p)
	}
	over := probe[0]
	over.Packet = make([]byte, AgentSnap+1) // a source that ignored the snap length
	batch = append([]Seen{over}, batch...)
	src := &fakeSource{f: &fakeCapture{}, pending: batch}
	s := &session{r: &Responder{keptPeer: map[netip.Addr]int{}}, peer: peer, local: netip.AddrPortFrom(agent, ControlPort), src: src}
	s.drain()
	if len(s.seen) != len(batch) {
		t.Fatalf("kept %d of %d probe packets", len(s.seen), len(batch))
	}
	total, with := 0, 0
	for _, p := range s.seen {
		total += len(p.Packet)
		if p.Packet != nil {
			with++
		}
	}
	if s.seen[0].Packet != nil {
		t.Error("a packet longer than AgentSnap was kept")
	}
	if total > MaxSessionPacketBytes || with != MaxSessionPacketBytes/AgentSnap {
		t.Errorf("%d bytes in %d packets kept; want at most %d bytes, %d packets", total, with, MaxSessionPacketBytes, MaxSessionPacketBytes/AgentSnap)
	}
}
