package mutate

import (
	"encoding/json"
	"fmt"
	"sort"
	"strconv"
	"strings"

	corev1 "k8s.io/api/core/v1"

	"github.com/dns-tuner/dns-tuner/internal/libc"
	"github.com/dns-tuner/dns-tuner/internal/policy"
	"github.com/dns-tuner/dns-tuner/internal/resolvconf"
)

// Container is one container (or init container) of a pod with its libc verdict.
type Container struct {
	Name    string
	Init    bool
	Verdict libc.Verdict
}

// Ignored is an option in the pod's resolv.conf that a container's resolver will not read.
type Ignored struct {
	Container string
	Libc      libc.Libc
	Option    string
	Advice    string
}

// Plan is everything dns-tuner decided for one pod.
type Plan struct {
	Mode   policy.Mode
	Status string
	Reason string
	// Inject are the options added to spec.dnsConfig.options (enforce) or that enforce would
	// add (audit), in a stable order.
	Inject []policy.Option
	// Kept are options the policy wanted that the pod already sets: the pod's value wins.
	Kept []policy.Option
	// Ignored lists, per container, options of the final resolv.conf its libc will not read.
	Ignored []Ignored
	// Notes explain merges of a mixed-libc pod; for logs and `explain`, not for warnings.
	Notes    []string
	Warnings []string
	// Annotations to set on the pod; nil leaves the pod's annotations as they are.
	Annotations map[string]string
}

// ClusterDNS reports whether the pod's resolv.conf names a DNS service dns-tuner should tune
// (the cluster's, or the pod's own with dnsPolicy None) and says why not otherwise.
func ClusterDNS(spec *corev1.PodSpec) (bool, string) {
	source, err := resolvconf.SourceOf(spec)
	switch {
	case err != nil:
		return false, err.Error()
	case source != resolvconf.FromNode:
		return true, ""
	case spec.DNSPolicy == corev1.DNSDefault:
		return false, "dnsPolicy Default uses the node's resolv.conf, not the cluster DNS service"
	}
	return false, "hostNetwork pod with dnsPolicy ClusterFirst: kubelet falls back to the node's resolv.conf (use ClusterFirstWithHostNet for cluster DNS)"
}

// family groups options that ask for the same behaviour, so a pod that sets one is not given
// the other as well.
func family(name string) string {
	switch name {
	case "single-request", "single-request-reopen":
		return "single-request"
	case "use-vc", "usevc", "tcp":
		return "use-vc"
	}
	return name
}

// mergeValue resolves two profiles asking for different values of one option in a pod with
// mixed libcs, where resolv.conf is shared: the value that retries sooner wins.
func mergeValue(name string, a, b *string) *string {
	if a == nil || b == nil {
		return a
	}
	x, errx := strconv.Atoi(*a)
	y, erry := strconv.Atoi(*b)
	if errx != nil || erry != nil {
		return a
	}
	switch name {
	case "timeout", "ndots":
		if y < x {
			return b
		}
	case "attempts":
		if y > x {
			return b
		}
	}
	return a
}

// WantedOptions merges the profiles of the pod's distinct libcs (and the policy's ndots) into
// one option list. Notes record where a libc's profile value was overruled.
func WantedOptions(p *policy.Policy, containers []Container, ndots bool) ([]policy.Option, []string) {
	present := map[libc.Libc]bool{}
	for _, c := range containers {
		present[c.Verdict.Libc] = true
	}
	var out []policy.Option
	index := map[string]int{}
	owner := map[string]libc.Libc{}
	var notes []string
	add := func(from libc.Libc, o policy.Option) {
		i, ok := index[family(o.Name)]
		if !ok {
			index[family(o.Name)] = len(out)
			owner[family(o.Name)] = from
			out = append(out, *o.DeepCopy())
			return
		}
		cur := out[i]
		if cur.Name != o.Name {
			return // same family already wanted
		}
		if equalValue(cur.Value, o.Value) {
			return
		}
		winner, winnerLibc := cur, owner[family(o.Name)]
		if v := mergeValue(o.Name, cur.Value, o.Value); v == o.Value {
			winner, winnerLibc = o, from
		}
		notes = append(notes, fmt.Sprintf("%s wants %s, %s wants %s: using %s for the whole pod (resolv.conf is per pod)",
			owner[family(o.Name)], policy.OptionString(cur), from, policy.OptionString(o), policy.OptionString(winner)))
		out[i] = *winner.DeepCopy()
		owner[family(o.Name)] = winnerLibc
	}
	for _, l := range libc.All {
		if !present[l] {
			continue
		}
		for _, o := range p.Profile(l).Inject {
			add(l, o)
		}
	}
	if ndots && p.Ndots != "" {
		v := p.Ndots
		if i, ok := index["ndots"]; ok {
			out[i].Value = &v // the policy's ndots is explicit and wins over a profile's
		} else {
			out = append(out, policy.Option{Name: "ndots", Value: &v})
		}
	}
	return out, notes
}

