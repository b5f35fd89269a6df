package probe

import (
	"context"
	"crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"strings"
	"syscall"
	"time"

	"github.com/vishvananda/netlink"
	"golang.org/x/net/icmp"
	"golang.org/x/net/ipv4"

	"github.com/ipsecpath/ipsecpath/probe/wire"
	"github.com/ipsecpath/ipsecpath/report"
)

// Ladder timings. A rung that answers echo costs one round trip; a dead rung costs
// LadderEchoWait plus LadderFallbackWait.
const (
	LadderEchoWait     = time.Second // how long we wait for echo replies (two echoes, LadderEchoGap apart)
	LadderEchoGap      = 300 * time.Millisecond
	LadderFallbackWait = time.Second // how long the TCP SYN and the UDP probe wait for anything
	// LadderUDPPort is where the UDP fallback goes: a port nothing listens on, so a live
	// host answers ICMP port unreachable (traceroute's first port).
	LadderUDPPort = 33434
	// LadderTCPPort is the TCP fallback's port when the config names none.
	LadderTCPPort = 1792
	// LadderDNSWait bounds the name lookup of the dns rung.
	LadderDNSWait = 3 * time.Second
)

// LadderConfig says what the ladder climbs toward.
type LadderConfig struct {
	// Target is an IPv4 address or a host name.
	Target string
	// DNSServer is the resolver for a name target; zero means the first nameserver of
	// /etc/resolv.conf (ResolvConf).
	DNSServer netip.Addr
	// ResolvConf is read when DNSServer is zero; "" means /etc/resolv.conf.
	ResolvConf string
	// TCPPort is where the TCP fallback SYN goes (0: LadderTCPPort).
	TCPPort int
	// Preflight also checks this host: who holds UDP 500/4500, and local firewall rules
	// against Probes.
	Preflight bool
	Probes    []ID
}

// ErrLadderNeedsRaw is returned when the ICMP socket cannot be opened.
var ErrLadderNeedsRaw = errors.New("the ladder needs root or CAP_NET_RAW (a raw ICMP socket for echo and ICMP errors)")

// RunLadder climbs the ladder: loopback, the route toward the target and its gateway, the DNS
// server when the target is a name, the target; with cfg.Preflight also the local checks.
// A rung is dead only when nothing at all comes back from it: a silent echo is followed by a
// TCP SYN and a UDP probe to the same address. When the underlay itself is dead (loopback,
// route, gateway, or a name that cannot be resolved) the ladder's Stop says what to fix.
func RunLadder(ctx context.Context, cfg LadderConfig) (*report.Ladder, netip.Addr, error) {
	if err := routeTableSupported(); err != nil {
		return nil, netip.Addr{}, err
	}
	if cfg.TCPPort == 0 {
		cfg.TCPPort = LadderTCPPort
	}
	c, err := icmp.ListenPacket("ip4:icmp", "0.0.0.0")
	if err != nil {
		if errors.Is(err, os.ErrPermission) {
			return nil, netip.Addr{}, fmt.Errorf("%w: %w", ErrLadderNeedsRaw, os.ErrPermission)
		}
		return nil, netip.Addr{}, fmt.Errorf("ladder: open ICMP socket: %w", err)
	}
	defer c.Close()
	lr := &ladderRun{cfg: cfg, icmp: c}
	l := &report.Ladder{Target: cfg.Target, Rungs: []report.Rung{}}
	if cfg.Preflight {
		pt, _ := netip.ParseAddr(cfg.Target)
		l.Preflight = RunPreflight(ctx, pt, cfg.Probes)
	}

	lo := lr.probeAddr(ctx, "loopback", netip.MustParseAddr("127.0.0.1"))
	if lo.Verdict.Failed() {
		lo, l.Stop = loopbackFailed(lo, loopbackDown())
		l.Rungs = append(l.Rungs, lo)
		return l, netip.Addr{}, nil
	}
	l.Rungs = append(l.Rungs, lo)

	target, err := netip.ParseAddr(cfg.Target)
	if err != nil { // a name: the dns rung first
		dns, addr := lr.dnsRung(ctx)
		if dns.Verdict == report.RungPass {
			target = addr
			l.Resolved = addr.String()
		}
		// the route and gateway toward the DNS server, when it is not on this host
		if server, e := netip.ParseAddr(dns.Addr); e == nil && !server.IsLoopback() && dns.Verdict.Failed() {
			route, gw := lr.routeRungs(ctx, server, "the DNS server "+server.String())
			l.Rungs = append(l.Rungs, route)
			if gw != nil {
				l.Rungs = append(l.Rungs, *gw)
			}
			if stop := underlayStop(route, gw); stop != "" {
				l.Rungs = append(l.Rungs, dns)
				l.Stop = stop
				return l, netip.Addr{}, nil
			}
		}
		l.Rungs = append(l.Rungs, dns)
		if !target.IsValid() {
			l.Stop = fmt.Sprintf("%s could not be resolved (see the dns rung): fix name resolution first, or give the address; no probe was sent.", cfg.Target)
			return l, netip.Addr{}, nil
		}
	}
	if err := CheckTarget(target); err != nil {
		return nil, netip.Addr{}, err
	}
	target = target.Unmap()
	route, gw := lr.routeRungs(ctx, target, target.String())
	l.Rungs = append(l.Rungs, route)
	if gw != nil {
		l.Rungs = append(l.Rungs, *gw)
	}
	if stop := underlayStop(route, gw); stop != "" {
		l.Stop = stop
		return l, target, nil
	}
	l.Rungs = append(l.Rungs, lr.probeAddr(ctx, "target", target))
	return l, target, nil
}

