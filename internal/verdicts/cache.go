// Package verdicts makes registry inspection fit admission: libc verdicts cached by image
// digest, tags resolved at most once a minute, one inspection per image however many pods
// ask, failures backed off, and inspections that outlive the admission budget so the next pod
// finds their result. Every cache is bounded in entries and in estimated bytes.
//
// Credentials and the cache: verdicts are keyed by digest (a verdict is not secret), but each
// entry remembers who could pull the image: "public" once anyone fetched it anonymously, else
// the credential scopes (namespace, ServiceAccount, pull-secret names) that fetched it. A pod
// whose scope is not on the entry first proves access with its own keychain (one manifest
// HEAD) before it is served the verdict, so a private image's existence and contents never
// leak to a pod that could not pull it (access.go). Tag→digest answers are cached per
// principal (anonymous or scope) for the same reason.
package verdicts

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/go-logr/logr"
	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/remote"

	"github.com/dns-tuner/dns-tuner/internal/inspect"
	"github.com/dns-tuner/dns-tuner/internal/libc"
	"github.com/dns-tuner/dns-tuner/internal/metrics"
)

// Inspector is what Cache needs from internal/inspect.Inspector.
type Inspector interface {
	// Resolve turns a tag (or index) into the digest of the platform image.
	Resolve(ctx context.Context, ref name.Reference, extra ...remote.Option) (v1.Hash, error)
	// InspectContainer decides the libc of the program a container of image ref runs (its
	// command, args and own PATH).
	InspectContainer(ctx context.Context, ref name.Reference, c inspect.Container, extra ...remote.Option) (libc.Verdict, error)
}

// KeychainFunc returns one pod's registry credentials (registry.PodKeychains.Keychain). A
// keychain with a `Bytes() int64` method reports what it holds, for the cache's byte budget.
type KeychainFunc func(ctx context.Context, namespace, serviceAccount string, pullSecrets []string) (authn.Keychain, error)

// AccessFunc returns nil if kc may pull ref.
type AccessFunc func(ctx context.Context, ref name.Digest, kc authn.Keychain) error

// Clock is the time source of TTLs and backoffs; tests inject a fake.
type Clock interface{ Now() time.Time }

type realClock struct{}

func (realClock) Now() time.Time { return time.Now() }

// DefaultMaxBytes bounds the estimated size of every cache together: far below the chart's
// memory limit, and room for thousands of verdicts.
const DefaultMaxBytes = 16 << 20

// Options configure a Cache. Zero values take the defaults in brackets.
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

	Timeout time.Duration // one background inspection, credentials to verdict [20s]
	Entries int           // verdicts kept, and tags, failures and parsed references [4096]
	// MaxBytes bounds the estimated bytes of all caches together [DefaultMaxBytes]: half for
	// verdicts, an eighth each for tags, failures, parsed references and credentials.
	MaxBytes    int64
	TagTTL      time.Duration // tag→digest answers [1m]
	KeychainTTL time.Duration // a pod scope's credentials [1m]
	MinBackoff  time.Duration // after a first failure [2s]
	MaxBackoff  time.Duration // doubled per failure up to [5m]
	Concurrency int           // registry operations at once [8]
	// MaxPending bounds the inspections started and not finished, each a few goroutines;
	// beyond it a miss is answered unknown at once (as the registry is busy) [256].
	MaxPending int
	Clock      Clock
	Log        logr.Logger
	// BaseContext ends background inspections (manager shutdown) [context.Background()].
	BaseContext context.Context
}

// Cache is a libc.MemoryDetector over an Inspector: the verdict cache admission asks. Safe
// for concurrent use.
type Cache struct {
	o           Options
	verdicts    *boundedLRU[verdictKey, entry]
	tags        *boundedLRU[tagKey, expiring[v1.Hash]]
	keychains   *boundedLRU[scope, expiring[authn.Keychain]]
	failures    *boundedLRU[flightKey, failure]
	refs        *boundedLRU[string, parsedRef]      // parsed image references: admission parses the same few
	flights     flight[flightKey, libc.Verdict]     // what admission waits for
	inspections flight[inspectionKey, libc.Verdict] // the registry work
	keychainsIn flight[scope, authn.Keychain]       // Kubernetes API reads
	sem         chan struct{}
}

