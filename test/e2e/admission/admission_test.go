package admission

import (
	"context"
	"encoding/json"
	"slices"
	"strings"
	"testing"

	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/dns-tuner/dns-tuner/internal/mutate"
)

func ensureNamespace(t *testing.T, name string, labels map[string]string) {
	t.Helper()
	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: name, Labels: labels}}
	_, err := clientset.CoreV1().Namespaces().Create(context.Background(), ns, metav1.CreateOptions{})
	if err != nil && !apierrors.IsAlreadyExists(err) {
		t.Fatalf("creating namespace %s: %v", name, err)
	}
}

func ptr(s string) *string { return &s }

type podOpt func(*corev1.Pod)

func newPod(name string, opts ...podOpt) *corev1.Pod {
	p := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: name},
		Spec:       corev1.PodSpec{Containers: []corev1.Container{{Name: "app", Image: "registry.example/app:1"}}},
	}
	for _, o := range opts {
		o(p)
	}
	return p
}

func libcAnnotation(v string) podOpt {
	return func(p *corev1.Pod) {
		if p.Annotations == nil {
			p.Annotations = map[string]string{}
		}
		p.Annotations[mutate.AnnotationLibc] = v
	}
}

func sidecar(p *corev1.Pod) {
	p.Spec.Containers = append(p.Spec.Containers, corev1.Container{Name: "sidecar", Image: "registry.example/proxy:1"})
}

func options(p *corev1.Pod) []string {
	if p.Spec.DNSConfig == nil {
		return nil
	}
	var out []string
	for _, o := range p.Spec.DNSConfig.Options {
		s := o.Name
		if o.Value != nil {
			s += ":" + *o.Value
		}
		out = append(out, s)
	}
	return out
}

