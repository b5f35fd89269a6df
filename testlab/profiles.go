package testlab

import (
	"context"
	"fmt"
	"sort"
	"strings"
	"time"

	"github.com/vishvananda/netns"
)

// Profile is a fault a router in the lab carries: nftables rulesets (applied with `nft -f -`
// inside the router), an r1—r2 link MTU, and per-namespace sysctls.
type Profile struct {
	Name    string
	Summary string            // one line: what it breaks
	Rules   map[string]string // router node → nftables ruleset
	// MiddleMTU is the MTU of both ends of the r1—r2 link; 0 means 1500.
	MiddleMTU int
	// Sysctls are /proc/sys keys per node, written after Rules (conntrack exists then).
	Sysctls map[string][][2]string
	// NATPublic, when set, is the address a router masquerades ini's traffic to: rsp's
	// strongSwan then accepts ini from it as well (its remote_addrs).
	NATPublic string
}

// fragChain drops IPv4 fragments in a prerouting chain at priority -450, i.e. before
// conntrack's defragmentation at -400 reassembles them out of sight. cond restricts it
// (e.g. to one ingress interface). nonFirstOnly keeps first fragments.
func fragChain(cond string, nonFirstOnly bool) string {
	var b strings.Builder
	b.WriteString("table ip ipsecpath {\n\tchain ipl_frag {\n\t\ttype filter hook prerouting priority -450; policy accept;\n")
	fmt.Fprintf(&b, "\t\t%sip frag-off & 0x1fff != 0 counter drop comment \"non-first fragments\"\n", cond)
	if !nonFirstOnly {
		fmt.Fprintf(&b, "\t\t%sip frag-off & 0x2000 != 0 counter drop comment \"first fragments (MF set)\"\n", cond)
	}
	b.WriteString("\t}\n}\n")
	return b.String()
}

// fwdChain wraps forward-hook rules (after defragmentation: they see whole datagrams).
func fwdChain(rules ...string) string {
	return "table ip ipsecpath {\n\tchain ipl_fwd {\n\t\ttype filter hook forward priority 0; policy accept;\n\t\t" +
		strings.Join(rules, "\n\t\t") + "\n\t}\n}\n"
}

// noFragNeeded drops the ICMP "fragmentation needed" a router itself sends (output hook).
const noFragNeeded = "table ip ipsecpath {\n\tchain ipl_out {\n\t\ttype filter hook output priority 0; policy accept;\n" +
	"\t\ticmp type destination-unreachable icmp code frag-needed counter drop comment \"PMTUD black hole\"\n\t}\n}\n"

// noFragNeededTo drops the ICMP "fragmentation needed" a router itself sends out of one
// interface only: a black hole in one direction.
func noFragNeededTo(oif string) string {
	return "table ip ipsecpath {\n\tchain ipl_out {\n\t\ttype filter hook output priority 0; policy accept;\n" +
		"\t\toifname \"" + oif + "\" icmp type destination-unreachable icmp code frag-needed counter drop comment \"PMTUD black hole, one way\"\n\t}\n}\n"
}

// echoChain drops ICMP echo requests in a prerouting chain at priority -450, before any
// defragmentation: like an ACL that matches the ICMP type, it sees it only in a first
// fragment, so a large echo's later fragments still pass.
const echoChain = "table ip ipsecpath {\n\tchain ipl_echo {\n\t\ttype filter hook prerouting priority -450; policy accept;\n" +
	"\t\ticmp type echo-request counter drop comment \"ping filter\"\n\t}\n}\n"

// StatefulUDPTimeout is the UDP conntrack timeout (both unreplied and assured) of the
// stateful-udp profile: an idle IPsec flow is forgotten after it.
const StatefulUDPTimeout = 10 * time.Second

// NATPublic is the address r1 masquerades ini's traffic to in the nat profiles: its east
// interface's.
const NATPublic = "192.0.2.65"

