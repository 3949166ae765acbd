package verdicts

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/dns-tuner/dns-tuner/internal/libc"
	"github.com/dns-tuner/dns-tuner/internal/mutate"
)

// countingDetector answers from a table and records what it was asked.
type countingDetector struct {
	table   map[string]libc.Libc
	calls   atomic.Int64
	mu      sync.Mutex
	targets []libc.Target
}

func (d *countingDetector) Detect(_ context.Context, t libc.Target) (libc.Verdict, error) {
	d.calls.Add(1)
	d.mu.Lock()
	d.targets = append(d.targets, t)
	d.mu.Unlock()
	if l, ok := d.table[t.Image]; ok {
		return libc.Verdict{Libc: l, Source: libc.SourceEntrypoint}, nil
	}
	return libc.Verdict{Libc: libc.GLibc, Source: libc.SourceEntrypoint}, nil
}

type memoryDetector struct{ *countingDetector }

func (d memoryDetector) DetectCached(t libc.Target) (libc.Verdict, error, bool) {
	l, ok := d.table[t.Image]
	return libc.Verdict{Libc: l, Source: libc.SourceCache}, nil, ok
}

func podWith(containers ...mutate.PodContainer) *mutate.Pod {
	p := &mutate.Pod{}
	p.Metadata.Name = "web"
	p.Spec.Containers = containers
	return p
}

// Finding 3, per-request work: containers sharing an image and command are detected once,
// at most MaxImages distinct images go to the detector, the rest are unknown with a reason,
// and cached verdicts start no goroutine. Before, every container was detected on its own.
func TestDetectContainersBoundsWork(t *testing.T) {
	lim := Limits{Budget: 5 * time.Second, MaxImages: 3}
	ctx := context.Background()

	t.Run("same image and command detected once", func(t *testing.T) {
		d := &countingDetector{table: map[string]libc.Libc{"musl-app": libc.Musl}}
		var cs []mutate.PodContainer
		for i := range 100 {
			cs = append(cs, mutate.PodContainer{Name: fmt.Sprintf("c%d", i), Image: "musl-app"})
		}
		cs = append(cs, mutate.PodContainer{Name: "other-command", Image: "musl-app", Command: []string{"/bin/sh"}})
		got, _ := DetectContainers(ctx, d, lim, "shop", podWith(cs...))
		if n := d.calls.Load(); n != 2 {
			t.Errorf("detector called %d times, want 2 (one per image and command)", n)
		}
		for _, c := range got {
			if c.Verdict.Libc != libc.Musl {
				t.Fatalf("%s = %s, want musl", c.Name, c.Verdict.Libc)
			}
		}
	})

	t.Run("at most MaxImages distinct images", func(t *testing.T) {
		d := &countingDetector{}
		var cs []mutate.PodContainer
		for i := range 50 {
			cs = append(cs, mutate.PodContainer{Name: fmt.Sprintf("c%d", i), Image: fmt.Sprintf("img-%d", i)})
		}
		got, _ := DetectContainers(ctx, d, lim, "shop", podWith(cs...))
		if n := d.calls.Load(); n != 3 {
			t.Errorf("detector called %d times, want 3", n)
		}
		unknown := 0
		for _, c := range got {
			if c.Verdict.Libc == libc.Unknown {
				unknown++
				if !strings.Contains(c.Verdict.Reason, "inspection.maxImagesPerPod") {
					t.Errorf("%s: reason %q does not name the policy knob", c.Name, c.Verdict.Reason)
				}
			}
		}
		if unknown != 47 {
			t.Errorf("%d unknown, want 47", unknown)
		}
	})

	t.Run("zero means the default", func(t *testing.T) {
		d := &countingDetector{}
		var cs []mutate.PodContainer
		for i := range 40 {
			cs = append(cs, mutate.PodContainer{Name: fmt.Sprintf("c%d", i), Image: fmt.Sprintf("img-%d", i)})
		}
		DetectContainers(ctx, d, Limits{Budget: time.Second}, "shop", podWith(cs...))
		if n := d.calls.Load(); n != DefaultMaxImages {
			t.Errorf("detector called %d times, want %d", n, DefaultMaxImages)
		}
	})

	t.Run("cached verdicts do not count and start no goroutine", func(t *testing.T) {
		table := map[string]libc.Libc{}
		var cs []mutate.PodContainer
		for i := range 2000 {
			img := fmt.Sprintf("img-%d", i)
			table[img] = libc.Musl
			cs = append(cs, mutate.PodContainer{Name: fmt.Sprintf("c%d", i), Image: img})
		}
		d := memoryDetector{&countingDetector{table: table}}
		pod := podWith(cs...)
		allocs := testing.AllocsPerRun(5, func() { DetectContainers(ctx, d, lim, "shop", pod) })
		got, _ := DetectContainers(ctx, d, lim, "shop", pod)
		if n := d.calls.Load(); n != 0 {
			t.Errorf("Detect called %d times for cached images", n)
		}
		for _, c := range got {
			if c.Verdict.Libc != libc.Musl {
				t.Fatalf("%s = %s", c.Name, c.Verdict.Libc)
			}
		}
		// A goroutine, channel and timer per container would cost several allocations each.
		if per := allocs / 2000; per > 4 {
			t.Errorf("%.1f allocations per cached container", per)
		}
	})

	t.Run("annotation override needs no detection", func(t *testing.T) {
		d := &countingDetector{}
		pod := podWith(mutate.PodContainer{Name: "app", Image: "x"}, mutate.PodContainer{Name: "side", Image: "y"})
		pod.Metadata.Annotations = map[string]string{mutate.AnnotationLibc: "app=musl"}
		got, warnings := DetectContainers(ctx, d, lim, "shop", pod)
		if d.calls.Load() != 1 || got[0].Verdict.Source != libc.SourceAnnotation || len(warnings) != 0 {
			t.Errorf("calls=%d got=%+v warnings=%q", d.calls.Load(), got, warnings)
		}
	})
}
