package probe

import (
	"bufio"
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

	"golang.org/x/net/dns/dnsmessage"

	"github.com/ipsecpath/ipsecpath/report"
)

// dnsRung resolves the target name with the configured server (never another one) and,
// when the lookup gets no answer, probes the server's address like any rung, so a dead DNS
// server is told apart from one that only does not answer DNS.
func (lr *ladderRun) dnsRung(ctx context.Context) (report.Rung, netip.Addr) {
	r := report.Rung{Rung: "dns", Tried: []string{"dns"}}
	server := lr.cfg.DNSServer
	if !server.IsValid() {
		s, err := resolvConfServer(lr.cfg.ResolvConf)
		if err != nil {
			r.Verdict = report.RungError
			r.Detail = fmt.Sprintf("%s is a name and no DNS server is configured: %v.", lr.cfg.Target, err)
			return r, netip.Addr{}
		}
		server = s
	}
	r.Addr = server.String()
	t0 := time.Now()
	addr, rcode, err := queryA(ctx, server, lr.cfg.Target, LadderDNSWait)
	took := ms(time.Since(t0))
	switch {
	case err == nil && rcode == dnsmessage.RCodeSuccess && addr.IsValid():
		r.Verdict, r.AnsweredBy, r.RTTms = report.RungPass, "dns-answer", took
		r.Detail = fmt.Sprintf("The DNS server %s resolved %s to %s (%.1f ms).", server, lr.cfg.Target, addr, took)
		return r, addr
	case err == nil && (rcode == dnsmessage.RCodeNameError || rcode == dnsmessage.RCodeSuccess):
		r.Verdict, r.AnsweredBy, r.RTTms = report.RungError, "dns-nxdomain", took
		r.Detail = fmt.Sprintf("The DNS server %s answered: %s has no IPv4 address (no such name, or no A record).", server, lr.cfg.Target)
		return r, netip.Addr{}
	case err == nil:
		r.Verdict, r.AnsweredBy, r.RTTms = report.RungError, "dns-error", took
		r.Detail = fmt.Sprintf("The DNS server %s did not resolve %s: it answered %s.", server, lr.cfg.Target, rcode)
		return r, netip.Addr{}
	case errors.Is(err, syscall.ECONNREFUSED):
		r.Verdict, r.AnsweredBy, r.RTTms = report.RungError, "icmp-port-unreachable", took
		r.Detail = fmt.Sprintf("The DNS server %s answered our query for %s with ICMP port unreachable: it is alive, but no DNS server listens on UDP 53 there.", server, lr.cfg.Target)
		return r, netip.Addr{}
	case !isNetTimeout(err):
		r.Verdict = report.RungError
		r.Detail = fmt.Sprintf("Asking the DNS server %s for %s failed on this host: %v.", server, lr.cfg.Target, err)
		return r, netip.Addr{}
	}
	// No DNS answer: is the server's host there at all?
	h := lr.probeAddr(ctx, "dns", server)
	h.Tried = append([]string{"dns"}, h.Tried...)
	switch {
	case h.Verdict.Failed():
		h.Detail = fmt.Sprintf("The DNS server %s did not answer a query for %s, and %s", server, lr.cfg.Target, h.Detail)
	default:
		h.Verdict = report.RungError
		h.Detail = fmt.Sprintf("The DNS server %s is alive (%s) but did not answer a query for %s within %s: DNS (UDP/TCP 53) is filtered or the server is not serving.", server, h.AnsweredBy, lr.cfg.Target, LadderDNSWait)
	}
	return h, netip.Addr{}
}

// resolvConfServer returns the first IPv4 nameserver of a resolv.conf ("" → /etc/resolv.conf).
func resolvConfServer(path string) (netip.Addr, error) {
	if path == "" {
		path = "/etc/resolv.conf"
	}
	f, err := os.Open(path)
	if err != nil {
		return netip.Addr{}, fmt.Errorf("read %s: %w", path, err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		fs := strings.Fields(sc.Text())
		if len(fs) >= 2 && fs[0] == "nameserver" {
			if a, err := netip.ParseAddr(fs[1]); err == nil && a.Unmap().Is4() {
				return a.Unmap(), nil
			}
		}
	}
	return netip.Addr{}, fmt.Errorf("no IPv4 nameserver in %s", path)
}

// queryA asks server (UDP port 53) for the A record of name, with a socket opened on this
// goroutine's thread. It returns the first address, the answer's rcode, or an error
// (a timeout when nothing came back).
func queryA(ctx context.Context, server netip.Addr, name string, wait time.Duration) (netip.Addr, dnsmessage.RCode, error) {
	if !strings.HasSuffix(name, ".") {
		name += "."
	}
	n, err := dnsmessage.NewName(name)
	if err != nil {
		return netip.Addr{}, 0, fmt.Errorf("bad name %q: %w", name, err)
	}
	idb := make([]byte, 2)
	_, _ = rand.Read(idb)
	id := binary.BigEndian.Uint16(idb)
	q := dnsmessage.Message{Header: dnsmessage.Header{ID: id, RecursionDesired: true},
		Questions: []dnsmessage.Question{{Name: n, Type: dnsmessage.TypeA, Class: dnsmessage.ClassINET}}}
	b, err := q.Pack()
	if err != nil {
		return netip.Addr{}, 0, err
	}
	c, err := net.DialUDP("udp4", nil, net.UDPAddrFromAddrPort(netip.AddrPortFrom(server, 53)))
	if err != nil {
		return netip.Addr{}, 0, err
	}
	defer c.Close()
	deadline := time.Now().Add(wait)
	if d, ok := ctx.Deadline(); ok && d.Before(deadline) {
		deadline = d
	}
	_ = c.SetDeadline(deadline)
	buf := make([]byte, 1500)
	for try := 0; try < 2; try++ {
		if _, err := c.Write(b); err != nil {
			return netip.Addr{}, 0, err
		}
		_ = c.SetReadDeadline(minTime(deadline, time.Now().Add(wait/2)))
		for {
			k, err := c.Read(buf)
			if err != nil {
				if isNetTimeout(err) && try == 0 {
					break
				}
				return netip.Addr{}, 0, err
			}
			a, rcode, ok := parseAAnswer(buf[:k], id)
			if ok {
				return a, rcode, nil
			}
		}
	}
	return netip.Addr{}, 0, os.ErrDeadlineExceeded
}

func minTime(a, b time.Time) time.Time {
	if a.Before(b) {
		return a
	}
	return b
}

// parseAAnswer reads a DNS response with our id: its rcode and first A record.
func parseAAnswer(b []byte, id uint16) (netip.Addr, dnsmessage.RCode, bool) {
	var p dnsmessage.Parser
	h, err := p.Start(b)
	if err != nil || h.ID != id || !h.Response {
		return netip.Addr{}, 0, false
	}
	if err := p.SkipAllQuestions(); err != nil {
		return netip.Addr{}, 0, false
	}
	for {
		ah, err := p.AnswerHeader()
		if err != nil {
			return netip.Addr{}, h.RCode, true
		}
		if ah.Type != dnsmessage.TypeA {
			if err := p.SkipAnswer(); err != nil {
				return netip.Addr{}, h.RCode, true
			}
			continue
		}
		a, err := p.AResource()
		if err != nil {
			return netip.Addr{}, h.RCode, true
		}
		return netip.AddrFrom4(a.A), h.RCode, true
	}
}
