// Package e2e proves dns-tuner's admission loop against a real kube-apiserver (envtest): the
// webhook configuration from config/webhook is installed, `serve` runs in-process, and real
// pods are created through a client that records the API server's warnings.
package e2e

import (
	"context"
	"fmt"
	"io"
	stdlog "log"
	"net"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/go-logr/logr"
	"github.com/go-logr/zapr"
	"github.com/google/go-containerregistry/pkg/registry"
	"go.uber.org/zap"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/envtest"
	"sigs.k8s.io/controller-runtime/pkg/webhook/admission"

	"github.com/dns-tuner/dns-tuner/hack/envtestenv"
	"github.com/dns-tuner/dns-tuner/internal/server"
	"github.com/dns-tuner/dns-tuner/webhook"
)

var (
	// registryHost serves test images over plain HTTP on loopback; the policy lists it as
	// insecure, which is also what allows a loopback address. registry.example, used by pods
	// that are not about inspection, is denied so no test reaches for the network.
	registryHost string
	cfg          *rest.Config
	clientset    *kubernetes.Clientset
	warnings     = &warningRecorder{}
	stopServer   context.CancelFunc
	serverDone   chan error
)

// warningRecorder collects the Warning headers the API server returns, as kubectl shows them.
type warningRecorder struct {
	mu   sync.Mutex
	msgs []string
}

func (w *warningRecorder) HandleWarningHeader(_ int, _ string, text string) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.msgs = append(w.msgs, text)
}

func (w *warningRecorder) take() []string {
	w.mu.Lock()
	defer w.mu.Unlock()
	out := w.msgs
	w.msgs = nil
	return out
}

func TestMain(m *testing.M) {
	os.Exit(run(m))
}

func run(m *testing.M) int {
	dir, err := envtestenv.AssetsDir(filepath.Join("..", ".."), false)
	if err != nil {
		fmt.Fprintln(os.Stderr, "e2e:", err)
		return 1
	}
	env := &envtest.Environment{
		BinaryAssetsDirectory: dir,
		WebhookInstallOptions: envtest.WebhookInstallOptions{Paths: []string{filepath.Join("..", "..", "config", "webhook")}},
	}
	cfg, err = env.Start()
	if err != nil {
		fmt.Fprintln(os.Stderr, "e2e: starting envtest:", err)
		return 1
	}
	defer func() { _ = env.Stop() }()

	wcfg := rest.CopyConfig(cfg)
	wcfg.WarningHandler = warnings
	clientset = kubernetes.NewForConfigOrDie(wcfg)

	reg := httptest.NewServer(registry.New(registry.Logger(stdlog.New(io.Discard, "", 0))))
	defer reg.Close()
	registryHost = strings.TrimPrefix(reg.URL, "http://")
	policyFile := filepath.Join(os.TempDir(), fmt.Sprintf("dns-tuner-e2e-policy-%d.yaml", os.Getpid()))
	if err := os.WriteFile(policyFile, []byte(fmt.Sprintf("inspection:\n  enabled: true\n  insecureRegistries: [%q]\n  deniedRegistries: [registry.example]\n", registryHost)), 0o600); err != nil {
		fmt.Fprintln(os.Stderr, "e2e:", err)
		return 1
	}
	defer os.Remove(policyFile)

	wo := env.WebhookInstallOptions
	o := server.Options{
		ConfigFile: policyFile,
		CertDir:    wo.LocalServingCertDir, CertName: "tls.crt", KeyName: "tls.key",
		WebhookHost: wo.LocalServingHost, WebhookPort: wo.LocalServingPort,
		MetricsBindAddress: "0", HealthProbeBindAddr: "0", Namespace: "dns-tuner-system",
		PolicyReload: time.Second,
	}
	log := logr.Discard()
	if os.Getenv("E2E_LOG") != "" {
		z, _ := zap.NewDevelopment()
		log = zapr.NewLogger(z)
	}
	ctrl.SetLogger(log)
	ctx, cancel := context.WithCancel(context.Background())
	stopServer = cancel
	serverDone = make(chan error, 1)
	go func() { serverDone <- server.Run(ctx, o, cfg, admit, log) }()
	if err := envtestenv.WaitForTLS(ctx, net.JoinHostPort(wo.LocalServingHost, strconv.Itoa(wo.LocalServingPort)), 30*time.Second, serverDone); err != nil {
		fmt.Fprintln(os.Stderr, "e2e: webhook server did not start:", err)
		cancel()
		return 1
	}
	code := m.Run()
	cancel()
	return code
}

// admit serves the webhook package's handler, as cmd/dns-tuner does.
var admit = server.Admission{
	Path: webhook.Path,
	New: func(d server.Deps) admission.Handler {
		return &webhook.PodMutator{Policy: d.Policy, Namespaces: d.Namespaces, APIReader: d.APIReader, Detector: d.Detector, Log: d.Log}
	},
}
