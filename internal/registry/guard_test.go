package registry_test

import (
	"context"
	"fmt"
	"go/parser"
	"go/token"
	"net/http"
	"net/netip"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/remote"

	"github.com/dns-tuner/dns-tuner/internal/inspect"
	"github.com/dns-tuner/dns-tuner/internal/registry"
	"github.com/dns-tuner/dns-tuner/internal/registry/registrytest"
)

func TestCheckAddr(t *testing.T) {
	for _, tc := range []struct {
		ip      string
		refused bool
	}{
		{"127.0.0.1", true},
		{"127.1.2.3", true},
		{"::1", true},
		{"::ffff:127.0.0.1", true},
		{"169.254.169.254", true},
		{"169.254.1.1", true},
		{"fe80::1", true},
		{"0.0.0.0", true},
		{"0.1.2.3", true},
		{"::", true},
		{"224.0.0.1", true},
		{"255.255.255.255", true},
		{"fd00:ec2::254", true},
		{"fd20:ce::254", true},
		{"100.100.100.200", true},
		{"168.63.129.16", true},
		{"64:ff9b::a9fe:a9fe", true}, // 169.254.169.254 through NAT64
		{"8.8.8.8", false},
		{"10.96.0.10", false}, // in-cluster registries are on private addresses
		{"192.168.1.10", false},
		{"2001:4860:4860::8888", false},
		{"64:ff9b::808:808", false},
	} {
		err := registry.CheckAddr(netip.MustParseAddr(tc.ip))
		if (err != nil) != tc.refused {
			t.Errorf("CheckAddr(%s) = %v, want refused=%v", tc.ip, err, tc.refused)
		}
	}
}

func TestCheckRegistry(t *testing.T) {
	g, err := registry.New(registry.Config{
		Allowed:  []string{"*.example.com", "docker.io", "ghcr.io"},
		Denied:   []string{"evil.example.com", "10.*"},
		Insecure: []string{"registry.local:5000", "10.0.0.1:5000"},
	})
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		host string
		ok   bool
	}{
		{"registry.example.com", true},
		{"registry.example.com:443", true},
		{"evil.example.com", false}, // denied wins over allowed
		{"index.docker.io", true},   // docker.io alias
		{"ghcr.io", true},
		{"quay.io", false},             // not allowed
		{"registry.local:5000", true},  // insecure hosts are explicitly allowed
		{"registry.local:5001", false}, // other ports are not
		{"10.0.0.1:5000", false},       // denied wins over insecure
	} {
		if err := g.CheckRegistry(tc.host); (err == nil) != tc.ok {
			t.Errorf("CheckRegistry(%s) = %v, want ok=%v", tc.host, err, tc.ok)
		}
	}
	if _, err := registry.New(registry.Config{Denied: []string{"[bad"}}); err == nil {
		t.Error("a bad glob was accepted")
	}
	if _, err := registry.New(registry.Config{Insecure: []string{"http://x/"}}); err == nil {
		t.Error("an insecure registry with a scheme was accepted")
	}
}

func TestParseReferenceMarksInsecure(t *testing.T) {
	g, err := registry.New(registry.Config{Insecure: []string{"LocalHost:5000"}})
	if err != nil {
		t.Fatal(err)
	}
	ref, err := g.ParseReference("localhost:5000/app:1")
	if err != nil {
		t.Fatal(err)
	}
	if s := ref.Context().Scheme(); s != "http" {
		t.Errorf("scheme = %s, want http", s)
	}
	ref, err = g.ParseReference("nginx")
	if err != nil {
		t.Fatal(err)
	}
	if s := ref.Context().Scheme(); s != "https" {
		t.Errorf("nginx scheme = %s, want https", s)
	}
}

