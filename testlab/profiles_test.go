package testlab

import (
	"net"
	"strconv"
	"strings"
	"testing"
	"time"
)

// Every profile's fault, proven with ping, tcpdump, nc, hping3 and nft counters.

const (
	ini, rsp = "198.51.100.10", "203.0.113.10"
)

func TestProfileClean(t *testing.T) {
	t.Parallel()
	l := ForTest(t, Spec{Profile: "clean", NoGateways: true})
	mustPing(t, l, NodeIni, rsp, "-s", "5000")
	mustPing(t, l, NodeRsp, ini, "-s", "5000")
	mustPing(t, l, NodeIni, rsp, "-M", "do", "-s", "1472")
	mustPing(t, l, NodeIni, l.Addr(NodeR2).String())
	for _, port := range []int{445, 1792} {
		tcpListen(t, l, NodeRsp, port)
		if ok, out := tcpConnect(t, l, NodeIni, rsp, port); !ok {
			t.Errorf("tcp %d should connect on a clean path: %s", port, out)
		}
	}
	// The LANs are reachable only through the tunnel: r1 and r2 have no route to them.
	mustNotPing(t, l, NodeLanA, l.Addr(NodeLanB).String())
	for _, n := range []string{NodeR1, NodeR2} {
		if out, err := l.Exec(testCtx(t, 5*time.Second), n, "ip", "route", "get", "192.0.2.130"); err == nil {
			t.Errorf("%s has a route to lan-b: %s", n, out)
		}
	}
	// IPv6 off everywhere, and no namespace has a route to anything but the lab.
	for _, n := range Nodes {
		if v := strings.TrimSpace(mustExec(t, l, n, "cat", "/proc/sys/net/ipv6/conf/all/disable_ipv6")); v != "1" {
			t.Errorf("%s: IPv6 not disabled (%s)", n, v)
		}
		if v := strings.TrimSpace(mustExec(t, l, n, "cat", "/proc/sys/net/ipv4/icmp_ratelimit")); v != "0" {
			t.Errorf("%s: ICMP rate limit %s, want 0", n, v)
		}
		for _, line := range strings.Split(strings.TrimSpace(mustExec(t, l, n, "ip", "-4", "route", "show", "table", "all")), "\n") {
			if strings.Contains(line, "via") && !strings.Contains(line, "via 19") && !strings.Contains(line, "via 20") {
				t.Errorf("%s: route outside the lab: %s", n, line)
			}
		}
	}
	// Each end of every link has a permanent ARP entry for the other: no packet waits for ARP.
	for _, k := range links {
		for _, e := range [][2][3]string{{{k.nodeA, k.ifA}, {k.nodeB, k.ifB, k.addrB}}, {{k.nodeB, k.ifB}, {k.nodeA, k.ifA, k.addrA}}} {
			mac := strings.TrimSpace(mustExec(t, l, e[1][0], "cat", "/sys/class/net/"+e[1][1]+"/address"))
			want := strings.SplitN(e[1][2], "/", 2)[0] + " lladdr " + mac + " PERMANENT"
			if out := mustExec(t, l, e[0][0], "ip", "-4", "neigh", "show", "dev", e[0][1]); !strings.Contains(out, want) {
				t.Errorf("%s %s: neighbours %q, want %q", e[0][0], e[0][1], out, want)
			}
		}
	}
	// Both ends of every veth share one MTU.
	for _, n := range Nodes {
		out := mustExec(t, l, n, "ip", "-o", "link", "show")
		if strings.Count(out, "mtu 1500") != strings.Count(out, "mtu ")-1 { // lo is 65536
			t.Errorf("%s: unexpected MTUs:\n%s", n, out)
		}
	}
}