// loopbackDown reports whether this network namespace's lo interface exists and is down
// (as in a fresh namespace: lo has no 127.0.0.1 and no route to it until it is up).
func loopbackDown() bool {
	link, err := netlink.LinkByName("lo")
	return err == nil && link.Attrs().Flags&net.FlagUp == 0
}

// loopbackFailed words a failed loopback rung and the ladder's stop after what was seen:
// lo down (read from the interface, not guessed), no route to 127.0.0.1, or silence.
func loopbackFailed(lo report.Rung, down bool) (report.Rung, string) {
	switch {
	case down:
		lo.Detail = strings.TrimSuffix(lo.Detail, ".") + ": the loopback interface lo is down."
		return lo, "This host's loopback interface lo is down, so it cannot even reach its own 127.0.0.1: bring it up (ip link set lo up) first; no probe was sent."
	case lo.Verdict == report.RungNoRoute:
		return lo, "This host has no route to its own loopback 127.0.0.1 although lo is up (is 127.0.0.1/8 missing from lo, or a rule steering it away?): fix this host's routing first; no probe was sent."
	case lo.Verdict == report.RungDead:
		return lo, "This host's own loopback 127.0.0.1 does not answer echo, TCP or UDP: a local firewall rule on lo, or a broken network stack; fix this host first; no probe was sent."
	}
	return lo, "This host's own loopback 127.0.0.1 could not be tested (see the loopback rung): fix this host first; no probe was sent."
}

// CheckRoute refuses a target this host has no usable route to, before anything is sent:
// no route at all, or a route that discards it (blackhole, unreachable, prohibit), named.
// It sends nothing (SourceFor only routes). nil when the kernel routes dst.
func CheckRoute(dst netip.Addr) error {
	if _, err := SourceFor(dst); err != nil {
		if rt, ok := discardRoute(dst.Unmap()); ok {
			return fmt.Errorf("no route to %s: this host's routing table discards it (a %s route for %s)", dst, rt.kind, rt.dst)
		}
		return fmt.Errorf("no route to %s from this host (%s)", dst, sendErrText(errors.Unwrap(err)))
	}
	return nil
}

// underlayStop is the sentence that stops a check when the route or the gateway is dead.
func underlayStop(route report.Rung, gw *report.Rung) string {
	if route.Verdict.Failed() {
		return route.Detail + " Fix the routing first: every probe toward it would fail on this host."
	}
	if gw != nil && gw.Verdict.Failed() {
		what := "The gateway"
		if strings.Contains(gw.Detail, "default gateway") {
			what = "The default gateway"
		}
		return fmt.Sprintf("%s %s does not answer: fix the underlay first (every IPsec probe would fail behind it).", what, gw.Addr)
	}
	return ""
}

