package probe

import (
	"net/netip"
	"strconv"
	"strings"

	"github.com/ipsecpath/ipsecpath/report"
)

// wirePacket is what a probe puts on the wire, as far as a local firewall rule can tell.
type wirePacket struct {
	proto uint8
	port  int  // UDP/TCP destination port (source port of the answer)
	frag  bool // sent as IP fragments
	echo  bool // ICMP echo request
}

// probePacket is the packet a probe id sends.
func probePacket(id ID) (wirePacket, bool) {
	if p, ok := id.TCPPort(); ok {
		return wirePacket{proto: ProtoTCP, port: p}, true
	}
	if p, ok := tlsPort(id); ok {
		return wirePacket{proto: ProtoTCP, port: p}, true
	}
	frag := id.Fragmented()
	if c, ok := udpClassOf(id); ok {
		return wirePacket{proto: ProtoUDP, port: c.port, frag: frag}, true
	}
	switch id.Unfragmented() {
	case IKE:
		return wirePacket{proto: ProtoUDP, port: 500, frag: frag}, true
	case NATT:
		return wirePacket{proto: ProtoUDP, port: 4500, frag: frag}, true
	case ESP:
		return wirePacket{proto: ProtoESP, frag: frag}, true
	case AH:
		return wirePacket{proto: ProtoAH, frag: frag}, true
	case ICMPLarge:
		return wirePacket{proto: ProtoICMP, echo: true, frag: true}, true
	case PMTU:
		return wirePacket{proto: ProtoICMP, echo: true}, true
	}
	return wirePacket{}, false
}

// nftProtos and nftPorts are the names nft prints for protocols and ports.
var nftProtos = map[string]uint8{"icmp": ProtoICMP, "tcp": ProtoTCP, "udp": ProtoUDP, "esp": ProtoESP, "ah": ProtoAH}
var nftPorts = map[string]int{"isakmp": 500, "ipsec-nat-t": 4500, "l2f": 1701, "l2tp": 1701, "https": 443, "http": 80, "microsoft-ds": 445}

// FirewallDrops reads an `nft list ruleset` listing and returns the rules of output,
// postrouting, input and prerouting filter chains that drop or reject what probes send
// toward target (or their answers), and chains whose policy is drop. A rule with matches
// it does not evaluate (interfaces, conntrack state, marks, …) is returned as not Certain.
func FirewallDrops(ruleset string, target netip.Addr, probes []ID) []report.FirewallRule {
	return firewallDrops(ruleset, target, probes, false)
}

// FirewallDropsArriving is FirewallDrops on the receiving host (the agent's): the rules of
// its input and prerouting filter chains that drop or reject the probes as they arrive from
// from (destination port the probe's, source address from), and such chains whose policy is
// drop. The capture sees a probe before these chains: a probe can reach the agent and still
// never reach a daemon on that host.
func FirewallDropsArriving(ruleset string, from netip.Addr, probes []ID) []report.FirewallRule {
	return firewallDrops(ruleset, from, probes, true)
}

