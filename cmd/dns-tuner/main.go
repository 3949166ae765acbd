// Command dns-tuner is a Kubernetes mutating admission webhook that gives each pod the
// resolver options its containers' libc actually honours.
package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"

	"github.com/dns-tuner/dns-tuner/internal/cli"
	"github.com/dns-tuner/dns-tuner/webhook"
)

var version = "dev"

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, os.Args[1:], os.Stdout, os.Stderr); err != nil {
		fmt.Fprintln(os.Stderr, "dns-tuner:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	return cli.Main(ctx, args, stdout, stderr, []cli.Command{
		&cli.Serve{Admission: webhook.Admission},
		&cli.Inspect{},
		&cli.Explain{},
		&cli.Version{Version: version},
	})
}
