package webhook_test

// Admission latency over HTTPS on loopback through the wiring `dns-tuner serve` builds
// (server.Run: policy file, namespace informer, registry inspection behind the detector that
// follows policy reloads, controller-runtime's webhook server), side by side with a no-op
// handler served by a controller-runtime webhook server in the same process. Both paths share
// one process, one connection pool and one machine load, and requests alternate between them,
// so the ratio of their percentiles isolates what dns-tuner adds on top of the floor that
// controller-runtime, TLS and HTTP already cost. Timings are only reported (b.ReportMetric),
// never asserted. It needs envtest's kube-apiserver (KUBEBUILDER_ASSETS) and the compilers of
// internal/inspect/imagetest; -short skips it. hack/loadtest measures through the API server.
//
//	go test -run '^$' -bench BenchmarkAdmission -benchtime 5000x ./webhook/

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"io"
	"math"
	"math/big"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/go-logr/logr"
	"github.com/go-logr/zapr"
	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	dto "github.com/prometheus/client_model/go"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	admissionv1 "k8s.io/api/admission/v1"
	authenticationv1 "k8s.io/api/authentication/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/client-go/kubernetes"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/envtest"
	logf "sigs.k8s.io/controller-runtime/pkg/log"
	ctrlwebhook "sigs.k8s.io/controller-runtime/pkg/webhook"
	"sigs.k8s.io/controller-runtime/pkg/webhook/admission"

	"github.com/dns-tuner/dns-tuner/internal/inspect"
	"github.com/dns-tuner/dns-tuner/internal/inspect/imagetest"
	"github.com/dns-tuner/dns-tuner/internal/libc"
	"github.com/dns-tuner/dns-tuner/internal/metrics"
	"github.com/dns-tuner/dns-tuner/internal/mutate"
	"github.com/dns-tuner/dns-tuner/internal/policy"
	"github.com/dns-tuner/dns-tuner/internal/server"
	"github.com/dns-tuner/dns-tuner/internal/verdicts"
	"github.com/dns-tuner/dns-tuner/test/e2e/envtestenv"
	"github.com/dns-tuner/dns-tuner/webhook"
)

const (
	benchNamespace = "shop"
	noopPath       = "/noop"
	warmupPairs    = 300
)

// BenchmarkAdmission reports per-request latency percentiles of dns-tuner as serve wires it
// (enforce mode, verdicts already cached) and of a no-op handler, and their ratio. One iteration is one
// request to each path; which goes first alternates so neither always follows the other.
// The sequential cases measure latency alone; "h2-8workers" has eight clients share one
// HTTP/2 connection, as the API server does under a burst of pod creations, so the handler's
// CPU cost also shows up as queueing.
func BenchmarkAdmission(b *testing.B) {
	env := startBenchServer(b)
	for _, bc := range []struct {
		name, proto string
		workers     int
	}{
		{"h2", "h2", 1},
		{"http1.1", "http1.1", 1},
		{"h2-8workers", "h2", 8},
	} {
		b.Run(bc.name, func(b *testing.B) {
			c := env.client(bc.proto)
			defer c.CloseIdleConnections()
			mutateURL, noopURL := env.mutateURL, env.noopURL
			// Warm up: TLS handshake, first-use initialisation, and a check that each path
			// answers as expected, so the figures are about the right work.
			for i := 0; i < warmupPairs; i++ {
				checkMutated(b, postReview(b, c, mutateURL, env.body))
				checkNoop(b, postReview(b, c, noopURL, env.body))
			}
			mut := make([]time.Duration, b.N)
			noop := make([]time.Duration, b.N)
			errs := make(chan error, bc.workers)
			var wg sync.WaitGroup
			b.ResetTimer()
			for w := range bc.workers {
				wg.Add(1)
				go func() {
					defer wg.Done()
					var err error
					for i := w; i < b.N && err == nil; i += bc.workers {
						if i/bc.workers%2 == 0 {
							if mut[i], err = timedPost(c, mutateURL, env.body); err == nil {
								noop[i], err = timedPost(c, noopURL, env.body)
							}
						} else {
							if noop[i], err = timedPost(c, noopURL, env.body); err == nil {
								mut[i], err = timedPost(c, mutateURL, env.body)
							}
						}
					}
					errs <- err
				}()
			}
			wg.Wait()
			b.StopTimer()
			for range bc.workers {
				if err := <-errs; err != nil {
					b.Fatal(err)
				}
			}
			reportPercentiles(b, mut, noop)
		})
	}
}

