package registry

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"path"
	"strings"
	"syscall"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/remote"
)

// Config is the registry policy: which hosts may be contacted and how.
type Config struct {
	// Allowed, if set, is the only set of image registries inspected: globs matched against
	// "host:port" and "host" ("*.example.com", "registry.local:5000"). It applies to the
	// image reference; redirects and token realms are held by Denied and the address check.
	Allowed []string
	// Denied hosts are never contacted, as image registry, redirect target or token realm.
	Denied []string
	// Insecure hosts ("host:port", or "host" for any port) are reached over plain HTTP and
	// may be on loopback or link-local addresses: test and in-cluster registries. Listing a
	// host is explicit consent, so it is also allowed; Denied still wins.
	Insecure []string
	// Backoff overrides go-containerregistry's retries (3 tries over 4s by default), which
	// would eat an admission budget. Zero: DefaultBackoff.
	Backoff remote.Backoff
	// DialTimeout bounds one TCP connect. Zero: 5s.
	DialTimeout time.Duration
}

// DefaultBackoff retries once, 200ms later: enough for a blip, cheap inside a 2s budget.
var DefaultBackoff = remote.Backoff{Duration: 200 * time.Millisecond, Factor: 2, Jitter: 0.1, Steps: 2}

// RetryStatusCodes are retried: gateway errors are usually transient. 429 and 500 are not:
// retrying a rate limit makes it worse, and the detector's failure backoff handles both.
var RetryStatusCodes = []int{http.StatusBadGateway, http.StatusServiceUnavailable, http.StatusGatewayTimeout}

// RefusedError is a registry host or address dns-tuner will not contact.
type RefusedError struct {
	Host   string // host:port as requested, or the dialled ip:port
	Reason string
}

func (e *RefusedError) Error() string {
	return fmt.Sprintf("refused to contact %s: %s", e.Host, e.Reason)
}

// Refused marks the error as a refusal for classifiers that must not import this package
// (internal/inspect counts it as kind refused_address).
func (e *RefusedError) Refused() bool { return true }

// IsRefused reports whether err (or an error it wraps) is a RefusedError.
func IsRefused(err error) bool {
	var r *RefusedError
	return errors.As(err, &r)
}

// Guard applies a Config. It is safe for concurrent use.
type Guard struct {
	allowed, denied []string
	insecure        []string
	backoff         remote.Backoff
	transport       http.RoundTripper
}

// New validates c and builds its transport.
func New(c Config) (*Guard, error) {
	g := &Guard{backoff: c.Backoff}
	if g.backoff.Steps == 0 {
		g.backoff = DefaultBackoff
	}
	var err error
	if g.allowed, err = globs("allowed registry", c.Allowed); err != nil {
		return nil, err
	}
	if g.denied, err = globs("denied registry", c.Denied); err != nil {
		return nil, err
	}
	for _, h := range c.Insecure {
		h = strings.ToLower(strings.TrimSpace(h))
		if h == "" || strings.ContainsAny(h, "/*?[ ") {
			return nil, fmt.Errorf("insecure registry %q: want HOST or HOST:PORT", h)
		}
		g.insecure = append(g.insecure, h)
	}
	timeout := c.DialTimeout
	if timeout <= 0 {
		timeout = 5 * time.Second
	}
	guarded := &net.Dialer{Timeout: timeout, KeepAlive: 30 * time.Second, Control: controlAddr}
	plain := &net.Dialer{Timeout: timeout, KeepAlive: 30 * time.Second}
	g.transport = &guardTransport{g: g, inner: &http.Transport{
		// No proxy: the address check must see the IP actually dialled, and a proxy would
		// resolve and connect on our behalf.
		Proxy: nil,
		DialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
			if g.Insecure(addr) {
				return plain.DialContext(ctx, network, addr)
			}
			return guarded.DialContext(ctx, network, addr)
		},
		ForceAttemptHTTP2:     true,
		MaxIdleConns:          100,
		MaxIdleConnsPerHost:   16,
		IdleConnTimeout:       90 * time.Second,
		TLSHandshakeTimeout:   5 * time.Second,
		ExpectContinueTimeout: time.Second,
	}}
	return g, nil
}

func globs(what string, in []string) ([]string, error) {
	out := make([]string, 0, len(in))
	for _, p := range in {
		p = strings.ToLower(strings.TrimSpace(p))
		if _, err := path.Match(p, ""); err != nil || p == "" {
			return nil, fmt.Errorf("%s %q: not a host glob", what, p)
		}
		out = append(out, p)
	}
	return out, nil
}

