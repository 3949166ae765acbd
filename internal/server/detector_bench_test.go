package server

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/go-logr/logr"
	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/remote"

	"github.com/dns-tuner/dns-tuner/internal/inspect"
	"github.com/dns-tuner/dns-tuner/internal/libc"
	"github.com/dns-tuner/dns-tuner/internal/mutate"
	"github.com/dns-tuner/dns-tuner/internal/policy"
	"github.com/dns-tuner/dns-tuner/internal/verdicts"
)

type muslInspector struct{}

func (muslInspector) Resolve(context.Context, name.Reference, ...remote.Option) (v1.Hash, error) {
	return v1.NewHash("sha256:" + fmt.Sprintf("%064x", 1))
}

func (muslInspector) InspectContainer(context.Context, name.Reference, inspect.Container, ...remote.Option) (libc.Verdict, error) {
	return libc.Verdict{Libc: libc.Musl, Source: libc.SourceEntrypoint}, nil
}

// BenchmarkDetectContainersCached is admission's detection of a 200-container pod whose
// verdicts are cached, through the verdict cache alone and through the wrapper serve builds:
// the two must cost the same (finding 4 of issue 8).
func BenchmarkDetectContainersCached(b *testing.B) {
	cache := verdicts.New(verdicts.Options{Inspector: muslInspector{}})
	src := &fixedSource{}
	p := policy.Default()
	p.Inspection.Enabled = true
	src.p.Store(p)
	wired := &policyDetector{src: src, log: logr.Discard(), build: func(policy.Inspection) (libc.Detector, error) { return cache, nil }}
	pod := &mutate.Pod{Metadata: mutate.PodMeta{Name: "p"}}
	for i := range 200 {
		pod.Spec.Containers = append(pod.Spec.Containers, mutate.PodContainer{Name: fmt.Sprint("c", i), Image: "example.com/app:1"})
	}
	if got, _ := verdicts.DetectContainers(context.Background(), cache, verdicts.Limits{Budget: time.Second}, "ns", pod); got[0].Verdict.Libc != libc.Musl {
		b.Fatal(got[0].Verdict)
	}
	for _, bc := range []struct {
		name string
		det  libc.Detector
	}{{"cache", cache}, {"serve", wired}} {
		b.Run(bc.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if got, _ := verdicts.DetectContainers(context.Background(), bc.det, verdicts.Limits{Budget: time.Second}, "ns", pod); got[199].Verdict.Source != libc.SourceCache {
					b.Fatal(got[199].Verdict)
				}
			}
		})
	}
}
