// Package registrytest serves real OCI registries (go-containerregistry's in-process
// registry on httptest) for tests of code that talks to registries through registry.Guard:
// optional basic auth, request hooks, and a listener that records every connection.
package registrytest

import (
	"context"
	"io"
	"log"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	ggcrregistry "github.com/google/go-containerregistry/pkg/registry"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/google/go-containerregistry/pkg/v1/remote"
)

// Registry is a running test registry.
type Registry struct {
	Server *httptest.Server
	// Host is "127.0.0.1:PORT": list it as insecure to reach it through a Guard.
	Host     string
	Requests atomic.Int64 // requests served, including refused ones
	user     string
	pass     string
	mu       sync.Mutex
	hook     func(w http.ResponseWriter, r *http.Request) bool
}

// Option configures New.
type Option func(*Registry)

// WithBasicAuth requires user:pass on every request, as a private registry does.
func WithBasicAuth(user, pass string) Option {
	return func(r *Registry) { r.user, r.pass = user, pass }
}

// New starts a registry; it stops at the end of the test.
func New(t testing.TB, opts ...Option) *Registry {
	t.Helper()
	r := &Registry{}
	for _, o := range opts {
		o(r)
	}
	inner := ggcrregistry.New(ggcrregistry.Logger(log.New(io.Discard, "", 0)))
	r.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		r.Requests.Add(1)
		r.mu.Lock()
		hook := r.hook
		r.mu.Unlock()
		if hook != nil && hook(w, req) {
			return
		}
		if r.user != "" {
			if u, p, ok := req.BasicAuth(); !ok || u != r.user || p != r.pass {
				w.Header().Set("WWW-Authenticate", `Basic realm="registrytest"`)
				http.Error(w, `{"errors":[{"code":"UNAUTHORIZED","message":"authentication required"}]}`, http.StatusUnauthorized)
				return
			}
		}
		inner.ServeHTTP(w, req)
	}))
	t.Cleanup(r.Server.Close)
	r.Host = strings.TrimPrefix(r.Server.URL, "http://")
	return r
}

// Hook runs f before the registry on every request; f returns true if it answered. Use it to
// make the registry hang, fail or redirect.
func (r *Registry) Hook(f func(w http.ResponseWriter, req *http.Request) bool) {
	r.mu.Lock()
	r.hook = f
	r.mu.Unlock()
}

// Push writes img as repo:tag (plain HTTP, no guard) and returns the reference by tag and
// the image digest.
func (r *Registry) Push(t testing.TB, repoTag string, img v1.Image) (name.Reference, v1.Hash) {
	t.Helper()
	ref, err := name.ParseReference(r.Host+"/"+repoTag, name.Insecure)
	if err != nil {
		t.Fatal(err)
	}
	opts := []remote.Option{}
	if r.user != "" {
		opts = append(opts, remote.WithAuth(&authn.Basic{Username: r.user, Password: r.pass}))
	}
	if err := remote.Write(ref, img, opts...); err != nil {
		t.Fatalf("pushing %s: %v", ref, err)
	}
	d, err := img.Digest()
	if err != nil {
		t.Fatal(err)
	}
	return ref, d
}

// PushRandom pushes a small random image.
func (r *Registry) PushRandom(t testing.TB, repoTag string) (name.Reference, v1.Hash) {
	t.Helper()
	img, err := random.Image(256, 1)
	if err != nil {
		t.Fatal(err)
	}
	return r.Push(t, repoTag, img)
}

// Listener accepts TCP connections on loopback and counts them, to prove that something was
// never dialled.
type Listener struct {
	Addr  string // 127.0.0.1:PORT
	Port  string
	conns atomic.Int64
}

// Conns is the number of connections accepted so far.
func (l *Listener) Conns() int64 { return l.conns.Load() }

// Listen starts a counting listener that closes at the end of the test.
func Listen(t testing.TB) *Listener {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(func() { cancel(); ln.Close() })
	l := &Listener{Addr: ln.Addr().String()}
	_, l.Port, _ = net.SplitHostPort(l.Addr)
	go func() {
		for ctx.Err() == nil {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			l.conns.Add(1)
			c.Close()
		}
	}()
	return l
}
