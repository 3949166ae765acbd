// Command dns-tuner is a Kubernetes mutating admission webhook that gives each pod the
// resolver options its containers' libc actually honours.
package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"

	"github.com/google/go-containerregistry/pkg/authn"
	ctrl "sigs.k8s.io/controller-runtime"

	"github.com/dns-tuner/dns-tuner/internal/certs"
	"github.com/dns-tuner/dns-tuner/internal/explain"
	"github.com/dns-tuner/dns-tuner/internal/inspectcmd"
	"github.com/dns-tuner/dns-tuner/internal/libc"
	"github.com/dns-tuner/dns-tuner/internal/policy"
	"github.com/dns-tuner/dns-tuner/internal/server"
	"github.com/dns-tuner/dns-tuner/internal/verdicts"
)

const usage = `dns-tuner: libc-aware DNS resolver options for Kubernetes pods.

Usage:
  dns-tuner serve [flags]     serve the mutating admission webhook
  dns-tuner inspect IMAGE...  decide images' libc from their registry, with evidence
  dns-tuner explain -f FILE   what dns-tuner does to a pod or workload, and why
  dns-tuner version           print the version

Run "dns-tuner <command> -h" for a command's flags.
`

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
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return fmt.Errorf("no command given")
	}
	switch args[0] {
	case "serve":
		return serve(ctx, args[1:], stderr)
	case "inspect":
		return inspectcmd.Run(ctx, args[1:], stdout, stderr)
	case "explain":
		return explain.Run(ctx, args[1:], stdout, stderr, localDetector)
	case "version":
		fmt.Fprintln(stdout, version)
		return nil
	case "-h", "--help", "help":
		fmt.Fprint(stdout, usage)
		return nil
	}
	fmt.Fprint(stderr, usage)
	return fmt.Errorf("unknown command %q", args[0])
}

// localDetector inspects registries as admission does, with the local docker config's
// credentials instead of a pod's pull secrets.
func localDetector(ctx context.Context, in policy.Inspection) (libc.Detector, error) {
	return verdicts.FromPolicy(in, verdicts.Options{
		BaseContext: ctx,
		Keychain: func(context.Context, string, string, []string) (authn.Keychain, error) {
			return authn.DefaultKeychain, nil
		},
	})
}

func serve(ctx context.Context, args []string, stderr io.Writer) error {
	fs := flag.NewFlagSet("serve", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var o server.Options
	o.BindFlags(fs)
	if err := fs.Parse(args); err != nil {
		return err
	}
	log, err := o.Log.Logger()
	if err != nil {
		return err
	}
	// cert-controller logs through controller-runtime's global logger
	ctrl.SetLogger(certs.QuietRotationConflicts(log))
	return server.Run(ctx, o, nil, log)
}
