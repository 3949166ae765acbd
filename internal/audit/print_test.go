package audit

import (
	"bytes"
	"context"
	"flag"
	"os"
	"path/filepath"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"

	"github.com/dns-tuner/dns-tuner/internal/cluster"
	"github.com/dns-tuner/dns-tuner/internal/libc"
	"github.com/dns-tuner/dns-tuner/internal/policy"
	"github.com/dns-tuner/dns-tuner/internal/resolvconf"
)

var update = flag.Bool("update", false, "rewrite the golden files")

// TestPrintGolden: the table and the JSON an operator (or a script) reads, for a cluster of
// mixed kernels with NodeLocal DNSCache.
func TestPrintGolden(t *testing.T) {
	facts := snapshot(2, "5.4.0-1103-aws", "6.1.0-25-cloud-amd64", "")
	facts.NodeLocal = cluster.NodeLocalDNS{Known: true, Running: true, Address: "169.254.20.10"}
	pods := []corev1.Pod{
		pod("shop", "web-a", owned("ReplicaSet", "web-1"), libcOf("glibc")),
		pod("shop", "web-b", owned("ReplicaSet", "web-1"), libcOf("glibc")),
		pod("shop", "mixed", images("a:1", "b:1"), libcOf("app=glibc,sidecar=musl")),
		pod("shop", "unknown", images("reg.example/what:1")),
	}
	parents := Parents{ParentKey("ReplicaSet", "shop", "web-1"): {Kind: "Deployment", Name: "web"}}
	o := Options{Policy: policy.Default(), Facts: facts, Detector: libc.UnknownDetector{}, Timeout: time.Second,
		Namespaces: map[string]map[string]string{"shop": {"dns-tuner.io/mode": "audit"}},
		DNS:        resolvconf.ClusterDNS{Nameservers: []string{"10.96.0.10"}, ClusterDomain: "cluster.local"}}
	r, err := Build(context.Background(), o, pods, parents)
	if err != nil {
		t.Fatal(err)
	}
	var text, js bytes.Buffer
	if err := PrintText(&text, r); err != nil {
		t.Fatal(err)
	}
	if err := PrintJSON(&js, r); err != nil {
		t.Fatal(err)
	}
	golden(t, "report.txt", text.Bytes())
	golden(t, "report.json", js.Bytes())
}

func golden(t *testing.T, name string, got []byte) {
	t.Helper()
	path := filepath.Join("testdata", name)
	if *update {
		if err := os.MkdirAll("testdata", 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, got, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, want) {
		t.Errorf("%s differs (go test -update to accept):\n%s", name, got)
	}
}