// A reference to a loopback registry is refused before any connection is made, whether the
// host is an IP literal or a name that resolves to loopback.
func TestLoopbackNeverDialled(t *testing.T) {
	ln := registrytest.Listen(t)
	g, err := registry.New(registry.Config{})
	if err != nil {
		t.Fatal(err)
	}
	for _, image := range []string{
		ln.Addr + "/app:1",
		"localhost:" + ln.Port + "/app:1",
	} {
		ref, err := g.ParseReference(image)
		if err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		_, err = remote.Head(ref, append(g.RemoteOptions(), remote.WithContext(ctx))...)
		cancel()
		if !registry.IsRefused(err) {
			t.Errorf("%s: err = %v, want a refusal", image, err)
		}
	}
	// The dial check itself, over TLS where the plain-HTTP rule does not apply.
	c := &http.Client{Transport: g.Transport()}
	for _, u := range []string{"https://localhost:" + ln.Port + "/v2/", "https://" + ln.Addr + "/v2/", "https://169.254.169.254/latest/meta-data/"} {
		resp, err := c.Get(u)
		if err == nil {
			resp.Body.Close()
		}
		if !registry.IsRefused(err) {
			t.Errorf("GET %s: err = %v, want a refusal", u, err)
		}
	}
	if n := ln.Conns(); n != 0 {
		t.Errorf("loopback listener accepted %d connections, want 0", n)
	}
}

func TestInsecureRegistryIsReachable(t *testing.T) {
	reg := registrytest.New(t)
	_, digest := reg.PushRandom(t, "app:1")
	g, err := registry.New(registry.Config{Insecure: []string{reg.Host}})
	if err != nil {
		t.Fatal(err)
	}
	ref, err := g.ParseReference(reg.Host + "/app:1")
	if err != nil {
		t.Fatal(err)
	}
	desc, err := remote.Head(ref, g.RemoteOptions()...)
	if err != nil {
		t.Fatal(err)
	}
	if desc.Digest != digest {
		t.Errorf("digest = %s, want %s", desc.Digest, digest)
	}
}

// A registry that is allowed (insecure, on loopback) cannot bounce us elsewhere: redirects
// and token realms go through the same guarded transport.
func TestRedirectsAndRealmsAreGuarded(t *testing.T) {
	ln := registrytest.Listen(t)
	for _, tc := range []struct {
		name string
		hook func(w http.ResponseWriter, r *http.Request) bool
		deny []string
	}{
		{"redirect to loopback name", func(w http.ResponseWriter, r *http.Request) bool {
			if strings.Contains(r.URL.Path, "/manifests/") {
				http.Redirect(w, r, "https://localhost:"+ln.Port+"/steal", http.StatusTemporaryRedirect)
				return true
			}
			return false
		}, nil},
		{"redirect to metadata service", func(w http.ResponseWriter, r *http.Request) bool {
			if strings.Contains(r.URL.Path, "/manifests/") {
				http.Redirect(w, r, "https://169.254.169.254/latest/meta-data/", http.StatusTemporaryRedirect)
				return true
			}
			return false
		}, nil},
		{"redirect to denied host", func(w http.ResponseWriter, r *http.Request) bool {
			if strings.Contains(r.URL.Path, "/manifests/") {
				http.Redirect(w, r, "https://blocked.example.com/x", http.StatusTemporaryRedirect)
				return true
			}
			return false
		}, []string{"blocked.example.com"}},
		{"plain-http redirect", func(w http.ResponseWriter, r *http.Request) bool {
			if strings.Contains(r.URL.Path, "/manifests/") {
				http.Redirect(w, r, "http://"+ln.Addr+"/x", http.StatusTemporaryRedirect)
				return true
			}
			return false
		}, nil},
		{"token realm on loopback name", func(w http.ResponseWriter, r *http.Request) bool {
			if r.Header.Get("Authorization") == "" {
				w.Header().Set("WWW-Authenticate", `Bearer realm="https://localhost:`+ln.Port+`/token",service="reg"`)
				w.WriteHeader(http.StatusUnauthorized)
				return true
			}
			return false
		}, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			reg := registrytest.New(t)
			reg.PushRandom(t, "app:1")
			reg.Hook(tc.hook)
			g, err := registry.New(registry.Config{Insecure: []string{reg.Host}, Denied: tc.deny})
			if err != nil {
				t.Fatal(err)
			}
			ref, err := g.ParseReference(reg.Host + "/app:1")
			if err != nil {
				t.Fatal(err)
			}
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			_, err = remote.Get(ref, append(g.RemoteOptions(), remote.WithContext(ctx))...)
			// go-containerregistry refuses redirects to IP literals itself; ours covers names.
			if !registry.IsRefused(err) && (err == nil || !strings.Contains(err.Error(), "SSRF")) {
				t.Errorf("err = %v, want a refusal", err)
			}
		})
	}
	if n := ln.Conns(); n != 0 {
		t.Errorf("loopback listener accepted %d connections, want 0", n)
	}
}

