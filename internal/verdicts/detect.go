// Package detect makes registry inspection fit admission: verdicts cached by image digest,
// tags resolved at most once a minute, one inspection per image however many pods ask,
// failures backed off, and inspections that outlive the admission budget so the next pod
// finds their result.
//
// Credentials and the cache: verdicts are keyed by digest (a verdict is not secret), but each
// entry remembers who could pull the image: "public" once anyone fetched it anonymously, else
// the credential scopes (namespace, ServiceAccount, pull-secret names) that fetched it. A pod
// whose scope is not on the entry first proves access with its own keychain (one manifest
// HEAD) before it is served the verdict, so a private image's existence and contents never
// leak to a pod that could not pull it. Tag→digest answers are cached per principal (anonymous
// or scope) for the same reason.
package verdicts

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/go-logr/logr"
	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/remote"

	"github.com/dns-tuner/dns-tuner/internal/inspect"
	"github.com/dns-tuner/dns-tuner/internal/libc"
	"github.com/dns-tuner/dns-tuner/internal/metrics"
)

// Inspector is what Cached needs from internal/inspect.Inspector.
type Inspector interface {
	// Resolve turns a tag (or index) into the digest of the platform image.
	Resolve(ctx context.Context, ref name.Reference, extra ...remote.Option) (v1.Hash, error)
	// Inspect decides the libc of the image ref runs with command and args.
	Inspect(ctx context.Context, ref name.Reference, command, args []string, extra ...remote.Option) (libc.Verdict, error)
}

// KeychainFunc returns one pod's registry credentials (registry.PodKeychains.Keychain).
type KeychainFunc func(ctx context.Context, namespace, serviceAccount string, pullSecrets []string) (authn.Keychain, error)

// AccessFunc returns nil if kc may pull ref.
type AccessFunc func(ctx context.Context, ref name.Digest, kc authn.Keychain) error

// Clock is the time source of TTLs and backoffs; tests inject a fake.
type Clock interface{ Now() time.Time }

type realClock struct{}

func (realClock) Now() time.Time { return time.Now() }

// Options configure Cached. Zero values take the defaults in brackets.
type Options struct {
	Inspector Inspector
	// ParseReference applies the registry policy (registry.Guard.ParseReference) [name.ParseReference].
	ParseReference func(image string) (name.Reference, error)
	// Keychain returns a pod's credentials [anonymous for every pod].
	Keychain KeychainFunc
	// Access proves a pod may pull a digest [manifest HEAD with RemoteOptions].
	Access AccessFunc
	// RemoteOptions are used by the default Access: the guarded transport and retries.
	RemoteOptions []remote.Option

	Timeout     time.Duration // one background inspection, credentials to verdict [20s]
	Entries     int           // verdicts kept [4096]
	TagTTL      time.Duration // tag→digest answers [1m]
	KeychainTTL time.Duration // a pod scope's credentials [1m]
	MinBackoff  time.Duration // after a first failure [2s]
	MaxBackoff  time.Duration // doubled per failure up to [5m]
	Concurrency int           // registry operations at once [8]
	Clock       Clock
	Log         logr.Logger
	// BaseContext ends background inspections (manager shutdown) [context.Background()].
	BaseContext context.Context
}

// Cached is a libc.Detector over an Inspector. Safe for concurrent use.
type Cached struct {
	o           Options
	verdicts    *lru[string, entry]
	tags        *lru[string, expiring[v1.Hash]]
	keychains   *lru[string, expiring[authn.Keychain]]
	failures    *lru[string, failure]
	refs        *lru[string, name.Reference] // parsed image references: admission parses the same few
	flights     group                        // per pod scope, image and command: what admission waits for
	inspections group                        // per principal, digest and command: the registry work
	keychainsIn group                        // per scope: Kubernetes API reads
	sem         chan struct{}
}

var _ libc.Detector = (*Cached)(nil)

// anon is the principal of a pull that used no credentials.
const anon = "anonymous"

var errBusy = errors.New("all inspection slots busy")

