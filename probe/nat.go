package probe

import (
	"fmt"
	"net"
	"net/netip"
	"sort"
	"strings"
	"time"

	"github.com/ipsecpath/ipsecpath/report"
)

// NAT detection in check. The agent reports, for every probe packet it captured, the source
// address and (first fragments) the transport header as they arrived; we know what we sent.
// A difference is a NAT between us. The control connection gives a first hint before any
// probe leaves: the agent tells in hello the address:port it sees us connect from.
//
// With a NAT, the initiator's address as the agent sees it is the NAT's public address, and
// reverse probes toward it reach us only through a mapping our own traffic opened: the
// reverse UDP probes are therefore sent after their forward form, to the public port the
// agent saw it come from (the same five-tuple, reversed), instead of in the cold burst.

// natKey is one flow we sent: IP protocol and our source port (0 without ports).
type natKey struct {
	proto uint8
	sport uint16
}

// natState is what the run saw of translation. The caller holds r.mu.
type natState struct {
	ctlLocal, ctlSeen netip.AddrPort // the control connection: our end, and as the agent saw it
	seen              map[natKey]netip.AddrPort
	sent              map[natKey]netip.AddrPort
}

// control records the control connection's two views of our end.
func (n *natState) control(local net.Addr, seen netip.AddrPort) {
	if ap, err := addrPort(local); err == nil {
		n.ctlLocal = netip.AddrPortFrom(ap.Addr().Unmap(), ap.Port())
	}
	if seen.Addr().IsValid() {
		n.ctlSeen = netip.AddrPortFrom(seen.Addr().Unmap(), seen.Port())
	}
}

// addressTranslated reports whether the agent saw our control connection come from another
// address than ours: a NAT rewrites our address (known before any probe is sent).
func (n *natState) addressTranslated() bool {
	return n.ctlLocal.IsValid() && n.ctlSeen.IsValid() && n.ctlLocal.Addr() != n.ctlSeen.Addr()
}

// note records a forward probe's first fragment as the agent captured it.
func (n *natState) note(src netip.Addr, p *pending, s *Seen) {
	if s.Offset != 0 {
		return
	}
	k := natKey{proto: s.Proto}
	var seenPort uint16
	if hasPorts(s.Proto) {
		if len(s.Head) < 2 {
			return
		}
		k.sport = p.sport
		seenPort = uint16(s.Head[0])<<8 | uint16(s.Head[1])
	}
	if n.seen == nil {
		n.seen, n.sent = map[natKey]netip.AddrPort{}, map[natKey]netip.AddrPort{}
	}
	if _, ok := n.seen[k]; ok {
		return
	}
	n.seen[k] = netip.AddrPortFrom(s.Src.Unmap(), seenPort)
	n.sent[k] = netip.AddrPortFrom(src, k.sport)
}

// publicPort returns the source port the agent saw for our UDP flow from sport, or 0.
func (n *natState) publicPort(sport uint16) uint16 {
	if ap, ok := n.seen[natKey{ProtoUDP, sport}]; ok {
		return ap.Port()
	}
	return 0
}

func hasPorts(proto uint8) bool { return proto == ProtoUDP || proto == ProtoTCP }

// sentSourcePort reads the transport source port of a built probe's first packet (UDP and
// TCP), or 0.
func sentSourcePort(pk *Packets) uint16 {
	if len(pk.Wire) == 0 || !hasPorts(pk.Proto) {
		return 0
	}
	var h IPv4Header
	if h.DecodeFromBytes(pk.Wire[0]) != nil || len(h.Payload) < 2 {
		return 0
	}
	return uint16(h.Payload[0])<<8 | uint16(h.Payload[1])
}

// natKind names what changed between sent and seen.
func natKind(sent, seen netip.AddrPort, ports bool) string {
	a, p := sent.Addr() != seen.Addr(), ports && sent.Port() != seen.Port()
	switch {
	case a && p:
		return "address+port"
	case a:
		return "address"
	case p:
		return "port"
	}
	return ""
}

