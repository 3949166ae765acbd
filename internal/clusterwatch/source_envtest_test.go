package clusterwatch_test

import (
	"context"
	"fmt"
	"os"
	"strings"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/kubernetes"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/rest"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/envtest"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"
	"sigs.k8s.io/yaml"

	"github.com/dns-tuner/dns-tuner/internal/cluster"
	"github.com/dns-tuner/dns-tuner/internal/clusterwatch"
	"github.com/dns-tuner/dns-tuner/internal/libc"
	"github.com/dns-tuner/dns-tuner/internal/mutate"
	"github.com/dns-tuner/dns-tuner/internal/policy"
	"github.com/dns-tuner/dns-tuner/internal/policy/policytest"
)

// TestSourceEnvtest runs Source against a real kube-apiserver: Node objects with many kernel
// strings (status.nodeInfo set through the status subresource, as kubelet does), kube-proxy's
// ConfigMap in every mode and absent, the DNS Service's EndpointSlices and node-local-dns; then
// a pod confined to new-kernel nodes gets no race fix and one that is not confined does.
func TestSourceEnvtest(t *testing.T) {
	if testing.Short() || os.Getenv("KUBEBUILDER_ASSETS") == "" {
		t.Skip("envtest: set KUBEBUILDER_ASSETS (and drop -short)")
	}
	env := &envtest.Environment{}
	cfg, err := env.Start()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = env.Stop() })
	cs := kubernetes.NewForConfigOrDie(cfg)
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)

	scheme := runtime.NewScheme()
	if err := clientgoscheme.AddToScheme(scheme); err != nil {
		t.Fatal(err)
	}
	mgr, err := ctrl.NewManager(cfg, ctrl.Options{Scheme: scheme, Metrics: metricsserver.Options{BindAddress: "0"}, HealthProbeBindAddress: "0"})
	if err != nil {
		t.Fatal(err)
	}
	src, err := clusterwatch.NewSource(mgr, clusterwatch.SourceOptions{Refresh: 20 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- mgr.Start(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("manager: %v", err)
		}
	})

	// Nothing is known until the nodes have been listed: exposed.
	if e := src.Exposure(cluster.Placement{}); !e.Exposed {
		t.Errorf("before sync: %+v", e)
	}

	kernels := map[string]string{ // node name → kernel
		"aws-old": "5.4.0-1103-aws", "rhel8": "4.18.0-553.el8_10.x86_64", "rhel7": "3.10.0-1160.el7.x86_64",
		"cos-49": "4.9.163+", "cos-414": "4.14.106+", "cos-419": "4.19.29+", "garbage": "garbage",
		"al2": "5.10.226-214.880.amzn2.x86_64", "deb12": "6.1.0-25-cloud-amd64", "new": "6.8.0-1015-gke",
	}
	for name, k := range kernels {
		pool := "old"
		if cluster.ParseKernel(k).DifferentBackends == cluster.Fixed {
			pool = "new"
		}
		n, err := cs.CoreV1().Nodes().Create(ctx, &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: name, Labels: map[string]string{"pool": pool}}}, metav1.CreateOptions{})
		if err != nil {
			t.Fatal(err)
		}
		n.Status.NodeInfo.KernelVersion = k
		n.Status.Images = []corev1.ContainerImage{{Names: []string{strings.Repeat("x", 200)}, SizeBytes: 1}} // stripped by the informer
		if _, err := cs.CoreV1().Nodes().UpdateStatus(ctx, n, metav1.UpdateOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	// A node whose kubelet has not reported yet.
	if _, err := cs.CoreV1().Nodes().Create(ctx, &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: "booting", Labels: map[string]string{"pool": "booting"}}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	ensureNamespace(t, cs, "kube-system")
	// A ConfigMap beside kube-proxy's that the field selector keeps out.
	if _, err := cs.CoreV1().ConfigMaps("kube-system").Create(ctx, &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "coredns"}, Data: map[string]string{"config.conf": "mode: ipvs"}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	ready, notReady := true, false
	slice := &discoveryv1.EndpointSlice{
		ObjectMeta:  metav1.ObjectMeta{Name: "kube-dns-abc", Labels: map[string]string{discoveryv1.LabelServiceName: "kube-dns"}},
		AddressType: discoveryv1.AddressTypeIPv4,
		Endpoints: []discoveryv1.Endpoint{
			{Addresses: []string{"10.244.0.2"}, Conditions: discoveryv1.EndpointConditions{Ready: &ready}},
			{Addresses: []string{"10.244.1.3"}, Conditions: discoveryv1.EndpointConditions{Ready: &ready}},
			{Addresses: []string{"10.244.2.4"}, Conditions: discoveryv1.EndpointConditions{Ready: &notReady}},
		},
	}
	if _, err := cs.DiscoveryV1().EndpointSlices("kube-system").Create(ctx, slice, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	// The cluster DNS Service, and one beside it that the field selector keeps out.
	var dnsIP string
	for _, name := range []string{"metrics-server", "kube-dns"} {
		svc, err := cs.CoreV1().Services("kube-system").Create(ctx, &corev1.Service{ObjectMeta: metav1.ObjectMeta{Name: name},
			Spec: corev1.ServiceSpec{Ports: []corev1.ServicePort{{Name: "dns", Port: 53, Protocol: corev1.ProtocolUDP}}}}, metav1.CreateOptions{})
		if err != nil {
			t.Fatal(err)
		}
		dnsIP = svc.Spec.ClusterIP
	}
	labels := map[string]string{"k8s-app": "node-local-dns"}
	ds := &appsv1.DaemonSet{ObjectMeta: metav1.ObjectMeta{Name: "node-local-dns"}, Spec: appsv1.DaemonSetSpec{
		Selector: &metav1.LabelSelector{MatchLabels: labels},
		Template: corev1.PodTemplateSpec{ObjectMeta: metav1.ObjectMeta{Labels: labels}, Spec: corev1.PodSpec{Containers: []corev1.Container{{
			Name: "node-cache", Image: "registry.k8s.io/dns/k8s-dns-node-cache:1.23.1",
			Args: []string{"-localip", "169.254.20.10,10.96.0.10", "-conf", "/etc/Corefile"},
		}}}},
	}}
	ds, err = cs.AppsV1().DaemonSets("kube-system").Create(ctx, ds, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	ds.Status.NumberReady, ds.Status.DesiredNumberScheduled = 3, 3
	if _, err := cs.AppsV1().DaemonSets("kube-system").UpdateStatus(ctx, ds, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}

	// No kube-proxy ConfigMap yet: the mode is unknown and every node counts as exposed.
	snap := eventually(t, src, "nodes, endpoints and node-local-dns", func(s *cluster.Snapshot) bool {
		return len(s.Nodes) == len(kernels)+1 && s.DNSEndpoints == 2 && s.NodeLocal.Running && s.DNSServiceIP != ""
	})
	if snap.DNSServiceIP != dnsIP {
		t.Errorf("kube-dns ClusterIP = %q, want %q", snap.DNSServiceIP, dnsIP)
	}
	if e := src.Exposure(cluster.Placement{}); e.DNSServiceIP != dnsIP || e.NodeLocal.Address != "169.254.20.10" {
		t.Errorf("exposure carries kube-dns %q and node-local %+v, want %q and 169.254.20.10", e.DNSServiceIP, e.NodeLocal, dnsIP)
	}
	if snap.Proxy != cluster.ProxyUnknown || !strings.Contains(snap.ProxyWhy, "no ConfigMap kube-system/kube-proxy") {
		t.Errorf("proxy = %s (%s), want unknown: no ConfigMap", snap.Proxy, snap.ProxyWhy)
	}
	if snap.NodeLocal.Address != "169.254.20.10" {
		t.Errorf("node-local-dns address = %q", snap.NodeLocal.Address)
	}
	for _, n := range snap.Nodes {
		if want := kernels[n.Name]; n.Kernel.Raw != want || n.Labels["pool"] == "" {
			t.Errorf("node %s: kernel %q labels %v, want kernel %q", n.Name, n.Kernel.Raw, n.Labels, want)
		}
	}
	newOnly := cluster.Placement{NodeSelector: map[string]string{"pool": "new"}}
	if e := src.Exposure(newOnly); !e.Exposed || !strings.Contains(e.Reason, "kube-proxy mode unknown") {
		t.Errorf("no kube-proxy ConfigMap, new kernels: %+v", e)
	}

	cm := &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "kube-proxy"}, Data: map[string]string{}}
	cm, err = cs.CoreV1().ConfigMaps("kube-system").Create(ctx, cm, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	// Two DNS endpoints here: every mode leaves new kernels exposed, each for its own reason
	// (iptables and nftables: the 5.6 fix holds only for answers within 1 s).
	for _, tt := range []struct {
		conf string
		mode cluster.ProxyMode
		why  string
	}{
		{"apiVersion: kubeproxy.config.k8s.io/v1alpha1\nkind: KubeProxyConfiguration\nmode: \"\"\n", cluster.ProxyIPTables, "slower than 1 s"},
		{"mode: iptables\n", cluster.ProxyIPTables, "slower than 1 s"},
		{"mode: nftables\n", cluster.ProxyNFTables, "slower than 1 s"},
		{"mode: ipvs\n", cluster.ProxyIPVS, "PR #122463"},
		{"mode: kernelspace\n", cluster.ProxyUnknown, "kube-proxy mode unknown"},
		{"mode: iptables\n", cluster.ProxyIPTables, "slower than 1 s"},
	} {
		cm.Data = map[string]string{"config.conf": tt.conf}
		if cm, err = cs.CoreV1().ConfigMaps("kube-system").Update(ctx, cm, metav1.UpdateOptions{}); err != nil {
			t.Fatal(err)
		}
		eventually(t, src, "kube-proxy mode "+string(tt.mode), func(s *cluster.Snapshot) bool { return s.Proxy == tt.mode })
		if e := src.Exposure(newOnly); !e.Exposed || e.Nodes != 3 || !strings.Contains(e.Reason, tt.why) {
			t.Errorf("mode %s, pod on new kernels: exposed=%t nodes=%d (%s), want exposed on 3 because %q", tt.mode, e.Exposed, e.Nodes, e.Reason, tt.why)
		}
		if e := src.Exposure(cluster.Placement{}); !e.Exposed {
			t.Errorf("mode %s, pod anywhere: not exposed (%s)", tt.mode, e.Reason)
		}
	}

	// iptables, 2 DNS endpoints: through admission's decision, even a pod confined to new
	// kernels gets the race fix (5.6 keeps a raced query's entry for 1 s only: a slower answer
	// is lost), and one that may land anywhere gets it too; each says why.
	p := policytest.Policy()
	enforce := mutate.ModeDecision{Mode: policy.Enforce, Reason: "test"}
	glibc := []mutate.Container{{Name: "app", Verdict: libc.Verdict{Libc: libc.GLibc}}}
	confined := &mutate.Pod{Spec: mutate.PodSpec{NodeSelector: map[string]string{"pool": "new"}, Containers: []mutate.PodContainer{{Name: "app"}}}}
	anywhere := &mutate.Pod{Spec: mutate.PodSpec{Containers: []mutate.PodContainer{{Name: "app"}}}}
	if plan := mutate.DecideFor(p, confined, enforce, glibc, src.Exposure(confined.Placement())); optionList(plan.Inject) != "single-request-reopen timeout:2 attempts:3" ||
		!strings.Contains(plan.Annotations[mutate.AnnotationRaceFix], "slower than 1 s") {
		t.Errorf("confined pod: inject %q, race-fix %q", optionList(plan.Inject), plan.Annotations[mutate.AnnotationRaceFix])
	}
	plan := mutate.DecideFor(p, anywhere, enforce, glibc, src.Exposure(anywhere.Placement()))
	if optionList(plan.Inject) != "single-request-reopen timeout:2 attempts:3" ||
		!strings.HasPrefix(plan.Annotations[mutate.AnnotationRaceFix], "needed: 11 of 11 nodes run") {
		t.Errorf("unconfined pod: inject %q, race-fix %q", optionList(plan.Inject), plan.Annotations[mutate.AnnotationRaceFix])
	}
	t.Logf("unconfined pod: %s", plan.Annotations[mutate.AnnotationRaceFix])

	// One DNS endpoint left: the single-backend fix is enough where the kernel has it.
	slice.Endpoints = slice.Endpoints[:1]
	got, err := cs.DiscoveryV1().EndpointSlices("kube-system").Get(ctx, slice.Name, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	got.Endpoints = slice.Endpoints
	if _, err := cs.DiscoveryV1().EndpointSlices("kube-system").Update(ctx, got, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	eventually(t, src, "1 DNS endpoint", func(s *cluster.Snapshot) bool { return s.DNSEndpoints == 1 })
	oneEP := cluster.Placement{NodeAffinity: &corev1.NodeAffinity{RequiredDuringSchedulingIgnoredDuringExecution: &corev1.NodeSelector{
		NodeSelectorTerms: []corev1.NodeSelectorTerm{{MatchExpressions: []corev1.NodeSelectorRequirement{{Key: "kubernetes.io/hostname", Operator: corev1.NodeSelectorOpIn, Values: []string{"x"}}}},
			byName("aws-old"), byName("cos-414"), byName("cos-419")},
	}}}
	if e := src.Exposure(oneEP); e.Exposed || e.Nodes != 3 {
		t.Errorf("1 endpoint, 5.4 and fixed stable kernels: %+v", e)
	}
	rhel := cluster.Placement{NodeSelector: map[string]string{"pool": "old"}}
	if e := src.Exposure(rhel); !e.Exposed || !strings.Contains(e.Reason, "of 7 nodes the pod can land on") {
		t.Errorf("1 endpoint, old pool (RHEL, garbage): %+v", e)
	}

	// The same facts as dns-tuner's ServiceAccount with only the ClusterRole the chart and
	// config/rbac grant: list/watch by name (field selector) is what resourceNames allows.
	restricted := asServiceAccount(t, ctx, cs, cfg)
	rmgr, err := ctrl.NewManager(restricted, ctrl.Options{Scheme: scheme, Metrics: metricsserver.Options{BindAddress: "0"}, HealthProbeBindAddress: "0"})
	if err != nil {
		t.Fatal(err)
	}
	rsrc, err := clusterwatch.NewSource(rmgr, clusterwatch.SourceOptions{Refresh: 20 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	rctx, rcancel := context.WithCancel(ctx)
	rdone := make(chan error, 1)
	go func() { rdone <- rmgr.Start(rctx) }()
	defer func() { rcancel(); <-rdone }() //nolint:errcheck // stopped on purpose
	eventually(t, rsrc, "every fact with the chart's RBAC", func(s *cluster.Snapshot) bool {
		return len(s.Nodes) == len(kernels)+1 && s.Proxy == cluster.ProxyIPTables && s.DNSEndpoints == 1 && s.NodeLocal.Running && s.DNSServiceIP == dnsIP
	})

	// The one-shot read (explain, audit) sees the same, with the same RBAC.
	snap, err = clusterwatch.Read(ctx, kubernetes.NewForConfigOrDie(restricted), clusterwatch.SourceOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if len(snap.Nodes) != len(kernels)+1 || snap.Proxy != cluster.ProxyIPTables || snap.DNSEndpoints != 1 || snap.NodeLocal.Address != "169.254.20.10" || snap.DNSServiceIP != dnsIP {
		t.Errorf("Read: %s, kube-dns %q", describe(snap), snap.DNSServiceIP)
	}
	if a, b := snap.Exposure(rhel), rsrc.Exposure(rhel); a.Reason != b.Reason {
		t.Errorf("Read and Source disagree:\n%s\n%s", a.Reason, b.Reason)
	}
}

// asServiceAccount binds config/rbac/role.yaml's ClusterRole to dns-tuner's ServiceAccount
// and returns a config that impersonates it.
func asServiceAccount(t *testing.T, ctx context.Context, cs *kubernetes.Clientset, cfg *rest.Config) *rest.Config {
	t.Helper()
	raw, err := os.ReadFile("../../config/rbac/role.yaml")
	if err != nil {
		t.Fatal(err)
	}
	role := &rbacv1.ClusterRole{}
	if err := yaml.Unmarshal(raw, role); err != nil {
		t.Fatal(err)
	}
	role.Name = "dns-tuner-test"
	if _, err := cs.RbacV1().ClusterRoles().Create(ctx, role, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	binding := &rbacv1.ClusterRoleBinding{ObjectMeta: metav1.ObjectMeta{Name: "dns-tuner-test"},
		RoleRef:  rbacv1.RoleRef{APIGroup: "rbac.authorization.k8s.io", Kind: "ClusterRole", Name: role.Name},
		Subjects: []rbacv1.Subject{{Kind: "ServiceAccount", Name: "dns-tuner", Namespace: "dns-tuner-system"}}}
	if _, err := cs.RbacV1().ClusterRoleBindings().Create(ctx, binding, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	c := rest.CopyConfig(cfg)
	c.Impersonate = rest.ImpersonationConfig{UserName: "system:serviceaccount:dns-tuner-system:dns-tuner",
		Groups: []string{"system:serviceaccounts", "system:serviceaccounts:dns-tuner-system", "system:authenticated"}}
	// Nothing beyond the facts: a ConfigMap other than kube-proxy's is refused.
	rc := kubernetes.NewForConfigOrDie(c)
	if _, err := rc.CoreV1().ConfigMaps("kube-system").Get(ctx, "coredns", metav1.GetOptions{}); !apierrors.IsForbidden(err) {
		t.Errorf("reading ConfigMap coredns as dns-tuner: %v, want forbidden", err)
	}
	return c
}

// byName is a node affinity term for one node (metadata.name takes one value).
func byName(n string) corev1.NodeSelectorTerm {
	return corev1.NodeSelectorTerm{MatchFields: []corev1.NodeSelectorRequirement{{Key: "metadata.name", Operator: corev1.NodeSelectorOpIn, Values: []string{n}}}}
}

func optionList(opts []policy.Option) string {
	var s []string
	for _, o := range opts {
		s = append(s, policy.OptionString(o))
	}
	return strings.Join(s, " ")
}

func ensureNamespace(t *testing.T, cs *kubernetes.Clientset, name string) {
	t.Helper()
	_, err := cs.CoreV1().Namespaces().Create(context.Background(), &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: name}}, metav1.CreateOptions{})
	if err != nil && !apierrors.IsAlreadyExists(err) {
		t.Fatal(err)
	}
}

func eventually(t *testing.T, src *clusterwatch.Source, what string, ok func(*cluster.Snapshot) bool) *cluster.Snapshot {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for time.Now().Before(deadline) {
		if s := src.Snapshot(); s != nil && ok(s) {
			return s
		}
		time.Sleep(20 * time.Millisecond)
	}
	s := src.Snapshot()
	t.Fatalf("%s: not seen in 20s; last snapshot %s", what, describe(s))
	return nil
}

func describe(s *cluster.Snapshot) string {
	if s == nil {
		return "nil"
	}
	return fmt.Sprintf("%d nodes, proxy %s (%s), %d endpoints, node-local %+v", len(s.Nodes), s.Proxy, s.ProxyWhy, s.DNSEndpoints, s.NodeLocal)
}