// New returns a Cached detector.
func New(o Options) *Cached {
	def := func(d *time.Duration, v time.Duration) {
		if *d <= 0 {
			*d = v
		}
	}
	def(&o.Timeout, 20*time.Second)
	def(&o.TagTTL, time.Minute)
	def(&o.KeychainTTL, time.Minute)
	def(&o.MinBackoff, 2*time.Second)
	def(&o.MaxBackoff, 5*time.Minute)
	if o.Entries <= 0 {
		o.Entries = 4096
	}
	if o.Concurrency <= 0 {
		o.Concurrency = 8
	}
	if o.Clock == nil {
		o.Clock = realClock{}
	}
	if o.BaseContext == nil {
		o.BaseContext = context.Background()
	}
	if o.ParseReference == nil {
		o.ParseReference = func(s string) (name.Reference, error) { return name.ParseReference(s) }
	}
	c := &Cached{
		o:         o,
		verdicts:  newLRU[string, entry](o.Entries, func(n int) { metrics.CacheSize.Set(float64(n)) }),
		tags:      newLRU[string, expiring[v1.Hash]](o.Entries, nil),
		keychains: newLRU[string, expiring[authn.Keychain]](1024, nil),
		failures:  newLRU[string, failure](o.Entries, nil),
		refs:      newLRU[string, name.Reference](o.Entries, nil),
		sem:       make(chan struct{}, o.Concurrency),
	}
	if c.o.Access == nil {
		c.o.Access = c.headManifest
	}
	return c
}

// Wait blocks until no background work is running: for tests and graceful shutdown.
func (c *Cached) Wait() {
	c.flights.wg.Wait()
	c.inspections.wg.Wait()
	c.keychainsIn.wg.Wait()
}

// Len is the number of verdicts cached.
func (c *Cached) Len() int { return c.verdicts.len() }

// parse applies ParseReference once per image string: the registry policy it checks is fixed
// for this detector's life (a policy change builds a new one), and refused images are not
// remembered, so their error and metric are reported every time.
func (c *Cached) parse(image string) (name.Reference, error) {
	if ref, ok := c.refs.get(image); ok {
		return ref, nil
	}
	ref, err := c.o.ParseReference(image)
	if err == nil {
		c.refs.add(image, ref)
	}
	return ref, err
}

// DetectCached implements libc.MemoryDetector: the answer Detect would give from memory
// alone, or ok=false when Detect would have to wait for the registry or the API server.
func (c *Cached) DetectCached(t libc.Target) (v libc.Verdict, err error, ok bool) {
	ref, err := c.parse(t.Image)
	if err != nil {
		return libc.Verdict{}, err, false // not ok: Detect reports it, with its metric
	}
	scope := scopeKey(t)
	cmd := commandKey(t.Command, t.Args)
	return c.fast(ref, scope, scope+"\x00"+ref.Name()+"\x00"+cmd, cmd)
}

// Detect implements libc.Detector. It answers from the caches without I/O when it can;
// otherwise it starts (or joins) a background inspection and waits for it until ctx ends.
func (c *Cached) Detect(ctx context.Context, t libc.Target) (libc.Verdict, error) {
	ref, err := c.parse(t.Image)
	if err != nil {
		metrics.RegistryErrors.WithLabelValues(errorKind(err)).Inc()
		return unknown("", fmt.Sprintf("image %s not inspected: %v", t.Image, err)), err
	}
	scope := scopeKey(t)
	cmd := commandKey(t.Command, t.Args)
	key := scope + "\x00" + ref.Name() + "\x00" + cmd
	if v, err, ok := c.fast(ref, scope, key, cmd); ok {
		return v, err
	}
	metrics.CacheLookups.WithLabelValues("miss").Inc()
	call := c.flights.start(key, func() (libc.Verdict, error) { return c.slow(ref, t, scope, key, cmd) })
	select {
	case <-call.done:
		return call.v, call.err
	case <-ctx.Done():
		return unknown("", fmt.Sprintf("inspection of %s did not finish within the admission budget; it continues in the background for later pods", t.Image)),
			fmt.Errorf("waiting for inspection of %s: %w", t.Image, ctx.Err())
	}
}

