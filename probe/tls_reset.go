package probe

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/binary"
	"net"
	"net/netip"
	"sync"
	"time"

	"golang.org/x/net/icmp"
	"golang.org/x/net/ipv4"
)

func base64Std(s string) string { return base64.StdEncoding.EncodeToString([]byte(s)) }

// tcpRST is a TCP reset seen by the reset watcher.
type tcpRST struct {
	from  netip.Addr
	dport int
	ttl   uint8
}

// resetWatcher reads every TCP segment this host receives (a raw IPPROTO_TCP socket gets a
// copy of each) and keeps the resets, with the TTL they arrived with. Without CAP_NET_RAW it
// is nil and sees nothing.
type resetWatcher struct {
	rc   *ipv4.RawConn
	mu   sync.Mutex
	rsts []tcpRST
	done chan struct{}
}

// resetWatcherMax bounds how many resets the watcher keeps.
const resetWatcherMax = 256

func openResetWatcher() *resetWatcher {
	c, err := net.ListenPacket("ip4:tcp", "0.0.0.0")
	if err != nil {
		return nil
	}
	rc, err := ipv4.NewRawConn(c)
	if err != nil {
		c.Close()
		return nil
	}
	w := &resetWatcher{rc: rc, done: make(chan struct{})}
	go w.loop()
	return w
}

func (w *resetWatcher) loop() {
	defer close(w.done)
	buf := make([]byte, 1500)
	for {
		h, p, _, err := w.rc.ReadFrom(buf)
		if err != nil {
			return
		}
		if r, ok := parseRST(h, p); ok {
			w.mu.Lock()
			if len(w.rsts) < resetWatcherMax {
				w.rsts = append(w.rsts, r)
			}
			w.mu.Unlock()
		}
	}
}

// parseRST keeps a TCP segment with the RST flag.
func parseRST(h *ipv4.Header, tcp []byte) (tcpRST, bool) {
	if h == nil || len(tcp) < 14 || tcp[13]&0x04 == 0 {
		return tcpRST{}, false
	}
	from, ok := netip.AddrFromSlice(h.Src.To4())
	if !ok {
		return tcpRST{}, false
	}
	return tcpRST{from: from, dport: int(binary.BigEndian.Uint16(tcp[2:4])), ttl: uint8(h.TTL)}, true
}

// wait returns the reset from peer (any sender when peer is invalid) to our localPort.
func (w *resetWatcher) wait(peer netip.Addr, localPort int) (tcpRST, bool) {
	if w == nil || localPort == 0 {
		return tcpRST{}, false
	}
	deadline := time.Now().Add(ResetWatch)
	for {
		w.mu.Lock()
		for _, r := range w.rsts {
			if r.dport == localPort && (!peer.IsValid() || r.from == peer) {
				w.mu.Unlock()
				return r, true
			}
		}
		w.mu.Unlock()
		if time.Now().After(deadline) {
			return tcpRST{}, false
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func (w *resetWatcher) close() {
	if w == nil {
		return
	}
	w.rc.Close()
	<-w.done
}

// EchoTTLWait bounds echoTTL.
const EchoTTLWait = time.Second

// echoTTL sends ICMP echoes to addr and returns the TTL its reply arrived with.
func echoTTL(ctx context.Context, addr netip.Addr) (uint8, bool) {
	if !addr.IsValid() {
		return 0, false
	}
	c, err := icmp.ListenPacket("ip4:icmp", "0.0.0.0")
	if err != nil {
		return 0, false
	}
	defer c.Close()
	pc := c.IPv4PacketConn()
	if err := pc.SetControlMessage(ipv4.FlagTTL, true); err != nil {
		return 0, false
	}
	idb := make([]byte, 2)
	_, _ = rand.Read(idb)
	id := int(binary.BigEndian.Uint16(idb))
	deadline := time.Now().Add(EchoTTLWait)
	if d, ok := ctx.Deadline(); ok && d.Before(deadline) {
		deadline = d
	}
	buf := make([]byte, 1500)
	for seq := 1; seq <= 2; seq++ {
		m := icmp.Message{Type: ipv4.ICMPTypeEcho, Body: &icmp.Echo{ID: id, Seq: seq, Data: []byte("ipsecpath-ttl")}}
		b, _ := m.Marshal(nil)
		if _, err := pc.WriteTo(b, nil, &net.IPAddr{IP: addr.AsSlice()}); err != nil {
			return 0, false
		}
		wait := time.Now().Add(EchoTTLWait / 2)
		if wait.After(deadline) {
			wait = deadline
		}
		_ = pc.SetReadDeadline(wait)
		for {
			n, cm, src, err := pc.ReadFrom(buf)
			if err != nil {
				break
			}
			ip, ok := src.(*net.IPAddr)
			if !ok || cm == nil || n < 8 || buf[0] != byte(ipv4.ICMPTypeEchoReply) {
				continue
			}
			if a, _ := netip.AddrFromSlice(ip.IP.To4()); a != addr || int(binary.BigEndian.Uint16(buf[4:6])) != id {
				continue
			}
			return uint8(cm.TTL), true
		}
	}
	return 0, false
}
