// Package audit builds `dns-tuner audit`'s report: what dns-tuner would do to a cluster's
// running workloads, read before turning enforce on. The command (internal/cli) lists the
// objects and inspects the images; this package groups pods by owner, decides with the same
// functions admission uses (mutate.ResolveMode, mutate.ExposureOf, mutate.DecideFor) and
// renders the report as a table or JSON.
//
// JSON fields (stable; new fields may be added, none renamed or removed):
//
//	summary.nodes, summary.exposedNodes, summary.unknownNodes  node counts
//	summary.exposure        why the nodes are, or are not, exposed to the conntrack race
//	summary.factsError      set when the cluster facts could not be read (all nodes count as exposed)
//	summary.workloads, summary.pods
//	summary.atRisk[]        {libc, pods}: pods the race can stall today, by libc
//	summary.enforce         {workloads, pods, adds[] {option, pods}, atRisk}: what enforce changes
//	nodes[]                 {name, kernel, exposed, unknown, why}
//	dns                     {kubeProxy, kubeProxySource, endpoints (-1 unknown),
//	                         nodeLocalDNS {known, running, address}}
//	workloads[]             {namespace, kind, name, pods, variants, mode, modeReason, skipped,
//	                         exposure, options[], wouldAdd[], risk, riskEnforced,
//	                         containers[]}
//	containers[]            {name, init, image, libc, version, source, evidence, reason,
//	                         digest, worstCaseSeconds, lostReplySeconds,
//	                         worstCaseEnforcedSeconds, lostReplyEnforcedSeconds}
//
// A workload is decided on its newest pod; variants counts the distinct container lists its
// pods run (more than 1 mid-rollout). risk and riskEnforced are mutate's not_exposed, protected or exposed; empty when
// dns-tuner leaves the pod alone (dnsPolicy without the cluster DNS).
package audit

import (
	"context"
	"sort"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"

	"github.com/dns-tuner/dns-tuner/internal/cluster"
	"github.com/dns-tuner/dns-tuner/internal/libc"
	"github.com/dns-tuner/dns-tuner/internal/mutate"
	"github.com/dns-tuner/dns-tuner/internal/policy"
	"github.com/dns-tuner/dns-tuner/internal/resolvconf"
	"github.com/dns-tuner/dns-tuner/internal/verdicts"
)

// Report is the whole audit.
type Report struct {
	Summary   Summary    `json:"summary"`
	Nodes     []Node     `json:"nodes"`
	DNS       DNSPath    `json:"dns"`
	Workloads []Workload `json:"workloads"`
}

// Summary is what an operator reads first.
type Summary struct {
	Nodes        int    `json:"nodes"`
	ExposedNodes int    `json:"exposedNodes"`
	UnknownNodes int    `json:"unknownNodes"`
	Exposure     string `json:"exposure"`
	FactsError   string `json:"factsError,omitempty"`
	Workloads    int    `json:"workloads"`
	Pods         int    `json:"pods"`
	// AtRisk counts the pods the race can stall with the options they run with now.
	AtRisk  []LibcPods `json:"atRisk"`
	Enforce Enforce    `json:"enforce"`
}

// LibcPods is a number of pods with a container of a libc.
type LibcPods struct {
	Libc libc.Libc `json:"libc"`
	Pods int       `json:"pods"`
}

// Enforce is what enforce mode would change in the running workloads.
type Enforce struct {
	Workloads int          `json:"workloads"`
	Pods      int          `json:"pods"`
	Adds      []OptionPods `json:"adds"`
	// AtRisk pods the race can still stall once enforce added its options.
	AtRisk int `json:"atRisk"`
}

// OptionPods is an option and the number of pods it would be added to.
type OptionPods struct {
	Option string `json:"option"`
	Pods   int    `json:"pods"`
}

// Node is one node's kernel and exposure.
type Node struct {
	Name    string `json:"name"`
	Kernel  string `json:"kernel"`
	Exposed bool   `json:"exposed"`
	Unknown bool   `json:"unknown"`
	Why     string `json:"why"`
}