func TestProfileFragDrop(t *testing.T) {
	t.Parallel()
	l := ForTest(t, Spec{Profile: "frag-drop", NoGateways: true})
	mustPing(t, l, NodeIni, rsp, "-s", "1000")
	west := startCapture(t, l, NodeR2, "west0", "ip[6:2] & 0x3fff != 0")
	east := startCapture(t, l, NodeR2, "east0", "ip[6:2] & 0x3fff != 0")
	mustNotPing(t, l, NodeIni, rsp, "-s", "5000")
	mustNotPing(t, l, NodeRsp, ini, "-s", "5000")
	w, e := west.count(), east.count()
	if w == 0 || e == 0 {
		// fragments reach r2 from both sides (tcpdump sees ingress before netfilter)...
		t.Errorf("r2 should see fragments arrive on both sides: west0 %d, east0 %d", w, e)
	}
	// ...and none leaves: on each side everything seen is what arrived from that side.
	if c := nftCounter(t, l, NodeR2); c < 12 {
		t.Errorf("r2 dropped %d fragments, want ≥ 12 (2 pings × 2 directions × 4 fragments - the replies never happen)", c)
	}
	lanDrop := startCapture(t, l, NodeRsp, "wan0", "ip[6:2] & 0x3fff != 0 and src "+ini)
	mustNotPing(t, l, NodeIni, rsp, "-s", "3000")
	if n := lanDrop.count(); n != 0 {
		t.Errorf("rsp received %d fragments through a fragment-dropping r2", n)
	}
}

func TestProfileNonFirstFragDrop(t *testing.T) {
	t.Parallel()
	l := ForTest(t, Spec{Profile: "nonfirst-frag-drop", NoGateways: true})
	mustPing(t, l, NodeIni, rsp, "-s", "1400")
	first := startCapture(t, l, NodeR1, "east0", "ip[6:2] & 0x3fff = 0x2000 and src "+ini)
	rest := startCapture(t, l, NodeR1, "east0", "ip[6:2] & 0x1fff != 0 and src "+ini)
	mustNotPing(t, l, NodeIni, rsp, "-s", "5000")
	if f, r := first.count(), rest.count(); f == 0 || r != 0 {
		t.Errorf("r1 should forward first fragments only: first %d, non-first %d", f, r)
	}
}

func TestProfileESPDrop(t *testing.T) {
	t.Parallel()
	l := ForTest(t, Spec{Profile: "esp-drop", NoGateways: true})
	in := startCapture(t, l, NodeR1, "west0", "ip proto 50")
	out := startCapture(t, l, NodeRsp, "wan0", "ip proto 50")
	udp := startCapture(t, l, NodeRsp, "wan0", "udp port 4500")
	rawIP(t, l, NodeIni, 50, 3, rsp)
	mustExec(t, l, NodeIni, "sh", "-c", "echo esp-in-udp | nc -u -w 1 -p 4500 "+rsp+" 4500")
	if i, o := in.count(), out.count(); i < 3 || o != 0 {
		t.Errorf("ESP: r1 west0 saw %d, rsp saw %d (want ≥3 and 0)", i, o)
	}
	if n := udp.count(); n == 0 {
		t.Errorf("UDP 4500 should pass esp-drop, rsp saw %d", n)
	}
	if c := nftCounter(t, l, NodeR1); c < 3 {
		t.Errorf("r1 esp counter %d, want ≥ 3", c)
	}
}

func TestProfileAHReject(t *testing.T) {
	t.Parallel()
	l := ForTest(t, Spec{Profile: "ah-reject", NoGateways: true})
	rejected(t, l, NodeIni, NodeRsp, 51, 2, 1, "192.0.2.66")
}

