package mutate

import (
	"encoding/json"
	"fmt"
	"sort"
	"strconv"
	"strings"

	corev1 "k8s.io/api/core/v1"

	"github.com/dns-tuner/dns-tuner/internal/cluster"
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
	// RaceFix is whether the profiles' race-fix options were wanted, and which facts decided.
	RaceFix RaceFix
	// Costs is each container's worst case and lost-reply cost under the resolv.conf it gets
	// (enforce) or keeps (audit).
	Costs []RetryCost
	// Risk is the pod's standing against the conntrack race once admitted: RiskNotExposed,
	// RiskProtected or RiskExposed; empty when dns-tuner left the pod alone.
	Risk string
	// NodeLocal is the NodeLocal DNSCache form the pod gets (enforce) or would get (audit).
	NodeLocal NodeLocal
}

// changes reports whether enforce changes the pod's spec.
func (plan Plan) changes() bool { return len(plan.Inject) > 0 || plan.NodeLocal.Form != "" }

// RaceFix is the race-fix decision for one pod.
type RaceFix struct {
	// Applies: a libc of the pod has race-fix options in its profile.
	Applies bool `json:"applies"`
	Wanted  bool `json:"wanted"`
	// Why names the policy and the facts that decided.
	Why      string           `json:"why"`
	Exposure cluster.Exposure `json:"exposure"`
}

// Risk values: where the pod can land, whether the race can stall it.
const (
	RiskNotExposed = "not_exposed" // every node it can land on resolves the clash
	RiskProtected  = "protected"   // exposed, but no container sends A and AAAA at once from one socket
	RiskExposed    = "exposed"     // exposed, and a container does (musl, unknown, glibc without the fix)
)

// raceFixFor decides whether the race-fix options are wanted under the policy's raceFix.
func raceFixFor(p *policy.Policy, exp cluster.Exposure) RaceFix {
	rf := RaceFix{Exposure: exp}
	switch p.RaceFix {
	case policy.RaceFixAlways:
		rf.Wanted, rf.Why = true, "needed: policy raceFix always"
	case policy.RaceFixNever:
		rf.Why = "not needed: policy raceFix never (" + exp.Reason + ")"
	default:
		rf.Wanted = exp.Exposed
		rf.Why = "not needed: " + exp.Reason
		if exp.Exposed {
			rf.Why = "needed: " + exp.Reason
		}
	}
	return rf
}

// ClusterDNS reports whether the pod's resolv.conf names a DNS service dns-tuner should tune
// (the cluster's, or the pod's own with dnsPolicy None) and says why not otherwise.
func ClusterDNS(pod *Pod) (bool, string) {
	source, err := resolvconf.SourceOf(&corev1.PodSpec{DNSPolicy: pod.Spec.DNSPolicy, HostNetwork: pod.Spec.HostNetwork})
	switch {
	case err != nil:
		return false, clip(err.Error(), shortCap)
	case source != resolvconf.FromNode:
		return true, ""
	case pod.Spec.DNSPolicy == corev1.DNSDefault:
		return false, "dnsPolicy Default uses the node's resolv.conf, not the cluster DNS service"
	}
	return false, "hostNetwork pod with dnsPolicy ClusterFirst: kubelet falls back to the node's resolv.conf (use ClusterFirstWithHostNet for cluster DNS)"
}

