package probe

// What check writes to --pcap: every record, at both ends, with a note (report.PcapNote)
// naming its probe, direction, attempt, role and fragment, and the SPIs and message ID of
// an IKE header it holds. Records are kept in memory during the run and written at its end
// in time order, once the clock offset between the two ends is known from every round trip
// of the control channel; the agent's timestamps are moved onto the initiator's clock by
// that offset, and the section header says so.

import (
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"sort"
	"strconv"
	"time"

	"github.com/ipsecpath/ipsecpath/report"
)

// maxPcapRecords bounds the records a check keeps for its pcap: a check writes a few
// hundred; a flood of unrelated packets from the target cannot grow memory without end.
const maxPcapRecords = 50000

// Capture points of a check's pcap.
const (
	pointInitiator = "initiator"
	pointAgent     = "agent"
)

// pcapRec is one record waiting for the end of the run.
type pcapRec struct {
	point string
	at    time.Time
	data  []byte
	wire  int
	note  string
	agent bool // at is on the agent's clock
}

// record keeps one packet for the pcap (copied, cut at the pcap's snap length).
func (r *checkRun) record(point string, at time.Time, pkt []byte, wire int, note string, agentClock bool) {
	if r.cfg.Pcap == nil {
		return
	}
	r.pcapMu.Lock()
	defer r.pcapMu.Unlock()
	if len(r.pcapRecs) >= maxPcapRecords {
		r.pcapDropped++
		return
	}
	pkt = pkt[:min(len(pkt), r.cfg.Pcap.SnapLen())]
	r.pcapRecs = append(r.pcapRecs, pcapRec{point: point, at: at, data: append([]byte(nil), pkt...), wire: max(wire, len(pkt)), note: note, agent: agentClock})
}

// writePcap writes the records kept, in time order, after a section comment on the clocks.
func (r *checkRun) writePcap() {
	if r.cfg.Pcap == nil {
		return
	}
	r.pcapMu.Lock()
	defer r.pcapMu.Unlock()
	var off time.Duration
	if r.agent != nil {
		c := r.agent.Clock()
		off = c.Offset
		if c.Samples > 0 {
			r.cfg.Pcap.SetSectionComment(fmt.Sprintf("clock: the agent's clock is %+.3f ms from the initiator's (± %.3f ms: half the shortest of %d control-channel round trips); the agent's records are shifted by %+.3f ms onto the initiator's clock",
				msf(c.Offset), msf(c.Error), c.Samples, -msf(c.Offset)))
		}
	}
	r.cfg.Pcap.SetSectionComment(fmt.Sprintf("ipsecpath check %s: every record carries a note: probe, direction (forward: initiator to agent; reverse: agent to initiator), attempt, role (sent, arrived, answer, icmp, other, control), fragment offset+length; 'ipsecpath pcap explain FILE' reads them", r.cfg.Target))
	if !r.cfg.NoTrace {
		r.cfg.Pcap.SetSectionComment("the hop-by-hop traces of failing probes that follow the check are not in this file (their hops are in the report); run 'ipsecpath trace' under tcpdump to capture one")
	}
	if r.pcapDropped > 0 {
		r.cfg.Pcap.SetSectionComment(fmt.Sprintf("%d further packets were not recorded (more than %d in one run)", r.pcapDropped, maxPcapRecords))
	}
	for i := range r.pcapRecs {
		if r.pcapRecs[i].agent {
			r.pcapRecs[i].at = r.pcapRecs[i].at.Add(-off)
		}
	}
	sort.SliceStable(r.pcapRecs, func(i, j int) bool { return r.pcapRecs[i].at.Before(r.pcapRecs[j].at) })
	for _, rec := range r.pcapRecs {
		if err := r.cfg.Pcap.WriteRecord(rec.point, rec.at, rec.data, rec.wire, rec.note); err != nil {
			break // the error sticks: Close reports it
		}
	}
	r.pcapRecs = nil
}

// note builds a record's note.
func note(role string, id ID, dir report.Direction, attempt int, nonce uint32, f report.Fragment, pkt []byte, extra string) string {
	n := report.PcapNote{Probe: string(id), Direction: dir, Attempt: attempt, Role: role, Extra: extra}
	if nonce != 0 {
		n.Nonce = fmt.Sprintf("0x%08x", nonce)
	}
	if role != "other" && role != "control" {
		n.Frag = strconv.Itoa(f.Offset) + "+" + strconv.Itoa(f.Length)
		if f.More {
			n.Frag += " mf"
		}
	}
	n.IKE = ikeIDs(pkt)
	return n.String()
}

// seenFrag is the fragment a captured packet is.
func seenFrag(s *Seen) report.Fragment {
	return report.Fragment{Offset: s.Offset, Length: max(s.TotalLen-ipv4MinHeader, 0), More: s.More}
}

// ikeIDs returns "ispi:rspi:msgid" when pkt is an IPv4 first fragment carrying UDP to or
// from port 500, or 4500 with the non-ESP marker, whose payload starts with an IKE header;
// "" otherwise.
func ikeIDs(pkt []byte) string {
	if len(pkt) < ipv4MinHeader || pkt[0]>>4 != 4 || pkt[9] != ProtoUDP {
		return ""
	}
	ihl := int(pkt[0]&0x0f) * 4
	if ihl < ipv4MinHeader || binary.BigEndian.Uint16(pkt[6:8])&0x1fff != 0 || len(pkt) < ihl+8 {
		return ""
	}
	sp, dp := binary.BigEndian.Uint16(pkt[ihl:]), binary.BigEndian.Uint16(pkt[ihl+2:])
	b := pkt[ihl+8:]
	switch {
	case sp == PortNATT || dp == PortNATT:
		if len(b) < 4 || binary.BigEndian.Uint32(b) != 0 {
			return "" // ESP in UDP, or a keepalive
		}
		b = b[4:]
	case sp == PortIKE || dp == PortIKE:
	default:
		return ""
	}
	if len(b) < 28 {
		return ""
	}
	return hex.EncodeToString(b[0:8]) + ":" + hex.EncodeToString(b[8:16]) + ":" + strconv.FormatUint(uint64(binary.BigEndian.Uint32(b[20:24])), 10)
}

func msf(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }
