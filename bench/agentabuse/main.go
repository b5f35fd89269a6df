// Command agentabuse is the load of bench/agent-abuse.sh: it opens authenticated sessions
// with an agent (`ipsecpath responder`), floods it with packets it must not keep, and
// samples the agent's resident memory from /proc while it does and after the sessions end.
//
// Run it only inside a network namespace of its own where the agent listens on loopback
// (bench/agent-abuse.sh does that): it sends spoofed packets to 127.0.0.1.
package main

import (
	"bufio"
	"context"
	"flag"
	"fmt"
	"math/rand/v2"
	"net/netip"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/ipsecpath/ipsecpath/probe"
	"github.com/ipsecpath/ipsecpath/probe/wire"
)

func main() {
	port := flag.Int("port", 7500, "the agent's control port")
	keyFile := flag.String("key", "", "the agent's key file")
	sessions := flag.Int("sessions", 32, "authenticated sessions to hold")
	packets := flag.Int("packets", 1000000, "junk packets to send")
	rate := flag.Int("rate", 30000, "junk packets per second")
	pid := flag.Int("pid", 0, "the agent's pid (its /proc/PID/status is sampled)")
	after := flag.Duration("after", 5*time.Second, "how long to watch the agent's memory after the sessions end")
	peers := flag.String("peers", "192.0.2.201,192.0.2.202,192.0.2.203,192.0.2.204",
		"local addresses of this namespace the sessions come from, in turn: a session to a local address comes from that address (the agent takes at most MaxSessionsPerPeer from each)")
	flag.Parse()
	var addrs []netip.Addr
	for _, a := range strings.Split(*peers, ",") {
		ip, err := netip.ParseAddr(a)
		if err != nil {
			fmt.Fprintln(os.Stderr, "agentabuse: -peers:", err)
			os.Exit(2)
		}
		addrs = append(addrs, ip)
	}
	if err := run(*port, *keyFile, *sessions, *packets, *rate, *pid, addrs, *after); err != nil {
		fmt.Fprintln(os.Stderr, "agentabuse:", err)
		os.Exit(1)
	}
}

// rss returns the agent's VmRSS and VmHWM in KiB.
func rss(pid int) (cur, peak int) {
	f, err := os.Open("/proc/" + strconv.Itoa(pid) + "/status")
	if err != nil {
		return 0, 0
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		k, v, _ := strings.Cut(sc.Text(), ":")
		n, _ := strconv.Atoi(strings.TrimSuffix(strings.TrimSpace(v), " kB"))
		switch k {
		case "VmRSS":
			cur = n
		case "VmHWM":
			peak = n
		}
	}
	return cur, peak
}

