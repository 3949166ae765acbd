package cluster

import (
	"fmt"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
)

func TestParseProxyConfig(t *testing.T) {
	tests := []struct {
		conf string
		want ProxyMode
		err  bool
	}{
		{"apiVersion: kubeproxy.config.k8s.io/v1alpha1\nkind: KubeProxyConfiguration\nmode: \"\"\n", ProxyIPTables, false},
		{"kind: KubeProxyConfiguration\n", ProxyIPTables, false}, // no mode: the Linux default
		{"mode: iptables\n", ProxyIPTables, false},
		{"mode: nftables\n", ProxyNFTables, false},
		{"mode: ipvs\nipvs:\n  scheduler: rr\n", ProxyIPVS, false},
		{"mode: IPVS\n", ProxyIPVS, false},
		{"mode: kernelspace\n", ProxyUnknown, true}, // Windows
		{"mode: [\n", ProxyUnknown, true},
	}
	for _, tt := range tests {
		got, err := ParseProxyConfig(tt.conf)
		if got != tt.want || (err != nil) != tt.err {
			t.Errorf("ParseProxyConfig(%q) = %s, %v; want %s, error %t", tt.conf, got, err, tt.want, tt.err)
		}
	}
}

func nodes(kernels ...string) []Node {
	var out []Node
	for i, k := range kernels {
		out = append(out, Node{Name: fmt.Sprintf("n%d", i), Labels: map[string]string{"pool": poolOf(k)}, Kernel: ParseKernel(k)})
	}
	return out
}

// poolOf puts new kernels in pool "new" and the rest in "old", for placement tests.
func poolOf(k string) string {
	if ParseKernel(k).DifferentBackends == Fixed {
		return "new"
	}
	return "old"
}

// TestNodeExposure: kernel × kube-proxy mode × number of DNS endpoints.
func TestNodeExposure(t *testing.T) {
	tests := []struct {
		kernel    string
		proxy     ProxyMode
		endpoints int
		exposed   bool
		unknown   bool
	}{
		{"6.1.0-25-cloud-amd64", ProxyIPTables, 1, false, false},
		{"6.1.0-25-cloud-amd64", ProxyNFTables, 1, false, false},
		// several endpoints: 5.6 saves a raced query only for answers within 1 s (hack/dnslab)
		{"6.1.0-25-cloud-amd64", ProxyIPTables, 2, true, false},
		{"6.1.0-25-cloud-amd64", ProxyNFTables, 2, true, false},
		{"6.1.0-25-cloud-amd64", ProxyIPVS, 2, true, false}, // IPVS: the kernel fix does not count
		{"6.1.0-25-cloud-amd64", ProxyUnknown, 2, true, true},
		{"6.1.0-25-cloud-amd64", "", 2, true, true},
		{"5.4.0-1103-aws", ProxyIPTables, 1, false, false}, // single backend: 5.0's fix is enough
		{"5.4.0-1103-aws", ProxyIPTables, 2, true, false},
		{"5.4.0-1103-aws", ProxyIPTables, -1, true, false}, // endpoints unknown: the 5.6 fix is needed
		{"5.4.0-1103-aws", ProxyIPTables, 0, true, false},
		{"4.18.0-553.el8_10.x86_64", ProxyIPTables, 1, true, true},
		{"4.14.106+", ProxyIPTables, 1, false, false},
		{"4.14.105+", ProxyIPTables, 1, true, false},
		{"5.10.226-214.880.amzn2.x86_64", ProxyNFTables, 3, true, false},
		{"5.10.226-214.880.amzn2.x86_64", ProxyNFTables, 1, false, false},
		{"", ProxyIPTables, 2, true, true},
		{"garbage", ProxyIPTables, 1, true, true},
	}
	for _, tt := range tests {
		t.Run(fmt.Sprintf("%s/%s/%d", tt.kernel, tt.proxy, tt.endpoints), func(t *testing.T) {
			f := &Snapshot{Synced: true, Proxy: tt.proxy, DNSEndpoints: tt.endpoints}
			n := Node{Name: "n", Kernel: ParseKernel(tt.kernel)}
			if tt.kernel == "" {
				n.Kernel = Kernel{}
			}
			got := f.NodeExposure(&n)
			if got.Exposed != tt.exposed || got.Unknown != tt.unknown {
				t.Errorf("exposed=%t unknown=%t, want %t %t (%s)", got.Exposed, got.Unknown, tt.exposed, tt.unknown, got.Why)
			}
			if got.Why == "" {
				t.Error("no reason")
			}
		})
	}
}

func inPool(pool string) Placement {
	return Placement{NodeSelector: map[string]string{"pool": pool}}
}

func affinity(op corev1.NodeSelectorOperator, values ...string) Placement {
	return Placement{NodeAffinity: &corev1.NodeAffinity{RequiredDuringSchedulingIgnoredDuringExecution: &corev1.NodeSelector{
		NodeSelectorTerms: []corev1.NodeSelectorTerm{{MatchExpressions: []corev1.NodeSelectorRequirement{{Key: "pool", Operator: op, Values: values}}}},
	}}}
}

