// Command demo runs dns-tuner's main job on an embedded default: a local control plane
// (envtest's kube-apiserver and etcd), an in-process registry holding images built from real
// binaries, dns-tuner serving against both with a generated certificate, and sample
// namespaces and pods in each mode. It prints what each pod got and why, then keeps serving
// so you can `kubectl apply` your own pods with the printed kubeconfig.
//
//	make demo        (or: go run ./hack/demo)
package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"log"
	"net"
	"net/http/httptest"
	"os"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"text/tabwriter"
	"time"

	"github.com/go-logr/logr"
	"github.com/go-logr/zapr"
	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/registry"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"go.uber.org/zap"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/envtest"

	"github.com/dns-tuner/dns-tuner/internal/cli"
	"github.com/dns-tuner/dns-tuner/internal/inspect/imagetest"
	"github.com/dns-tuner/dns-tuner/internal/mutate"
	"github.com/dns-tuner/dns-tuner/internal/server"
	"github.com/dns-tuner/dns-tuner/test/e2e/envtestenv"
	"github.com/dns-tuner/dns-tuner/webhook"
)

func main() {
	var o opts
	flag.StringVar(&o.dir, "dir", "bin/demo", "Where the kubeconfig, policy and build files go.")
	flag.BoolVar(&o.exit, "exit", false, "Exit after printing the summary instead of serving.")
	flag.BoolVar(&o.verbose, "v", false, "Log dns-tuner's decisions.")
	flag.Parse()
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, o, os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "demo:", err)
		os.Exit(1)
	}
}

type opts struct {
	dir           string
	exit, verbose bool
}

// sample is one demo image: what it is built from and what dns-tuner should find.
type sample struct {
	repo string
	kind imagetest.Kind
}

var samples = []sample{
	{"demo/web", imagetest.GlibcDynamic},       // gcc binary on the machine's glibc
	{"demo/alpine-app", imagetest.MuslDynamic}, // musl-gcc binary on musl's loader
	{"demo/go-api", imagetest.GoStatic},        // CGO_ENABLED=0 Go binary
	{"demo/entrypoint-sh", imagetest.ScriptMusl},
}

func run(ctx context.Context, o opts, out io.Writer) error {
	if err := os.MkdirAll(o.dir, 0o755); err != nil {
		return err
	}
	dir, err := filepath.Abs(o.dir)
	if err != nil {
		return err
	}
	assets, err := envtestenv.AssetsDir(".", true)
	if err != nil {
		return fmt.Errorf("building the control plane: %w", err)
	}

	fmt.Fprintln(out, "• starting a local control plane (kube-apiserver + etcd)")
	env := &envtest.Environment{
		BinaryAssetsDirectory: assets,
		WebhookInstallOptions: envtest.WebhookInstallOptions{Paths: []string{"config/webhook"}},
	}
	cfg, err := env.Start()
	if err != nil {
		return fmt.Errorf("starting envtest: %w", err)
	}
	defer func() { _ = env.Stop() }()
	kubeconfig, err := writeKubeconfig(env, dir)
	if err != nil {
		return err
	}

	fmt.Fprintln(out, "• building sample images from real binaries and serving them from a local registry")
	reg := httptest.NewServer(registry.New(registry.Logger(log.New(io.Discard, "", 0))))
	defer reg.Close()
	host := strings.TrimPrefix(reg.URL, "http://")
	refs, err := pushSamples(ctx, host, dir)
	if err != nil {
		return err
	}

	policyPath := filepath.Join(dir, "policy.yaml")
	pol := fmt.Sprintf(`# dns-tuner demo policy: the embedded default, with registry inspection on and the demo
# registry allowed over plain HTTP on loopback. Edit it while the demo runs: it is reloaded.
mode: "off"
inspection:
  enabled: true
  insecureRegistries: [%q]
`, host)
	if err := os.WriteFile(policyPath, []byte(pol), 0o644); err != nil {
		return err
	}

	logger := logr.Discard()
	if o.verbose {
		z, _ := zap.NewDevelopment()
		logger = zapr.NewLogger(z)
	}
	ctrl.SetLogger(logger)
	wo := env.WebhookInstallOptions
	so := server.Options{
		CertDir: wo.LocalServingCertDir, CertName: "tls.crt", KeyName: "tls.key",
		WebhookHost: wo.LocalServingHost, WebhookPort: wo.LocalServingPort, ConfigFile: policyPath,
		PolicyReload: 2 * time.Second, MetricsBindAddress: "127.0.0.1:0", HealthProbeBindAddr: "127.0.0.1:0",
		Namespace: "dns-tuner-system",
	}
	fmt.Fprintf(out, "• dns-tuner serving on https://%s:%d%s (certificate in %s)\n", wo.LocalServingHost, wo.LocalServingPort, webhook.Path, wo.LocalServingCertDir)
	srvCtx, cancel := context.WithCancel(ctx)
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- server.Run(srvCtx, so, cfg, webhook.Admission, logger) }()
	if err := envtestenv.WaitForTLS(ctx, net.JoinHostPort(wo.LocalServingHost, strconv.Itoa(wo.LocalServingPort)), 60*time.Second, done); err != nil {
		return err
	}

	results, err := createSamples(ctx, cfg, refs)
	if err != nil {
		return err
	}
	printSummary(out, results)

	// The evidence behind each image's verdict, as `dns-tuner inspect` prints it.
	fmt.Fprintln(out, "\nWhy each image got its libc (dns-tuner inspect --insecure-registry "+host+" ...):")
	inspectArgs := []string{"--insecure-registry", host}
	for _, s := range samples {
		inspectArgs = append(inspectArgs, refs[s.repo])
	}
	if err := cli.Execute(ctx, &cli.Inspect{}, inspectArgs, out, out); err != nil {
		return err
	}

	fmt.Fprintf(out, "\nThe control plane and dns-tuner keep running. Try:\n  export KUBECONFIG=%s\n  kubectl label namespace default dns-tuner.io/mode=enforce\n  kubectl run test --image=%s/demo/alpine-app:1.0 && kubectl get pod test -o yaml\nPolicy (reloaded on change): %s\nCtrl-C stops everything.\n", kubeconfig, host, policyPath)
	if o.exit {
		return nil
	}
	select {
	case <-ctx.Done():
		return nil
	case err := <-done:
		return err
	}
}

