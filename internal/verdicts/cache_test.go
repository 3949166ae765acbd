package verdicts

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/remote"

	"github.com/dns-tuner/dns-tuner/internal/inspect"
	"github.com/dns-tuner/dns-tuner/internal/libc"
	"github.com/dns-tuner/dns-tuner/internal/registry"
)

// fakeClock is set by the test; TTLs and backoffs read it.
type fakeClock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *fakeClock) Now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.now }
func (c *fakeClock) Add(d time.Duration) {
	c.mu.Lock()
	c.now = c.now.Add(d)
	c.mu.Unlock()
}

// fakeInspector maps tags to digests and digests to verdicts, counts calls, and can block or
// fail on demand.
type fakeInspector struct {
	mu       sync.Mutex
	tags     map[string]v1.Hash // ref.Name() → digest
	libcs    map[v1.Hash]libc.Libc
	fail     error
	gate     chan struct{} // if set, Inspect waits for it
	resolves atomic.Int64
	inspects atomic.Int64
	running  atomic.Int64
	peak     atomic.Int64
}

func hash(s string) v1.Hash {
	h, _, err := v1.SHA256(strings.NewReader(s))
	if err != nil {
		panic(err)
	}
	return h
}

func newFake() *fakeInspector {
	return &fakeInspector{tags: map[string]v1.Hash{}, libcs: map[v1.Hash]libc.Libc{}}
}

// add makes image (a tag reference) resolve to a fresh digest whose verdict is l.
func (f *fakeInspector) add(image string, l libc.Libc) v1.Hash {
	f.mu.Lock()
	defer f.mu.Unlock()
	d := hash(fmt.Sprintf("%s %s %d", image, l, len(f.tags)))
	ref, err := name.ParseReference(image)
	if err != nil {
		panic(err)
	}
	f.tags[ref.Name()] = d
	f.libcs[d] = l
	return d
}

func (f *fakeInspector) Resolve(ctx context.Context, ref name.Reference, _ ...remote.Option) (v1.Hash, error) {
	f.resolves.Add(1)
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.fail != nil {
		return v1.Hash{}, f.fail
	}
	d, ok := f.tags[ref.Name()]
	if !ok {
		return v1.Hash{}, fmt.Errorf("no tag %s", ref)
	}
	return d, nil
}

func (f *fakeInspector) InspectContainer(ctx context.Context, ref name.Reference, c inspect.Container, _ ...remote.Option) (libc.Verdict, error) {
	command := c.Command
	f.inspects.Add(1)
	n := f.running.Add(1)
	defer f.running.Add(-1)
	for p := f.peak.Load(); n > p && !f.peak.CompareAndSwap(p, n); p = f.peak.Load() {
	}
	f.mu.Lock()
	gate, fail := f.gate, f.fail
	f.mu.Unlock()
	if gate != nil {
		select {
		case <-gate:
		case <-ctx.Done():
			return libc.Verdict{}, ctx.Err()
		}
	}
	if fail != nil {
		return libc.Verdict{}, fail
	}
	d, err := v1.NewHash(ref.Identifier())
	if err != nil {
		return libc.Verdict{}, err
	}
	f.mu.Lock()
	l := f.libcs[d]
	f.mu.Unlock()
	if len(command) > 0 {
		l = libc.Static
	}
	return libc.Verdict{Libc: l, Source: libc.SourceEntrypoint, Evidence: "fake", Digest: d.String()}, nil
}

func newCache(f *fakeInspector, clock Clock, o Options) *Cache {
	o.Inspector, o.Clock = f, clock
	return New(o)
}

func target(image string) libc.Target {
	return libc.Target{Namespace: "ns", PodName: "p", Container: "c", Image: image}
}

func detect(t *testing.T, c *Cache, tg libc.Target) libc.Verdict {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	v, _ := c.Detect(ctx, tg)
	return v
}

