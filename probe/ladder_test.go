package probe

import (
	"net/netip"
	"os"
	"reflect"
	"sort"
	"strconv"
	"strings"
	"testing"

	"golang.org/x/net/dns/dnsmessage"
	"golang.org/x/net/ipv4"
)

// Tests of the ladder, preflight and service probes that need neither root nor a lab.

// procNetUDP is /proc/net/udp as this kernel prints it: charon on 0.0.0.0:500 and :4500,
// a resolver on 127.0.0.53:53, and a socket bound to 198.51.100.10:500.
const procNetUDP = `   sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode ref pointer drops
  251: 00000000:01F4 00000000:0000 07 00000000:00000000 00:00000000 00000000     0        0 31337 2 0000000000000000 0
  330: 3500007F:0035 00000000:0000 07 00000000:00000000 00:00000000 00000000   101        0 2222 2 0000000000000000 0
 1042: 00000000:1194 00000000:0000 07 00000000:00000000 00:00000000 00000000     0        0 31338 2 0000000000000000 0
 1043: 0A6433C6:01F4 00000000:0000 07 00000000:00000000 00:00000000 00000000     0        0 4444 2 0000000000000000 0
 bogus line
`

const procNetUDP6 = `  sl  local_address                         remote_address                        st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode ref pointer drops
  12: 00000000000000000000000000000000:01F4 00000000000000000000000000000000:0000 07 00000000:00000000 00:00000000 00000000     0        0 5555 2 0000000000000000 0
  13: 0000000000000000FFFF00000A6433C6:1194 00000000000000000000000000000000:0000 07 00000000:00000000 00:00000000 00000000     0        0 6666 2 0000000000000000 0
`

func TestParseProcNetUDP(t *testing.T) {
	got, err := ParseProcNetUDP(strings.NewReader(procNetUDP), "udp", PreflightPorts)
	if err != nil {
		t.Fatal(err)
	}
	var s []string
	for _, g := range got {
		s = append(s, g.Addr+" "+g.Proto+" "+strconv.Itoa(g.Port)+" "+strconv.Itoa(int(g.Inode)))
	}
	want := []string{"0.0.0.0:500 udp 500 31337", "0.0.0.0:4500 udp 4500 31338", "198.51.100.10:500 udp 500 4444"}
	if !reflect.DeepEqual(s, want) {
		t.Errorf("udp:\n got %q\nwant %q", s, want)
	}
	got, err = ParseProcNetUDP(strings.NewReader(procNetUDP6), "udp6", PreflightPorts)
	if err != nil {
		t.Fatal(err)
	}
	s = nil
	for _, g := range got {
		s = append(s, g.Addr+" "+strconv.Itoa(int(g.Inode)))
	}
	want = []string{"[::]:500 5555", "198.51.100.10:4500 6666"}
	if !reflect.DeepEqual(s, want) {
		t.Errorf("udp6:\n got %q\nwant %q", s, want)
	}
}

// ruleset is `nft list ruleset` output of a host whose own firewall drops NAT-T and ESP on
// the way out, rejects fragments toward one subnet, and has an input chain that drops
// answers from the IKE port only on one interface.
const ruleset = `table ip filter {
	set blocked {
		type ipv4_addr
		elements = { 192.0.2.1 }
	}

	chain output {
		type filter hook output priority filter; policy accept;
		udp dport 4500 counter packets 3 bytes 300 drop
		ip protocol esp drop comment "no ESP out"
		tcp dport { 80, 443 } accept
		ip daddr 203.0.113.0/24 ip frag-off & 0x1fff != 0 counter reject
		oifname "wan1" udp dport 500 drop
		ip daddr 192.0.2.200 drop
		ip protocol ah reject with icmp type admin-prohibited
	}

	chain input {
		type filter hook input priority filter; policy accept;
		udp sport isakmp drop
	}

	chain fwd {
		type filter hook forward priority filter; policy drop;
		udp dport 500 drop
	}
}
table inet strict {
	chain out {
		type filter hook output priority 10; policy drop;
	}
}
`

