package probe

import (
	"bufio"
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"os"
	"reflect"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"github.com/ipsecpath/ipsecpath/report"
)

// TLS returns the probe id of a TLS handshake toward a TCP port, e.g. "tls:1792".
func TLS(port int) ID { return ID("tls:" + strconv.Itoa(port)) }

// tlsPort returns the port of a tls:PORT id (ID.TLSPort, probe/wire's).
func tlsPort(id ID) (int, bool) { return id.TLSPort() }

// Service probe timings.
const (
	// DefaultServiceTimeout bounds one tls:PORT (or proxied tcp:PORT) probe: TCP connect,
	// CONNECT through a proxy, and the handshake.
	DefaultServiceTimeout = 5 * time.Second
	// PostHandshakeWait bounds how long we read after a TLS 1.3 handshake in which the server
	// asked for our certificate: the server judges it only after our Finished, so its alert
	// (unknown_ca, …) arrives after the client's handshake has returned. A server that
	// accepts sends its session tickets then (OpenSSL and Go do), which ends the wait at once;
	// the full wait is spent only on a server that sends neither.
	PostHandshakeWait = 3 * time.Second
	// ResetWatch bounds how long we wait for the reset watcher to have read the RST that
	// refused a connect (it is queued on the raw socket before connect returns; a loaded
	// host may be slow to schedule the reader). The full wait is spent only when no RST
	// came (an ICMP error also refuses a connect).
	ResetWatch = 2 * time.Second
)

// ServiceConfig is one service probe: a TLS handshake (TLS true) or a plain TCP connect
// through a proxy, toward Target:Port.
type ServiceConfig struct {
	Target netip.Addr
	Port   int
	TLS    bool
	// ServerName is the SNI sent and the name the certificate must carry; "" sends no SNI
	// and checks the certificate against the target address.
	ServerName string
	// RootCAs verifies the server's certificate; nil means the system's roots.
	RootCAs *x509.CertPool
	// Certificate is our client certificate, sent when the server asks for one.
	Certificate *tls.Certificate
	// Proxy is an HTTP CONNECT proxy ("http://host:port"); nil means direct.
	Proxy *url.URL
	// Timeout bounds the probe (0: DefaultServiceTimeout).
	Timeout time.Duration
	// Now is the clock certificates are judged by (nil: time.Now).
	Now func() time.Time
}

// ProxyFor returns the proxy to use toward target:port from an explicit --proxy value, or
// from HTTPS_PROXY/https_proxy and NO_PROXY/no_proxy when explicit is "". nil: direct.
func ProxyFor(explicit string, target netip.Addr, port int) (*url.URL, error) {
	if explicit != "" {
		return parseProxy(explicit)
	}
	p := firstEnv("HTTPS_PROXY", "https_proxy")
	if p == "" {
		return nil, nil
	}
	if noProxy(firstEnv("NO_PROXY", "no_proxy"), target) {
		return nil, nil
	}
	return parseProxy(p)
}

func firstEnv(names ...string) string {
	for _, n := range names {
		if v := os.Getenv(n); v != "" {
			return v
		}
	}
	return ""
}

// parseProxy accepts http://HOST:PORT (a bare HOST:PORT is taken as http).
func parseProxy(s string) (*url.URL, error) {
	if !strings.Contains(s, "://") {
		s = "http://" + s
	}
	u, err := url.Parse(s)
	if err != nil {
		return nil, fmt.Errorf("proxy %q: %w", s, err)
	}
	if u.Scheme != "http" {
		return nil, fmt.Errorf("proxy %q: only http:// CONNECT proxies are supported", s)
	}
	if u.Port() == "" {
		u.Host = net.JoinHostPort(u.Hostname(), "8080")
	}
	if u.Hostname() == "" {
		return nil, fmt.Errorf("proxy %q: no host", s)
	}
	return u, nil
}

// noProxy reports whether NO_PROXY lists target: "*", an address, or a CIDR prefix.
func noProxy(list string, target netip.Addr) bool {
	for _, f := range strings.Split(list, ",") {
		f = strings.TrimSpace(f)
		switch {
		case f == "":
		case f == "*":
			return true
		default:
			if p, err := netip.ParsePrefix(f); err == nil && p.Contains(target) {
				return true
			}
			if a, err := netip.ParseAddr(f); err == nil && a == target {
				return true
			}
		}
	}
	return false
}

