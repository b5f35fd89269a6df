package probe

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"sync"
	"time"
)

// Observer bounds.
const (
	// DefaultObserverCapacity is how many packets an Observer keeps: a full check sends a
	// few dozen, so 8192 leaves room for a flood of unsolicited packets without growing.
	DefaultObserverCapacity = 8192
	// MaxObserverCapacity bounds ObserverConfig.Capacity (about 190 MB of ring).
	MaxObserverCapacity = 1 << 20
)

// ObserverConfig configures an Observer.
type ObserverConfig struct {
	// Peer is the far end: the Observer keeps packets from Peer and ICMP errors about packets
	// to Peer (see CaptureConfig). The agent observes its initiator; the initiator observes
	// the target (answers, reverse probes) and, through the ICMP errors, the routers between.
	Peer     netip.Addr
	Outgoing bool // also keep what this host sends to Peer
	// Capacity is the ring size in packets (default DefaultObserverCapacity). When the ring is
	// full the oldest packet is overwritten and Stats().Overwritten counts it.
	Capacity int
	// Snap, when above 0, keeps up to Snap bytes of every packet (any fragment, from its IP
	// header on) in Seen.Packet, for a pcap. A slot's buffer grows to what its packets
	// need, so the ring holds at most Capacity×Snap bytes of them (0: none kept).
	Snap int
}

// Observer captures packets in the background (see Capture) into a bounded ring of Seen.
// Its memory is fixed when it starts: each slot holds a Seen and a HeadLen-byte array, and
// accessors return copies. Safe for concurrent use.
type Observer struct {
	c    *Capture
	peer netip.Addr
	snap int // bytes of each packet kept in Seen.Packet (0: none)

	mu      sync.Mutex
	ring    []slot
	written uint64 // packets recorded so far; slot of packet i is i % len(ring)
	drained uint64 // packets before this index were returned by Drain
	stats   ObserverStats
	err     error // why the read loop ended, if not Close

	wake chan struct{}
	done chan struct{}
	stop func() bool
	once sync.Once
}

type slot struct {
	s    Seen
	head [HeadLen]byte
	pkt  []byte // the packet as captured, when the Observer keeps packets (Snap)
}

// ObserverStats counts what an Observer did.
type ObserverStats struct {
	Captured    uint64 // packets recorded
	Malformed   uint64 // packets the IPv4 decoder refused (not recorded)
	Overwritten uint64 // packets lost to a full ring before anyone read them
	KernelDrops uint64 // packets the kernel dropped because we read too slowly
}

// Observe starts capturing in the current network namespace. It stops when ctx ends or
// Close is called; either way Close must be called to release the socket.
func Observe(ctx context.Context, cfg ObserverConfig) (*Observer, error) {
	n := cfg.Capacity
	if n == 0 {
		n = DefaultObserverCapacity
	}
	if n < 1 || n > MaxObserverCapacity {
		return nil, fmt.Errorf("probe: observer capacity %d: want 1–%d", n, MaxObserverCapacity)
	}
	c, err := OpenCapture(CaptureConfig{Peer: cfg.Peer, Outgoing: cfg.Outgoing, Snap: cfg.Snap})
	if err != nil {
		return nil, err
	}
	if cfg.Snap < 0 || cfg.Snap > MaxCaptureSnap {
		c.Close()
		return nil, fmt.Errorf("probe: observer snap length %d: want 0–%d", cfg.Snap, MaxCaptureSnap)
	}
	o := &Observer{c: c, peer: cfg.Peer, ring: make([]slot, n), wake: make(chan struct{}, 1), done: make(chan struct{}), snap: cfg.Snap}
	o.stop = context.AfterFunc(ctx, func() { o.c.Close() })
	go o.loop()
	return o, nil
}

func (o *Observer) loop() {
	defer close(o.done)
	buf := make([]byte, o.c.SnapLen())
	var h IPv4Header
	for {
		n, err := o.c.Read(buf[:])
		if err != nil {
			if !errors.Is(err, net.ErrClosed) {
				o.mu.Lock()
				o.err = err
				o.mu.Unlock()
			}
			return
		}
		at := time.Now()
		if h.DecodeFromBytes(buf[:n]) != nil {
			o.mu.Lock()
			o.stats.Malformed++
			o.mu.Unlock()
			continue
		}
		o.recordPacket(&h, buf[:n], at)
		select {
		case o.wake <- struct{}{}:
		default:
		}
	}
}

