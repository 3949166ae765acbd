package cluster

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/dns-tuner/dns-tuner/internal/mutate"
)

// TestGoAndMixedPods: a Go (pure resolver) pod gets nothing (Go's resolver has no race to
// fix) and keeps kubelet's options; a pod with a glibc app and a musl sidecar gets the union
// values bounded for both libcs (attempts:3: glibc at most 6 s per name, musl resending every
// 667 ms), no race fix on this kernel, and both containers read them.
func TestGoAndMixedPods(t *testing.T) {
	e := cluster(t)
	imgs := probeImages(t, e)
	ns := namespace(t, e, "mixed", "enforce")
	const name = "kubernetes.default"

	gopod := deployment(t, e, ns, "go", imgs["go"], map[string]string{mutate.AnnotationLibc: "go"}, name)
	r := probeReport(t, e, gopod, name)
	if !equal(r.options, expectedOptions(gopod)) || !equal(r.options, []string{kubeletOpt}) {
		t.Errorf("go pod: options %v, annotations promise %v, want kubelet's alone", r.options, expectedOptions(gopod))
	}
	if l := r.lookups[name][0]; !l.ok {
		t.Errorf("go lookup: %s", l.line)
	}

	mixed := deploymentOf(t, e, ns, "mixed", map[string]string{mutate.AnnotationLibc: "app=glibc,sidecar=musl"},
		probe("app", imgs["glibc"], 1000, name), probe("sidecar", imgs["musl"], 1000, name))
	want := []string{"attempts:3", "ndots:5", "timeout:2"}
	if got := expectedOptions(mixed); !equal(got, want) {
		t.Errorf("mixed pod annotations promise %v, want %v", got, want)
	}
	for _, c := range []string{"app", "sidecar"} {
		r := probeReportOf(t, e, mixed, c, name)
		if !equal(r.options, expectedOptions(mixed)) {
			t.Errorf("mixed pod, container %s: options %v, annotations promise %v", c, r.options, expectedOptions(mixed))
		}
		if l := r.lookups[name][0]; !l.ok {
			t.Errorf("mixed pod, container %s: %s", c, l.line)
		}
	}
}

// helmUpgrade runs `helm upgrade --reuse-values --wait` of the release with extra --set args.
func helmUpgrade(t *testing.T, sets ...string) {
	t.Helper()
	helm, chart := os.Getenv("HELM"), os.Getenv("CHART")
	if helm == "" || chart == "" {
		t.Skip("HELM and CHART unset (set by hack/cluster/e2e.sh)")
	}
	args := []string{"upgrade", "dns-tuner", chart, "-n", releaseNS(), "--reuse-values", "--wait", "--timeout", "3m"}
	for _, s := range sets {
		args = append(args, "--set", s)
	}
	if out, err := exec.Command(helm, args...).CombinedOutput(); err != nil {
		t.Fatalf("helm %s: %v\n%s", strings.Join(args, " "), err, out)
	}
}

// TestInspectionVerdicts: with inspection on and the cluster's registry listed as insecure,
// dns-tuner reads each image from the registry kubelet pulls it from and tunes glibc, musl and
// Go pods with no annotation; the options the containers then read match.
func TestInspectionVerdicts(t *testing.T) {
	e := cluster(t)
	imgs := probeImages(t, e)
	helmUpgrade(t, "policy.inspection.enabled=true", "policy.inspection.insecureRegistries={"+e.registry+"}")
	t.Cleanup(func() { helmUpgrade(t, "policy.inspection.enabled=false") })
	ns := namespace(t, e, "inspect", "enforce")
	const name = "kubernetes.default"
	want := map[string]string{"glibc": "glibc", "musl": "musl", "go": "go", "wrapper": "musl"}
	for _, libc := range []string{"glibc", "musl", "go", "wrapper"} {
		t.Run(libc, func(t *testing.T) {
			// the first admission may finish the inspection in the background (2 s budget on a
			// busy machine): warm the cache with dry runs first
			var verdict string
			poll(t, 60*time.Second, "a verdict for "+imgs[libc], func() bool {
				p := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{GenerateName: "dry-", Namespace: ns},
					Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "app", Image: imgs[libc]}}}}
				got, err := e.cs.CoreV1().Pods(ns).Create(context.Background(), p, metav1.CreateOptions{DryRun: []string{metav1.DryRunAll}})
				if err != nil {
					return false
				}
				verdict = got.Annotations[mutate.AnnotationDetectedLibc]
				return verdict != "" && !strings.Contains(verdict, "unknown")
			})
			if verdict != "app="+want[libc] {
				t.Errorf("detected-libc %q, want app=%s", verdict, want[libc])
			}
			pod := deployment(t, e, ns, libc, imgs[libc], nil, name)
			r := probeReport(t, e, pod, name)
			if !equal(r.options, expectedOptions(pod)) {
				t.Errorf("options %v, annotations promise %v", r.options, expectedOptions(pod))
			}
			t.Logf("%s: detected %s, resolv.conf options %v", libc, pod.Annotations[mutate.AnnotationDetectedLibc], r.options)
		})
	}
}

