package verdicts

import (
	"context"
	"fmt"
	"time"

	corev1 "k8s.io/api/core/v1"

	"github.com/dns-tuner/dns-tuner/internal/libc"
	"github.com/dns-tuner/dns-tuner/internal/metrics"
	"github.com/dns-tuner/dns-tuner/internal/mutate"
)

// DetectContainers asks det about every container (init containers first) concurrently and
// waits at most budget; a container without a verdict by then is unknown with the reason.
// The pod's dns-tuner.io/libc annotation wins over detection. Warnings are for the client.
func DetectContainers(ctx context.Context, det libc.Detector, budget time.Duration, namespace string, pod *corev1.Pod) ([]mutate.Container, []string) {
	var warnings []string
	all := make([]mutate.Container, 0, len(pod.Spec.InitContainers)+len(pod.Spec.Containers))
	specs := make([]*corev1.Container, 0, cap(all))
	for i := range pod.Spec.InitContainers {
		all = append(all, mutate.Container{Name: pod.Spec.InitContainers[i].Name, Init: true})
		specs = append(specs, &pod.Spec.InitContainers[i])
	}
	for i := range pod.Spec.Containers {
		all = append(all, mutate.Container{Name: pod.Spec.Containers[i].Name})
		specs = append(specs, &pod.Spec.Containers[i])
	}
	names := make([]string, len(all))
	for i := range all {
		names[i] = all[i].Name
	}
	overrides, err := mutate.ParseLibcOverride(pod.Annotations[mutate.AnnotationLibc], names)
	if err != nil {
		warnings = append(warnings, fmt.Sprintf("dns-tuner: pod annotation %s ignored: %v", mutate.AnnotationLibc, err))
		overrides = nil
	}

	pullSecrets := make([]string, 0, len(pod.Spec.ImagePullSecrets))
	for _, s := range pod.Spec.ImagePullSecrets {
		pullSecrets = append(pullSecrets, s.Name)
	}
	normalize := func(v libc.Verdict, err error) libc.Verdict {
		if err == nil && v.Libc != "" {
			return v
		}
		reason := v.Reason
		if reason == "" && err != nil {
			reason = err.Error()
		}
		return libc.Verdict{Libc: libc.Unknown, Source: libc.SourceNone, Reason: reason, Digest: v.Digest}
	}
	mem, _ := det.(libc.MemoryDetector)
	var waitFor []int
	targets := make([]libc.Target, len(all))
	for i := range all {
		if l, ok := overrides[all[i].Name]; ok {
			all[i].Verdict = libc.Verdict{Libc: l, Source: libc.SourceAnnotation, Evidence: "pod annotation " + mutate.AnnotationLibc}
			continue
		}
		targets[i] = libc.Target{
			Namespace: namespace, PodName: mutate.PodName(pod), Container: specs[i].Name, Image: specs[i].Image,
			Command: specs[i].Command, Args: specs[i].Args, PullSecrets: pullSecrets, ServiceAccount: pod.Spec.ServiceAccountName,
		}
		if mem != nil { // cached verdicts need no goroutine, channel or timer
			if v, err, ok := mem.DetectCached(targets[i]); ok {
				all[i].Verdict = normalize(v, err)
				continue
			}
		}
		waitFor = append(waitFor, i)
	}
	if len(waitFor) == 0 {
		return all, warnings
	}

	ctx, cancel := context.WithTimeout(ctx, budget)
	defer cancel()
	// Results arrive on a buffered channel so a detector that ignores its deadline can finish
	// late without blocking anyone; admission stops waiting at the budget either way.
	type result struct {
		i int
		v libc.Verdict
	}
	results := make(chan result, len(waitFor))
	pending := len(waitFor)
	for _, i := range waitFor {
		go func(i int) {
			defer func() {
				if r := recover(); r != nil {
					results <- result{i, libc.Verdict{Libc: libc.Unknown, Source: libc.SourceNone, Reason: fmt.Sprintf("detector panic: %v", r)}}
				}
			}()
			results <- result{i, normalize(det.Detect(ctx, targets[i]))}
		}(i)
	}
	got := make([]bool, len(all))
wait:
	for ; pending > 0; pending-- {
		select {
		case r := <-results:
			all[r.i].Verdict, got[r.i] = r.v, true
		case <-ctx.Done():
			break wait
		}
	}
	for drained := false; !drained; { // verdicts that raced the deadline still count
		select {
		case r := <-results:
			all[r.i].Verdict, got[r.i] = r.v, true
		default:
			drained = true
		}
	}
	for i := range all {
		if all[i].Verdict.Libc == "" && !got[i] {
			metrics.BudgetExceeded.Inc()
			all[i].Verdict = libc.Verdict{Libc: libc.Unknown, Source: libc.SourceNone, Reason: fmt.Sprintf("inspection exceeded the %s admission budget; later pods use its result once it finishes", budget)}
		}
	}
	return all, warnings
}
