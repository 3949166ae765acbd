package webhook

import (
	"encoding/json"
	"reflect"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/dns-tuner/dns-tuner/webhook/libc"
	"github.com/dns-tuner/dns-tuner/webhook/mutate"
	"github.com/dns-tuner/dns-tuner/webhook/policy"
)

func ptr(s string) *string { return &s }

// The slim decode must give the decision and patch a full typed decode gives, for pods that
// exercise every field mutate reads.
func TestDecodePodMatchesFullDecode(t *testing.T) {
	full := []*corev1.Pod{
		{
			ObjectMeta: metav1.ObjectMeta{GenerateName: "web-", Namespace: "shop", Labels: map[string]string{"app": "web"},
				Annotations: map[string]string{"team": "a/b", mutate.AnnotationLibc: "app=glibc,sidecar=musl"}},
			Spec: corev1.PodSpec{
				InitContainers:     []corev1.Container{{Name: "init", Image: "busybox", Command: []string{"sh", "-c", "true"}}},
				Containers:         []corev1.Container{{Name: "app", Image: "nginx", Env: []corev1.EnvVar{{Name: "A", Value: "1"}}}, {Name: "sidecar", Image: "envoy", Args: []string{"-c", "x"}}},
				ImagePullSecrets:   []corev1.LocalObjectReference{{Name: "regcred"}},
				ServiceAccountName: "web",
				DNSConfig:          &corev1.PodDNSConfig{Options: []corev1.PodDNSConfigOption{{Name: "timeout", Value: ptr("5")}, {Name: "edns0"}}, Searches: []string{"corp"}},
			},
		},
		{Spec: corev1.PodSpec{HostNetwork: true, DNSPolicy: corev1.DNSClusterFirstWithHostNet, Containers: []corev1.Container{{Name: "a", Image: "x"}}}},
		{Spec: corev1.PodSpec{HostNetwork: true, Containers: []corev1.Container{{Name: "a", Image: "x"}}}},
		{Spec: corev1.PodSpec{DNSPolicy: corev1.DNSNone, DNSConfig: &corev1.PodDNSConfig{Nameservers: []string{"1.1.1.1"}}, Containers: []corev1.Container{{Name: "a", Image: "x"}}}},
		{ObjectMeta: metav1.ObjectMeta{Annotations: map[string]string{mutate.AnnotationStatus: "injected"}}, Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "a", Image: "x"}}}},
	}
	p := policy.Default()
	p.Ndots = "2"
	for i, want := range full {
		raw, err := json.Marshal(want)
		if err != nil {
			t.Fatal(err)
		}
		got, err := decodePod(raw)
		if err != nil {
			t.Fatal(err)
		}
		for _, m := range []policy.Mode{policy.Enforce, policy.Audit} {
			var cs []mutate.Container
			for _, c := range append(append([]corev1.Container{}, want.Spec.InitContainers...), want.Spec.Containers...) {
				cs = append(cs, mutate.Container{Name: c.Name, Verdict: libc.Verdict{Libc: libc.GLibc}})
			}
			md := mutate.ModeDecision{Mode: m, Reason: "test"}
			a, b := mutate.Decide(p, want, md, cs), mutate.Decide(p, got, md, cs)
			if !reflect.DeepEqual(a, b) {
				t.Errorf("pod %d, %s: decision differs:\nfull %+v\nslim %+v", i, m, a, b)
			}
			if pa, pb := mutate.Patch(want, a), mutate.Patch(got, b); !reflect.DeepEqual(pa, pb) {
				t.Errorf("pod %d, %s: patch differs:\nfull %v\nslim %v", i, m, pa, pb)
			}
		}
		for j, c := range want.Spec.Containers {
			g := got.Spec.Containers[j]
			if c.Name != g.Name || c.Image != g.Image || !reflect.DeepEqual(c.Command, g.Command) || !reflect.DeepEqual(c.Args, g.Args) {
				t.Errorf("pod %d container %d: %+v != %+v", i, j, g, c)
			}
		}
		if got.Spec.ServiceAccountName != want.Spec.ServiceAccountName || !reflect.DeepEqual(got.Spec.ImagePullSecrets, want.Spec.ImagePullSecrets) {
			t.Errorf("pod %d: credentials references lost", i)
		}
	}
}

func TestDecodePodRejects(t *testing.T) {
	for _, tt := range []struct{ raw, err string }{
		{"", "no content"},
		{"[]", "decoding pod"},
		{`{"spec": {"containers": "nope"}}`, "Containers"},
		{`{"metadata": {"annotations": {"a": 1}}}`, "Annotations"},
		{`{"spec": {"dnsConfig": {"options": [{"name": 5}]}}}`, "DNSConfig"},
		{`{"spec": {"containers": [{"name": "a"`, "decoding pod"},
	} {
		if _, err := decodePod([]byte(tt.raw)); err == nil || !strings.Contains(err.Error(), tt.err) {
			t.Errorf("decodePod(%q) = %v, want %q", tt.raw, err, tt.err)
		}
	}
}
