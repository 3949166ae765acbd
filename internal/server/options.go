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
	CertDir             string
	CertName            string
	KeyName             string
	WebhookHost         string
	WebhookPort         int
	ConfigFile          string
	PolicyReload        time.Duration
	MetricsBindAddress  string
	HealthProbeBindAddr string
	// PprofBindAddress serves net/http/pprof for profiling under real load; off by default,
	// since profiles show request contents.
	PprofBindAddress string
	// Namespace is dns-tuner's own namespace, always excluded (from POD_NAMESPACE).
	Namespace string
	Log       LogOptions
	Certs     certs.Options
	// InsecureRegistries are added to the policy's inspection.insecureRegistries: plain HTTP,
	// allowed on loopback and link-local addresses (test and in-cluster registries). The CLI
	// binds --insecure-registry to it, with the same flag as inspect and explain.
	InsecureRegistries []string
	// WarmCache inspects workload pod templates before their pods exist (needs list/watch on
	// deployments, statefulsets, daemonsets, jobs and cronjobs).
	WarmCache bool

	// Limits of the webhook's HTTP server, so a client that stalls is cut off instead of
	// holding a connection; zero means the default. The API server sends a review whole, at
	// once, and gives up after the webhook's timeoutSeconds (5 in the chart).
	ReadHeaderTimeout time.Duration
	ReadTimeout       time.Duration
	IdleTimeout       time.Duration
	MaxHeaderBytes    int
	// MaxConnections caps open connections to the webhook: each costs about 50 KiB, and
	// the API server needs a few (HTTP/2 multiplexes reviews).
	MaxConnections int
	// EnableHTTP2 lets API servers speak HTTP/2 to the webhook. Off by default, as in
	// kubebuilder's scaffold: HTTP/2 stream resets (CVE-2023-44487, CVE-2023-39325) let one
	// client make the server work without bound, and HTTP/1.1 keep-alive connections cost
	// the API server and dns-tuner less CPU per review (hack/loadtest).
	EnableHTTP2 bool
	// MaxInflightBytes bounds the review bytes being decided at once, whatever the number of
	// connections or HTTP/2 streams: a review costs a few times its size in memory while it
	// is decided. A review that finds no room within a second is answered 503, which the API
	// server treats as a failed call: failurePolicy Ignore admits the pod unchanged.
	MaxInflightBytes int64
}

// Defaults of the webhook server limits. Reading a review takes milliseconds; the deadlines
// leave the API server's 5 s timeout room for the decision. The idle timeout is the API
// server's own keep-alive (Go's 90 s), so dns-tuner does not close a connection the API
// server is about to reuse.
const (
	DefaultReadHeaderTimeout = 2 * time.Second
	DefaultReadTimeout       = 3 * time.Second
	DefaultIdleTimeout       = 90 * time.Second
	DefaultMaxHeaderBytes    = 64 << 10
	DefaultMaxConnections    = 1000
	DefaultMaxInflightBytes  = 32 << 20
	DefaultWebhookPort       = 9443
)

