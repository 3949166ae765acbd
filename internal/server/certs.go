package server

import (
	ctrl "sigs.k8s.io/controller-runtime"

	"github.com/dns-tuner/dns-tuner/internal/certs"
)

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
