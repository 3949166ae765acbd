package e2e

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/validation"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/dns-tuner/dns-tuner/internal/mutate"
)

// checkWarningLengths holds the warnings that reached the client to admission/v1's 120.
func checkWarningLengths(t *testing.T, warned []string) {
	t.Helper()
	for _, w := range warned {
		if len(w) > mutate.MaxWarning {
			t.Errorf("warning of %d bytes: %q", len(w), w)
		}
	}
}

// Findings 1, 2 and 8 through the API server: what it would accept without dns-tuner, it
// accepts with it, whatever the mode; and a pod's own {name: "timeout:1"} is its timeout.
func TestHardening(t *testing.T) {
	ensureNamespace(t, "e2e-enforce", map[string]string{mutate.LabelMode: "enforce"})
	ensureNamespace(t, "e2e-audit", map[string]string{mutate.LabelMode: "audit"})
	ensureNamespace(t, "e2e-plain", nil)
	dryRun := metav1.CreateOptions{DryRun: []string{metav1.DryRunAll}}
	ctx := context.Background()

	// Finding 1: the key is invalid, so the API server's validation rejects the pod; the
	// webhook must not be the one that does (it used to answer Errored(400), in every mode:
	// e2e-plain is off by the cluster default, and the webhook is still called for it).
	for _, ns := range []string{"e2e-plain", "e2e-enforce"} {
		t.Run("annotation key ending in a backslash, "+ns, func(t *testing.T) {
			pod := newPod("backslash", libcAnnotation("glibc"), func(p *corev1.Pod) { p.Annotations[`example.com/key\`] = "v" })
			_, err := clientset.CoreV1().Pods(ns).Create(ctx, pod, dryRun)
			if err == nil {
				t.Fatal("the API server accepted an invalid annotation key")
			}
			if strings.Contains(err.Error(), "admission webhook") || !strings.Contains(err.Error(), "metadata.annotations") {
				t.Errorf("want the API server's validation error, got %v", err)
			}
		})
	}

	// Finding 2: 262,000 bytes of the user's annotations (limit 262,144) and a 6,000-container
	// pod: accepted without dns-tuner, so accepted with it.
	bigAnnotations := func(p *corev1.Pod) {
		for i := 0; i < 5; i++ {
			k := fmt.Sprintf("example.com/blob-%d", i)
			p.Annotations[k] = strings.Repeat("x", 262000/5-len(k))
		}
	}
	manyContainers := func(p *corev1.Pod) {
		p.Spec.Containers = nil
		for i := range 6000 {
			p.Spec.Containers = append(p.Spec.Containers, corev1.Container{Name: fmt.Sprintf("worker-%05d", i), Image: "registry.example/app:1"})
		}
		p.Annotations[mutate.AnnotationLibc] = "worker-00000=glibc,*=musl"
	}
	for _, tt := range []struct {
		name string
		ns   string
		opt  podOpt
	}{
		{"262,000 bytes of annotations, enforce", "e2e-enforce", bigAnnotations},
		{"262,000 bytes of annotations, audit", "e2e-audit", bigAnnotations},
		{"6,000 containers, enforce", "e2e-enforce", manyContainers},
		{"6,000 containers, audit", "e2e-audit", manyContainers},
	} {
		t.Run(tt.name, func(t *testing.T) {
			warnings.take()
			got, err := clientset.CoreV1().Pods(tt.ns).Create(ctx, newPod("big", libcAnnotation("glibc"), tt.opt), dryRun)
			if err != nil {
				t.Fatalf("pod rejected: %.300v", err)
			}
			checkWarningLengths(t, warnings.take())
			if err := validation.ValidateAnnotationsSize(got.Annotations); err != nil {
				t.Error(err)
			}
			if got.Annotations[mutate.AnnotationStatus] == "" {
				t.Errorf("no status annotation; dns-tuner's annotations: %v", own(got.Annotations))
			}
		})
	}

	// Finding 8: the API accepts {name: "timeout:1"}; kubelet writes it as timeout:1, so
	// dns-tuner must not add timeout:2 beside it.
	t.Run("option value in its name", func(t *testing.T) {
		warnings.take()
		pod := newPod("optname", libcAnnotation("musl"), func(p *corev1.Pod) {
			p.Spec.DNSConfig = &corev1.PodDNSConfig{Options: []corev1.PodDNSConfigOption{{Name: "timeout:1"}}}
		})
		got, err := clientset.CoreV1().Pods("e2e-enforce").Create(ctx, pod, dryRun)
		if err != nil {
			t.Fatal(err)
		}
		if o := options(got); !slices.Equal(o, []string{"timeout:1", "attempts:10"}) {
			t.Errorf("options = %q, want [timeout:1 attempts:10]", o)
		}
		checkWarningLengths(t, warnings.take())
	})
}

func own(annotations map[string]string) map[string]int {
	out := map[string]int{}
	for k, v := range annotations {
		if strings.HasPrefix(k, mutate.Prefix) {
			out[k] = len(v)
		}
	}
	return out
}
