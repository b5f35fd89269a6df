package testlab

import (
	"context"
	"strings"
	"testing"
	"time"
)

func TestCleanTunnel(t *testing.T) {
	t.Parallel()
	t0 := time.Now()
	l := ForTest(t, Spec{Profile: "clean"})
	t.Logf("up in %v", time.Since(t0))
	if !l.TunnelUp() {
		t.Fatalf("tunnel not up: %v", l.TunnelErr())
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	out, err := l.Swanctl(ctx, NodeIni, "--list-sas")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(out), "ESTABLISHED") || !strings.Contains(string(out), "INSTALLED") {
		t.Fatalf("list-sas: %s", out)
	}
	out, err = l.Exec(ctx, NodeLanA, "ping", "-c", "3", "-i", "0.2", "-W", "2", "192.0.2.130")
	if err != nil {
		t.Fatalf("ping through tunnel: %v\n%s", err, out)
	}
}
