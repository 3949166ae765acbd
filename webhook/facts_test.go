package webhook

import (
	"context"
	"strings"
	"testing"

	dto "github.com/prometheus/client_model/go"
	admissionv1 "k8s.io/api/admission/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/dns-tuner/dns-tuner/internal/cluster"
	"github.com/dns-tuner/dns-tuner/internal/libc"
	"github.com/dns-tuner/dns-tuner/internal/metrics"
)

// The handler decides with the cluster facts: a pod whose nodeSelector keeps it on kernels
// with both clash fixes gets fast retry only, one that may land on a 5.4 node gets the race
// fix, each with the facts in its annotation, and pods are counted by risk.
func TestHandleWithFacts(t *testing.T) {
	facts := &cluster.Snapshot{Synced: true, Proxy: cluster.ProxyIPTables, DNSEndpoints: 1, Nodes: []cluster.Node{
		{Name: "old", Labels: map[string]string{"pool": "old"}, Kernel: cluster.ParseKernel("4.14.35")},
		{Name: "new", Labels: map[string]string{"pool": "new"}, Kernel: cluster.ParseKernel("6.1.0-25-cloud-amd64")},
	}}
	m := newMutator(t, byImage(map[string]libc.Libc{"glibc-app": libc.GLibc}), nil, nil)
	m.Facts = facts
	tests := []struct {
		name     string
		selector map[string]string
		inject   string
		raceFix  string
		risk     string
	}{
		{"confined to new kernels", map[string]string{"pool": "new"}, `[{"name":"timeout","value":"2"},{"name":"attempts","value":"3"}]`,
			"not needed: all 1 nodes the pod can land on run 6.1.0-25-cloud-amd64", "not_exposed"},
		{"anywhere", nil, `[{"name":"single-request-reopen"},{"name":"timeout","value":"2"},{"name":"attempts","value":"3"}]`,
			"needed: 1 of 2 nodes run 4.14.35 with kube-proxy iptables and 1 DNS endpoint: exposed", "protected"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			before := riskCount(t, tt.risk)
			pod := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "web", Namespace: "shop"},
				Spec: corev1.PodSpec{NodeSelector: tt.selector, Containers: []corev1.Container{{Name: "app", Image: "glibc-app"}}}}
			resp := m.Handle(context.Background(), request(t, "shop", admissionv1.Create, pod))
			if !resp.Allowed {
				t.Fatalf("denied: %+v", resp.Result)
			}
			patch := string(resp.Patch)
			if !strings.Contains(patch, tt.inject) {
				t.Errorf("patch %s lacks options %s", patch, tt.inject)
			}
			if !strings.Contains(patch, tt.raceFix) || !strings.Contains(resp.Result.Message, "race fix "+tt.raceFix) {
				t.Errorf("race-fix decision %q not in the annotation or reason:\n%s\n%s", tt.raceFix, patch, resp.Result.Message)
			}
			if got := riskCount(t, tt.risk) - before; got != 1 {
				t.Errorf("risk %s counted %v times, want 1", tt.risk, got)
			}
		})
	}
}

func riskCount(t *testing.T, risk string) float64 {
	t.Helper()
	var m dto.Metric
	if err := metrics.RaceRisk.WithLabelValues(risk).Write(&m); err != nil {
		t.Fatal(err)
	}
	return m.GetCounter().GetValue()
}
