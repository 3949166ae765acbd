package certs

import (
	"context"

	"sigs.k8s.io/controller-runtime/pkg/webhook"
)

// GatedServer is a webhook.Server that starts serving only after Ready closes. The plain server
// fails (and takes the manager down) when its certificate file is missing, which is the normal
// state of a self-managed install's first seconds. Its StartedChecker is the inner server's, so
// /readyz stays failing until TLS is really served.
type GatedServer struct {
	webhook.Server
	// Ready is set by the caller, from Setup, before the manager starts. Nil means no wait.
	Ready <-chan struct{}
}

// Start implements manager.Runnable.
func (g *GatedServer) Start(ctx context.Context) error {
	if g.Ready != nil {
		select {
		case <-g.Ready:
		case <-ctx.Done():
			return nil
		}
	}
	return g.Server.Start(ctx)
}