type ladderRun struct {
	cfg  LadderConfig
	icmp *icmp.PacketConn
}

// routeRungs reads the kernel's route toward dst (netlink route get) and probes its gateway.
func (lr *ladderRun) routeRungs(ctx context.Context, dst netip.Addr, what string) (report.Rung, *report.Rung) {
	r := report.Rung{Rung: "route", Addr: dst.String(), Tried: []string{"route-get"}}
	routes, err := netlink.RouteGet(dst.AsSlice())
	if err != nil || len(routes) == 0 {
		r.Verdict = report.RungNoRoute
		if rt, ok := discardRoute(dst); ok {
			r.Detail = fmt.Sprintf("This host's routing table discards traffic to %s: a %s route for %s.", what, rt.kind, rt.dst)
			return r, nil
		}
		r.Detail = fmt.Sprintf("This host has no route to %s (%s).", what, routeErr(err))
		return r, nil
	}
	rt := routes[0]
	dev := "" // " on interface NAME", when the kernel names it
	if link, err := netlink.LinkByIndex(rt.LinkIndex); err == nil && link.Attrs().Name != "" {
		dev = " on interface " + link.Attrs().Name
	}
	gw, ok := netip.AddrFromSlice(rt.Gw)
	src, _ := netip.AddrFromSlice(rt.Src)
	r.Verdict = report.RungPass
	if !ok || !gw.IsValid() || gw.IsUnspecified() {
		r.Detail = capitalize(fmt.Sprintf("%s is on-link%s (source %s): no gateway between.", what, dev, src.Unmap()))
		return r, nil
	}
	gw = gw.Unmap()
	kind := "gateway"
	if isDefaultGateway(gw) {
		kind = "default gateway"
	}
	r.Detail = capitalize(fmt.Sprintf("%s is reached via the %s %s%s (source %s).", what, kind, gw, dev, src.Unmap()))
	g := lr.probeAddr(ctx, "gateway", gw)
	if g.Verdict.Failed() {
		g.Detail = fmt.Sprintf("The %s %s %s", kind, gw, strings.TrimPrefix(g.Detail, gw.String()+" "))
	}
	return r, &g
}

func routeErr(err error) string {
	if err == nil {
		return "no route returned"
	}
	if errors.Is(err, syscall.ENETUNREACH) {
		return "network is unreachable"
	}
	return err.Error()
}

