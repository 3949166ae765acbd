// Package inspect decides a container image's libc by streaming its layers from the registry,
// newest first, and stopping as soon as the entrypoint (or, failing that, the base) proves it.
// Nothing is written to disk; bytes, decompressed bytes, entries and time are capped per image.
package inspect

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net/http"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/types"

	"github.com/dns-tuner/dns-tuner/internal/libc"
	"github.com/dns-tuner/dns-tuner/internal/metrics"
)

const (
	DefaultMaxBytes = 64 << 20
	DefaultTimeout  = 20 * time.Second
	maxConfigBytes  = 4 << 20
	maxIndexDepth   = 2
)

// Options bound and configure inspections. The zero value is usable.
type Options struct {
	// Platform picks the image from a multi-arch index: this one (variant and OS version only
	// if set), then any linux image. Default linux/amd64.
	Platform v1.Platform
	// MaxBytes caps compressed bytes read from the registry per image; 0 = 64 MiB.
	MaxBytes int64
	// MaxUncompressedBytes caps decompressed layer bytes per image, so a gzip bomb ends
	// quickly; 0 = 4 × MaxBytes.
	MaxUncompressedBytes int64
	// Timeout bounds one image; 0 = 20s.
	Timeout time.Duration
	// Transport, if set, is the base RoundTripper (e.g. the SSRF-guarded one). The inspector
	// wraps it to meter and cap every response body. A remote.WithTransport in RemoteOptions
	// replaces the metered transport: layers stay capped, manifests are then bounded only by
	// go-containerregistry's own 100 MiB limit.
	Transport http.RoundTripper
	// RemoteOptions (keychain, user agent…) apply to every request, before Inspect's extra.
	RemoteOptions []remote.Option
}

// Inspector inspects images. It holds no per-image state and is safe for concurrent use.
type Inspector struct{ o Options }

// New returns an Inspector with o's zero fields defaulted.
func New(o Options) *Inspector {
	if o.Platform.OS == "" {
		o.Platform = v1.Platform{OS: "linux", Architecture: "amd64"}
	}
	if o.MaxBytes <= 0 {
		o.MaxBytes = DefaultMaxBytes
	}
	if o.MaxUncompressedBytes <= 0 {
		o.MaxUncompressedBytes = 4 * o.MaxBytes
	}
	if o.Timeout <= 0 {
		o.Timeout = DefaultTimeout
	}
	if o.Transport == nil {
		o.Transport = remote.DefaultTransport
	}
	return &Inspector{o: o}
}

func (i *Inspector) newMeter() *meter {
	return &meter{max: i.o.MaxBytes, maxUnc: i.o.MaxUncompressedBytes}
}

func (i *Inspector) remoteOptions(ctx context.Context, m *meter, extra []remote.Option) []remote.Option {
	opts := []remote.Option{
		// First, so that a caller's own transport or backoff wins.
		remote.WithTransport(&meteredTransport{base: i.o.Transport, m: m}),
		// Admission waits on this: retry 5xx once, quickly, not for seconds.
		remote.WithRetryBackoff(remote.Backoff{Duration: 50 * time.Millisecond, Factor: 2, Steps: 2}),
	}
	opts = append(opts, i.o.RemoteOptions...)
	opts = append(opts, extra...)
	return append(opts, remote.WithContext(ctx))
}

// Resolve returns the digest of the platform image that ref (tag or digest, index or
// manifest) names.
func (i *Inspector) Resolve(ctx context.Context, ref name.Reference, extra ...remote.Option) (v1.Hash, error) {
	ctx, cancel := context.WithTimeout(ctx, i.o.Timeout)
	defer cancel()
	m := i.newMeter()
	d, _, err := i.platformImage(ctx, ref, m, i.remoteOptions(ctx, m, extra))
	if err != nil {
		err = finish(ctx, err)
		if k := KindOf(err); k != KindCanceled {
			metrics.RegistryErrors.WithLabelValues(string(k)).Inc()
		}
		return v1.Hash{}, err
	}
	return d.Digest, nil
}

