package cluster

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/rand"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/clientcmd"

	"github.com/dns-tuner/dns-tuner/internal/inspect/imagetest"
	"github.com/dns-tuner/dns-tuner/internal/mutate"
)

// Facts of the cluster hack/cluster/cluster.sh builds.
const (
	clusterDNS = "10.96.0.10"
	nodeSearch = "realnode.test" // the node's search domain, which kubelet appends
	kubeletOpt = "ndots:5"       // kubelet's own option for ClusterFirst pods
	absent     = "absent.invalid"
)

type env struct {
	cs       *kubernetes.Clientset
	registry string
}

var (
	envOnce sync.Once
	theEnv  *env
	envErr  error
)

// cluster skips t unless it runs inside the real cluster's namespace.
func cluster(t *testing.T) *env {
	t.Helper()
	if testing.Short() {
		t.Skip("real cluster tests: skipped under -short")
	}
	reg := os.Getenv("CLUSTER_REGISTRY")
	if reg == "" || os.Getenv("KUBECONFIG") == "" {
		t.Skip("no real cluster: run `make e2e-cluster` (CLUSTER_REGISTRY and KUBECONFIG unset)")
	}
	envOnce.Do(func() {
		cfg, err := clientcmd.BuildConfigFromFlags("", os.Getenv("KUBECONFIG"))
		if err != nil {
			envErr = err
			return
		}
		cs, err := kubernetes.NewForConfig(cfg)
		theEnv, envErr = &env{cs: cs, registry: reg}, err
	})
	if envErr != nil {
		t.Fatalf("cluster client: %v", envErr)
	}
	return theEnv
}

var (
	imagesOnce sync.Once
	imageRefs  map[string]string // libc -> pushed reference by digest
)

// probeImages compiles probeC with gcc and musl-gcc (dynamically linked, so each runs the
// real resolver of its libc: the host's glibc 2.36 and musl 1.2.3) and pushes an image of
// each to the cluster's registry.
func probeImages(t *testing.T, e *env) map[string]string {
	t.Helper()
	imagesOnce.Do(func() {
		b := imagetest.NewBuilder(t)
		dir := t.TempDir()
		src := filepath.Join(dir, "probe.c")
		if err := os.WriteFile(src, []byte(probeC), 0o644); err != nil {
			t.Fatal(err)
		}
		compile := func(cc string) []byte {
			out := filepath.Join(dir, "probe-"+cc)
			if msg, err := exec.Command(cc, "-O1", "-o", out, src).CombinedOutput(); err != nil {
				t.Fatalf("%s: %v\n%s", cc, err, msg)
			}
			data, err := os.ReadFile(out)
			if err != nil {
				t.Fatal(err)
			}
			return data
		}
		cfg := v1.Config{Entrypoint: []string{"/usr/local/bin/probe"}}
		goDir := filepath.Join(dir, "goprobe")
		if err := os.MkdirAll(goDir, 0o755); err != nil {
			t.Fatal(err)
		}
		for f, c := range map[string]string{"go.mod": "module probe\n\ngo 1.22\n", "main.go": probeGo} {
			if err := os.WriteFile(filepath.Join(goDir, f), []byte(c), 0o644); err != nil {
				t.Fatal(err)
			}
		}
		gobuild := exec.Command("go", "build", "-trimpath", "-o", filepath.Join(dir, "probe-go"), ".")
		gobuild.Dir, gobuild.Env = goDir, append(os.Environ(), "CGO_ENABLED=0", "GOWORK=off", "GOFLAGS=-mod=mod")
		if msg, err := gobuild.CombinedOutput(); err != nil {
			t.Fatalf("go build probe: %v\n%s", err, msg)
		}
		goBin, err := os.ReadFile(filepath.Join(dir, "probe-go"))
		if err != nil {
			t.Fatal(err)
		}
		imgs := map[string]v1.Image{
			"go": imagetest.Image(t, "amd64", cfg, imagetest.Layer(t, imagetest.Exe("/usr/local/bin/probe", goBin))),
			"glibc": imagetest.Image(t, "amd64", cfg, imagetest.Layer(t, b.GlibcFiles()...),
				imagetest.Layer(t, imagetest.Exe("/usr/local/bin/probe", compile("gcc")))),
			"musl": imagetest.Image(t, "amd64", cfg, imagetest.Layer(t, b.MuslLoader()),
				imagetest.Layer(t, imagetest.Exe("/usr/local/bin/probe", compile("musl-gcc")))),
			// the real tini-static (a static glibc binary) in front of a musl program: the
			// program that resolves names decides, not the init wrapper
			"wrapper": imagetest.Image(t, "amd64", v1.Config{Entrypoint: []string{"/tini", "--", "/usr/local/bin/probe"}},
				imagetest.Layer(t, b.MuslLoader()),
				imagetest.Layer(t, imagetest.Exe("/tini", b.Tini()), imagetest.Exe("/usr/local/bin/probe", compile("musl-gcc")))),
		}
		imageRefs = map[string]string{}
		for libc, img := range imgs {
			ref, err := name.ParseReference(e.registry+"/e2e/probe-"+libc+":1", name.Insecure)
			if err != nil {
				t.Fatal(err)
			}
			if err := remote.Write(ref, img); err != nil {
				t.Fatalf("push %s: %v", ref, err)
			}
			d, err := img.Digest()
			if err != nil {
				t.Fatal(err)
			}
			imageRefs[libc] = ref.Context().Name() + "@" + d.String()
		}
	})
	if imageRefs == nil {
		t.Fatal("probe images were not built (see the first test's failure)")
	}
	return imageRefs
}

