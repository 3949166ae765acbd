package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/envtest"
	"sigs.k8s.io/yaml"

	"github.com/dns-tuner/dns-tuner/internal/mutate"
	"github.com/dns-tuner/dns-tuner/test/e2e/envtestenv"
)

// cluster is envtest's kube-apiserver and etcd (both on loopback) with an admin client.
type cluster struct {
	env        *envtest.Environment
	cs         *kubernetes.Clientset
	kubeconfig string
	webhook    *admissionregistrationv1.MutatingWebhookConfiguration
	// apiserverPID is kube-apiserver's process, whose CPU time the load reports.
	apiserverPID int
}

func startCluster(root, dir string) (*cluster, error) {
	assets, err := envtestenv.AssetsDir(root, false)
	if err != nil {
		return nil, err
	}
	env := &envtest.Environment{BinaryAssetsDirectory: assets}
	cfg, err := env.Start()
	if err != nil {
		return nil, fmt.Errorf("starting envtest: %w", err)
	}
	c := &cluster{env: env}
	exe, err := filepath.EvalSymlinks(filepath.Join(assets, "kube-apiserver"))
	if err == nil {
		exe, err = filepath.Abs(exe)
	}
	if err == nil {
		c.apiserverPID, err = processByExe(exe)
	}
	if err != nil {
		_ = env.Stop()
		return nil, err
	}
	if err := c.init(cfg, root, dir); err != nil {
		_ = env.Stop()
		return nil, err
	}
	return c, nil
}

func (c *cluster) init(cfg *rest.Config, root, dir string) error {
	// The load's client: no client-side rate limit, so the API server and the webhook are
	// what limits throughput.
	lc := rest.CopyConfig(cfg)
	lc.QPS, lc.Burst = -1, 0
	lc.WarningHandler = rest.NoWarnings{} // dns-tuner's warnings are expected; printing them would cost time
	var err error
	if c.cs, err = kubernetes.NewForConfig(lc); err != nil {
		return err
	}
	user, err := c.env.ControlPlane.AddUser(envtest.User{Name: "dns-tuner", Groups: []string{"system:masters"}}, nil)
	if err != nil {
		return err
	}
	kc, err := user.KubeConfig()
	if err != nil {
		return err
	}
	c.kubeconfig = filepath.Join(dir, "kubeconfig")
	if err := os.WriteFile(c.kubeconfig, kc, 0o600); err != nil {
		return err
	}
	// The webhook configuration the chart and config/ install, pointed at loopback.
	raw, err := os.ReadFile(filepath.Join(root, "config", "webhook", "manifests.yaml"))
	if err != nil {
		return err
	}
	c.webhook = &admissionregistrationv1.MutatingWebhookConfiguration{}
	return yaml.UnmarshalStrict(raw, c.webhook)
}

func (c *cluster) stop() { _ = c.env.Stop() }

// createNamespace creates ns labelled to opt in to enforce, as a user does.
func (c *cluster) createNamespace(ctx context.Context, ns string) error {
	_, err := c.cs.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{
		Name: ns, Labels: map[string]string{mutate.LabelMode: "enforce"}}}, metav1.CreateOptions{})
	return err
}

// registerWebhook installs config/webhook's MutatingWebhookConfiguration with its client
// config pointing at https://127.0.0.1:port instead of the Service, and waits a moment for
// the API server's webhook informer to see it.
func (c *cluster) registerWebhook(ctx context.Context, port int, caBundle []byte) error {
	mwc := c.webhook.DeepCopy()
	for i := range mwc.Webhooks {
		cc := &mwc.Webhooks[i].ClientConfig
		url := fmt.Sprintf("https://127.0.0.1:%d%s", port, *cc.Service.Path)
		cc.Service, cc.URL, cc.CABundle = nil, &url, caBundle
	}
	api := c.cs.AdmissionregistrationV1().MutatingWebhookConfigurations()
	if _, err := api.Create(ctx, mwc, metav1.CreateOptions{}); err != nil {
		return err
	}
	time.Sleep(time.Second)
	return nil
}

func (c *cluster) unregisterWebhook(ctx context.Context) error {
	err := c.cs.AdmissionregistrationV1().MutatingWebhookConfigurations().Delete(ctx, c.webhook.Name, metav1.DeleteOptions{})
	if apierrors.IsNotFound(err) {
		return nil
	}
	if err == nil {
		time.Sleep(time.Second)
	}
	return err
}

// profileAPIServer takes a CPU profile of kube-apiserver over the first seconds of the load
// when --apiserver-profiles is set (envtest's API server serves /debug/pprof to admins),
// saved as SETUP-N.pprof. The channel says when it is done.
func (e *env) profileAPIServer(ctx context.Context, setup string) <-chan error {
	done := make(chan error, 1)
	if e.o.apiserverProfiles == "" {
		done <- nil
		return done
	}
	e.profiles++
	path := filepath.Join(e.o.apiserverProfiles, fmt.Sprintf("%s-%d.pprof", strings.NewReplacer("/", "_", ":", "_").Replace(setup), e.profiles))
	go func() {
		b, err := e.cluster.cs.CoreV1().RESTClient().Get().AbsPath("/debug/pprof/profile").Param("seconds", "3").DoRaw(ctx)
		if err == nil {
			err = os.WriteFile(path, b, 0o600)
		}
		done <- err
	}()
	return done
}
