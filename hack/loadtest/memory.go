package main

import (
	"context"
	"fmt"
	"time"

	corev1 "k8s.io/api/core/v1"
)

type memOptions struct {
	pods, containers, clients int
	idle                      time.Duration
	peakPods, peakContainers  int
}

type memResult struct {
	wide, peak result
	// reviews dns-tuner answered for the wide pods and for the huge ones.
	wideReviews, peakReviews int
	heapInuse, heapLive      float64 // after the idle time
	haveLive                 bool
	rssWide, rssPeak         int64 // VmHWM after the idle time and after the peak
	heapInusePeak            float64
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
	}, nil)
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
	m.heapLive, m.haveLive = mm["go_gc_heap_live_bytes"]
	if m.rssWide, err = vmHWM(dt.pid()); err != nil {
		return m, err
	}

	e.logf("memory: %d concurrent pods of %d containers", o.peakPods, o.peakContainers)
	before, err := reviews()
	if err != nil {
		return m, err
	}
	m.peak = createPods(ctx, e.cluster.cs, namespace, o.peakPods, o.peakPods, func(i int) *corev1.Pod {
		return widePod(namespace, fmt.Sprintf("w%02d", i), o.peakContainers, e.reg.app, e.reg.sidecar)
	}, nil)
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