// BindFlags registers the options on fs with their defaults.
func (o *Options) BindFlags(fs *flag.FlagSet) {
	fs.StringVar(&o.CertDir, "cert-dir", "/tmp/k8s-webhook-server/serving-certs", "Directory with the webhook serving certificate; reloaded when it changes.")
	fs.StringVar(&o.CertName, "cert-name", "tls.crt", "Certificate file name in --cert-dir.")
	fs.StringVar(&o.KeyName, "key-name", "tls.key", "Key file name in --cert-dir.")
	fs.StringVar(&o.WebhookHost, "webhook-host", "", "Address the webhook server binds to (empty: all).")
	fs.IntVar(&o.WebhookPort, "webhook-port", DefaultWebhookPort, "Port the webhook server listens on.")
	fs.DurationVar(&o.ReadHeaderTimeout, "webhook-read-header-timeout", DefaultReadHeaderTimeout, "Longest time a webhook client may take to send a request's headers (and the TLS handshake).")
	fs.DurationVar(&o.ReadTimeout, "webhook-read-timeout", DefaultReadTimeout, "Longest time a webhook client may take to send a whole request, body included; keep it well under the webhook's timeoutSeconds.")
	fs.DurationVar(&o.IdleTimeout, "webhook-idle-timeout", DefaultIdleTimeout, "How long an idle keep-alive connection to the webhook stays open.")
	fs.IntVar(&o.MaxHeaderBytes, "webhook-max-header-bytes", DefaultMaxHeaderBytes, "Largest request header block the webhook server reads.")
	fs.Int64Var(&o.MaxInflightBytes, "webhook-max-inflight-bytes", DefaultMaxInflightBytes, "Most bytes of admission reviews decided at once (at least 7 MiB); a review that finds no room within a second is answered 503 and the API server admits the pod unchanged (failurePolicy Ignore).")
	fs.BoolVar(&o.EnableHTTP2, "enable-http2", false, "Serve the webhook over HTTP/2 as well as HTTP/1.1 (off: HTTP/2 rapid-reset attacks, and HTTP/1.1 costs less CPU per review).")
	fs.IntVar(&o.MaxConnections, "webhook-max-connections", DefaultMaxConnections, "Most connections the webhook server holds open at once; more wait to be accepted.")
	fs.StringVar(&o.ConfigFile, "config", "", "Cluster policy file (YAML). Empty: the embedded default (mode off; namespaces opt in).")
	fs.DurationVar(&o.PolicyReload, "config-reload-interval", 10*time.Second, "How often the policy file is checked for changes.")
	fs.StringVar(&o.MetricsBindAddress, "metrics-bind-address", ":8080", "Address of the Prometheus metrics endpoint; 0 disables it.")
	fs.StringVar(&o.HealthProbeBindAddr, "health-probe-bind-address", ":8081", "Address of /healthz and /readyz.")
	fs.StringVar(&o.PprofBindAddress, "pprof-bind-address", "0", "Address of Go's /debug/pprof profiles (keep it on loopback); 0 disables it.")
	fs.StringVar(&o.Namespace, "namespace", os.Getenv("POD_NAMESPACE"), "dns-tuner's own namespace, always excluded (default $POD_NAMESPACE).")
	fs.BoolVar(&o.WarmCache, "warm-cache", false, "Inspect the images of Deployments, StatefulSets, DaemonSets, Jobs and CronJobs before their pods exist (holds those objects in memory; needs list/watch on them).")
	o.Log.BindFlags(fs)
	o.Certs.BindFlags(fs)
}

// withServerDefaults fills the webhook server settings left zero (Options built in code).
func (o Options) withServerDefaults() Options {
	def := func(d *time.Duration, v time.Duration) {
		if *d <= 0 {
			*d = v
		}
	}
	def(&o.ReadHeaderTimeout, DefaultReadHeaderTimeout)
	def(&o.ReadTimeout, DefaultReadTimeout)
	def(&o.IdleTimeout, DefaultIdleTimeout)
	if o.MaxHeaderBytes <= 0 {
		o.MaxHeaderBytes = DefaultMaxHeaderBytes
	}
	if o.MaxConnections <= 0 {
		o.MaxConnections = DefaultMaxConnections
	}
	if o.MaxInflightBytes <= 0 {
		o.MaxInflightBytes = DefaultMaxInflightBytes
	}
	o.MaxInflightBytes = max(o.MaxInflightBytes, maxRequestBytes+1) // the largest review must fit
	if o.WebhookPort == 0 {
		o.WebhookPort = DefaultWebhookPort
	}
	if o.CertName == "" {
		o.CertName = "tls.crt"
	}
	if o.KeyName == "" {
		o.KeyName = "tls.key"
	}
	return o
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

// Logger builds the zap-backed logr.Logger the options describe, writing to stderr.
func (o LogOptions) Logger() (logr.Logger, error) { return o.logger(nil) }

// logger writes to out instead of stderr when out is not nil (tests).
func (o LogOptions) logger(out zapcore.WriteSyncer) (logr.Logger, error) {
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
	var opts []zap.Option
	if out != nil {
		enc := zapcore.NewJSONEncoder(cfg.EncoderConfig)
		if cfg.Encoding == "console" {
			enc = zapcore.NewConsoleEncoder(cfg.EncoderConfig)
		}
		opts = append(opts, zap.WrapCore(func(zapcore.Core) zapcore.Core { return zapcore.NewCore(enc, out, cfg.Level) }))
	}
	z, err := cfg.Build(opts...)
	if err != nil {
		return logr.Logger{}, err
	}
	return zapr.NewLogger(z), nil
}