// TestAdmissionBenchHarness checks that the benchmark's server, client and review body do
// what the benchmark claims (the mutator patches, the no-op allows). It measures nothing.
func TestAdmissionBenchHarness(t *testing.T) {
	env := startBenchServer(t)
	for _, proto := range []string{"h2", "http1.1"} {
		c := env.client(proto)
		checkMutated(t, postReview(t, c, env.mutateURL, env.body))
		checkNoop(t, postReview(t, c, env.noopURL, env.body))
		for _, url := range []string{env.noopURL, env.mutateURL} {
			resp, err := c.Post(url, "application/json", bytes.NewReader(env.body))
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			if want := map[string]string{"h2": "HTTP/2.0", "http1.1": "HTTP/1.1"}[proto]; resp.Proto != want {
				t.Errorf("%s client spoke %s to %s", proto, resp.Proto, url)
			}
		}
		c.CloseIdleConnections()
	}
	// After the first admission every verdict must come from the detector's cache.
	hits := func() float64 {
		m := &dto.Metric{}
		if err := metrics.CacheLookups.WithLabelValues("hit").Write(m); err != nil {
			t.Fatal(err)
		}
		return m.GetCounter().GetValue()
	}
	before := hits()
	c := env.client("h2")
	defer c.CloseIdleConnections()
	for range 3 {
		checkMutated(t, postReview(t, c, env.mutateURL, env.body))
	}
	if got := hits() - before; got != 6 {
		t.Errorf("%v verdict cache hits for 3 pods of 2 containers; want 6", got)
	}
	t.Logf("review body: %d bytes", len(env.body))
	if n := len(env.body); n < 4000 || n > 6500 {
		t.Errorf("review body is %d bytes; want a typical 4-6 KB pod", n)
	}
}

type benchEnv struct {
	mutateURL, noopURL string // https://127.0.0.1:port/path
	ca                 *x509.CertPool
	body               []byte
}

func (e *benchEnv) client(proto string) *http.Client {
	tr := &http.Transport{
		TLSClientConfig:     &tls.Config{RootCAs: e.ca, ServerName: "127.0.0.1"},
		MaxIdleConnsPerHost: 4,
		IdleConnTimeout:     time.Minute,
		ForceAttemptHTTP2:   proto == "h2",
	}
	if proto != "h2" {
		tr.TLSClientConfig.NextProtos = []string{"http/1.1"}
	}
	return &http.Client{Transport: tr, Timeout: 10 * time.Second}
}

var benchLogOnce sync.Once