// namespace creates a namespace with the given dns-tuner mode label ("" for none) and
// deletes it when t ends.
func namespace(t *testing.T, e *env, prefix, mode string) string {
	t.Helper()
	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: prefix + "-" + rand.String(5), Labels: map[string]string{}}}
	if mode != "" {
		ns.Labels[mutate.LabelMode] = mode
	}
	if _, err := e.cs.CoreV1().Namespaces().Create(context.Background(), ns, metav1.CreateOptions{}); err != nil {
		t.Fatalf("create namespace: %v", err)
	}
	t.Cleanup(func() {
		_ = e.cs.CoreV1().Namespaces().Delete(context.Background(), ns.Name, metav1.DeleteOptions{})
	})
	return ns.Name
}

// deployment runs image in a one-replica Deployment (so the pod is created by the
// ReplicaSet controller, as in production) resolving names every second, and returns its
// running pod.
func deployment(t *testing.T, e *env, ns, app, image string, annotations map[string]string, names ...string) *corev1.Pod {
	t.Helper()
	return deploymentOf(t, e, ns, app, annotations, probe("app", image, 1000, names...))
}

// probe is a container running a probe image that looks names up every intervalMs.
func probe(name, image string, intervalMs int, names ...string) corev1.Container {
	return corev1.Container{Name: name, Image: image, Args: names,
		Env: []corev1.EnvVar{{Name: "PROBE_INTERVAL_MS", Value: fmt.Sprint(intervalMs)}}}
}

func deploymentOf(t *testing.T, e *env, ns, app string, annotations map[string]string, containers ...corev1.Container) *corev1.Pod {
	t.Helper()
	ctx := context.Background()
	one := int32(1)
	zero := int64(0)
	labels := map[string]string{"app": app}
	d := &appsv1.Deployment{
		ObjectMeta: metav1.ObjectMeta{Name: app, Namespace: ns},
		Spec: appsv1.DeploymentSpec{
			Replicas: &one,
			Selector: &metav1.LabelSelector{MatchLabels: labels},
			Template: corev1.PodTemplateSpec{
				ObjectMeta: metav1.ObjectMeta{Labels: labels, Annotations: annotations},
				Spec: corev1.PodSpec{
					TerminationGracePeriodSeconds: &zero,
					Containers:                    containers,
				},
			},
		},
	}
	if _, err := e.cs.AppsV1().Deployments(ns).Create(ctx, d, metav1.CreateOptions{}); err != nil {
		t.Fatalf("create deployment %s/%s: %v", ns, app, err)
	}
	var pod *corev1.Pod
	poll(t, 90*time.Second, fmt.Sprintf("pod of %s/%s running", ns, app), func() bool {
		pods, err := e.cs.CoreV1().Pods(ns).List(ctx, metav1.ListOptions{LabelSelector: "app=" + app})
		if err != nil {
			return false
		}
		for i := range pods.Items {
			if pods.Items[i].Status.Phase == corev1.PodRunning && pods.Items[i].DeletionTimestamp == nil {
				pod = &pods.Items[i]
				return true
			}
		}
		return false
	})
	return pod
}