// rejected sends count raw IP packets of protocol proto from node from to node to, and checks
// that the router at routerAddr refuses them on the way: from gets at least want ICMP
// admin-prohibited, the first from routerAddr, and to receives none of the packets.
func rejected(t *testing.T, l *Lab, from, to string, proto, count, want int, routerAddr string) {
	t.Helper()
	refused := startCapture(t, l, from, "wan0", "icmp[0] = 3 and icmp[1] = 13")
	at := startCapture(t, l, to, "wan0", "ip proto "+strconv.Itoa(proto))
	rawIP(t, l, from, proto, count, l.Addr(to).String())
	pk := refused.stop()
	if len(pk) < want || !strings.Contains(pk[0], routerAddr+" > "+l.Addr(from).String()) {
		t.Errorf("%s should get %d ICMP admin-prohibited from %s for %d packets of protocol %d: %q", from, want, routerAddr, count, proto, pk)
	}
	if n := at.count(); n != 0 {
		t.Errorf("%s received %d packets of protocol %d from %s, which %s should refuse", to, n, proto, from, routerAddr)
	}
}

func TestProfileUDP500Drop(t *testing.T) {
	t.Parallel()
	l := ForTest(t, Spec{Profile: "udp500-drop"})
	if l.TunnelUp() {
		t.Fatal("IKEv2 tunnel came up although r1 drops UDP 500")
	}
	t.Logf("tunnel error, as expected: %v", l.TunnelErr())
	in := startCapture(t, l, NodeR1, "west0", "udp dst port 500")
	out := startCapture(t, l, NodeRsp, "wan0", "udp dst port 500")
	mustExec(t, l, NodeIni, "sh", "-c", "echo probe | nc -u -w 1 "+rsp+" 500")
	ctx := testCtx(t, 30*time.Second)
	if o, err := l.Swanctl(ctx, NodeIni, "--initiate", "--ike", ConnIKEv1, "--child", ChildIKEv1, "--timeout", "12"); err == nil {
		t.Errorf("IKEv1 established through udp500-drop:\n%s", o)
	}
	if i, o := in.count(), out.count(); i == 0 || o != 0 {
		t.Errorf("UDP 500: r1 west0 saw %d, rsp saw %d (want >0 and 0)", i, o)
	}
	if o, _ := l.Swanctl(ctx, NodeRsp, "--list-sas"); strings.Contains(string(o), "ESTABLISHED") {
		t.Errorf("rsp has an SA: %s", o)
	}
}

func TestProfileUDP4500Drop(t *testing.T) {
	t.Parallel()
	l := ForTest(t, Spec{Profile: "udp4500-drop"})
	if l.TunnelUp() {
		t.Fatal("IKEv2 tunnel came up although r2 drops UDP 4500")
	}
	s500 := startCapture(t, l, NodeRsp, "wan0", "udp dst port 500")
	s4500 := startCapture(t, l, NodeRsp, "wan0", "udp dst port 4500")
	in4500 := startCapture(t, l, NodeR2, "west0", "udp dst port 4500")
	mustExec(t, l, NodeIni, "sh", "-c", "echo probe | nc -u -w 1 "+rsp+" 4500; echo probe | nc -u -w 1 "+rsp+" 500")
	if a, b, c := s500.count(), s4500.count(), in4500.count(); a == 0 || b != 0 || c == 0 {
		t.Errorf("rsp saw UDP 500 %d (want >0), UDP 4500 %d (want 0); r2 west0 saw 4500 %d (want >0)", a, b, c)
	}
}

func TestProfileTCP445Reset(t *testing.T) {
	t.Parallel()
	tcpBlocked(t, "tcp445-reset", 445, 1792, true)
}

func TestProfileTCP1792Drop(t *testing.T) {
	t.Parallel()
	tcpBlocked(t, "tcp1792-drop", 1792, 445, false)
}

func TestProfileTCP1792Reset(t *testing.T) {
	t.Parallel()
	tcpBlocked(t, "tcp1792-reset", 1792, 445, true)
}