// TestDNSFaults measures, per libc, with and without dns-tuner's profile, what pods resolving
// in a loop see while CoreDNS is restarted (`rollout restart`) and while it is paused for 1 s
// (SIGSTOP). It logs the measurement and requires only that every pod resolves again after
// each fault; this kernel resolves the conntrack insert race itself, so the lab's race model
// (hack/dnslab) is what gates the profiles.
func TestDNSFaults(t *testing.T) {
	e := cluster(t)
	imgs := probeImages(t, e)
	tuned, plain := namespace(t, e, "faults", "enforce"), namespace(t, e, "faults-plain", "")
	const name = "kubernetes.default"
	type subject struct {
		label string
		pod   *corev1.Pod
	}
	var subjects []subject
	for _, libc := range []string{"glibc", "musl"} {
		ann := map[string]string{mutate.AnnotationLibc: libc}
		subjects = append(subjects,
			subject{libc + " profile", deploymentOf(t, e, tuned, libc, ann, probe("app", imgs[libc], 50, name))},
			subject{libc + " default", deploymentOf(t, e, plain, libc, ann, probe("app", imgs[libc], 50, name))})
	}
	for _, s := range subjects {
		probeReport(t, e, s.pod, name)
	}

	faults := []struct {
		name   string
		inject func(t *testing.T)
	}{
		{"coredns rollout restart", func(t *testing.T) {
			out, err := exec.Command(os.Getenv("CLUSTER_BIN")+"/kubectl", "-n", "kube-system", "rollout", "restart", "deployment/coredns").CombinedOutput()
			if err != nil {
				t.Fatalf("rollout restart: %v\n%s", err, out)
			}
			out, err = exec.Command(os.Getenv("CLUSTER_BIN")+"/kubectl", "-n", "kube-system", "rollout", "status", "deployment/coredns", "--timeout=120s").CombinedOutput()
			if err != nil {
				t.Fatalf("rollout status: %v\n%s", err, out)
			}
		}},
		{"coredns paused 1s", func(t *testing.T) {
			pid := corednsPID(t)
			if err := exec.Command("kill", "-STOP", pid).Run(); err != nil {
				t.Fatal(err)
			}
			time.Sleep(time.Second)
			if err := exec.Command("kill", "-CONT", pid).Run(); err != nil {
				t.Fatal(err)
			}
		}},
	}
	for _, f := range faults {
		t.Run(strings.ReplaceAll(f.name, " ", "_"), func(t *testing.T) {
			before := map[string]int{}
			for _, s := range subjects {
				before[s.label] = len(lookupsOf(t, e, s.pod, name))
			}
			start := time.Now()
			f.inject(t)
			time.Sleep(7 * time.Second) // past the fault and CoreDNS's 5 s lameduck
			t.Logf("%s (fault window %s):", f.name, time.Since(start).Round(100*time.Millisecond))
			t.Logf("  %-14s %8s %6s %10s %10s %10s", "pod", "lookups", "failed", "p50", "p99", "max")
			for _, s := range subjects {
				ls := lookupsOf(t, e, s.pod, name)[before[s.label]:]
				var ms []float64
				failed, firstFail := 0, ""
				for _, l := range ls {
					v, _ := strconv.ParseFloat(l.ms, 64)
					ms = append(ms, v)
					if !l.ok {
						if failed++; firstFail == "" {
							firstFail = "; first failure: " + l.line
						}
					}
				}
				sort.Float64s(ms)
				q := func(p float64) string {
					if len(ms) == 0 {
						return "-"
					}
					return fmt.Sprintf("%.1fms", ms[int(p*float64(len(ms)-1))])
				}
				t.Logf("  %-14s %8d %6d %10s %10s %10s%s", s.label, len(ls), failed, q(0.5), q(0.99), q(1), firstFail)
				if len(ls) == 0 || !ls[len(ls)-1].ok {
					t.Errorf("%s: not resolving after %s", s.label, f.name)
				}
			}
		})
	}
}

func lookupsOf(t *testing.T, e *env, pod *corev1.Pod, name string) []lookup {
	t.Helper()
	raw, err := e.cs.CoreV1().Pods(pod.Namespace).GetLogs(pod.Name, &corev1.PodLogOptions{Container: "app"}).DoRaw(context.Background())
	if err != nil {
		t.Fatalf("logs of %s: %v", pod.Name, err)
	}
	r, _ := parseReport(string(raw))
	return r.lookups[name]
}

// corednsPID is the host PID of the running CoreDNS container, through crictl.
func corednsPID(t *testing.T) string {
	t.Helper()
	crictl := []string{"--runtime-endpoint", "unix://" + os.Getenv("CLUSTER_STATE") + "/containerd/containerd.sock"}
	id, err := exec.Command(os.Getenv("CLUSTER_BIN")+"/crictl", append(crictl, "ps", "-q", "--name", "coredns", "--state", "running")...).Output()
	if err != nil || len(strings.Fields(string(id))) == 0 {
		t.Fatalf("crictl ps coredns: %v %q", err, id)
	}
	pid, err := exec.Command(os.Getenv("CLUSTER_BIN")+"/crictl", append(crictl, "inspect", "-o", "go-template", "--template", "{{.info.pid}}", strings.Fields(string(id))[0])...).Output()
	if err != nil {
		t.Fatalf("crictl inspect: %v", err)
	}
	return strings.TrimSpace(string(pid))
}