var _ libc.MemoryDetector = (*Cache)(nil)

// flightKey is what one container of a pod waits for: its scope, image and command.
type flightKey struct {
	scope scope
	image string // ref.Name()
	cmd   string // commandKey
}

// verdictKey is what a verdict depends on: the image digest and the command it runs.
type verdictKey struct {
	digest v1.Hash
	cmd    string
}

// tagKey is a tag→digest answer as one principal saw it.
type tagKey struct {
	principal scope
	ref       string // ref.Name()
}

// inspectionKey is one principal's inspection of a digest.
type inspectionKey struct {
	principal scope
	verdictKey
}

var errBusy = errors.New("all inspection slots busy")

// New returns a Cache.
func New(o Options) *Cache {
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
	if o.MaxBytes <= 0 {
		o.MaxBytes = DefaultMaxBytes
	}
	if o.Concurrency <= 0 {
		o.Concurrency = 8
	}
	if o.MaxPending <= 0 {
		o.MaxPending = 256
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
	share := o.MaxBytes / 8
	c := &Cache{
		o:         o,
		verdicts:  newBoundedLRU(o.Entries, 4*share, withFixed(entryBytes), func(n int) { metrics.CacheSize.Set(float64(n)) }),
		tags:      newBoundedLRU(o.Entries, share, withFixed(tagBytes), nil),
		keychains: newBoundedLRU(1024, share, withFixed(keychainEntryBytes), nil),
		failures:  newBoundedLRU(o.Entries, share, withFixed(failureBytes), nil),
		refs:      newBoundedLRU(o.Entries, share, withFixed(refBytes), nil),
		sem:       make(chan struct{}, o.Concurrency),
	}
	if c.o.Access == nil {
		c.o.Access = c.headManifest
	}
	return c
}

// Wait blocks until no background work is running: for tests and graceful shutdown.
func (c *Cache) Wait() {
	c.flights.wait()
	c.inspections.wait()
	c.keychainsIn.wait()
}

// Len is the number of verdicts cached.
func (c *Cache) Len() int { return c.verdicts.len() }

// Bytes is the estimated size of every cache together, at most Options.MaxBytes.
func (c *Cache) Bytes() int64 {
	return c.verdicts.accounted() + c.tags.accounted() + c.keychains.accounted() + c.failures.accounted() + c.refs.accounted()
}

// parse applies ParseReference once per image string: the registry policy it checks is fixed
// for this detector's life (a policy change builds a new one), and refused images are not
// remembered, so their error and metric are reported every time.
func (c *Cache) parse(image string) (parsedRef, error) {
	if r, ok := c.refs.get(image); ok {
		return r, nil
	}
	image = strings.Clone(image) // the key and the reference's parts must not pin the request
	ref, err := c.o.ParseReference(image)
	if err != nil {
		return parsedRef{}, err
	}
	r := parsedRef{ref, ref.Name()}
	c.refs.add(image, r)
	return r, nil
}

// parsedRef is an image reference and its Name, which every lookup needs.
type parsedRef struct {
	ref  name.Reference
	name string
}

// DetectCached implements libc.MemoryDetector: the answer Detect would give from memory
// alone, or ok=false when Detect would have to wait for the registry or the API server.
func (c *Cache) DetectCached(t libc.Target) (v libc.Verdict, err error, ok bool) {
	r, err := c.parse(t.Image)
	if err != nil {
		return libc.Verdict{}, err, false // not ok: Detect reports it, with its metric
	}
	return c.fast(r.ref, flightKey{scopeOf(t), r.name, commandKey(t.Command, t.Args, t.PathEnv, t.WorkingDir)})
}

// Detect implements libc.Detector. It answers from the caches without I/O when it can;
// otherwise it starts (or joins) a background inspection and waits for it until ctx ends.
func (c *Cache) Detect(ctx context.Context, t libc.Target) (libc.Verdict, error) {
	r, err := c.parse(t.Image)
	if err != nil {
		metrics.RegistryErrors.WithLabelValues(errorKind(err)).Inc()
		return unknown("", fmt.Sprintf("image %s not inspected: %v", t.Image, err)), err
	}
	key := flightKey{scopeOf(t), r.name, commandKey(t.Command, t.Args, t.PathEnv, t.WorkingDir)}
	if v, err, ok := c.fast(r.ref, key); ok {
		return v, err
	}
	return c.wait(ctx, r.ref, t, key)
}

// wait starts or joins the flight for key and waits for it until ctx ends. Apart from Detect
// so that what the flight's closure captures is moved to the heap on misses only.
func (c *Cache) wait(ctx context.Context, ref name.Reference, t libc.Target, key flightKey) (libc.Verdict, error) {
	metrics.CacheLookups.WithLabelValues("miss").Inc()
	if c.flights.running() >= c.o.MaxPending {
		metrics.RegistryErrors.WithLabelValues("busy").Inc()
		return unknown("", fmt.Sprintf("image %s not inspected: %d inspections already pending", t.Image, c.o.MaxPending)), errBusy
	}
	done := c.flights.start(key, func() (libc.Verdict, error) { return c.slow(ref, t, key) })
	select {
	case r := <-done:
		return result[libc.Verdict](r)
	case <-ctx.Done():
		return unknown("", fmt.Sprintf("inspection of %s did not finish within the admission budget; it continues in the background for later pods", t.Image)),
			fmt.Errorf("waiting for inspection of %s: %w", t.Image, ctx.Err())
	}
}

// fast answers from memory only: a cached failure still in backoff, or a verdict this pod's
// principal may see.
func (c *Cache) fast(ref name.Reference, key flightKey) (libc.Verdict, error, bool) {
	now := c.o.Clock.Now()
	if f, ok := c.failures.get(key); ok && now.Before(f.until) {
		metrics.CacheLookups.WithLabelValues("negative").Inc()
		return unknown("", fmt.Sprintf("%s (cached failure %d; next attempt in %s)", f.reason, f.n, f.until.Sub(now).Round(time.Second))), f.err, true
	}
	kc, ok := c.keychains.get(key.scope)
	if !ok || !now.Before(kc.expires) {
		return libc.Verdict{}, nil, false
	}
	p := principal(kc.val, ref, key.scope)
	d, ok := c.cachedDigest(ref, key.image, p, now)
	if !ok {
		return libc.Verdict{}, nil, false
	}
	e, ok := c.verdicts.get(verdictKey{d, key.cmd})
	if !ok || !e.allows(p) {
		return libc.Verdict{}, nil, false
	}
	metrics.CacheLookups.WithLabelValues("hit").Inc()
	return e.hit(), nil, true
}

// slow does whatever fast could not, in the background, bounded by Timeout.
func (c *Cache) slow(ref name.Reference, t libc.Target, key flightKey) (v libc.Verdict, err error) {
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
		msg := truncate(err.Error(), maxReason)
		reason := "registry inspection failed: " + msg
		v = unknown(v.Digest, reason)
		if kind == "busy" || kind == string(inspect.KindCanceled) || c.o.BaseContext.Err() != nil {
			return // not the registry's fault: try again with the next pod
		}
		// The cached error keeps the message and kind only: the original may hold a whole
		// HTTP exchange, which the byte budget would not see.
		cached := &cachedError{msg: msg, kind: kind}
		key.scope = key.scope.owned()
		f := c.failures.update(key, func(old failure, _ bool) failure {
			n := old.n + 1
			wait := min(c.o.MinBackoff<<min(n-1, 30), c.o.MaxBackoff)
			return failure{n: n, until: c.o.Clock.Now().Add(wait), reason: reason, err: cached}
		})
		log.Info("inspection failed", "kind", kind, "error", msg, "failures", f.n, "retryAfter", f.until.Sub(c.o.Clock.Now()))
	}()

	kc := c.keychain(ctx, t, key.scope, log)
	p := principal(kc, ref, key.scope)
	d, err := c.digest(ctx, ref, key.image, kc, p)
	if err != nil {
		return libc.Verdict{}, err
	}
	dref := ref.Context().Digest(d.String())
	vkey := verdictKey{d, key.cmd}
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
	done := c.inspections.start(inspectionKey{p, vkey}, func() (libc.Verdict, error) {
		var v libc.Verdict
		err := c.withSlot(ctx, func() error {
			var err error
			// The inspector records duration, bytes and its own registry errors.
			if v, err = c.o.Inspector.InspectContainer(ctx, dref, inspect.ContainerOf(t), remote.WithAuthFromKeychain(kc)); err != nil {
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
	return result[libc.Verdict](<-done)
}

func (c *Cache) cachedDigest(ref name.Reference, refName string, p scope, now time.Time) (v1.Hash, bool) {
	if d, ok := ref.(name.Digest); ok {
		h, err := v1.NewHash(d.DigestStr())
		return h, err == nil
	}
	e, ok := c.tags.get(tagKey{p, refName})
	return e.val, ok && now.Before(e.expires)
}

// digest returns the platform image digest of ref: a digest reference as is, a tag from the
// TTL cache or the registry.
func (c *Cache) digest(ctx context.Context, ref name.Reference, refName string, kc authn.Keychain, p scope) (v1.Hash, error) {
	if d, ok := c.cachedDigest(ref, refName, p, c.o.Clock.Now()); ok {
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
	c.tags.add(tagKey{p.owned(), refName}, expiring[v1.Hash]{val: h, expires: c.o.Clock.Now().Add(c.o.TagTTL)})
	return h, nil
}

func (c *Cache) withSlot(ctx context.Context, f func() error) error {
	select {
	case c.sem <- struct{}{}:
	case <-ctx.Done():
		return fmt.Errorf("%w: %w", errBusy, ctx.Err())
	}
	defer func() { <-c.sem }()
	return f()
}

// commandKey distinguishes containers of one image that run different programs (command,
// args, and the PATH a bare command is found in). The length prefix keeps ["a b"] and
// ["a", "b"] apart.
func commandKey(command, args []string, pathEnv, workingDir string) string {
	if command == nil && args == nil && pathEnv == "" && workingDir == "" {
		return "-;-;" // most containers: no allocation
	}
	var b []byte
	for _, part := range [][]string{command, args} {
		if part == nil {
			b = append(b, "-;"...)
			continue
		}
		b = append(strconv.AppendInt(b, int64(len(part)), 10), ':')
		for _, s := range part {
			b = append(strconv.AppendInt(b, int64(len(s)), 10), ':')
			b = append(b, s...)
		}
		b = append(b, ';')
	}
	// Length-prefixed, so no PATH value can pass for a working directory.
	if pathEnv != "" {
		b = append(strconv.AppendInt(append(b, "PATH="...), int64(len(pathEnv)), 10), ':')
		b = append(append(b, pathEnv...), ';')
	}
	if workingDir != "" {
		b = append(strconv.AppendInt(append(b, "WD="...), int64(len(workingDir)), 10), ':')
		b = append(append(b, workingDir...), ';')
	}
	return string(b)
}

func unknown(digest, reason string) libc.Verdict {
	return libc.Verdict{Libc: libc.Unknown, Source: libc.SourceNone, Digest: digest, Reason: reason}
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

// maxReason caps a registry's error text in cached failures: a hostile registry chooses it.
const maxReason = 1024

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	for n > 0 && !utf8.RuneStart(s[n]) {
		n--
	}
	return s[:n] + "…"
}

// cachedError is a failure as the cache keeps it: message and kind.
type cachedError struct{ msg, kind string }

func (e *cachedError) Error() string { return e.msg }

// counted marks an error the inspector already counted in dns_tuner_registry_errors_total.
type counted struct{ error }

func (c counted) Unwrap() error { return c.error }

// errorKind labels dns_tuner_registry_errors_total, with internal/inspect's kinds.
func errorKind(err error) string {
	var perr *name.ErrBadName
	var cached *cachedError
	switch {
	case errors.Is(err, errBusy):
		return "busy"
	case errors.As(err, &perr):
		return "bad_reference"
	case errors.As(err, &cached):
		return cached.kind
	}
	return string(inspect.KindOf(err))
}
