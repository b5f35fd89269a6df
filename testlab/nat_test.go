package testlab

import (
	"context"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"
)

// The nat profiles, proven with ping, hping3, tcpdump, conntrack and the nft counters, and
// strongSwan establishing through the NAT with NAT-T.

// nftRuleCounter returns the packet counter of the rule in node's ipsecpath table whose
// comment contains comment.
func nftRuleCounter(t *testing.T, l *Lab, node, comment string) int {
	t.Helper()
	out := mustExec(t, l, node, "nft", "list", "table", "ip", "ipsecpath")
	for _, line := range strings.Split(out, "\n") {
		if !strings.Contains(line, comment) {
			continue
		}
		f := strings.Fields(line)
		for i := 0; i+1 < len(f); i++ {
			if f[i] == "packets" {
				n, err := strconv.Atoi(f[i+1])
				if err != nil {
					t.Fatalf("%s: counter %q: %v", node, line, err)
				}
				return n
			}
		}
	}
	t.Fatalf("%s: no rule with comment %q in:\n%s", node, comment, out)
	return 0
}

// proveNAT checks what both nat profiles share: ini leaves r1 as NATPublic, replies come
// back through the mapping, nothing from outside reaches ini's own address, and raw ESP/AH
// from ini is dropped at the NAT.
func proveNAT(t *testing.T, l *Lab) {
	for _, k := range []string{"nf_conntrack_udp_timeout", "nf_conntrack_udp_timeout_stream"} {
		if v := strings.TrimSpace(mustExec(t, l, NodeR1, "cat", "/proc/sys/net/netfilter/"+k)); v != strconv.Itoa(int(NATUDPTimeout.Seconds())) {
			t.Errorf("r1 %s = %s, want %v", k, v, NATUDPTimeout)
		}
	}
	atRsp := startCapture(t, l, NodeRsp, "wan0", "icmp[0] = 8")
	mustPing(t, l, NodeIni, rsp)
	pk := atRsp.stop()
	if len(pk) == 0 || !strings.Contains(pk[0], NATPublic+" > "+rsp) || strings.Contains(strings.Join(pk, "\n"), ini+" >") {
		t.Errorf("rsp should see ini's echo requests from %s only: %q", NATPublic, pk)
	}
	ct := mustExec(t, l, NodeR1, "conntrack", "-L", "-p", "icmp", "-s", ini)
	if !strings.Contains(ct, "dst="+NATPublic) {
		t.Errorf("r1's conntrack has no mapping of ini to %s:\n%s", NATPublic, ct)
	}
	// From outside: ini's own address is unreachable, the public address is r1's.
	mustNotPing(t, l, NodeRsp, ini)
	if c := nftRuleCounter(t, l, NodeR1, "no way in"); c < 2 {
		t.Errorf("r1 dropped %d new flows from outside, want ≥ 2", c)
	}
	atIni := startCapture(t, l, NodeIni, "wan0", "icmp[0] = 8")
	mustPing(t, l, NodeRsp, NATPublic)
	if n := atIni.count(); n != 0 {
		t.Errorf("an echo to the NAT's public address reached ini %d times: r1 should answer it", n)
	}
	// Raw ESP and AH from ini: dropped at the NAT, none reaches rsp.
	esp := startCapture(t, l, NodeRsp, "wan0", "ip proto 50 or ip proto 51")
	rawIP(t, l, NodeIni, 50, 3, rsp)
	rawIP(t, l, NodeIni, 51, 3, rsp)
	if n := esp.count(); n != 0 {
		t.Errorf("rsp received %d raw ESP/AH packets through the NAT", n)
	}
	if c := nftRuleCounter(t, l, NodeR1, "nothing to translate"); c < 6 {
		t.Errorf("r1 dropped %d raw ESP/AH packets, want ≥ 6", c)
	}
}

