package verdicts

import (
	"context"
	"fmt"
	"slices"
	"time"

	"github.com/dns-tuner/dns-tuner/internal/libc"
	"github.com/dns-tuner/dns-tuner/internal/metrics"
	"github.com/dns-tuner/dns-tuner/internal/mutate"
)

// DefaultMaxImages is Limits.MaxImages when unset.
const DefaultMaxImages = 16

// Limits bound the work detecting one pod's containers may cause.
type Limits struct {
	// Budget is the longest the caller waits for verdicts.
	Budget time.Duration
	// MaxImages bounds the distinct images (with their command and args) sent to the
	// detector; containers past it are unknown. Cached verdicts do not count. 0 means
	// DefaultMaxImages.
	MaxImages int
}

// DetectContainers decides every container's libc (init containers first). Containers that
// run the same image with the same command share one verdict; cached verdicts are read
// without a goroutine; at most lim.MaxImages others are detected concurrently, waiting at
// most lim.Budget, and a container without a verdict by then is unknown with the reason.
// The pod's dns-tuner.io/libc annotation wins over detection. Warnings are for the client.
func DetectContainers(ctx context.Context, det libc.Detector, lim Limits, namespace string, pod *mutate.Pod) ([]mutate.Container, []string) {
	var warnings []string
	n := len(pod.Spec.InitContainers) + len(pod.Spec.Containers)
	all := make([]mutate.Container, 0, n)
	specs := make([]*mutate.PodContainer, 0, n)
	for i := range pod.Spec.InitContainers {
		all = append(all, mutate.Container{Name: pod.Spec.InitContainers[i].Name, Init: true})
		specs = append(specs, &pod.Spec.InitContainers[i])
	}
	for i := range pod.Spec.Containers {
		all = append(all, mutate.Container{Name: pod.Spec.Containers[i].Name})
		specs = append(specs, &pod.Spec.Containers[i])
	}
	var overrides map[string]libc.Libc
	if v := pod.Metadata.Annotations[mutate.AnnotationLibc]; v != "" {
		names := make([]string, len(all))
		for i := range all {
			names[i] = all[i].Name
		}
		var err error
		if overrides, err = mutate.ParseLibcOverride(v, names); err != nil {
			warnings = append(warnings, mutate.ClipWarning(fmt.Sprintf("dns-tuner: pod annotation %s ignored: %v", mutate.AnnotationLibc, err)))
			overrides = nil
		}
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

	// One job per distinct image, command and args; members are indexes into all.
	type job struct {
		target  libc.Target
		members []int
		verdict libc.Verdict
		done    bool
	}
	var jobs []*job
	byImage := map[string][]*job{}
	for i := range all {
		if l, ok := overrides[all[i].Name]; ok {
			all[i].Verdict = libc.Verdict{Libc: l, Source: libc.SourceAnnotation, Evidence: "pod annotation " + mutate.AnnotationLibc}
			continue
		}
		s := specs[i]
		idx := slices.IndexFunc(byImage[s.Image], func(j *job) bool {
			return slices.Equal(j.target.Command, s.Command) && slices.Equal(j.target.Args, s.Args) && j.target.PathEnv == s.PathEnv() &&
				j.target.WorkingDir == s.WorkingDir
		})
		if idx >= 0 {
			j := byImage[s.Image][idx]
			j.members = append(j.members, i)
			continue
		}
		j := &job{members: []int{i}, target: libc.Target{
			Namespace: namespace, PodName: mutate.PodName(pod), Container: s.Name, Image: s.Image,
			Command: s.Command, Args: s.Args, PathEnv: s.PathEnv(), WorkingDir: s.WorkingDir, PullSecrets: pullSecrets, ServiceAccount: pod.Spec.ServiceAccountName,
		}}
		byImage[s.Image] = append(byImage[s.Image], j)
		jobs = append(jobs, j)
	}
	// Each container gets its job's verdict.
	assign := func() ([]mutate.Container, []string) {
		for _, j := range jobs {
			for _, i := range j.members {
				all[i].Verdict = j.verdict
			}
		}
		return all, warnings
	}

	maxImages := lim.MaxImages
	if maxImages <= 0 {
		maxImages = DefaultMaxImages
	}
	mem, _ := det.(libc.MemoryDetector)
	var waitFor []*job
	for _, j := range jobs {
		if mem != nil { // cached verdicts need no goroutine, channel or timer
			if v, err, ok := mem.DetectCached(j.target); ok {
				j.verdict, j.done = normalize(v, err), true
				continue
			}
		}
		if len(waitFor) == maxImages {
			j.verdict, j.done = libc.Verdict{Libc: libc.Unknown, Source: libc.SourceNone,
				Reason: fmt.Sprintf("not inspected: the pod has more than %d distinct images (policy inspection.maxImagesPerPod)", maxImages)}, true
			continue
		}
		waitFor = append(waitFor, j)
	}
	if len(waitFor) == 0 {
		return assign()
	}

	ctx, cancel := context.WithTimeout(ctx, lim.Budget)
	defer cancel()
	// Results arrive on a buffered channel so a detector that ignores its deadline can finish
	// late without blocking anyone; admission stops waiting at the budget either way.
	type result struct {
		j *job
		v libc.Verdict
	}
	results := make(chan result, len(waitFor))
	for _, j := range waitFor {
		go func() {
			defer func() {
				if r := recover(); r != nil {
					results <- result{j, libc.Verdict{Libc: libc.Unknown, Source: libc.SourceNone, Reason: fmt.Sprintf("detector panic: %v", r)}}
				}
			}()
			results <- result{j, normalize(det.Detect(ctx, j.target))}
		}()
	}
wait:
	for pending := len(waitFor); pending > 0; pending-- {
		select {
		case r := <-results:
			r.j.verdict, r.j.done = r.v, true
		case <-ctx.Done():
			break wait
		}
	}
	for drained := false; !drained; { // verdicts that raced the deadline still count
		select {
		case r := <-results:
			r.j.verdict, r.j.done = r.v, true
		default:
			drained = true
		}
	}
	for _, j := range waitFor {
		if !j.done {
			metrics.BudgetExceeded.Inc()
			j.verdict = libc.Verdict{Libc: libc.Unknown, Source: libc.SourceNone, Reason: fmt.Sprintf("inspection exceeded the %s admission budget; later pods use its result once it finishes", lim.Budget)}
		}
	}
	return assign()
}