func writeKubeconfig(env *envtest.Environment, dir string) (string, error) {
	user, err := env.ControlPlane.AddUser(envtest.User{Name: "demo-admin", Groups: []string{"system:masters"}}, nil)
	if err != nil {
		return "", fmt.Errorf("creating a demo user: %w", err)
	}
	kc, err := user.KubeConfig()
	if err != nil {
		return "", err
	}
	path := filepath.Join(dir, "kubeconfig")
	return path, os.WriteFile(path, kc, 0o600)
}

func pushSamples(ctx context.Context, host, dir string) (map[string]string, error) {
	tb := imagetest.NewProgram("image builder", filepath.Join(dir, "build"))
	defer tb.Close()
	b := imagetest.NewBuilder(tb)
	refs := map[string]string{}
	for _, s := range samples {
		var img v1.Image
		if err := tb.Do(func() { img = b.Image(s.kind) }); err != nil {
			return nil, fmt.Errorf("building %s: %w", s.repo, err)
		}
		ref, err := name.ParseReference(host+"/"+s.repo+":1.0", name.Insecure)
		if err != nil {
			return nil, err
		}
		if err := remote.Write(ref, img, remote.WithContext(ctx)); err != nil {
			return nil, fmt.Errorf("pushing %s: %w", ref, err)
		}
		refs[s.repo] = ref.String()
	}
	return refs, nil
}

type podResult struct {
	namespace, pod string
	got            *corev1.Pod
	warnings       []string
}

type recorder struct{ msgs []string }

func (r *recorder) HandleWarningHeader(_ int, _ string, text string) { r.msgs = append(r.msgs, text) }