// ServiceProbe runs one service probe and returns its verdict. It never returns an error:
// what went wrong is the verdict. The TTL of a TCP reset is read with a raw socket when we
// may open one (root or CAP_NET_RAW), to tell the target's own reset from a device's.
func ServiceProbe(ctx context.Context, cfg ServiceConfig) report.Result {
	if cfg.Timeout == 0 {
		cfg.Timeout = DefaultServiceTimeout
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	id := TCP(cfg.Port)
	if cfg.TLS {
		id = TLS(cfg.Port)
	}
	sp := &serviceRun{cfg: cfg, res: report.Result{Probe: string(id), Direction: report.Forward,
		Evidence: report.Evidence{DestPort: cfg.Port, Attempts: 1, TLS: &report.TLS{Step: "connect", SNI: cfg.ServerName}}}}
	if !cfg.TLS {
		sp.res.Evidence.TLS = nil
	}
	ctx, cancel := context.WithTimeout(ctx, cfg.Timeout)
	defer cancel()
	sp.run(ctx)
	return sp.res
}

type serviceRun struct {
	cfg       ServiceConfig
	res       report.Result
	localPort int
	resets    *resetWatcher
	peer      netip.Addr // who we connect to: the target or the proxy
}

func (sp *serviceRun) ev() *report.TLS {
	if sp.res.Evidence.TLS == nil {
		sp.res.Evidence.TLS = &report.TLS{}
	}
	return sp.res.Evidence.TLS
}

func (sp *serviceRun) targetStr() string {
	return netip.AddrPortFrom(sp.cfg.Target, uint16(sp.cfg.Port)).String()
}

func (sp *serviceRun) set(v report.Verdict, detail string) {
	sp.res.Verdict, sp.res.Detail = v, detail
}

func (sp *serviceRun) run(ctx context.Context) {
	dialAddr := sp.targetStr()
	sp.peer = sp.cfg.Target
	if sp.cfg.Proxy != nil {
		dialAddr = sp.cfg.Proxy.Host
		if ap, err := netip.ParseAddrPort(dialAddr); err == nil {
			sp.peer = ap.Addr().Unmap()
		} else {
			sp.peer = netip.Addr{}
		}
		sp.ev().Proxy = sp.cfg.Proxy.Host
	}
	sp.resets = openResetWatcher()
	defer sp.resets.close()

	t0 := time.Now()
	d := net.Dialer{Control: sp.bindControl}
	conn, err := d.DialContext(ctx, "tcp4", dialAddr)
	if err != nil {
		sp.connectFailed(ctx, dialAddr, err)
		return
	}
	defer conn.Close()
	sp.res.Evidence.RTTms = ms(time.Since(t0))
	if deadline, ok := ctx.Deadline(); ok {
		_ = conn.SetDeadline(deadline)
	}
	if sp.cfg.Proxy != nil {
		if !sp.connectThroughProxy(conn) {
			return
		}
	}
	if !sp.cfg.TLS {
		sp.res.Evidence.Answer = "connect"
		via := ""
		if sp.cfg.Proxy != nil {
			via = " through the proxy " + sp.cfg.Proxy.Host
		}
		sp.set(report.Pass, fmt.Sprintf("TCP to %s connects%s.", sp.targetStr(), via))
		return
	}
	sp.handshake(ctx, conn)
}

// bindControl binds the socket before connect, so the reset watcher knows our port.
func (sp *serviceRun) bindControl(_, _ string, c syscall.RawConn) error {
	var berr error
	err := c.Control(func(fd uintptr) {
		if berr = unix.Bind(int(fd), &unix.SockaddrInet4{}); berr != nil {
			return
		}
		sa, err := unix.Getsockname(int(fd))
		if err != nil {
			berr = err
			return
		}
		if in4, ok := sa.(*unix.SockaddrInet4); ok {
			sp.localPort = in4.Port
		}
	})
	if err != nil {
		return err
	}
	return berr
}

// connectFailed judges a TCP connect (toward the target or the proxy) that failed.
func (sp *serviceRun) connectFailed(ctx context.Context, dialAddr string, err error) {
	who := "the target " + sp.targetStr()
	if sp.cfg.Proxy != nil {
		who = "the proxy " + dialAddr
	}
	switch {
	case errors.Is(err, syscall.ECONNREFUSED):
		sp.res.Evidence.Answer = "rst"
		sp.judgeReset(ctx, "a TCP reset answered our SYN", who)
	case errors.Is(err, syscall.EHOSTUNREACH), errors.Is(err, syscall.ENETUNREACH):
		sp.res.Evidence.Answer = "icmp-unreachable"
		sp.set(report.Blocked, fmt.Sprintf("TCP to %s failed: %v (an ICMP unreachable came back, or this host has no route).", who, errors.Unwrap(err)))
	case ctx.Err() != nil || isNetTimeout(err):
		sp.set(report.Dropped, fmt.Sprintf("No SYN-ACK from %s within %s: a device on the path drops TCP port %s silently (or nothing is there).", who, sp.cfg.Timeout, portOf(dialAddr)))
	default:
		sp.set(report.Error, fmt.Sprintf("TCP connect to %s failed on this host: %v.", who, err))
	}
}

func portOf(hostport string) string {
	_, p, _ := net.SplitHostPort(hostport)
	return p
}

func isNetTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

// judgeReset says who sent a reset: its TTL against the distance of the peer's own answers
// (an ICMP echo reply), estimated like check's one-ended TCP verdicts.
func (sp *serviceRun) judgeReset(ctx context.Context, what, who string) {
	rst, ok := sp.resets.wait(sp.peer, sp.localPort)
	if !ok {
		sp.res.Evidence.Inferred = "the reset's TTL could not be read (no raw socket: run as root to tell the target's reset from a device's)"
		sp.set(report.Blocked, fmt.Sprintf("%s from %s; who sent it is unknown (its TTL could not be read).", capitalize(what), who))
		return
	}
	sp.ev().ResetTTL = int(rst.ttl)
	sp.res.Evidence.AnsweredBy = rst.from.String()
	ref, refOK := echoTTL(ctx, sp.peer)
	hops := hopCount(rst.ttl)
	if !refOK {
		sp.res.Evidence.Inferred = fmt.Sprintf("RST arrived with TTL %d (%d hops away); %s does not answer echo, so its distance is unknown", rst.ttl, hops, sp.peer)
		sp.set(report.Blocked, fmt.Sprintf("%s (TTL %d, %d hops away) in %s's name; whether %s or a device before it sent it cannot be told (no echo reply to compare).", capitalize(what), rst.ttl, hops, sp.peer, sp.peer))
		return
	}
	refHops := hopCount(ref)
	if hops < refHops {
		sp.res.Hop = &report.Hop{TTL: hops + 1}
		sp.res.Evidence.Inferred = fmt.Sprintf("RST arrived with TTL %d (%d hops away), %s's echo reply with TTL %d (%d hops): the RST came from a device %d hop(s) closer (estimated hop %d)",
			rst.ttl, hops, sp.peer, ref, refHops, refHops-hops, hops+1)
		sp.set(report.Blocked, fmt.Sprintf("%s, sent by a device about %d hop(s) from here (estimated from its TTL), not by %s: a firewall on the path resets TCP port %d; permit it there.",
			capitalize(what), hops+1, who, sp.cfg.Port))
		return
	}
	sp.res.Evidence.Inferred = fmt.Sprintf("RST arrived with TTL %d (%d hops away), like %s's echo reply (TTL %d): %s itself refused", rst.ttl, hops, sp.peer, ref, sp.peer)
	sp.set(report.Blocked, fmt.Sprintf("%s from %s itself: nothing listens on port %s there (or its own firewall rejects us).", capitalize(what), who, portOf(who)))
}

// connectThroughProxy sends CONNECT and reads the proxy's answer; false means the verdict is set.
func (sp *serviceRun) connectThroughProxy(conn net.Conn) bool {
	ev := sp.ev()
	ev.Step = "proxy"
	target := sp.targetStr()
	req := "CONNECT " + target + " HTTP/1.1\r\nHost: " + target + "\r\nUser-Agent: ipsecpath\r\n"
	if u := sp.cfg.Proxy.User; u != nil {
		req += "Proxy-Authorization: Basic " + basicAuth(u) + "\r\n"
	}
	req += "\r\n"
	if _, err := io.WriteString(conn, req); err != nil {
		sp.set(report.Error, fmt.Sprintf("Sending CONNECT to the proxy %s failed: %v.", sp.cfg.Proxy.Host, err))
		return false
	}
	br := bufio.NewReader(conn)
	resp, err := http.ReadResponse(br, &http.Request{Method: http.MethodConnect})
	if err != nil {
		if errors.Is(err, syscall.ECONNRESET) {
			sp.set(report.Blocked, fmt.Sprintf("The proxy %s reset the connection after our CONNECT to %s.", sp.cfg.Proxy.Host, target))
		} else if isNetTimeout(err) {
			sp.set(report.Dropped, fmt.Sprintf("The proxy %s accepted TCP but never answered our CONNECT to %s within %s.", sp.cfg.Proxy.Host, target, sp.cfg.Timeout))
		} else {
			sp.set(report.Blocked, fmt.Sprintf("The proxy %s did not answer our CONNECT to %s with HTTP (%v): is it an HTTP proxy?", sp.cfg.Proxy.Host, target, err))
		}
		return false
	}
	resp.Body.Close()
	status := fmt.Sprintf("%s %s", resp.Proto, resp.Status)
	ev.ProxyStatus = status
	sp.res.Evidence.Answer = "proxy " + strconv.Itoa(resp.StatusCode)
	switch {
	case resp.StatusCode == http.StatusOK:
		if br.Buffered() > 0 {
			sp.set(report.Error, fmt.Sprintf("The proxy %s sent data after its 200 answer to CONNECT: it is not a plain CONNECT tunnel.", sp.cfg.Proxy.Host))
			return false
		}
		return true
	case resp.StatusCode >= 500:
		sp.set(report.Blocked, fmt.Sprintf("The proxy %s accepted our CONNECT but could not reach %s (%q): the path behind the proxy is broken, not the way to it.", sp.cfg.Proxy.Host, target, status))
	default:
		sp.set(report.Blocked, fmt.Sprintf("The proxy %s refused to CONNECT to %s (%q): its own policy says no (allowed ports, ACLs or authentication), not the path.", sp.cfg.Proxy.Host, target, status))
	}
	return false
}

func basicAuth(u *url.Userinfo) string {
	p, _ := u.Password()
	return base64Std(u.Username() + ":" + p)
}

// countConn counts what the handshake writes before the server's first byte arrives: the
// ClientHello.
type countConn struct {
	net.Conn
	written  int
	gotBytes bool
	mss      int // the connection's TCP MSS, 0 when unknown
}

func (c *countConn) Write(b []byte) (int, error) {
	if !c.gotBytes {
		c.written += len(b)
	}
	return c.Conn.Write(b)
}

func (c *countConn) Read(b []byte) (int, error) {
	n, err := c.Conn.Read(b)
	if n > 0 {
		c.gotBytes = true
	}
	return n, err
}

// handshake runs the TLS handshake over conn and judges it.
func (sp *serviceRun) handshake(ctx context.Context, conn net.Conn) {
	ev := sp.ev()
	ev.Step = "handshake"
	cc := &countConn{Conn: conn, mss: connMSS(conn)} // read now: a cancelled handshake closes conn
	var leaf *x509.Certificate
	var verifyErr error
	requested := false
	ts := &ticketSignal{}
	cfg := &tls.Config{
		ClientSessionCache: ts,
		ServerName:         sp.cfg.ServerName,
		InsecureSkipVerify: true, // verified below, to name what is wrong with the certificate
		Time:               sp.cfg.Now,
		GetClientCertificate: func(*tls.CertificateRequestInfo) (*tls.Certificate, error) {
			requested = true
			if sp.cfg.Certificate != nil {
				return sp.cfg.Certificate, nil
			}
			return &tls.Certificate{}, nil
		},
		VerifyConnection: func(cs tls.ConnectionState) error {
			if len(cs.PeerCertificates) == 0 {
				verifyErr = errors.New("the server sent no certificate")
				return verifyErr
			}
			leaf = cs.PeerCertificates[0]
			opts := x509.VerifyOptions{Roots: sp.cfg.RootCAs, CurrentTime: sp.cfg.Now(), Intermediates: x509.NewCertPool(),
				DNSName: sp.cfg.ServerName}
			if opts.DNSName == "" {
				opts.DNSName = sp.cfg.Target.String()
			}
			for _, c := range cs.PeerCertificates[1:] {
				opts.Intermediates.AddCert(c)
			}
			_, verifyErr = leaf.Verify(opts)
			return verifyErr
		},
	}
	tc := tls.Client(cc, cfg)
	hctx := ctx
	if d, ok := ctx.Deadline(); ok && sp.cfg.Proxy == nil {
		// keep half the time for a second handshake with a small ClientHello, should this
		// one meet silence
		var cancel context.CancelFunc
		hctx, cancel = context.WithDeadline(ctx, time.Now().Add(time.Until(d)/2))
		defer cancel()
	}
	err := tc.HandshakeContext(hctx)
	ev.ClientHelloSize = cc.written
	if leaf != nil {
		ev.Subject, ev.Issuer = leaf.Subject.String(), leaf.Issuer.String()
		ev.NotBefore, ev.NotAfter = leaf.NotBefore.UTC().Format(time.RFC3339), leaf.NotAfter.UTC().Format(time.RFC3339)
	}
	accepted := ""
	if err == nil && requested && tc.ConnectionState().Version == tls.VersionTLS13 {
		// the server judges our certificate after our Finished: a refusal comes as an alert,
		// an acceptance (usually) as a session ticket
		ts.conn = tc
		_ = tc.SetReadDeadline(time.Now().Add(PostHandshakeWait))
		var b [1]byte
		_, rerr := tc.Read(b[:])
		switch {
		case ts.got.Load():
			accepted = "; the server accepted our client certificate (it sent a session ticket after judging it)"
		case rerr == nil:
			accepted = "; the server accepted our client certificate (it sent data after judging it)"
		case isNetTimeout(rerr):
			accepted = fmt.Sprintf("; the server asked for our client certificate and sent no alert within %s (nor a session ticket: its acceptance is not proven)", PostHandshakeWait)
		case errors.Is(rerr, io.EOF):
			accepted = "; the server closed the connection right after the handshake, without an alert"
		default:
			err = rerr
		}
	}
	switch {
	case err == nil:
		st := tc.ConnectionState()
		ev.Step = "done"
		ev.Version, ev.Cipher = tls.VersionName(st.Version), tls.CipherSuiteName(st.CipherSuite)
		sp.res.Evidence.Answer = "tls-handshake"
		via := ""
		if sp.cfg.Proxy != nil {
			via = " through the proxy " + sp.cfg.Proxy.Host
		}
		sp.set(report.Pass, fmt.Sprintf("The TLS handshake with %s completes%s (%s, certificate %q valid until %s)%s.",
			sp.targetStr(), via, ev.Version, leaf.Subject.CommonName, leaf.NotAfter.UTC().Format("2006-01-02"), accepted))
		tc.Close()
	case verifyErr != nil:
		ev.Step = "verify"
		sp.verifyFailed(leaf, verifyErr)
	default:
		sp.handshakeFailed(ctx, conn, cc, err)
	}
}

// verifyFailed names what is wrong with the server's certificate, by our own check.
func (sp *serviceRun) verifyFailed(leaf *x509.Certificate, err error) {
	ev := sp.ev()
	sp.res.Evidence.Answer = "tls-certificate"
	var inv x509.CertificateInvalidError
	var host x509.HostnameError
	var ua x509.UnknownAuthorityError
	subj := ""
	if leaf != nil {
		subj = fmt.Sprintf(" %q (issuer %q, valid %s to %s)", leaf.Subject.String(), leaf.Issuer.String(),
			leaf.NotBefore.UTC().Format(time.RFC3339), leaf.NotAfter.UTC().Format(time.RFC3339))
	}
	now := sp.cfg.Now().UTC().Format(time.RFC3339)
	switch {
	case errors.As(err, &inv) && inv.Reason == x509.Expired && leaf != nil && sp.cfg.Now().Before(leaf.NotBefore):
		ev.VerifyError = "not-yet-valid"
		sp.set(report.Blocked, fmt.Sprintf("The path and the server work, but we refuse the server's certificate%s: it is not valid yet (our clock says %s; check the clocks, or the certificate's dates).", subj, now))
	case errors.As(err, &inv) && inv.Reason == x509.Expired:
		ev.VerifyError = "expired"
		sp.set(report.Blocked, fmt.Sprintf("The path and the server work, but we refuse the server's certificate%s: it has expired (our clock says %s): renew it on the server.", subj, now))
	case errors.As(err, &host):
		ev.VerifyError = "name-mismatch"
		name := sp.cfg.ServerName
		if name == "" {
			name = sp.cfg.Target.String()
		}
		sp.set(report.Blocked, fmt.Sprintf("The path and the server work, but the server's certificate%s is not for %s (%v): give the right --sni, or fix the certificate.", subj, name, host.Error()))
	case errors.As(err, &ua):
		ev.VerifyError = "unknown-authority"
		sp.set(report.Blocked, fmt.Sprintf("The path and the server work, but the server's certificate%s is not signed by a CA we trust: give its CA with --ca (after a certificate change, the client's CA file is often stale).", subj))
	default:
		ev.VerifyError = "invalid"
		sp.set(report.Blocked, fmt.Sprintf("The path and the server work, but we refuse the server's certificate%s: %v.", subj, err))
	}
}

// handshakeFailed judges a handshake that failed other than by our own verification.
func (sp *serviceRun) handshakeFailed(ctx context.Context, conn net.Conn, cc *countConn, err error) {
	ev := sp.ev()
	if code, ok := receivedAlert(err); ok {
		name := AlertName(code)
		ev.Alert = name
		sp.res.Evidence.Answer = "tls-alert"
		sp.set(report.Blocked, fmt.Sprintf("The TLS server %s refused the handshake with the alert %s%s.", sp.targetStr(), name, alertAdvice(name, sp.cfg.Certificate != nil)))
		return
	}
	switch {
	case errors.Is(err, syscall.ECONNRESET):
		sp.res.Evidence.Answer = "rst"
		sp.judgeReset(ctx, "a TCP reset ended the connection after our ClientHello", "the target "+sp.targetStr())
	case errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF):
		sp.res.Evidence.Answer = "fin"
		sp.set(report.Blocked, fmt.Sprintf("%s closed the connection after our ClientHello without a TLS alert: it does not speak TLS there, or a device cut the connection.", sp.targetStr()))
	case ctx.Err() != nil || isNetTimeout(err):
		if cc.gotBytes {
			sp.set(report.Dropped, fmt.Sprintf("The TLS handshake with %s started but stalled within %s after the server's first answer: large server flights (certificate chains) may be lost on the path (a fragment or MSS problem).", sp.targetStr(), sp.cfg.Timeout))
			return
		}
		mss := cc.mss
		if sp.cfg.Proxy == nil && cc.written > smallHelloMax {
			small, answered := sp.smallHello(ctx)
			sp.res.Evidence.Extra = fmt.Sprintf("ClientHello %d bytes (TCP MSS %d): no answer; a second handshake with a %d-byte ClientHello: answered=%v", cc.written, mss, small, answered)
			if answered {
				sp.set(report.Dropped, fmt.Sprintf("TCP to %s connects and a small ClientHello (%d bytes) is answered, but our full one (%d bytes, TCP segments up to %d bytes) gets no answer: a device on the path drops large packets (a PMTU black hole, a missing MSS clamp, or dropped fragments): a fragment/MSS problem, not TLS; clamp the TCP MSS or fix path MTU discovery there.",
					sp.targetStr(), small, cc.written, mss))
				return
			}
		}
		sp.set(report.Dropped, fmt.Sprintf("TCP to %s connects, but our ClientHello (%d bytes) got no answer within %s: the service does not speak TLS first, or a device holds the connection.", sp.targetStr(), cc.written, sp.cfg.Timeout))
	default:
		sp.set(report.Blocked, fmt.Sprintf("The TLS handshake with %s failed: %v.", sp.targetStr(), err))
	}
}