// startBenchServer runs server.Run, the wiring of `dns-tuner serve`, against envtest's
// kube-apiserver and an in-process registry holding the benchmark pod's two images, and a
// no-op handler on a second controller-runtime webhook server, both on loopback, until the
// test ends.
func startBenchServer(tb testing.TB) *benchEnv {
	tb.Helper()
	if testing.Short() {
		tb.Skip("needs envtest's kube-apiserver and the image builder's compilers")
	}
	// Production logs JSON through zap at info level; do the same into io.Discard so the
	// per-request logger work (controller-runtime's and PodMutator's WithValues) is counted.
	log := zapr.NewLogger(zap.New(zapcore.NewCore(
		zapcore.NewJSONEncoder(zap.NewProductionEncoderConfig()), zapcore.AddSync(io.Discard), zapcore.InfoLevel)))
	benchLogOnce.Do(func() { logf.SetLogger(log) })

	assets, err := envtestenv.AssetsDir("..", false)
	if err != nil {
		tb.Fatal(err)
	}
	cp := &envtest.Environment{BinaryAssetsDirectory: assets}
	cfg, err := cp.Start()
	if err != nil {
		tb.Fatalf("starting envtest: %v", err)
	}
	tb.Cleanup(func() { _ = cp.Stop() })
	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: benchNamespace, Labels: map[string]string{mutate.LabelMode: "enforce", "team": "checkout"}}}
	if _, err := kubernetes.NewForConfigOrDie(cfg).CoreV1().Namespaces().Create(context.Background(), ns, metav1.CreateOptions{}); err != nil {
		tb.Fatal(err)
	}

	// The benchmark pod's images, built from real binaries: the app on glibc, the sidecar on musl.
	reg := imagetest.Registry(tb)
	images := imagetest.NewBuilder(tb)
	imagetest.Push(tb, reg, "shop/checkout:1.42.0", images.Image(imagetest.GlibcDynamic))
	imagetest.Push(tb, reg, "infra/log-shipper:3.1.2", images.Image(imagetest.MuslDynamic))
	dir := tb.TempDir()
	policyFile := filepath.Join(dir, "policy.yaml")
	if err := os.WriteFile(policyFile, fmt.Appendf(nil, "inspection:\n  enabled: true\n  insecureRegistries: [%q]\n", reg), 0o600); err != nil {
		tb.Fatal(err)
	}

	certDir := tb.TempDir()
	ca := writeSelfSignedCert(tb, certDir)
	port, noopPort := freePort(tb), freePort(tb)
	opts := server.Options{
		ConfigFile: policyFile, PolicyReload: 10 * time.Second,
		CertDir: certDir, CertName: "tls.crt", KeyName: "tls.key", WebhookHost: "127.0.0.1", WebhookPort: port,
		MetricsBindAddress: "0", HealthProbeBindAddr: "0", Namespace: "dns-tuner-system",
		// HTTP/2 on, as on the no-op's controller-runtime server, so the "h2" cases compare
		// HTTP/2 with HTTP/2; the "http1.1" cases are serve's default protocol.
		EnableHTTP2: true,
	}
	noop := ctrlwebhook.NewServer(ctrlwebhook.Options{Host: "127.0.0.1", Port: noopPort, CertDir: certDir})
	noop.Register(noopPath, &admission.Webhook{Handler: admission.HandlerFunc(func(context.Context, admission.Request) admission.Response {
		return admission.Allowed("")
	})})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 2)
	go func() { done <- server.Run(ctx, opts, cfg, webhook.Admission, log) }()
	go func() { done <- noop.Start(ctx) }()
	tb.Cleanup(func() {
		cancel()
		for range 2 {
			if err := <-done; err != nil {
				tb.Errorf("webhook server: %v", err)
			}
		}
	})
	for _, p := range []int{port, noopPort} {
		if err := envtestenv.WaitForTLS(ctx, net.JoinHostPort("127.0.0.1", strconv.Itoa(p)), 30*time.Second, done); err != nil {
			tb.Fatal(err)
		}
	}
	// The same pod, its images now in the local registry.
	body := bytes.ReplaceAll(reviewBody(tb), []byte("registry.example.com/"), []byte(reg+"/"))
	return &benchEnv{
		mutateURL: "https://127.0.0.1:" + strconv.Itoa(port) + webhook.Path,
		noopURL:   "https://127.0.0.1:" + strconv.Itoa(noopPort) + noopPath,
		ca:        ca, body: body,
	}
}

// instantInspector stands in for the registry: it resolves every tag to a digest derived
// from its name and knows each repository's libc. Only the warm-up reaches it.
type instantInspector map[string]libc.Verdict

func (i instantInspector) Resolve(_ context.Context, ref name.Reference, _ ...remote.Option) (v1.Hash, error) {
	sum := sha256.Sum256([]byte(ref.Name()))
	return v1.Hash{Algorithm: "sha256", Hex: hex.EncodeToString(sum[:])}, nil
}

