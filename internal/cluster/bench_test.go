package cluster

import (
	"fmt"
	"testing"
)

// An admission asks for the exposure of the nodes a pod can land on; clusters have
// thousands of nodes.
func BenchmarkExposure5000Nodes(b *testing.B) {
	kernels := []string{"5.4.0-1103-aws", "6.1.0-25-cloud-amd64", "5.10.226-214.880.amzn2.x86_64", "4.18.0-553.el8_10.x86_64"}
	s := &Snapshot{Synced: true, Proxy: ProxyIPTables, DNSEndpoints: 2}
	for i := range 5000 {
		k := kernels[i%len(kernels)]
		s.Nodes = append(s.Nodes, Node{Name: fmt.Sprintf("n%d", i), Labels: map[string]string{"pool": poolOf(k), "zone": fmt.Sprint(i % 3)}, Kernel: ParseKernel(k)})
	}
	for _, bc := range []struct {
		name string
		p    Placement
	}{{"anywhere", Placement{}}, {"nodeSelector", Placement{NodeSelector: map[string]string{"pool": "new"}}}} {
		b.Run(bc.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				_ = s.Exposure(bc.p)
			}
		})
	}
}
