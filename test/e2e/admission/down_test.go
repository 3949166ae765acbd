package admission

import (
	"context"
	"net"
	"testing"
	"time"

	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/dns-tuner/dns-tuner/internal/mutate"
)

// TestWebhookDown proves failurePolicy Ignore: with dns-tuner's server stopped, pods are
// still created, unchanged. It stops a webhook of its own — a copy of config/webhook's
// configuration served by a second `serve` — so it runs in any order, in parallel with the
// other tests, which keep the suite's webhook.
func TestWebhookDown(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	cs, _ := newClient(t)
	const ns = "e2e-down"
	ensureNamespace(t, ns, map[string]string{mutate.LabelMode: "enforce"})

	// Only this test's pods reach this configuration, and they do not reach the suite's: its
	// objectSelector skips pods labelled as dns-tuner's own.
	own := map[string]string{"app.kubernetes.io/name": "dns-tuner", "e2e.dns-tuner.io/case": "webhook-down"}
	wh, port := copyWebhook(ctx, t, cs, "down.pods.dns-tuner.io", ns)
	wh.ObjectSelector = &metav1.LabelSelector{MatchLabels: own}
	mwc := &admissionregistrationv1.MutatingWebhookConfiguration{
		ObjectMeta: metav1.ObjectMeta{Name: "dns-tuner-e2e-down"},
		Webhooks:   []admissionregistrationv1.MutatingWebhook{*wh},
	}
	if _, err := cs.AdmissionregistrationV1().MutatingWebhookConfigurations().Create(ctx, mwc, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = cs.AdmissionregistrationV1().MutatingWebhookConfigurations().Delete(ctx, mwc.Name, metav1.DeleteOptions{})
	})

	stop, err := startWebhook(port)
	if err != nil {
		t.Fatal(err)
	}
	stopped := false
	t.Cleanup(func() {
		if !stopped {
			_ = stop()
		}
	})
	create := func() *corev1.Pod {
		t.Helper()
		p := newPod("", libcAnnotation("glibc"))
		p.GenerateName, p.Labels = "down-", own
		got, err := cs.CoreV1().Pods(ns).Create(ctx, p, metav1.CreateOptions{})
		if err != nil {
			t.Fatalf("creating a pod: %v", err)
		}
		return got
	}
	// Control: while it runs, this webhook mutates these pods (the API server may take a
	// moment to see a new configuration).
	deadline := time.Now().Add(30 * time.Second)
	for create().Annotations[mutate.AnnotationStatus] != mutate.StatusInjected {
		if time.Now().After(deadline) {
			t.Fatal("this test's webhook never mutated its pods")
		}
		time.Sleep(200 * time.Millisecond)
	}

	stopped = true
	if err := stop(); err != nil {
		t.Logf("server stopped: %v", err)
	}
	start := time.Now()
	got := create()
	if got.Spec.DNSConfig != nil || got.Annotations[mutate.AnnotationStatus] != "" {
		t.Errorf("pod mutated with the webhook down? dnsConfig %+v, annotations %v", got.Spec.DNSConfig, got.Annotations)
	}
	t.Logf("pod created %s after the webhook stopped", time.Since(start).Round(time.Millisecond))
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
