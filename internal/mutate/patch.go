package mutate

import (
	"sort"
	"strings"

	corev1 "k8s.io/api/core/v1"

	"github.com/dns-tuner/dns-tuner/internal/policy"
)

// Op is one JSON patch (RFC 6902) operation. Its fields are in the order the RFC writes
// them, and it encodes with encoding/json directly (jsonpatch's operation type marshals
// through a map and compacts the result, a fifth of the handler's time).
type Op struct {
	Operation string `json:"op"`
	Path      string `json:"path"`
	Value     any    `json:"value"`
}

// Patch turns a plan into JSON patch operations against the pod as submitted. It only ever
// adds: options are appended, NodeLocal DNSCache nameservers and searches inserted and
// annotations set, so fields dns-tuner does not know (from a newer API server) are never
// dropped, and a second pass over the result adds nothing. The None form's add of
// /spec/dnsPolicy replaces the defaulted ClusterFirst (RFC 6902: add on an existing member
// replaces it), so the patch holds even where the field is absent.
func Patch(pod *Pod, plan Plan) []Op {
	var ops []Op
	if plan.Mode == policy.Enforce && plan.changes() {
		opts := make([]any, len(plan.Inject))
		for i, o := range plan.Inject {
			opts[i] = optionValue(o)
		}
		if plan.NodeLocal.Form == NodeLocalNone {
			ops = append(ops, add("/spec/dnsPolicy", string(corev1.DNSNone)))
		}
		ops = append(ops, dnsConfigOps(pod, plan.NodeLocal, opts)...)
	}
	if len(plan.Annotations) == 0 {
		return ops
	}
	keys := make([]string, 0, len(plan.Annotations))
	for k := range plan.Annotations {
		if v, ok := pod.Metadata.Annotations[k]; !ok || v != plan.Annotations[k] {
			keys = append(keys, k)
		}
	}
	sort.Strings(keys)
	if len(pod.Metadata.Annotations) == 0 {
		if len(keys) > 0 {
			m := make(map[string]any, len(keys))
			for _, k := range keys {
				m[k] = plan.Annotations[k]
			}
			ops = append(ops, add("/metadata/annotations", m))
		}
		return ops
	}
	for _, k := range keys {
		ops = append(ops, add("/metadata/annotations/"+escape(k), plan.Annotations[k]))
	}
	return ops
}

func optionValue(o policy.Option) map[string]any {
	m := map[string]any{"name": o.Name}
	if o.Value != nil {
		m["value"] = *o.Value
	}
	return m
}

func add(path string, value any) Op {
	return Op{Operation: "add", Path: path, Value: value}
}

// escape encodes a key as a JSON pointer token (RFC 6901).
func escape(s string) string {
	return strings.ReplaceAll(strings.ReplaceAll(s, "~", "~0"), "/", "~1")
}
