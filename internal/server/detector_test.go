package server

import (
	"context"
	"errors"
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	"github.com/go-logr/logr"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/rest"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client/fake"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"

	"github.com/dns-tuner/dns-tuner/internal/libc"
	"github.com/dns-tuner/dns-tuner/internal/mutate"
	"github.com/dns-tuner/dns-tuner/internal/policy"
	"github.com/dns-tuner/dns-tuner/internal/verdicts"
)

type fixedSource struct{ p atomic.Pointer[policy.Policy] }

func (s *fixedSource) Current() *policy.Policy { return s.p.Load() }

type namedDetector string

func (n namedDetector) Detect(context.Context, libc.Target) (libc.Verdict, error) {
	return libc.Verdict{Libc: libc.Unknown, Reason: string(n)}, nil
}

func TestPolicyDetectorFollowsReloads(t *testing.T) {
	src := &fixedSource{}
	builds := 0
	d := &policyDetector{src: src, log: logr.Discard(), build: func(in policy.Inspection) (libc.Detector, error) {
		builds++
		if in.Platform == "bad" {
			return nil, errors.New("bad platform")
		}
		return namedDetector(in.Platform), nil
	}}
	set := func(platform string) {
		p := policy.Default()
		p.Inspection.Platform = platform
		src.p.Store(p)
	}
	for _, s := range []struct {
		platform string // "" keeps the current policy object
		want     string
		builds   int
	}{
		{"linux/amd64", "linux/amd64", 1},
		{"", "linux/amd64", 1},            // same object
		{"linux/amd64", "linux/amd64", 1}, // new object, same inspection section
		{"linux/arm64", "linux/arm64", 2},
		{"bad", "linux/arm64", 3}, // rejected: the last good detector stays
		{"", "linux/arm64", 3},    // and the bad one is not rebuilt on every pod
	} {
		if s.platform != "" {
			set(s.platform)
		}
		v, _ := d.Detect(context.Background(), libc.Target{})
		if v.Reason != s.want || builds != s.builds {
			t.Errorf("after %q: detector %q after %d builds, want %q after %d", s.platform, v.Reason, builds, s.want, s.builds)
		}
	}
}

func TestWarmerWantsOnlyInspectedNamespaces(t *testing.T) {
	scheme := runtime.NewScheme()
	if err := clientgoscheme.AddToScheme(scheme); err != nil {
		t.Fatal(err)
	}
	r := fake.NewClientBuilder().WithScheme(scheme).WithObjects(
		&corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "shop", Labels: map[string]string{mutate.LabelMode: "enforce"}}},
		&corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "audited", Labels: map[string]string{mutate.LabelMode: "audit"}}},
		&corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "plain"}},
		&corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "kube-system", Labels: map[string]string{mutate.LabelMode: "enforce"}}},
	).Build()
	on := policy.Default() // cluster mode off: namespaces opt in
	on.Inspection.Enabled = true
	off := policy.Default()
	for _, tc := range []struct {
		p    *policy.Policy
		ns   string
		want bool
	}{
		{on, "shop", true},
		{on, "audited", true},
		{on, "plain", false},       // not opted in
		{on, "kube-system", false}, // excluded whatever its label says
		{on, "missing", false},
		{off, "shop", false}, // inspection disabled
	} {
		if got := wanted(context.Background(), tc.p, r, tc.ns); got != tc.want {
			t.Errorf("wanted(%s, inspection %v) = %v, want %v", tc.ns, tc.p.Inspection.Enabled, got, tc.want)
		}
	}
}

// Finding 4 of issue 8: serve wrapped its detector in one that was not a MemoryDetector, so
// admission never took the cached fast path that the benchmarks measured.
func TestServeDetectorIsAMemoryDetector(t *testing.T) {
	mgr, err := ctrl.NewManager(&rest.Config{Host: "https://127.0.0.1:1"}, ctrl.Options{
		Metrics:                metricsserver.Options{BindAddress: "0"},
		HealthProbeBindAddress: "0",
	})
	if err != nil {
		t.Fatal(err)
	}
	for _, enabled := range []bool{true, false} {
		src := &fixedSource{}
		p := policy.Default()
		p.Inspection.Enabled = enabled
		src.p.Store(p)
		var det libc.Detector
		det, err := newDetector(context.Background(), Options{}, src, mgr, logr.Discard())
		if err != nil {
			t.Fatal(err)
		}
		if _, ok := det.(libc.MemoryDetector); !ok {
			t.Errorf("inspection enabled=%v: serve's detector %T is not a libc.MemoryDetector", enabled, det)
		}
	}
}

// countingDetector answers from memory for cached images and counts the calls that would
// start a goroutine and timer in admission.
type countingDetector struct {
	cached  map[string]libc.Libc
	detects atomic.Int64
}

func (c *countingDetector) Detect(context.Context, libc.Target) (libc.Verdict, error) {
	c.detects.Add(1)
	return libc.Verdict{Libc: libc.GLibc, Source: libc.SourceEntrypoint}, nil
}

func (c *countingDetector) DetectCached(t libc.Target) (libc.Verdict, error, bool) {
	l, ok := c.cached[t.Image]
	return libc.Verdict{Libc: l, Source: libc.SourceCache}, nil, ok
}

// Admission through the wrapper serve builds answers cached verdicts without Detect, and still
// asks Detect for the rest; with inspection disabled nothing waits at all.
func TestServeDetectorAnswersCachedVerdictsFromMemory(t *testing.T) {
	inner := &countingDetector{cached: map[string]libc.Libc{"cached:1": libc.Musl}}
	src := &fixedSource{}
	p := policy.Default()
	p.Inspection.Enabled = true
	src.p.Store(p)
	d := &policyDetector{src: src, log: logr.Discard(), build: func(in policy.Inspection) (libc.Detector, error) {
		if !in.Enabled {
			return libc.UnknownDetector{}, nil
		}
		return inner, nil
	}}
	pod := func(images ...string) *mutate.Pod {
		pod := &mutate.Pod{Metadata: mutate.PodMeta{Name: "p"}}
		for i, img := range images {
			pod.Spec.Containers = append(pod.Spec.Containers, mutate.PodContainer{Name: fmt.Sprint("c", i), Image: img})
		}
		return pod
	}
	for _, tc := range []struct {
		name    string
		enabled bool
		images  []string
		want    []libc.Libc
		detects int64
	}{
		{"cached", true, []string{"cached:1", "cached:1"}, []libc.Libc{libc.Musl, libc.Musl}, 0},
		{"one cached, one not", true, []string{"cached:1", "new:1"}, []libc.Libc{libc.Musl, libc.GLibc}, 1},
		{"inspection disabled", false, []string{"cached:1", "new:1"}, []libc.Libc{libc.Unknown, libc.Unknown}, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := policy.Default()
			p.Inspection.Enabled = tc.enabled
			src.p.Store(p)
			inner.detects.Store(0)
			got, _ := verdicts.DetectContainers(context.Background(), d, verdicts.Limits{Budget: time.Second}, "ns", pod(tc.images...))
			for i, c := range got {
				if c.Verdict.Libc != tc.want[i] {
					t.Errorf("container %d: %s, want %s", i, c.Verdict.Libc, tc.want[i])
				}
			}
			if n := inner.detects.Load(); n != tc.detects {
				t.Errorf("%d Detect calls, want %d", n, tc.detects)
			}
		})
	}
}
