package audit

import (
	"context"
	"reflect"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/dns-tuner/dns-tuner/internal/cluster"
	"github.com/dns-tuner/dns-tuner/internal/libc"
	"github.com/dns-tuner/dns-tuner/internal/mutate"
	"github.com/dns-tuner/dns-tuner/internal/policy"
	"github.com/dns-tuner/dns-tuner/internal/resolvconf"
)

func ctl(kind, name string) []metav1.OwnerReference {
	yes := true
	return []metav1.OwnerReference{{Kind: kind, Name: name, Controller: &yes}}
}

type podOpt func(*corev1.Pod)

func pod(ns, name string, opts ...podOpt) corev1.Pod {
	p := corev1.Pod{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name},
		Spec:   corev1.PodSpec{Containers: []corev1.Container{{Name: "app", Image: "reg.example/app:1"}}},
		Status: corev1.PodStatus{Phase: corev1.PodRunning}}
	for _, o := range opts {
		o(&p)
	}
	return p
}

func owned(kind, name string) podOpt {
	return func(p *corev1.Pod) { p.OwnerReferences = ctl(kind, name) }
}
func phase(ph corev1.PodPhase) podOpt { return func(p *corev1.Pod) { p.Status.Phase = ph } }
func libcOf(v string) podOpt {
	return func(p *corev1.Pod) { p.Annotations = map[string]string{mutate.AnnotationLibc: v} }
}
func images(imgs ...string) podOpt {
	return func(p *corev1.Pod) {
		p.Spec.Containers = nil
		for i, img := range imgs {
			p.Spec.Containers = append(p.Spec.Containers, corev1.Container{Name: []string{"app", "sidecar"}[i], Image: img})
		}
	}
}

// TestGroupPods: replicas are one line per workload an operator knows (the Deployment, not
// its ReplicaSets; the CronJob, not its Jobs); finished and deleting pods are not running.
func TestGroupPods(t *testing.T) {
	now := metav1.Now()
	pods := []corev1.Pod{
		pod("shop", "web-6d4-b", owned("ReplicaSet", "web-6d4")),
		pod("shop", "web-6d4-a", owned("ReplicaSet", "web-6d4")),
		pod("shop", "web-7f1-a", owned("ReplicaSet", "web-7f1")), // a rollout: the other ReplicaSet
		pod("shop", "orphan-rs-a", owned("ReplicaSet", "orphan-rs")),
		pod("shop", "db-0", owned("StatefulSet", "db")),
		pod("batch", "report-28-x", owned("Job", "report-28")),
		pod("batch", "report-27-x", owned("Job", "report-27"), phase(corev1.PodSucceeded)),
		pod("batch", "once-x", owned("Job", "once")),
		pod("shop", "debug"),
		pod("shop", "gone", func(p *corev1.Pod) { p.DeletionTimestamp = &now }),
		pod("shop", "failed", phase(corev1.PodFailed)),
		pod("shop", "pending", phase(corev1.PodPending)),
	}
	parents := Parents{
		ParentKey("ReplicaSet", "shop", "web-6d4"): {Kind: "Deployment", Name: "web"},
		ParentKey("ReplicaSet", "shop", "web-7f1"): {Kind: "Deployment", Name: "web"},
		ParentKey("Job", "batch", "report-28"):     {Kind: "CronJob", Name: "report"},
		ParentKey("Job", "batch", "report-27"):     {Kind: "CronJob", Name: "report"},
	}
	type line struct {
		ns, kind, name string
		pods           []string
	}
	var got []line
	for _, g := range GroupPods(pods, parents) {
		l := line{g.Namespace, g.Kind, g.Name, nil}
		for _, p := range g.Pods {
			l.pods = append(l.pods, p.Name)
		}
		got = append(got, l)
	}
	want := []line{
		{"batch", "CronJob", "report", []string{"report-28-x"}},
		{"batch", "Job", "once", []string{"once-x"}},
		{"shop", "Deployment", "web", []string{"web-6d4-a", "web-6d4-b", "web-7f1-a"}},
		{"shop", "Pod", "debug", []string{"debug"}},
		{"shop", "Pod", "pending", []string{"pending"}},
		{"shop", "ReplicaSet", "orphan-rs", []string{"orphan-rs-a"}},
		{"shop", "StatefulSet", "db", []string{"db-0"}},
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("groups:\n got %v\nwant %v", got, want)
	}
}