// DNSPath is how pods reach the cluster DNS.
type DNSPath struct {
	KubeProxy       cluster.ProxyMode `json:"kubeProxy"`
	KubeProxySource string            `json:"kubeProxySource"`
	Endpoints       int               `json:"endpoints"`
	NodeLocal       NodeLocal         `json:"nodeLocalDNS"`
}

// NodeLocal is NodeLocal DNSCache as the facts know it.
type NodeLocal struct {
	Known   bool   `json:"known"`
	Running bool   `json:"running"`
	Address string `json:"address,omitempty"`
}

// Workload is the pods of one owner, decided on one of them.
type Workload struct {
	Namespace string `json:"namespace"`
	Kind      string `json:"kind"`
	Name      string `json:"name"`
	Pods      int    `json:"pods"`
	// Variants > 1: the pods run different containers (a rollout); decided on the newest.
	Variants   int         `json:"variants"`
	Mode       policy.Mode `json:"mode"`
	ModeReason string      `json:"modeReason"`
	Skipped    string      `json:"skipped,omitempty"`
	Exposure   string      `json:"exposure"`
	// Options is the options line of the resolv.conf it runs with now.
	Options  []string `json:"options"`
	WouldAdd []string `json:"wouldAdd"`
	// NodeLocal is what enforce would do with NodeLocal DNSCache under the policy's
	// nodeLocalDNS, and the nameservers, searches and dnsPolicy it would change; nil when
	// nothing.
	NodeLocal    *NodeLocalChange `json:"nodeLocalDNS,omitempty"`
	Risk         string           `json:"risk"`
	RiskEnforced string           `json:"riskEnforced"`
	Containers   []Container      `json:"containers"`
}

// NodeLocalChange is what a NodeLocal DNSCache form would change in a workload's pods.
type NodeLocalChange struct {
	Form string `json:"form"`
	Why  string `json:"why"`
	// Nameservers and Searches are the resolv.conf lines the form gives.
	Nameservers []string `json:"nameservers"`
	Searches    []string `json:"searches"`
}

// Container is one container's libc, with evidence, and its retry costs now and enforced.
type Container struct {
	Name     string      `json:"name"`
	Init     bool        `json:"init,omitempty"`
	Image    string      `json:"image"`
	Libc     libc.Libc   `json:"libc"`
	Version  string      `json:"version,omitempty"`
	Source   libc.Source `json:"source"`
	Evidence string      `json:"evidence,omitempty"`
	Reason   string      `json:"reason,omitempty"`
	Digest   string      `json:"digest,omitempty"`
	// Seconds a name can take with DNS silent, and one lost reply costs; 0 when the libc's
	// retry model is unknown.
	WorstCase         float64 `json:"worstCaseSeconds"`
	LostReply         float64 `json:"lostReplySeconds"`
	WorstCaseEnforced float64 `json:"worstCaseEnforcedSeconds"`
	LostReplyEnforced float64 `json:"lostReplyEnforcedSeconds"`
}

// Options is what Build needs besides the pods.
type Options struct {
	Policy *policy.Policy
	// Facts are the cluster facts; nil with FactsError when they could not be read.
	Facts      *cluster.Snapshot
	FactsError string
	DNS        resolvconf.ClusterDNS
	// Namespaces holds each namespace's labels; a namespace missing is read as unlabelled.
	Namespaces map[string]map[string]string
	Detector   libc.Detector
	// Timeout bounds the verdicts of one workload's containers.
	Timeout time.Duration
}