// probeAddr decides one rung: ICMP echo first; if silent, a TCP SYN and a UDP probe to a
// closed port at once. Anything that comes back from addr makes it alive; an ICMP error
// from another device about addr makes it unreachable; silence makes it dead.
func (lr *ladderRun) probeAddr(ctx context.Context, rung string, addr netip.Addr) report.Rung {
	r := report.Rung{Rung: rung, Addr: addr.String(), Tried: []string{"echo"}}
	idb := make([]byte, 2)
	_, _ = rand.Read(idb)
	id := int(binary.BigEndian.Uint16(idb))
	start := time.Now()
	var sendErr error
	for seq := 1; seq <= 2; seq++ {
		m := icmp.Message{Type: ipv4.ICMPTypeEcho, Body: &icmp.Echo{ID: id, Seq: seq, Data: []byte("ipsecpath-ladder")}}
		b, _ := m.Marshal(nil)
		if _, err := lr.icmp.WriteTo(b, &net.IPAddr{IP: addr.AsSlice()}); err != nil {
			sendErr = err
			break
		}
		ans := lr.await(ctx, addr, time.Now().Add(LadderEchoGap), func(a icmpAnswer) bool { return a.echoID == id })
		if seq == 2 && ans.kind == "" {
			ans = lr.await(ctx, addr, start.Add(LadderEchoWait), func(a icmpAnswer) bool { return a.echoID == id })
		}
		if ans.kind == "echo-reply" {
			r.Verdict, r.AnsweredBy = report.RungPass, "echo-reply"
			r.RTTms = ms(ans.at.Sub(start))
			r.Detail = fmt.Sprintf("%s answers ICMP echo (%.1f ms).", addr, r.RTTms)
			return r
		}
		if ans.kind != "" { // an ICMP error about addr from another device
			return unreachableRung(r, addr, ans)
		}
	}
	if sendErr != nil {
		r.Verdict = report.RungError
		r.Detail = fmt.Sprintf("Sending ICMP echo to %s failed on this host: %v.", addr, sendErrText(sendErr))
		if errors.Is(sendErr, syscall.ENETUNREACH) {
			r.Verdict = report.RungNoRoute
		}
		return r
	}

	// Echo was silent: a UDP probe, then a TCP SYN. The UDP probe goes first so its ICMP
	// answer queues on the raw socket while the SYN waits; both sockets are opened on this
	// goroutine's thread (a caller may have switched it into another network namespace).
	port := lr.cfg.TCPPort
	r.Tried = append(r.Tried, fmt.Sprintf("tcp:%d", port), fmt.Sprintf("udp:%d", LadderUDPPort))
	t0 := time.Now()
	var udpPort int
	if u, err := net.DialUDP("udp4", nil, net.UDPAddrFromAddrPort(netip.AddrPortFrom(addr, LadderUDPPort))); err == nil {
		udpPort = u.LocalAddr().(*net.UDPAddr).Port
		_, _ = u.Write([]byte("ipsecpath-ladder"))
		defer u.Close()
	}
	type tcpRes struct {
		kind string
		at   time.Time
	}
	var tr tcpRes
	fctx, cancel := context.WithTimeout(ctx, LadderFallbackWait)
	defer cancel()
	var d net.Dialer
	conn, err := d.DialContext(fctx, "tcp4", netip.AddrPortFrom(addr, uint16(port)).String())
	switch {
	case err == nil:
		conn.Close()
		tr = tcpRes{"tcp-syn-ack", time.Now()}
	case errors.Is(err, syscall.ECONNREFUSED):
		tr = tcpRes{"tcp-rst", time.Now()}
	}
	isEcho := func(a icmpAnswer) bool { return a.kind == "echo-reply" && a.echoID == id }
	ans := lr.await(ctx, addr, maxTime(t0.Add(LadderFallbackWait), time.Now().Add(50*time.Millisecond)), func(a icmpAnswer) bool {
		return isEcho(a) || (a.proto == ProtoUDP && a.sport == udpPort && a.dport == LadderUDPPort) ||
			(a.proto == ProtoTCP && a.dport == port)
	})
	if !isEcho(ans) { // a late echo reply may still sit in the queue behind it
		if late := lr.await(ctx, addr, time.Now().Add(20*time.Millisecond), isEcho); late.kind != "" {
			ans = late
		}
	}
	if isEcho(ans) {
		r.Verdict, r.AnsweredBy, r.RTTms = report.RungPass, "echo-reply", ms(ans.at.Sub(start))
		r.Detail = fmt.Sprintf("%s answers ICMP echo, slowly (%.0f ms).", addr, r.RTTms)
		return r
	}
	switch {
	case tr.kind != "":
		r.Verdict, r.AnsweredBy, r.RTTms = report.RungEchoFiltered, tr.kind, ms(tr.at.Sub(t0))
		what := "a SYN-ACK"
		if tr.kind == "tcp-rst" {
			what = "a TCP reset"
		}
		r.Detail = fmt.Sprintf("%s does not answer ICMP echo but answered a TCP SYN to port %d with %s: only echo is filtered (on the path or at %s); it is alive.", addr, port, what, addr)
	case ans.kind == "port-unreachable" && ans.from == addr:
		r.Verdict, r.AnsweredBy, r.RTTms = report.RungEchoFiltered, "icmp-port-unreachable", ms(ans.at.Sub(t0))
		r.Detail = fmt.Sprintf("%s does not answer ICMP echo but answered a UDP probe with ICMP port unreachable: only echo is filtered; it is alive.", addr)
	case ans.kind != "":
		return unreachableRung(r, addr, ans)
	default:
		r.Verdict = report.RungDead
		r.Detail = fmt.Sprintf("%s does not answer: nothing came back to ICMP echo, a TCP SYN to port %d nor a UDP probe to port %d (a missing route back to this host looks the same).", addr, port, LadderUDPPort)
	}
	return r
}