func poll(t *testing.T, timeout time.Duration, what string, ok func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !ok() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s", timeout, what)
		}
		time.Sleep(300 * time.Millisecond)
	}
}

// report is what the probe printed: the resolv.conf the container saw and its lookups.
type report struct {
	nameservers, searches []string
	options               []string // sorted: kubelet writes options in random order
	lookups               map[string][]lookup
}

type lookup struct {
	ok   bool
	addr string
	ms   string
	line string
}

var lookupLine = regexp.MustCompile(`^lookup (\S+) (ok|fail) (\S+)(?: \(.*\))? ([0-9.]+)ms$`)

func parseReport(logs string) (report, bool) {
	r := report{lookups: map[string][]lookup{}}
	in, done := false, false
	for _, l := range strings.Split(logs, "\n") {
		f := strings.Fields(l)
		switch {
		case l == "resolv.conf-begin":
			in = true
		case l == "resolv.conf-end":
			in, done = false, true
		case in && len(f) > 1 && f[0] == "nameserver":
			r.nameservers = append(r.nameservers, f[1:]...)
		case in && len(f) > 1 && f[0] == "search":
			r.searches = append(r.searches, f[1:]...)
		case in && len(f) > 1 && f[0] == "options":
			r.options = append(r.options, f[1:]...)
		default:
			if m := lookupLine.FindStringSubmatch(l); m != nil {
				r.lookups[m[1]] = append(r.lookups[m[1]], lookup{ok: m[2] == "ok", addr: m[3], ms: m[4], line: l})
			}
		}
	}
	sort.Strings(r.options)
	return r, done
}

// probeReport waits until the pod has printed its resolv.conf and looked up every name once.
func probeReport(t *testing.T, e *env, pod *corev1.Pod, names ...string) report {
	t.Helper()
	return probeReportOf(t, e, pod, "app", names...)
}

func probeReportOf(t *testing.T, e *env, pod *corev1.Pod, container string, names ...string) report {
	t.Helper()
	var r report
	poll(t, 60*time.Second, "probe output of "+pod.Name+"/"+container, func() bool {
		raw, err := e.cs.CoreV1().Pods(pod.Namespace).GetLogs(pod.Name, &corev1.PodLogOptions{Container: container}).DoRaw(context.Background())
		if err != nil {
			return false
		}
		var done bool
		if r, done = parseReport(string(raw)); !done {
			return false
		}
		for _, n := range names {
			if len(r.lookups[n]) == 0 {
				return false
			}
		}
		return true
	})
	return r
}

// expectedOptions is the set the annotations promise: kubelet's ndots:5 plus what dns-tuner
// says it injected.
func expectedOptions(pod *corev1.Pod) []string {
	opts := []string{kubeletOpt}
	if inj := pod.Annotations[mutate.AnnotationInjected]; inj != "" {
		opts = append(opts, strings.Split(inj, ",")...)
	}
	sort.Strings(opts)
	return opts
}

func serviceIP(t *testing.T, e *env, ns, name string) string {
	t.Helper()
	svc, err := e.cs.CoreV1().Services(ns).Get(context.Background(), name, metav1.GetOptions{})
	if err != nil {
		t.Fatalf("get service %s/%s: %v", ns, name, err)
	}
	return svc.Spec.ClusterIP
}