// Build decides every workload and summarises. Pods that finished (Succeeded, Failed) or are
// being deleted are left out.
func Build(ctx context.Context, o Options, pods []corev1.Pod, parents Parents) (Report, error) {
	r := Report{Nodes: []Node{}, Workloads: []Workload{}, Summary: Summary{AtRisk: []LibcPods{}, Enforce: Enforce{Adds: []OptionPods{}}}}
	r.Summary.FactsError = o.FactsError
	nodes(&r, o)
	atRisk := map[libc.Libc]int{}
	adds := map[string]int{}
	for _, g := range GroupPods(pods, parents) {
		w, libcs, err := decide(ctx, o, g)
		if err != nil {
			return r, err
		}
		r.Workloads = append(r.Workloads, w)
		r.Summary.Workloads++
		r.Summary.Pods += w.Pods
		if w.Risk == mutate.RiskExposed {
			for _, l := range libcs {
				atRisk[l] += w.Pods
			}
		}
		if len(w.WouldAdd) > 0 {
			r.Summary.Enforce.Workloads++
			r.Summary.Enforce.Pods += w.Pods
			for _, a := range w.WouldAdd {
				adds[a] += w.Pods
			}
		}
		if w.RiskEnforced == mutate.RiskExposed {
			r.Summary.Enforce.AtRisk += w.Pods
		}
	}
	for l, n := range atRisk {
		r.Summary.AtRisk = append(r.Summary.AtRisk, LibcPods{Libc: l, Pods: n})
	}
	sort.Slice(r.Summary.AtRisk, func(i, j int) bool {
		a, b := r.Summary.AtRisk[i], r.Summary.AtRisk[j]
		return a.Pods > b.Pods || a.Pods == b.Pods && a.Libc < b.Libc
	})
	for opt, n := range adds {
		r.Summary.Enforce.Adds = append(r.Summary.Enforce.Adds, OptionPods{Option: opt, Pods: n})
	}
	sort.Slice(r.Summary.Enforce.Adds, func(i, j int) bool {
		a, b := r.Summary.Enforce.Adds[i], r.Summary.Enforce.Adds[j]
		return a.Pods > b.Pods || a.Pods == b.Pods && a.Option < b.Option
	})
	return r, nil
}

// nodes fills the node table, the DNS path and the node summary from the facts.
func nodes(r *Report, o Options) {
	f := o.Facts
	r.DNS = DNSPath{KubeProxy: cluster.ProxyUnknown, Endpoints: -1}
	if f == nil {
		r.Summary.Exposure = cluster.Unknown.Reason
		return
	}
	r.DNS = DNSPath{KubeProxy: f.Proxy, KubeProxySource: f.ProxyWhy, Endpoints: f.DNSEndpoints,
		NodeLocal: NodeLocal{Known: f.NodeLocal.Known, Running: f.NodeLocal.Running, Address: f.NodeLocal.Address}}
	for i := range f.Nodes {
		n := &f.Nodes[i]
		e := f.NodeExposure(n)
		r.Nodes = append(r.Nodes, Node{Name: n.Name, Kernel: n.Kernel.Raw, Exposed: e.Exposed, Unknown: e.Unknown, Why: e.Why})
		r.Summary.Nodes++
		if e.Exposed {
			r.Summary.ExposedNodes++
		}
		if e.Unknown {
			r.Summary.UnknownNodes++
		}
	}
	sort.Slice(r.Nodes, func(i, j int) bool { return r.Nodes[i].Name < r.Nodes[j].Name })
	r.Summary.Exposure = f.Exposure(cluster.Placement{Proxy: cluster.ProxyMode(o.Policy.ServiceProxy)}).Reason
}

