package deploy

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/rsa"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"flag"
	"fmt"
	"math/big"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"testing"
	"time"

	"github.com/go-logr/logr"
	"github.com/go-logr/zapr"
	"go.uber.org/zap"
	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"
	ctrlmetrics "sigs.k8s.io/controller-runtime/pkg/metrics"

	"github.com/dns-tuner/dns-tuner/internal/mutate"
	"github.com/dns-tuner/dns-tuner/internal/server"
	"github.com/dns-tuner/dns-tuner/webhook"
)

// With the chart's objects (self-managed certificates) installed and `dns-tuner serve` running
// with the chart's own arguments:
//   - the rotator creates the CA and certificate, injects the CA, and /readyz waits for it;
//   - pods in an opted-in namespace are mutated, while kube-system, the release namespace and
//     dns-tuner's own pods never reach the webhook, even when labelled to opt in;
//   - re-applying the chart (an upgrade) keeps the CA, the certificate and the caBundle;
//   - a certificate near expiry is renewed from the same CA and served without a restart;
//   - a restart reuses the CA;
//
// and pods keep being mutated at every step.
func TestWebhookWithChartObjects(t *testing.T) {
	ctx := context.Background()
	objs := helmTemplate(t, releaseNS, []string{"ci/self-managed-values.yaml"})
	port, healthPort := freePort(t), freePort(t)

	// The only change to the chart's objects: envtest has no cluster network, so the API server
	// reaches the webhook by URL instead of through its Service.
	mwc := find(t, objs, "MutatingWebhookConfiguration", release)
	hooks, _, _ := unstructured.NestedFieldNoCopy(mwc.Object, "webhooks")
	cc := hooks.([]any)[0].(map[string]any)["clientConfig"].(map[string]any)
	if path := cc["service"].(map[string]any)["path"]; path != webhook.Path {
		t.Fatalf("webhook configuration path %v, server serves %s", path, webhook.Path)
	}
	delete(cc, "service")
	cc["url"] = fmt.Sprintf("https://localhost:%d%s", port, webhook.Path)

	ensureNamespace(ctx, t, releaseNS, nil)
	if err := apply(ctx, objs, "helm", true); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = k.Delete(ctx, &admissionregistrationv1.MutatingWebhookConfiguration{ObjectMeta: metav1.ObjectMeta{Name: release}})
	})

	o := serveOptions(t, objs)
	o.CertDir = t.TempDir() // the Secret volume, filled by mirrorSecret as the kubelet would
	o.WebhookPort = port
	o.HealthProbeBindAddr = net.JoinHostPort("127.0.0.1", strconv.Itoa(healthPort))
	o.MetricsBindAddress = "0"
	o.Namespace = releaseNS
	o.Certs.ExtraDNSNames = []string{"localhost"}
	o.Certs.CheckInterval = time.Second
	secretKey := client.ObjectKey{Namespace: releaseNS, Name: o.Certs.SecretName}

	stop := startServer(t, o, "cert-rotator-1")
	secret := waitSecret(t, secretKey, func(s *corev1.Secret) bool { return len(s.Data["ca.crt"]) > 0 && len(s.Data["tls.crt"]) > 0 })
	if readyz(healthPort) {
		t.Fatal("/readyz passed before the certificate was in --cert-dir")
	}
	mctx, stopMirror := context.WithCancel(ctx)
	defer stopMirror()
	go mirrorSecret(mctx, secretKey, o.CertDir)
	eventually(t, 90*time.Second, "/readyz once the certificate is mounted", func() bool { return readyz(healthPort) })
	ca := secret.Data["ca.crt"]
	if got := caBundle(t); !bytes.Equal(got, ca) {
		t.Fatalf("webhook caBundle is not the Secret's CA")
	}

	ensureNamespace(ctx, t, "apps", map[string]string{mutate.LabelMode: "enforce"})
	// Labelled to opt in: only the selector keeps them away.
	ensureNamespace(ctx, t, "kube-system", map[string]string{mutate.LabelMode: "enforce"})
	ensureNamespace(ctx, t, releaseNS, map[string]string{mutate.LabelMode: "enforce"})

	// The API server may take a moment to see the injected caBundle.
	eventually(t, 30*time.Second, "first pod mutated", func() bool { return isMutated(createPod(t, "apps", nil)) })

	t.Run("selectors", func(t *testing.T) {
		for _, c := range []struct {
			ns     string
			labels map[string]string
		}{
			{"kube-system", nil},
			{releaseNS, nil},
			{"apps", map[string]string{"app.kubernetes.io/name": "dns-tuner"}}, // dns-tuner's own pods
		} {
			before := admissions(t)
			p := createPod(t, c.ns, c.labels)
			if isMutated(p) || p.Annotations[mutate.AnnotationStatus] != "" {
				t.Errorf("pod in %s (labels %v) was handled by dns-tuner: %v", c.ns, c.labels, p.Annotations)
			}
			if after := admissions(t); after != before {
				t.Errorf("pod in %s (labels %v) reached the webhook (admissions %v -> %v)", c.ns, c.labels, before, after)
			}
		}
		// The webhook still answers, so the pods above were excluded, not dropped by an outage.
		mustMutate(t)
	})

	t.Run("upgrade keeps the CA", func(t *testing.T) {
		before := getSecret(t, secretKey)
		if err := apply(ctx, objs, "helm", true); err != nil {
			t.Fatal(err)
		}
		after := getSecret(t, secretKey)
		for _, key := range []string{"ca.crt", "ca.key", "tls.crt", "tls.key"} {
			if !bytes.Equal(before.Data[key], after.Data[key]) {
				t.Errorf("re-applying the chart changed %s in the certificate Secret", key)
			}
		}
		if !bytes.Equal(caBundle(t), ca) {
			t.Error("re-applying the chart changed or removed the webhook caBundle")
		}
		mustMutate(t)
	})

	t.Run("renewal", func(t *testing.T) {
		cur := getSecret(t, secretKey)
		// A certificate from the same CA that expires tomorrow: inside the rotator's 90-day
		// lookahead, so it must be replaced.
		expiring, expiringKey := signServingCert(t, cur.Data["ca.crt"], cur.Data["ca.key"], 24*time.Hour)
		cur.Data["tls.crt"], cur.Data["tls.key"] = expiring, expiringKey
		if err := k.Update(ctx, cur); err != nil {
			t.Fatal(err)
		}
		renewed := waitSecret(t, secretKey, func(s *corev1.Secret) bool {
			return len(s.Data["tls.crt"]) > 0 && !bytes.Equal(s.Data["tls.crt"], expiring)
		})
		if !bytes.Equal(renewed.Data["ca.crt"], ca) {
			t.Fatal("renewing the serving certificate rotated the CA")
		}
		if notAfter(t, renewed.Data["tls.crt"]).Before(time.Now().Add(300 * 24 * time.Hour)) {
			t.Fatalf("renewed certificate expires %v; want about a year", notAfter(t, renewed.Data["tls.crt"]))
		}
		want := serial(t, renewed.Data["tls.crt"])
		eventually(t, 60*time.Second, "the renewed certificate served without a restart", func() bool {
			s := servedSerial(port)
			return s != nil && s.Cmp(want) == 0
		})
		if !bytes.Equal(caBundle(t), ca) {
			t.Error("renewal changed the webhook caBundle")
		}
		mustMutate(t)
	})

	t.Run("restart reuses the CA", func(t *testing.T) {
		served := servedSerial(port)
		stop()
		stop = startServer(t, o, "cert-rotator-2")
		eventually(t, 90*time.Second, "/readyz after restart", func() bool { return readyz(healthPort) })
		s := getSecret(t, secretKey)
		if !bytes.Equal(s.Data["ca.crt"], ca) || !bytes.Equal(caBundle(t), ca) {
			t.Fatal("restart rotated the CA")
		}
		if got := servedSerial(port); got == nil || got.Cmp(served) != 0 {
			t.Errorf("restart replaced a valid serving certificate (serial %v -> %v)", served, got)
		}
		mustMutate(t)
	})
	stop()
}