// fast answers from memory only: a cached failure still in backoff, or a verdict this pod's
// principal may see.
func (c *Cached) fast(ref name.Reference, scope, key, cmd string) (libc.Verdict, error, bool) {
	now := c.o.Clock.Now()
	if f, ok := c.failures.get(key); ok && now.Before(f.until) {
		metrics.CacheLookups.WithLabelValues("negative").Inc()
		return unknown("", fmt.Sprintf("%s (cached failure %d; next attempt in %s)", f.reason, f.n, f.until.Sub(now).Round(time.Second))), f.err, true
	}
	kc, ok := c.keychains.get(scope)
	if !ok || !now.Before(kc.expires) {
		return libc.Verdict{}, nil, false
	}
	p := principal(kc.val, ref, scope)
	d, ok := c.cachedDigest(ref, p, now)
	if !ok {
		return libc.Verdict{}, nil, false
	}
	e, ok := c.verdicts.get(verdictKey(d, cmd))
	if !ok || !e.allows(p) {
		return libc.Verdict{}, nil, false
	}
	metrics.CacheLookups.WithLabelValues("hit").Inc()
	return e.hit(), nil, true
}

// slow does whatever fast could not, in the background, bounded by Timeout.
func (c *Cached) slow(ref name.Reference, t libc.Target, scope, key, cmd string) (v libc.Verdict, err error) {
	ctx, cancel := context.WithTimeout(c.o.BaseContext, c.o.Timeout)
	defer cancel()
	log := c.o.Log.WithValues("image", t.Image, "namespace", t.Namespace, "pod", t.PodName, "container", t.Container)
	defer func() {
		if err == nil {
			c.failures.remove(key)
			return
		}
		kind := errorKind(err)
		if !errors.As(err, new(counted)) {
			metrics.RegistryErrors.WithLabelValues(kind).Inc()
		}
		reason := "registry inspection failed: " + err.Error()
		v = unknown(v.Digest, reason)
		if kind == "busy" || kind == string(inspect.KindCanceled) || c.o.BaseContext.Err() != nil {
			return // not the registry's fault: try again with the next pod
		}
		f := c.failures.update(key, func(old failure, _ bool) failure {
			n := old.n + 1
			wait := min(c.o.MinBackoff<<min(n-1, 30), c.o.MaxBackoff)
			return failure{n: n, until: c.o.Clock.Now().Add(wait), reason: reason, err: err}
		})
		log.Info("inspection failed", "kind", kind, "error", err.Error(), "failures", f.n, "retryAfter", f.until.Sub(c.o.Clock.Now()))
	}()

	kc := c.keychain(ctx, t, scope, log)
	p := principal(kc, ref, scope)
	d, err := c.digest(ctx, ref, kc, p)
	if err != nil {
		return libc.Verdict{}, err
	}
	dref := ref.Context().Digest(d.String())
	vkey := verdictKey(d, cmd)
	if e, ok := c.verdicts.get(vkey); ok {
		if e.allows(p) {
			return e.hit(), nil
		}
		// Another scope fetched this private image: this pod must show it could pull it.
		if err := c.withSlot(ctx, func() error { return c.o.Access(ctx, dref, kc) }); err != nil {
			return libc.Verdict{Digest: d.String()}, fmt.Errorf("checking this pod's access to %s: %w", dref, err)
		}
		return c.verdicts.update(vkey, func(old entry, _ bool) entry { return old.with(p) }).hit(), nil
	}
	call := c.inspections.start(p+"\x00"+vkey, func() (libc.Verdict, error) {
		var v libc.Verdict
		err := c.withSlot(ctx, func() error {
			var err error
			// The inspector records duration, bytes and its own registry errors.
			if v, err = c.o.Inspector.Inspect(ctx, dref, t.Command, t.Args, remote.WithAuthFromKeychain(kc)); err != nil {
				return counted{err}
			}
			return nil
		})
		if err != nil {
			return libc.Verdict{Digest: d.String()}, err
		}
		if v.Digest == "" {
			v.Digest = d.String()
		}
		c.verdicts.update(vkey, func(old entry, ok bool) entry {
			if !ok {
				old = entry{v: v}
			}
			return old.with(p)
		})
		log.V(1).Info("inspected", "digest", v.Digest, "libc", v.Libc, "evidence", v.Evidence, "bytes", v.Bytes, "duration", v.Duration)
		return v, nil
	})
	<-call.done
	return call.v, call.err
}

