package mutate

import (
	"fmt"

	"github.com/dns-tuner/dns-tuner/internal/policy"
)

// ModeDecision is the mode for one pod and why, in words an operator can act on.
type ModeDecision struct {
	Mode     policy.Mode
	Reason   string
	Warnings []string // invalid labels or annotations that were ignored
}

// ResolveMode applies the precedence documented in the README:
//  1. a namespace excluded by policy is always off;
//  2. the namespace label dns-tuner.io/mode, if the policy allows namespaces to override,
//     else the cluster default mode;
//  3. the pod annotation dns-tuner.io/mode can only lower that (to audit or off).
//
// pod may be nil (a namespace's mode, without a pod).
func ResolveMode(p *policy.Policy, namespace string, nsLabels map[string]string, pod *Pod) ModeDecision {
	if p.Excluded(namespace) {
		return ModeDecision{Mode: policy.Off, Reason: fmt.Sprintf("namespace %s is excluded by policy", namespace)}
	}
	d := ModeDecision{Mode: p.Mode, Reason: fmt.Sprintf("cluster default mode %s", p.Mode)}
	if v, ok := nsLabels[LabelMode]; ok {
		switch m, err := policy.ParseMode(v); {
		case !p.AllowNamespaceOverride:
			d.Reason += fmt.Sprintf(" (namespace label %s=%s ignored: policy does not allow namespace overrides)", LabelMode, v)
		case err != nil:
			d.Warnings = append(d.Warnings, ClipWarning(fmt.Sprintf("dns-tuner: invalid mode %s in namespace label %s; using the cluster default %s", quoted(v), LabelMode, p.Mode)))
		default:
			d = ModeDecision{Mode: m, Reason: fmt.Sprintf("namespace label %s=%s", LabelMode, m)}
		}
	}
	if pod == nil {
		return d
	}
	if v, ok := pod.Metadata.Annotations[AnnotationMode]; ok {
		m, err := policy.ParseMode(v)
		switch {
		case err != nil:
			d.Warnings = append(d.Warnings, ClipWarning(fmt.Sprintf("dns-tuner: invalid mode %s in pod annotation %s; ignored", quoted(v), AnnotationMode)))
		case m == policy.Enforce && d.Mode != policy.Enforce:
			d.Warnings = append(d.Warnings, ClipWarning(fmt.Sprintf("dns-tuner: pod annotation %s=enforce ignored: a pod can lower its namespace's mode (%s), not raise it", AnnotationMode, d.Mode)))
		case policy.Lower(d.Mode, m) != d.Mode:
			d.Mode = m
			d.Reason = fmt.Sprintf("pod annotation %s=%s", AnnotationMode, m)
		}
	}
	return d
}
