package mutate

import (
	"strings"
	"testing"

	"github.com/dns-tuner/dns-tuner/internal/libc"
	"github.com/dns-tuner/dns-tuner/internal/policy"
	"github.com/dns-tuner/dns-tuner/internal/policy/policytest"
)

// The pod carries the inspection's evidence, the wrapper chain included, so an operator can
// check a verdict with kubectl alone; overrides and unknowns have none, and a huge pod gets
// a pointer to explain instead of an unbounded list.
func TestEvidenceAnnotation(t *testing.T) {
	chain := "/tini → /usr/local/bin/app (layer 2 sha256:ab12): PT_INTERP /lib/ld-musl-x86_64.so.1"
	many := make([]Container, 200)
	for i := range many {
		many[i] = Container{Name: strings.Repeat("c", 10) + string(rune('a'+i%26)) + strings.Repeat("x", i), Verdict: libc.Verdict{Libc: libc.Musl, Source: libc.SourceEntrypoint, Evidence: chain}}
	}
	tests := []struct {
		name       string
		containers []Container
		want       string
	}{
		{"entrypoint chain", []Container{{Name: "app", Verdict: libc.Verdict{Libc: libc.Musl, Source: libc.SourceEntrypoint, Evidence: chain}}},
			`{"app":"` + chain + `"}`},
		{"annotation override has no evidence", []Container{{Name: "app", Verdict: libc.Verdict{Libc: libc.Musl, Source: libc.SourceAnnotation, Evidence: "pod annotation dns-tuner.io/libc"}}}, ""},
		{"unknown has none", []Container{{Name: "app", Verdict: libc.Verdict{Libc: libc.Unknown, Source: libc.SourceNone, Reason: "budget"}}}, ""},
		{"too long for a listing", many, "evidence for 200 containers is longer than 4096 bytes: run dns-tuner explain"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			pod := &Pod{Metadata: PodMeta{Name: "p", Namespace: "ns"}}
			plan := Decide(policytest.Policy(), pod, ModeDecision{Mode: policy.Enforce, Reason: "test"}, tt.containers)
			if got := plan.Annotations[AnnotationEvidence]; got != tt.want {
				t.Errorf("evidence annotation = %q, want %q", got, tt.want)
			}
		})
	}
}