// TestResolvConfMatchesAnnotations: in an enforce namespace, a glibc and a musl Deployment's
// pods see (from inside the container) exactly the options dns-tuner's annotations announce
// on top of kubelet's, with the cluster DNS Service as nameserver and kubelet's search path
// including the node's domain; and their real resolvers look up Service names through
// kube-proxy's DNAT to CoreDNS.
func TestResolvConfMatchesAnnotations(t *testing.T) {
	e := cluster(t)
	imgs := probeImages(t, e)
	ns := namespace(t, e, "enforce", "enforce")
	apiIP, dnsIP := serviceIP(t, e, "default", "kubernetes"), serviceIP(t, e, "kube-system", "kube-dns")
	names := map[string]string{"kubernetes.default": apiIP, "kube-dns.kube-system.svc.cluster.local": dnsIP}
	var lookupNames []string
	for n := range names {
		lookupNames = append(lookupNames, n)
	}
	sort.Strings(lookupNames)
	want := map[string][]string{
		// kernel 6.18, kube-proxy iptables, one CoreDNS: the clash is resolved, so raceFix auto
		// leaves single-request-reopen out; fast retry goes in everywhere
		"glibc": {"attempts:3", "timeout:2"},
		"musl":  {"attempts:10", "timeout:2"},
	}
	for _, libc := range []string{"glibc", "musl"} {
		t.Run(libc, func(t *testing.T) {
			pod := deployment(t, e, ns, libc, imgs[libc], map[string]string{mutate.AnnotationLibc: libc}, append(lookupNames, absent)...)
			if got := pod.Annotations[mutate.AnnotationStatus]; got != mutate.StatusInjected {
				t.Fatalf("status annotation %q, want %q (reason: %s)", got, mutate.StatusInjected, pod.Annotations[mutate.AnnotationReason])
			}
			inj := strings.Split(pod.Annotations[mutate.AnnotationInjected], ",")
			sort.Strings(inj)
			if !equal(inj, want[libc]) {
				t.Errorf("injected-options %v, want the default %s profile %v", inj, libc, want[libc])
			}
			r := probeReport(t, e, pod, append(lookupNames, absent)...)
			if !equal(r.options, expectedOptions(pod)) {
				t.Errorf("resolv.conf options in the container %v, annotations promise %v", r.options, expectedOptions(pod))
			}
			if !equal(r.nameservers, []string{clusterDNS}) {
				t.Errorf("nameservers %v, want the kube-dns Service %s", r.nameservers, clusterDNS)
			}
			wantSearch := []string{ns + ".svc.cluster.local", "svc.cluster.local", "cluster.local", nodeSearch}
			if !equal(r.searches, wantSearch) {
				t.Errorf("search %v, want %v", r.searches, wantSearch)
			}
			t.Logf("%s: resolv.conf in the container: nameserver %v search %v options %v", libc, r.nameservers, r.searches, r.options)
			// a name outside the cluster fails at once with NXDOMAIN through every search
			// domain (the node's included), not EAI_AGAIN after a timeout
			if l := r.lookups[absent][0]; l.ok || !strings.Contains(l.line, " fail -2 ") {
				t.Errorf("%s lookup of %s: %q, want fail -2 (EAI_NONAME)", libc, absent, l.line)
			}
			for _, n := range lookupNames {
				l := r.lookups[n][0]
				if !l.ok || l.addr != names[n] {
					t.Errorf("%s lookup of %s: %q, want ok %s", libc, n, l.line, names[n])
				} else {
					t.Logf("%s: %s", libc, l.line)
				}
			}
		})
	}
}

// TestUnlabelledNamespaceUntouched: the chart's default policy mode is off, so a pod in a
// namespace without the label keeps kubelet's resolv.conf.
func TestUnlabelledNamespaceUntouched(t *testing.T) {
	e := cluster(t)
	imgs := probeImages(t, e)
	ns := namespace(t, e, "plain", "")
	pod := deployment(t, e, ns, "glibc", imgs["glibc"], map[string]string{mutate.AnnotationLibc: "glibc"}, "kubernetes.default")
	if inj := pod.Annotations[mutate.AnnotationInjected]; inj != "" {
		t.Errorf("injected-options %q in an unlabelled namespace", inj)
	}
	r := probeReport(t, e, pod, "kubernetes.default")
	if !equal(r.options, []string{kubeletOpt}) {
		t.Errorf("options %v, want kubelet's alone [%s]", r.options, kubeletOpt)
	}
	if l := r.lookups["kubernetes.default"][0]; !l.ok {
		t.Errorf("lookup: %s", l.line)
	}
}

// TestAuditNamespace: audit mode announces what enforce would add and changes nothing.
func TestAuditNamespace(t *testing.T) {
	e := cluster(t)
	imgs := probeImages(t, e)
	ns := namespace(t, e, "audit", "audit")
	pod := deployment(t, e, ns, "musl", imgs["musl"], map[string]string{mutate.AnnotationLibc: "musl"}, "kubernetes.default")
	if got := pod.Annotations[mutate.AnnotationStatus]; got != mutate.StatusAudit {
		t.Errorf("status %q, want %q", got, mutate.StatusAudit)
	}
	if w := pod.Annotations[mutate.AnnotationWouldInject]; w == "" {
		t.Errorf("no %s annotation in audit mode", mutate.AnnotationWouldInject)
	}
	r := probeReport(t, e, pod, "kubernetes.default")
	if !equal(r.options, []string{kubeletOpt}) {
		t.Errorf("options %v in audit mode, want kubelet's alone", r.options)
	}
}

func equal(a, b []string) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}