// NATUDPTimeout is the nat profiles' UDP mapping timer (conntrack, unreplied and assured
// alike): set, not left to the kernel's defaults (30 s and 120 s), so 'ipsecpath stateful'
// has one timer to find; strongSwan's NAT-T keepalive (20 s) keeps the tunnel's mapping.
const NATUDPTimeout = 30 * time.Second

// natSysctls sets NATUDPTimeout on r1.
var natSysctls = map[string][][2]string{NodeR1: {
	{"net/netfilter/nf_conntrack_udp_timeout", fmt.Sprint(int(NATUDPTimeout.Seconds()))},
	{"net/netfilter/nf_conntrack_udp_timeout_stream", fmt.Sprint(int(NATUDPTimeout.Seconds()))},
}}

// natRules makes r1 a NAT for ini: what ini sends out of r1's east interface leaves from
// r1's address (masquerade, ports kept where free, as Linux does), and like a NAPT without
// "IPsec passthrough" it forwards only what it can translate: TCP, UDP and ICMP. Raw ESP
// or AH from ini is dropped; toward the public address they find no mapping. Nothing from
// the east side opens a flow to ini's private address: only replies on a mapping pass.
const natRules = "table ip ipsecpath {\n\tchain ipl_nat {\n\t\ttype nat hook postrouting priority srcnat; policy accept;\n" +
	"\t\toifname \"east0\" ip saddr 198.51.100.0/24 counter masquerade comment \"NAT: ini leaves as 192.0.2.65\"\n\t}\n" +
	"\tchain ipl_fwd {\n\t\ttype filter hook forward priority 0; policy accept;\n" +
	"\t\tiifname \"west0\" oifname \"east0\" ip protocol != { tcp, udp, icmp } counter drop comment \"NAPT: nothing to translate\"\n" +
	"\t\tiifname \"east0\" oifname \"west0\" ct state new counter drop comment \"NAT: no mapping, no way in\"\n\t}\n}\n"

