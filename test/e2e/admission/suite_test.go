// Package admission proves dns-tuner's admission loop against a real kube-apiserver
// (envtest): the webhook configuration from config/webhook is installed, `serve` runs
// in-process, and real pods are created through a client that records the API server's
// warnings. One control plane serves the whole package; TestMain starts and stops it.
package admission

import (
	"context"
	"fmt"
	"io"
	stdlog "log"
	"net"
	"net/http/httptest"
	"net/url"
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
	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/envtest"

	"github.com/dns-tuner/dns-tuner/internal/server"
	"github.com/dns-tuner/dns-tuner/test/e2e/envtestenv"
	"github.com/dns-tuner/dns-tuner/webhook"
)

const root = "../../.."

var (
	// registryHost serves test images over plain HTTP on loopback; the policy lists it as
	// insecure, which is also what allows a loopback address. registry.example, used by pods
	// that are not about inspection, is denied so no test reaches for the network.
	registryHost string
	cfg          *rest.Config
	clientset    *kubernetes.Clientset
	warnings     = &warningRecorder{}
	// hook is how envtest installed config/webhook: serving certificate, host, port and CA,
	// which a test that runs its own webhook server reuses.
	hook       *envtest.WebhookInstallOptions
	policyFile string
	logger     = logr.Discard()
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

// newClient is a clientset with its own warning recorder, for a test that must not see
// another test's warnings.
func newClient(t *testing.T) (*kubernetes.Clientset, *warningRecorder) {
	t.Helper()
	w := &warningRecorder{}
	c := rest.CopyConfig(cfg)
	c.WarningHandler = w
	cs, err := kubernetes.NewForConfig(c)
	if err != nil {
		t.Fatal(err)
	}
	return cs, w
}

func TestMain(m *testing.M) {
	env := &envtest.Environment{
		WebhookInstallOptions: envtest.WebhookInstallOptions{Paths: []string{filepath.Join(root, "config", "webhook")}},
	}
	os.Exit(envtestenv.Main(m, "e2e", env, func(c *rest.Config, cleanup func(func())) error {
		cfg, hook = c, &env.WebhookInstallOptions
		wcfg := rest.CopyConfig(cfg)
		wcfg.WarningHandler = warnings
		clientset = kubernetes.NewForConfigOrDie(wcfg)

		reg := httptest.NewServer(registry.New(registry.Logger(stdlog.New(io.Discard, "", 0))))
		cleanup(reg.Close)
		registryHost = strings.TrimPrefix(reg.URL, "http://")
		dir, err := os.MkdirTemp("", "dns-tuner-e2e-")
		if err != nil {
			return err
		}
		cleanup(func() { _ = os.RemoveAll(dir) })
		policyFile = filepath.Join(dir, "policy.yaml")
		pol := fmt.Sprintf("inspection:\n  enabled: true\n  insecureRegistries: [%q]\n  deniedRegistries: [registry.example]\n", registryHost)
		if err := os.WriteFile(policyFile, []byte(pol), 0o600); err != nil {
			return err
		}

		if os.Getenv("E2E_LOG") != "" {
			z, _ := zap.NewDevelopment()
			logger = zapr.NewLogger(z)
		}
		ctrl.SetLogger(logger)
		stop, err := startWebhook(hook.LocalServingPort)
		if err != nil {
			return fmt.Errorf("webhook server did not start: %w", err)
		}
		cleanup(func() {
			if err := stop(); err != nil {
				fmt.Fprintln(os.Stderr, "e2e: webhook server:", err)
			}
		})
		return nil
	}))
}

// startWebhook runs `serve` in-process on port with envtest's serving certificate and the
// suite's policy, and waits until it serves TLS. stop ends it and waits for it to exit.
func startWebhook(port int) (stop func() error, err error) {
	return startWebhookWith(port, policyFile)
}

// startWebhookWith is startWebhook with another policy file, for a test that installs a
// webhook configuration of its own (see TestWebhookDown) to decide under its own policy.
func startWebhookWith(port int, policy string) (stop func() error, err error) {
	o := server.Options{
		ConfigFile: policy,
		CertDir:    hook.LocalServingCertDir, CertName: "tls.crt", KeyName: "tls.key",
		WebhookHost: hook.LocalServingHost, WebhookPort: port,
		MetricsBindAddress: "0", HealthProbeBindAddr: "0", Namespace: "dns-tuner-system",
		PolicyReload: time.Second,
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- server.Run(ctx, o, cfg, webhook.Admission, logger) }()
	stop = func() error {
		cancel()
		select {
		case err := <-done:
			return err
		case <-time.After(30 * time.Second):
			return fmt.Errorf("webhook server on port %d did not stop", port)
		}
	}
	if err := envtestenv.WaitForTLS(ctx, net.JoinHostPort(hook.LocalServingHost, strconv.Itoa(port)), 30*time.Second, done); err != nil {
		cancel()
		return nil, err
	}
	return stop, nil
}

// copyWebhook is config/webhook's pods.dns-tuner.io as installed, renamed to name, pointed
// at a free port on the same host and confined to namespace ns: a test's own serve behind
// the shipped configuration.
func copyWebhook(ctx context.Context, t *testing.T, cs kubernetes.Interface, name, ns string) (*admissionregistrationv1.MutatingWebhook, int) {
	t.Helper()
	installed, err := cs.AdmissionregistrationV1().MutatingWebhookConfigurations().List(ctx, metav1.ListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	var wh *admissionregistrationv1.MutatingWebhook
	for _, c := range installed.Items {
		for i := range c.Webhooks {
			if c.Webhooks[i].Name == "pods.dns-tuner.io" {
				wh = c.Webhooks[i].DeepCopy()
			}
		}
	}
	if wh == nil || wh.ClientConfig.URL == nil {
		t.Fatal("config/webhook's pods.dns-tuner.io is not installed with a URL")
	}
	port := freePort(t)
	u, err := url.Parse(*wh.ClientConfig.URL)
	if err != nil {
		t.Fatal(err)
	}
	u.Host = net.JoinHostPort(u.Hostname(), strconv.Itoa(port))
	us := u.String()
	wh.Name, wh.ClientConfig.URL = name, &us
	wh.NamespaceSelector = &metav1.LabelSelector{MatchLabels: map[string]string{"kubernetes.io/metadata.name": ns}}
	return wh, port
}
