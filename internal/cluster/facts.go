package cluster

import (
	"fmt"
	"sort"
	"strings"
	"sync"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/component-helpers/scheduling/corev1/nodeaffinity"
	"sigs.k8s.io/yaml"
)

// ProxyMode is how Service traffic reaches the DNS backends on a node.
type ProxyMode string

const (
	ProxyIPTables ProxyMode = "iptables"
	ProxyNFTables ProxyMode = "nftables"
	ProxyIPVS     ProxyMode = "ipvs"
	// ProxyUnknown: no kube-proxy ConfigMap (GKE's flags, a kube-proxy replacement such as
	// Cilium's) or a mode dns-tuner does not know.
	ProxyUnknown ProxyMode = "unknown"
)

// ParseProxyConfig reads kube-proxy's KubeProxyConfiguration (the config.conf key of the
// kube-proxy ConfigMap). An empty mode is iptables on Linux.
func ParseProxyConfig(conf string) (ProxyMode, error) {
	var c struct {
		Mode string `json:"mode"`
	}
	if err := yaml.Unmarshal([]byte(conf), &c); err != nil {
		return ProxyUnknown, fmt.Errorf("kube-proxy config: %w", err)
	}
	switch m := ProxyMode(strings.ToLower(strings.TrimSpace(c.Mode))); m {
	case "":
		return ProxyIPTables, nil
	case ProxyIPTables, ProxyNFTables, ProxyIPVS:
		return m, nil
	default:
		return ProxyUnknown, fmt.Errorf("kube-proxy mode %q not known", c.Mode)
	}
}

// Node is what dns-tuner keeps of a node: its name and labels (for the pod's placement) and
// its kernel.
type Node struct {
	Name   string
	Labels map[string]string
	Kernel Kernel
}

// NodeLocalDNS is what is known of NodeLocal DNSCache.
type NodeLocalDNS struct {
	// Known: the DaemonSet informer has synced; Running: a node-local-dns DaemonSet exists in
	// kube-system with ready pods.
	Known, Running bool
	Address        string // its -localip, when its args say
}

// Facts is what admission asks of the cluster: whether a node a pod can land on is exposed.
// *Snapshot and clusterwatch.Source implement it.
type Facts interface {
	Exposure(Placement) Exposure
}

// Snapshot is one consistent view of the cluster. The zero Snapshot is "nothing known": every
// node counts as exposed.
type Snapshot struct {
	// Synced: the informers have listed once; before that nothing is known.
	Synced bool
	Nodes  []Node
	Proxy  ProxyMode
	// ProxyWhy says where Proxy came from ("ConfigMap kube-system/kube-proxy").
	ProxyWhy string
	// DNSEndpoints is the number of ready endpoints behind the cluster DNS Service; -1 when
	// unknown.
	DNSEndpoints int
	NodeLocal    NodeLocalDNS
	// DNSServiceIP is the cluster DNS Service's ClusterIP; empty when unknown.
	DNSServiceIP string

	// memo holds the exposure of an unconfined pod per proxy mode: a Snapshot is not changed
	// once built, and most pods are not confined.
	mu   sync.Mutex
	memo map[ProxyMode]Exposure
}

// NodeExposure is one node's standing against the race, and why.
type NodeExposure struct {
	Exposed bool
	// Unknown: some fact was unknown and the node counts as exposed for it.
	Unknown bool
	Why     string
}

// Exposure of one node: kernel clash resolution is a netfilter conntrack fix, so it only
// counts with kube-proxy in iptables or nftables mode; with one DNS endpoint the
// single-backend fix is enough; with two or more (or an unknown number) A and AAAA may be
// DNAT'd to different backends, and even the 5.6 fix saves them only for answers within 1 s,
// so such nodes count as exposed on every kernel.
func (f *Snapshot) NodeExposure(n *Node) NodeExposure {
	return f.kernelExposure(&n.Kernel, f.Proxy, f.ProxyWhy)
}