// serveOptions parses the chart Deployment's arguments as `dns-tuner serve` does, so a flag
// the binary does not know fails here, and points --config at the chart's policy.
func serveOptions(t *testing.T, objs []*unstructured.Unstructured) server.Options {
	t.Helper()
	d := find(t, objs, "Deployment", release)
	containers, _, _ := unstructured.NestedSlice(d.Object, "spec", "template", "spec", "containers")
	raw, _, _ := unstructured.NestedStringSlice(containers[0].(map[string]any), "args")
	if len(raw) == 0 || raw[0] != "serve" {
		t.Fatalf("container args %v: want serve first", raw)
	}
	var o server.Options
	fs := flag.NewFlagSet("serve", flag.ContinueOnError)
	o.BindFlags(fs)
	if err := fs.Parse(raw[1:]); err != nil {
		t.Fatalf("chart arguments %v: %v", raw, err)
	}
	if o.Certs.Mode != "self-managed" {
		t.Fatalf("chart default --cert-mode %q, want self-managed", o.Certs.Mode)
	}
	cm := find(t, objs, "ConfigMap", release+"-policy")
	pol, _, _ := unstructured.NestedString(cm.Object, "data", filepath.Base(o.ConfigFile))
	o.ConfigFile = filepath.Join(t.TempDir(), "policy.yaml")
	if err := os.WriteFile(o.ConfigFile, []byte(pol), 0o600); err != nil {
		t.Fatal(err)
	}
	o.PolicyReload = time.Second
	return o
}