// tcpBlocked checks a profile that blocks TCP from ini to rsp's port: with a reset (ini gets
// RSTs, rsp sees no SYN) or silently (no SYN at rsp, no answer at ini), while TCP to other
// still connects.
func tcpBlocked(t *testing.T, profile string, port, other int, reset bool) {
	t.Helper()
	l := ForTest(t, Spec{Profile: profile, NoGateways: true})
	tcpListen(t, l, NodeRsp, 445)
	tcpListen(t, l, NodeRsp, 1792)
	p := strconv.Itoa(port)
	syn := startCapture(t, l, NodeRsp, "wan0", "tcp dst port "+p)
	if reset {
		rst := startCapture(t, l, NodeIni, "wan0", "tcp src port "+p+" and tcp[tcpflags] & tcp-rst != 0")
		ok, out := tcpConnect(t, l, NodeIni, rsp, port)
		if ok || !strings.Contains(out, "refused") {
			t.Errorf("tcp %d should be reset: ok=%v %s", port, ok, out)
		}
		if r, s := rst.count(), syn.count(); r == 0 || s != 0 {
			t.Errorf("ini saw %d RSTs (want >0), rsp saw %d SYNs to %d (want 0)", r, s, port)
		}
	} else {
		back := startCapture(t, l, NodeIni, "wan0", "tcp src port "+p+" or icmp")
		ok, out := tcpConnect(t, l, NodeIni, rsp, port)
		if ok || strings.Contains(out, "refused") {
			t.Errorf("tcp %d should time out silently: ok=%v %s", port, ok, out)
		}
		if s, b := syn.count(), back.count(); s != 0 || b != 0 {
			t.Errorf("rsp saw %d SYNs to %d, ini got %d answers (want 0, 0)", s, port, b)
		}
	}
	if ok, out := tcpConnect(t, l, NodeIni, rsp, other); !ok {
		t.Errorf("tcp %d should pass %s: %s", other, profile, out)
	}
}

// TestProfileUnderlayDead: nothing from ini gets through r1 or to r1 itself (ping, TCP and
// UDP), while everything else in the lab still works (r1 reaches rsp).
func TestProfileUnderlayDead(t *testing.T) {
	t.Parallel()
	l := ForTest(t, Spec{Profile: "underlay-dead", NoGateways: true})
	mustNotPing(t, l, NodeIni, "198.51.100.1")
	mustNotPing(t, l, NodeIni, rsp)
	tcpListen(t, l, NodeRsp, 1792)
	if ok, out := tcpConnect(t, l, NodeIni, rsp, 1792); ok || strings.Contains(out, "refused") {
		t.Errorf("tcp from ini should die silently: ok=%v %s", ok, out)
	}
	in := startCapture(t, l, NodeR1, "west0", "udp port 33434")
	back := startCapture(t, l, NodeIni, "wan0", "icmp")
	mustExec(t, l, NodeIni, "sh", "-c", "echo probe | nc -u -w 1 198.51.100.1 33434; true")
	if n, b := in.count(), back.count(); n == 0 || b != 0 {
		t.Errorf("r1's west0 saw %d UDP datagrams from ini (want >0), ini got %d ICMP back (want 0: r1 must not answer)", n, b)
	}
	mustPing(t, l, NodeR1, rsp)
	mustPing(t, l, NodeRsp, "192.0.2.65")
}

func TestProfileMTU1400(t *testing.T) {
	t.Parallel()
	l := ForTest(t, Spec{Profile: "mtu1400", NoGateways: true})
	mustPing(t, l, NodeIni, rsp, "-M", "do", "-s", "1372") // 1400 bytes on the wire
	out := mustNotPing(t, l, NodeIni, rsp, "-M", "do", "-s", "1373")
	if !strings.Contains(out, "mtu = 1400") && !strings.Contains(out, "mtu=1400") {
		t.Errorf("DF ping of 1401 bytes should get ICMP frag-needed (mtu 1400):\n%s", out)
	}
	mustPing(t, l, NodeIni, rsp, "-s", "3000") // without DF r1 fragments
	for _, n := range []string{NodeR1, NodeR2} {
		if o := mustExec(t, l, n, "ip", "-o", "link", "show"); !strings.Contains(o, "mtu 1400") {
			t.Errorf("%s: middle link not at 1400:\n%s", n, o)
		}
	}
}