// kernelExposure is NodeExposure for a kernel under a service proxy mode: nothing else of a
// node matters, so it is computed once per distinct kernel.
func (f *Snapshot) kernelExposure(k *Kernel, proxy ProxyMode, proxyWhy string) NodeExposure {
	switch proxy {
	case ProxyIPVS:
		return NodeExposure{Exposed: true, Why: "kube-proxy ipvs: its own connection table, 5 s stalls reported on new kernels (kubernetes PR #122463)"}
	case ProxyIPTables, ProxyNFTables:
	default:
		return NodeExposure{Exposed: true, Unknown: true, Why: "kube-proxy mode unknown (" + orWord(proxyWhy, "no facts") + ")"}
	}
	if k.Raw == "" {
		return NodeExposure{Exposed: true, Unknown: true, Why: "kernel not reported"}
	}
	fix := k.DifferentBackends
	if f.DNSEndpoints == 1 {
		fix = k.SingleBackend
	} else if fix == Fixed {
		// 5.6 inserts the clashing entry of a query DNAT'd to the other backend with a 1 s
		// timeout (6a757c07e51f): an answer slower than that finds no entry and is lost, and
		// the lookup waits its timeout. hack/dnslab measures it on this project's kernel.
		return NodeExposure{Exposed: true, Why: k.Reason + "; with several DNS endpoints an answer slower than 1 s to a raced query is still lost"}
	}
	switch fix {
	case Fixed:
		return NodeExposure{Why: k.Reason}
	case NotFixed:
		return NodeExposure{Exposed: true, Why: k.Reason}
	}
	return NodeExposure{Exposed: true, Unknown: true, Why: k.Reason}
}

// Placement is what confines a pod to some nodes: its nodeSelector and required node
// affinity (what the scheduler must honour). Taints are left out: a pod counts as able to
// land on a node it may not tolerate, which can only over-count exposure.
type Placement struct {
	NodeSelector map[string]string
	NodeAffinity *corev1.NodeAffinity
	// Proxy, when set, is the policy's serviceProxy: it replaces the detected mode.
	Proxy ProxyMode
}

// Exposure is what the facts say about the nodes a pod can land on.
type Exposure struct {
	// Known: facts were available. Without them the pod counts as exposed.
	Known   bool `json:"known"`
	Exposed bool `json:"exposed"`
	// ExposedNodes of Nodes the pod can land on are exposed.
	ExposedNodes int    `json:"exposedNodes"`
	Nodes        int    `json:"nodes"`
	Reason       string `json:"reason"`
	// NodeLocal and DNSServiceIP are the cluster's DNS facts the NodeLocal DNSCache forms
	// need; they ride along so admission keeps asking Facts one question.
	NodeLocal    NodeLocalDNS `json:"-"`
	DNSServiceIP string       `json:"-"`
}

// Unknown is the exposure without cluster facts: exposed.
var Unknown = Exposure{Exposed: true, Reason: "no cluster facts: counted as exposed"}

// Exposure says whether a node the pod can land on is exposed. No kernel known counts as
// exposed, and so does a placement no known node matches (the pod waits for a node dns-tuner
// has not seen). A nil Snapshot knows nothing.
func (f *Snapshot) Exposure(p Placement) Exposure {
	if f == nil || !f.Synced {
		return Unknown
	}
	proxy, proxyWhy := f.Proxy, f.ProxyWhy
	if p.Proxy != "" {
		proxy, proxyWhy = p.Proxy, "policy serviceProxy"
	}
	match := matcher(p)
	if match == nil { // most pods: the same answer for every admission of this snapshot
		f.mu.Lock()
		defer f.mu.Unlock()
		if e, ok := f.memo[proxy]; ok {
			return e
		}
		e := f.exposure(nil, proxy, proxyWhy)
		if f.memo == nil {
			f.memo = map[ProxyMode]Exposure{}
		}
		f.memo[proxy] = e
		return e
	}
	return f.exposure(match, proxy, proxyWhy)
}