func TestCache(t *testing.T) {
	clock := &fakeClock{now: time.Unix(1e9, 0)}
	f := newFake()
	d := f.add("example.com/app:1", libc.Musl)
	c := newCache(f, clock, Options{TagTTL: time.Minute})
	defer c.Wait()
	digestImage := "example.com/app@" + d.String()

	steps := []struct {
		name     string
		advance  time.Duration
		target   libc.Target
		want     libc.Libc
		source   libc.Source
		resolves int64 // cumulative
		inspects int64
	}{
		{"first pod inspects", 0, target("example.com/app:1"), libc.Musl, libc.SourceEntrypoint, 1, 1},
		{"second pod hits", 0, target("example.com/app:1"), libc.Musl, libc.SourceCache, 1, 1},
		{"digest reference needs no resolve", 0, target(digestImage), libc.Musl, libc.SourceCache, 1, 1},
		{"tag still fresh", 59 * time.Second, target("example.com/app:1"), libc.Musl, libc.SourceCache, 1, 1},
		{"tag expired: resolve again, digest cached", 2 * time.Second, target("example.com/app:1"), libc.Musl, libc.SourceCache, 2, 1},
		{"command override is another entry", 0, libc.Target{Namespace: "ns", Image: digestImage, Command: []string{"/bin/x"}}, libc.Static, libc.SourceEntrypoint, 2, 2},
		{"same override hits", 0, libc.Target{Namespace: "ns", Image: digestImage, Command: []string{"/bin/x"}}, libc.Static, libc.SourceCache, 2, 2},
		{"other namespace, public image: hit", 0, libc.Target{Namespace: "other", Image: "example.com/app:1"}, libc.Musl, libc.SourceCache, 2, 2}, // anonymous tag answer shared
	}
	for _, s := range steps {
		clock.Add(s.advance)
		v := detect(t, c, s.target)
		if v.Libc != s.want || v.Source != s.source {
			t.Errorf("%s: verdict %s/%s (%s), want %s/%s", s.name, v.Libc, v.Source, v.Reason, s.want, s.source)
		}
		if v.Digest != d.String() {
			t.Errorf("%s: digest %q, want %s", s.name, v.Digest, d)
		}
		if r, i := f.resolves.Load(), f.inspects.Load(); r != s.resolves || i != s.inspects {
			t.Errorf("%s: %d resolves and %d inspections, want %d and %d", s.name, r, i, s.resolves, s.inspects)
		}
	}

	// The tag moves: once its TTL passes, the new digest is inspected.
	d2 := f.add("example.com/app:1", libc.GLibc)
	clock.Add(time.Minute + time.Second)
	if v := detect(t, c, target("example.com/app:1")); v.Libc != libc.GLibc || v.Digest != d2.String() {
		t.Errorf("after the tag moved: %s %s, want glibc %s", v.Libc, v.Digest, d2)
	}
}

// Containers that run different things must not share a cached verdict: the key tells apart
// every command, args, PATH and working directory, whatever the strings hold.
func TestCommandKey(t *testing.T) {
	keys := map[string]bool{}
	for _, tc := range []struct {
		cmd, args  []string
		path, wdir string
	}{
		{cmd: nil, args: nil}, {cmd: []string{}}, {cmd: []string{"a b"}}, {cmd: []string{"a", "b"}},
		{args: []string{"a", "b"}}, {cmd: []string{"a"}, args: []string{"b"}}, {cmd: []string{"1:a"}}, {cmd: []string{"1", "a"}},
		{cmd: []string{"./app"}, wdir: "/srv"}, {cmd: []string{"./app"}, wdir: "/opt"}, {cmd: []string{"./app"}},
		{cmd: []string{"app"}, path: "/bin"}, {cmd: []string{"app"}, path: "/bin;WD=4:/srv"}, {cmd: []string{"app"}, path: "/bin", wdir: "/srv"},
	} {
		k := commandKey(tc.cmd, tc.args, tc.path, tc.wdir)
		if keys[k] {
			t.Errorf("commandKey(%q, %q, %q, %q) = %q collides", tc.cmd, tc.args, tc.path, tc.wdir, k)
		}
		keys[k] = true
	}
}