// platformImage fetches ref's manifest and, for an index, the chosen platform's. It returns
// the image descriptor and a note on the platform choice.
func (i *Inspector) platformImage(ctx context.Context, ref name.Reference, m *meter, opts []remote.Option) (*remote.Descriptor, string, error) {
	d, err := remote.Get(ref, opts...)
	if err != nil {
		return nil, "", wrap("manifest", err)
	}
	m.read.Add(int64(len(d.Manifest)))
	note := ""
	for depth := 0; d.MediaType.IsIndex(); depth++ {
		if depth >= maxIndexDepth {
			return nil, "", &Error{Kind: KindBadResponse, Op: "index", Err: errors.New("indexes nested too deep")}
		}
		idx, err := v1.ParseIndexManifest(bytes.NewReader(d.Manifest))
		if err != nil {
			return nil, "", &Error{Kind: KindBadResponse, Op: "index", Err: err}
		}
		child, ok := pickPlatform(idx.Manifests, i.o.Platform)
		if !ok {
			return nil, "", &Error{Kind: KindNotFound, Op: "index", Err: fmt.Errorf("no %s or other linux image", platformString(i.o.Platform))}
		}
		if child.Platform != nil {
			note = "platform " + platformString(*child.Platform)
		}
		if d, err = remote.Get(ref.Context().Digest(child.Digest.String()), opts...); err != nil {
			return nil, "", wrap("manifest "+child.Digest.String(), err)
		}
		m.read.Add(int64(len(d.Manifest)))
	}
	if !d.MediaType.IsImage() {
		return nil, "", &Error{Kind: KindBadResponse, Op: "manifest", Err: fmt.Errorf("unsupported media type %q", d.MediaType)}
	}
	return d, note, nil
}

// pickPlatform prefers want exactly, then any linux image (attestations are "unknown/unknown").
func pickPlatform(ms []v1.Descriptor, want v1.Platform) (v1.Descriptor, bool) {
	var fallback *v1.Descriptor
	for k, d := range ms {
		if d.Platform == nil || (!d.MediaType.IsImage() && !d.MediaType.IsIndex() && d.MediaType != "") {
			continue
		}
		p := d.Platform
		if p.OS == want.OS && p.Architecture == want.Architecture &&
			(want.Variant == "" || p.Variant == want.Variant) && (want.OSVersion == "" || p.OSVersion == want.OSVersion) {
			return d, true
		}
		if fallback == nil && p.OS == "linux" {
			fallback = &ms[k]
		}
	}
	if fallback != nil {
		return *fallback, true
	}
	return v1.Descriptor{}, false
}

func platformString(p v1.Platform) string {
	s := p.OS + "/" + p.Architecture
	if p.Variant != "" {
		s += "/" + p.Variant
	}
	return s
}

// Inspect decides the libc of the image ref names, for a container with the given
// command/args overrides (nil = the image's). The verdict always carries Digest (when known),
// Bytes and Duration; on error it is unknown with a Reason, and the error is an *Error.
func (i *Inspector) Inspect(ctx context.Context, ref name.Reference, command, args []string, extra ...remote.Option) (libc.Verdict, error) {
	return i.InspectContainer(ctx, ref, Container{Command: command, Args: args}, extra...)
}

// Container is what of a pod's container changes which program runs.
type Container struct {
	Command, Args []string // overrides (nil = the image's Entrypoint, Cmd)
	// PathEnv is the container's own PATH (its env), which replaces the image's for bare
	// names; "" = the image's.
	PathEnv string
	// WorkingDir is the container's own workingDir, where a relative command is found;
	// "" = the image's.
	WorkingDir string
}

// ContainerOf is the part of t inspection uses.
func ContainerOf(t libc.Target) Container {
	return Container{Command: t.Command, Args: t.Args, PathEnv: t.PathEnv, WorkingDir: t.WorkingDir}
}

// InspectContainer is Inspect for a container with its own PATH.
func (i *Inspector) InspectContainer(ctx context.Context, ref name.Reference, c Container, extra ...remote.Option) (v libc.Verdict, err error) {
	start := time.Now()
	ctx, cancel := context.WithTimeout(ctx, i.o.Timeout)
	defer cancel()
	m := i.newMeter()
	defer func() {
		if err != nil {
			err = finish(ctx, err)
			v.Libc, v.Source, v.Reason = libc.Unknown, libc.SourceNone, err.Error()
			if k := KindOf(err); k != KindCanceled {
				metrics.RegistryErrors.WithLabelValues(string(k)).Inc()
			}
		}
		v.Bytes, v.Duration = m.bytes(), time.Since(start)
		metrics.InspectionDuration.WithLabelValues(string(v.Libc)).Observe(v.Duration.Seconds())
		metrics.InspectionBytes.Observe(float64(v.Bytes))
	}()
	return i.inspect(ctx, ref, c, m, i.remoteOptions(ctx, m, extra))
}