func firewallDrops(ruleset string, peer netip.Addr, probes []ID, arriving bool) []report.FirewallRule {
	hookOK := relevantHook
	if arriving {
		hookOK = func(h string) bool { return h == "input" || h == "prerouting" }
	}
	var out []report.FirewallRule
	var table, chain, hook string
	depth := 0
	for _, raw := range strings.Split(ruleset, "\n") {
		line := strings.TrimSpace(raw)
		switch {
		case line == "":
			continue
		case strings.HasPrefix(line, "table ") && strings.HasSuffix(line, "{"):
			table = strings.TrimSpace(strings.TrimSuffix(strings.TrimPrefix(line, "table "), "{"))
			depth, chain, hook = 1, "", ""
			continue
		case depth == 1 && strings.HasPrefix(line, "chain ") && strings.HasSuffix(line, "{"):
			chain = strings.TrimSpace(strings.TrimSuffix(strings.TrimPrefix(line, "chain "), "{"))
			depth, hook = 2, ""
			continue
		case strings.HasSuffix(line, "{"): // sets, maps, flowtables: skip their bodies
			depth++
			continue
		case line == "}":
			if depth > 0 {
				depth--
			}
			if depth < 2 {
				chain, hook = "", ""
			}
			continue
		}
		if depth != 2 || chain == "" {
			continue
		}
		if strings.HasPrefix(line, "type ") {
			f := strings.Fields(strings.NewReplacer(";", " ").Replace(line))
			for i := 0; i+1 < len(f); i++ {
				if f[i] == "hook" {
					hook = f[i+1]
				}
				if f[i] == "policy" && f[i+1] == "drop" && hookOK(hook) {
					out = append(out, report.FirewallRule{Table: table, Chain: chain, Hook: hook, Rule: "policy drop", Action: "drop",
						Probes: idStrings(probes), Certain: false})
				}
			}
			continue
		}
		if !hookOK(hook) {
			continue
		}
		if r, ok := judgeNftRule(line, hook, peer, probes, arriving); ok {
			r.Table, r.Chain, r.Hook = table, chain, hook
			out = append(out, r)
		}
	}
	return out
}

func relevantHook(h string) bool {
	return h == "output" || h == "postrouting" || h == "input" || h == "prerouting"
}

func idStrings(ids []ID) []string {
	s := make([]string, len(ids))
	for i, id := range ids {
		s[i] = string(id)
	}
	return s
}

// judgeNftRule evaluates one rule line against the probes: as the sender sees them (target
// the probes' destination; inbound hooks see the answers), or, arriving, as the receiving
// host's inbound hooks see the probes themselves (target then the probes' source).
func judgeNftRule(line, hook string, target netip.Addr, probes []ID, arriving bool) (report.FirewallRule, bool) {
	toks := nftTokens(line)
	action := ""
	for _, t := range toks {
		if t == "drop" || t == "reject" {
			action = t
		}
		if t == "accept" || t == "jump" || t == "goto" || t == "return" {
			return report.FirewallRule{}, false
		}
	}
	if action == "" {
		return report.FirewallRule{}, false
	}
	inbound := hook == "input" || hook == "prerouting"
	certain := true
	type cond func(wirePacket) bool
	var conds []cond
	for i := 0; i < len(toks); i++ {
		t := toks[i]
		next := func() []string {
			if i+1 >= len(toks) {
				return nil
			}
			i++
			if toks[i] == "!=" {
				certain = false
				i++
			}
			if i < len(toks) && toks[i] == "{" {
				var set []string
				for i++; i < len(toks) && toks[i] != "}"; i++ {
					if toks[i] != "," {
						set = append(set, toks[i])
					}
				}
				return set
			}
			if i < len(toks) {
				return []string{toks[i]}
			}
			return nil
		}
		switch t {
		case "counter", "drop", "reject":
			continue
		case "with": // reject's arguments: the rest of the line
			i = len(toks)
			continue
		case "comment", "packets", "bytes":
			next()
			continue
		case "udp", "tcp", "th":
			if i+1 < len(toks) && (toks[i+1] == "dport" || toks[i+1] == "sport") {
				which := toks[i+1]
				i++
				ports := next()
				var proto uint8
				if t != "th" {
					proto = nftProtos[t]
				}
				// outbound the probe's destination port; inbound the answer's source port, or
				// the probe's destination port when it is the probe that arrives
				relevant := (which == "dport") != inbound
				if arriving {
					relevant = which == "dport"
				}
				conds = append(conds, func(p wirePacket) bool {
					if (proto != 0 && p.proto != proto) || (proto == 0 && p.proto != ProtoTCP && p.proto != ProtoUDP) {
						return false
					}
					return relevant && nftPortIn(p.port, ports)
				})
				continue
			}
			certain = false
		case "ip", "meta":
			if i+1 < len(toks) {
				switch toks[i+1] {
				case "protocol", "l4proto":
					i++
					protos := next()
					conds = append(conds, func(p wirePacket) bool { return nftProtoIn(p.proto, protos) })
					continue
				case "daddr", "saddr":
					which := toks[i+1]
					i++
					addrs := next()
					relevant := (which == "daddr") != inbound
					if arriving {
						relevant = which == "saddr"
					}
					conds = append(conds, func(wirePacket) bool { return relevant && nftAddrIn(target, addrs) })
					continue
				case "frag-off":
					// any frag-off match is taken as "fragments only"
					for i+1 < len(toks) && toks[i+1] != "drop" && toks[i+1] != "reject" && toks[i+1] != "counter" {
						i++
					}
					conds = append(conds, func(p wirePacket) bool { return p.frag })
					continue
				}
			}
			certain = false
		case "icmp":
			if i+1 < len(toks) && toks[i+1] == "type" {
				i++
				types := next()
				conds = append(conds, func(p wirePacket) bool {
					if p.proto != ProtoICMP && !inbound {
						return false
					}
					for _, ty := range types {
						if arriving {
							if p.proto == ProtoICMP && p.echo && ty == "echo-request" {
								return true
							}
							continue
						}
						if (!inbound && ty == "echo-request") || (inbound && (ty == "echo-reply" || ty == "destination-unreachable")) {
							return true
						}
					}
					return false
				})
				continue
			}
			certain = false
		default:
			certain = false
		}
	}
	var hit []string
	for _, id := range probes {
		p, ok := probePacket(id)
		if !ok {
			continue
		}
		all := true
		for _, c := range conds {
			all = all && c(p)
		}
		if all {
			hit = append(hit, string(id))
		}
	}
	if len(hit) == 0 {
		return report.FirewallRule{}, false
	}
	return report.FirewallRule{Rule: line, Action: action, Probes: hit, Certain: certain}, true
}