func TestProfileNAT(t *testing.T) {
	t.Parallel()
	l := ForTest(t, Spec{Profile: "nat", NoGateways: true})
	proveNAT(t, l)
	// UDP 4500 both ways through the mapping, fragmented too: ini sends 3000 bytes from
	// 4500, rsp sees them from the public address, and answers to the public address.
	at := startCapture(t, l, NodeRsp, "wan0", "udp and src "+NATPublic+" and ip[6:2] & 0x1fff = 0")
	frags := startCapture(t, l, NodeRsp, "wan0", "src "+NATPublic+" and ip[6:2] & 0x1fff != 0")
	udp4500(t, l, NodeIni, 3000, rsp)
	if a, f := at.count(), frags.count(); a < 2 || f < 2 {
		t.Errorf("large UDP 4500 through the NAT: rsp saw %d first and %d later fragments from %s, want ≥ 2 each", a, f, NATPublic)
	}
	back := startCapture(t, l, NodeIni, "wan0", "udp dst port 4500 and src "+rsp)
	udp4500(t, l, NodeRsp, 3000, NATPublic)
	if n := back.count(); n < 2 {
		t.Errorf("ini saw %d of rsp's large UDP 4500 datagrams sent to the mapping (want ≥ 2 packets)", n)
	}
}

func TestProfileNATFragDrop(t *testing.T) {
	t.Parallel()
	l := ForTest(t, Spec{Profile: "nat-frag-drop", NoGateways: true})
	proveNAT(t, l)
	mustPing(t, l, NodeIni, rsp, "-s", "1000")
	mustNotPing(t, l, NodeIni, rsp, "-s", "3000")
	// Small UDP 4500 passes the NAT, large does not (its non-first fragments die at r1).
	small := startCapture(t, l, NodeRsp, "wan0", "udp port 4500 and src "+NATPublic)
	udp4500(t, l, NodeIni, 200, rsp)
	if n := small.count(); n < 2 {
		t.Errorf("small UDP 4500 through the NAT: rsp saw %d, want ≥ 2", n)
	}
	large := startCapture(t, l, NodeRsp, "wan0", "src "+NATPublic+" and (udp port 4500 or ip[6:2] & 0x1fff != 0)")
	udp4500(t, l, NodeIni, 3000, rsp)
	if n := large.count(); n != 0 {
		t.Errorf("large UDP 4500 crossed a NAT that drops non-first fragments: rsp saw %d packets", n)
	}
	if c := nftRuleCounter(t, l, NodeR1, "non-first fragments"); c < 4 {
		t.Errorf("r1 dropped %d non-first fragments, want ≥ 4", c)
	}
}

// TestNATTunnel: strongSwan establishes through the NAT with NAT-T: rsp sees ini at the
// public address, both ends float to UDP 4500 and detect the NAT, and lan-a reaches lan-b.
func TestNATTunnel(t *testing.T) {
	t.Parallel()
	l := ForTest(t, Spec{Profile: "nat"})
	if !l.TunnelUp() {
		t.Fatalf("IKEv2 tunnel through the NAT did not come up: %s", l.TunnelErr())
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	out, err := l.Swanctl(ctx, NodeRsp, "--list-sas")
	if err != nil {
		t.Fatal(err)
	}
	sas := string(out)
	if !strings.Contains(sas, NATPublic+"[4500]") || !strings.Contains(sas, "ESTABLISHED") {
		t.Errorf("rsp should list an IKE_SA with ini at %s[4500]:\n%s", NATPublic, sas)
	}
	mustPing(t, l, NodeLanA, l.Addr(NodeLanB).String())
	log, err := os.ReadFile(l.CharonLog(NodeIni))
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(log), "local host is behind NAT, sending keep alives") {
		t.Errorf("ini's charon did not detect the NAT in front of it")
	}
	// IKEv1 Main Mode (PSK, peers found by address) through the NAT too.
	if out, err := l.Swanctl(ctx, NodeIni, "--initiate", "--ike", ConnIKEv1, "--child", ChildIKEv1, "--timeout", "15"); err != nil {
		t.Errorf("IKEv1 through the NAT: %v\n%s", err, lastLines(string(out), 5))
	}
	ct := mustExec(t, l, NodeR1, "conntrack", "-L", "-p", "udp", "--orig-port-dst", "4500")
	if !strings.Contains(ct, "dst="+NATPublic) {
		t.Errorf("r1 has no UDP 4500 mapping of ini:\n%s", ct)
	}
}

// udp4500 sends two UDP datagrams of size bytes from port 4500 to port 4500 of dst, 200 ms
// apart, from node with hping3 (larger than the MTU, they leave in fragments).
func udp4500(t *testing.T, l *Lab, node string, size int, dst string) {
	t.Helper()
	hping(t, l, node, "-2", "-s", "4500", "-k", "-p", "4500", "-c", "2", "-i", "u200000", "-d", strconv.Itoa(size), dst)
}