var profiles = []Profile{
	{Name: "clean", Summary: "nothing broken: every protocol, size and direction passes"},
	{Name: "frag-drop", Summary: "r2 drops every IPv4 fragment, both directions (large IKE without IKE fragmentation dies)",
		Rules: map[string]string{NodeR2: fragChain("", false)}},
	{Name: "nonfirst-frag-drop", Summary: "r1 drops non-first IPv4 fragments (first fragments pass, the datagram never completes)",
		Rules: map[string]string{NodeR1: fragChain("", true)}},
	{Name: "esp-drop", Summary: "r1 silently drops IP protocol 50 (ESP); NAT-T ESP in UDP 4500 passes",
		Rules: map[string]string{NodeR1: fwdChain(`ip protocol esp counter drop`)}},
	{Name: "ah-reject", Summary: "r2 rejects IP protocol 51 (AH) with ICMP admin-prohibited",
		Rules: map[string]string{NodeR2: fwdChain(`ip protocol ah counter reject with icmp type admin-prohibited`)}},
	{Name: "udp500-drop", Summary: "r1 drops UDP port 500 (IKE): no IKE_SA can start",
		Rules: map[string]string{NodeR1: fwdChain(`udp dport 500 counter drop`)}},
	{Name: "udp4500-drop", Summary: "r2 drops UDP port 4500 (NAT-T): IKE_SA_INIT passes, IKE_AUTH and UDP-encapsulated ESP die",
		Rules: map[string]string{NodeR2: fwdChain(`udp dport 4500 counter drop`)}},
	{Name: "tcp445-reset", Summary: "r2 answers TCP port 445 with a TCP reset on the target's behalf",
		Rules: map[string]string{NodeR2: fwdChain(`tcp dport 445 counter reject with tcp reset`)}},
	{Name: "tcp1792-drop", Summary: "r1 silently drops TCP port 1792",
		Rules: map[string]string{NodeR1: fwdChain(`tcp dport 1792 counter drop`)}},
	{Name: "tcp1792-reset", Summary: "r2 answers TCP port 1792 (the HSM's NTLS) with a TCP reset on the target's behalf",
		Rules: map[string]string{NodeR2: fwdChain(`tcp dport 1792 counter reject with tcp reset`)}},
	{Name: "mtu1400", Summary: "r1—r2 link MTU 1400; ICMP fragmentation-needed comes back (path MTU discovery works)",
		MiddleMTU: 1400},
	{Name: "mtu1300-blackhole", Summary: "r1—r2 link MTU 1300 and the routers' ICMP fragmentation-needed dropped (PMTUD black hole)",
		MiddleMTU: 1300, Rules: map[string]string{NodeR1: noFragNeeded, NodeR2: noFragNeeded}},
	{Name: "reverse-frag-drop", Summary: "r2 drops IPv4 fragments coming from the rsp side only (rsp→ini); ini→rsp passes",
		Rules: map[string]string{NodeR2: fragChain(`iifname "east0" `, false)}},
	{Name: "stateful-udp", Summary: "r1 lets UDP from the rsp side through only for flows ini opened, forgotten after 10 s idle",
		Rules: map[string]string{NodeR1: fwdChain(
			`iifname "east0" meta l4proto udp ct state established counter accept`,
			`iifname "east0" meta l4proto udp counter drop comment "no state: new UDP from the rsp side"`)},
		Sysctls: map[string][][2]string{NodeR1: {
			{"net/netfilter/nf_conntrack_udp_timeout", fmt.Sprint(int(StatefulUDPTimeout.Seconds()))},
			{"net/netfilter/nf_conntrack_udp_timeout_stream", fmt.Sprint(int(StatefulUDPTimeout.Seconds()))},
		}}},
	{Name: "reverse-esp-reject", Summary: "r1 rejects IP protocol 50 (ESP) coming from the rsp side with ICMP admin-prohibited; ini→rsp passes",
		Rules: map[string]string{NodeR1: fwdChain(`iifname "east0" ip protocol esp counter reject with icmp type admin-prohibited`)}},
	{Name: "reverse-tcp1792-reset", Summary: "r1 answers TCP port 1792 from the rsp side with a TCP reset in ini's name; ini→rsp passes",
		Rules: map[string]string{NodeR1: fwdChain(`iifname "east0" tcp dport 1792 counter reject with tcp reset`)}},
	{Name: "reverse-mtu-blackhole", Summary: "r1—r2 link MTU 1300; r1 signals it toward ini, r2 drops its fragmentation-needed toward rsp (PMTUD black hole rsp→ini only)",
		MiddleMTU: 1300, Rules: map[string]string{NodeR2: noFragNeededTo("east0")}},
	{Name: "echo-filter", Summary: "r1 drops ICMP echo requests, both directions (first fragments only: the ICMP type is in them); everything else passes",
		Rules: map[string]string{NodeR1: echoChain}},
	{Name: "underlay-dead", Summary: "r1 (ini's default gateway) drops everything from ini, itself included: the underlay is dead, not IPsec",
		Rules: map[string]string{NodeR1: underlayDead}},
	{Name: "nat", Summary: "r1 masquerades ini as 192.0.2.65 (TCP, UDP and ICMP; raw ESP and AH cannot cross); strongSwan runs NAT-T on UDP 4500",
		Rules: map[string]string{NodeR1: natRules}, NATPublic: NATPublic, Sysctls: natSysctls},
	{Name: "nat-frag-drop", Summary: "r1 masquerades ini as 192.0.2.65 and drops non-first IPv4 fragments both ways, as some home and carrier NATs do",
		Rules: map[string]string{NodeR1: natRules + fragChain("", true)}, NATPublic: NATPublic, Sysctls: natSysctls},
}