func createSamples(ctx context.Context, cfg *rest.Config, refs map[string]string) ([]podResult, error) {
	rec := &recorder{}
	wcfg := rest.CopyConfig(cfg)
	wcfg.WarningHandler = rec
	cs, err := kubernetes.NewForConfig(wcfg)
	if err != nil {
		return nil, err
	}
	namespaces := []struct {
		name, mode string
	}{{"demo-enforce", "enforce"}, {"demo-audit", "audit"}, {"demo-plain", ""}}
	for _, ns := range namespaces {
		n := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns.name}}
		if ns.mode != "" {
			n.Labels = map[string]string{mutate.LabelMode: ns.mode}
		}
		if _, err := cs.CoreV1().Namespaces().Create(ctx, n, metav1.CreateOptions{}); err != nil {
			return nil, err
		}
	}
	c := func(name, repo string) corev1.Container { return corev1.Container{Name: name, Image: refs[repo]} }
	pods := []struct {
		ns  string
		pod corev1.Pod
	}{
		{"demo-enforce", corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "web"}, Spec: corev1.PodSpec{Containers: []corev1.Container{c("web", "demo/web")}}}},
		{"demo-enforce", corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "alpine-app"}, Spec: corev1.PodSpec{Containers: []corev1.Container{c("app", "demo/alpine-app")}}}},
		{"demo-enforce", corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "go-api"}, Spec: corev1.PodSpec{Containers: []corev1.Container{c("api", "demo/go-api")}}}},
		{"demo-enforce", corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "mixed"}, Spec: corev1.PodSpec{Containers: []corev1.Container{c("web", "demo/web"), c("sidecar", "demo/entrypoint-sh")}}}},
		{"demo-enforce", corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "user-timeout"}, Spec: corev1.PodSpec{
			Containers: []corev1.Container{c("web", "demo/web")},
			DNSConfig:  &corev1.PodDNSConfig{Options: []corev1.PodDNSConfigOption{{Name: "timeout", Value: strPtr("5")}}},
		}}},
		{"demo-enforce", corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "host-network"}, Spec: corev1.PodSpec{HostNetwork: true, Containers: []corev1.Container{c("web", "demo/web")}}}},
		{"demo-enforce", corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "annotated", Annotations: map[string]string{mutate.AnnotationLibc: "musl"}},
			Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "app", Image: "registry.invalid/private/app:1"}}}}},
		{"demo-enforce", corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "opted-out", Annotations: map[string]string{mutate.AnnotationMode: "off"}},
			Spec: corev1.PodSpec{Containers: []corev1.Container{c("web", "demo/web")}}}},
		{"demo-audit", corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "web"}, Spec: corev1.PodSpec{Containers: []corev1.Container{c("web", "demo/web")}}}},
		{"demo-audit", corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "mixed"}, Spec: corev1.PodSpec{Containers: []corev1.Container{c("web", "demo/web"), c("sidecar", "demo/alpine-app")}}}},
		{"demo-plain", corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "web"}, Spec: corev1.PodSpec{Containers: []corev1.Container{c("web", "demo/web")}}}},
	}
	var results []podResult
	for _, p := range pods {
		rec.msgs = nil
		got, err := cs.CoreV1().Pods(p.ns).Create(ctx, &p.pod, metav1.CreateOptions{})
		if err != nil {
			return nil, fmt.Errorf("creating %s/%s: %w", p.ns, p.pod.Name, err)
		}
		results = append(results, podResult{namespace: p.ns, pod: p.pod.Name, got: got, warnings: rec.msgs})
	}
	return results, nil
}

func printSummary(out io.Writer, results []podResult) {
	fmt.Fprintln(out, "\nWhat each pod got:")
	w := tabwriter.NewWriter(out, 0, 4, 2, ' ', 0)
	fmt.Fprintln(w, "NAMESPACE\tPOD\tSTATUS\tLIBC\tDNSCONFIG OPTIONS\tWHY")
	for _, r := range results {
		a := r.got.Annotations
		status := a[mutate.AnnotationStatus]
		if status == "" {
			status = "untouched"
		}
		var opts []string
		if r.got.Spec.DNSConfig != nil {
			for _, o := range r.got.Spec.DNSConfig.Options {
				s := o.Name
				if o.Value != nil {
					s += ":" + *o.Value
				}
				opts = append(opts, s)
			}
		}
		why := a[mutate.AnnotationReason]
		switch {
		case why != "":
		case r.got.Annotations[mutate.AnnotationMode] != "":
			why = "pod annotation " + mutate.AnnotationMode + "=" + r.got.Annotations[mutate.AnnotationMode]
		default:
			why = "namespace has no " + mutate.LabelMode + " label and the cluster default is off"
		}
		if v := a[mutate.AnnotationWouldInject]; v != "" {
			why += "; enforce would add " + v
		}
		fmt.Fprintf(w, "%s\t%s\t%s\t%s\t%s\t%s\n", r.namespace, r.pod, status, orDash(a[mutate.AnnotationDetectedLibc]), orDash(strings.Join(opts, " ")), why)
	}
	_ = w.Flush()
	fmt.Fprintln(out, "\nWarnings returned to the client (what kubectl prints):")
	for _, r := range results {
		for _, m := range r.warnings {
			fmt.Fprintf(out, "  %s/%s: %s\n", r.namespace, r.pod, m)
		}
	}
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

func strPtr(s string) *string { return &s }