func snapshot(endpoints int, kernels ...string) *cluster.Snapshot {
	s := &cluster.Snapshot{Synced: true, Proxy: cluster.ProxyIPTables, ProxyWhy: "ConfigMap kube-system/kube-proxy", DNSEndpoints: endpoints}
	for i, k := range kernels {
		s.Nodes = append(s.Nodes, cluster.Node{Name: string(rune('a'+i)) + "-node", Kernel: cluster.ParseKernel(k)})
	}
	return s
}

// TestBuildSummary: the summary counts what an operator decides on — exposed nodes, pods at
// risk by libc, and what enforce would add to how many pods — from the same decisions
// admission makes.
func TestBuildSummary(t *testing.T) {
	pods := []corev1.Pod{
		pod("shop", "web-a", owned("ReplicaSet", "web-1"), libcOf("glibc")),
		pod("shop", "web-b", owned("ReplicaSet", "web-1"), libcOf("glibc")),
		pod("shop", "cache-0", owned("StatefulSet", "cache"), libcOf("musl")),
		pod("shop", "mixed", images("a:1", "b:1"), libcOf("app=glibc,sidecar=musl")),
		pod("shop", "host", libcOf("glibc"), func(p *corev1.Pod) {
			p.Spec.HostNetwork, p.Spec.DNSPolicy = true, corev1.DNSDefault
		}),
	}
	parents := Parents{ParentKey("ReplicaSet", "shop", "web-1"): {Kind: "Deployment", Name: "web"}}
	tests := []struct {
		name        string
		facts       *cluster.Snapshot
		factsErr    string
		wantNodes   [3]int // nodes, exposed, unknown
		wantAtRisk  []LibcPods
		wantEnforce Enforce
	}{
		{
			name: "old kernels, one DNS endpoint", facts: snapshot(1, "4.14.35", "4.14.35", "6.1.0-25-cloud-amd64"),
			wantNodes:  [3]int{3, 2, 0},
			wantAtRisk: []LibcPods{{libc.GLibc, 3}, {libc.Musl, 2}},
			wantEnforce: Enforce{Workloads: 3, Pods: 4, AtRisk: 2, Adds: []OptionPods{
				{"timeout:2", 4}, {"attempts:3", 3}, {"single-request-reopen", 3}, {"attempts:10", 1},
			}},
		},
		{
			name: "new kernels resolve the clash", facts: snapshot(1, "6.1.0-25-cloud-amd64", "6.1.0-25-cloud-amd64"),
			wantNodes:  [3]int{2, 0, 0},
			wantAtRisk: []LibcPods{},
			wantEnforce: Enforce{Workloads: 3, Pods: 4, Adds: []OptionPods{
				{"timeout:2", 4}, {"attempts:3", 3}, {"attempts:10", 1},
			}},
		},
		{
			// 5.6 keeps a raced query's entry about 1 s: several endpoints are exposed on any kernel
			name: "new kernels, two DNS endpoints", facts: snapshot(2, "6.1.0-25-cloud-amd64", "6.1.0-25-cloud-amd64"),
			wantNodes:  [3]int{2, 2, 0},
			wantAtRisk: []LibcPods{{libc.GLibc, 3}, {libc.Musl, 2}},
			wantEnforce: Enforce{Workloads: 3, Pods: 4, AtRisk: 2, Adds: []OptionPods{
				{"timeout:2", 4}, {"attempts:3", 3}, {"single-request-reopen", 3}, {"attempts:10", 1},
			}},
		},
		{
			name: "no facts: every node counts as exposed", factsErr: "listing nodes: forbidden",
			wantAtRisk: []LibcPods{{libc.GLibc, 3}, {libc.Musl, 2}},
			wantEnforce: Enforce{Workloads: 3, Pods: 4, AtRisk: 2, Adds: []OptionPods{
				{"timeout:2", 4}, {"attempts:3", 3}, {"single-request-reopen", 3}, {"attempts:10", 1},
			}},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			o := Options{Policy: policy.Default(), Facts: tt.facts, FactsError: tt.factsErr, Detector: libc.UnknownDetector{}, Timeout: time.Second,
				DNS: resolvconf.ClusterDNS{Nameservers: []string{"10.96.0.10"}, ClusterDomain: "cluster.local"}}
			r, err := Build(context.Background(), o, pods, parents)
			if err != nil {
				t.Fatal(err)
			}
			s := r.Summary
			if got := [3]int{s.Nodes, s.ExposedNodes, s.UnknownNodes}; got != tt.wantNodes {
				t.Errorf("nodes/exposed/unknown = %v, want %v", got, tt.wantNodes)
			}
			if s.Workloads != 4 || s.Pods != 5 {
				t.Errorf("workloads, pods = %d, %d; want 4, 5", s.Workloads, s.Pods)
			}
			if !reflect.DeepEqual(s.AtRisk, tt.wantAtRisk) {
				t.Errorf("at risk = %v, want %v", s.AtRisk, tt.wantAtRisk)
			}
			if !reflect.DeepEqual(s.Enforce, tt.wantEnforce) {
				t.Errorf("enforce = %+v, want %+v", s.Enforce, tt.wantEnforce)
			}
			if s.FactsError != tt.factsErr || (tt.facts == nil) != (s.Exposure == cluster.Unknown.Reason) {
				t.Errorf("facts error %q, exposure %q", s.FactsError, s.Exposure)
			}
		})
	}
}

