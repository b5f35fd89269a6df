package probe

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"strings"
	"time"

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
	res := &net.Resolver{PreferGo: true, Dial: func(ctx context.Context, network, _ string) (net.Conn, error) {
		var d net.Dialer
		return d.DialContext(ctx, network, netip.AddrPortFrom(server, 53).String())
	}}
	lctx, cancel := context.WithTimeout(ctx, LadderDNSWait)
	defer cancel()
	t0 := time.Now()
	addrs, err := res.LookupNetIP(lctx, "ip4", lr.cfg.Target)
	took := ms(time.Since(t0))
	var dnsErr *net.DNSError
	switch {
	case err == nil && len(addrs) > 0:
		r.Verdict, r.AnsweredBy, r.RTTms = report.RungPass, "dns-answer", took
		r.Detail = fmt.Sprintf("The DNS server %s resolved %s to %s (%.1f ms).", server, lr.cfg.Target, addrs[0].Unmap(), took)
		return r, addrs[0].Unmap()
	case errors.As(err, &dnsErr) && dnsErr.IsNotFound:
		r.Verdict, r.AnsweredBy, r.RTTms = report.RungError, "dns-nxdomain", took
		r.Detail = fmt.Sprintf("The DNS server %s answered: %s has no IPv4 address (no such name, or no A record).", server, lr.cfg.Target)
		return r, netip.Addr{}
	case errors.As(err, &dnsErr) && !dnsErr.IsTimeout:
		r.Verdict, r.AnsweredBy, r.RTTms = report.RungError, "dns-error", took
		r.Detail = fmt.Sprintf("The DNS server %s did not resolve %s: %s.", server, lr.cfg.Target, dnsErr.Err)
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