func (f *Snapshot) exposure(match func(*Node) bool, proxy ProxyMode, proxyWhy string) Exposure {
	var exposed, safe []*group
	byKernel := map[string]*group{} // a cluster runs a handful of kernels
	total, nexp := 0, 0
	for i := range f.Nodes {
		n := &f.Nodes[i]
		if match != nil && !match(n) {
			continue
		}
		total++
		g := byKernel[n.Kernel.Raw]
		if g == nil {
			g = &group{kernel: n.Kernel.Raw, parsed: n.Kernel.Parsed, why: f.kernelExposure(&n.Kernel, proxy, proxyWhy)}
			byKernel[n.Kernel.Raw] = g
			if g.why.Exposed {
				exposed = append(exposed, g)
			} else {
				safe = append(safe, g)
			}
		}
		g.count++
		if g.why.Exposed {
			nexp++
		}
	}
	e := Exposure{Known: true, ExposedNodes: nexp, Nodes: total, NodeLocal: f.NodeLocal, DNSServiceIP: f.DNSServiceIP}
	where := "nodes"
	if match != nil {
		where = "nodes the pod can land on"
	}
	path := pathWords(proxy, f.DNSEndpoints)
	switch {
	case total == 0 && match != nil:
		e.Exposed = true
		e.Reason = fmt.Sprintf("no known node matches the pod's placement (%d nodes known): counted as exposed", len(f.Nodes))
	case total == 0:
		e.Exposed = true
		e.Reason = "no node known yet: counted as exposed"
	case nexp > 0:
		e.Exposed = true
		top := largest(exposed)
		e.Reason = fmt.Sprintf("%d of %d %s %s%s: exposed (%s)", nexp, total, where, runs(top.kernel, len(exposed)), path, top.why.Why)
	default:
		top := largest(safe)
		e.Reason = fmt.Sprintf("all %d %s %s%s: not exposed (%s)", total, where, runs(top.kernel, len(safe)), path, top.why.Why)
	}
	return e
}

// largest is the group with the most nodes; ties go to a kernel that parsed, then to the
// first in sort order, so the reason does not change with the order nodes were listed in.
func largest(gs []*group) *group {
	sort.Slice(gs, func(i, j int) bool {
		if gs[i].count != gs[j].count {
			return gs[i].count > gs[j].count
		}
		if gs[i].parsed != gs[j].parsed {
			return gs[i].parsed
		}
		return gs[i].kernel < gs[j].kernel
	})
	return gs[0]
}

type group struct {
	kernel string
	parsed bool
	count  int
	why    NodeExposure
}

// runs names the most common kernel of a group of nodes: "run 5.4.0-1103-aws" or
// "run 5.4.0-1103-aws and 2 other kernels".
func runs(kernel string, kernels int) string {
	s := "run " + Clip(orWord(kernel, "no reported kernel"), 64)
	if kernels > 1 {
		s += fmt.Sprintf(" and %d other kernels", kernels-1)
	}
	return s
}

// pathWords is the DNS path as the reason names it: " with kube-proxy iptables and 2 DNS
// endpoints".
func pathWords(proxy ProxyMode, endpoints int) string {
	eps := "an unknown number of DNS endpoints"
	switch {
	case endpoints == 1:
		eps = "1 DNS endpoint"
	case endpoints >= 0:
		eps = fmt.Sprintf("%d DNS endpoints", endpoints)
	}
	return fmt.Sprintf(" with kube-proxy %s and %s", orWord(string(proxy), string(ProxyUnknown)), eps)
}

// matcher is nil when the pod is not confined (every node).
func matcher(p Placement) func(*Node) bool {
	required := p.NodeAffinity != nil && p.NodeAffinity.RequiredDuringSchedulingIgnoredDuringExecution != nil
	if len(p.NodeSelector) == 0 && !required {
		return nil
	}
	if !required { // nodeSelector alone: plain label equality
		return func(n *Node) bool {
			for k, v := range p.NodeSelector {
				if got, ok := n.Labels[k]; !ok || got != v {
					return false
				}
			}
			return true
		}
	}
	pod := &corev1.Pod{Spec: corev1.PodSpec{NodeSelector: p.NodeSelector, Affinity: &corev1.Affinity{NodeAffinity: p.NodeAffinity}}}
	req := nodeaffinity.GetRequiredNodeAffinity(pod)
	scratch := &corev1.Node{} // Match reads name and labels only
	return func(n *Node) bool {
		scratch.Name, scratch.Labels = n.Name, n.Labels
		ok, err := req.Match(scratch)
		// A selector the scheduler cannot parse matches nothing there either; here it counts
		// as matching so the pod is not thought confined.
		return ok || err != nil
	}
}

func orWord(s, alt string) string {
	if s == "" {
		return alt
	}
	return s
}