func (i instantInspector) InspectContainer(_ context.Context, ref name.Reference, _ inspect.Container, _ ...remote.Option) (libc.Verdict, error) {
	if v, ok := i[ref.Context().Name()]; ok {
		v.Source = libc.SourceEntrypoint
		return v, nil
	}
	return libc.Verdict{}, fmt.Errorf("%s: not in the benchmark's registry", ref)
}

// cachedNamespaces stands in for the manager's metadata informer cache: a map lookup and a
// deep copy, without the API-machinery conversions controller-runtime's fake client does on
// every Get, which production never pays.
type cachedNamespaces struct {
	ns map[string]*metav1.PartialObjectMetadata
}

func (c *cachedNamespaces) Get(_ context.Context, key client.ObjectKey, obj client.Object, _ ...client.GetOption) error {
	out, ok := obj.(*metav1.PartialObjectMetadata)
	if !ok {
		return fmt.Errorf("cachedNamespaces serves PartialObjectMetadata only, got %T", obj)
	}
	ns, ok := c.ns[key.Name]
	if !ok {
		return apierrors.NewNotFound(corev1.Resource("namespaces"), key.Name)
	}
	ns.ObjectMeta.DeepCopyInto(&out.ObjectMeta)
	return nil
}

func (c *cachedNamespaces) List(context.Context, client.ObjectList, ...client.ListOption) error {
	return fmt.Errorf("cachedNamespaces does not list")
}

func postReview(tb testing.TB, c *http.Client, url string, body []byte) *admissionv1.AdmissionReview {
	tb.Helper()
	resp, err := c.Post(url, "application/json", bytes.NewReader(body))
	if err != nil {
		tb.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		tb.Fatalf("%s: HTTP %d", url, resp.StatusCode)
	}
	ar := &admissionv1.AdmissionReview{}
	if err := json.NewDecoder(resp.Body).Decode(ar); err != nil {
		tb.Fatal(err)
	}
	if ar.Response == nil {
		tb.Fatalf("%s: review without response", url)
	}
	return ar
}

// timedPost measures one round trip up to the last byte of the response, which is what the
// API server waits for.
func timedPost(c *http.Client, url string, body []byte) (time.Duration, error) {
	start := time.Now()
	resp, err := c.Post(url, "application/json", bytes.NewReader(body))
	if err != nil {
		return 0, err
	}
	_, err = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	d := time.Since(start)
	if err == nil && resp.StatusCode != http.StatusOK {
		err = fmt.Errorf("%s: HTTP %d", url, resp.StatusCode)
	}
	return d, err
}

func checkMutated(tb testing.TB, ar *admissionv1.AdmissionReview) {
	tb.Helper()
	r := ar.Response
	if !r.Allowed || r.PatchType == nil || !bytes.Contains(r.Patch, []byte(`"/spec/dnsConfig"`)) ||
		!bytes.Contains(r.Patch, []byte("single-request-reopen")) {
		tb.Fatalf("mutator did not inject: allowed=%v patch=%s warnings=%q", r.Allowed, r.Patch, r.Warnings)
	}
}

func checkNoop(tb testing.TB, ar *admissionv1.AdmissionReview) {
	tb.Helper()
	if !ar.Response.Allowed || len(ar.Response.Patch) != 0 {
		tb.Fatalf("no-op handler: allowed=%v patch=%s", ar.Response.Allowed, ar.Response.Patch)
	}
}

func reportPercentiles(b *testing.B, mut, noop []time.Duration) {
	mp50, mp99 := percentile(mut, 0.50), percentile(mut, 0.99)
	np50, np99 := percentile(noop, 0.50), percentile(noop, 0.99)
	b.ReportMetric(float64(mp50), "mutate-p50-ns")
	b.ReportMetric(float64(mp99), "mutate-p99-ns")
	b.ReportMetric(float64(np50), "noop-p50-ns")
	b.ReportMetric(float64(np99), "noop-p99-ns")
	b.ReportMetric(float64(mp50)/float64(np50), "p50-ratio")
	b.ReportMetric(float64(mp99)/float64(np99), "p99-ratio")
}

