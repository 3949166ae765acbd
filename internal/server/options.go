// Package server wires dns-tuner's admission handler into a controller-runtime manager:
// flags, logging, policy reloads, health and readiness, metrics and the webhook server.
package server

import (
	"flag"
	"fmt"
	"os"
	"time"

	"github.com/go-logr/logr"
	"github.com/go-logr/zapr"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"

	"github.com/dns-tuner/dns-tuner/internal/certs"
)

// Options are the flags of `dns-tuner serve`, named as controller-runtime projects name them.
type Options struct {
	Kubeconfig          string
	CertDir             string
	CertName            string
	KeyName             string
	WebhookHost         string
	WebhookPort         int
	ConfigFile          string
	PolicyReload        time.Duration
	MetricsBindAddress  string
	HealthProbeBindAddr string
	// Namespace is dns-tuner's own namespace, always excluded (from POD_NAMESPACE).
	Namespace string
	Log       LogOptions
	Certs     certs.Options
	// InsecureRegistries are added to the policy's inspection.insecureRegistries: plain HTTP,
	// allowed on loopback and link-local addresses (test and in-cluster registries).
	InsecureRegistries stringList
	// WarmCache inspects workload pod templates before their pods exist (needs list/watch on
	// deployments, statefulsets, daemonsets, jobs and cronjobs).
	WarmCache bool
}

// stringList is a repeatable string flag.
type stringList []string

func (l *stringList) String() string     { return fmt.Sprint([]string(*l)) }
func (l *stringList) Set(s string) error { *l = append(*l, s); return nil }

// BindFlags registers the options on fs with their defaults.
func (o *Options) BindFlags(fs *flag.FlagSet) {
	fs.StringVar(&o.Kubeconfig, "kubeconfig", "", "Path to a kubeconfig. Empty: in-cluster config, then $KUBECONFIG, then ~/.kube/config.")
	fs.StringVar(&o.CertDir, "cert-dir", "/tmp/k8s-webhook-server/serving-certs", "Directory with the webhook serving certificate; reloaded when it changes.")
	fs.StringVar(&o.CertName, "cert-name", "tls.crt", "Certificate file name in --cert-dir.")
	fs.StringVar(&o.KeyName, "key-name", "tls.key", "Key file name in --cert-dir.")
	fs.StringVar(&o.WebhookHost, "webhook-host", "", "Address the webhook server binds to (empty: all).")
	fs.IntVar(&o.WebhookPort, "webhook-port", 9443, "Port the webhook server listens on.")
	fs.StringVar(&o.ConfigFile, "config", "", "Cluster policy file (YAML). Empty: the embedded default (mode off; namespaces opt in).")
	fs.DurationVar(&o.PolicyReload, "config-reload-interval", 10*time.Second, "How often the policy file is checked for changes.")
	fs.StringVar(&o.MetricsBindAddress, "metrics-bind-address", ":8080", "Address of the Prometheus metrics endpoint; 0 disables it.")
	fs.StringVar(&o.HealthProbeBindAddr, "health-probe-bind-address", ":8081", "Address of /healthz and /readyz.")
	fs.StringVar(&o.Namespace, "namespace", os.Getenv("POD_NAMESPACE"), "dns-tuner's own namespace, always excluded (default $POD_NAMESPACE).")
	fs.BoolVar(&o.WarmCache, "warm-cache", false, "Inspect the images of Deployments, StatefulSets, DaemonSets, Jobs and CronJobs before their pods exist (holds those objects in memory; needs list/watch on them).")
	fs.Var(&o.InsecureRegistries, "insecure-registry", "HOST:PORT of a registry reached over plain HTTP and allowed on loopback or link-local addresses (repeatable); added to the policy's inspection.insecureRegistries.")
	o.Log.BindFlags(fs)
	o.Certs.BindFlags(fs)
}

// LogOptions choose the log encoding and level.
type LogOptions struct {
	Format string
	Level  string
}

func (o *LogOptions) BindFlags(fs *flag.FlagSet) {
	fs.StringVar(&o.Format, "log-format", "json", "Log encoding: json (production) or console.")
	fs.StringVar(&o.Level, "log-level", "info", "Log level: error, info, debug, or a number (higher is more verbose).")
}

// Logger builds the zap-backed logr.Logger the options describe.
func (o LogOptions) Logger() (logr.Logger, error) {
	var lvl zapcore.Level
	switch o.Level {
	case "error":
		lvl = zapcore.ErrorLevel
	case "info", "":
		lvl = zapcore.InfoLevel
	case "debug":
		lvl = zapcore.DebugLevel
	default:
		var n int
		if _, err := fmt.Sscanf(o.Level, "%d", &n); err != nil || n < 0 || n > 127 {
			return logr.Logger{}, fmt.Errorf("--log-level %q: want error, info, debug or a number from 0", o.Level)
		}
		lvl = zapcore.Level(-n) // logr's V(n) maps to zap level -n
	}
	cfg := zap.NewProductionConfig()
	if o.Format == "console" {
		cfg = zap.NewDevelopmentConfig()
	} else if o.Format != "json" {
		return logr.Logger{}, fmt.Errorf("--log-format %q: want json or console", o.Format)
	}
	cfg.Level = zap.NewAtomicLevelAt(lvl)
	cfg.Sampling = nil
	z, err := cfg.Build()
	if err != nil {
		return logr.Logger{}, err
	}
	return zapr.NewLogger(z), nil
}