// startServer runs `serve` in-process; the returned stop waits for it to exit.
func startServer(t *testing.T, o server.Options, controllerName string) func() {
	t.Helper()
	o.Certs.ControllerName = controllerName // unique per process, as controller-runtime requires
	log := logr.Discard()
	if os.Getenv("DEPLOY_LOG") != "" {
		z, _ := zap.NewDevelopment()
		log = zapr.NewLogger(z)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- server.Run(ctx, o, cfg, webhook.Admission, log) }()
	stopped := false
	stop := func() {
		if stopped {
			return
		}
		stopped = true
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("serve: %v", err)
			}
		case <-time.After(30 * time.Second):
			t.Error("serve did not stop")
		}
	}
	t.Cleanup(stop)
	return stop
}

// mirrorSecret copies the Secret's keys into dir, as the kubelet refreshes a Secret volume.
func mirrorSecret(ctx context.Context, key client.ObjectKey, dir string) {
	last := map[string][]byte{}
	for ctx.Err() == nil {
		s := &corev1.Secret{}
		if err := k.Get(ctx, key, s); err == nil {
			for name, data := range s.Data {
				if len(data) == 0 || bytes.Equal(last[name], data) {
					continue
				}
				tmp := filepath.Join(dir, "."+name+".tmp")
				if os.WriteFile(tmp, data, 0o600) == nil && os.Rename(tmp, filepath.Join(dir, name)) == nil {
					last[name] = data
				}
			}
		}
		select {
		case <-ctx.Done():
		case <-time.After(200 * time.Millisecond):
		}
	}
}

func createPod(t *testing.T, ns string, labels map[string]string) *corev1.Pod {
	t.Helper()
	p := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{GenerateName: "p-", Namespace: ns, Labels: labels,
			Annotations: map[string]string{mutate.AnnotationLibc: "glibc"}},
		// Restricted-compliant: config/default labels the release namespace to enforce it.
		Spec: corev1.PodSpec{
			SecurityContext: &corev1.PodSecurityContext{RunAsNonRoot: ptr.To(true), RunAsUser: ptr.To[int64](65532),
				SeccompProfile: &corev1.SeccompProfile{Type: corev1.SeccompProfileTypeRuntimeDefault}},
			Containers: []corev1.Container{{Name: "app", Image: "registry.k8s.io/pause:3.10",
				SecurityContext: &corev1.SecurityContext{AllowPrivilegeEscalation: ptr.To(false),
					Capabilities: &corev1.Capabilities{Drop: []corev1.Capability{"ALL"}}}}},
		},
	}
	if err := k.Create(context.Background(), p); err != nil {
		t.Fatalf("creating a pod in %s: %v", ns, err)
	}
	return p
}

// isMutated: dns-tuner handled the pod in enforce mode and injected glibc's options.
func isMutated(p *corev1.Pod) bool {
	if p.Annotations[mutate.AnnotationStatus] != mutate.StatusInjected || p.Spec.DNSConfig == nil {
		return false
	}
	return slices.ContainsFunc(p.Spec.DNSConfig.Options, func(o corev1.PodDNSConfigOption) bool {
		return o.Name == "single-request-reopen"
	})
}

