package report

// TLS is the evidence of a tls:PORT probe: how far the handshake got and what stopped it.
type TLS struct {
	// Step is the last step reached: "connect" (TCP toward the server or the proxy),
	// "proxy" (the CONNECT request), "handshake" (ClientHello sent, waiting for the
	// server), "verify" (our check of the server's certificate), "done".
	Step string `json:"step"`
	// Alert is the TLS alert the server sent, by its RFC 8446 name ("unknown_ca").
	Alert string `json:"alert,omitempty"`
	// VerifyError is why we refused the server's certificate ("expired", "not-yet-valid",
	// "name-mismatch", "unknown-authority", or "invalid" for any other reason the detail names).
	VerifyError string `json:"verify_error,omitempty"`
	// The server's (leaf) certificate, when it sent one.
	Subject   string `json:"subject,omitempty"`
	Issuer    string `json:"issuer,omitempty"`
	NotBefore string `json:"not_before,omitempty"` // RFC 3339
	NotAfter  string `json:"not_after,omitempty"`  // RFC 3339
	Version   string `json:"version,omitempty"`    // negotiated: "TLS 1.3"
	Cipher    string `json:"cipher,omitempty"`
	SNI       string `json:"sni,omitempty"`
	// ClientHelloSize is the size of our ClientHello record, in bytes.
	ClientHelloSize int `json:"client_hello_size,omitempty"`
	// Proxy is the HTTP CONNECT proxy used (host:port), ProxyStatus its status line.
	Proxy       string `json:"proxy,omitempty"`
	ProxyStatus string `json:"proxy_status,omitempty"`
	// ResetTTL is the TTL a TCP reset arrived with, when one ended the probe.
	ResetTTL int `json:"reset_ttl,omitempty"`
}