// TestAdmission creates real pods and checks what the API server stored and what warnings
// reached the client.
func TestAdmission(t *testing.T) {
	ensureNamespace(t, "e2e-enforce", map[string]string{mutate.LabelMode: "enforce"})
	ensureNamespace(t, "e2e-audit", map[string]string{mutate.LabelMode: "audit"})
	ensureNamespace(t, "e2e-off", map[string]string{mutate.LabelMode: "off"})
	ensureNamespace(t, "e2e-plain", nil)
	ensureNamespace(t, "dns-tuner-system", map[string]string{mutate.LabelMode: "enforce"})

	tests := []struct {
		name      string
		namespace string
		pod       *corev1.Pod
		// wantOptions is the exact dnsConfig.options list stored; nil means no dnsConfig.
		wantOptions []string
		wantStatus  string // "" means dns-tuner wrote no annotations
		wantWarn    []string
		wantAnnots  map[string]string
	}{
		{
			name: "enforce glibc", namespace: "e2e-enforce", pod: newPod("glibc", libcAnnotation("glibc")),
			wantOptions: []string{"single-request-reopen", "timeout:2", "attempts:3"}, wantStatus: mutate.StatusInjected,
			wantAnnots: map[string]string{mutate.AnnotationDetectedLibc: "app=glibc", mutate.AnnotationInjected: "single-request-reopen,timeout:2,attempts:3"},
		},
		{
			name: "enforce musl", namespace: "e2e-enforce", pod: newPod("musl", libcAnnotation("musl")),
			wantOptions: []string{"timeout:2", "attempts:10"}, wantStatus: mutate.StatusInjected,
		},
		{
			name: "enforce static go needs nothing", namespace: "e2e-enforce", pod: newPod("gostatic", libcAnnotation("go")),
			wantStatus: mutate.StatusUnchanged,
		},
		{
			name: "enforce unknown libc warns", namespace: "e2e-enforce", pod: newPod("unknown"),
			wantStatus: mutate.StatusUnchanged, wantWarn: []string{`libc of container "app" unknown`},
		},
		{
			name: "audit changes no spec and warns", namespace: "e2e-audit", pod: newPod("audited", libcAnnotation("glibc")),
			wantStatus: mutate.StatusAudit, wantWarn: []string{"enforce mode would add dnsConfig options single-request-reopen timeout:2 attempts:3"},
			wantAnnots: map[string]string{mutate.AnnotationWouldInject: "single-request-reopen,timeout:2,attempts:3"},
		},
		{name: "namespace opted out", namespace: "e2e-off", pod: newPod("optout", libcAnnotation("glibc"))},
		{name: "unlabelled namespace follows cluster default off", namespace: "e2e-plain", pod: newPod("plain", libcAnnotation("glibc"))},
		{name: "kube-system excluded", namespace: "kube-system", pod: newPod("system", libcAnnotation("glibc"))},
		{name: "own namespace excluded even when labelled", namespace: "dns-tuner-system", pod: newPod("own", libcAnnotation("glibc"))},
		{
			name: "pod annotation lowers to audit", namespace: "e2e-enforce",
			pod:        newPod("podaudit", libcAnnotation("glibc"), func(p *corev1.Pod) { p.Annotations[mutate.AnnotationMode] = "audit" }),
			wantStatus: mutate.StatusAudit, wantWarn: []string{"would add"},
		},
		{
			name: "pod annotation opts out", namespace: "e2e-enforce",
			pod: newPod("podoff", libcAnnotation("glibc"), func(p *corev1.Pod) { p.Annotations[mutate.AnnotationMode] = "off" }),
		},
		{
			name: "user-set options preserved", namespace: "e2e-enforce",
			pod: newPod("userset", libcAnnotation("glibc"), func(p *corev1.Pod) {
				p.Spec.DNSConfig = &corev1.PodDNSConfig{Options: []corev1.PodDNSConfigOption{{Name: "timeout", Value: ptr("7")}, {Name: "ndots", Value: ptr("1")}}}
			}),
			wantOptions: []string{"timeout:7", "ndots:1", "single-request-reopen", "attempts:3"}, wantStatus: mutate.StatusInjected,
		},
		{
			name: "mixed glibc and musl warns about the musl container", namespace: "e2e-enforce",
			pod:         newPod("mixed", sidecar, libcAnnotation("app=glibc,sidecar=musl")),
			wantOptions: []string{"single-request-reopen", "timeout:2", "attempts:3"}, wantStatus: mutate.StatusInjected,
			wantWarn:   []string{`musl in container "sidecar" ignores option single-request-reopen`},
			wantAnnots: map[string]string{mutate.AnnotationIgnored: `{"sidecar":["single-request-reopen"]}`},
		},
		{
			name: "hostNetwork with ClusterFirst uses the node resolver", namespace: "e2e-enforce",
			pod:        newPod("hostnet", libcAnnotation("glibc"), func(p *corev1.Pod) { p.Spec.HostNetwork = true }),
			wantStatus: mutate.StatusSkipped,
		},
		{
			name: "hostNetwork with ClusterFirstWithHostNet", namespace: "e2e-enforce",
			pod: newPod("hostnetcf", libcAnnotation("glibc"), func(p *corev1.Pod) {
				p.Spec.HostNetwork, p.Spec.DNSPolicy = true, corev1.DNSClusterFirstWithHostNet
			}),
			wantOptions: []string{"single-request-reopen", "timeout:2", "attempts:3"}, wantStatus: mutate.StatusInjected,
		},
		{
			name: "dnsPolicy Default", namespace: "e2e-enforce",
			pod:        newPod("default", libcAnnotation("glibc"), func(p *corev1.Pod) { p.Spec.DNSPolicy = corev1.DNSDefault }),
			wantStatus: mutate.StatusSkipped,
		},
		{
			name: "dnsPolicy None keeps the pod's nameservers", namespace: "e2e-enforce",
			pod: newPod("none", libcAnnotation("musl"), func(p *corev1.Pod) {
				p.Spec.DNSPolicy = corev1.DNSNone
				p.Spec.DNSConfig = &corev1.PodDNSConfig{Nameservers: []string{"10.96.0.10"}, Searches: []string{"corp.example"}}
			}),
			wantOptions: []string{"timeout:2", "attempts:10"}, wantStatus: mutate.StatusInjected,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ctx := context.Background()
			warnings.take()
			before := tt.pod.DeepCopy()
			got, err := clientset.CoreV1().Pods(tt.namespace).Create(ctx, tt.pod, metav1.CreateOptions{})
			if err != nil {
				t.Fatalf("creating pod: %v", err)
			}
			warned := warnings.take()
			checkWarningLengths(t, warned)
			t.Cleanup(func() { _ = clientset.CoreV1().Pods(tt.namespace).Delete(ctx, got.Name, metav1.DeleteOptions{}) })

			if o := options(got); !slices.Equal(o, tt.wantOptions) {
				if tt.wantOptions == nil && slices.Equal(o, options(before)) {
					// untouched: the pod's own options, if any
				} else {
					t.Errorf("dnsConfig.options = %q, want %q", o, tt.wantOptions)
				}
			}
			if tt.wantOptions == nil && before.Spec.DNSConfig == nil && got.Spec.DNSConfig != nil {
				t.Errorf("dnsConfig added: %+v", got.Spec.DNSConfig)
			}
			if tt.pod.Spec.DNSConfig != nil && !slices.Equal(got.Spec.DNSConfig.Nameservers, before.Spec.DNSConfig.Nameservers) {
				t.Errorf("nameservers changed: %v", got.Spec.DNSConfig.Nameservers)
			}
			if s := got.Annotations[mutate.AnnotationStatus]; s != tt.wantStatus {
				t.Errorf("status annotation = %q, want %q (reason %q)", s, tt.wantStatus, got.Annotations[mutate.AnnotationReason])
			}
			if tt.wantStatus == "" {
				for k := range got.Annotations {
					if strings.HasPrefix(k, mutate.Prefix) && k != mutate.AnnotationLibc && k != mutate.AnnotationMode {
						t.Errorf("untouched pod has annotation %s", k)
					}
				}
			}
			for k, v := range tt.wantAnnots {
				if got.Annotations[k] != v {
					t.Errorf("annotation %s = %q, want %q", k, got.Annotations[k], v)
				}
			}
			for _, w := range tt.wantWarn {
				if !slices.ContainsFunc(warned, func(s string) bool { return strings.Contains(s, w) }) {
					t.Errorf("no warning containing %q; got %q", w, warned)
				}
			}
			if len(tt.wantWarn) == 0 && len(warned) > 0 {
				t.Errorf("unexpected warnings %q", warned)
			}
		})
	}
}

