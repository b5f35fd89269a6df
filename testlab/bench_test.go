package testlab

import (
	"context"
	"os"
	"testing"
	"time"
)

// BenchmarkUp measures a whole lab: Up with strongSwan and the IKEv2 tunnel established,
// then Close. Run with -benchtime=5x; each iteration takes about a second.
func BenchmarkUp(b *testing.B) {
	RequireRoot(b)
	RequireTools(b, "ip", "nft", "swanctl", CharonPath)
	b.ReportAllocs()
	var upSum, closeSum time.Duration
	for i := 0; i < b.N; i++ {
		ctx, cancel := context.WithTimeout(context.Background(), ForTestTimeout)
		t0 := time.Now()
		l, err := Up(ctx, Spec{Name: "b" + itoa(os.Getpid()) + "-" + itoa(i)})
		cancel()
		if err != nil {
			b.Fatal(err)
		}
		up := time.Since(t0)
		if !l.TunnelUp() {
			b.Fatalf("tunnel down: %v", l.TunnelErr())
		}
		t1 := time.Now()
		if err := l.Close(); err != nil {
			b.Fatal(err)
		}
		upSum += up
		closeSum += time.Since(t1)
	}
	b.ReportMetric(float64(upSum.Milliseconds())/float64(b.N), "up-ms/op")
	b.ReportMetric(float64(closeSum.Milliseconds())/float64(b.N), "close-ms/op")
}
