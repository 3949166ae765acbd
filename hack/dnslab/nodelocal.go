package main

import (
	"fmt"
	"time"

	"github.com/dns-tuner/dns-tuner/hack/dnslab/raceserver"
	k8scluster "github.com/dns-tuner/dns-tuner/internal/cluster"
	"github.com/dns-tuner/dns-tuner/internal/libc"
	"github.com/dns-tuner/dns-tuner/internal/mutate"
	"github.com/dns-tuner/dns-tuner/internal/policy"
)

// The NodeLocal DNSCache scenario: the race model stands for kube-dns behind conntrack, and a
// server that answers everything (Plain) for the cache, whose traffic skips conntrack. The
// cache down is an address nothing listens on.
const (
	// CacheAddr is the first loopback address tried for the cache.
	CacheAddr = "127.0.20.10"
	// DownCacheAddr has nothing listening: a node whose cache is down.
	DownCacheAddr = "127.0.29.29"
)

// Targets of the NodeLocal DNSCache forms (issue 11).
const (
	NodeLocalTarget     = 20 * time.Millisecond   // musl appended, glibc None form: the cache answers
	NodeLocalDownGlibc  = 1100 * time.Millisecond // the cache down: one 1 s timeout at most
	NodeLocalDownTarget = 20 * time.Millisecond   // the cache down, musl: the target
)

// NodeLocalLab is the model lab with a cache beside the race model.
type NodeLocalLab struct {
	*Lab
	Cache *raceserver.Server
}

// NewNodeLocalLab starts the cache next to l's race model (which stays kube-dns). Measures
// through it count the queries both received.
func NewNodeLocalLab(l *Lab) (*NodeLocalLab, error) {
	if l.Backend != Model || len(l.Servers) != 1 {
		return nil, fmt.Errorf("the NodeLocal DNSCache scenario runs on the %s backend", Model)
	}
	cfg := raceserver.Config{Addr: CacheAddr, Plain: true}
	zone(&cfg)
	cache, err := raceserver.Start(cfg)
	if err != nil {
		return nil, fmt.Errorf("starting the cache: %w", err)
	}
	nl := &Lab{Backend: Model, Servers: []*raceserver.Server{l.Servers[0], cache}, Probes: l.Probes, Cluster: l.Cluster, where: l.where}
	nl.tag.Store(1 << 40) // the servers count per tag: never reuse the parent lab's
	return &NodeLocalLab{Lab: nl, Cache: cache}, nil
}

// KubeDNSNotRacing is a lab whose kube-dns is the cache's server (it does not race): a node
// where the path to kube-dns is fine.
func (n *NodeLocalLab) KubeDNSNotRacing() *Lab {
	l := &Lab{Backend: Model, Servers: []*raceserver.Server{n.Cache}, Probes: n.Probes, Cluster: cluster(n.Cache.IP()), where: n.where}
	l.tag.Store(2 << 40)
	return l
}

// Close stops the cache (the race model belongs to the lab it came from).
func (n *NodeLocalLab) Close() { n.Cache.Close() }

// NodeLocalProfile is the sample pod after dns-tuner admitted it in enforce mode with its
// container detected as l, under a policy with nodeLocalDNS on at cacheIP (dnsPolicyNone
// lists l when none) and the race model's address as the cluster DNS: the decision
// (mutate.DecideFor) applied through the webhook's JSON patch.
func NodeLocalProfile(base *policy.Policy, l libc.Libc, kubeDNS, cacheIP string, none bool) (Profile, error) {
	p := *base
	p.NodeLocalDNS = policy.NodeLocalDNS{Mode: policy.NodeLocalOn, Address: cacheIP}
	if none {
		p.NodeLocalDNS.DNSPolicyNone = []libc.Libc{l}
	}
	p.ClusterDNS = kubeDNS
	pod := SamplePod()
	view, err := mutate.PodFromCore(pod)
	if err != nil {
		return Profile{}, err
	}
	md := mutate.ModeDecision{Mode: policy.Enforce, Reason: "dnslab"}
	plan := mutate.DecideFor(&p, view, md, []mutate.Container{{Name: "app", Verdict: libc.Verdict{Libc: l, Source: libc.SourceAnnotation}}}, k8scluster.Unknown)
	form := plan.NodeLocal.Form
	if form == "" {
		return Profile{}, fmt.Errorf("%s: no NodeLocal DNSCache form (%s)", l, plan.NodeLocal.Why)
	}
	patched, err := applyPatch(pod, mutate.Patch(view, plan))
	if err != nil {
		return Profile{}, fmt.Errorf("applying the %s patch: %w", l, err)
	}
	return Profile{Name: fmt.Sprintf("dns-tuner %s, node-local %s", l, form), Pod: patched}, nil
}