// controlAddr runs after name resolution, on the address about to be dialled, so DNS tricks
// (a public name resolving to 127.0.0.1 or 169.254.169.254, rebinding between check and
// connect) cannot get past it.
func controlAddr(_, address string, _ syscall.RawConn) error {
	ap, err := netip.ParseAddrPort(address)
	if err != nil {
		return &RefusedError{Host: address, Reason: "unparseable dial address"}
	}
	if err := CheckAddr(ap.Addr()); err != nil {
		return &RefusedError{Host: address, Reason: err.Error()}
	}
	return nil
}

// match reports whether host ("host" or "host:port") matches one of the globs. Docker Hub is
// index.docker.io to go-containerregistry and docker.io to people; both spellings match.
func match(globs []string, host string) bool {
	host = strings.ToLower(host)
	names := []string{host}
	if h, _, err := net.SplitHostPort(host); err == nil {
		names = append(names, h)
	}
	if host == name.DefaultRegistry {
		names = append(names, "docker.io")
	}
	for _, g := range globs {
		for _, n := range names {
			if ok, _ := path.Match(g, n); ok {
				return true
			}
		}
	}
	return false
}

// Insecure reports whether host ("host:port") was listed as insecure.
func (g *Guard) Insecure(host string) bool {
	host = strings.ToLower(host)
	h, _, err := net.SplitHostPort(host)
	for _, i := range g.insecure {
		if i == host || (err == nil && i == h) {
			return true
		}
	}
	return false
}

// CheckRegistry reports why an image on registry host must not be inspected, or nil.
func (g *Guard) CheckRegistry(host string) error {
	switch {
	case match(g.denied, host):
		return &RefusedError{Host: host, Reason: "registry is denied by policy"}
	case g.Insecure(host):
		return nil
	case len(g.allowed) > 0 && !match(g.allowed, host):
		return &RefusedError{Host: host, Reason: "registry is not in the policy's allowed registries"}
	}
	return nil
}

// ParseReference parses an image reference as the kubelet would, marks listed insecure
// registries for plain HTTP, and applies the registry policy.
func (g *Guard) ParseReference(image string) (name.Reference, error) {
	ref, err := name.ParseReference(image)
	if err != nil {
		return nil, err
	}
	if g.Insecure(ref.Context().RegistryStr()) {
		if ref, err = name.ParseReference(image, name.Insecure); err != nil {
			return nil, err
		}
	}
	if err := g.CheckRegistry(ref.Context().RegistryStr()); err != nil {
		return nil, err
	}
	return ref, nil
}

// Transport is the guarded transport: every request, including redirects and bearer token
// realms (go-containerregistry sends those through the same transport), is checked against
// Denied, may use plain HTTP only to insecure hosts, and dials only allowed addresses.
func (g *Guard) Transport() http.RoundTripper { return g.transport }

// RemoteOptions are the go-containerregistry options every registry call must use: the
// guarded transport and RetryOptions.
func (g *Guard) RemoteOptions() []remote.Option {
	return append([]remote.Option{remote.WithTransport(g.transport)}, g.RetryOptions()...)
}

// RetryOptions are RemoteOptions without the transport, for callers that wrap Transport
// themselves (the inspector's transport meters it).
func (g *Guard) RetryOptions() []remote.Option {
	return []remote.Option{
		remote.WithRetryBackoff(g.backoff),
		remote.WithRetryStatusCodes(RetryStatusCodes...),
		remote.WithRetryPredicate(retryable),
		remote.WithUserAgent("dns-tuner"),
	}
}

// retryable retries network flakes but never a refusal or a deadline: both would only fail
// again, later.
func retryable(err error) bool {
	if IsRefused(err) || errors.Is(err, context.DeadlineExceeded) || errors.Is(err, context.Canceled) {
		return false
	}
	var t interface{ Temporary() bool }
	if errors.As(err, &t) && t.Temporary() {
		return true
	}
	return errors.Is(err, syscall.ECONNRESET) || errors.Is(err, syscall.EPIPE)
}

type guardTransport struct {
	g     *Guard
	inner *http.Transport
}

func (t *guardTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	host := req.URL.Host
	if match(t.g.denied, host) {
		return nil, &RefusedError{Host: host, Reason: "host is denied by policy"}
	}
	if req.URL.Scheme != "https" && !t.g.Insecure(host) {
		return nil, &RefusedError{Host: host, Reason: "plain HTTP is used only for registries listed as insecure"}
	}
	return t.inner.RoundTrip(req)
}
