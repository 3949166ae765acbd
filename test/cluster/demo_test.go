package cluster

import (
	"context"
	"fmt"
	"os"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"

	"github.com/dns-tuner/dns-tuner/internal/mutate"
)

// TestDemo is `make demo-cluster`'s workload, not a test: with CLUSTER_DEMO=1 it deploys a
// glibc and a musl probe into an enforce namespace and the glibc probe into an unlabelled
// one, then prints every few seconds what each pod's resolv.conf says and how long its
// latest lookups took, until interrupted.
func TestDemo(t *testing.T) {
	if os.Getenv("CLUSTER_DEMO") != "1" {
		t.Skip("CLUSTER_DEMO=1 runs the demo (make demo-cluster)")
	}
	e := cluster(t)
	imgs := probeImages(t, e)
	enforce, plain := namespace(t, e, "demo-enforce", "enforce"), namespace(t, e, "demo-plain", "")
	names := []string{"kubernetes.default", "kube-dns.kube-system.svc.cluster.local"}
	type row struct {
		label string
		pod   *corev1.Pod
	}
	rows := []row{
		{"glibc (enforce)", deployment(t, e, enforce, "glibc", imgs["glibc"], map[string]string{mutate.AnnotationLibc: "glibc"}, names...)},
		{"musl (enforce)", deployment(t, e, enforce, "musl", imgs["musl"], map[string]string{mutate.AnnotationLibc: "musl"}, names...)},
		{"glibc (unlabelled)", deployment(t, e, plain, "glibc", imgs["glibc"], nil, names...)},
	}
	for {
		fmt.Printf("\n%s  kubectl: hack/cluster/cluster.sh kubectl get pods -A\n", time.Now().Format(time.TimeOnly))
		for _, r := range rows {
			raw, err := e.cs.CoreV1().Pods(r.pod.Namespace).GetLogs(r.pod.Name, &corev1.PodLogOptions{Container: "app"}).DoRaw(context.Background())
			if err != nil {
				fmt.Printf("%-20s %s/%s: %v\n", r.label, r.pod.Namespace, r.pod.Name, err)
				continue
			}
			rep, _ := parseReport(string(raw))
			fmt.Printf("%-20s %s/%s\n  status=%q injected=%q\n  resolv.conf: nameserver %s; search %s; options %s\n",
				r.label, r.pod.Namespace, r.pod.Name, r.pod.Annotations[mutate.AnnotationStatus], r.pod.Annotations[mutate.AnnotationInjected],
				strings.Join(rep.nameservers, " "), strings.Join(rep.searches, " "), strings.Join(rep.options, " "))
			for _, n := range names {
				if ls := rep.lookups[n]; len(ls) > 0 {
					fmt.Printf("  %s\n", ls[len(ls)-1].line)
				}
			}
		}
		time.Sleep(5 * time.Second)
	}
}