// keychain returns the scope's credentials, cached for KeychainTTL. If they cannot be read
// (RBAC, API down) the pod is inspected anonymously: public images still work and nothing
// private is reachable.
func (c *Cached) keychain(ctx context.Context, t libc.Target, scope string, log logr.Logger) authn.Keychain {
	if kc, ok := c.keychains.get(scope); ok && c.o.Clock.Now().Before(kc.expires) {
		return kc.val
	}
	call := c.keychainsIn.start(scope, func() (libc.Verdict, error) {
		var kc authn.Keychain = anonymousKeychain{}
		if c.o.Keychain != nil {
			k, err := c.o.Keychain(ctx, t.Namespace, t.ServiceAccount, t.PullSecrets)
			if err != nil {
				metrics.RegistryErrors.WithLabelValues("credentials").Inc()
				log.Info("pull credentials unavailable; inspecting anonymously", "error", err.Error())
			} else {
				kc = k
			}
		}
		c.keychains.add(scope, expiring[authn.Keychain]{val: kc, expires: c.o.Clock.Now().Add(c.o.KeychainTTL)})
		return libc.Verdict{}, nil
	})
	<-call.done
	if kc, ok := c.keychains.get(scope); ok {
		return kc.val
	}
	return anonymousKeychain{}
}

func (c *Cached) cachedDigest(ref name.Reference, p string, now time.Time) (v1.Hash, bool) {
	if d, ok := ref.(name.Digest); ok {
		h, err := v1.NewHash(d.DigestStr())
		return h, err == nil
	}
	e, ok := c.tags.get(p + "\x00" + ref.Name())
	return e.val, ok && now.Before(e.expires)
}

// digest returns the platform image digest of ref: a digest reference as is, a tag from the
// TTL cache or the registry.
func (c *Cached) digest(ctx context.Context, ref name.Reference, kc authn.Keychain, p string) (v1.Hash, error) {
	if d, ok := c.cachedDigest(ref, p, c.o.Clock.Now()); ok {
		return d, nil
	}
	if d, ok := ref.(name.Digest); ok {
		return v1.Hash{}, fmt.Errorf("invalid digest %q", d.DigestStr())
	}
	var h v1.Hash
	err := c.withSlot(ctx, func() error {
		var err error
		h, err = c.o.Inspector.Resolve(ctx, ref, remote.WithAuthFromKeychain(kc))
		return err
	})
	if err != nil {
		return v1.Hash{}, fmt.Errorf("resolving %s: %w", ref, err)
	}
	c.tags.add(p+"\x00"+ref.Name(), expiring[v1.Hash]{val: h, expires: c.o.Clock.Now().Add(c.o.TagTTL)})
	return h, nil
}

func (c *Cached) withSlot(ctx context.Context, f func() error) error {
	select {
	case c.sem <- struct{}{}:
	case <-ctx.Done():
		return fmt.Errorf("%w: %w", errBusy, ctx.Err())
	}
	defer func() { <-c.sem }()
	return f()
}

func (c *Cached) headManifest(ctx context.Context, ref name.Digest, kc authn.Keychain) error {
	opts := append(slices.Clone(c.o.RemoteOptions), remote.WithContext(ctx), remote.WithAuthFromKeychain(kc))
	_, err := remote.Head(ref, opts...)
	return err
}

// principal is who a pull of ref with kc acts as: anonymous when the keychain has nothing for
// that registry (so public images are shared by every pod), else the pod's credential scope.
func principal(kc authn.Keychain, ref name.Reference, scope string) string {
	if a, err := kc.Resolve(ref.Context()); err == nil && a == authn.Anonymous {
		return anon
	}
	return scope
}