func (i *Inspector) inspect(ctx context.Context, ref name.Reference, c Container, m *meter, opts []remote.Option) (libc.Verdict, error) {
	d, note, err := i.platformImage(ctx, ref, m, opts)
	if err != nil {
		return libc.Verdict{}, err
	}
	v := libc.Verdict{Digest: d.Digest.String()}
	img, err := d.Image()
	if err != nil {
		return v, wrap("manifest", err)
	}
	mf, err := img.Manifest()
	if err != nil {
		return v, wrap("manifest", err)
	}
	if mf.Config.Size > maxConfigBytes {
		return v, &Error{Kind: KindTooLarge, Op: "config", Err: fmt.Errorf("config is %d bytes", mf.Config.Size)}
	}
	raw, err := img.RawConfigFile()
	if err != nil {
		return v, wrap("config", err)
	}
	m.read.Add(int64(len(raw)))
	cfg, err := v1.ParseConfigFile(bytes.NewReader(raw))
	if err != nil {
		return v, &Error{Kind: KindBadResponse, Op: "config", Err: err}
	}
	argv := containerArgv(cfg.Config, c.Command, c.Args)

	digests := make([]string, len(mf.Layers))
	for k, l := range mf.Layers {
		digests[k] = l.Digest.String()
	}
	workdir := cfg.Config.WorkingDir
	if c.WorkingDir != "" {
		workdir = c.WorkingDir // the pod's workingDir replaces the image's, as in the runtime
	}
	s := newScanner(m, digests, cfg.Config.Env, workdir, c.PathEnv)
	if len(argv) > 0 && argv[0] != "" {
		s.setArgv(argv)
	} else {
		s.entryErr = "no entrypoint or command"
	}
	for k := len(mf.Layers) - 1; k >= 0 && !s.done(); k-- {
		if err := ctx.Err(); err != nil {
			return v, err
		}
		if err := i.scanLayer(img, mf.Layers[k], k, s); err != nil {
			return v, err
		}
	}
	s.check(-1) // every layer read: a still-missing entrypoint is absent
	if s.verdict != nil {
		out := *s.verdict
		out.Digest = v.Digest
		if b := s.base(); b.Libc == out.Libc && !s.static {
			out.Version = b.Version // only what the layers already read showed
		}
		addNote(&out, note)
		return out, nil
	}
	out := s.base()
	out.Digest = v.Digest
	if out.Libc != libc.Unknown {
		out.Evidence += "; entrypoint tier: " + s.entryErr
	} else {
		out.Reason = s.entryErr + "; " + out.Reason
	}
	addNote(&out, note)
	return out, nil
}

func addNote(v *libc.Verdict, note string) {
	if note != "" && v.Evidence != "" {
		v.Evidence += " [" + note + "]"
	}
}

func (i *Inspector) scanLayer(img v1.Image, desc v1.Descriptor, k int, s *scanner) error {
	op := fmt.Sprintf("layer %d %s", k, desc.Digest)
	if !desc.MediaType.IsLayer() && desc.MediaType != "" {
		return &Error{Kind: KindBadResponse, Op: op, Err: fmt.Errorf("media type %q is not a layer", desc.MediaType)}
	}
	if desc.MediaType == types.DockerForeignLayer {
		return &Error{Kind: KindBadResponse, Op: op, Err: errors.New("foreign layers are not fetched")}
	}
	l, err := img.LayerByDigest(desc.Digest)
	if err != nil {
		return wrap(op, err)
	}
	rc, err := l.Compressed()
	if err != nil {
		return wrap(op, err)
	}
	defer rc.Close() // early close: the rest of the blob is never transferred
	err = s.scanLayer(k, rc)
	if err == nil || errors.Is(err, errDecided) {
		return nil
	}
	return wrap(op, err)
}

// containerArgv applies Kubernetes' rules: command replaces Entrypoint (and drops Cmd), args
// replace Cmd.
func containerArgv(c v1.Config, command, args []string) []string {
	entry, cmd := c.Entrypoint, c.Cmd
	if command != nil {
		entry, cmd = command, nil
	}
	if args != nil {
		cmd = args
	}
	return append(append([]string{}, entry...), cmd...)
}

// finish turns failures after the deadline into timeouts (a body read cut by the deadline
// surfaces as some I/O error) and gives every error a kind.
func finish(ctx context.Context, err error) error {
	k := KindOf(err)
	var ie *Error
	isErr := errors.As(err, &ie)
	if errors.Is(ctx.Err(), context.DeadlineExceeded) && k != KindTooLarge && k != KindTimeout {
		if isErr {
			return &Error{Kind: KindTimeout, Op: ie.Op, Err: ie.Err}
		}
		return &Error{Kind: KindTimeout, Err: err}
	}
	if isErr {
		return err
	}
	return &Error{Kind: k, Err: err}
}
