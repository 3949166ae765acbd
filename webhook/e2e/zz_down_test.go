package e2e

import (
	"context"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/dns-tuner/dns-tuner/internal/mutate"
)

// TestZZWebhookDown must stay the last test in this package (go test runs files in name order,
// hence zz_): it stops the webhook and proves pods are still created (failurePolicy Ignore).
func TestZZWebhookDown(t *testing.T) {
	stopServer()
	select {
	case err := <-serverDone:
		if err != nil {
			t.Logf("server stopped: %v", err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("server did not stop")
	}
	ensureNamespace(t, "e2e-enforce", map[string]string{mutate.LabelMode: "enforce"})
	start := time.Now()
	got, err := clientset.CoreV1().Pods("e2e-enforce").Create(context.Background(), newPod("down", libcAnnotation("glibc")), metav1.CreateOptions{})
	if err != nil {
		t.Fatalf("pod creation failed with the webhook down: %v", err)
	}
	if got.Spec.DNSConfig != nil || got.Annotations[mutate.AnnotationStatus] != "" {
		t.Errorf("pod mutated with the webhook down?")
	}
	t.Logf("pod created %s after the webhook stopped", time.Since(start).Round(time.Millisecond))
}