func TestFirewallDrops(t *testing.T) {
	target := netip.MustParseAddr("203.0.113.10")
	got := FirewallDrops(ruleset, target, DefaultIDs([]int{443, 1792}))
	type row struct {
		chain, hook, rule string
		probes            []string
		certain           bool
	}
	var rows []row
	for _, r := range got {
		sort.Strings(r.Probes)
		rows = append(rows, row{r.Table + "/" + r.Chain, r.Hook, r.Rule, r.Probes, r.Certain})
	}
	all := idStrings(DefaultIDs([]int{443, 1792}))
	want := []row{
		{"ip filter/output", "output", "udp dport 4500 counter packets 3 bytes 300 drop", []string{"natt", "natt-frag"}, true},
		{"ip filter/output", "output", `ip protocol esp drop comment "no ESP out"`, []string{"esp", "esp-frag"}, true},
		{"ip filter/output", "output", "ip daddr 203.0.113.0/24 ip frag-off & 0x1fff != 0 counter reject", []string{"ah-frag", "esp-frag", "icmp-large", "ike-frag", "natt-frag"}, true},
		{"ip filter/output", "output", `oifname "wan1" udp dport 500 drop`, []string{"ike", "ike-frag"}, false},
		{"ip filter/output", "output", "ip protocol ah reject with icmp type admin-prohibited", []string{"ah", "ah-frag"}, true},
		{"ip filter/input", "input", "udp sport isakmp drop", []string{"ike", "ike-frag"}, true},
		{"inet strict/out", "output", "policy drop", all, false},
	}
	for i := range want {
		sort.Strings(want[i].probes)
	}
	if !reflect.DeepEqual(rows, want) {
		t.Errorf("firewall drops:\n got %+v\nwant %+v", rows, want)
	}
	if d := FirewallDrops("table ip nat {\n}\n", target, DefaultIDs(nil)); len(d) != 0 {
		t.Errorf("an empty ruleset drops nothing, got %+v", d)
	}
}

func TestProcHexAddr(t *testing.T) {
	for in, want := range map[string]string{
		"0100007F":                         "127.0.0.1",
		"0A6433C6":                         "198.51.100.10",
		"00000000000000000000000001000000": "::1",
		"0000000000000000FFFF00000A6433C6": "198.51.100.10",
	} {
		a, ok := procHexAddr(in)
		if !ok || a.String() != want {
			t.Errorf("%s: %v %v, want %s", in, a, ok, want)
		}
	}
	for _, bad := range []string{"", "0100007", "zz00007F"} {
		if _, ok := procHexAddr(bad); ok {
			t.Errorf("%q decoded", bad)
		}
	}
}

func TestResolvConfServer(t *testing.T) {
	dir := t.TempDir()
	p := dir + "/resolv.conf"
	mustWrite(t, p, "# comment\nsearch lab.example\nnameserver fe80::1%eth0\nnameserver 192.0.2.53\nnameserver 192.0.2.54\n")
	a, err := resolvConfServer(p)
	if err != nil || a.String() != "192.0.2.53" {
		t.Errorf("got %v %v, want 192.0.2.53", a, err)
	}
	mustWrite(t, p, "search x\n")
	if _, err := resolvConfServer(p); err == nil {
		t.Error("no nameserver: want an error")
	}
}

func TestParseLadderICMP(t *testing.T) {
	gw := netip.MustParseAddr("198.51.100.1")
	tgt := netip.MustParseAddr("203.0.113.10")
	echo := []byte{0, 0, 0, 0, 0x12, 0x34, 0, 1, 'x'}
	if a, ok := parseLadderICMP(echo, tgt, tgt); !ok || a.kind != "echo-reply" || a.echoID != 0x1234 {
		t.Errorf("echo reply: %+v %v", a, ok)
	}
	if _, ok := parseLadderICMP(echo, gw, tgt); ok {
		t.Error("an echo reply from another address must not count for the target")
	}
	// host unreachable from the gateway, quoting a UDP packet 198.51.100.10:40000 → 203.0.113.10:33434
	inner := []byte{0x45, 0, 0, 28, 0, 0, 0, 0, 64, 17, 0, 0, 198, 51, 100, 10, 203, 0, 113, 10, 0x9c, 0x40, 0x82, 0x9a, 0, 8, 0, 0}
	un := append([]byte{3, 1, 0, 0, 0, 0, 0, 0}, inner...)
	a, ok := parseLadderICMP(un, gw, tgt)
	if !ok || a.kind != "host-unreachable" || a.from != gw || a.proto != ProtoUDP || a.sport != 40000 || a.dport != 33434 {
		t.Errorf("host unreachable: %+v %v", a, ok)
	}
	if _, ok := parseLadderICMP(un, gw, gw); ok {
		t.Error("an error quoting a packet to another address must not count")
	}
	if _, ok := parseLadderICMP(un[:20], gw, tgt); ok {
		t.Error("a truncated quote must be refused")
	}
}