func unreachableRung(r report.Rung, addr netip.Addr, ans icmpAnswer) report.Rung {
	r.Verdict, r.AnsweredBy, r.From = report.RungUnreachable, "icmp-"+ans.kind, ans.from.String()
	r.Detail = fmt.Sprintf("%s cannot be reached: %s sent %s for it.", addr, ans.from, ans.text)
	return r
}

func sendErrText(err error) string {
	var se *os.SyscallError
	if errors.As(err, &se) {
		return se.Err.Error()
	}
	return err.Error()
}

// icmpAnswer is an ICMP message about addr: an echo reply, or an error quoting a packet we
// sent to addr.
type icmpAnswer struct {
	kind         string // "echo-reply", "port-unreachable", "host-unreachable", …
	text         string
	from         netip.Addr
	at           time.Time
	echoID       int
	proto        int
	sport, dport int
}

// await reads the ICMP socket until deadline for an answer about addr that match accepts.
func (lr *ladderRun) await(ctx context.Context, addr netip.Addr, deadline time.Time, match func(icmpAnswer) bool) icmpAnswer {
	buf := make([]byte, 1500)
	for {
		if ctx.Err() != nil {
			return icmpAnswer{}
		}
		if d, ok := ctx.Deadline(); ok && d.Before(deadline) {
			deadline = d
		}
		_ = lr.icmp.SetReadDeadline(deadline)
		n, peer, err := lr.icmp.ReadFrom(buf)
		if err != nil {
			return icmpAnswer{}
		}
		from, _ := netip.AddrFromSlice(peer.(*net.IPAddr).IP)
		a, ok := parseLadderICMP(buf[:n], from.Unmap(), addr)
		if !ok {
			continue
		}
		a.at = time.Now()
		if match(a) {
			return a
		}
	}
}

// parseLadderICMP reads an ICMP message (as a raw ip4:icmp socket returns it, without the IP
// header) and keeps echo replies from addr and destination unreachables quoting a packet to addr.
func parseLadderICMP(b []byte, from, addr netip.Addr) (icmpAnswer, bool) {
	if len(b) < 8 {
		return icmpAnswer{}, false
	}
	switch b[0] {
	case byte(ipv4.ICMPTypeEchoReply):
		if from != addr {
			return icmpAnswer{}, false
		}
		return icmpAnswer{kind: "echo-reply", from: from, echoID: int(binary.BigEndian.Uint16(b[4:6]))}, true
	case byte(ipv4.ICMPTypeDestinationUnreachable):
	default:
		return icmpAnswer{}, false
	}
	q, ok := wire.ParseQuotedIPv4(b[8:], 4)
	if !ok || q.Dst != addr {
		return icmpAnswer{}, false
	}
	a := icmpAnswer{from: from, proto: int(q.Proto),
		sport: int(binary.BigEndian.Uint16(q.Next)), dport: int(binary.BigEndian.Uint16(q.Next[2:]))}
	code := b[1]
	a.text = wire.ICMPName(b[0], code)
	switch code {
	case wire.CodePortUnreach:
		a.kind = "port-unreachable"
	case wire.CodeHostUnreach:
		a.kind = "host-unreachable"
	case wire.CodeNetUnreach:
		a.kind = "net-unreachable"
	case wire.CodeAdminProhibited, wire.CodeNetProhibited, wire.CodeHostProhibited:
		a.kind = "admin-prohibited"
	default:
		a.kind = fmt.Sprintf("unreachable-code-%d", code)
	}
	return a, true
}

func maxTime(a, b time.Time) time.Time {
	if a.After(b) {
		return a
	}
	return b
}

// discarding is a route that discards instead of forwarding.
type discarding struct {
	kind string // blackhole, unreachable, prohibit
	dst  netip.Prefix
}