// percentile is the nearest-rank percentile of ds (which it sorts).
func percentile(ds []time.Duration, q float64) time.Duration {
	slices.Sort(ds)
	i := int(math.Ceil(q*float64(len(ds)))) - 1
	return ds[max(i, 0)]
}

func freePort(tb testing.TB) int {
	tb.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// writeSelfSignedCert writes tls.crt and tls.key (controller-runtime's default names) for
// 127.0.0.1 into dir and returns a pool that trusts them.
func writeSelfSignedCert(tb testing.TB, dir string) *x509.CertPool {
	tb.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		tb.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: "dns-tuner-bench"},
		IPAddresses:           []net.IP{net.IPv4(127, 0, 0, 1)},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(24 * time.Hour),
		KeyUsage:              x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		BasicConstraintsValid: true,
		IsCA:                  true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		tb.Fatal(err)
	}
	keyDER, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		tb.Fatal(err)
	}
	certPEM := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
	if err := os.WriteFile(filepath.Join(dir, "tls.crt"), certPEM, 0o600); err != nil {
		tb.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "tls.key"), pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: keyDER}), 0o600); err != nil {
		tb.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(certPEM)
	return pool
}

// reviewBody is the AdmissionReview the API server sends for a pod of a typical Deployment
// after its built-in admission plugins ran (service account token volume, default
// tolerations): an app container and a log-shipping sidecar with env, mounts and probes.
func reviewBody(tb testing.TB) []byte {
	tb.Helper()
	pod := benchPod()
	raw, err := json.Marshal(pod)
	if err != nil {
		tb.Fatal(err)
	}
	opts, _ := json.Marshal(metav1.CreateOptions{TypeMeta: metav1.TypeMeta{APIVersion: "meta.k8s.io/v1", Kind: "CreateOptions"}})
	podGVK := metav1.GroupVersionKind{Version: "v1", Kind: "Pod"}
	podGVR := metav1.GroupVersionResource{Version: "v1", Resource: "pods"}
	ar := admissionv1.AdmissionReview{
		TypeMeta: metav1.TypeMeta{APIVersion: "admission.k8s.io/v1", Kind: "AdmissionReview"},
		Request: &admissionv1.AdmissionRequest{
			UID:  types.UID("705ab4f5-6393-11e8-b7cc-42010a800002"),
			Kind: podGVK, Resource: podGVR, RequestKind: &podGVK, RequestResource: &podGVR,
			Namespace: benchNamespace, Operation: admissionv1.Create,
			UserInfo: authenticationv1.UserInfo{
				Username: "system:serviceaccount:kube-system:replicaset-controller",
				UID:      "2b2d5a62-9f5e-4a47-8d0b-3a0b0f3c8f11",
				Groups:   []string{"system:serviceaccounts", "system:serviceaccounts:kube-system", "system:authenticated"},
			},
			Object:  runtime.RawExtension{Raw: raw},
			Options: runtime.RawExtension{Raw: opts},
			DryRun:  ptr.To(false),
		},
	}
	body, err := json.Marshal(ar)
	if err != nil {
		tb.Fatal(err)
	}
	return body
}

