package mutate

import (
	"fmt"
	"slices"
	"strings"

	corev1 "k8s.io/api/core/v1"

	"github.com/dns-tuner/dns-tuner/internal/cluster"
	"github.com/dns-tuner/dns-tuner/internal/libc"
	"github.com/dns-tuner/dns-tuner/internal/policy"
)

// AnnotationNodeLocal says what dns-tuner did (or, in audit, would do) with NodeLocal
// DNSCache, and why.
const AnnotationNodeLocal = Prefix + "node-local-dns"

// NodeLocal forms.
const (
	// NodeLocalAppend keeps dnsPolicy ClusterFirst and appends the cache as a nameserver
	// (kubelet writes a pod's nameservers after the cluster DNS): musl asks every nameserver
	// in parallel and takes the first answer, so the cache's answer wins even when the race
	// drops the kube-dns one, and kube-dns still answers when the cache is down.
	NodeLocalAppend = "append"
	// NodeLocalNone sets dnsPolicy None with the cache first, then the cluster DNS, kubelet's
	// search list, ndots and a short timeout: for libcs that ask nameservers in order.
	NodeLocalNone = "none"
)

// kubeletNdots is the ndots kubelet writes for ClusterFirst pods; the None form keeps it.
const kubeletNdots = "5"

// noneTimeout is the timeout of the None form: a node whose cache is down (not listening
// answers with ICMP, which glibc takes at once; a silent one costs the timeout) falls
// through to the cluster DNS within a second.
const noneTimeout = 1

// NodeLocal is the NodeLocal DNSCache decision for one pod.
type NodeLocal struct {
	// Form is NodeLocalAppend, NodeLocalNone or empty (nothing to do).
	Form    string `json:"form,omitempty"`
	Address string `json:"address,omitempty"`
	// Why says what was (or would be) done and why, or why nothing was; empty when the
	// policy's nodeLocalDNS is off.
	Why string `json:"why,omitempty"`
	// Nameservers are added to spec.dnsConfig.nameservers: appended (append) or in front of
	// the pod's own (none). Searches go in front of the pod's own (none only).
	Nameservers []string `json:"nameservers,omitempty"`
	Searches    []string `json:"searches,omitempty"`
	// Libcs are the pod's libcs the form is for, for the words.
	Libcs []libc.Libc `json:"libcs,omitempty"`
}

// nodeLocalAddress resolves the policy's nodeLocalDNS mode against the facts: the cache's
// address when the mode is on, else "" and why not.
func nodeLocalAddress(p *policy.Policy, exp cluster.Exposure) (string, string) {
	n := p.NodeLocalDNS
	switch n.Mode {
	case policy.NodeLocalOn:
		return firstOf(n.Address, exp.NodeLocal.Address, policy.DefaultNodeLocalAddress), ""
	case policy.NodeLocalAuto:
		switch {
		case !exp.Known || !exp.NodeLocal.Known:
			return "", "nodeLocalDNS auto: no cluster facts about node-local-dns, so off"
		case !exp.NodeLocal.Running:
			return "", "nodeLocalDNS auto: no running node-local-dns DaemonSet, so off"
		}
		return firstOf(n.Address, exp.NodeLocal.Address, policy.DefaultNodeLocalAddress), ""
	}
	return "", ""
}

func firstOf(s ...string) string {
	for _, v := range s {
		if v != "" {
			return v
		}
	}
	return ""
}