func TestConcurrentDetectsShareOneInspection(t *testing.T) {
	f := newFake()
	f.add("example.com/app:1", libc.GLibc)
	f.gate = make(chan struct{})
	c := newCache(f, nil, Options{})
	var wg sync.WaitGroup
	verdicts := make([]libc.Verdict, 50)
	for i := range verdicts {
		wg.Add(1)
		go func() {
			defer wg.Done()
			tg := target("example.com/app:1")
			tg.Namespace = fmt.Sprintf("ns-%d", i%5) // several scopes, one anonymous principal
			verdicts[i] = detect(t, c, tg)
		}()
	}
	for f.inspects.Load() == 0 {
		time.Sleep(time.Millisecond)
	}
	time.Sleep(20 * time.Millisecond) // let the others pile up behind it
	close(f.gate)
	wg.Wait()
	c.Wait()
	if n := f.inspects.Load(); n != 1 {
		t.Errorf("%d inspections for 50 concurrent pods, want 1", n)
	}
	for i, v := range verdicts {
		if v.Libc != libc.GLibc {
			t.Errorf("pod %d: %s (%s)", i, v.Libc, v.Reason)
		}
	}
}

func TestConcurrencyIsBounded(t *testing.T) {
	f := newFake()
	for i := range 6 {
		f.add(fmt.Sprintf("example.com/app%d:1", i), libc.Musl)
	}
	f.gate = make(chan struct{})
	c := newCache(f, nil, Options{Concurrency: 2})
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
	defer cancel()
	for i := range 6 {
		go func() { _, _ = c.Detect(ctx, target(fmt.Sprintf("example.com/app%d:1", i))) }()
	}
	for f.inspects.Load() < 2 {
		time.Sleep(time.Millisecond)
	}
	time.Sleep(20 * time.Millisecond)
	close(f.gate)
	c.Wait()
	if p := f.peak.Load(); p != 2 {
		t.Errorf("peak concurrent inspections %d, want 2", p)
	}
	if n := f.inspects.Load(); n != 6 {
		t.Errorf("%d inspections, want 6 (all finish in the background)", n)
	}
}

func TestBudgetExceededFinishesInBackground(t *testing.T) {
	f := newFake()
	f.add("example.com/slow:1", libc.Musl)
	f.gate = make(chan struct{})
	c := newCache(f, nil, Options{})
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Millisecond)
	defer cancel()
	start := time.Now()
	v, err := c.Detect(ctx, target("example.com/slow:1"))
	if took := time.Since(start); took > time.Second {
		t.Errorf("Detect returned after %s, want about the 30ms budget", took)
	}
	if v.Libc != libc.Unknown || !errors.Is(err, context.DeadlineExceeded) || !strings.Contains(v.Reason, "background") {
		t.Errorf("past the budget: %s %q %v", v.Libc, v.Reason, err)
	}
	close(f.gate)
	c.Wait()
	v = detect(t, c, target("example.com/slow:1"))
	if v.Libc != libc.Musl || v.Source != libc.SourceCache {
		t.Errorf("next pod: %s/%s, want musl from the cache", v.Libc, v.Source)
	}
	if n := f.inspects.Load(); n != 1 {
		t.Errorf("%d inspections, want 1", n)
	}
}