// decide is one workload's line, decided on its first pod, and the libcs of its containers.
func decide(ctx context.Context, o Options, g Group) (Workload, []libc.Libc, error) {
	w := Workload{Namespace: g.Namespace, Kind: g.Kind, Name: g.Name, Pods: len(g.Pods), Variants: g.Variants(), Options: []string{}, WouldAdd: []string{}, Containers: []Container{}}
	pod, err := mutate.PodFromCore(g.Pods[0])
	if err != nil {
		return w, nil, err
	}
	md := mutate.ResolveMode(o.Policy, g.Namespace, o.Namespaces[g.Namespace], pod)
	w.Mode, w.ModeReason = md.Mode, md.Reason
	lim := verdicts.Limits{Budget: o.Timeout, MaxImages: o.Policy.Inspection.MaxImagesPerPod}
	containers, _ := verdicts.DetectContainers(ctx, o.Detector, lim, g.Namespace, pod)

	if rc, err := resolvconf.Render(pod.CorePod(), o.DNS); err == nil {
		for _, opt := range rc.Options {
			w.Options = append(w.Options, policy.OptionString(opt))
		}
	}
	exp := mutate.ExposureOf(o.Policy, pod, facts(o.Facts))
	w.Exposure = exp.Reason
	now := mutate.DecideFor(o.Policy, pod, mutate.ModeDecision{Mode: policy.Audit, Reason: "audit"}, containers, exp)
	enf := mutate.DecideFor(o.Policy, pod, mutate.ModeDecision{Mode: policy.Enforce, Reason: "audit"}, containers, exp)
	if ok, why := mutate.ClusterDNS(pod); !ok {
		w.Skipped = why
	}
	w.Risk, w.RiskEnforced = now.Risk, enf.Risk
	for _, opt := range enf.Inject {
		w.WouldAdd = append(w.WouldAdd, policy.OptionString(opt))
	}
	if enf.NodeLocal.Form != "" {
		after := pod.CorePod()
		enf.ApplyTo(after)
		nl := &NodeLocalChange{Form: enf.NodeLocal.Form, Why: enf.NodeLocal.Why}
		if rc, err := resolvconf.Render(after, o.DNS); err == nil {
			nl.Nameservers, nl.Searches = rc.Nameservers, rc.Searches
		}
		w.NodeLocal = nl
	}
	seen := map[libc.Libc]bool{}
	var libcs []libc.Libc
	for i, c := range containers {
		v := c.Verdict
		out := Container{Name: c.Name, Init: c.Init, Image: image(pod, c.Name), Libc: v.Libc, Version: v.Version,
			Source: v.Source, Evidence: v.Evidence, Reason: v.Reason, Digest: v.Digest}
		if i < len(now.Costs) && now.Costs[i].Known {
			out.WorstCase, out.LostReply = seconds(now.Costs[i].WorstCase), seconds(now.Costs[i].Retransmit)
		}
		if i < len(enf.Costs) && enf.Costs[i].Known {
			out.WorstCaseEnforced, out.LostReplyEnforced = seconds(enf.Costs[i].WorstCase), seconds(enf.Costs[i].Retransmit)
		}
		w.Containers = append(w.Containers, out)
		if !seen[v.Libc] {
			seen[v.Libc] = true
			libcs = append(libcs, v.Libc)
		}
	}
	return w, libcs, nil
}

// seconds to the millisecond, so JSON and the table do not print 0.666666666.
func seconds(d time.Duration) float64 { return d.Round(time.Millisecond).Seconds() }

// facts keeps a nil snapshot a nil interface, which mutate reads as "nothing known".
func facts(s *cluster.Snapshot) cluster.Facts {
	if s == nil {
		return nil
	}
	return s
}

func image(pod *mutate.Pod, name string) string {
	for _, cs := range [][]mutate.PodContainer{pod.Spec.InitContainers, pod.Spec.Containers} {
		for _, c := range cs {
			if c.Name == name {
				return c.Image
			}
		}
	}
	return ""
}

// Parents maps a ReplicaSet or Job ("Kind/namespace/name") to its own controller, so pods
// are grouped by the Deployment or CronJob an operator knows.
type Parents map[string]Owner

// Owner is a controller named by kind and name.
type Owner struct{ Kind, Name string }

// ParentKey is a Parents key.
func ParentKey(kind, namespace, name string) string { return kind + "/" + namespace + "/" + name }

// Group is the live pods of one workload, newest first.
type Group struct {
	Namespace, Kind, Name string
	Pods                  []*corev1.Pod
}