// result turns what was seen into the report's NAT, or nil when nothing was measured.
func (n *natState) result() *report.NAT {
	keys := make([]natKey, 0, len(n.seen))
	for k := range n.seen {
		keys = append(keys, k)
	}
	// UDP first (IKE's own flows, 500 before 4500), then TCP, then the rest.
	rank := func(k natKey) int {
		switch k.proto {
		case ProtoUDP:
			return 0
		case ProtoTCP:
			return 1
		}
		return 2
	}
	sort.Slice(keys, func(i, j int) bool {
		if rank(keys[i]) != rank(keys[j]) {
			return rank(keys[i]) < rank(keys[j])
		}
		if keys[i].proto != keys[j].proto {
			return keys[i].proto < keys[j].proto
		}
		return keys[i].sport < keys[j].sport
	})
	var pick *natKey
	for i, k := range keys {
		if natKind(n.sent[k], n.seen[k], hasPorts(k.proto)) != "" {
			pick = &keys[i]
			break
		}
	}
	if pick == nil && len(keys) > 0 {
		pick = &keys[0]
	}
	if pick == nil {
		if !n.ctlLocal.IsValid() || !n.ctlSeen.IsValid() {
			return nil
		}
		// No probe reached the agent: only the control connection tells.
		out := &report.NAT{Via: "control", Sent: n.ctlLocal.String(), Seen: n.ctlSeen.String()}
		if k := natKind(n.ctlLocal, n.ctlSeen, true); k != "" {
			out.Detected, out.Kind, out.Public = true, k, n.ctlSeen.Addr().String()
			out.Detail = fmt.Sprintf("the agent saw our control connection from %s come from %s: a NAT between us (public address %s) translates our %s; none of our probes reached the agent to show what it does to them.",
				out.Sent, out.Seen, out.Public, kindWords(k))
		} else {
			out.Detail = fmt.Sprintf("the agent saw our control connection come from our own address and port (%s); none of our probes reached it to show what happens to them.", out.Sent)
		}
		return out
	}
	sent, seen := n.sent[*pick], n.seen[*pick]
	ports := hasPorts(pick.proto)
	show := func(ap netip.AddrPort) string {
		if ports {
			return ap.String()
		}
		return ap.Addr().String()
	}
	out := &report.NAT{Via: "agent", Sent: show(sent), Seen: show(seen)}
	what := protoWords(pick.proto, sent.Port())
	k := natKind(sent, seen, ports)
	if k == "" {
		out.Detail = fmt.Sprintf("the agent saw our probes come from our own address and ports (%s from %s): no NAT between us.", what, out.Sent)
		return out
	}
	out.Detected, out.Kind, out.Public = true, k, seen.Addr().String()
	if k == "port" {
		out.Public = ""
	}
	pub := ""
	if out.Public != "" {
		pub = " (public address " + out.Public + ")"
	}
	out.Detail = fmt.Sprintf("a NAT between us%s: %s sent from %s reached the agent from %s (it translates our %s); IPsec across it needs NAT-T (IKE and ESP in UDP 4500), and AH cannot cross a NAT at all.",
		pub, what, out.Sent, out.Seen, kindWords(k))
	return out
}

func kindWords(kind string) string {
	switch kind {
	case "address+port":
		return "address and ports"
	case "port":
		return "ports"
	}
	return "address"
}

func protoWords(proto uint8, port uint16) string {
	switch proto {
	case ProtoUDP:
		return fmt.Sprintf("UDP %d", port)
	case ProtoTCP:
		return "TCP"
	case ProtoESP:
		return "ESP"
	case ProtoAH:
		return "AH"
	case ProtoICMP:
		return "ICMP"
	}
	return fmt.Sprintf("IP protocol %d", proto)
}

