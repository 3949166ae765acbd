package webhook

import (
	"encoding/json"
	"reflect"
	"testing"

	corev1 "k8s.io/api/core/v1"

	"github.com/dns-tuner/dns-tuner/internal/libc"
	"github.com/dns-tuner/dns-tuner/internal/mutate"
	"github.com/dns-tuner/dns-tuner/internal/policy"
)

func basePod() *corev1.Pod {
	p := &corev1.Pod{}
	p.Namespace, p.GenerateName = "shop", "web-"
	p.Annotations = map[string]string{"team": "a"}
	p.Spec.Containers = []corev1.Container{{Name: "app", Image: "a"}, {Name: "sidecar", Image: "b"}}
	return p
}

func baseContainers() []mutate.Container {
	return []mutate.Container{
		{Name: "app", Verdict: libc.Verdict{Libc: libc.GLibc}},
		{Name: "sidecar", Verdict: libc.Verdict{Libc: libc.Musl}},
	}
}

// Every input Decide or Patch reads must change the cache key, and a hit must return exactly
// what an uncached decision returns.
func TestDecisionCacheMatchesDecide(t *testing.T) {
	enforce := mutate.ModeDecision{Mode: policy.Enforce, Reason: "namespace label"}
	variants := []struct {
		name string
		md   mutate.ModeDecision
		pod  func(*corev1.Pod)
		cs   func([]mutate.Container)
	}{
		{name: "base"},
		{name: "audit", md: mutate.ModeDecision{Mode: policy.Audit, Reason: "namespace label"}},
		{name: "other reason", md: mutate.ModeDecision{Mode: policy.Enforce, Reason: "cluster default"}},
		{name: "mode warning", md: mutate.ModeDecision{Mode: policy.Enforce, Reason: "namespace label", Warnings: []string{"w"}}},
		{name: "namespace", pod: func(p *corev1.Pod) { p.Namespace = "other" }},
		{name: "hostNetwork", pod: func(p *corev1.Pod) { p.Spec.HostNetwork = true }},
		{name: "dnsPolicy", pod: func(p *corev1.Pod) { p.Spec.DNSPolicy = corev1.DNSDefault }},
		{name: "user option", pod: func(p *corev1.Pod) {
			p.Spec.DNSConfig = &corev1.PodDNSConfig{Options: []corev1.PodDNSConfigOption{{Name: "timeout", Value: ptr("5")}}}
		}},
		{name: "user option value", pod: func(p *corev1.Pod) {
			p.Spec.DNSConfig = &corev1.PodDNSConfig{Options: []corev1.PodDNSConfigOption{{Name: "timeout", Value: ptr("6")}}}
		}},
		{name: "empty dnsConfig", pod: func(p *corev1.Pod) { p.Spec.DNSConfig = &corev1.PodDNSConfig{} }},
		{name: "no annotations", pod: func(p *corev1.Pod) { p.Annotations = nil }},
		{name: "prior status", pod: func(p *corev1.Pod) { p.Annotations[mutate.AnnotationStatus] = "injected" }},
		{name: "prior injected", pod: func(p *corev1.Pod) {
			p.Annotations[mutate.AnnotationStatus] = "injected"
			p.Annotations[mutate.AnnotationInjected] = "timeout:2"
		}},
		{name: "libc", cs: func(c []mutate.Container) { c[1].Verdict.Libc = libc.GLibc }},
		{name: "version", cs: func(c []mutate.Container) { c[0].Verdict.Version = "2.31" }},
		{name: "reason", cs: func(c []mutate.Container) { c[1].Verdict = libc.Verdict{Libc: libc.Unknown, Reason: "budget"} }},
		{name: "container name", cs: func(c []mutate.Container) { c[1].Name = "proxy" }},
	}
	p := policy.Default()
	cache := newDecisionCache(64)
	keys := map[string]string{}
	for round := 0; round < 2; round++ { // round 1 is served from the cache
		for _, v := range variants {
			pod, cs, md := basePod(), baseContainers(), enforce
			if v.pod != nil {
				v.pod(pod)
			}
			if v.cs != nil {
				v.cs(cs)
			}
			if v.md.Mode != "" {
				md = v.md
			}
			key := decisionKey(md, pod, cs)
			if other, ok := keys[key]; ok && other != v.name {
				t.Fatalf("%s and %s share a cache key", v.name, other)
			}
			keys[key] = v.name

			got, err := cache.decide(p, pod, md, cs)
			if err != nil {
				t.Fatal(err)
			}
			want := mutate.Decide(p, pod, md, cs)
			if !reflect.DeepEqual(got.plan, want) {
				t.Errorf("%s (round %d): plan differs from Decide", v.name, round)
			}
			wantPatch, _ := json.Marshal(mutate.Patch(pod, want))
			if len(mutate.Patch(pod, want)) == 0 {
				wantPatch = nil
			}
			if string(got.patch) != string(wantPatch) {
				t.Errorf("%s (round %d): patch %s, want %s", v.name, round, got.patch, wantPatch)
			}
		}
	}
	// A new policy must not be answered from the old one's decisions.
	p2 := policy.Default()
	p2.Profiles[libc.GLibc] = policy.Profile{}
	pod, cs := basePod(), baseContainers()
	got, _ := cache.decide(p2, pod, enforce, cs)
	if want := mutate.Decide(p2, pod, enforce, cs); !reflect.DeepEqual(got.plan, want) {
		t.Error("decision from the previous policy served after a policy change")
	}
}

func TestDecisionCacheBounded(t *testing.T) {
	c := newDecisionCache(3)
	p := policy.Default()
	for i := 0; i < 10; i++ {
		pod := basePod()
		pod.Namespace = string(rune('a' + i))
		if _, err := c.decide(p, pod, mutate.ModeDecision{Mode: policy.Enforce}, baseContainers()); err != nil {
			t.Fatal(err)
		}
	}
	if c.order.Len() != 3 || len(c.values) != 3 || len(c.entries) != 3 {
		t.Fatalf("cache holds %d/%d/%d entries, want 3", c.order.Len(), len(c.values), len(c.entries))
	}
}