func TestProfileMTU1300Blackhole(t *testing.T) {
	t.Parallel()
	l := ForTest(t, Spec{Profile: "mtu1300-blackhole", NoGateways: true})
	mustPing(t, l, NodeIni, rsp, "-M", "do", "-s", "1272") // 1300 bytes
	mustPing(t, l, NodeRsp, ini, "-M", "do", "-s", "1272")
	icmpIni := startCapture(t, l, NodeIni, "wan0", "icmp[0] = 3")
	icmpRsp := startCapture(t, l, NodeRsp, "wan0", "icmp[0] = 3")
	for _, dir := range [][2]string{{NodeIni, rsp}, {NodeRsp, ini}} {
		out := mustNotPing(t, l, dir[0], dir[1], "-M", "do", "-s", "1372") // 1400 bytes
		if strings.Contains(out, "mtu") || strings.Contains(out, "Frag needed") {
			t.Errorf("%s: 1400-byte DF ping got an MTU error back:\n%s", dir[0], out)
		}
	}
	if a, b := icmpIni.count(), icmpRsp.count(); a != 0 || b != 0 {
		t.Errorf("ICMP unreachable reached ini %d, rsp %d times (want 0)", a, b)
	}
	if a, b := nftCounter(t, l, NodeR1), nftCounter(t, l, NodeR2); a == 0 || b == 0 {
		t.Errorf("routers generated and dropped frag-needed: r1 %d, r2 %d (want both > 0)", a, b)
	}
}

func TestProfileReverseFragDrop(t *testing.T) {
	t.Parallel()
	l := ForTest(t, Spec{Profile: "reverse-frag-drop", NoGateways: true})
	fwd := startCapture(t, l, NodeRsp, "wan0", "ip[6:2] & 0x3fff != 0 and src "+ini)
	rev := startCapture(t, l, NodeIni, "wan0", "ip[6:2] & 0x3fff != 0 and src "+rsp)
	revIn := startCapture(t, l, NodeR2, "east0", "ip[6:2] & 0x3fff != 0 and src "+rsp)
	// The request's fragments pass ini→rsp; the echo reply's fragments die rsp→ini.
	mustNotPing(t, l, NodeIni, rsp, "-s", "3000")
	f, r, ri := fwd.count(), rev.count(), revIn.count()
	if f == 0 || r != 0 || ri == 0 {
		t.Errorf("fragments ini→rsp seen at rsp %d (want >0); rsp→ini seen at r2 east0 %d (want >0), at ini %d (want 0)", f, ri, r)
	}
	mustPing(t, l, NodeIni, rsp, "-s", "1000")
}

func TestProfileStatefulUDP(t *testing.T) {
	t.Parallel()
	l := ForTest(t, Spec{Profile: "stateful-udp", NoGateways: true})
	for _, k := range []string{"nf_conntrack_udp_timeout", "nf_conntrack_udp_timeout_stream"} {
		if v := strings.TrimSpace(mustExec(t, l, NodeR1, "cat", "/proc/sys/net/netfilter/"+k)); v != "10" {
			t.Errorf("r1 %s = %s, want 10", k, v)
		}
	}
	// ini listens on UDP 4500 (a Go socket opened inside ini through Do).
	var conn *net.UDPConn
	if err := l.Do(NodeIni, func() error {
		var err error
		conn, err = net.ListenUDP("udp4", &net.UDPAddr{IP: net.ParseIP(ini), Port: 4500})
		return err
	}); err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	recv := func() bool {
		buf := make([]byte, 1500)
		_ = conn.SetReadDeadline(time.Now().Add(1500 * time.Millisecond))
		got := false
		for {
			if _, _, err := conn.ReadFromUDP(buf); err != nil {
				return got
			}
			got = true
		}
	}
	fromRsp := func() { mustExec(t, l, NodeRsp, "sh", "-c", "echo rekey | nc -u -w 1 -p 4500 "+ini+" 4500") }
	fromRsp()
	if recv() {
		t.Fatal("UDP from the rsp side passed r1 without state")
	}
	if _, err := conn.WriteToUDP([]byte("keepalive"), &net.UDPAddr{IP: net.ParseIP(rsp), Port: 4500}); err != nil {
		t.Fatal(err)
	}
	time.Sleep(300 * time.Millisecond)
	fromRsp()
	if !recv() {
		t.Fatal("UDP from the rsp side should pass once ini opened the flow")
	}
	time.Sleep(StatefulUDPTimeout + 1500*time.Millisecond)
	fromRsp()
	if recv() {
		t.Fatal("UDP from the rsp side passed after the flow idled past the conntrack timeout")
	}
}