// connMSS reads the connection's TCP maximum segment size (0 when unknown).
func connMSS(c net.Conn) int {
	tc, ok := c.(*net.TCPConn)
	if !ok {
		return 0
	}
	rc, err := tc.SyscallConn()
	if err != nil {
		return 0
	}
	mss := 0
	_ = rc.Control(func(fd uintptr) {
		if v, err := unix.GetsockoptInt(int(fd), unix.IPPROTO_TCP, unix.TCP_MAXSEG); err == nil {
			mss = v
		}
	})
	return mss
}

// alertNames are the TLS alert descriptions by their RFC 8446 (and RFC 5246) names.
var alertNames = map[uint8]string{
	0: "close_notify", 10: "unexpected_message", 20: "bad_record_mac", 22: "record_overflow",
	40: "handshake_failure", 42: "bad_certificate", 43: "unsupported_certificate", 44: "certificate_revoked",
	45: "certificate_expired", 46: "certificate_unknown", 47: "illegal_parameter", 48: "unknown_ca",
	49: "access_denied", 50: "decode_error", 51: "decrypt_error", 70: "protocol_version",
	71: "insufficient_security", 80: "internal_error", 86: "inappropriate_fallback", 90: "user_canceled",
	109: "missing_extension", 110: "unsupported_extension", 112: "unrecognized_name",
	113: "bad_certificate_status_response", 115: "unknown_psk_identity", 116: "certificate_required",
	120: "no_application_protocol",
}