// countingDetector records how many inspections run at once and how often each image is
// asked for.
type countingDetector struct {
	mu             sync.Mutex
	calls          map[string]int
	inflight, peak atomic.Int32
}

func (d *countingDetector) Detect(_ context.Context, t libc.Target) (libc.Verdict, error) {
	n := d.inflight.Add(1)
	defer d.inflight.Add(-1)
	for p := d.peak.Load(); n > p && !d.peak.CompareAndSwap(p, n); p = d.peak.Load() {
	}
	time.Sleep(5 * time.Millisecond)
	d.mu.Lock()
	d.calls[t.Image]++
	d.mu.Unlock()
	return libc.Verdict{Libc: libc.Musl, Source: libc.SourceEntrypoint, Evidence: t.Image}, nil
}

// TestInspectOnce: each distinct image is inspected once however many workloads and replicas
// run it, never more than the concurrency at once, and Build reads the verdicts from memory.
func TestInspectOnce(t *testing.T) {
	var pods []corev1.Pod
	for i := range 40 {
		img := "reg.example/img:" + string(rune('a'+i%10))
		pods = append(pods, pod("ns", "p"+string(rune('A'+i)), images(img, "reg.example/sidecar:1")))
	}
	det := &countingDetector{calls: map[string]int{}}
	groups := GroupPods(pods, nil)
	var last int
	vs := Inspect(context.Background(), det, Targets(groups), 3, time.Second, func(done, total int) { last = done })
	if len(det.calls) != 11 || last != 11 {
		t.Errorf("inspected %d images (progress %d), want 11", len(det.calls), last)
	}
	for img, n := range det.calls {
		if n != 1 {
			t.Errorf("%s inspected %d times", img, n)
		}
	}
	if p := det.peak.Load(); p > 3 {
		t.Errorf("%d inspections at once, want at most 3", p)
	}
	o := Options{Policy: policy.Default(), Detector: vs, Timeout: time.Second}
	r, err := Build(context.Background(), o, pods, nil)
	if err != nil {
		t.Fatal(err)
	}
	if len(det.calls) != 11 || r.Workloads[0].Containers[0].Libc != libc.Musl {
		t.Errorf("Build inspected again (%d images) or lost the verdict (%+v)", len(det.calls), r.Workloads[0].Containers[0])
	}
}

