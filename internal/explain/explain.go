// Package explain answers "what will dns-tuner do to this pod, and why?" for a pod, a
// workload's pod template or a live pod: each container's libc with evidence, the
// resolv.conf kubelet will render before and after, which options each libc honours or
// ignores, and what each mode would change. `dns-tuner explain` prints it.
package explain

import (
	"context"
	"fmt"
	"time"

	corev1 "k8s.io/api/core/v1"

	"github.com/dns-tuner/dns-tuner/internal/cluster"
	"github.com/dns-tuner/dns-tuner/internal/libc"
	"github.com/dns-tuner/dns-tuner/internal/mutate"
	"github.com/dns-tuner/dns-tuner/internal/policy"
	"github.com/dns-tuner/dns-tuner/internal/resolvconf"
	"github.com/dns-tuner/dns-tuner/internal/verdicts"
)

// Report is the explanation of one pod.
type Report struct {
	Source     string      `json:"source"` // where the pod came from: "file.yaml: Deployment shop/web"
	Namespace  string      `json:"namespace"`
	Pod        string      `json:"pod"`
	Containers []Container `json:"containers"`
	// ClusterDNS is false when the pod does not use the cluster DNS service (SkipReason says why).
	ClusterDNS bool   `json:"clusterDNS"`
	SkipReason string `json:"skipReason,omitempty"`
	// ResolvConf is the file kubelet renders for the pod as submitted; Enforced the file
	// after dns-tuner's enforce mode.
	ResolvConf string `json:"resolvConf"`
	Enforced   string `json:"resolvConfEnforced"`
	// Applies is the mode dns-tuner would use, when the namespace could be read.
	Applies *Mode `json:"applies,omitempty"`
	// Modes says what each mode does: enforce, audit, off.
	Modes []ModeOutcome `json:"modes"`
	Notes []string      `json:"notes,omitempty"`
	// RaceFix is the policy's raceFix and, when a libc of the pod has race-fix options,
	// whether enforce adds them and which cluster facts decided.
	RaceFix RaceFix `json:"raceFix"`
	// NodeLocal is what enforce does with NodeLocal DNSCache and why; nil when the policy's
	// nodeLocalDNS is off.
	NodeLocal *NodeLocal `json:"nodeLocalDNS,omitempty"`
}

// NodeLocal is the NodeLocal DNSCache decision as explain shows it.
type NodeLocal struct {
	Policy policy.NodeLocalMode `json:"policy"`
	mutate.NodeLocal
}

// RaceFix is the race-fix decision as explain shows it.
type RaceFix struct {
	Policy policy.RaceFixMode `json:"policy"`
	mutate.RaceFix
}

// Container is one container's verdict and what its resolver reads.
type Container struct {
	Name     string       `json:"name"`
	Init     bool         `json:"init,omitempty"`
	Image    string       `json:"image"`
	Verdict  libc.Verdict `json:"verdict"`
	Honours  []string     `json:"honours,omitempty"` // options of the enforced resolv.conf it reads
	Ignores  []IgnoredOpt `json:"ignores,omitempty"` // options of the enforced resolv.conf it does not read
	Unknowns []string     `json:"unknownEffect,omitempty"`
	// Retry is what its resolver does when DNS is silent or a reply is lost, with the
	// resolv.conf as submitted and with enforce's; nil when its retry model is unknown.
	Retry *Retry `json:"retry,omitempty"`
}

// Retry is one container's worst case per name and cost of a lost reply, before and after.
type Retry struct {
	Submitted mutate.RetryCost `json:"submitted"`
	Enforced  mutate.RetryCost `json:"enforced"`
}

// IgnoredOpt is an option a container's resolver will not read, and what to do instead.
type IgnoredOpt struct {
	Option string `json:"option"`
	Advice string `json:"advice"`
}

// Mode is the mode that applies and why.
type Mode struct {
	Mode   policy.Mode `json:"mode"`
	Reason string      `json:"reason"`
}

// ModeOutcome is what one mode does to the pod.
type ModeOutcome struct {
	Mode        policy.Mode       `json:"mode"`
	Status      string            `json:"status"`
	Adds        []string          `json:"adds,omitempty"`
	Annotations map[string]string `json:"annotations,omitempty"`
	Warnings    []string          `json:"warnings,omitempty"`
}

// Input is one pod to explain.
type Input struct {
	Source string
	Pod    *corev1.Pod
	// NamespaceLabels, when known (live cluster), decide which mode applies.
	NamespaceLabels map[string]string
	NamespaceKnown  bool
	// Facts, when known (live cluster: clusterwatch.Read), say whether the nodes the pod can land
	// on are exposed to the conntrack race. Nil: every node counts as exposed.
	Facts cluster.Facts
}