// NATKeepaliveAdvice is the advice about NAT-T keepalives: from a measured UDP 4500 mapping
// timer (found: the mapping survived survived of idleness and was gone after died), or the
// generic advice when the timer was not measured.
func NATKeepaliveAdvice(found bool, survived, died time.Duration) string {
	if !found {
		return "keep NAT-T keepalives (strongSwan charon.keep_alive, default 20 s; Cisco IOS 'crypto isakmp nat keepalive'; Juniper SRX 'nat-keepalive') shorter than this NAT's idle timeout for UDP mappings, which this run did not measure: measure it with 'ipsecpath stateful TARGET --agent HOST:PORT'."
	}
	ka := survived / 2
	if ka < time.Second {
		ka = time.Second
	}
	return fmt.Sprintf("this NAT forgot an idle UDP mapping after between %s and %s: keep NAT-T keepalives well under it, e.g. strongSwan charon.keep_alive = %ds (Cisco IOS 'crypto isakmp nat keepalive %d', Juniper SRX 'nat-keepalive %d').",
		survived.Round(time.Second), died.Round(time.Second), int(ka.Seconds()), int(ka.Seconds()), int(ka.Seconds()))
}

// natFragAdvice says whether fragmented UDP 4500 crossed the NAT, from the natt-frag rows.
func natFragAdvice(results []report.Result) string {
	var failed []string
	ran := false
	for _, r := range results {
		if r.Probe != string(NATTFrag) || r.Verdict == report.Skipped || r.Verdict == report.Error {
			continue
		}
		ran = true
		if r.Verdict != report.Pass {
			failed = append(failed, string(r.Direction))
		}
	}
	switch {
	case !ran:
		return ""
	case len(failed) == 0:
		return " Fragmented UDP 4500 (natt-frag) crossed the NAT every way it was sent."
	}
	return fmt.Sprintf(" Fragmented UDP 4500 (natt-frag) did not cross (%s): large IKE messages through this NAT need IKE fragmentation (RFC 7383; strongSwan fragmentation = yes) on both gateways, and ESP in UDP 4500 a tunnel MTU (or TCP MSS clamp) small enough that it is never fragmented.",
		strings.Join(failed, ", "))
}

// applyNAT rewrites the details of the rows a NAT explains, when one was detected: raw
// ESP/AH (no ports to translate), probes the agent sent to the NAT's public address that no
// mapping leads from (TCP, ICMP), and reverse UDP that went through a mapping our own probe
// opened. Verdicts stay what was measured; only what they mean changes.
func applyNAT(results []report.Result, n *report.NAT, throughMapping map[ID]uint16) {
	if n == nil || !n.Detected || n.Public == "" {
		return
	}
	pub := n.Public
	fwdPassed := map[string]bool{}
	for _, r := range results {
		if r.Direction == report.Forward && r.Verdict == report.Pass {
			fwdPassed[r.Probe] = true
		}
	}
	for i := range results {
		r := &results[i]
		id := ID(r.Probe)
		if r.Verdict == report.Skipped || (r.Verdict == report.Error && r.Probe != string(PMTU)) {
			continue
		}
		fwd := r.Direction == report.Forward
		name := describe(id)
		switch {
		case isESPorAH(id) && fwd && r.Verdict == report.Pass && id.Unfragmented() == AH:
			r.Detail = fmt.Sprintf("%s reached the agent with its source rewritten to %s by the NAT: AH's integrity check covers the source address, so the peer rejects every AH packet that crossed this NAT; AH cannot cross a NAT (NAT-T encapsulates ESP only): use ESP with NAT-T.", capitalize(name), pub)
		case isESPorAH(id) && r.Verdict == report.Pass && id.Unfragmented() == AH:
			r.Detail = fmt.Sprintf("%s from the agent arrived through the NAT, its destination rewritten from %s to ours: AH's integrity check covers the addresses, so every AH packet that crossed this NAT fails it; AH cannot cross a NAT (NAT-T encapsulates ESP only): use ESP with NAT-T.", capitalize(name), pub)
		case isESPorAH(id) && fwd && r.Verdict == report.Pass:
			r.Detail = fmt.Sprintf("%s reached the agent with its source rewritten to %s by the NAT: this NAT passed raw ESP here, but IKE detects the NAT and moves ESP into UDP 4500 (NAT-T) anyway, and raw ESP, which has no ports, through a NAT breaks once two hosts behind it talk to the same peer.", capitalize(name), pub)
		case isESPorAH(id) && fwd:
			r.Detail = fmt.Sprintf("%s sent from behind the NAT (public address %s) never reached the agent%s: raw %s has no ports for a NAT to translate and cannot cross this NAT; %s", capitalize(name), pub, cameBack(r), protoName(id), natTAdvice(id))
		case isESPorAH(id) && r.Verdict != report.Pass:
			r.Detail = fmt.Sprintf("%s from the agent went to the NAT's public address %s%s and never arrived here: no mapping leads from it to us for raw %s (no ports to map), so it cannot cross this NAT; %s", capitalize(name), pub, cameBack(r), protoName(id), natTAdvice(id))
		case fwd || r.Verdict == report.Pass:
		case id.IsTCP():
			port, _ := id.TCPPort()
			r.Detail = fmt.Sprintf("The agent's SYN to TCP %d went to the NAT's public address %s%s: nothing there forwards TCP %d to us; a connection opened from the responder's side reaches a host behind a NAT only through a port forward on it.", port, pub, cameBack(r), port)
		case id == ICMPLarge || id == PMTU:
			r.Detail = fmt.Sprintf("The agent's ICMP echoes went to the NAT's public address %s: an echo request from outside is the NAT's own to answer or drop, it does not reach a host behind it, so this direction cannot be measured with echoes through this NAT.", pub)
		case id.Unfragmented() == IKE || id.Unfragmented() == NATT:
			port, ok := throughMapping[id]
			if !ok || !fwdPassed[r.Probe] {
				continue
			}
			r.Detail = fmt.Sprintf("%s from the agent went to the NAT's public address %s:%d, through the mapping our own probe had just opened, and never arrived here%s: the NAT forgot the mapping or does not pass what comes back on it; measure its UDP timer with 'ipsecpath stateful'.", capitalize(name), pub, port, cameBack(r))
		}
	}
}

