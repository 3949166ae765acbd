package mutate_test

import (
	"testing"

	corev1 "k8s.io/api/core/v1"

	"github.com/dns-tuner/dns-tuner/internal/libc"
	"github.com/dns-tuner/dns-tuner/internal/mutate"
	"github.com/dns-tuner/dns-tuner/internal/policy/policytest"
)

// BenchmarkDecide measures the pure part of one admission: mode, plan and JSON patch for a
// typical two-container pod in an enforcing namespace, with verdicts already known. It is
// the share of the handler that dns-tuner's own logic costs (decoding and HTTP are
// measured by BenchmarkAdmission in package webhook).
//
//	go test -run '^$' -bench BenchmarkDecide -benchmem ./internal/mutate/
func BenchmarkDecide(b *testing.B) {
	p := policytest.Policy()
	nsLabels := map[string]string{"kubernetes.io/metadata.name": "shop", mutate.LabelMode: "enforce"}
	glibc := libc.Verdict{Libc: libc.GLibc, Source: libc.SourceCache, Version: "2.36"}
	musl := libc.Verdict{Libc: libc.Musl, Source: libc.SourceCache}
	for _, bc := range []struct {
		name    string
		sidecar libc.Verdict
	}{
		{"glibc", glibc},     // one profile: no merge, nothing ignored
		{"glibc+musl", musl}, // merged profiles, notes, and an ignored-option warning
	} {
		b.Run(bc.name, func(b *testing.B) {
			pod := decidePod()
			containers := []mutate.Container{{Name: "checkout", Verdict: glibc}, {Name: "log-shipper", Verdict: bc.sidecar}}
			b.ReportAllocs()
			for b.Loop() {
				md := mutate.ResolveMode(p, "shop", nsLabels, pod)
				plan := mutate.Decide(p, pod, md, containers)
				if ops := mutate.Patch(pod, plan); len(ops) == 0 {
					b.Fatal("typical pod got no patch")
				}
			}
		})
	}
}

// decidePod has what Decide and Patch read of a Deployment's pod; the rest of the spec does
// not affect them.
func decidePod() *mutate.Pod {
	return &mutate.Pod{
		Metadata: mutate.PodMeta{
			GenerateName: "checkout-7d9f8c6b5d-", Namespace: "shop",
			Annotations: map[string]string{"prometheus.io/scrape": "true", "prometheus.io/port": "9090"},
		},
		Spec: mutate.PodSpec{
			Containers: []mutate.PodContainer{
				{Name: "checkout", Image: "registry.example.com/shop/checkout:1.42.0"},
				{Name: "log-shipper", Image: "registry.example.com/infra/log-shipper:3.1.2"},
			},
			DNSPolicy:          corev1.DNSClusterFirst,
			ServiceAccountName: "checkout",
		},
	}
}
