package server

import (
	"context"
	"errors"
	"fmt"
	"net/http"

	"github.com/go-logr/logr"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/rest"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/healthz"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"

	"github.com/dns-tuner/dns-tuner/internal/cluster"
	"github.com/dns-tuner/dns-tuner/internal/clusterwatch"
	"github.com/dns-tuner/dns-tuner/internal/libc"
	"github.com/dns-tuner/dns-tuner/internal/metrics"
	"github.com/dns-tuner/dns-tuner/internal/policy"
)

// Deps are what the server builds for the admission handler.
type Deps struct {
	Policy policy.Source
	// Namespaces reads namespace metadata through the manager's cache (a metadata informer).
	Namespaces client.Reader
	// APIReader reads the API server directly, for a namespace the cache has not seen yet.
	APIReader client.Reader
	Detector  libc.Detector
	// Facts are what the cluster says about node kernels, kube-proxy and the DNS path.
	Facts cluster.Facts
	Log   logr.Logger
}

// Admission is the handler the server serves at Path: it answers AdmissionReviews (the body
// already read and bounded by the server). The caller (cmd/dns-tuner) supplies it, so this
// package, a library, never imports the admission adapter.
type Admission struct {
	Path string
	New  func(Deps) http.Handler
}

// Run serves the webhook until ctx ends, with the cluster reached through cfg.
func Run(ctx context.Context, o Options, cfg *rest.Config, admit Admission, log logr.Logger) error {
	if cfg == nil {
		return errors.New("server.Run: no REST config")
	}
	if admit.Path == "" || admit.New == nil {
		return errors.New("server.Run: no admission handler")
	}
	pol := &policy.File{Path: o.ConfigFile, Interval: o.PolicyReload, AlwaysExcluded: []string{o.Namespace}, Log: log.WithName("policy"),
		OnReload: func(err error) {
			result := "ok"
			if err != nil {
				result = "error"
			}
			metrics.PolicyReloads.WithLabelValues(result).Inc()
		}}
	if err := pol.Load(); err != nil {
		return err
	}

	scheme := runtime.NewScheme()
	if err := clientgoscheme.AddToScheme(scheme); err != nil {
		return err
	}
	whServer := newWebhookServer(o, log.WithName("webhook-server"))
	mgr, err := ctrl.NewManager(cfg, ctrl.Options{
		Scheme:                 scheme,
		Logger:                 log,
		Metrics:                metricsserver.Options{BindAddress: o.MetricsBindAddress},
		HealthProbeBindAddress: o.HealthProbeBindAddr,
		PprofBindAddress:       o.PprofBindAddress,
		WebhookServer:          whServer,
	})
	if err != nil {
		return fmt.Errorf("creating manager: %w", err)
	}
	if err := setupCerts(mgr, o, whServer); err != nil {
		return err
	}
	if err := mgr.Add(pol); err != nil {
		return err
	}
	detector, err := newDetector(ctx, o, pol, mgr, log.WithName("detector"))
	if err != nil {
		return err
	}
	// Node kernels, kube-proxy's mode and the DNS endpoints, for raceFix auto.
	facts, err := clusterwatch.NewSource(mgr, clusterwatch.SourceOptions{Log: log.WithName("cluster")})
	if err != nil {
		return err
	}
	handler := admit.New(Deps{
		Policy:     pol,
		Namespaces: mgr.GetCache(),
		APIReader:  mgr.GetAPIReader(),
		Detector:   detector,
		Facts:      facts,
		Log:        log.WithName("admission"),
	})
	mgr.GetWebhookServer().Register(admit.Path, admissionHandler(handler, o.withServerDefaults().MaxInflightBytes, log.WithName("admission")))

	if err := mgr.AddHealthzCheck("ping", healthz.Ping); err != nil {
		return err
	}
	// Ready only once the webhook server serves TLS with its certificate.
	if err := mgr.AddReadyzCheck("webhook", mgr.GetWebhookServer().StartedChecker()); err != nil {
		return err
	}
	// Register the namespace informer now, so the cache starts it with the manager, and stay
	// unready until it has synced: otherwise the first admissions after a start each wait for
	// a lazily created informer (client-go polls for sync every 100 ms), the cold-start cliff
	// hack/loadtest measured.
	nsMeta := &metav1.PartialObjectMetadata{}
	nsMeta.SetGroupVersionKind(corev1.SchemeGroupVersion.WithKind("Namespace"))
	nsInformer, err := mgr.GetCache().GetInformer(ctx, nsMeta)
	if err != nil {
		return fmt.Errorf("namespace informer: %w", err)
	}
	if err := mgr.AddReadyzCheck("namespaces", func(*http.Request) error {
		if !nsInformer.HasSynced() {
			return errors.New("namespace cache not synced yet")
		}
		return nil
	}); err != nil {
		return err
	}
	log.Info("starting dns-tuner", "webhookPort", o.WebhookPort, "certDir", o.CertDir, "policy", policyName(o.ConfigFile), "mode", pol.Current().Mode)
	return mgr.Start(ctx)
}

func policyName(path string) string {
	if path == "" {
		return "embedded default"
	}
	return path
}