// AlertName is the RFC name of a TLS alert description ("unknown_ca"), or "alert_N".
func AlertName(code uint8) string {
	if n, ok := alertNames[code]; ok {
		return n
	}
	return "alert_" + strconv.Itoa(int(code))
}

func alertAdvice(name string, sentCert bool) string {
	switch name {
	case "unknown_ca":
		if sentCert {
			return ": the server does not trust the CA that signed our client certificate (--client-cert); re-exchange the client certificate with the server (after a certificate change its CA list is often stale)"
		}
		return ": the server does not trust a CA in the handshake"
	case "bad_certificate", "unsupported_certificate", "certificate_unknown":
		return ": the server rejected our client certificate (--client-cert)"
	case "certificate_required":
		return ": the server needs a client certificate; give one with --client-cert/--client-key"
	case "certificate_expired":
		return ": the server says our client certificate has expired; renew it"
	case "handshake_failure":
		return ": no common protocol version or cipher, or (TLS 1.2) a client certificate it wanted and did not get"
	case "protocol_version":
		return ": no TLS version in common"
	case "unrecognized_name":
		return ": the server does not know the name we sent (--sni)"
	}
	return ""
}

// smallHelloMax is the ClientHello size above which silence is checked with a small one.
const smallHelloMax = 600

// smallHello opens a second connection and sends a ClientHello offering only X25519 (no
// post-quantum key share: a few hundred bytes). It reports the size sent and whether
// anything came back.
func (sp *serviceRun) smallHello(ctx context.Context) (int, bool) {
	var d net.Dialer
	conn, err := d.DialContext(ctx, "tcp4", sp.targetStr())
	if err != nil {
		return 0, false
	}
	defer conn.Close()
	if dl, ok := ctx.Deadline(); ok {
		_ = conn.SetDeadline(dl)
	}
	cc := &countConn{Conn: conn}
	tc := tls.Client(cc, &tls.Config{ServerName: sp.cfg.ServerName, InsecureSkipVerify: true, // only: does anything answer
		CurvePreferences: []tls.CurveID{tls.X25519}})
	_ = tc.HandshakeContext(ctx)
	return cc.written, cc.gotBytes
}

