package server

import (
	ctrl "sigs.k8s.io/controller-runtime"
	ctrlwebhook "sigs.k8s.io/controller-runtime/pkg/webhook"

	"github.com/dns-tuner/dns-tuner/internal/certs"
)

// newWebhookServer builds the webhook server, held back by setupCerts until the serving
// certificate exists, so a fresh self-managed install starts unready instead of crashing.
func newWebhookServer(o Options) *certs.GatedServer {
	return &certs.GatedServer{Server: ctrlwebhook.NewServer(ctrlwebhook.Options{
		Host: o.WebhookHost, Port: o.WebhookPort, CertDir: o.CertDir, CertName: o.CertName, KeyName: o.KeyName,
	})}
}

// setupCerts adds certificate handling (--cert-mode) to mgr and opens srv once the certificate
// is ready; /readyz follows srv.
func setupCerts(mgr ctrl.Manager, o Options, srv *certs.GatedServer) error {
	co := o.Certs
	co.Namespace, co.CertDir, co.CertName, co.KeyName = o.Namespace, o.CertDir, o.CertName, o.KeyName
	ready, err := certs.Setup(mgr, co)
	if err != nil {
		return err
	}
	srv.Ready = ready
	return nil
}