// scopeKey names the credentials a pod pulls with. Two pods with the same key get the same
// keychain.
func scopeKey(t libc.Target) string {
	secrets := slices.Clone(t.PullSecrets)
	slices.Sort(secrets)
	secrets = slices.Compact(secrets)
	sa := t.ServiceAccount
	if sa == "" {
		sa = "default"
	}
	return t.Namespace + "/" + sa + "/" + strings.Join(secrets, ",")
}

// commandKey distinguishes containers of one image that run different programs. The length
// prefix keeps ["a b"] and ["a", "b"] apart.
func commandKey(command, args []string) string {
	var b strings.Builder
	for _, part := range [][]string{command, args} {
		if part == nil {
			b.WriteString("-;")
			continue
		}
		fmt.Fprintf(&b, "%d:", len(part))
		for _, s := range part {
			fmt.Fprintf(&b, "%d:%s", len(s), s)
		}
		b.WriteByte(';')
	}
	return b.String()
}

func verdictKey(d v1.Hash, cmd string) string { return d.String() + "\x00" + cmd }

func unknown(digest, reason string) libc.Verdict {
	return libc.Verdict{Libc: libc.Unknown, Source: libc.SourceNone, Digest: digest, Reason: reason}
}

// entry is a cached verdict and who may see it.
type entry struct {
	v      libc.Verdict
	public bool            // someone pulled it anonymously
	scopes map[string]bool // credential scopes that pulled it (copy on write)
}

func (e entry) allows(p string) bool { return e.public || e.scopes[p] }

func (e entry) with(p string) entry {
	if p == anon {
		e.public = true
		return e
	}
	e.scopes = maps.Clone(e.scopes)
	if e.scopes == nil {
		e.scopes = map[string]bool{}
	}
	e.scopes[p] = true
	return e
}

func (e entry) hit() libc.Verdict {
	v := e.v
	v.Source = libc.SourceCache
	return v
}

type expiring[V any] struct {
	val     V
	expires time.Time
}

type failure struct {
	n      int
	until  time.Time
	reason string
	err    error
}

// counted marks an error the inspector already counted in dns_tuner_registry_errors_total.
type counted struct{ error }

func (c counted) Unwrap() error { return c.error }

type anonymousKeychain struct{}

func (anonymousKeychain) Resolve(authn.Resource) (authn.Authenticator, error) {
	return authn.Anonymous, nil
}

// errorKind labels dns_tuner_registry_errors_total, with internal/inspect's kinds.
func errorKind(err error) string {
	var perr *name.ErrBadName
	switch {
	case errors.Is(err, errBusy):
		return "busy"
	case errors.As(err, &perr):
		return "bad_reference"
	}
	return string(inspect.KindOf(err))
}

// group runs one function per key at a time; later callers for the key wait for the same
// result. Unlike x/sync/singleflight it runs the function in its own goroutine (admission
// can stop waiting) and lets Wait see every run.
type group struct {
	mu    sync.Mutex
	calls map[string]*call
	wg    sync.WaitGroup
}

type call struct {
	done chan struct{}
	v    libc.Verdict
	err  error
}

func (g *group) start(key string, fn func() (libc.Verdict, error)) *call {
	g.mu.Lock()
	if c, ok := g.calls[key]; ok {
		g.mu.Unlock()
		return c
	}
	if g.calls == nil {
		g.calls = map[string]*call{}
	}
	c := &call{done: make(chan struct{})}
	g.calls[key] = c
	g.wg.Add(1)
	g.mu.Unlock()
	go func() {
		defer g.wg.Done()
		defer func() {
			if r := recover(); r != nil {
				c.err = fmt.Errorf("inspection panicked: %v", r)
			}
			g.mu.Lock()
			delete(g.calls, key)
			g.mu.Unlock()
			close(c.done)
		}()
		c.v, c.err = fn()
	}()
	return c
}
