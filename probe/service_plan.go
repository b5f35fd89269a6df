package probe

import (
	"context"
	"time"

	"github.com/ipsecpath/ipsecpath/report"
)

// ServicePlan is what a check runs beside its raw probes, one after the other: TCP connects
// through Base's proxy to each of ProxyTCP (tcp:PORT as a CONNECT, forward only), then a
// full TLS handshake to each of TLSPorts (tls:PORT), every one from Base with its port.
type ServicePlan struct {
	Base     ServiceConfig
	ProxyTCP []int
	TLSPorts []int
}

// Run runs the plan's probes, each bounded by timeout, and returns their results in order.
func (p *ServicePlan) Run(ctx context.Context, timeout time.Duration) []report.Result {
	var out []report.Result
	for _, port := range p.ProxyTCP {
		c := p.Base
		c.Port, c.TLS, c.Timeout = port, false, timeout
		out = append(out, ServiceProbe(ctx, c))
	}
	for _, port := range p.TLSPorts {
		c := p.Base
		c.Port, c.TLS, c.Timeout = port, true, timeout
		out = append(out, ServiceProbe(ctx, c))
	}
	return out
}