// nodeLocalFor decides the NodeLocal DNSCache form for a pod that uses the cluster DNS (or
// chose None): ClusterDNS has already ruled out the node's resolv.conf.
func nodeLocalFor(p *policy.Policy, pod *Pod, containers []Container, exp cluster.Exposure) NodeLocal {
	addr, why := nodeLocalAddress(p, exp)
	if addr == "" {
		return NodeLocal{Why: why}
	}
	nl := NodeLocal{Address: addr}
	var user []string
	if dc := pod.Spec.DNSConfig; dc != nil {
		user = dc.Nameservers
	}
	if pod.Spec.DNSPolicy == corev1.DNSNone {
		if len(user) > 0 && user[0] == addr {
			nl.Why = "already uses NodeLocal DNSCache " + addr + " first"
		} else {
			nl.Why = "the pod chose dnsPolicy None: its nameservers are its own"
		}
		return nl
	}
	if slices.Contains(user, addr) {
		nl.Why = "already lists NodeLocal DNSCache " + addr
		return nl
	}
	var none, musl []libc.Libc
	for _, l := range distinct(containers) {
		if slices.Contains(p.NodeLocalDNS.DNSPolicyNone, l) {
			none = append(none, l)
		}
		if l == libc.Musl {
			musl = append(musl, l)
		}
	}
	var noneWhy string
	if len(none) > 0 {
		nl.Libcs = none
		cip := firstOf(p.ClusterDNS, exp.DNSServiceIP)
		ns := []string{addr}
		if cip != "" && !slices.Contains(user, cip) {
			ns = append(ns, cip)
		}
		switch {
		case cip == "":
			noneWhy = "dnsPolicy None form needs the cluster DNS ClusterIP: unknown (set clusterDNS in the policy)"
		case pod.Metadata.Namespace == "":
			noneWhy = "dnsPolicy None form needs the pod's namespace for the search list"
		case len(ns)+len(user) > 3:
			noneWhy = fmt.Sprintf("dnsPolicy None form would list %d nameservers; kubelet keeps 3", len(ns)+len(user))
		default:
			domain := firstOf(p.ClusterDomain, "cluster.local")
			var searches []string
			// what kubelet writes for ClusterFirst: the cluster's domains, then the node's
			for _, s := range append([]string{pod.Metadata.Namespace + ".svc." + domain, "svc." + domain, domain}, p.NodeSearch...) {
				if pod.Spec.DNSConfig == nil || !slices.Contains(pod.Spec.DNSConfig.Searches, s) {
					searches = append(searches, s)
				}
			}
			nl.Form, nl.Nameservers, nl.Searches = NodeLocalNone, ns, searches
			nl.Why = fmt.Sprintf("%s: dnsPolicy None with NodeLocal DNSCache %s first, then the cluster DNS %s; %s asks nameservers in order",
				libcWords(none), addr, cip, libcWords(none))
			if len(musl) > 0 && !slices.Contains(none, libc.Musl) {
				nl.Libcs = append(nl.Libcs, libc.Musl)
				nl.Why += "; musl asks both in parallel"
			}
			return nl
		}
	}
	if len(musl) == 0 {
		nl.Why = noneWhy
		return nl
	}
	// kubelet lists the cluster DNS, then the pod's own nameservers, and keeps 3.
	if n := 1 + len(user) + 1; n > 3 {
		nl.Why = joinWhy(noneWhy, fmt.Sprintf("musl: adding NodeLocal DNSCache %s would make %d nameservers; kubelet keeps 3", addr, n))
		return nl
	}
	second, all := "a second", "both"
	if len(user) > 0 {
		second, all = "a third", "all three"
	}
	nl.Form, nl.Nameservers, nl.Libcs = NodeLocalAppend, []string{addr}, musl
	nl.Why = joinWhy(noneWhy, fmt.Sprintf("musl: added the NodeLocal DNSCache address %s as %s nameserver; musl asks %s in parallel", addr, second, all))
	return nl
}

func joinWhy(a, b string) string {
	if a == "" {
		return b
	}
	return a + "; " + b
}

func libcWords(ls []libc.Libc) string {
	s := make([]string, len(ls))
	for i, l := range ls {
		s[i] = string(l)
	}
	return strings.Join(s, "+")
}

func distinct(containers []Container) []libc.Libc {
	present := map[libc.Libc]bool{}
	for _, c := range containers {
		present[c.Verdict.Libc] = true
	}
	var out []libc.Libc
	for _, l := range libc.All {
		if present[l] {
			out = append(out, l)
		}
	}
	return out
}

// noneFormOptions completes the options of the None form: kubelet's ndots:5 (None drops it)
// unless the pod or the plan sets ndots, and a short timeout unless the pod sets one.
func noneFormOptions(inject []policy.Option, existing []policy.Option) []policy.Option {
	has := map[string]bool{}
	for _, o := range existing {
		has[family(CanonicalOption(o).Name)] = true
	}
	out := make([]policy.Option, 0, len(inject)+2)
	for _, o := range inject {
		o = *o.DeepCopy()
		if o.Name == "timeout" {
			v := fmt.Sprint(noneTimeout)
			o.Value = &v
			has["timeout"] = true
		}
		if o.Name == "ndots" {
			has["ndots"] = true
		}
		out = append(out, o)
	}
	if !has["ndots"] {
		v := kubeletNdots
		out = append(out, policy.Option{Name: "ndots", Value: &v})
	}
	if !has["timeout"] {
		v := fmt.Sprint(noneTimeout)
		out = append(out, policy.Option{Name: "timeout", Value: &v})
	}
	return out
}