// TestExposure: a pod confined to new-kernel nodes is not exposed; one that may land on an
// old kernel is, and the reason names the facts that decided.
func TestExposure(t *testing.T) {
	mixed := nodes("4.14.35", "4.14.35", "4.14.35") // before the 4.14.106 backport
	for i := 0; i < 37; i++ {
		mixed = append(mixed, Node{Name: fmt.Sprintf("new%d", i), Labels: map[string]string{"pool": "new"}, Kernel: ParseKernel("6.1.0-25-cloud-amd64")})
	}
	ipt := func(ns []Node, eps int) *Snapshot {
		return &Snapshot{Synced: true, Nodes: ns, Proxy: ProxyIPTables, ProxyWhy: "ConfigMap kube-system/kube-proxy", DNSEndpoints: eps}
	}
	tests := []struct {
		name      string
		facts     *Snapshot
		place     Placement
		exposed   bool
		nodes     int
		reasonHas string
	}{
		{"no facts", nil, Placement{}, true, 0, "no cluster facts"},
		{"not synced", &Snapshot{}, Placement{}, true, 0, "no cluster facts"},
		{"anywhere", ipt(mixed, 1), Placement{}, true, 40,
			"3 of 40 nodes run 4.14.35 with kube-proxy iptables and 1 DNS endpoint: exposed"},
		{"confined to new kernels", ipt(mixed, 1), inPool("new"), false, 37,
			"all 37 nodes the pod can land on run 6.1.0-25-cloud-amd64 with kube-proxy iptables and 1 DNS endpoint: not exposed"},
		{"confined to new kernels, several DNS endpoints", ipt(mixed, 2), inPool("new"), true, 37, "answer slower than 1 s"},
		{"affinity In new", ipt(mixed, 1), affinity(corev1.NodeSelectorOpIn, "new"), false, 37, "not exposed"},
		{"affinity NotIn old", ipt(mixed, 1), affinity(corev1.NodeSelectorOpNotIn, "old"), false, 37, "not exposed"},
		{"affinity In old", ipt(mixed, 1), affinity(corev1.NodeSelectorOpIn, "old"), true, 3, "3 of 3 nodes the pod can land on"},
		{"one endpoint: 5.4 is enough", ipt(nodes("5.4.0-1103-aws"), 1), Placement{}, false, 1, "1 DNS endpoint"},
		{"placement matches nothing", ipt(mixed, 2), inPool("gpu"), true, 0, "no known node matches"},
		{"no nodes", ipt(nil, 2), Placement{}, true, 0, "no node known"},
		{"ipvs", &Snapshot{Synced: true, Nodes: nodes("6.1.0-25-cloud-amd64"), Proxy: ProxyIPVS, DNSEndpoints: 2}, Placement{}, true, 1, "PR #122463"},
		{"no kube-proxy", &Snapshot{Synced: true, Nodes: nodes("6.1.0-25-cloud-amd64"), Proxy: ProxyUnknown, ProxyWhy: "no ConfigMap kube-system/kube-proxy", DNSEndpoints: 2}, Placement{}, true, 1, "kube-proxy mode unknown (no ConfigMap"},
		{"no kube-proxy ConfigMap, policy says nftables", &Snapshot{Synced: true, Nodes: nodes("6.1.0-25-cloud-amd64"), Proxy: ProxyUnknown, DNSEndpoints: 1},
			Placement{Proxy: ProxyNFTables}, false, 1, "with kube-proxy nftables"},
		{"detected iptables, policy says ipvs", ipt(mixed, 1), Placement{NodeSelector: map[string]string{"pool": "new"}, Proxy: ProxyIPVS}, true, 37, "PR #122463"},
		{"several old kernels", ipt(nodes("4.18.0-553.el8_10.x86_64", "5.4.0-1103-aws", "5.4.0-1103-aws"), 2), Placement{}, true, 3, "3 of 3 nodes run 5.4.0-1103-aws and 1 other kernels"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := tt.facts.Exposure(tt.place)
			if e.Exposed != tt.exposed || e.Nodes != tt.nodes {
				t.Errorf("exposed=%t nodes=%d, want %t %d (%s)", e.Exposed, e.Nodes, tt.exposed, tt.nodes, e.Reason)
			}
			if !strings.Contains(e.Reason, tt.reasonHas) {
				t.Errorf("reason %q does not say %q", e.Reason, tt.reasonHas)
			}
		})
	}
}

// The memo of an unconfined pod's exposure is per proxy mode: the policy's serviceProxy
// never answers for the detected mode, nor the other way round.
func TestExposureMemoPerProxy(t *testing.T) {
	s := &Snapshot{Synced: true, Proxy: ProxyIPTables, DNSEndpoints: 1, Nodes: nodes("6.1.0-25-cloud-amd64")}
	for i := 0; i < 2; i++ {
		if e := s.Exposure(Placement{}); e.Exposed {
			t.Fatalf("detected iptables: %s", e.Reason)
		}
		if e := s.Exposure(Placement{Proxy: ProxyIPVS}); !e.Exposed {
			t.Fatalf("policy ipvs: %s", e.Reason)
		}
	}
}
