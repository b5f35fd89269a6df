package probe

import (
	"testing"
	"time"

	"github.com/ipsecpath/ipsecpath/testlab"
)

// The capture's filter (SO_ATTACH_FILTER) keeps what ini sends to rsp, and its kernel
// counters (PACKET_STATISTICS) count exactly those packets, then reset.
func TestCaptureLabStats(t *testing.T) {
	lab := testlab.ForTest(t, testlab.Spec{NoGateways: true})
	ini, rsp := lab.Addr("ini"), lab.Addr("rsp")
	var c *Capture
	if err := lab.Do("rsp", func() (err error) { c, err = OpenCapture(CaptureConfig{Peer: ini}); return err }); err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	var snd *Sender
	if err := lab.Do("ini", func() (err error) { snd, err = OpenSender(SenderConfig{Rate: MaxRate, Burst: 8}); return err }); err != nil {
		t.Fatal(err)
	}
	defer snd.Close()
	var p Packets
	if err := Build(ESPFrag, BuildParams{Src: ini, Dst: rsp, Nonce: tNonce}, &p); err != nil {
		t.Fatal(err)
	}
	if err := snd.Send(t.Context(), &p); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, CaptureSnap)
	if err := c.SetReadDeadline(time.Now().Add(5 * time.Second)); err != nil {
		t.Fatal(err)
	}
	for i := range p.Wire {
		n, err := c.Read(buf)
		if err != nil {
			t.Fatalf("fragment %d of %d: %v", i+1, len(p.Wire), err)
		}
		if n > CaptureSnap || n < ipv4MinHeader {
			t.Fatalf("fragment %d: %d bytes, snap %d", i+1, n, CaptureSnap)
		}
	}
	st, err := c.Stats()
	if err != nil {
		t.Fatal(err)
	}
	if st.Packets != uint32(len(p.Wire)) || st.Drops != 0 {
		t.Errorf("stats %+v after %d fragments, want %d packets, no drops", st, len(p.Wire), len(p.Wire))
	}
	if st, err := c.Stats(); err != nil || st != (CaptureStats{}) {
		t.Errorf("stats again: %+v, %v; want zero (they reset)", st, err)
	}
}
