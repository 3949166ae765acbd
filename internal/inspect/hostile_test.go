package inspect_test

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"context"
	"crypto/sha256"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"net"
	"net/http"
	"net/http/httptest"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/types"

	"github.com/dns-tuner/dns-tuner/internal/inspect"
	"github.com/dns-tuner/dns-tuner/internal/inspect/imagetest"
	"github.com/dns-tuner/dns-tuner/internal/libc"
)

// fakeRegistry serves one repository with handcrafted manifests and blobs, so that each can
// misbehave in its own way.
type fakeRegistry struct {
	manifest   http.HandlerFunc
	blobs      map[string]http.HandlerFunc
	everything http.HandlerFunc // if set, answers every request
}

func (f *fakeRegistry) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	switch {
	case f.everything != nil:
		f.everything(w, r)
	case r.URL.Path == "/v2/":
		w.WriteHeader(http.StatusOK)
	case strings.Contains(r.URL.Path, "/manifests/"):
		f.manifest(w, r)
	case strings.Contains(r.URL.Path, "/blobs/"):
		d := r.URL.Path[strings.LastIndex(r.URL.Path, "/")+1:]
		if h, ok := f.blobs[d]; ok {
			h(w, r)
			return
		}
		http.Error(w, `{"errors":[{"code":"BLOB_UNKNOWN"}]}`, http.StatusNotFound)
	default:
		http.NotFound(w, r)
	}
}

func digestOf(b []byte) v1.Hash {
	return v1.Hash{Algorithm: "sha256", Hex: fmt.Sprintf("%x", sha256.Sum256(b))}
}

func serveBytes(b []byte, ct string) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", ct)
		w.Header().Set("Docker-Content-Digest", digestOf(b).String())
		w.Header().Set("Content-Length", fmt.Sprint(len(b)))
		_, _ = w.Write(b)
	}
}

// image returns a manifest and config for layers described by (digest, size) and registers
// the config blob on f.
func (f *fakeRegistry) image(t *testing.T, cfg v1.Config, layers ...v1.Descriptor) []byte {
	t.Helper()
	cf := v1.ConfigFile{OS: "linux", Architecture: "amd64", Config: cfg, RootFS: v1.RootFS{Type: "layers"}}
	for _, l := range layers {
		cf.RootFS.DiffIDs = append(cf.RootFS.DiffIDs, l.Digest)
	}
	raw, err := json.Marshal(cf)
	if err != nil {
		t.Fatal(err)
	}
	cd := digestOf(raw)
	if f.blobs == nil {
		f.blobs = map[string]http.HandlerFunc{}
	}
	f.blobs[cd.String()] = serveBytes(raw, "application/octet-stream")
	m := v1.Manifest{SchemaVersion: 2, MediaType: types.OCIManifestSchema1,
		Config: v1.Descriptor{MediaType: types.OCIConfigJSON, Size: int64(len(raw)), Digest: cd}, Layers: layers}
	mb, err := json.Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	f.manifest = serveBytes(mb, string(types.OCIManifestSchema1))
	return mb
}

func layerDesc(b []byte) v1.Descriptor {
	return v1.Descriptor{MediaType: types.OCILayer, Size: int64(len(b)), Digest: digestOf(b)}
}

func gz(b []byte) []byte {
	var buf bytes.Buffer
	w, _ := gzip.NewWriterLevel(&buf, gzip.BestSpeed)
	_, _ = w.Write(b)
	_ = w.Close()
	return buf.Bytes()
}

// randomBytes is incompressible filler from a seeded generator.
func randomBytes(n int, seed uint64) []byte {
	b := make([]byte, n)
	r := rand.NewChaCha8([32]byte{byte(seed), byte(seed >> 8)})
	_, _ = r.Read(b)
	return b
}

// gzipBomb is a valid gzip layer whose tar holds one file of size bytes of zeros, made of
// repeated gzip members so that building it is cheap.
func gzipBomb(size int64) []byte {
	var hdr bytes.Buffer
	tw := tar.NewWriter(&hdr)
	_ = tw.WriteHeader(&tar.Header{Name: "bomb", Typeflag: tar.TypeReg, Mode: 0o644, Size: size})
	_ = tw.Flush()
	const chunk = 64 << 20
	member := gz(make([]byte, chunk))
	out := gz(hdr.Bytes())
	for n := int64(0); n < size; n += chunk {
		out = append(out, member...)
	}
	return out
}

func ref(t *testing.T, host string) name.Reference {
	t.Helper()
	r, err := name.ParseReference(host + "/hostile/app:latest")
	if err != nil {
		t.Fatal(err)
	}
	return r
}