// GroupPods collects live pods by their top controller: a ReplicaSet's Deployment, a Job's
// CronJob, else the controller itself; a pod without one is its own workload. Groups are
// sorted by namespace, kind and name; pods within a group by name.
func GroupPods(pods []corev1.Pod, parents Parents) []Group {
	by := map[string]*Group{}
	var keys []string
	for i := range pods {
		p := &pods[i]
		if p.DeletionTimestamp != nil || p.Status.Phase == corev1.PodSucceeded || p.Status.Phase == corev1.PodFailed {
			continue
		}
		kind, name := "Pod", p.Name
		// A static pod's mirror is "owned" by its Node: each is its own workload.
		if ref := controllerOf(p); ref != nil && ref.Kind != "Node" {
			kind, name = ref.Kind, ref.Name
			if up, ok := parents[ParentKey(kind, p.Namespace, name)]; ok {
				kind, name = up.Kind, up.Name
			}
		}
		key := p.Namespace + "\x00" + kind + "\x00" + name
		g := by[key]
		if g == nil {
			g = &Group{Namespace: p.Namespace, Kind: kind, Name: name}
			by[key] = g
			keys = append(keys, key)
		}
		g.Pods = append(g.Pods, p)
	}
	sort.Strings(keys)
	out := make([]Group, 0, len(keys))
	for _, k := range keys {
		g := by[k]
		// Newest first: mid-rollout, the pod the workload is heading to decides.
		sort.Slice(g.Pods, func(i, j int) bool {
			a, b := g.Pods[i].CreationTimestamp, g.Pods[j].CreationTimestamp
			if !a.Equal(&b) {
				return b.Before(&a)
			}
			return g.Pods[i].Name < g.Pods[j].Name
		})
		out = append(out, *g)
	}
	return out
}

// Variants is how many distinct container lists (names, images, commands) the group's
// pods run: more than one mid-rollout, when the report is decided on the newest pod.
func (g Group) Variants() int {
	seen := map[string]bool{}
	for _, p := range g.Pods {
		var b strings.Builder
		for _, cs := range [][]corev1.Container{p.Spec.InitContainers, p.Spec.Containers} {
			for _, c := range cs {
				b.WriteString(c.Name + "\x00" + TargetKey(libc.Target{Image: c.Image, Command: c.Command, Args: c.Args, PathEnv: pathEnv(c.Env), WorkingDir: c.WorkingDir}) + "\x02")
			}
		}
		seen[b.String()] = true
	}
	return len(seen)
}

func controllerOf(p *corev1.Pod) *struct{ Kind, Name string } {
	for _, r := range p.OwnerReferences {
		if r.Controller != nil && *r.Controller {
			return &struct{ Kind, Name string }{r.Kind, r.Name}
		}
	}
	return nil
}

// Targets are the distinct inspections the groups need (one per image, command, args and
// PATH), to run once each before Build.
func Targets(groups []Group) []libc.Target {
	seen := map[string]bool{}
	var out []libc.Target
	for _, g := range groups {
		p := g.Pods[0]
		for _, cs := range [][]corev1.Container{p.Spec.InitContainers, p.Spec.Containers} {
			for _, c := range cs {
				t := libc.Target{Namespace: p.Namespace, PodName: p.Name, Container: c.Name, Image: c.Image,
					Command: c.Command, Args: c.Args, ServiceAccount: p.Spec.ServiceAccountName, PathEnv: pathEnv(c.Env), WorkingDir: c.WorkingDir}
				for _, s := range p.Spec.ImagePullSecrets {
					t.PullSecrets = append(t.PullSecrets, s.Name)
				}
				if k := TargetKey(t); !seen[k] {
					seen[k] = true
					out = append(out, t)
				}
			}
		}
	}
	return out
}

func pathEnv(env []corev1.EnvVar) string {
	for _, e := range env {
		if e.Name == "PATH" && e.ValueFrom == nil {
			return e.Value
		}
	}
	return ""
}

// TargetKey is what makes two inspections the same for the audit.
func TargetKey(t libc.Target) string {
	return strings.Join([]string{t.Image, strings.Join(t.Command, "\x01"), strings.Join(t.Args, "\x01"), t.PathEnv, t.WorkingDir}, "\x00")
}