func benchPod() *corev1.Pod {
	mounts := []corev1.VolumeMount{
		{Name: "config", MountPath: "/etc/checkout", ReadOnly: true},
		{Name: "kube-api-access-7xk2p", MountPath: "/var/run/secrets/kubernetes.io/serviceaccount", ReadOnly: true},
	}
	return &corev1.Pod{
		TypeMeta: metav1.TypeMeta{APIVersion: "v1", Kind: "Pod"},
		ObjectMeta: metav1.ObjectMeta{
			GenerateName: "checkout-7d9f8c6b5d-", Namespace: benchNamespace,
			Labels: map[string]string{"app.kubernetes.io/name": "checkout", "app.kubernetes.io/part-of": "shop", "pod-template-hash": "7d9f8c6b5d"},
			Annotations: map[string]string{
				"kubectl.kubernetes.io/restartedAt": "2026-07-01T09:12:44Z",
				"prometheus.io/scrape":              "true", "prometheus.io/port": "9090",
			},
			OwnerReferences: []metav1.OwnerReference{{APIVersion: "apps/v1", Kind: "ReplicaSet", Name: "checkout-7d9f8c6b5d",
				UID: "c0ffee00-1111-4222-8333-444455556666", Controller: ptr.To(true), BlockOwnerDeletion: ptr.To(true)}},
		},
		Spec: corev1.PodSpec{
			Volumes: []corev1.Volume{
				{Name: "config", VolumeSource: corev1.VolumeSource{ConfigMap: &corev1.ConfigMapVolumeSource{
					LocalObjectReference: corev1.LocalObjectReference{Name: "checkout-config"}, DefaultMode: ptr.To[int32](420)}}},
				{Name: "varlog", VolumeSource: corev1.VolumeSource{EmptyDir: &corev1.EmptyDirVolumeSource{}}},
				{Name: "kube-api-access-7xk2p", VolumeSource: corev1.VolumeSource{Projected: &corev1.ProjectedVolumeSource{
					DefaultMode: ptr.To[int32](420),
					Sources: []corev1.VolumeProjection{
						{ServiceAccountToken: &corev1.ServiceAccountTokenProjection{Path: "token", ExpirationSeconds: ptr.To[int64](3607)}},
						{ConfigMap: &corev1.ConfigMapProjection{LocalObjectReference: corev1.LocalObjectReference{Name: "kube-root-ca.crt"},
							Items: []corev1.KeyToPath{{Key: "ca.crt", Path: "ca.crt"}}}},
						{DownwardAPI: &corev1.DownwardAPIProjection{Items: []corev1.DownwardAPIVolumeFile{{Path: "namespace",
							FieldRef: &corev1.ObjectFieldSelector{APIVersion: "v1", FieldPath: "metadata.namespace"}}}}},
					}}}},
			},
			Containers: []corev1.Container{
				{
					Name: "checkout", Image: "registry.example.com/shop/checkout:1.42.0",
					Args:  []string{"--config=/etc/checkout/config.yaml", "--listen=:8080"},
					Ports: []corev1.ContainerPort{{Name: "http", ContainerPort: 8080, Protocol: corev1.ProtocolTCP}, {Name: "metrics", ContainerPort: 9090, Protocol: corev1.ProtocolTCP}},
					Env: []corev1.EnvVar{
						{Name: "PAYMENTS_URL", Value: "http://payments.shop.svc.cluster.local:8080"},
						{Name: "DATABASE_HOST", Value: "checkout-db.shop.svc.cluster.local"},
						{Name: "DATABASE_PASSWORD", ValueFrom: &corev1.EnvVarSource{SecretKeyRef: &corev1.SecretKeySelector{
							LocalObjectReference: corev1.LocalObjectReference{Name: "checkout-db"}, Key: "password"}}},
						{Name: "POD_NAME", ValueFrom: &corev1.EnvVarSource{FieldRef: &corev1.ObjectFieldSelector{APIVersion: "v1", FieldPath: "metadata.name"}}},
						{Name: "GOMAXPROCS", ValueFrom: &corev1.EnvVarSource{ResourceFieldRef: &corev1.ResourceFieldSelector{Resource: "limits.cpu", Divisor: resource.MustParse("1")}}},
					},
					Resources: corev1.ResourceRequirements{
						Requests: corev1.ResourceList{corev1.ResourceCPU: resource.MustParse("250m"), corev1.ResourceMemory: resource.MustParse("256Mi")},
						Limits:   corev1.ResourceList{corev1.ResourceCPU: resource.MustParse("1"), corev1.ResourceMemory: resource.MustParse("512Mi")},
					},
					VolumeMounts: mounts,
					LivenessProbe: &corev1.Probe{ProbeHandler: corev1.ProbeHandler{HTTPGet: &corev1.HTTPGetAction{Path: "/healthz", Port: intstr.FromString("http"), Scheme: corev1.URISchemeHTTP}},
						InitialDelaySeconds: 10, TimeoutSeconds: 1, PeriodSeconds: 10, SuccessThreshold: 1, FailureThreshold: 3},
					ReadinessProbe: &corev1.Probe{ProbeHandler: corev1.ProbeHandler{HTTPGet: &corev1.HTTPGetAction{Path: "/readyz", Port: intstr.FromString("http"), Scheme: corev1.URISchemeHTTP}},
						TimeoutSeconds: 1, PeriodSeconds: 5, SuccessThreshold: 1, FailureThreshold: 3},
					TerminationMessagePath: "/dev/termination-log", TerminationMessagePolicy: corev1.TerminationMessageReadFile,
					ImagePullPolicy: corev1.PullIfNotPresent,
					SecurityContext: &corev1.SecurityContext{RunAsNonRoot: ptr.To(true), AllowPrivilegeEscalation: ptr.To(false), ReadOnlyRootFilesystem: ptr.To(true),
						Capabilities: &corev1.Capabilities{Drop: []corev1.Capability{"ALL"}}},
				},
				{
					Name: "log-shipper", Image: "registry.example.com/infra/log-shipper:3.1.2",
					Env: []corev1.EnvVar{
						{Name: "SHIPPER_OUTPUT", Value: "loki.logging.svc.cluster.local:3100"},
						{Name: "NODE_NAME", ValueFrom: &corev1.EnvVarSource{FieldRef: &corev1.ObjectFieldSelector{APIVersion: "v1", FieldPath: "spec.nodeName"}}},
					},
					Resources: corev1.ResourceRequirements{
						Requests: corev1.ResourceList{corev1.ResourceCPU: resource.MustParse("50m"), corev1.ResourceMemory: resource.MustParse("64Mi")},
						Limits:   corev1.ResourceList{corev1.ResourceMemory: resource.MustParse("128Mi")},
					},
					VolumeMounts: append([]corev1.VolumeMount{{Name: "varlog", MountPath: "/var/log/app"}}, mounts[1]),
					LivenessProbe: &corev1.Probe{ProbeHandler: corev1.ProbeHandler{TCPSocket: &corev1.TCPSocketAction{Port: intstr.FromInt32(2020)}},
						TimeoutSeconds: 1, PeriodSeconds: 10, SuccessThreshold: 1, FailureThreshold: 3},
					TerminationMessagePath: "/dev/termination-log", TerminationMessagePolicy: corev1.TerminationMessageReadFile,
					ImagePullPolicy: corev1.PullIfNotPresent,
				},
			},
			RestartPolicy:                 corev1.RestartPolicyAlways,
			TerminationGracePeriodSeconds: ptr.To[int64](30),
			DNSPolicy:                     corev1.DNSClusterFirst,
			ServiceAccountName:            "checkout",
			SecurityContext:               &corev1.PodSecurityContext{FSGroup: ptr.To[int64](2000)},
			ImagePullSecrets:              []corev1.LocalObjectReference{{Name: "registry-example-com"}},
			SchedulerName:                 corev1.DefaultSchedulerName,
			Tolerations: []corev1.Toleration{
				{Key: "node.kubernetes.io/not-ready", Operator: corev1.TolerationOpExists, Effect: corev1.TaintEffectNoExecute, TolerationSeconds: ptr.To[int64](300)},
				{Key: "node.kubernetes.io/unreachable", Operator: corev1.TolerationOpExists, Effect: corev1.TaintEffectNoExecute, TolerationSeconds: ptr.To[int64](300)},
			},
			Priority:           ptr.To[int32](0),
			EnableServiceLinks: ptr.To(true),
			PreemptionPolicy:   ptr.To(corev1.PreemptLowerPriority),
		},
	}
}