func mustMutate(t *testing.T) {
	t.Helper()
	if p := createPod(t, "apps", nil); !isMutated(p) {
		t.Fatalf("pod in an enforce namespace was not mutated: annotations %v", p.Annotations)
	}
}

// admissions sums dns_tuner_admissions_total: it moves whenever the webhook handles a pod.
func admissions(t *testing.T) float64 {
	t.Helper()
	mfs, err := ctrlmetrics.Registry.Gather()
	if err != nil {
		t.Fatal(err)
	}
	var n float64
	for _, mf := range mfs {
		if mf.GetName() == "dns_tuner_admissions_total" {
			for _, m := range mf.GetMetric() {
				n += m.GetCounter().GetValue()
			}
		}
	}
	return n
}

func getSecret(t *testing.T, key client.ObjectKey) *corev1.Secret {
	t.Helper()
	s := &corev1.Secret{}
	if err := k.Get(context.Background(), key, s); err != nil {
		t.Fatal(err)
	}
	return s
}

func waitSecret(t *testing.T, key client.ObjectKey, ok func(*corev1.Secret) bool) *corev1.Secret {
	t.Helper()
	var s *corev1.Secret
	eventually(t, 60*time.Second, "certificate Secret "+key.Name, func() bool {
		s = getSecret(t, key)
		return ok(s)
	})
	return s
}

func caBundle(t *testing.T) []byte {
	t.Helper()
	m := &admissionregistrationv1.MutatingWebhookConfiguration{}
	if err := k.Get(context.Background(), client.ObjectKey{Name: release}, m); err != nil {
		t.Fatal(err)
	}
	return m.Webhooks[0].ClientConfig.CABundle
}

func readyz(port int) bool {
	c := http.Client{Timeout: 2 * time.Second}
	resp, err := c.Get(fmt.Sprintf("http://127.0.0.1:%d/readyz", port))
	if err != nil {
		return false
	}
	_ = resp.Body.Close()
	return resp.StatusCode == http.StatusOK
}

func servedSerial(port int) *big.Int {
	conn, err := tls.DialWithDialer(&net.Dialer{Timeout: 2 * time.Second}, "tcp",
		net.JoinHostPort("127.0.0.1", strconv.Itoa(port)), &tls.Config{InsecureSkipVerify: true}) //nolint:gosec // reading the served certificate only
	if err != nil {
		return nil
	}
	defer conn.Close()
	return conn.ConnectionState().PeerCertificates[0].SerialNumber
}

func parseCert(t *testing.T, p []byte) *x509.Certificate {
	t.Helper()
	b, _ := pem.Decode(p)
	if b == nil {
		t.Fatal("no PEM certificate")
	}
	c, err := x509.ParseCertificate(b.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func serial(t *testing.T, p []byte) *big.Int    { return parseCert(t, p).SerialNumber }
func notAfter(t *testing.T, p []byte) time.Time { return parseCert(t, p).NotAfter }

// signServingCert issues a serving certificate for the webhook from the Secret's CA.
func signServingCert(t *testing.T, caPEM, caKeyPEM []byte, validFor time.Duration) (certPEM, keyPEM []byte) {
	t.Helper()
	ca := parseCert(t, caPEM)
	kb, _ := pem.Decode(caKeyPEM)
	if kb == nil {
		t.Fatal("no PEM CA key")
	}
	caKey, err := x509.ParsePKCS1PrivateKey(kb.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	sn, _ := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 62))
	name := "dns-tuner-webhook." + releaseNS + ".svc"
	tmpl := &x509.Certificate{
		SerialNumber: sn, Subject: pkix.Name{CommonName: name},
		DNSNames:  []string{name, "localhost"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(validFor),
		KeyUsage:    x509.KeyUsageDigitalSignature | x509.KeyUsageKeyEncipherment,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca, &key.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}),
		pem.EncodeToMemory(&pem.Block{Type: "RSA PRIVATE KEY", Bytes: x509.MarshalPKCS1PrivateKey(key)})
}

func freePort(t *testing.T) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

func eventually(t *testing.T, timeout time.Duration, what string, ok func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !ok() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", timeout, what)
		}
		time.Sleep(250 * time.Millisecond)
	}
}
