package main

import (
	"context"
	"fmt"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"

	"github.com/dns-tuner/dns-tuner/internal/mutate"
)

type memOptions struct {
	pods, containers, clients int
	idle                      time.Duration
	waitGC                    bool
	peakPods, peakContainers  int
}

type memResult struct {
	wide, peak result
	// reviews dns-tuner answered for the wide pods and for the huge ones.
	wideReviews, peakReviews int
	heapInuse, heapLive      float64 // after the idle time
	haveLive                 bool
	// lastGC is when the GC that marked heapLive ran, from the end of the wide pods.
	lastGC           time.Duration
	rssWide, rssPeak int64 // VmHWM after the idle time and after the peak
	heapInusePeak    float64
	// wideChanged and peakChanged count the created pods dns-tuner annotated: the others were
	// admitted without it (the API server gave up waiting, failurePolicy: Ignore).
	wideChanged, peakChanged int
}

// runMemory is finding 3's scenario on a fresh dns-tuner: distinct wide pods through the API
// server, an idle time, the heap and the peak RSS; then concurrent huge pods and the peak RSS.
func (e *env) runMemory(ctx context.Context) (memResult, error) {
	o := e.o.mem
	var m memResult
	if err := e.cluster.registerWebhook(ctx, e.port, e.caPEM); err != nil {
		return m, err
	}
	defer func() { _ = e.cluster.unregisterWebhook(context.Background()) }()
	dt, err := e.startDNSTuner(ctx, "dns-tuner-memory")
	if err != nil {
		return m, err
	}
	defer dt.stop()
	reviews := dt.reviews(ctx)
	base, err := reviews()
	if err != nil {
		return m, err
	}

	e.logf("memory: %d pods of %d containers", o.pods, o.containers)
	m.wide = createPods(ctx, e.cluster.cs, namespace, o.pods, o.clients, func(i int) *corev1.Pod {
		return widePod(namespace, fmt.Sprintf("m%03d", i), o.containers, e.reg.app, e.reg.sidecar)
	}, changed(&m.wideChanged))
	if err := dt.settle(ctx); err != nil {
		return m, err
	}
	loaded := time.Now()
	if m.wideReviews, err = reviews(); err != nil {
		return m, err
	}
	m.wideReviews -= base
	e.logf("memory: idle for %s", o.idle)
	select {
	case <-ctx.Done():
		return m, ctx.Err()
	case <-time.After(o.idle):
	}
	mm, err := dt.metrics(ctx)
	if err != nil {
		return m, err
	}
	m.heapInuse = mm["go_memstats_heap_inuse_bytes"]
	if m.rssWide, err = vmHWM(dt.pid()); err != nil {
		return m, err
	}
	// The live heap is known only at a GC. An idle process collects only when the runtime
	// forces it (every 2 minutes), so wait for the first GC after the load if none ran yet.
	for deadline := loaded.Add(o.idle + 2*time.Minute + 10*time.Second); ; {
		lastGC := time.Unix(0, int64(mm["go_memstats_last_gc_time_seconds"]*1e9))
		if lastGC.After(loaded) || time.Now().After(deadline) {
			m.heapLive, m.haveLive = mm["go_gc_heap_live_bytes"]
			m.lastGC = lastGC.Sub(loaded)
			break
		}
		if !o.waitGC {
			continue // report the live heap of the last GC, during the load
		}
		select {
		case <-ctx.Done():
			return m, ctx.Err()
		case <-time.After(5 * time.Second):
		}
		if mm, err = dt.metrics(ctx); err != nil {
			return m, err
		}
	}

	e.logf("memory: %d concurrent pods of %d containers", o.peakPods, o.peakContainers)
	before, err := reviews()
	if err != nil {
		return m, err
	}
	m.peak = createPods(ctx, e.cluster.cs, namespace, o.peakPods, o.peakPods, func(i int) *corev1.Pod {
		return widePod(namespace, fmt.Sprintf("w%02d", i), o.peakContainers, e.reg.app, e.reg.sidecar)
	}, changed(&m.peakChanged))
	if err := dt.settle(ctx); err != nil {
		return m, err
	}
	if m.peakReviews, err = reviews(); err != nil {
		return m, err
	}
	m.peakReviews -= before
	if mm, err = dt.metrics(ctx); err != nil {
		return m, err
	}
	m.heapInusePeak = mm["go_memstats_heap_inuse_bytes"]
	m.rssPeak, err = vmHWM(dt.pid())
	return m, err
}

// changed counts into n the pods that carry dns-tuner's status annotation.
func changed(n *int) func(*corev1.Pod) error {
	var mu sync.Mutex
	return func(p *corev1.Pod) error {
		if _, ok := p.Annotations[mutate.AnnotationStatus]; ok {
			mu.Lock()
			*n++
			mu.Unlock()
		}
		return nil
	}
}