func TestFailuresBackOff(t *testing.T) {
	clock := &fakeClock{now: time.Unix(1e9, 0)}
	f := newFake()
	f.add("example.com/flaky:1", libc.GLibc)
	f.fail = errors.New("registry says no")
	c := newCache(f, clock, Options{MinBackoff: time.Second, MaxBackoff: 4 * time.Second})
	tg := target("example.com/flaky:1")
	for _, s := range []struct {
		advance  time.Duration
		fix      bool
		attempts int64 // cumulative registry attempts
		want     libc.Libc
	}{
		{0, false, 1, libc.Unknown},
		{500 * time.Millisecond, false, 1, libc.Unknown}, // in the 1s backoff
		{600 * time.Millisecond, false, 2, libc.Unknown}, // retried, now 2s
		{1500 * time.Millisecond, false, 2, libc.Unknown},
		{600 * time.Millisecond, false, 3, libc.Unknown}, // now 4s
		{4 * time.Second, false, 4, libc.Unknown},        // capped at 4s
		{4 * time.Second, true, 5, libc.GLibc},           // recovered
		{0, false, 5, libc.GLibc},                        // and cached
	} {
		clock.Add(s.advance)
		if s.fix {
			f.mu.Lock()
			f.fail = nil
			f.mu.Unlock()
		}
		v := detect(t, c, tg)
		if got := f.resolves.Load(); v.Libc != s.want || got != s.attempts {
			t.Errorf("after +%s: %s (%s) with %d attempts, want %s with %d", s.advance, v.Libc, v.Reason, got, s.want, s.attempts)
		}
		if v.Libc == libc.Unknown && !strings.Contains(v.Reason, "registry says no") {
			t.Errorf("reason %q does not say why", v.Reason)
		}
	}
}

func TestEntriesAreBounded(t *testing.T) {
	f := newFake()
	c := newCache(f, nil, Options{Entries: 3})
	for i := range 5 {
		img := fmt.Sprintf("example.com/app%d:1", i)
		f.add(img, libc.Musl)
		detect(t, c, target(img))
	}
	if n := c.Len(); n != 3 {
		t.Errorf("%d entries, want 3", n)
	}
	// The oldest was evicted (inspected again), the newest was not.
	detect(t, c, target("example.com/app4:1"))
	detect(t, c, target("example.com/app0:1"))
	if n := f.inspects.Load(); n != 6 {
		t.Errorf("%d inspections, want 6", n)
	}
}

func TestRefusedReferenceIsNotInspected(t *testing.T) {
	g, err := registry.New(registry.Config{Denied: []string{"evil.example.com"}})
	if err != nil {
		t.Fatal(err)
	}
	f := newFake()
	c := newCache(f, nil, Options{ParseReference: g.ParseReference})
	v, err := c.Detect(context.Background(), target("evil.example.com/app:1"))
	if v.Libc != libc.Unknown || !registry.IsRefused(err) || !strings.Contains(v.Reason, "denied") {
		t.Errorf("got %s %q %v", v.Libc, v.Reason, err)
	}
	if f.resolves.Load()+f.inspects.Load() != 0 {
		t.Error("a refused image reached the inspector")
	}
}

func BenchmarkCacheHit(b *testing.B) {
	f := newFake()
	f.add("example.com/app:1", libc.Musl)
	c := New(Options{Inspector: f})
	tg := target("example.com/app:1")
	ctx := context.Background()
	if v, _ := c.Detect(ctx, tg); v.Libc != libc.Musl {
		b.Fatal(v)
	}
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if v, _ := c.Detect(ctx, tg); v.Source != libc.SourceCache {
				b.Fatal(v)
			}
		}
	})
}

// A flood of distinct images does not start a goroutine each: past MaxPending, misses are
// answered at once and nothing more is queued.
func TestPendingInspectionsAreBounded(t *testing.T) {
	f := newFake()
	f.gate = make(chan struct{})
	c := newCache(f, nil, Options{MaxPending: 4})
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Millisecond)
	defer cancel()
	busy := 0
	for i := range 20 {
		img := fmt.Sprintf("example.com/app%d:1", i)
		f.add(img, libc.Musl)
		v, err := c.Detect(ctx, target(img))
		if errors.Is(err, errBusy) {
			busy++
			if v.Libc != libc.Unknown || !strings.Contains(v.Reason, "pending") {
				t.Errorf("busy answer %s %q", v.Libc, v.Reason)
			}
		}
		if n := c.flights.running(); n > 4 {
			t.Fatalf("%d inspections pending, want at most 4", n)
		}
	}
	close(f.gate)
	c.Wait()
	if busy != 16 {
		t.Errorf("%d busy answers, want 16", busy)
	}
}
