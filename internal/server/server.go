package server

import (
	"context"
	"fmt"

	"github.com/go-logr/logr"
	"k8s.io/apimachinery/pkg/runtime"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/healthz"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"
	"sigs.k8s.io/controller-runtime/pkg/webhook/admission"

	"github.com/dns-tuner/dns-tuner/internal/cluster"
	"github.com/dns-tuner/dns-tuner/internal/metrics"
	"github.com/dns-tuner/dns-tuner/internal/policy"
	"github.com/dns-tuner/dns-tuner/webhook"
)

// RESTConfig loads the kubeconfig named by --kubeconfig or the usual fallbacks.
func (o *Options) RESTConfig() (*rest.Config, error) {
	if o.Kubeconfig != "" {
		return clientcmd.BuildConfigFromFlags("", o.Kubeconfig)
	}
	return ctrl.GetConfig()
}

// Run serves the webhook until ctx ends. cfg may be nil to load it from the options.
func Run(ctx context.Context, o Options, cfg *rest.Config, log logr.Logger) error {
	if cfg == nil {
		var err error
		if cfg, err = o.RESTConfig(); err != nil {
			return fmt.Errorf("loading kubeconfig: %w", err)
		}
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
	whServer := newWebhookServer(o)
	mgr, err := ctrl.NewManager(cfg, ctrl.Options{
		Scheme:                 scheme,
		Logger:                 log,
		Metrics:                metricsserver.Options{BindAddress: o.MetricsBindAddress},
		HealthProbeBindAddress: o.HealthProbeBindAddr,
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
	facts, err := cluster.NewSource(mgr, cluster.SourceOptions{Log: log.WithName("cluster")})
	if err != nil {
		return err
	}
	mutator := &webhook.PodMutator{
		Policy:     pol,
		Namespaces: mgr.GetCache(), // namespace metadata only: a metadata informer, flat memory
		APIReader:  mgr.GetAPIReader(),
		Detector:   detector,
		Facts:      facts,
		Log:        log.WithName("admission"),
	}
	mgr.GetWebhookServer().Register(webhook.Path, &admission.Webhook{Handler: mutator})

	if err := mgr.AddHealthzCheck("ping", healthz.Ping); err != nil {
		return err
	}
	// Ready only once the webhook server serves TLS with its certificate.
	if err := mgr.AddReadyzCheck("webhook", mgr.GetWebhookServer().StartedChecker()); err != nil {
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