func serve(t *testing.T, h http.Handler) string {
	srv := httptest.NewServer(h)
	t.Cleanup(func() {
		srv.CloseClientConnections()
		srv.Close()
	})
	return strings.TrimPrefix(srv.URL, "http://")
}

// hangingHost accepts connections and never answers.
func hangingHost(t *testing.T) string {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	var conns []net.Conn
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			conns = append(conns, c)
			mu.Unlock()
		}
	}()
	t.Cleanup(func() {
		ln.Close()
		mu.Lock()
		defer mu.Unlock()
		for _, c := range conns {
			c.Close()
		}
	})
	return ln.Addr().String()
}

func closedHost(t *testing.T) string {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	return addr
}

func TestHostileRegistries(t *testing.T) {
	const (
		timeout  = 1500 * time.Millisecond
		maxBytes = 8 << 20
	)
	// A real layer whose entrypoint comes after 1 MiB of random padding: a reader that is cut
	// short, or fed other bytes, cannot decide before the damage.
	pad := imagetest.Tar(imagetest.Reg("/pad", randomBytes(1<<20, 1)), imagetest.Exe("/app", []byte("#!/bin/sh\n")))
	padGz := gz(pad)
	entry := v1.Config{Entrypoint: []string{"/app"}}

	cases := []struct {
		name  string
		setup func(t *testing.T) string // returns the registry host
		kind  inspect.Kind
		// the reference is by digest of this manifest, when set
		byDigest bool
	}{
		{name: "down", kind: inspect.KindUnreachable, setup: closedHost},
		{name: "hanging", kind: inspect.KindTimeout, setup: hangingHost},
		{name: "not found", kind: inspect.KindNotFound, setup: func(t *testing.T) string { return imagetest.Registry(t) }},
		{name: "5xx everywhere", kind: inspect.KindBadResponse, setup: func(t *testing.T) string {
			return serve(t, &fakeRegistry{everything: func(w http.ResponseWriter, r *http.Request) {
				http.Error(w, "overloaded", http.StatusServiceUnavailable)
			}})
		}},
		{name: "5xx on the layer", kind: inspect.KindBadResponse, setup: func(t *testing.T) string {
			f := &fakeRegistry{}
			d := layerDesc(padGz)
			f.image(t, entry, d)
			f.blobs[d.Digest.String()] = func(w http.ResponseWriter, r *http.Request) { http.Error(w, "boom", 500) }
			return serve(t, f)
		}},
		{name: "truncated layer", kind: inspect.KindBadResponse, setup: func(t *testing.T) string {
			f := &fakeRegistry{}
			d := layerDesc(padGz)
			f.image(t, entry, d)
			f.blobs[d.Digest.String()] = func(w http.ResponseWriter, r *http.Request) {
				w.Header().Set("Content-Length", fmt.Sprint(len(padGz)))
				_, _ = w.Write(padGz[:len(padGz)/2])
				// returning closes the connection short of Content-Length
			}
			return serve(t, f)
		}},
		{name: "layer stalls midway", kind: inspect.KindTimeout, setup: func(t *testing.T) string {
			f := &fakeRegistry{}
			d := layerDesc(padGz)
			f.image(t, entry, d)
			f.blobs[d.Digest.String()] = func(w http.ResponseWriter, r *http.Request) {
				_, _ = w.Write(padGz[:len(padGz)/2])
				w.(http.Flusher).Flush()
				<-r.Context().Done()
			}
			return serve(t, f)
		}},
		{name: "layer digest lies", kind: inspect.KindBadResponse, setup: func(t *testing.T) string {
			f := &fakeRegistry{}
			other := gz(imagetest.Tar(imagetest.Reg("/readme", []byte("hello"))))
			d := layerDesc(other)
			d.Digest = digestOf([]byte("something else"))
			f.image(t, entry, d)
			f.blobs[d.Digest.String()] = serveBytes(other, "application/octet-stream")
			return serve(t, f)
		}},
		{name: "manifest digest lies", kind: inspect.KindBadResponse, byDigest: true, setup: func(t *testing.T) string {
			f := &fakeRegistry{}
			f.image(t, entry, layerDesc(padGz))
			f.blobs[layerDesc(padGz).Digest.String()] = serveBytes(padGz, "application/octet-stream")
			return serve(t, f)
		}},
		{name: "gzip bomb", kind: inspect.KindTooLarge, setup: func(t *testing.T) string {
			f := &fakeRegistry{}
			bomb := gzipBomb(4 << 30)
			t.Logf("gzip bomb: %d compressed bytes for 4 GiB", len(bomb))
			d := layerDesc(bomb)
			f.image(t, entry, d)
			f.blobs[d.Digest.String()] = serveBytes(bomb, "application/octet-stream")
			return serve(t, f)
		}},
		{name: "gzip bomb after the tar's end", kind: inspect.KindTooLarge, setup: func(t *testing.T) string {
			f := &fakeRegistry{}
			var b []byte
			b = append(b, gz(imagetest.Tar(imagetest.Reg("/readme", []byte("hi"))))...)
			zeros := gz(make([]byte, 64<<20))
			for range 64 {
				b = append(b, zeros...)
			}
			d := layerDesc(b)
			f.image(t, entry, d)
			f.blobs[d.Digest.String()] = serveBytes(b, "application/octet-stream")
			return serve(t, f)
		}},
		{name: "endless layer", kind: inspect.KindTooLarge, setup: func(t *testing.T) string {
			f := &fakeRegistry{}
			d := v1.Descriptor{MediaType: types.OCILayer, Size: 1 << 40, Digest: digestOf([]byte("endless"))}
			f.image(t, entry, d)
			f.blobs[d.Digest.String()] = func(w http.ResponseWriter, r *http.Request) {
				zw, _ := gzip.NewWriterLevel(w, gzip.NoCompression)
				tw := tar.NewWriter(zw)
				_ = tw.WriteHeader(&tar.Header{Name: "endless", Typeflag: tar.TypeReg, Mode: 0o644, Size: 1 << 40})
				buf := randomBytes(64<<10, 2)
				for r.Context().Err() == nil {
					if _, err := tw.Write(buf); err != nil {
						return
					}
				}
			}
			return serve(t, f)
		}},
		{name: "endless manifest", kind: inspect.KindTooLarge, setup: func(t *testing.T) string {
			return serve(t, &fakeRegistry{manifest: func(w http.ResponseWriter, r *http.Request) {
				w.Header().Set("Content-Type", string(types.OCIManifestSchema1))
				buf := bytes.Repeat([]byte(" "), 64<<10)
				for r.Context().Err() == nil {
					if _, err := w.Write(buf); err != nil {
						return
					}
				}
			}})
		}},
		{name: "huge config", kind: inspect.KindTooLarge, setup: func(t *testing.T) string {
			f := &fakeRegistry{}
			f.image(t, entry, layerDesc(padGz))
			var m v1.Manifest
			rec := httptest.NewRecorder()
			f.manifest(rec, httptest.NewRequest("GET", "/", nil))
			_ = json.Unmarshal(rec.Body.Bytes(), &m)
			m.Config.Size = 1 << 30
			mb, _ := json.Marshal(m)
			f.manifest = serveBytes(mb, string(types.OCIManifestSchema1))
			return serve(t, f)
		}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			host := c.setup(t)
			r := ref(t, host)
			if c.byDigest {
				r = r.Context().Digest(digestOf([]byte("not the manifest")).String())
			}
			in := inspect.New(inspect.Options{Timeout: timeout, MaxBytes: maxBytes})
			var before, after runtime.MemStats
			runtime.GC()
			runtime.ReadMemStats(&before)
			start := time.Now()
			v, err := in.Inspect(context.Background(), r, nil, nil)
			elapsed := time.Since(start)
			runtime.GC()
			runtime.ReadMemStats(&after)
			grew := int64(after.HeapAlloc) - int64(before.HeapAlloc)
			alloc := after.TotalAlloc - before.TotalAlloc
			t.Logf("%v in %v, read %d bytes, heap %+d KiB, allocated %d KiB", err, elapsed.Round(time.Millisecond), v.Bytes, grew>>10, alloc>>10)
			if got := inspect.KindOf(err); got != c.kind {
				t.Errorf("kind %q (%v), want %q", got, err, c.kind)
			}
			if v.Libc != libc.Unknown || v.Reason == "" {
				t.Errorf("verdict %s with reason %q, want unknown with a reason", v.Libc, v.Reason)
			}
			if elapsed > timeout+time.Second {
				t.Errorf("took %v, bound is %v", elapsed, timeout)
			}
			if v.Bytes > maxBytes+1<<20 {
				t.Errorf("read %d bytes, cap is %d", v.Bytes, maxBytes)
			}
			if grew > 4<<20 {
				t.Errorf("heap grew by %d KiB", grew>>10)
			}
		})
	}
}
