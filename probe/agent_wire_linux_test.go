//go:build linux

package probe

import (
	"context"
	"fmt"
	"net/netip"
	"testing"
	"time"

	"github.com/ipsecpath/ipsecpath/testlab"
)

// inPrivateNetns runs fn on a locked thread inside a new, unnamed network namespace with
// only its loopback up (testlab.InScratchNetns). Sockets fn opens stay in the new namespace
// (and keep it alive) until closed: traffic on them never leaves it. An error fn returns
// fails the test.
func inPrivateNetns(t *testing.T, fn func() error) {
	t.Helper()
	var err error
	testlab.InScratchNetns(t, func() {
		if err = testlab.LoopbackUp(0); err == nil {
			err = fn()
		}
	})
	if err != nil {
		t.Fatal(err)
	}
}

// TestWireSenderFairAcrossSessions: the agent's raw sender does not make one session wait
// for another's probe. A large probe in small fragments toward one initiator waits for its
// pacer; a probe toward another initiator, asked for meanwhile, leaves at once (with one
// sender lock held across the pacing, it waited for the whole large probe).
func TestWireSenderFairAcrossSessions(t *testing.T) {
	var snd *Sender
	inPrivateNetns(t, func() error {
		var err error
		snd, err = OpenSender(SenderConfig{Rate: 100, Burst: 1})
		return err
	})
	defer snd.Close()
	w := &wireSender{s: snd}
	src := netip.MustParseAddr("127.0.0.1")
	nonces, err := NewNonces(2)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	big := ReverseProbe{ID: ESPFrag, Nonce: nonces[0], Size: 3000, FragSize: MinReverseFragSize} // 62 packets: 0.6 s at 100/s
	bigDone := make(chan error, 1)
	go func() {
		n, _, err := w.SendProbe(ctx, src, netip.MustParseAddr("127.0.0.3"), big)
		if err == nil && n < 50 {
			err = fmt.Errorf("large probe went out as %d packets", n)
		}
		bigDone <- err
	}()
	time.Sleep(100 * time.Millisecond) // the large probe is waiting for its pacer
	if _, _, err := w.SendProbe(ctx, src, netip.MustParseAddr("127.0.0.2"), ReverseProbe{ID: ESP, Nonce: nonces[1]}); err != nil {
		t.Fatalf("small probe: %v", err)
	}
	select {
	case err := <-bigDone:
		t.Fatalf("the small probe toward another initiator left only after the large one (%v)", err)
	default:
	}
	if err := <-bigDone; err != nil {
		t.Fatalf("large probe: %v", err)
	}
}
