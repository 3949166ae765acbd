package verdicts

import (
	"context"
	"errors"
	"fmt"
	"runtime"
	"strings"
	"testing"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/remote"

	"github.com/dns-tuner/dns-tuner/internal/inspect"
	"github.com/dns-tuner/dns-tuner/internal/libc"
)

func TestBoundedLRU(t *testing.T) {
	c := newBoundedLRU(100, 10, func(_ string, v string) int64 { return int64(len(v)) }, nil)
	for _, s := range []struct {
		op, k, v string
		keys     string // present afterwards, oldest first
		bytes    int64
	}{
		{"add", "a", "xxx", "a", 3},
		{"add", "b", "xxx", "a b", 6},
		{"add", "c", "xxx", "a b c", 9},
		{"get", "a", "", "b c a", 9},
		{"add", "d", "xx", "c a d", 8},        // b was least recently used
		{"add", "c", "xxxxxxx", "d c", 9},     // growing c evicts a, not c itself
		{"add", "e", "xxxxxxxxxxx", "d c", 9}, // larger than the budget: not kept
		{"add", "c", "xxxxxxxxxxx", "d", 2},   // nor when it replaces a value
		{"remove", "d", "", "", 0},
	} {
		switch s.op {
		case "add":
			c.add(s.k, s.v)
		case "get":
			c.get(s.k)
		case "remove":
			c.remove(s.k)
		}
		if got := strings.Join(c.lru.Keys(), " "); got != s.keys || c.accounted() != s.bytes {
			t.Errorf("after %s %s: keys %q (%d bytes), want %q (%d)", s.op, s.k, got, c.accounted(), s.keys, s.bytes)
		}
	}
}

// bigInspector answers every image with a verdict whose evidence is large, or fails with a
// large error: what a cache must hold within its byte budget.
type bigInspector struct {
	evidence int
	fail     error
}

func (b *bigInspector) Resolve(_ context.Context, ref name.Reference, _ ...remote.Option) (v1.Hash, error) {
	return hash(ref.Name()), nil
}

func (b *bigInspector) InspectContainer(_ context.Context, ref name.Reference, _ inspect.Container, _ ...remote.Option) (libc.Verdict, error) {
	if b.fail != nil {
		return libc.Verdict{}, b.fail
	}
	return libc.Verdict{Libc: libc.Musl, Source: libc.SourceEntrypoint, Evidence: strings.Repeat("e", b.evidence) + ref.Identifier()}, nil
}

// sizedKeychain holds credentials and says how large they are, as registry.PodKeychains' do.
type sizedKeychain struct {
	credKeychain
	n int64
}

func (k sizedKeychain) Bytes() int64 { return k.n }

func liveHeap() uint64 {
	runtime.GC()
	runtime.GC()
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return m.HeapAlloc
}

// Finding 3 of issue 8: caches capped in entries let large entries grow the heap without
// bound. Many distinct images with 16 KiB of evidence each, long registry errors, large
// credentials and one image seen by many scopes stay within the byte budget.
func TestCachesAreBoundedInBytes(t *testing.T) {
	if testing.Short() {
		t.Skip("fills caches with tens of MiB")
	}
	const budget = 1 << 20
	insp := &bigInspector{evidence: 16 << 10}
	c := New(Options{
		Inspector: insp, MaxBytes: budget, Entries: 1 << 20,
		Keychain: func(_ context.Context, ns, _ string, secrets []string) (authn.Keychain, error) {
			if len(secrets) == 0 {
				return anonymousKeychain{}, nil
			}
			return sizedKeychain{credKeychain{ns}, 64 << 10}, nil
		},
		Access: func(context.Context, name.Digest, authn.Keychain) error { return nil },
	})
	check := func(phase string, i int) {
		if b := c.Bytes(); b > budget {
			t.Fatalf("%s %d: %d bytes accounted, budget %d", phase, i, b, budget)
		}
	}
	before := liveHeap()
	const n = 2000 // 32 MiB of evidence alone without a byte bound
	for i := range n {
		// Distinct images, long commands, and every tenth pod with its own credentials.
		tg := target(fmt.Sprintf("example.com/app%d:1", i))
		tg.Command = []string{strings.Repeat("c", 1<<10)}
		if i%10 == 0 {
			tg.Namespace, tg.PullSecrets = fmt.Sprintf("tenant-%d", i), []string{"pull"}
		}
		detect(t, c, tg)
		check("verdict", i)
	}
	for i := range n { // one image that many scopes may pull: its scope set grows
		detect(t, c, libc.Target{Namespace: fmt.Sprintf("ns-%d-%s", i, strings.Repeat("n", 50)), Image: "example.com/shared:1", PullSecrets: []string{"pull"}})
		check("scope", i)
	}
	insp.fail = errors.New(strings.Repeat("registry error text ", 1<<12))
	for i := range n {
		detect(t, c, target(fmt.Sprintf("example.com/broken%d:1", i)))
		check("failure", i)
	}
	c.Wait()
	grown := int64(liveHeap()) - int64(before)
	t.Logf("%d verdicts, %d bytes accounted, live heap grew %d KiB", c.Len(), c.Bytes(), grown>>10)
	// The estimate errs high; allow slack for what it does not see (maps, the metrics).
	if grown > 2*budget {
		t.Errorf("live heap grew %d KiB for a %d KiB budget", grown>>10, budget>>10)
	}
	runtime.KeepAlive(c)
}
