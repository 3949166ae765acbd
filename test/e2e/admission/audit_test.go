package admission

import (
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	ggcrmutate "github.com/google/go-containerregistry/pkg/v1/mutate"
	appsv1 "k8s.io/api/apps/v1"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/tools/clientcmd"
	clientcmdapi "k8s.io/client-go/tools/clientcmd/api"

	"github.com/dns-tuner/dns-tuner/internal/cli"
	"github.com/dns-tuner/dns-tuner/internal/inspect/imagetest"
	"github.com/dns-tuner/dns-tuner/internal/mutate"
)

var updateGolden = flag.Bool("update", false, "rewrite the golden files under testdata")

// kubeconfigFile writes a kubeconfig for the envtest API server, as a user's would be.
func kubeconfigFile(t testing.TB) string {
	t.Helper()
	kc := clientcmdapi.NewConfig()
	kc.Clusters["e2e"] = &clientcmdapi.Cluster{Server: cfg.Host, CertificateAuthorityData: cfg.CAData}
	kc.AuthInfos["e2e"] = &clientcmdapi.AuthInfo{ClientCertificateData: cfg.CertData, ClientKeyData: cfg.KeyData, Token: cfg.BearerToken}
	kc.Contexts["e2e"] = &clientcmdapi.Context{Cluster: "e2e", AuthInfo: "e2e"}
	kc.CurrentContext = "e2e"
	path := filepath.Join(t.TempDir(), "kubeconfig")
	if err := clientcmd.WriteToFile(*kc, path); err != nil {
		t.Fatal(err)
	}
	return path
}

var auditClusterOnce sync.Once

// auditCluster gives the API server the facts audit reads: nodes of several kernels (one
// reporting none), kube-proxy in iptables mode, two ready CoreDNS endpoints and NodeLocal
// DNSCache on 169.254.20.10.
func auditCluster(t testing.TB) {
	t.Helper()
	ctx := context.Background()
	ok := func(err error) {
		t.Helper()
		if err != nil && !apierrors.IsAlreadyExists(err) {
			t.Fatal(err)
		}
	}
	auditClusterOnce.Do(func() {
		for name, kernel := range map[string]string{
			"node-aws-a": "5.4.0-1103-aws", "node-aws-b": "5.4.0-1103-aws",
			"node-rhel": "4.18.0-553.el8_10.x86_64", "node-amzn": "5.10.226-214.880.amzn2.x86_64",
			"node-debian": "6.1.0-25-cloud-amd64", "node-new": "",
		} {
			n, err := clientset.CoreV1().Nodes().Create(ctx, &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: name}}, metav1.CreateOptions{})
			ok(err)
			if err != nil {
				continue
			}
			n.Status.NodeInfo.KernelVersion = kernel
			_, err = clientset.CoreV1().Nodes().UpdateStatus(ctx, n, metav1.UpdateOptions{})
			ok(err)
		}
		_, err := clientset.CoreV1().ConfigMaps("kube-system").Create(ctx, &corev1.ConfigMap{
			ObjectMeta: metav1.ObjectMeta{Name: "kube-proxy"},
			Data:       map[string]string{"config.conf": "apiVersion: kubeproxy.config.k8s.io/v1alpha1\nkind: KubeProxyConfiguration\nmode: iptables\n"},
		}, metav1.CreateOptions{})
		ok(err)
		ready := true
		_, err = clientset.DiscoveryV1().EndpointSlices("kube-system").Create(ctx, &discoveryv1.EndpointSlice{
			ObjectMeta:  metav1.ObjectMeta{Name: "kube-dns-abc", Labels: map[string]string{discoveryv1.LabelServiceName: "kube-dns"}},
			AddressType: discoveryv1.AddressTypeIPv4,
			Endpoints: []discoveryv1.Endpoint{
				{Addresses: []string{"10.244.0.2"}, Conditions: discoveryv1.EndpointConditions{Ready: &ready}},
			},
		}, metav1.CreateOptions{})
		ok(err)
		labels := map[string]string{"k8s-app": "node-local-dns"}
		ds, err := clientset.AppsV1().DaemonSets("kube-system").Create(ctx, &appsv1.DaemonSet{
			ObjectMeta: metav1.ObjectMeta{Name: "node-local-dns"},
			Spec: appsv1.DaemonSetSpec{
				Selector: &metav1.LabelSelector{MatchLabels: labels},
				Template: corev1.PodTemplateSpec{ObjectMeta: metav1.ObjectMeta{Labels: labels}, Spec: corev1.PodSpec{Containers: []corev1.Container{{
					Name: "node-cache", Image: "registry.example/dns/k8s-dns-node-cache:1.23.1",
					Args: []string{"-localip", "169.254.20.10,10.96.0.10", "-conf", "/etc/Corefile"},
				}}}},
			},
		}, metav1.CreateOptions{})
		ok(err)
		if err == nil {
			ds.Status.NumberReady, ds.Status.DesiredNumberScheduled = 6, 6
			_, err = clientset.AppsV1().DaemonSets("kube-system").UpdateStatus(ctx, ds, metav1.UpdateOptions{})
			ok(err)
		}
	})
}