// receivedAlert returns the description of a TLS alert the peer sent. crypto/tls reports it
// as a *net.OpError with Op "remote error" whose Err is its (unexported) uint8 alert type;
// a tls.AlertError (QUIC, and maybe later TCP) is taken too.
func receivedAlert(err error) (uint8, bool) {
	var ae tls.AlertError
	if errors.As(err, &ae) {
		return uint8(ae), true
	}
	var oe *net.OpError
	if !errors.As(err, &oe) || oe.Op != "remote error" || oe.Err == nil {
		return 0, false
	}
	v := reflect.ValueOf(oe.Err)
	if v.Kind() != reflect.Uint8 || v.Type().PkgPath() != "crypto/tls" {
		return 0, false
	}
	return uint8(v.Uint()), true
}

// ticketSignal is a ClientSessionCache that stores nothing: its Put says a session ticket
// arrived (the server's sign that the handshake, our certificate included, was accepted) and
// ends the pending read at once.
type ticketSignal struct {
	got  atomic.Bool
	conn *tls.Conn // set before the post-handshake read; Put runs inside that read
}

func (t *ticketSignal) Get(string) (*tls.ClientSessionState, bool) { return nil, false }

func (t *ticketSignal) Put(_ string, cs *tls.ClientSessionState) {
	if cs == nil || t.conn == nil {
		return
	}
	t.got.Store(true)
	_ = t.conn.SetReadDeadline(time.Now())
}
