package cli

import (
	"context"
	"flag"
	"fmt"
	"io"

	ctrl "sigs.k8s.io/controller-runtime"

	"github.com/dns-tuner/dns-tuner/internal/certs"
	"github.com/dns-tuner/dns-tuner/internal/server"
)

// Serve is `dns-tuner serve`: the mutating admission webhook.
type Serve struct {
	// Admission is the handler to serve, supplied by cmd/dns-tuner.
	Admission  server.Admission
	opts       server.Options
	kubeconfig string
}

func (s *Serve) Info() Info {
	return Info{Name: "serve", Args: "[flags]", Short: "serve the mutating admission webhook"}
}

func (s *Serve) BindFlags(fs *flag.FlagSet) {
	s.opts.BindFlags(fs)
	bindKubeconfig(fs, &s.kubeconfig)
	bindInsecureRegistries(fs, &s.opts.InsecureRegistries)
}

func (s *Serve) Run(ctx context.Context, args []string, _, _ io.Writer) error {
	if len(args) > 0 {
		return usageErrorf("serve takes no arguments, got %q", args)
	}
	log, err := s.opts.Log.Logger()
	if err != nil {
		return err
	}
	cfg, err := restConfig(s.kubeconfig)
	if err != nil {
		return fmt.Errorf("loading kubeconfig: %w", err)
	}
	ctrl.SetLogger(certs.QuietRotationConflicts(log))
	return server.Run(ctx, s.opts, cfg, s.Admission, log)
}