// CanonicalOption reads an option as kubelet writes it and a resolver parses it: a name with a
// colon and no value ({name: "timeout:1"}, which the API accepts) is written "timeout:1",
// so it is timeout with value 1.
func CanonicalOption(o policy.Option) policy.Option {
	if o.Value == nil || *o.Value == "" {
		if name, v, ok := strings.Cut(o.Name, ":"); ok {
			return policy.Option{Name: name, Value: &v}
		}
	}
	return o
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
// one option list: each profile's fast-retry options, and its race-fix options when raceFix.
// Notes record where a libc's profile value was overruled.
func WantedOptions(p *policy.Policy, containers []Container, ndots, raceFix bool) ([]policy.Option, []string) {
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
		if o.Name == "timeout" || o.Name == "attempts" {
			return // chosen for all the pod's libcs below
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
	var libcs []libc.Libc
	wants := map[libc.Libc]retryPair{}
	for _, l := range libc.All {
		if !present[l] {
			continue
		}
		libcs = append(libcs, l)
		prof := p.Profile(l)
		var opts []policy.Option
		if raceFix {
			opts = append(opts, prof.RaceFixOptions()...)
		}
		fast := prof.FastRetry()
		for _, o := range append(opts, fast...) {
			add(l, o)
		}
		t, a := retryValues(fast)
		wants[l] = retryPair{t, a}
	}
	if best, note, ok := chooseRetry(libcs, wants); ok {
		for _, kv := range []struct {
			name string
			v    *int
		}{{"timeout", best.timeout}, {"attempts", best.attempts}} {
			if kv.v == nil {
				continue
			}
			s := strconv.Itoa(*kv.v)
			if i, has := index[kv.name]; has {
				out[i].Value = &s
			} else { // a default chosen for a libc whose profile did not set it
				index[kv.name] = len(out)
				out = append(out, policy.Option{Name: kv.name, Value: &s})
			}
		}
		if note != "" {
			notes = append(notes, note)
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

// Decide computes the plan for a pod without cluster facts: every node counts as exposed.
func Decide(p *policy.Policy, pod *Pod, md ModeDecision, containers []Container) Plan {
	return DecideFor(p, pod, md, containers, cluster.Unknown)
}

// DecideFor computes the plan for a pod in the given mode, with exp what the cluster facts
// say about the nodes it can land on. It never mutates the pod.
func DecideFor(p *policy.Policy, pod *Pod, md ModeDecision, containers []Container, exp cluster.Exposure) Plan {
	plan := Plan{Mode: md.Mode, Reason: md.Reason}
	plan.Warnings = append(plan.Warnings, md.Warnings...)
	if md.Mode == policy.Off {
		return plan.finish(pod)
	}
	ok, why := ClusterDNS(pod)
	if !ok {
		plan.Status, plan.Reason = StatusSkipped, why
		plan.Annotations = map[string]string{AnnotationStatus: StatusSkipped, AnnotationReason: why}
		return plan.settle(pod).finish(pod)
	}

	plan.RaceFix = raceFixFor(p, exp)
	for _, c := range containers {
		if len(p.Profile(c.Verdict.Libc).RaceFixOptions()) > 0 {
			plan.RaceFix.Applies = true
		}
	}
	if plan.RaceFix.Applies {
		plan.Reason += "; race fix " + plan.RaceFix.Why
	}
	wanted, notes := WantedOptions(p, containers, pod.Spec.DNSPolicy != corev1.DNSNone, plan.RaceFix.Wanted)
	plan.Notes = notes
	var existing []policy.Option
	if pod.Spec.DNSConfig != nil {
		existing = pod.Spec.DNSConfig.Options
	}
	has := map[string]policy.Option{}
	for _, o := range existing {
		has[family(CanonicalOption(o).Name)] = o
	}
	for _, o := range wanted {
		if cur, ok := has[family(o.Name)]; ok {
			plan.Kept = append(plan.Kept, cur)
			if c := CanonicalOption(cur); c.Name != o.Name || !equalValue(c.Value, o.Value) {
				plan.Notes = append(plan.Notes, fmt.Sprintf("pod sets %s; kept instead of %s", policy.OptionString(c), policy.OptionString(o)))
			}
			continue
		}
		plan.Inject = append(plan.Inject, o)
	}
	plan.NodeLocal = nodeLocalFor(p, pod, containers, exp)
	if plan.NodeLocal.Form == NodeLocalNone {
		plan.Inject = noneFormOptions(plan.Inject, existing)
	}

	// What each container's resolver will not read, in the resolv.conf kubelet will render.
	final := renderedOptions(pod, append(append([]policy.Option{}, existing...), plan.Inject...))
	kept := final
	if md.Mode != policy.Enforce {
		kept = renderedOptions(pod, existing)
	}
	plan.Costs = RetryCosts(containers, kept, pod.nameservers())
	plan.Risk = risk(exp, kept, containers)
	if plan.NodeLocal.Form != "" && md.Mode == policy.Enforce && plan.Risk == RiskExposed {
		plan.Risk = RiskProtected // the cache's path skips conntrack: the race cannot stall it
	}
	for _, c := range containers {
		for _, o := range final {
			o = CanonicalOption(o)
			if honours, known := Honours(c.Verdict.Libc, o.Name, c.Verdict.Version); known && !honours {
				adv := advice(c.Verdict.Libc, o.Name)
				if a, ok := nodeLocalAdvice(plan.NodeLocal, md.Mode, c.Verdict.Libc); ok {
					adv = a
				}
				plan.Ignored = append(plan.Ignored, Ignored{Container: c.Name, Libc: c.Verdict.Libc, Option: o.Name, Advice: adv})
			}
		}
	}

	switch {
	case md.Mode == policy.Audit:
		plan.Status = StatusAudit
		if len(plan.Inject) > 0 {
			plan.Warnings = append(plan.Warnings, "dns-tuner audit: enforce mode would add dnsConfig options "+optionList(plan.Inject))
		} else if !plan.changes() {
			plan.Warnings = append(plan.Warnings, "dns-tuner audit: enforce mode would change nothing")
		}
	case plan.changes():
		plan.Status = StatusInjected
	default:
		plan.Status = StatusUnchanged
	}
	if w := nodeLocalWarning(plan.NodeLocal, md.Mode); w != "" {
		plan.Warnings = append(plan.Warnings, w)
	}
	plan.Warnings = append(plan.Warnings, ignoredWarnings(plan.Ignored)...)
	if w := unknownWarning(containers); w != "" {
		plan.Warnings = append(plan.Warnings, w)
	}

	plan.Annotations = map[string]string{
		AnnotationStatus:       plan.Status,
		AnnotationReason:       plan.Reason,
		AnnotationDetectedLibc: listing(AnnotationDetectedLibc, detectedLibc(containers)),
	}
	if plan.RaceFix.Applies {
		plan.Annotations[AnnotationRaceFix] = plan.RaceFix.Why
	}
	if len(plan.Inject) > 0 {
		key := AnnotationInjected
		if md.Mode == policy.Audit {
			key = AnnotationWouldInject
		}
		plan.Annotations[key] = strings.Join(optionStrings(plan.Inject), ",")
	}
	if plan.NodeLocal.Why != "" {
		why := plan.NodeLocal.Why
		if plan.NodeLocal.Form != "" && md.Mode == policy.Audit {
			why = "enforce mode would do: " + why
		}
		plan.Annotations[AnnotationNodeLocal] = clip(why, shortCap)
	}
	if len(plan.Ignored) > 0 {
		plan.Annotations[AnnotationIgnored] = listing(AnnotationIgnored, ignoredJSON(plan.Ignored))
		plan.Annotations[AnnotationAdvice] = adviceText(plan.Ignored)
	}
	if s := inspectionState(containers); s != "" {
		plan.Annotations[AnnotationInspectionState] = s
	}
	if e := evidenceJSON(containers); e != "" {
		plan.Annotations[AnnotationEvidence] = e
	}
	return plan.settle(pod).finish(pod)
}

// settle makes a reinvocation safe: a pod dns-tuner already handled keeps its annotations
// unless this pass adds options, and then the injected list keeps what the first pass added.
func (plan Plan) settle(pod *Pod) Plan {
	prior, handled := pod.Metadata.Annotations[AnnotationStatus]
	if !handled || prior == StatusError {
		return plan
	}
	if !plan.changes() || plan.Mode != policy.Enforce {
		plan.Annotations = nil
		return plan
	}
	if before := pod.Metadata.Annotations[AnnotationInjected]; before != "" {
		plan.Annotations[AnnotationInjected] = before + "," + plan.Annotations[AnnotationInjected]
	}
	return plan
}

// finish keeps the pod within the API server's annotation size limit and every warning
// within MaxWarning.
func (plan Plan) finish(pod *Pod) Plan {
	if len(plan.Annotations) > 0 {
		var dropped []string
		plan.Annotations, dropped = FitAnnotations(pod.Metadata.Annotations, plan.Annotations)
		if len(dropped) > 0 {
			plan.Warnings = append(plan.Warnings, fmt.Sprintf("dns-tuner: pod annotations near the 256 KiB limit; %d of dns-tuner's left out", len(dropped)))
		}
	}
	for i, w := range plan.Warnings {
		plan.Warnings[i] = ClipWarning(w)
	}
	return plan
}

// risk is the pod's standing against the race with the options its resolv.conf will have.
func risk(exp cluster.Exposure, opts []policy.Option, containers []Container) string {
	if !exp.Exposed {
		return RiskNotExposed
	}
	serialised := false
	for _, o := range opts {
		if family(CanonicalOption(o).Name) == "single-request" {
			serialised = true
		}
	}
	for _, c := range containers {
		k := libc.About(c.Verdict.Libc)
		switch {
		case k.Retry.Model == libc.RetryUnknown:
			return RiskExposed // cannot tell how it sends its queries
		case !k.Retry.SharedSocket:
		case c.Verdict.Libc == libc.GLibc && serialised:
		default:
			return RiskExposed
		}
	}
	return RiskProtected
}

// renderedOptions are the options line kubelet will write for the pod once opts are its
// dnsConfig options (kubelet's ndots:5 default merged by name).
func renderedOptions(pod *Pod, opts []policy.Option) []policy.Option {
	rc, err := resolvconf.Render(pod.dnsPod(opts), resolvconf.ClusterDNS{Nameservers: []string{"cluster-dns"}, ClusterDomain: "cluster.local"})
	if err != nil {
		return opts
	}
	return rc.Options
}

// unknownWarning names the containers whose libc is unknown; the reasons are in the
// inspection annotation, and in the warning when one short reason fits.
func unknownWarning(containers []Container) string {
	var names []string
	reason := ""
	for _, c := range containers {
		if c.Verdict.Libc != libc.Unknown {
			continue
		}
		names = append(names, c.Name)
		if reason == "" {
			reason = c.Verdict.Reason
		}
	}
	if len(names) == 0 {
		return ""
	}
	const tail = " unknown"
	const hint = "; set annotation " + AnnotationLibc + " to choose"
	head := "dns-tuner: libc of container "
	if len(names) > 1 {
		head = "dns-tuner: libc of containers "
	}
	list := nameList(names, MaxWarning-len(head)-len(tail))
	if list == "" {
		head, list = "dns-tuner: libc of ", countContainers(len(names))
	}
	// The longest that fits: with the reason (one container) and the hint, the hint alone,
	// or neither.
	w := head + list + tail
	var candidates []string
	if len(names) == 1 && reason != "" {
		candidates = append(candidates, w+" ("+reason+")"+hint)
	}
	for _, c := range append(candidates, w+hint) {
		if len(c) <= MaxWarning {
			return c
		}
	}
	return ClipWarning(w)
}

// ignoredWarnings say, once per libc and option, which containers will not read an option;
// what to do instead is in the advice annotation and `dns-tuner explain`.
func ignoredWarnings(ignored []Ignored) []string {
	type key struct {
		libc   libc.Libc
		option string
	}
	var order []key
	names := map[key][]string{}
	for _, ig := range ignored {
		k := key{ig.Libc, ig.Option}
		if _, ok := names[k]; !ok {
			order = append(order, k)
		}
		names[k] = append(names[k], ig.Container)
	}
	out := make([]string, 0, len(order))
	for _, k := range order {
		const hint = "; see annotation " + AnnotationAdvice
		head := fmt.Sprintf("dns-tuner: %s in container ", k.libc)
		if len(names[k]) > 1 {
			head = fmt.Sprintf("dns-tuner: %s in containers ", k.libc)
		}
		verb := " ignores option " + clip(k.option, 40)
		list := nameList(names[k], MaxWarning-len(head)-len(verb))
		if list == "" {
			head, list = fmt.Sprintf("dns-tuner: %s in ", k.libc), countContainers(len(names[k]))
		}
		out = append(out, withHint(head+list+verb, hint))
	}
	return out
}

// adviceText is one line per libc and ignored option: what to do instead.
func adviceText(ignored []Ignored) string {
	seen := map[string]bool{}
	var lines []string
	for _, ig := range ignored {
		line := fmt.Sprintf("%s ignores %s: %s", ig.Libc, ig.Option, ig.Advice)
		if !seen[line] {
			seen[line] = true
			lines = append(lines, line)
		}
	}
	return strings.Join(lines, "\n")
}

func detectedLibc(containers []Container) string {
	parts := make([]string, 0, len(containers))
	for _, c := range containers {
		parts = append(parts, c.Name+"="+string(c.Verdict.Libc))
	}
	return strings.Join(parts, ",")
}

// inspectionState says why containers are unknown: per container, or per reason with a
// count when that list would be long.
func inspectionState(containers []Container) string {
	var parts []string
	size := 0
	for _, c := range containers {
		if c.Verdict.Libc == libc.Unknown && c.Verdict.Reason != "" {
			parts = append(parts, c.Name+": "+c.Verdict.Reason)
			size += len(parts[len(parts)-1]) + 2
		}
	}
	if size <= listCap {
		return strings.Join(parts, "; ")
	}
	var reasons []string
	count := map[string]int{}
	for _, c := range containers {
		if r := c.Verdict.Reason; c.Verdict.Libc == libc.Unknown && r != "" {
			if count[r] == 0 {
				reasons = append(reasons, r)
			}
			count[r]++
		}
	}
	for i, r := range reasons {
		reasons[i] = fmt.Sprintf("%d containers: %s", count[r], clip(r, shortCap))
	}
	return clip(strings.Join(reasons, "; "), listCap)
}

// evidenceJSON is what an image inspection found for each container, the chain from the
// entrypoint to the program that resolves names included, so an operator can check a
// verdict on the pod itself. Past listCap it says where to look instead.
func evidenceJSON(containers []Container) string {
	m := map[string]string{}
	for _, c := range containers {
		if c.Verdict.Evidence != "" && c.Verdict.Source != libc.SourceAnnotation {
			m[c.Name] = c.Verdict.Evidence
		}
	}
	if len(m) == 0 {
		return ""
	}
	b, _ := json.Marshal(m) // map keys are sorted: stable output
	if len(b) > listCap {
		return fmt.Sprintf("evidence for %d containers is longer than %d bytes: run dns-tuner explain", len(m), listCap)
	}
	return string(b)
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