func TestProfileReverseESPReject(t *testing.T) {
	t.Parallel()
	l := ForTest(t, Spec{Profile: "reverse-esp-reject", NoGateways: true})
	// rsp → ini: r1 refuses ESP from the rsp side and tells rsp so; nothing reaches ini.
	rejected(t, l, NodeRsp, NodeIni, 50, 3, 3, "192.0.2.65")
	// ini → rsp: ESP passes, and nothing refuses it.
	atRsp := startCapture(t, l, NodeRsp, "wan0", "ip proto 50 and src "+ini)
	back := startCapture(t, l, NodeIni, "wan0", "icmp[0] = 3 and icmp[1] = 13")
	rawIP(t, l, NodeIni, 50, 3, rsp)
	if a, b := atRsp.count(), back.count(); a < 3 || b != 0 {
		t.Errorf("ini→rsp ESP: rsp saw %d (want ≥ 3), ini got %d admin-prohibited (want 0)", a, b)
	}
	if c := nftCounter(t, l, NodeR1); c < 3 {
		t.Errorf("r1 reject counter %d, want ≥ 3", c)
	}
}

func TestProfileReverseTCP1792Reset(t *testing.T) {
	t.Parallel()
	l := ForTest(t, Spec{Profile: "reverse-tcp1792-reset", NoGateways: true})
	tcpListen(t, l, NodeIni, 1792)
	tcpListen(t, l, NodeRsp, 1792)
	// rsp → ini: the SYN never reaches ini, yet a reset in ini's name comes back to rsp.
	syn := startCapture(t, l, NodeIni, "wan0", "tcp dst port 1792")
	rst := startCapture(t, l, NodeRsp, "wan0", "src "+ini+" and tcp src port 1792 and tcp[tcpflags] & tcp-rst != 0")
	ok, out := tcpConnect(t, l, NodeRsp, ini, 1792)
	if ok || !strings.Contains(out, "refused") {
		t.Errorf("rsp→ini tcp 1792 should be reset: ok=%v %s", ok, out)
	}
	if s, r := syn.count(), rst.count(); s != 0 || r == 0 {
		t.Errorf("ini saw %d SYNs to 1792 (want 0), rsp got %d resets in ini's name (want > 0)", s, r)
	}
	// ini → rsp passes, and the opposite direction's other port too.
	if ok, out := tcpConnect(t, l, NodeIni, rsp, 1792); !ok {
		t.Errorf("ini→rsp tcp 1792 should pass: %s", out)
	}
	tcpListen(t, l, NodeIni, 445)
	if ok, out := tcpConnect(t, l, NodeRsp, ini, 445); !ok {
		t.Errorf("rsp→ini tcp 445 should pass: %s", out)
	}
	if c := nftCounter(t, l, NodeR1); c == 0 {
		t.Errorf("r1 reset counter 0")
	}
}

