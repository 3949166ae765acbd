// Package certs provides the webhook's serving certificate, in one of two modes:
//
//   - self-managed: open-policy-agent/cert-controller keeps a CA and a serving certificate in
//     a Secret, injects the CA into the MutatingWebhookConfiguration and renews the serving
//     certificate before it expires. No cert-manager needed.
//   - external: something else (cert-manager, or the user) writes the certificate; dns-tuner
//     only reads it from --cert-dir.
//
// In both modes Setup returns a channel that closes once the certificate is on disk (and, when
// self-managed, injected), so the webhook server and readiness wait for it.
package certs

import (
	"context"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/open-policy-agent/cert-controller/pkg/rotator"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/log"
	"sigs.k8s.io/controller-runtime/pkg/manager"
)

// Modes.
const (
	ModeSelfManaged = "self-managed"
	ModeExternal    = "external"
)

// Options configure certificate handling. The flag-bound fields come from BindFlags; the
// server fills Namespace and the file locations from its own flags.
type Options struct {
	Mode string
	// SecretName holds ca.crt, ca.key, tls.crt and tls.key (self-managed). It must exist:
	// the chart creates it empty, so the binary needs no create permission on Secrets.
	SecretName string
	// ServiceName is the webhook Service; the certificate is issued for <svc>.<ns>.svc.
	ServiceName string
	// WebhookConfigName is the MutatingWebhookConfiguration that gets the CA bundle.
	WebhookConfigName string
	// CAName is the CA's common name. cert-controller regenerates the CA when the stored CA
	// does not match it, so it must never change between releases: it is a constant, not
	// derived from the release name or version.
	CAName         string
	CAOrganization string
	// CheckInterval is how often the certificate's expiry is checked.
	CheckInterval time.Duration

	Namespace string
	CertDir   string
	CertName  string
	KeyName   string
	// ExtraDNSNames are added to the serving certificate (tests use localhost).
	ExtraDNSNames []string
	// ControllerName must be unique per process; only tests that start several managers in
	// one process need to set it.
	ControllerName string
}

// BindFlags registers the certificate flags on fs with their defaults. The flag default mode is
// external so that running `dns-tuner serve` by hand never writes to the cluster; the chart
// and config/default choose self-managed.
func (o *Options) BindFlags(fs *flag.FlagSet) {
	fs.StringVar(&o.Mode, "cert-mode", ModeExternal, "Serving certificate source: self-managed (generate, inject and rotate with cert-controller) or external (read --cert-dir only; cert-manager or your own).")
	fs.StringVar(&o.SecretName, "cert-secret-name", "dns-tuner-webhook-cert", "self-managed: Secret in --namespace holding the CA and serving certificate; it must exist.")
	fs.StringVar(&o.ServiceName, "cert-service-name", "dns-tuner-webhook", "self-managed: webhook Service name; the certificate is for <name>.<namespace>.svc.")
	fs.StringVar(&o.WebhookConfigName, "webhook-config-name", "dns-tuner", "self-managed: MutatingWebhookConfiguration that receives the CA bundle.")
	fs.StringVar(&o.CAName, "cert-ca-name", "dns-tuner-ca", "self-managed: CA common name. Changing it regenerates the CA.")
	fs.StringVar(&o.CAOrganization, "cert-ca-organization", "dns-tuner", "self-managed: CA organization.")
	fs.DurationVar(&o.CheckInterval, "cert-check-interval", 12*time.Hour, "self-managed: how often certificate expiry is checked (renewal happens 90 days before).")
}

// Validate reports options that cannot work.
func (o Options) Validate() error {
	switch o.Mode {
	case ModeExternal, "":
		return nil
	case ModeSelfManaged:
	default:
		return fmt.Errorf("--cert-mode %q: want %s or %s", o.Mode, ModeSelfManaged, ModeExternal)
	}
	var missing []string
	for flag, v := range map[string]string{
		"--namespace": o.Namespace, "--cert-secret-name": o.SecretName, "--cert-service-name": o.ServiceName,
		"--webhook-config-name": o.WebhookConfigName, "--cert-ca-name": o.CAName, "--cert-dir": o.CertDir,
	} {
		if v == "" {
			missing = append(missing, flag)
		}
	}
	if len(missing) > 0 {
		return fmt.Errorf("--cert-mode=%s needs %v", ModeSelfManaged, missing)
	}
	return nil
}

// Setup adds certificate handling to mgr. The returned channel closes when the serving
// certificate is in --cert-dir (and, self-managed, its CA is in the webhook configuration).
func Setup(mgr manager.Manager, o Options) (<-chan struct{}, error) {
	if err := o.Validate(); err != nil {
		return nil, err
	}
	if o.CertName == "" {
		o.CertName = "tls.crt"
	}
	if o.KeyName == "" {
		o.KeyName = "tls.key"
	}
	ready := make(chan struct{})
	if o.Mode != ModeSelfManaged {
		return ready, mgr.Add(&filesPresent{paths: []string{filepath.Join(o.CertDir, o.CertName), filepath.Join(o.CertDir, o.KeyName)}, ready: ready})
	}
	svc := o.ServiceName + "." + o.Namespace + ".svc"
	err := rotator.AddRotator(mgr, &rotator.CertRotator{
		SecretKey:      types.NamespacedName{Namespace: o.Namespace, Name: o.SecretName},
		CertDir:        o.CertDir,
		CertName:       o.CertName,
		KeyName:        o.KeyName,
		CAName:         o.CAName,
		CAOrganization: o.CAOrganization,
		DNSName:        svc,
		ExtraDNSNames:  append([]string{o.ServiceName, o.ServiceName + "." + o.Namespace, svc + ".cluster.local"}, o.ExtraDNSNames...),
		IsReady:        ready,
		Webhooks:       []rotator.WebhookInfo{{Name: o.WebhookConfigName, Type: rotator.Mutating}},
		FieldOwner:     "dns-tuner-cert-rotator",
		// controller-runtime's certificate watcher reloads renewed files; no restart needed.
		RestartOnSecretRefresh: false,
		// Every replica runs the rotator: writes are guarded by resourceVersion, so two
		// replicas starting together agree on one CA (the loser re-reads and keeps it).
		RequireLeaderElection:  false,
		RotationCheckFrequency: o.CheckInterval,
		ControllerName:         o.ControllerName,
	})
	if err != nil {
		return nil, fmt.Errorf("setting up certificate rotation: %w", err)
	}
	return ready, nil
}

// filesPresent closes ready once every path exists. With cert-manager the Secret volume can be
// populated after the container starts; waiting keeps the pod unready rather than crashing.
type filesPresent struct {
	paths []string
	ready chan struct{}
}

func (f *filesPresent) NeedLeaderElection() bool { return false }

func (f *filesPresent) Start(ctx context.Context) error {
	logged := false
	for {
		missing := ""
		for _, p := range f.paths {
			if _, err := os.Stat(p); err != nil {
				missing = p
				break
			}
		}
		if missing == "" {
			close(f.ready)
			<-ctx.Done()
			return nil
		}
		if !logged {
			log.FromContext(ctx).WithName("certs").Info("waiting for the serving certificate", "path", missing)
			logged = true
		}
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(time.Second):
		}
	}
}
