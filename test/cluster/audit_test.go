package cluster

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"strings"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/dns-tuner/dns-tuner/internal/audit"
	"github.com/dns-tuner/dns-tuner/internal/cli"
	"github.com/dns-tuner/dns-tuner/internal/libc"
)

// TestAuditRealCluster runs `dns-tuner audit` against the real cluster, as an operator would
// before turning enforce on: the node's real kernel with kube-proxy in iptables mode and one
// CoreDNS endpoint is not exposed to the race, and each workload's containers get their libc
// from registry inspection (the wrapper image's init process does not decide).
func TestAuditRealCluster(t *testing.T) {
	e := cluster(t)
	imgs := probeImages(t, e)
	ns := namespace(t, e, "audit", "")
	deployment(t, e, ns, "web", imgs["glibc"], nil, "kubernetes.default")
	deployment(t, e, ns, "tini", imgs["wrapper"], nil, "kubernetes.default")

	var out, errOut bytes.Buffer
	args := []string{"--kubeconfig", os.Getenv("KUBECONFIG"), "--namespace", ns, "--json", "--insecure-registry", e.registry}
	if err := cli.Execute(context.Background(), &cli.Audit{}, args, &out, &errOut); err != nil {
		t.Fatalf("audit %v: %v\n%s", args, err, errOut.String())
	}
	var r audit.Report
	if err := json.Unmarshal(out.Bytes(), &r); err != nil {
		t.Fatalf("audit --json: %v\n%s", err, out.String())
	}

	var uts unix.Utsname
	if err := unix.Uname(&uts); err != nil {
		t.Fatal(err)
	}
	kernel := unix.ByteSliceToString(uts.Release[:])
	if len(r.Nodes) != 1 || r.Nodes[0].Kernel != kernel || r.Nodes[0].Exposed {
		t.Errorf("nodes %+v, want the one node on %s, not exposed", r.Nodes, kernel)
	}
	if r.DNS.KubeProxy != "iptables" || r.DNS.Endpoints != 1 {
		t.Errorf("DNS path %+v, want kube-proxy iptables and 1 endpoint", r.DNS)
	}
	want := map[string]libc.Libc{"web": libc.GLibc, "tini": libc.Musl}
	for _, w := range r.Workloads {
		if w.Kind != "Deployment" || len(w.Containers) != 1 {
			t.Errorf("workload %s/%s %s with %d containers, want one Deployment container", w.Namespace, w.Name, w.Kind, len(w.Containers))
			continue
		}
		c := w.Containers[0]
		if c.Libc != want[w.Name] {
			t.Errorf("%s: libc %s (%s), want %s", w.Name, c.Libc, c.Evidence, want[w.Name])
		}
		if w.Name == "tini" && !strings.Contains(c.Evidence, "/tini") {
			t.Errorf("tini: evidence %q does not show the wrapper chain", c.Evidence)
		}
		delete(want, w.Name)
	}
	if len(want) > 0 {
		t.Errorf("workloads missing from the report: %v\n%s", want, out.String())
	}
	t.Logf("audit: %d nodes (%d exposed), %d workloads", r.Summary.Nodes, r.Summary.ExposedNodes, r.Summary.Workloads)
}