func run(port int, keyFile string, sessions, packets, rate, pid int, peers []netip.Addr, after time.Duration) error {
	key, err := probe.LoadKey(keyFile)
	if err != nil {
		return err
	}
	ctx := context.Background()
	r0, _ := rss(pid)
	var cs []*probe.AgentClient
	for i := range sessions {
		c, err := probe.DialAgent(ctx, netip.AddrPortFrom(peers[i%len(peers)], uint16(port)).String(), key)
		if err != nil {
			return err
		}
		if _, err := c.Hello(ctx); err != nil {
			return fmt.Errorf("session %d: %w", i+1, err)
		}
		if err := c.StartObserving(ctx); err != nil {
			return fmt.Errorf("session %d: %w", i+1, err)
		}
		cs = append(cs, c)
	}
	r1, _ := rss(pid)
	fmt.Printf("agent RSS: %d KiB idle, %d KiB with %d sessions observing\n", r0, r1, sessions)

	snd, err := probe.OpenSender(probe.SenderConfig{Rate: probe.MaxRate, Burst: 1000})
	if err != nil {
		return err
	}
	defer snd.Close()
	// Four kinds of junk, in turn: ICMP errors from random sources quoting a packet sent
	// to the initiator; non-first fragments from the initiator with random IP IDs; ESP
	// from the initiator without a probe marker; ESP probes with a marker and a random
	// nonce (anyone can forge those: they fill budgets, which must be bounded).
	type junk struct{ icmp, frag, plain []byte }
	var js []junk
	var pk probe.Packets
	for _, p := range peers {
		if err := probe.Build(probe.ESP, probe.BuildParams{Src: p, Dst: p, Nonce: 0x01020304}, &pk); err != nil {
			return err
		}
		var j junk
		j.icmp = make([]byte, 20+8+28)
		j.icmp[0], j.icmp[3], j.icmp[8], j.icmp[9] = 0x45, byte(len(j.icmp)), 64, 1
		a4 := p.As4()
		copy(j.icmp[16:20], a4[:])
		j.icmp[20], j.icmp[21] = 3, 13
		copy(j.icmp[28:], pk.Wire[0][:28])
		j.frag = append([]byte(nil), pk.Wire[0]...)
		j.frag[6], j.frag[7] = 0, 1480/8
		j.plain = append([]byte(nil), pk.Wire[0]...)
		clear(j.plain[28 : 28+wire.MarkerLen])
		js = append(js, j)
	}
	var mu sync.Mutex
	var peakRSS int
	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Go(func() {
		t := time.NewTicker(100 * time.Millisecond)
		defer t.Stop()
		for {
			select {
			case <-stop:
				return
			case <-t.C:
			}
			if r, _ := rss(pid); r > 0 {
				mu.Lock()
				peakRSS = max(peakRSS, r)
				mu.Unlock()
			}
		}
	})
	start := time.Now()
	interval := time.Second / time.Duration(rate)
	for i := range packets {
		if d := time.Until(start.Add(time.Duration(i) * interval)); d > 0 && i%64 == 0 {
			time.Sleep(d)
		}
		var w []byte
		j, p := js[(i/4)%len(js)], peers[(i/4)%len(js)]
		switch i % 4 {
		case 0:
			w = j.icmp
			copy(w[12:16], []byte{10, byte(rand.IntN(256)), byte(rand.IntN(256)), byte(1 + rand.IntN(254))})
		case 1:
			w = j.frag
			id := uint16(rand.IntN(65535) + 1)
			w[4], w[5] = byte(id>>8), byte(id)
		case 2:
			w = j.plain
		case 3:
			nonce := uint32(rand.IntN(1<<24))<<8 | 0x55
			if err := probe.Build(probe.ESP, probe.BuildParams{Src: p, Dst: p, Nonce: nonce}, &pk); err != nil {
				return err
			}
			w = pk.Wire[0]
		}
		if err := snd.WritePacket(ctx, w); err != nil {
			return fmt.Errorf("junk packet %d: %w", i, err)
		}
	}
	took := time.Since(start)
	time.Sleep(500 * time.Millisecond) // the agent drains what is queued
	rEnd, hwm := rss(pid)
	lost, other, kept := 0, 0, 0
	for _, c := range cs {
		rep, err := c.Report(ctx)
		if err != nil {
			return err
		}
		lost, other, kept = lost+rep.Lost, other+rep.Other, kept+len(rep.Seen)
	}
	close(stop)
	wg.Wait()
	fmt.Printf("sent %d junk packets in %v (%.0f/s) to %d sessions: the agent kept %d, lost %d, ignored %d\n",
		packets, took.Round(time.Millisecond), float64(packets)/took.Seconds(), sessions, kept, lost, other)
	fmt.Printf("agent RSS: %d KiB at the end of the flood, peak sampled %d KiB, VmHWM %d KiB (%.1f MiB)\n", rEnd, peakRSS, hwm, float64(hwm)/1024)
	_, hwm = rss(pid)
	fmt.Printf("agent VmHWM after the reports: %d KiB (%.1f MiB)\n", hwm, float64(hwm)/1024)
	for _, c := range cs {
		c.Stop(ctx)
	}
	endAt := time.Now()
	for time.Since(endAt) < after {
		time.Sleep(500 * time.Millisecond)
		r, _ := rss(pid)
		fmt.Printf("agent RSS %.1fs after the sessions ended: %d KiB\n", time.Since(endAt).Seconds(), r)
	}
	return nil
}