// TestGroupRollout: mid-rollout a Deployment's pods run two templates; the line says so and
// is decided on the newest pod, the template the rollout heads to. Static pods' mirrors
// (owned by their Node) are each their own workload, not one per node.
func TestGroupRollout(t *testing.T) {
	at := func(sec int64) podOpt {
		return func(p *corev1.Pod) { p.CreationTimestamp = metav1.Unix(sec, 0) }
	}
	pods := []corev1.Pod{
		pod("shop", "web-old-a", owned("ReplicaSet", "web-old"), images("web:1"), at(100)),
		pod("shop", "web-new-a", owned("ReplicaSet", "web-new"), images("web:2"), at(300)),
		pod("shop", "web-old-b", owned("ReplicaSet", "web-old"), images("web:1"), at(200)),
		pod("kube-system", "etcd-node-a", owned("Node", "node-a")),
		pod("kube-system", "apiserver-node-a", owned("Node", "node-a")),
	}
	parents := Parents{
		ParentKey("ReplicaSet", "shop", "web-old"): {Kind: "Deployment", Name: "web"},
		ParentKey("ReplicaSet", "shop", "web-new"): {Kind: "Deployment", Name: "web"},
	}
	gs := GroupPods(pods, parents)
	if len(gs) != 3 {
		t.Fatalf("%d groups, want 3 (two mirror pods, one Deployment): %+v", len(gs), gs)
	}
	web := gs[2]
	if web.Name != "web" || web.Pods[0].Name != "web-new-a" || web.Variants() != 2 {
		t.Errorf("web: first pod %s, %d variants; want web-new-a, 2", web.Pods[0].Name, web.Variants())
	}
	if gs[0].Kind != "Pod" || gs[0].Name != "apiserver-node-a" || gs[0].Variants() != 1 {
		t.Errorf("mirror pod grouped as %s %s", gs[0].Kind, gs[0].Name)
	}
}

// TestBuildNodeLocal: with nodeLocalDNS auto and node-local-dns running, each workload says
// what the node-local form would change in its resolv.conf, and enforce no longer leaves the
// musl workload at risk; a glibc workload not in dnsPolicyNone is not changed.
func TestBuildNodeLocal(t *testing.T) {
	pods := []corev1.Pod{
		pod("shop", "cache-0", owned("StatefulSet", "cache"), libcOf("musl")),
		pod("shop", "web-0", owned("StatefulSet", "web"), libcOf("glibc")),
		pod("shop", "api-0", owned("StatefulSet", "api"), libcOf("glibc")),
	}
	facts := snapshot(2, "6.1.0-25-cloud-amd64")
	facts.NodeLocal = cluster.NodeLocalDNS{Known: true, Running: true, Address: "169.254.20.10"}
	facts.DNSServiceIP = "10.96.0.10"
	p := policy.Default()
	p.NodeLocalDNS = policy.NodeLocalDNS{Mode: policy.NodeLocalAuto}
	o := Options{Policy: p, Facts: facts, Detector: libc.UnknownDetector{}, Timeout: time.Second,
		DNS: resolvconf.ClusterDNS{Nameservers: []string{"10.96.0.10"}, ClusterDomain: "cluster.local"}}
	r, err := Build(context.Background(), o, pods, nil)
	if err != nil {
		t.Fatal(err)
	}
	byName := map[string]Workload{}
	for _, w := range r.Workloads {
		byName[w.Name] = w
	}
	cache := byName["cache"]
	if nl := cache.NodeLocal; nl == nil || nl.Form != mutate.NodeLocalAppend || !reflect.DeepEqual(nl.Nameservers, []string{"10.96.0.10", "169.254.20.10"}) {
		t.Errorf("musl workload node-local change = %+v", cache.NodeLocal)
	}
	if cache.Risk != mutate.RiskExposed || cache.RiskEnforced != mutate.RiskProtected {
		t.Errorf("musl risk %s → %s, want exposed → protected", cache.Risk, cache.RiskEnforced)
	}
	if byName["web"].NodeLocal != nil {
		t.Errorf("glibc workload without dnsPolicyNone changed: %+v", byName["web"].NodeLocal)
	}

	p.NodeLocalDNS.DNSPolicyNone = []libc.Libc{libc.GLibc}
	if r, err = Build(context.Background(), o, pods, nil); err != nil {
		t.Fatal(err)
	}
	for _, w := range r.Workloads {
		if w.Name != "web" {
			continue
		}
		if w.NodeLocal == nil {
			t.Fatal("glibc workload with dnsPolicyNone: no node-local change")
		}
		want := &NodeLocalChange{Form: mutate.NodeLocalNone, Why: w.NodeLocal.Why, Nameservers: []string{"169.254.20.10", "10.96.0.10"},
			Searches: []string{"shop.svc.cluster.local", "svc.cluster.local", "cluster.local"}}
		if !reflect.DeepEqual(w.NodeLocal, want) {
			t.Errorf("glibc workload with dnsPolicyNone: %+v, want %+v", w.NodeLocal, want)
		}
	}
}