// controller is an ownerReference to obj as its controller.
func controller(kind, name string, uid types.UID) []metav1.OwnerReference {
	yes := true
	api := map[string]string{"ReplicaSet": "apps/v1", "Deployment": "apps/v1", "StatefulSet": "apps/v1", "Job": "batch/v1", "CronJob": "batch/v1"}[kind]
	return []metav1.OwnerReference{{APIVersion: api, Kind: kind, Name: name, UID: uid, Controller: &yes}}
}

// TestAudit runs `dns-tuner audit` against envtest: nodes of vendor kernels, kube-proxy's
// ConfigMap, the DNS endpoints and NodeLocal DNSCache, and workloads whose images live in
// the test registry — a Deployment (pods owned by its ReplicaSet, as the controller would
// make them), a CronJob's Job, a mixed glibc/musl pod, a host-network pod. The table and the
// JSON are compared with golden files.
func TestAudit(t *testing.T) {
	auditCluster(t)
	ctx := context.Background()
	const ns = "e2e-audit-report"
	ensureNamespace(t, ns, map[string]string{mutate.LabelMode: "audit"})
	b := imagetest.NewBuilder(t)
	glibc := imagetest.Push(t, registryHost, "audit/web:1", b.Image(imagetest.GlibcDynamic)).String()
	musl := imagetest.Push(t, registryHost, "audit/alpine:1", b.Image(imagetest.MuslDynamic)).String()
	goStatic := imagetest.Push(t, registryHost, "audit/api:1", b.Image(imagetest.GoStatic)).String()

	pods := clientset.CoreV1().Pods(ns)
	create := func(name string, owner []metav1.OwnerReference, mod func(*corev1.Pod), images ...string) {
		t.Helper()
		p := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: name, OwnerReferences: owner}}
		for i, img := range images {
			p.Spec.Containers = append(p.Spec.Containers, corev1.Container{Name: []string{"app", "sidecar"}[i], Image: img})
		}
		if mod != nil {
			mod(p)
		}
		if _, err := pods.Create(ctx, p, metav1.CreateOptions{}); err != nil && !apierrors.IsAlreadyExists(err) {
			t.Fatal(err)
		}
	}
	labels := map[string]string{"app": "web"}
	tmpl := corev1.PodTemplateSpec{ObjectMeta: metav1.ObjectMeta{Labels: labels}, Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "app", Image: glibc}}}}
	dep, err := clientset.AppsV1().Deployments(ns).Create(ctx, &appsv1.Deployment{ObjectMeta: metav1.ObjectMeta{Name: "web"},
		Spec: appsv1.DeploymentSpec{Selector: &metav1.LabelSelector{MatchLabels: labels}, Template: tmpl}}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	rs, err := clientset.AppsV1().ReplicaSets(ns).Create(ctx, &appsv1.ReplicaSet{ObjectMeta: metav1.ObjectMeta{Name: "web-6d4f8", OwnerReferences: controller("Deployment", "web", dep.UID)},
		Spec: appsv1.ReplicaSetSpec{Selector: &metav1.LabelSelector{MatchLabels: labels}, Template: tmpl}}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range []string{"a1b2c", "d3e4f", "g5h6i"} {
		create("web-6d4f8-"+s, controller("ReplicaSet", rs.Name, rs.UID), nil, glibc)
	}
	jobTmpl := corev1.PodTemplateSpec{Spec: corev1.PodSpec{RestartPolicy: corev1.RestartPolicyNever, Containers: []corev1.Container{{Name: "app", Image: musl}}}}
	cj, err := clientset.BatchV1().CronJobs(ns).Create(ctx, &batchv1.CronJob{ObjectMeta: metav1.ObjectMeta{Name: "report"},
		Spec: batchv1.CronJobSpec{Schedule: "0 * * * *", JobTemplate: batchv1.JobTemplateSpec{Spec: batchv1.JobSpec{Template: jobTmpl}}}}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	job, err := clientset.BatchV1().Jobs(ns).Create(ctx, &batchv1.Job{ObjectMeta: metav1.ObjectMeta{Name: "report-29000000", OwnerReferences: controller("CronJob", "report", cj.UID)},
		Spec: batchv1.JobSpec{Template: jobTmpl}}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	create("report-29000000-x7k2p", controller("Job", job.Name, job.UID), func(p *corev1.Pod) { p.Spec.RestartPolicy = corev1.RestartPolicyNever }, musl)
	create("mixed", nil, nil, glibc, musl)
	create("api", nil, nil, goStatic)
	create("hostnet", nil, func(p *corev1.Pod) { p.Spec.HostNetwork, p.Spec.DNSPolicy = true, corev1.DNSDefault }, glibc)

	kc := kubeconfigFile(t)
	for _, tt := range []struct {
		golden string
		args   []string
	}{
		{"audit.txt", nil},
		{"audit.json", []string{"--json"}},
	} {
		var out, errOut bytes.Buffer
		args := append([]string{"--kubeconfig", kc, "--namespace", ns, "--insecure-registry", registryHost}, tt.args...)
		if err := cli.Execute(ctx, &cli.Audit{}, args, &out, &errOut); err != nil {
			t.Fatalf("audit: %v\n%s", err, errOut.String())
		}
		if errOut.Len() > 0 {
			t.Errorf("stderr is not a terminal, yet audit wrote %q", errOut.String())
		}
		compareGolden(t, tt.golden, normalize(out.String(), b))
	}

	// On a terminal, stderr gets the progress bar and stdout the same report.
	var out, errOut bytes.Buffer
	onTerminal := &cli.Audit{Terminal: func(io.Writer) bool { return true }}
	if err := cli.Execute(ctx, onTerminal, []string{"--kubeconfig", kc, "--namespace", ns, "--insecure-registry", registryHost}, &out, &errOut); err != nil {
		t.Fatal(err)
	}
	if e := errOut.String(); !strings.Contains(e, "\rinspecting images [") || !strings.HasSuffix(e, "] 3/3\n") {
		t.Errorf("progress on a terminal: %q, want a bar ending at 3/3 distinct images", e)
	}
	compareGolden(t, "audit.txt", normalize(out.String(), b))
}

var digests = regexp.MustCompile(`sha256:[0-9a-f]{6,64}`)

// normalize makes the output independent of the run: the registry's port, digests, and the
// build host's libc versions.
func normalize(s string, b *imagetest.Builder) string {
	s = strings.ReplaceAll(s, registryHost, "REGISTRY")
	s = digests.ReplaceAllString(s, "sha256:DIGEST")
	for _, v := range []struct{ got, as string }{{b.HostGlibcVersion(), "GLIBC_VERSION"}, {b.HostMuslVersion(), "MUSL_VERSION"}} {
		if v.got != "" {
			s = strings.ReplaceAll(s, v.got, v.as)
		}
	}
	return s
}

func compareGolden(t *testing.T, name, got string) {
	t.Helper()
	path := filepath.Join("testdata", name)
	if *updateGolden {
		if err := os.MkdirAll("testdata", 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, []byte(got), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if got != string(want) {
		t.Errorf("%s differs (go test ./test/e2e/admission -run TestAudit -update to accept):\n%s", name, got)
	}
}

// TestAuditScale is the harness for audit's target: 1,000 pods from 100 distinct images
// (distinct digests: each is a base image with its own small layer) audited in at most 30 s
// against a local registry. AUDIT_SCALE_PODS and AUDIT_SCALE_IMAGES change the size.
func TestAuditScale(t *testing.T) {
	if testing.Short() {
		t.Skip("scale harness")
	}
	auditCluster(t)
	ctx := context.Background()
	const ns = "e2e-audit-scale"
	npods, nimages := envInt(t, "AUDIT_SCALE_PODS", 1000), envInt(t, "AUDIT_SCALE_IMAGES", 100)
	// Mode off: the webhook answers at once, so creating the pods stays cheap.
	ensureNamespace(t, ns, map[string]string{mutate.LabelMode: "off"})
	b := imagetest.NewBuilder(t)
	bases := []v1.Image{b.Image(imagetest.GlibcDynamic), b.Image(imagetest.MuslDynamic), b.Image(imagetest.GoStatic)}
	refs := make([]string, nimages)
	digestsSeen := map[string]bool{}
	start := time.Now()
	for i := range refs {
		img, err := ggcrmutate.AppendLayers(bases[i%len(bases)], imagetest.Layer(t, imagetest.Reg(fmt.Sprintf("etc/build-%d", i), []byte(fmt.Sprintf("build %d\n", i)))))
		if err != nil {
			t.Fatal(err)
		}
		d, err := img.Digest()
		if err != nil {
			t.Fatal(err)
		}
		digestsSeen[d.String()] = true
		refs[i] = imagetest.Push(t, registryHost, fmt.Sprintf("scale/app-%d:1", i), img).String()
	}
	if len(digestsSeen) != nimages {
		t.Fatalf("%d distinct digests, want %d", len(digestsSeen), nimages)
	}
	t.Logf("pushed %d distinct images in %v", nimages, time.Since(start).Round(time.Millisecond))

	start = time.Now()
	var wg sync.WaitGroup
	errs := make(chan error, npods)
	sem := make(chan struct{}, 16)
	for i := range npods {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer func() { <-sem; wg.Done() }()
			p := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: fmt.Sprintf("scale-%04d", i)},
				Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "app", Image: refs[i%nimages]}}}}
			if _, err := clientset.CoreV1().Pods(ns).Create(ctx, p, metav1.CreateOptions{}); err != nil && !apierrors.IsAlreadyExists(err) {
				errs <- err
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	t.Logf("created %d pods in %v", npods, time.Since(start).Round(time.Millisecond))

	var out, errOut bytes.Buffer
	start = time.Now()
	err := cli.Execute(ctx, &cli.Audit{}, []string{"--kubeconfig", kubeconfigFile(t), "--namespace", ns, "--insecure-registry", registryHost, "--json"}, &out, &errOut)
	took := time.Since(start)
	if err != nil {
		t.Fatalf("audit: %v\n%s", err, errOut.String())
	}
	var r struct {
		Summary   struct{ Pods, Workloads int }
		Workloads []struct {
			Containers []struct{ Libc string }
		}
	}
	if err := json.Unmarshal(out.Bytes(), &r); err != nil {
		t.Fatal(err)
	}
	unknown := 0
	for _, w := range r.Workloads {
		for _, c := range w.Containers {
			if c.Libc == "unknown" {
				unknown++
			}
		}
	}
	t.Logf("audited %d pods (%d workloads) from %d distinct images in %v; %d containers unknown", r.Summary.Pods, r.Summary.Workloads, nimages, took.Round(time.Millisecond), unknown)
	if r.Summary.Pods != npods || unknown > 0 {
		t.Errorf("audit saw %d pods, want %d; %d containers unknown, want 0", r.Summary.Pods, npods, unknown)
	}
	if took > 30*time.Second {
		t.Errorf("audit took %v, the target is 30 s", took)
	}
}

func envInt(t *testing.T, name string, def int) int {
	v := os.Getenv(name)
	if v == "" {
		return def
	}
	n, err := strconv.Atoi(v)
	if err != nil || n < 1 {
		t.Fatalf("%s=%q: want a positive number", name, v)
	}
	return n
}

// TestExplainClusterFacts: given a kubeconfig, explain decides the race fix from the nodes'
// kernels as admission does, instead of counting every node as exposed; a pod confined to
// new-kernel nodes does not get the race fix.
func TestExplainClusterFacts(t *testing.T) {
	auditCluster(t)
	manifest := filepath.Join(t.TempDir(), "pods.yaml")
	doc := `apiVersion: v1
kind: Pod
metadata: {name: anywhere, namespace: default, annotations: {dns-tuner.io/libc: glibc}}
spec: {containers: [{name: app, image: registry.example/app:1}]}
---
apiVersion: v1
kind: Pod
metadata: {name: confined, namespace: default, annotations: {dns-tuner.io/libc: glibc}}
spec:
  containers: [{name: app, image: registry.example/app:1}]
  affinity: {nodeAffinity: {requiredDuringSchedulingIgnoredDuringExecution: {nodeSelectorTerms: [
    {matchExpressions: [{key: kubernetes.io/hostname, operator: In, values: [node-debian, node-amzn]}]}]}}}
`
	if err := os.WriteFile(manifest, []byte(doc), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, n := range []string{"node-debian", "node-amzn"} {
		node, err := clientset.CoreV1().Nodes().Get(context.Background(), n, metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		if node.Labels["kubernetes.io/hostname"] != n {
			node.Labels = map[string]string{"kubernetes.io/hostname": n}
			if _, err := clientset.CoreV1().Nodes().Update(context.Background(), node, metav1.UpdateOptions{}); err != nil {
				t.Fatal(err)
			}
		}
	}
	var out, errOut bytes.Buffer
	err := cli.Execute(context.Background(), &cli.Explain{}, []string{"--kubeconfig", kubeconfigFile(t), "-f", manifest, "--no-inspect", "--json"}, &out, &errOut)
	if err != nil {
		t.Fatalf("explain: %v\n%s", err, errOut.String())
	}
	var reports []struct {
		Pod     string
		RaceFix struct {
			Wanted   bool
			Why      string
			Exposure struct {
				Known               bool
				ExposedNodes, Nodes int
			}
		}
	}
	if err := json.Unmarshal(out.Bytes(), &reports); err != nil {
		t.Fatalf("%v\n%s", err, out.String())
	}
	if len(reports) != 2 {
		t.Fatalf("%d reports, want 2", len(reports))
	}
	for i, want := range []struct {
		wanted         bool
		exposed, nodes int
	}{{true, 2, 6}, {false, 0, 2}} { // one DNS endpoint: only RHEL 8 (unknown backports) and the unreported kernel
		rf := reports[i].RaceFix
		if !rf.Exposure.Known || rf.Wanted != want.wanted || rf.Exposure.ExposedNodes != want.exposed || rf.Exposure.Nodes != want.nodes {
			t.Errorf("%s: race fix %+v, want wanted=%v with %d of %d nodes exposed", reports[i].Pod, rf, want.wanted, want.exposed, want.nodes)
		}
	}
}
