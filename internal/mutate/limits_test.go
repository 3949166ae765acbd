package mutate

import (
	"fmt"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/validation"

	"github.com/dns-tuner/dns-tuner/internal/libc"
	"github.com/dns-tuner/dns-tuner/internal/policy"
	"github.com/dns-tuner/dns-tuner/internal/policy/policytest"
)

// userAnnotations returns annotations totalling exactly size bytes (keys plus values).
func userAnnotations(size int) map[string]string {
	out := map[string]string{}
	for i := 0; size > 0; i++ {
		k := fmt.Sprintf("example.com/a%d", i)
		n := min(size-len(k), 60000)
		if n < 0 {
			break
		}
		out[k] = strings.Repeat("x", n)
		size -= len(k) + n
	}
	return out
}

func annotationBytes(m map[string]string) int {
	n := 0
	for k, v := range m {
		n += len(k) + len(v)
	}
	return n
}

// manyContainers is a pod of n containers of the given libcs in turn.
func manyContainers(n int, libcs ...libc.Libc) (*Pod, []Container) {
	p := pod()
	p.Spec.Containers = nil
	var cs []Container
	for i := range n {
		name := fmt.Sprintf("worker-container-%05d", i)
		p.Spec.Containers = append(p.Spec.Containers, PodContainer{Name: name, Image: "registry.example/app:1"})
		v := libc.Verdict{Libc: libcs[i%len(libcs)]}
		if v.Libc == libc.Unknown {
			v.Reason = "inspection exceeded the 2s admission budget; later pods use its result once it finishes"
		}
		cs = append(cs, Container{Name: name, Verdict: v})
	}
	return p, cs
}

// Finding 2: the patched pod's annotations stay within the API server's limit, as its own
// validation (ValidateAnnotationsSize) counts them; the user's annotations are never
// changed; dns-tuner keeps its status annotation whenever it fits. Before the fix, 262,000
// bytes of user annotations plus dns-tuner's crossed 262,144 and the pod was rejected.
func TestAnnotationsStayWithinLimit(t *testing.T) {
	enforce := ModeDecision{Mode: policy.Enforce, Reason: "namespace label dns-tuner.io/mode=enforce"}
	audit := ModeDecision{Mode: policy.Audit, Reason: "namespace label dns-tuner.io/mode=audit"}
	big := func(size int) func(*Pod) {
		return func(p *Pod) { p.Metadata.Annotations = userAnnotations(size) }
	}
	tests := []struct {
		name       string
		pod        *Pod
		containers []Container
		mode       ModeDecision
		wantStatus bool // the status annotation is written
		wantAll    bool // every annotation dns-tuner wanted is written in full
	}{
		{"small pod", pod(), containers("app", "musl"), enforce, true, true},
		{"262,000 bytes of user annotations, enforce", pod(big(262000)), containers("app", "glibc"), enforce, true, false},
		{"262,000 bytes of user annotations, audit", pod(big(262000)), containers("app", "glibc"), audit, true, false},
		{"262,000 bytes, mixed libcs", pod(big(262000), withSidecar), containers("app", "glibc", "sidecar", "musl"), enforce, true, false},
		{"exactly at the limit", pod(big(MaxAnnotationBytes)), containers("app", "glibc"), enforce, false, false},
		{"10 bytes left", pod(big(MaxAnnotationBytes - 10)), containers("app", "glibc"), enforce, false, false},
		{"room for the status only", pod(big(MaxAnnotationBytes - len(AnnotationStatus) - len(StatusInjected))), containers("app", "glibc"), enforce, true, false},
		{"skipped pod near the limit", pod(big(262100), func(p *Pod) { p.Spec.DNSPolicy = corev1.DNSDefault }), containers("app", "glibc"), enforce, true, false},
	}
	p6000, c6000 := manyContainers(6000, libc.GLibc, libc.Musl)
	tests = append(tests, struct {
		name       string
		pod        *Pod
		containers []Container
		mode       ModeDecision
		wantStatus bool
		wantAll    bool
	}{"6,000 glibc and musl containers, no annotations", p6000, c6000, enforce, true, false})
	pu, cu := manyContainers(6000, libc.Unknown)
	tests = append(tests, struct {
		name       string
		pod        *Pod
		containers []Container
		mode       ModeDecision
		wantStatus bool
		wantAll    bool
	}{"6,000 unknown containers, no annotations", pu, cu, audit, true, false})

	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			user := map[string]string{}
			for k, v := range tt.pod.Metadata.Annotations {
				user[k] = v
			}
			plan := Decide(policytest.Policy(), tt.pod, tt.mode, tt.containers)
			after := applyPatch(t, tt.pod, Patch(tt.pod, plan))
			if err := validation.ValidateAnnotationsSize(after.Metadata.Annotations); err != nil {
				t.Fatalf("patched pod is invalid: %v", err)
			}
			for k, v := range user {
				if after.Metadata.Annotations[k] != v {
					t.Errorf("user annotation %s changed", k)
				}
			}
			_, status := after.Metadata.Annotations[AnnotationStatus]
			if status != tt.wantStatus {
				t.Errorf("status annotation written = %v, want %v (%d bytes of annotations)", status, tt.wantStatus, annotationBytes(after.Metadata.Annotations))
			}
			full := Decide(policytest.Policy(), pod(), tt.mode, tt.containers)
			if tt.wantAll && len(plan.Annotations) != len(full.Annotations) {
				t.Errorf("annotations %v, want all of %v", plan.Annotations, full.Annotations)
			}
			for k, v := range plan.Annotations {
				if len(v) > listCap {
					t.Errorf("annotation %s is %d bytes; a listing is summarised past %d", k, len(v), listCap)
				}
			}
			for _, w := range plan.Warnings {
				if len(w) > MaxWarning {
					t.Errorf("warning of %d bytes: %q", len(w), w)
				}
			}
			if len(plan.Warnings) > 5 {
				t.Errorf("%d warnings; want them grouped", len(plan.Warnings))
			}
		})
	}
}

func TestFitAnnotationsOrder(t *testing.T) {
	own := map[string]string{
		AnnotationStatus: StatusInjected, AnnotationReason: strings.Repeat("r", 1000),
		AnnotationDetectedLibc: "app=glibc", AnnotationAdvice: strings.Repeat("a", 500),
	}
	// Room for everything but the advice once the reason is shortened.
	room := len(AnnotationStatus) + len(StatusInjected) + len(AnnotationReason) + shortCap + len(AnnotationDetectedLibc) + len("app=glibc")
	existing := userAnnotations(MaxAnnotationBytes - room)
	kept, dropped := FitAnnotations(existing, own)
	if _, ok := kept[AnnotationAdvice]; ok || len(dropped) != 1 || dropped[0] != AnnotationAdvice {
		t.Errorf("dropped %v, want the advice only", dropped)
	}
	if len(kept[AnnotationReason]) != shortCap || kept[AnnotationDetectedLibc] != "app=glibc" || kept[AnnotationStatus] != StatusInjected {
		t.Errorf("kept %v", kept)
	}
	// A key dns-tuner drops keeps the pod's own value, which still counts.
	existing[AnnotationAdvice] = strings.Repeat("old", 100)
	kept, _ = FitAnnotations(existing, own)
	merged := map[string]string{}
	for k, v := range existing {
		merged[k] = v
	}
	for k, v := range kept {
		merged[k] = v
	}
	if err := validation.ValidateAnnotationsSize(merged); err != nil {
		t.Error(err)
	}
}
