package admission

import (
	"context"
	"fmt"
	"maps"
	"strings"
	"testing"
	"unicode/utf8"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/dns-tuner/dns-tuner/internal/mutate"
)

// Regression tests for the findings of issue 8 that the API server decides, each written
// against what a user sees through kubectl.

// Finding 1: trouble of dns-tuner's own (here, reading the pod) never denies a pod. An
// annotation key ending in a backslash is one the API server itself rejects, in validation,
// after mutating admission; a hand-written decoder failed on it first, so the user got
// "admission webhook denied" in every namespace the webhook sees, even where dns-tuner is
// off. The answer must be the API server's own: 422 Invalid, naming the annotation. (Every
// other decoding corner tried — escapes, invalid UTF-8, surrogates, 200 kB values — is
// accepted with and without dns-tuner.)
func TestFinding1DecodeTroubleNeverDenies(t *testing.T) {
	ensureNamespace(t, "e2e-f1-default", nil) // the cluster default: off
	ensureNamespace(t, "e2e-f1-enforce", map[string]string{mutate.LabelMode: "enforce"})
	for _, c := range []struct {
		name, ns string
		podMode  string
	}{
		{"cluster default off", "e2e-f1-default", ""},
		{"pod annotation off in enforce", "e2e-f1-enforce", "off"},
		{"enforce", "e2e-f1-enforce", ""},
	} {
		t.Run(c.name, func(t *testing.T) {
			p := newPod("", libcAnnotation("glibc"))
			p.GenerateName = "f1-"
			p.Annotations[`example.com/trailing\`] = "v"
			if c.podMode != "" {
				p.Annotations[mutate.AnnotationMode] = c.podMode
			}
			_, err := clientset.CoreV1().Pods(c.ns).Create(context.Background(), p, metav1.CreateOptions{DryRun: []string{metav1.DryRunAll}})
			if err == nil {
				t.Fatal("the API server accepted an invalid annotation key?")
			}
			if strings.Contains(err.Error(), "admission webhook") || !apierrors.IsInvalid(err) || !strings.Contains(err.Error(), "metadata.annotations") {
				t.Errorf("want the API server's own validation error (Invalid, metadata.annotations), got %v", err)
			}
		})
	}
	// The corners the API server accepts are read and tuned like any pod.
	for name, v := range map[string]string{
		"escapes":            "\u2028\u2029<>&\"\\\x00\x01\t\n",
		"invalid UTF-8":      "\xff\xfe\xc0",
		"astral plane":       "\U0001F600\uFFFD",
		"trailing backslash": `v\`,
		"200 kB":             strings.Repeat(`\"`, 100000),
	} {
		t.Run("annotation value with "+name, func(t *testing.T) {
			p := newPod("", libcAnnotation("glibc"))
			p.GenerateName = "f1-"
			p.Annotations["example.com/value"] = v
			p.Spec.Containers[0].Command = []string{"sh", "-c", v}
			got, err := clientset.CoreV1().Pods("e2e-f1-enforce").Create(context.Background(), p, metav1.CreateOptions{DryRun: []string{metav1.DryRunAll}})
			if err != nil {
				t.Fatal(err)
			}
			if s := got.Annotations[mutate.AnnotationStatus]; s != mutate.StatusInjected {
				t.Errorf("status %q, want %q", s, mutate.StatusInjected)
			}
		})
	}
}

// Finding 2: dns-tuner keeps a valid pod valid. Annotations may total 262,144 bytes; a pod at
// 262,000 is accepted without dns-tuner, so it must be with it, with the user's annotations
// intact (dns-tuner shortens or drops its own). The same for a pod so large (6,000
// containers) that naming each container in an annotation would not fit.
func TestFinding2PodStaysWithinAnnotationLimit(t *testing.T) {
	ensureNamespace(t, "e2e-f2-audit", map[string]string{mutate.LabelMode: "audit"})
	ensureNamespace(t, "e2e-f2-enforce", map[string]string{mutate.LabelMode: "enforce"})
	const total = 262000
	for _, ns := range []string{"e2e-f2-audit", "e2e-f2-enforce"} {
		t.Run("annotations of 262000 bytes in "+ns, func(t *testing.T) {
			p := newPod("", libcAnnotation("glibc"))
			p.GenerateName = "f2-"
			const key = "example.com/payload"
			size := len(key)
			for k, v := range p.Annotations {
				size += len(k) + len(v)
			}
			p.Annotations[key] = strings.Repeat("x", total-size)
			want := maps.Clone(p.Annotations)
			got, err := clientset.CoreV1().Pods(ns).Create(context.Background(), p, metav1.CreateOptions{})
			if err != nil {
				t.Fatalf("a pod the API server accepts was made invalid: %v", err)
			}
			t.Cleanup(func() { _ = clientset.CoreV1().Pods(ns).Delete(context.Background(), got.Name, metav1.DeleteOptions{}) })
			for k, v := range want {
				if got.Annotations[k] != v {
					t.Errorf("user annotation %s changed or dropped (%d bytes, want %d)", k, len(got.Annotations[k]), len(v))
				}
			}
			if ns == "e2e-f2-enforce" {
				if o := options(got); !strings.Contains(strings.Join(o, " "), "single-request-reopen") {
					t.Errorf("enforce: glibc options not injected (options %q, annotations %v)", o, dnsTunerAnnotations(got))
				}
			}
		})
	}
	t.Run("6000 containers", func(t *testing.T) {
		p := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{GenerateName: "f2-many-"}}
		for i := range 6000 {
			p.Spec.Containers = append(p.Spec.Containers, corev1.Container{Name: fmt.Sprintf("container-%04d", i), Image: "registry.example/app:1"})
		}
		if _, err := clientset.CoreV1().Pods("e2e-f2-enforce").Create(context.Background(), p, metav1.CreateOptions{DryRun: []string{metav1.DryRunAll}}); err != nil {
			t.Fatalf("a pod the API server accepts was made invalid: %.500v", err)
		}
	})
}

// Finding 7: admission/v1 asks for warnings of at most 120 characters (and may cut them past
// 256); kubectl prints each on its own line. The long advice belongs in annotations and
// explain.
func TestFinding7WarningsAreShort(t *testing.T) {
	ensureNamespace(t, "e2e-f7-audit", map[string]string{mutate.LabelMode: "audit"})
	ensureNamespace(t, "e2e-f7-enforce", map[string]string{mutate.LabelMode: "enforce"})
	cs, rec := newClient(t)
	pods := map[string]*corev1.Pod{
		"glibc":   newPod("", libcAnnotation("glibc")),
		"musl":    newPod("", libcAnnotation("musl")),
		"mixed":   newPod("", sidecar, libcAnnotation("app=glibc,sidecar=musl")),
		"unknown": newPod(""),
	}
	var seen int
	for _, ns := range []string{"e2e-f7-audit", "e2e-f7-enforce"} {
		for name, p := range pods {
			t.Run(name+" in "+ns, func(t *testing.T) {
				p := p.DeepCopy()
				p.GenerateName = "f7-" + name + "-"
				rec.take()
				if _, err := cs.CoreV1().Pods(ns).Create(context.Background(), p, metav1.CreateOptions{DryRun: []string{metav1.DryRunAll}}); err != nil {
					t.Fatal(err)
				}
				for _, w := range rec.take() {
					seen++
					if n := utf8.RuneCountInString(w); n > 120 {
						t.Errorf("warning of %d characters (max 120): %q", n, w)
					}
				}
			})
		}
	}
	if seen == 0 {
		t.Error("no warnings at all: the check above proved nothing")
	}
}

// Finding 8: the API accepts any non-empty option name, and kubelet splits "timeout:1" into
// timeout=1. dns-tuner must see that the pod already sets timeout and not add timeout:2 next
// to it (kubelet's map order would then pick either on each start).
func TestFinding8OptionWrittenWithItsValue(t *testing.T) {
	ensureNamespace(t, "e2e-f8-enforce", map[string]string{mutate.LabelMode: "enforce"})
	p := newPod("", libcAnnotation("glibc"), func(p *corev1.Pod) {
		p.Spec.DNSConfig = &corev1.PodDNSConfig{Options: []corev1.PodDNSConfigOption{{Name: "timeout:1"}}}
	})
	p.GenerateName = "f8-"
	got, err := clientset.CoreV1().Pods("e2e-f8-enforce").Create(context.Background(), p, metav1.CreateOptions{DryRun: []string{metav1.DryRunAll}})
	if err != nil {
		t.Fatal(err)
	}
	var timeouts []string
	for _, o := range options(got) {
		if name, _, _ := strings.Cut(o, ":"); name == "timeout" {
			timeouts = append(timeouts, o)
		}
	}
	if len(timeouts) != 1 || timeouts[0] != "timeout:1" {
		t.Errorf("timeout options %q, want only the pod's own timeout:1 (all options %q)", timeouts, options(got))
	}
}

// dnsTunerAnnotations is what dns-tuner wrote, for failure messages.
func dnsTunerAnnotations(p *corev1.Pod) map[string]string {
	out := map[string]string{}
	for k, v := range p.Annotations {
		if strings.HasPrefix(k, mutate.Prefix) {
			out[k] = v
		}
	}
	return out
}

// checkWarningLengths holds every warning a client received to admission/v1's 120 characters.
func checkWarningLengths(t *testing.T, warned []string) {
	t.Helper()
	for _, w := range warned {
		if len(w) > mutate.MaxWarning {
			t.Errorf("warning of %d bytes: %q", len(w), w)
		}
	}
}