// Without the insecure list, even the registry that works above is refused: the test
// registry is on loopback.
func TestLoopbackRegistryRefusedWithoutInsecureList(t *testing.T) {
	reg := registrytest.New(t)
	reg.PushRandom(t, "app:1")
	before := reg.Requests.Load()
	g, err := registry.New(registry.Config{})
	if err != nil {
		t.Fatal(err)
	}
	ref, err := g.ParseReference(reg.Host + "/app:1")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := remote.Head(ref, g.RemoteOptions()...); !registry.IsRefused(err) {
		t.Errorf("err = %v, want a refusal", err)
	}
	if n := reg.Requests.Load() - before; n != 0 {
		t.Errorf("registry served %d requests, want 0", n)
	}
}

func TestRetriesAreBounded(t *testing.T) {
	reg := registrytest.New(t)
	reg.PushRandom(t, "app:1")
	reg.Hook(func(w http.ResponseWriter, r *http.Request) bool {
		if r.URL.Path == "/v2/" {
			return false
		}
		w.WriteHeader(http.StatusServiceUnavailable)
		return true
	})
	g, err := registry.New(registry.Config{Insecure: []string{reg.Host}})
	if err != nil {
		t.Fatal(err)
	}
	ref, err := name.ParseReference(reg.Host+"/app:1", name.Insecure)
	if err != nil {
		t.Fatal(err)
	}
	before := reg.Requests.Load()
	start := time.Now()
	if _, err := remote.Head(ref, g.RemoteOptions()...); err == nil {
		t.Fatal("want an error from a 503 registry")
	}
	// go-containerregistry's default would try 3 times over about 4s.
	if n := reg.Requests.Load() - before; n > 1+int64(registry.DefaultBackoff.Steps) {
		t.Errorf("%d requests for one HEAD, want at most %d", n, 1+registry.DefaultBackoff.Steps)
	}
	if d := time.Since(start); d > 2*time.Second {
		t.Errorf("HEAD against a 503 registry took %s", d)
	}
}

// The inspector labels a refusal refused_address (metrics, failure reasons) without this
// package importing it.
func TestRefusalIsClassifiedByInspect(t *testing.T) {
	err := fmt.Errorf("manifest: %w", &registry.RefusedError{Host: "127.0.0.1:5000", Reason: "loopback"})
	if k := inspect.KindOf(err); k != inspect.KindRefused {
		t.Errorf("KindOf(refusal) = %q, want %q", k, inspect.KindRefused)
	}
}

// The registry policy is a library below the inspector: it must not import it (issue 8).
func TestDoesNotImportInspect(t *testing.T) {
	files, err := filepath.Glob("*.go")
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range files {
		if strings.HasSuffix(f, "_test.go") {
			continue
		}
		af, err := parser.ParseFile(token.NewFileSet(), f, nil, parser.ImportsOnly)
		if err != nil {
			t.Fatal(err)
		}
		for _, imp := range af.Imports {
			if strings.HasSuffix(strings.Trim(imp.Path.Value, `"`), "/internal/inspect") {
				t.Errorf("%s imports %s", f, imp.Path.Value)
			}
		}
	}
}
