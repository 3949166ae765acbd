package audit

import (
	"context"
	"sync"
	"time"

	"github.com/dns-tuner/dns-tuner/internal/libc"
)

// Verdicts is a libc.MemoryDetector holding the verdicts Inspect decided, so that Build
// reads each distinct image's verdict from memory instead of inspecting it per workload.
type Verdicts struct {
	mu   sync.Mutex
	m    map[string]result
	next libc.Detector
}

type result struct {
	v   libc.Verdict
	err error
}

var _ libc.MemoryDetector = &Verdicts{}

// Inspect decides every target with det, at most concurrency at once, each within timeout.
// progress, when not nil, is called after each target with the count done.
func Inspect(ctx context.Context, det libc.Detector, targets []libc.Target, concurrency int, timeout time.Duration, progress func(done, total int)) *Verdicts {
	vs := &Verdicts{m: make(map[string]result, len(targets)), next: det}
	concurrency = max(concurrency, 1)
	sem := make(chan struct{}, concurrency)
	var wg sync.WaitGroup
	done := 0
	for _, t := range targets {
		sem <- struct{}{}
		wg.Add(1)
		go func() {
			defer func() { <-sem; wg.Done() }()
			tctx, cancel := context.WithTimeout(ctx, timeout)
			v, err := det.Detect(tctx, t)
			cancel()
			vs.mu.Lock()
			vs.m[TargetKey(t)] = result{v, err}
			done++
			n := done
			if progress != nil {
				progress(n, len(targets))
			}
			vs.mu.Unlock()
		}()
	}
	wg.Wait()
	return vs
}

// DetectCached answers targets Inspect decided.
func (vs *Verdicts) DetectCached(t libc.Target) (libc.Verdict, error, bool) {
	vs.mu.Lock()
	defer vs.mu.Unlock()
	r, ok := vs.m[TargetKey(t)]
	return r.v, r.err, ok
}

// Detect answers from memory, or asks the detector Inspect was given.
func (vs *Verdicts) Detect(ctx context.Context, t libc.Target) (libc.Verdict, error) {
	if v, err, ok := vs.DetectCached(t); ok {
		return v, err
	}
	if vs.next == nil {
		return libc.Verdict{Libc: libc.Unknown, Source: libc.SourceNone, Reason: "not inspected"}, nil
	}
	return vs.next.Detect(ctx, t)
}
