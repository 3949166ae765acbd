// Command dns-tuner is a Kubernetes mutating admission webhook that gives each pod the
// resolver options its containers' libc actually honours.
package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"

	"github.com/dns-tuner/dns-tuner/internal/cli"
	"github.com/dns-tuner/dns-tuner/webhook"
)

var version = "dev"

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, os.Args[1:], os.Stdout, os.Stderr); err != nil {
		fmt.Fprintln(os.Stderr, name(os.Args[0])+":", err)
		os.Exit(1)
	}
}

// name is how dns-tuner was invoked: installed as kubectl-dns_tuner it is the kubectl plugin
// `kubectl dns-tuner`, with the same commands (kubectl passes the words after the plugin's).
func name(argv0 string) string {
	if strings.TrimSuffix(filepath.Base(argv0), ".exe") == "kubectl-dns_tuner" {
		return "kubectl dns-tuner"
	}
	return "dns-tuner"
}

func run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	return cli.Main(ctx, args, stdout, stderr, []cli.Command{
		&cli.Serve{Admission: webhook.Admission},
		&cli.Inspect{},
		&cli.Explain{},
		&cli.Audit{},
		&cli.Version{Version: version},
	})
}