func (o *Observer) record(h *IPv4Header, at time.Time) { o.recordPacket(h, nil, at) }

// recordPacket records one decoded packet; raw is the packet as captured (kept in
// Seen.Packet, up to the snap length, when the Observer keeps packets).
func (o *Observer) recordPacket(h *IPv4Header, raw []byte, at time.Time) {
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.written-o.drained >= uint64(len(o.ring)) {
		o.stats.Overwritten++
		o.drained++
	}
	sl := &o.ring[o.written%uint64(len(o.ring))]
	sl.s = Seen{At: at, Src: h.Src, Dst: h.Dst, Proto: h.Proto, IPID: h.ID, Offset: h.Offset,
		More: h.MF, DF: h.DF, TTL: h.TTL, TotalLen: h.TotalLen}
	if h.Offset == 0 {
		k := copy(sl.head[:], h.Payload)
		sl.s.Head = sl.head[:k:k]
	}
	if o.snap > 0 && len(raw) > 0 {
		sl.pkt = append(sl.pkt[:0], raw[:min(len(raw), o.snap)]...)
		sl.s.Packet = sl.pkt[:len(sl.pkt):len(sl.pkt)]
	}
	o.written++
	o.stats.Captured++
}

// Wake returns a channel that receives a value after new packets were recorded. It has room
// for one value: meant for one waiting reader, who then calls Since or Drain.
func (o *Observer) Wake() <-chan struct{} { return o.wake }

// Since returns copies of the packets still in the ring that were captured at or after t,
// oldest first. It does not change what Drain returns.
func (o *Observer) Since(t time.Time) []Seen {
	o.mu.Lock()
	defer o.mu.Unlock()
	first := uint64(0)
	if o.written > uint64(len(o.ring)) {
		first = o.written - uint64(len(o.ring))
	}
	return o.copyRange(first, func(s *Seen) bool { return !s.At.Before(t) })
}

// Drain returns copies of the packets recorded since the previous Drain (and still in the
// ring), oldest first, and forgets them for the next Drain.
func (o *Observer) Drain() []Seen {
	o.mu.Lock()
	defer o.mu.Unlock()
	out := o.copyRange(o.drained, nil)
	o.drained = o.written
	return out
}

// copyRange copies packets first..written-1 that pass keep; heads share one allocation.
func (o *Observer) copyRange(first uint64, keep func(*Seen) bool) []Seen {
	var out []Seen
	var heads []byte
	for i := first; i < o.written; i++ {
		sl := &o.ring[i%uint64(len(o.ring))]
		if keep != nil && !keep(&sl.s) {
			continue
		}
		if out == nil {
			out = make([]Seen, 0, o.written-i)
			heads = make([]byte, 0, int(o.written-i)*HeadLen)
		}
		s := sl.s
		if s.Head != nil {
			k := len(heads)
			heads = append(heads, s.Head...)
			s.Head = heads[k:len(heads):len(heads)]
		}
		if s.Packet != nil {
			s.Packet = append([]byte(nil), s.Packet...)
		}
		out = append(out, s)
	}
	return out
}

// Stats returns the Observer's counters, with the kernel's drops added up.
func (o *Observer) Stats() ObserverStats {
	if o.c != nil {
		if ks, err := o.c.Stats(); err == nil {
			o.mu.Lock()
			o.stats.KernelDrops += uint64(ks.Drops)
			o.mu.Unlock()
		}
	}
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.stats
}

// Err returns why capturing stopped on its own (nil while it runs or after Close).
func (o *Observer) Err() error {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.err
}

// Close stops capturing and waits for the read loop to end. The packets stay readable.
func (o *Observer) Close() error {
	var err error
	o.once.Do(func() {
		o.stop()
		err = o.c.Close()
		<-o.done
	})
	if errors.Is(err, net.ErrClosed) || errors.Is(err, os.ErrClosed) {
		err = nil
	}
	return err
}