func FuzzParseLadderICMP(f *testing.F) {
	inner := []byte{0x45, 0, 0, 28, 0, 0, 0, 0, 64, 17, 0, 0, 198, 51, 100, 10, 203, 0, 113, 10, 0x9c, 0x40, 0x82, 0x9a, 0, 8, 0, 0}
	f.Add(append([]byte{3, 3, 0, 0, 0, 0, 0, 0}, inner...))
	f.Add([]byte{0, 0, 0, 0, 0x12, 0x34, 0, 1})
	f.Add([]byte{3, 1, 0, 0, 0, 0, 0, 0, 0x4f})
	tgt := netip.MustParseAddr("203.0.113.10")
	f.Fuzz(func(t *testing.T, b []byte) {
		a, ok := parseLadderICMP(b, tgt, tgt)
		if ok && a.kind == "" {
			t.Fatalf("accepted without a kind: %+v", a)
		}
	})
}

func FuzzParseRST(f *testing.F) {
	f.Add([]byte{0x07, 0x00, 0x9c, 0x40, 0, 0, 0, 0, 0, 0, 0, 0, 0x50, 0x14, 0, 0, 0, 0, 0, 0})
	f.Add([]byte{0x07, 0x00})
	h := &ipv4.Header{Version: 4, Len: 20, TTL: 63, Protocol: 6, Src: netip.MustParseAddr("203.0.113.10").AsSlice(), Dst: netip.MustParseAddr("198.51.100.10").AsSlice()}
	f.Fuzz(func(t *testing.T, b []byte) {
		r, ok := parseRST(h, b)
		if ok && (len(b) < 14 || b[13]&4 == 0 || r.ttl != 63) {
			t.Fatalf("accepted %x as %+v", b, r)
		}
	})
}

func TestAlertName(t *testing.T) {
	for code, want := range map[uint8]string{48: "unknown_ca", 42: "bad_certificate", 40: "handshake_failure", 45: "certificate_expired", 116: "certificate_required", 201: "alert_201"} {
		if got := AlertName(code); got != want {
			t.Errorf("%d: %s, want %s", code, got, want)
		}
	}
}

func TestProxyFor(t *testing.T) {
	tgt := netip.MustParseAddr("203.0.113.10")
	t.Setenv("HTTPS_PROXY", "")
	t.Setenv("https_proxy", "")
	t.Setenv("NO_PROXY", "")
	t.Setenv("no_proxy", "")
	if u, err := ProxyFor("", tgt, 443); u != nil || err != nil {
		t.Errorf("no proxy configured: %v %v", u, err)
	}
	u, err := ProxyFor("198.51.100.1:8888", tgt, 443)
	if err != nil || u.Host != "198.51.100.1:8888" {
		t.Errorf("bare host:port: %v %v", u, err)
	}
	if _, err := ProxyFor("socks5://198.51.100.1:1080", tgt, 443); err == nil {
		t.Error("socks5: want an error")
	}
	t.Setenv("HTTPS_PROXY", "http://198.51.100.1:3128")
	if u, _ := ProxyFor("", tgt, 443); u == nil || u.Host != "198.51.100.1:3128" {
		t.Errorf("HTTPS_PROXY: %v", u)
	}
	t.Setenv("NO_PROXY", "192.0.2.1, 203.0.113.0/24")
	if u, _ := ProxyFor("", tgt, 443); u != nil {
		t.Errorf("NO_PROXY lists the target's subnet, got proxy %v", u)
	}
	if u, _ := ProxyFor("http://198.51.100.1:8888", tgt, 443); u == nil {
		t.Error("an explicit --proxy wins over NO_PROXY")
	}
}

func TestTLSIDs(t *testing.T) {
	if p, ok := TLS(1792).TLSPort(); !ok || p != 1792 {
		t.Errorf("tls:1792: %d %v", p, ok)
	}
	for _, bad := range []ID{"tls:", "tls:0", "tls:70000", "tcp:443", "tls:x"} {
		if _, ok := bad.TLSPort(); ok {
			t.Errorf("%s parsed as a tls id", bad)
		}
	}
	if p, ok := probePacket(TLS(443)); !ok || p.proto != ProtoTCP || p.port != 443 {
		t.Errorf("tls:443 sends %+v", p)
	}
}