func equalValue(a, b *string) bool {
	if a == nil || b == nil {
		return a == b
	}
	return *a == *b
}

// Decide computes the plan for a pod in the given mode. It never mutates the pod.
func Decide(p *policy.Policy, pod *corev1.Pod, md ModeDecision, containers []Container) Plan {
	plan := Plan{Mode: md.Mode, Reason: md.Reason}
	plan.Warnings = append(plan.Warnings, md.Warnings...)
	if md.Mode == policy.Off {
		return plan
	}
	ok, why := ClusterDNS(&pod.Spec)
	if !ok {
		plan.Status, plan.Reason = StatusSkipped, why
		plan.Annotations = map[string]string{AnnotationStatus: StatusSkipped, AnnotationReason: why}
		return plan.settle(pod)
	}

	wanted, notes := WantedOptions(p, containers, pod.Spec.DNSPolicy != corev1.DNSNone)
	plan.Notes = notes
	var existing []policy.Option
	if pod.Spec.DNSConfig != nil {
		existing = pod.Spec.DNSConfig.Options
	}
	has := map[string]policy.Option{}
	for _, o := range existing {
		has[family(o.Name)] = o
	}
	for _, o := range wanted {
		if cur, ok := has[family(o.Name)]; ok {
			plan.Kept = append(plan.Kept, cur)
			if cur.Name != o.Name || !equalValue(cur.Value, o.Value) {
				plan.Notes = append(plan.Notes, fmt.Sprintf("pod sets %s; kept instead of %s", policy.OptionString(cur), policy.OptionString(o)))
			}
			continue
		}
		plan.Inject = append(plan.Inject, o)
	}

	// What each container's resolver will not read, in the resolv.conf kubelet will render.
	final := renderedOptions(pod, append(append([]policy.Option{}, existing...), plan.Inject...))
	for _, c := range containers {
		for _, o := range final {
			if honours, known := Honours(c.Verdict.Libc, o.Name, c.Verdict.Version); known && !honours {
				plan.Ignored = append(plan.Ignored, Ignored{Container: c.Name, Libc: c.Verdict.Libc, Option: o.Name, Advice: advice(c.Verdict.Libc, o.Name)})
			}
		}
	}

	switch {
	case md.Mode == policy.Audit:
		plan.Status = StatusAudit
		if len(plan.Inject) > 0 {
			plan.Warnings = append(plan.Warnings, fmt.Sprintf("dns-tuner audit (%s): enforce mode would add dnsConfig options %s", md.Reason, optionList(plan.Inject)))
		} else {
			plan.Warnings = append(plan.Warnings, fmt.Sprintf("dns-tuner audit (%s): enforce mode would change nothing", md.Reason))
		}
	case len(plan.Inject) > 0:
		plan.Status = StatusInjected
	default:
		plan.Status = StatusUnchanged
	}
	for _, ig := range plan.Ignored {
		plan.Warnings = append(plan.Warnings, fmt.Sprintf("dns-tuner: container %q uses %s, which ignores resolver option %s: %s", ig.Container, ig.Libc, ig.Option, ig.Advice))
	}
	if w := unknownWarning(containers); w != "" {
		plan.Warnings = append(plan.Warnings, w)
	}

	plan.Annotations = map[string]string{
		AnnotationStatus:       plan.Status,
		AnnotationReason:       plan.Reason,
		AnnotationDetectedLibc: detectedLibc(containers),
	}
	if len(plan.Inject) > 0 {
		key := AnnotationInjected
		if md.Mode == policy.Audit {
			key = AnnotationWouldInject
		}
		plan.Annotations[key] = strings.Join(optionStrings(plan.Inject), ",")
	}
	if len(plan.Ignored) > 0 {
		plan.Annotations[AnnotationIgnored] = ignoredJSON(plan.Ignored)
	}
	if s := inspectionState(containers); s != "" {
		plan.Annotations[AnnotationInspectionState] = s
	}
	return plan.settle(pod)
}

