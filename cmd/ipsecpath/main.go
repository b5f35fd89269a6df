// Command ipsecpath finds where a network path breaks IKE/IPsec: dropped fragments, blocked
// ESP/AH/UDP 500/4500, black-holed path MTU, stateful firewalls, and cut TCP services.
package main

import (
	"context"
	"os"
	"os/signal"
	"syscall"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}