// underlayDead drops every packet that arrives on r1's ini-side interface, whether for r1
// itself (input: echo, TCP, UDP to 198.51.100.1) or for beyond (forward), at a priority
// below conntrack's defragmentation so fragments die too.
const underlayDead = "table ip ipsecpath {\n\tchain ipl_dead {\n\t\ttype filter hook prerouting priority -450; policy accept;\n" +
	"\t\tiifname \"west0\" counter drop comment \"underlay dead: nothing from ini\"\n\t}\n}\n"

// Profiles returns the fault profiles, in a fixed order.
func Profiles() []Profile {
	out := make([]Profile, len(profiles))
	copy(out, profiles)
	return out
}

// ProfileNames returns the profile names, in Profiles' order.
func ProfileNames() []string {
	var out []string
	for _, p := range profiles {
		out = append(out, p.Name)
	}
	return out
}

// ProfileByName finds a profile.
func ProfileByName(name string) (Profile, bool) {
	for _, p := range profiles {
		if p.Name == name {
			return p, true
		}
	}
	return Profile{}, false
}

// routers returns the nodes p touches, sorted.
func (p Profile) routers() []string {
	set := map[string]bool{}
	for n := range p.Rules {
		set[n] = true
	}
	for n := range p.Sysctls {
		set[n] = true
	}
	var out []string
	for n := range set {
		out = append(out, n)
	}
	sort.Strings(out)
	return out
}

func (l *Lab) applyProfile(ctx context.Context, handles map[string]netns.NsHandle) error {
	for _, n := range l.profile.routers() {
		if r, ok := l.profile.Rules[n]; ok {
			if out, err := l.ExecInput(ctx, n, strings.NewReader(r), "nft", "-f", "-"); err != nil {
				return fmt.Errorf("testlab: profile %s: nft in %s: %w: %s", l.profile.Name, n, err, strings.TrimSpace(string(out)))
			}
		}
		if kv, ok := l.profile.Sysctls[n]; ok {
			if err := writeSysctls(handles[n], kv); err != nil {
				return fmt.Errorf("testlab: profile %s in %s: %w", l.profile.Name, n, err)
			}
		}
	}
	return nil
}

// ShowTimeout bounds Ruleset's calls into the routers.
const ShowTimeout = 10 * time.Second

// Ruleset is what `lab show` prints: per router the live nftables ruleset and every link's
// MTU, read from the running namespaces.
func (l *Lab) Ruleset() string {
	ctx, cancel := context.WithTimeout(context.Background(), ShowTimeout)
	defer cancel()
	var b strings.Builder
	fmt.Fprintf(&b, "lab %s, profile %s: %s\n", l.name, l.profile.Name, l.profile.Summary)
	for _, n := range []string{NodeR1, NodeR2} {
		fmt.Fprintf(&b, "\n== %s (%s)\n", n, l.Namespace(n))
		out, err := l.Exec(ctx, n, "ip", "-o", "link", "show")
		if err != nil {
			fmt.Fprintf(&b, "links: %v\n", err)
		}
		for _, line := range strings.Split(string(out), "\n") {
			f := strings.Fields(line)
			for i := 0; i+1 < len(f); i++ {
				if f[i] == "mtu" && len(f) > 1 {
					fmt.Fprintf(&b, "link %s mtu %s\n", strings.TrimSuffix(strings.SplitN(f[1], "@", 2)[0], ":"), f[i+1])
				}
			}
		}
		for _, kv := range l.profile.Sysctls[n] {
			fmt.Fprintf(&b, "sysctl %s = %s\n", strings.ReplaceAll(kv[0], "/", "."), kv[1])
		}
		out, err = l.Exec(ctx, n, "nft", "list", "ruleset")
		switch {
		case err != nil:
			fmt.Fprintf(&b, "nft: %v\n", err)
		case len(strings.TrimSpace(string(out))) == 0:
			b.WriteString("nft: no rules\n")
		default:
			b.Write(out)
		}
	}
	return b.String()
}