// settle makes a reinvocation safe: a pod dns-tuner already handled keeps its annotations
// unless this pass adds options, and then the injected list keeps what the first pass added.
func (plan Plan) settle(pod *corev1.Pod) Plan {
	prior, handled := pod.Annotations[AnnotationStatus]
	if !handled || prior == StatusError {
		return plan
	}
	if len(plan.Inject) == 0 || plan.Mode != policy.Enforce {
		plan.Annotations = nil
		return plan
	}
	if before := pod.Annotations[AnnotationInjected]; before != "" {
		plan.Annotations[AnnotationInjected] = before + "," + plan.Annotations[AnnotationInjected]
	}
	return plan
}

// renderedOptions are the options line kubelet will write for the pod once opts are its
// dnsConfig options (kubelet's ndots:5 default merged by name).
func renderedOptions(pod *corev1.Pod, opts []policy.Option) []policy.Option {
	p := &corev1.Pod{Spec: corev1.PodSpec{DNSPolicy: pod.Spec.DNSPolicy, HostNetwork: pod.Spec.HostNetwork, DNSConfig: &corev1.PodDNSConfig{Options: opts}}}
	p.Namespace = pod.Namespace
	rc, err := resolvconf.Render(p, resolvconf.ClusterDNS{Nameservers: []string{"cluster-dns"}, ClusterDomain: "cluster.local"})
	if err != nil {
		return opts
	}
	return rc.Options
}

func unknownWarning(containers []Container) string {
	var names, reasons []string
	for _, c := range containers {
		if c.Verdict.Libc != libc.Unknown {
			continue
		}
		names = append(names, strconv.Quote(c.Name))
		if c.Verdict.Reason != "" {
			reasons = append(reasons, c.Name+": "+c.Verdict.Reason)
		}
	}
	if len(names) == 0 {
		return ""
	}
	w := fmt.Sprintf("dns-tuner: libc of container %s unknown, so only the unknown profile applies to it", strings.Join(names, ", "))
	if len(reasons) > 0 {
		w += " (" + strings.Join(reasons, "; ") + ")"
	}
	return w + fmt.Sprintf("; set the pod annotation %s (for example %s=musl) to choose", AnnotationLibc, strings.Trim(names[0], `"`))
}

func detectedLibc(containers []Container) string {
	parts := make([]string, 0, len(containers))
	for _, c := range containers {
		parts = append(parts, c.Name+"="+string(c.Verdict.Libc))
	}
	return strings.Join(parts, ",")
}

func inspectionState(containers []Container) string {
	var parts []string
	for _, c := range containers {
		if c.Verdict.Libc == libc.Unknown && c.Verdict.Reason != "" {
			parts = append(parts, c.Name+": "+c.Verdict.Reason)
		}
	}
	return strings.Join(parts, "; ")
}

func ignoredJSON(ignored []Ignored) string {
	m := map[string][]string{}
	for _, ig := range ignored {
		m[ig.Container] = append(m[ig.Container], ig.Option)
	}
	for _, v := range m {
		sort.Strings(v)
	}
	b, _ := json.Marshal(m) // map keys are sorted: stable output
	return string(b)
}

func optionStrings(opts []policy.Option) []string {
	out := make([]string, len(opts))
	for i, o := range opts {
		out[i] = policy.OptionString(o)
	}
	return out
}

func optionList(opts []policy.Option) string { return strings.Join(optionStrings(opts), " ") }