// nftTokens splits a rule line into words, with braces and commas as their own tokens and
// quoted strings kept whole.
func nftTokens(s string) []string {
	var out []string
	var cur strings.Builder
	inQuote := false
	flush := func() {
		if cur.Len() > 0 {
			out = append(out, cur.String())
			cur.Reset()
		}
	}
	for _, r := range s {
		switch {
		case r == '"':
			inQuote = !inQuote
			cur.WriteRune(r)
		case inQuote:
			cur.WriteRune(r)
		case r == ' ' || r == '\t':
			flush()
		case r == '{' || r == '}' || r == ',':
			flush()
			out = append(out, string(r))
		default:
			cur.WriteRune(r)
		}
	}
	flush()
	return out
}

func nftPortIn(port int, vals []string) bool {
	for _, v := range vals {
		if lo, hi, ok := strings.Cut(v, "-"); ok {
			a, e1 := strconv.Atoi(lo)
			b, e2 := strconv.Atoi(hi)
			if e1 == nil && e2 == nil && port >= a && port <= b {
				return true
			}
			continue
		}
		if n, err := strconv.Atoi(v); err == nil && n == port {
			return true
		}
		if nftPorts[v] == port && port != 0 {
			return true
		}
	}
	return false
}

func nftProtoIn(proto uint8, vals []string) bool {
	for _, v := range vals {
		if n, err := strconv.Atoi(v); err == nil && n == int(proto) {
			return true
		}
		if p, ok := nftProtos[v]; ok && p == proto {
			return true
		}
	}
	return false
}

func nftAddrIn(a netip.Addr, vals []string) bool {
	if !a.IsValid() {
		return true // unknown target: the rule may apply
	}
	for _, v := range vals {
		if p, err := netip.ParsePrefix(v); err == nil && p.Contains(a) {
			return true
		}
		if b, err := netip.ParseAddr(v); err == nil && b == a {
			return true
		}
	}
	return false
}