// cameBack says what came back to the agent for a reverse row, for a NAT sentence.
func cameBack(r *report.Result) string {
	if r.Verdict != report.Blocked {
		return ""
	}
	from := r.Evidence.AnsweredBy
	if from == "" && r.Evidence.ICMP != nil {
		from = r.Evidence.ICMP.From
	}
	what := "an ICMP error"
	if r.Evidence.ICMP == nil {
		if from == "" {
			return " (a reset came back in its name)"
		}
		what = "a reset"
	}
	if from == "" {
		return fmt.Sprintf(" (%s came back)", what)
	}
	return fmt.Sprintf(" (%s came back from %s)", what, from)
}

func protoName(id ID) string {
	if id.Unfragmented() == AH {
		return "AH"
	}
	return "ESP"
}

// mappedReverse splits held reverse probes (a NAT rewrites our address: see the top of this
// file) into those that can go now, through the mapping a forward probe opened (UDP: one
// from the same source port, whose public port the agent saw; ESP/AH: one of the same
// protocol the agent saw, for a NAT that passes them), and those still waiting.
// force (at T/2) sends the rest as well, to the class's port: a forward probe the agent never saw
// may still have opened the mapping on its way out. The caller holds no lock.
func (r *checkRun) mappedReverse(held []*pending, force bool) (ready, wait []*pending) {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, p := range held {
		if !p.udp {
			// Raw ESP/AH: a NAT that passes them maps by protocol and addresses only.
			_, seen := r.nat.seen[natKey{proto: rawProto(p.out.Probe)}]
			if seen || force {
				ready = append(ready, p)
			} else {
				wait = append(wait, p)
			}
			continue
		}
		var sport uint16
		for _, f := range r.list {
			if !f.reverse && f.out.Probe == p.out.Probe {
				sport = f.sport
				break
			}
		}
		if sport == 0 {
			sport = uint16(PortIKE)
			if p.out.Probe.Unfragmented() == NATT {
				sport = uint16(PortNATT)
			}
		}
		port := r.nat.publicPort(sport)
		switch {
		case port != 0:
			p.dstPort = port
			ready = append(ready, p)
		case force:
			ready = append(ready, p)
		default:
			wait = append(wait, p)
		}
	}
	return ready, wait
}

