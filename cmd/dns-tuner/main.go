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

	"sigs.k8s.io/controller-runtime/pkg/webhook/admission"

	"github.com/dns-tuner/dns-tuner/internal/cli"
	"github.com/dns-tuner/dns-tuner/internal/server"
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
		&cli.Serve{Admission: admit},
		&cli.Inspect{},
		&cli.Explain{},
		&cli.Version{Version: version},
	})
}

// admit is the webhook package's pod handler, built on what `serve` wired. It is here,
// in the binary, so that no library imports the admission adapter.
var admit = server.Admission{
	Path: webhook.Path,
	New: func(d server.Deps) admission.Handler {
		return &webhook.PodMutator{Policy: d.Policy, Namespaces: d.Namespaces, APIReader: d.APIReader, Detector: d.Detector, Log: d.Log}
	},
}
