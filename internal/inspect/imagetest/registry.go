package imagetest

import (
	"crypto/subtle"
	"io"
	"log"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/registry"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/remote"
)

// Server is an in-process registry. Host is "127.0.0.1:port", which go-containerregistry
// talks to over plain HTTP.
type Server struct {
	Host string
	URL  string
	// Sent counts response body bytes written, for comparing with what a client says it read.
	Sent *atomic.Int64
}

// Registry starts an in-memory registry for the test and returns its host.
func Registry(t testing.TB) string { return Serve(t, nil).Host }

// AuthRegistry starts a registry that wants HTTP basic credentials user:pass for every
// request, as a private registry does.
func AuthRegistry(t testing.TB, user, pass string) string {
	return Serve(t, func(h http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			u, p, ok := r.BasicAuth()
			if !ok || subtle.ConstantTimeCompare([]byte(u+":"+p), []byte(user+":"+pass)) != 1 {
				w.Header().Set("WWW-Authenticate", `Basic realm="imagetest"`)
				http.Error(w, `{"errors":[{"code":"UNAUTHORIZED","message":"authentication required"}]}`, http.StatusUnauthorized)
				return
			}
			h.ServeHTTP(w, r)
		})
	}).Host
}

// Serve starts a registry whose handler wrap may decorate (nil: none).
func Serve(t testing.TB, wrap func(http.Handler) http.Handler) *Server {
	t.Helper()
	h := registry.New(registry.Logger(log.New(io.Discard, "", 0)))
	if wrap != nil {
		h = wrap(h)
	}
	s := &Server{Sent: new(atomic.Int64)}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h.ServeHTTP(&countingWriter{ResponseWriter: w, n: s.Sent}, r)
	}))
	t.Cleanup(srv.Close)
	s.URL = srv.URL
	s.Host = strings.TrimPrefix(srv.URL, "http://")
	return s
}

type countingWriter struct {
	http.ResponseWriter
	n *atomic.Int64
}

func (c *countingWriter) Write(p []byte) (int, error) {
	n, err := c.ResponseWriter.Write(p)
	c.n.Add(int64(n))
	return n, err
}

// Push writes img to host/repo (repo may carry ":tag"; default "latest") and returns its
// reference by tag.
func Push(t testing.TB, host, repo string, img v1.Image, opts ...remote.Option) name.Reference {
	t.Helper()
	ref, err := name.ParseReference(host + "/" + repo)
	if err != nil {
		t.Fatalf("push %s: %v", repo, err)
	}
	if err := remote.Write(ref, img, opts...); err != nil {
		t.Fatalf("push %s: %v", ref, err)
	}
	return ref
}

// PushIndex writes a multi-arch index to host/repo.
func PushIndex(t testing.TB, host, repo string, idx v1.ImageIndex, opts ...remote.Option) name.Reference {
	t.Helper()
	ref, err := name.ParseReference(host + "/" + repo)
	if err != nil {
		t.Fatalf("push %s: %v", repo, err)
	}
	if err := remote.WriteIndex(ref, idx, opts...); err != nil {
		t.Fatalf("push %s: %v", ref, err)
	}
	return ref
}

func remoteAuth(b *authn.Basic) remote.Option { return remote.WithAuth(b) }