// newBenchMutator is the production handler in enforce mode with a warmed production
// detector over an instant registry, so every verdict is a cache hit.
func newBenchMutator(tb testing.TB, log logr.Logger) *webhook.PodMutator {
	tb.Helper()
	p := policy.Default()
	p.Mode = policy.Enforce
	scheme := runtime.NewScheme()
	if err := clientgoscheme.AddToScheme(scheme); err != nil {
		tb.Fatal(err)
	}
	return &webhook.PodMutator{
		Policy: policy.Static{P: p},
		Namespaces: &cachedNamespaces{ns: map[string]*metav1.PartialObjectMetadata{
			benchNamespace: {ObjectMeta: metav1.ObjectMeta{Name: benchNamespace, Labels: map[string]string{
				"kubernetes.io/metadata.name": benchNamespace, mutate.LabelMode: "enforce", "team": "checkout",
			}}},
		}},
		// The production detector, warmed by the first requests and with TTLs longer than
		// the run, so every admission is a cache hit ("decisions cached").
		Detector: verdicts.New(verdicts.Options{
			Inspector: instantInspector{
				"registry.example.com/shop/checkout": {Libc: libc.GLibc, Version: "2.36",
					Evidence: "usr/local/bin/checkout: PT_INTERP /lib64/ld-linux-x86-64.so.2"},
				"registry.example.com/infra/log-shipper": {Libc: libc.Musl,
					Evidence: "usr/bin/shipper: PT_INTERP /lib/ld-musl-x86_64.so.1"},
			},
			TagTTL: time.Hour, KeychainTTL: time.Hour, Log: log.WithName("detector"),
		}),
		Log: log.WithName("admission"),
	}

}