func TestProfileReverseMTUBlackhole(t *testing.T) {
	t.Parallel()
	l := ForTest(t, Spec{Profile: "reverse-mtu-blackhole", NoGateways: true})
	mustPing(t, l, NodeIni, rsp, "-M", "do", "-s", "1272") // 1300 bytes pass both ways
	mustPing(t, l, NodeRsp, ini, "-M", "do", "-s", "1272")
	// ini → rsp: r1 says so (PMTU discovery works).
	out := mustNotPing(t, l, NodeIni, rsp, "-M", "do", "-s", "1372")
	if !strings.Contains(out, "mtu = 1300") && !strings.Contains(out, "mtu=1300") {
		t.Errorf("ini's 1400-byte DF ping should get ICMP frag-needed (mtu 1300) from r1:\n%s", out)
	}
	// rsp → ini: r2 generates its frag-needed and drops it; rsp hears nothing.
	icmpRsp := startCapture(t, l, NodeRsp, "wan0", "icmp[0] = 3")
	out = mustNotPing(t, l, NodeRsp, ini, "-M", "do", "-s", "1372")
	if strings.Contains(out, "mtu") || strings.Contains(out, "Frag needed") {
		t.Errorf("rsp's 1400-byte DF ping got an MTU error back:\n%s", out)
	}
	if n := icmpRsp.count(); n != 0 {
		t.Errorf("ICMP unreachable reached rsp %d times (want 0)", n)
	}
	if c := nftCounter(t, l, NodeR2); c == 0 {
		t.Errorf("r2 dropped no frag-needed of its own")
	}
}

func TestProfileEchoFilter(t *testing.T) {
	t.Parallel()
	l := ForTest(t, Spec{Profile: "echo-filter", NoGateways: true})
	mustNotPing(t, l, NodeIni, rsp)
	mustNotPing(t, l, NodeRsp, ini)
	// A large echo: r1 drops the first fragment (the ICMP header is in it), the rest pass.
	first := startCapture(t, l, NodeRsp, "wan0", "src "+ini+" and icmp and ip[6:2] & 0x1fff = 0")
	rest := startCapture(t, l, NodeRsp, "wan0", "src "+ini+" and ip[6:2] & 0x1fff != 0")
	mustNotPing(t, l, NodeIni, rsp, "-s", "3000")
	if f, r := first.count(), rest.count(); f != 0 || r == 0 {
		t.Errorf("rsp saw %d first fragments / echoes (want 0) and %d later fragments (want > 0)", f, r)
	}
	// Everything else passes: TCP, ESP, the routers' own addresses are still reachable by TCP.
	tcpListen(t, l, NodeRsp, 445)
	if ok, out := tcpConnect(t, l, NodeIni, rsp, 445); !ok {
		t.Errorf("tcp 445 should pass echo-filter: %s", out)
	}
	esp := startCapture(t, l, NodeRsp, "wan0", "ip proto 50")
	rawIP(t, l, NodeIni, 50, 2, rsp)
	if n := esp.count(); n < 2 {
		t.Errorf("ESP should pass echo-filter: rsp saw %d", n)
	}
	if c := nftCounter(t, l, NodeR1); c < 4 {
		t.Errorf("r1 echo counter %d, want ≥ 4", c)
	}
}

// rawIP sends count raw IP packets of protocol proto (64 bytes of payload, 100 ms apart) from
// node to dst with hping3.
func rawIP(t *testing.T, l *Lab, node string, proto, count int, dst string) {
	t.Helper()
	hping(t, l, node, "-0", "-H", strconv.Itoa(proto), "-c", strconv.Itoa(count), "-i", "u100000", "-d", "64", dst)
}

// hping sends with hping3 (its exit status says only whether replies came: ignored).
func hping(t *testing.T, l *Lab, node string, args ...string) {
	t.Helper()
	out, err := l.Exec(testCtx(t, 20*time.Second), node, append([]string{"hping3", "-q"}, args...)...)
	if err != nil && !strings.Contains(string(out), "packets transmitted") {
		t.Fatalf("hping3 in %s: %v\n%s", node, err, out)
	}
}