// TestWebhookConfiguration checks what the API server holds: fail open, bounded, reinvoked.
func TestWebhookConfiguration(t *testing.T) {
	cfgs, err := clientset.AdmissionregistrationV1().MutatingWebhookConfigurations().List(context.Background(), metav1.ListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	var found bool
	for _, c := range cfgs.Items {
		for _, w := range c.Webhooks {
			if w.Name != "pods.dns-tuner.io" {
				continue
			}
			found = true
			if w.FailurePolicy == nil || *w.FailurePolicy != admissionregistrationv1.Ignore {
				t.Errorf("failurePolicy = %v, want Ignore", w.FailurePolicy)
			}
			if w.TimeoutSeconds == nil || *w.TimeoutSeconds > 10 {
				t.Errorf("timeoutSeconds = %v, want set and at most 10", w.TimeoutSeconds)
			}
			if w.ReinvocationPolicy == nil || *w.ReinvocationPolicy != admissionregistrationv1.IfNeededReinvocationPolicy {
				t.Errorf("reinvocationPolicy = %v, want IfNeeded", w.ReinvocationPolicy)
			}
			if w.SideEffects == nil || *w.SideEffects != admissionregistrationv1.SideEffectClassNone {
				t.Errorf("sideEffects = %v, want None", w.SideEffects)
			}
		}
	}
	if !found {
		t.Fatal("webhook pods.dns-tuner.io not installed")
	}
}

// TestPodKeepsItsIdentity checks that a mutated pod still carries everything it was sent
// with: the add-only patch loses no field.
func TestPodKeepsItsIdentity(t *testing.T) {
	ensureNamespace(t, "e2e-enforce", map[string]string{mutate.LabelMode: "enforce"})
	p := newPod("identity", libcAnnotation("glibc"), func(p *corev1.Pod) {
		p.Labels = map[string]string{"app": "web"}
		p.Annotations["team"] = "payments/checkout"
		p.Spec.Containers[0].Env = []corev1.EnvVar{{Name: "A", Value: "1"}}
		p.Spec.DNSConfig = &corev1.PodDNSConfig{Searches: []string{"corp.example"}}
	})
	got, err := clientset.CoreV1().Pods("e2e-enforce").Create(context.Background(), p, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if got.Labels["app"] != "web" || got.Annotations["team"] != "payments/checkout" || got.Spec.Containers[0].Env[0].Value != "1" ||
		!slices.Equal(got.Spec.DNSConfig.Searches, []string{"corp.example"}) {
		b, _ := json.MarshalIndent(got, "", " ")
		t.Fatalf("pod lost fields:\n%s", b)
	}
}