// BenchmarkHandle is the handler alone (no HTTP, no TLS): CPU and allocations per admission.
func BenchmarkHandle(b *testing.B) {
	m := newBenchMutator(b, logr.Discard())
	var ar admissionv1.AdmissionReview
	if err := json.Unmarshal(reviewBody(b), &ar); err != nil {
		b.Fatal(err)
	}
	req := admission.Request{AdmissionRequest: *ar.Request}
	m.Handle(context.Background(), req) // warm the caches
	b.ReportAllocs()
	for b.Loop() {
		if resp := m.Handle(context.Background(), req); len(resp.Patch) == 0 {
			b.Fatal("no patch")
		}
	}
}

// BenchmarkServeReview is one review served over HTTP without the network: decoding the
// AdmissionReview, deciding, encoding the answer. "reviews" is what serve registers
// (webhook.Reviews, one pass over the review); "admission.Webhook" is controller-runtime's
// generic path with the same mutator, which Reviews falls back to for bodies it does not take.
func BenchmarkServeReview(b *testing.B) {
	m := newBenchMutator(b, logr.Discard())
	body := reviewBody(b)
	for _, bc := range []struct {
		name string
		h    http.Handler
	}{
		{"reviews", webhook.Reviews(m, logr.Discard())},
		{"admission.Webhook", &admission.Webhook{Handler: m}},
	} {
		b.Run(bc.name, func(b *testing.B) {
			r := bytes.NewReader(body)
			serve := func() *httptest.ResponseRecorder {
				r.Reset(body)
				req := httptest.NewRequest(http.MethodPost, webhook.Path, r)
				req.Header.Set("Content-Type", "application/json")
				w := httptest.NewRecorder()
				bc.h.ServeHTTP(w, req)
				return w
			}
			if w := serve(); !bytes.Contains(w.Body.Bytes(), []byte(`"patch":`)) { // warms the caches too
				b.Fatalf("no patch: %s", w.Body)
			}
			b.ReportAllocs()
			for b.Loop() {
				serve()
			}
		})
	}
}