// nodeLocalWarning is the warning for a form done (enforce) or that enforce would do (audit).
func nodeLocalWarning(nl NodeLocal, mode policy.Mode) string {
	if nl.Form == "" {
		return ""
	}
	if mode == policy.Audit {
		if nl.Form == NodeLocalAppend {
			return "dns-tuner audit: enforce mode would add NodeLocal DNSCache " + nl.Address + " as a nameserver for musl"
		}
		return "dns-tuner audit: enforce mode would set dnsPolicy None with NodeLocal DNSCache " + nl.Address + " first"
	}
	if nl.Form == NodeLocalNone && len(nl.Nameservers) > 1 {
		return fmt.Sprintf("dns-tuner: dnsPolicy None: NodeLocal DNSCache %s first, then %s (%s asks in order)",
			nl.Address, nl.Nameservers[1], nl.Libcs[0])
	}
	return "dns-tuner: " + nl.Why
}

// nodeLocalAdvice replaces the musl advice to run NodeLocal DNSCache once dns-tuner has
// pointed the pod at it.
func nodeLocalAdvice(nl NodeLocal, mode policy.Mode, l libc.Libc) (string, bool) {
	if nl.Form == "" || !slices.Contains(nl.Libcs, l) || l != libc.Musl {
		return "", false
	}
	did := "dns-tuner added"
	if mode == policy.Audit {
		did = "enforce mode would add"
	}
	return fmt.Sprintf("musl sends A and AAAA in parallel; %s NodeLocal DNSCache %s as a nameserver, which the conntrack race cannot stall", did, nl.Address), true
}

// dnsConfigOps are the patch operations of a NodeLocal form on the pod's dnsConfig, with
// opts the options to append. All are adds: a nameserver or search inserted at an index
// shifts the pod's own after it, and /spec/dnsPolicy is added, which RFC 6902 defines as a
// replace when the member exists (the API server has defaulted it to ClusterFirst).
func dnsConfigOps(pod *Pod, nl NodeLocal, opts []any) []Op {
	dc := pod.Spec.DNSConfig
	if dc == nil {
		v := map[string]any{}
		if len(nl.Nameservers) > 0 {
			v["nameservers"] = nl.Nameservers
		}
		if len(nl.Searches) > 0 {
			v["searches"] = nl.Searches
		}
		if len(opts) > 0 {
			v["options"] = opts
		}
		if len(v) == 0 {
			return nil
		}
		return []Op{add("/spec/dnsConfig", v)}
	}
	var ops []Op
	front := nl.Form == NodeLocalNone
	list := func(field string, have int, items []string, front bool) {
		switch {
		case len(items) == 0:
		case have == 0:
			ops = append(ops, add("/spec/dnsConfig/"+field, items))
		case front:
			for i, it := range items {
				ops = append(ops, add(fmt.Sprintf("/spec/dnsConfig/%s/%d", field, i), it))
			}
		default:
			for _, it := range items {
				ops = append(ops, add("/spec/dnsConfig/"+field+"/-", it))
			}
		}
	}
	list("nameservers", len(dc.Nameservers), nl.Nameservers, front)
	list("searches", len(dc.Searches), nl.Searches, true)
	switch {
	case len(opts) == 0:
	case len(dc.Options) == 0:
		ops = append(ops, add("/spec/dnsConfig/options", opts))
	default:
		for _, o := range opts {
			ops = append(ops, add("/spec/dnsConfig/options/-", o))
		}
	}
	return ops
}

// ApplyTo makes p what enforce's patch makes of it: the injected options and the NodeLocal
// DNSCache form, for code that renders the resulting resolv.conf (explain, audit).
func (plan Plan) ApplyTo(p *corev1.Pod) {
	if !plan.changes() {
		return
	}
	if p.Spec.DNSConfig == nil {
		p.Spec.DNSConfig = &corev1.PodDNSConfig{}
	}
	dc := p.Spec.DNSConfig
	dc.Options = append(dc.Options, plan.Inject...)
	switch plan.NodeLocal.Form {
	case NodeLocalAppend:
		dc.Nameservers = append(dc.Nameservers, plan.NodeLocal.Nameservers...)
	case NodeLocalNone:
		p.Spec.DNSPolicy = corev1.DNSNone
		dc.Nameservers = append(slices.Clone(plan.NodeLocal.Nameservers), dc.Nameservers...)
		dc.Searches = append(slices.Clone(plan.NodeLocal.Searches), dc.Searches...)
	}
}