func mustWrite(t *testing.T, path, s string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(s), 0o644); err != nil {
		t.Fatal(err)
	}
}

func TestParseAAnswer(t *testing.T) {
	n := dnsmessage.MustNewName("hsm.lab.example.")
	m := dnsmessage.Message{Header: dnsmessage.Header{ID: 0x4242, Response: true},
		Questions: []dnsmessage.Question{{Name: n, Type: dnsmessage.TypeA, Class: dnsmessage.ClassINET}},
		Answers: []dnsmessage.Resource{
			{Header: dnsmessage.ResourceHeader{Name: n, Type: dnsmessage.TypeCNAME, Class: dnsmessage.ClassINET}, Body: &dnsmessage.CNAMEResource{CNAME: n}},
			{Header: dnsmessage.ResourceHeader{Name: n, Type: dnsmessage.TypeA, Class: dnsmessage.ClassINET}, Body: &dnsmessage.AResource{A: [4]byte{203, 0, 113, 10}}},
		}}
	b, err := m.Pack()
	if err != nil {
		t.Fatal(err)
	}
	a, rc, ok := parseAAnswer(b, 0x4242)
	if !ok || rc != dnsmessage.RCodeSuccess || a.String() != "203.0.113.10" {
		t.Errorf("got %v %v %v", a, rc, ok)
	}
	if _, _, ok := parseAAnswer(b, 0x4243); ok {
		t.Error("another id must not match")
	}
	m.Answers, m.RCode = nil, dnsmessage.RCodeNameError
	b, _ = m.Pack()
	if a, rc, ok := parseAAnswer(b, 0x4242); !ok || rc != dnsmessage.RCodeNameError || a.IsValid() {
		t.Errorf("NXDOMAIN: %v %v %v", a, rc, ok)
	}
}

func FuzzParseAAnswer(f *testing.F) {
	n := dnsmessage.MustNewName("hsm.lab.example.")
	m := dnsmessage.Message{Header: dnsmessage.Header{ID: 7, Response: true},
		Questions: []dnsmessage.Question{{Name: n, Type: dnsmessage.TypeA, Class: dnsmessage.ClassINET}},
		Answers: []dnsmessage.Resource{{Header: dnsmessage.ResourceHeader{Name: n, Type: dnsmessage.TypeA, Class: dnsmessage.ClassINET},
			Body: &dnsmessage.AResource{A: [4]byte{203, 0, 113, 10}}}}}
	b, _ := m.Pack()
	f.Add(b)
	f.Add(b[:20])
	f.Fuzz(func(t *testing.T, b []byte) {
		a, _, ok := parseAAnswer(b, 7)
		if !ok && a.IsValid() {
			t.Fatal("an address from a message that did not parse")
		}
	})
}

// TestFirewallDropsArriving: the agent's host judged as the receiver. Seen on a scratch path:
// the far host's own input rule "udp dport 500 drop" let every IKE probe reach the agent's
// capture (which sees packets before the input chain) while a daemon there got none.
func TestFirewallDropsArriving(t *testing.T) {
	from := netip.MustParseAddr("198.51.100.130")
	const far = `table inet m {
	chain min {
		type filter hook input priority filter; policy accept;
		ct state established,related accept
		udp dport 500 counter packets 1 bytes 31 drop
		udp sport 4500 drop
		ip saddr 198.51.100.128/29 ip protocol esp drop
		ip saddr 192.0.2.0/24 ip protocol ah drop
		icmp type echo-request drop
	}
	chain mout {
		type filter hook output priority filter; policy accept;
		udp dport 4500 drop
	}
}
`
	got := map[string][]string{}
	for _, r := range FirewallDropsArriving(far, from, DefaultIDs(nil)) {
		sort.Strings(r.Probes)
		if r.Certain {
			got[r.Rule] = r.Probes
		}
	}
	want := map[string][]string{
		"udp dport 500 counter packets 1 bytes 31 drop":   {"ike", "ike-frag"},
		"ip saddr 198.51.100.128/29 ip protocol esp drop": {"esp", "esp-frag"},
		"icmp type echo-request drop":                     {"icmp-large", "pmtu"},
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("arriving drops:\n got %v\nwant %v", got, want)
	}
}