// throughMapping lists the reverse UDP probes sent through a NAT mapping, with the public
// port they went to. The caller holds r.mu.
func (r *checkRun) throughMapping() map[ID]uint16 {
	out := map[ID]uint16{}
	for _, p := range r.list {
		if p.reverse && p.dstPort != 0 {
			out[p.out.Probe] = p.dstPort
		}
	}
	return out
}

// natAdvice fills n's advice when a NAT was detected: NAT-T keepalives (check does not
// measure the mapping timer: the generic advice) and whether fragmented UDP 4500 crossed.
func (r *checkRun) natAdvice(n *report.NAT, results []report.Result) {
	if n == nil || !n.Detected {
		return
	}
	n.Advice = NATKeepaliveAdvice(false, 0, 0) + natFragAdvice(results)
}

// natTAdvice is what to use instead of raw ESP or AH across a NAT.
func natTAdvice(id ID) string {
	if id.Unfragmented() == AH {
		return "AH cannot be carried across a NAT at all (its integrity check covers the addresses, and NAT-T encapsulates ESP only): use ESP with UDP encapsulation (NAT-T, UDP 4500)."
	}
	return "use UDP encapsulation (NAT-T, UDP 4500), which IKE turns on when it detects the NAT."
}

// holdForMapping takes, behind a NAT, the reverse probes that can only arrive through a
// mapping our own forward probes open (UDP 500/4500, raw ESP and AH) out of the cold
// reverse burst and the reverse rest: they go later (mappedReverse).
func holdForMapping(revUDP, revRest []*pending) (held, udp, rest []*pending) {
	held = append(held, revUDP...)
	for _, p := range revRest {
		if isESPorAH(p.out.Probe) {
			held = append(held, p)
		} else {
			rest = append(rest, p)
		}
	}
	return held, nil, rest
}

// splitUDP separates reverse UDP probes from the others.
func splitUDP(ps []*pending) (udp, other []*pending) {
	for _, p := range ps {
		if p.udp {
			udp = append(udp, p)
		} else {
			other = append(other, p)
		}
	}
	return udp, other
}

// rawProto is the IP protocol of an ESP or AH probe.
func rawProto(id ID) uint8 {
	if id.Unfragmented() == AH {
		return ProtoAH
	}
	return ProtoESP
}

// reportNAT puts what the agent saw of our addresses into rep (with an agent only: without
// one nothing was measured) and rewrites the rows the NAT explains.
func (r *checkRun) reportNAT(rep *report.Report) {
	if r.agent == nil {
		return
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	rep.NAT = r.nat.result()
	r.natAdvice(rep.NAT, rep.Results)
	applyNAT(rep.Results, rep.NAT, r.throughMapping())
}

// statefulNAT puts into a stateful report what the agent saw of our addresses (behind a
// NAT the UDP timer measured is the NAT's mapping timer, the one NAT-T keepalives must
// beat) and the keepalive advice from that timer. n is the sweep's wire (the real one
// knows; a test's fake may not).
func statefulNAT(rep *report.Report, n statefulNet) {
	nw, ok := n.(interface{ natResult() *report.NAT })
	if !ok {
		return
	}
	rep.NAT = nw.natResult()
	if rep.NAT == nil || !rep.NAT.Detected {
		return
	}
	t := rep.Stateful[string(StatefulUDP4500)]
	if t == nil || t.Error != "" {
		t = rep.Stateful[string(StatefulUDP500)]
	}
	switch {
	case t == nil || t.Error != "":
		rep.NAT.Advice = NATKeepaliveAdvice(false, 0, 0)
	case t.TimerFound:
		rep.NAT.Advice = NATKeepaliveAdvice(true, time.Duration(t.SurvivedS*float64(time.Second)), time.Duration(t.DiedS*float64(time.Second)))
	default:
		rep.NAT.Advice = fmt.Sprintf("this NAT kept an idle UDP mapping for the longest silence tested (%s s): NAT-T keepalives shorter than that (strongSwan charon.keep_alive, default 20 s) keep it.", report.Seconds(t.SurvivedS))
	}
}