// Explain builds the report for one pod. det may take up to timeout per pod. The pod is
// read through mutate.PodFromCore, the decode admission uses, so both see the same fields.
func Explain(ctx context.Context, p *policy.Policy, det libc.Detector, timeout time.Duration, dns resolvconf.ClusterDNS, in Input) (Report, error) {
	pod, err := mutate.PodFromCore(in.Pod)
	if err != nil {
		return Report{Source: in.Source}, err
	}
	ns := pod.Metadata.Namespace
	r := Report{Source: in.Source, Namespace: ns, Pod: mutate.PodName(pod)}
	if pod.Metadata.Name == "" && r.Pod != "" {
		r.Pod += "*" // the API server completes a generateName
	}
	lim := verdicts.Limits{Budget: timeout, MaxImages: p.Inspection.MaxImagesPerPod}
	containers, warnings := verdicts.DetectContainers(ctx, det, lim, ns, pod)
	r.ClusterDNS, r.SkipReason = mutate.ClusterDNS(pod)

	core := pod.CorePod()
	before, err := resolvconf.Render(core, dns)
	if err != nil {
		return r, fmt.Errorf("rendering resolv.conf: %w", err)
	}
	r.ResolvConf = before.String()

	if in.NamespaceKnown {
		md := mutate.ResolveMode(p, ns, in.NamespaceLabels, pod)
		r.Applies = &Mode{Mode: md.Mode, Reason: md.Reason}
		warnings = append(warnings, md.Warnings...)
	}
	exposure := mutate.ExposureOf(p, pod, in.Facts)
	var enforced mutate.Plan
	for _, m := range []policy.Mode{policy.Enforce, policy.Audit, policy.Off} {
		plan := mutate.DecideFor(p, pod, mutate.ModeDecision{Mode: m, Reason: "explain, mode " + string(m)}, containers, exposure)
		out := ModeOutcome{Mode: m, Status: plan.Status, Annotations: plan.Annotations, Warnings: append(append([]string{}, warnings...), plan.Warnings...)}
		if m != policy.Off {
			for _, o := range plan.Inject {
				out.Adds = append(out.Adds, policy.OptionString(o))
			}
		} else {
			out.Status = "untouched"
		}
		if m == policy.Enforce {
			enforced = plan
			r.Notes = plan.Notes
			r.RaceFix = RaceFix{Policy: p.RaceFix, RaceFix: plan.RaceFix}
			if plan.NodeLocal.Why != "" {
				r.NodeLocal = &NodeLocal{Policy: p.NodeLocalDNS.Mode, NodeLocal: plan.NodeLocal}
			}
		}
		r.Modes = append(r.Modes, out)
	}

	after := core.DeepCopy()
	enforced.ApplyTo(after)
	rendered, err := resolvconf.Render(after, dns)
	if err != nil {
		return r, fmt.Errorf("rendering resolv.conf: %w", err)
	}
	r.Enforced = rendered.String()

	costBefore := mutate.RetryCosts(containers, before.Options, len(before.Nameservers))
	costAfter := mutate.RetryCosts(containers, rendered.Options, len(rendered.Nameservers))
	for i, c := range containers {
		cr := Container{Name: c.Name, Init: c.Init, Image: containerImage(pod, c.Name), Verdict: c.Verdict}
		if costAfter[i].Known {
			cr.Retry = &Retry{Submitted: costBefore[i], Enforced: costAfter[i]}
		}
		for _, o := range rendered.Options {
			o = mutate.CanonicalOption(o)
			honours, known := mutate.Honours(c.Verdict.Libc, o.Name, c.Verdict.Version)
			switch {
			case !known:
				cr.Unknowns = append(cr.Unknowns, o.Name)
			case honours:
				cr.Honours = append(cr.Honours, o.Name)
			}
		}
		for _, ig := range enforced.Ignored {
			if ig.Container == c.Name {
				cr.Ignores = append(cr.Ignores, IgnoredOpt{Option: ig.Option, Advice: ig.Advice})
			}
		}
		r.Containers = append(r.Containers, cr)
	}
	return r, nil
}

func containerImage(pod *mutate.Pod, name string) string {
	for _, cs := range [][]mutate.PodContainer{pod.Spec.InitContainers, pod.Spec.Containers} {
		for _, c := range cs {
			if c.Name == name {
				return c.Image
			}
		}
	}
	return ""
}
