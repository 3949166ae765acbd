package verdicts_test

// These tests run the real inspector against real registries (go-containerregistry's, on
// loopback, hence the insecure lists) with real images built by imagetest.

import (
	"bytes"
	"context"
	"encoding/base64"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/go-logr/logr/funcr"
	"github.com/google/go-containerregistry/pkg/authn"
	ggcrlogs "github.com/google/go-containerregistry/pkg/logs"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes/fake"

	"github.com/dns-tuner/dns-tuner/internal/inspect/imagetest"
	"github.com/dns-tuner/dns-tuner/internal/libc"
	"github.com/dns-tuner/dns-tuner/internal/policy"
	"github.com/dns-tuner/dns-tuner/internal/registry"
	"github.com/dns-tuner/dns-tuner/internal/registry/registrytest"
	"github.com/dns-tuner/dns-tuner/internal/verdicts"
)

func inspection(insecure ...string) policy.Inspection {
	return policy.Inspection{
		Enabled:            true,
		PerImageTimeout:    policy.Duration{Duration: 10 * time.Second},
		MaxBytesPerImage:   64 << 20,
		Platform:           "linux/amd64",
		InsecureRegistries: insecure,
	}
}

// A registry that hangs: admission gets unknown within its budget, the inspection finishes in
// the background, and the next pod is answered from the cache without touching the registry.
func TestHangingRegistry(t *testing.T) {
	release := make(chan struct{})
	var manifests atomic.Int64
	srv := imagetest.Serve(t, func(h http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if strings.Contains(r.URL.Path, "/manifests/") {
				manifests.Add(1)
				select {
				case <-release:
				case <-r.Context().Done():
					return
				}
			}
			h.ServeHTTP(w, r)
		})
	})
	close(release) // let the push through
	ref := imagetest.Push(t, srv.Host, "slow/app:1", imagetest.Build(t, imagetest.MuslDynamic))
	release = make(chan struct{})

	c, err := verdicts.FromPolicy(inspection(srv.Host), verdicts.Options{})
	if err != nil {
		t.Fatal(err)
	}
	budget := 150 * time.Millisecond
	ctx, cancel := context.WithTimeout(context.Background(), budget)
	defer cancel()
	start := time.Now()
	v, err := c.Detect(ctx, libc.Target{Namespace: "ns", Image: ref.String()})
	took := time.Since(start)
	if v.Libc != libc.Unknown || err == nil || !strings.Contains(v.Reason, "budget") {
		t.Errorf("first pod: %s %q %v, want unknown past the budget", v.Libc, v.Reason, err)
	}
	if took > budget+500*time.Millisecond {
		t.Errorf("first pod waited %s for a %s budget", took, budget)
	}

	close(release)
	c.Wait()
	before := manifests.Load()
	sent := srv.Sent.Load()
	ctx2, cancel2 := context.WithTimeout(context.Background(), budget)
	defer cancel2()
	v, err = c.Detect(ctx2, libc.Target{Namespace: "other", Image: ref.String()})
	if err != nil || v.Libc != libc.Musl || v.Source != libc.SourceCache {
		t.Errorf("next pod: %s/%s %q %v, want musl from the cache", v.Libc, v.Source, v.Reason, err)
	}
	if manifests.Load() != before || srv.Sent.Load() != sent {
		t.Error("the cache hit contacted the registry")
	}
}

// With no insecure list a loopback registry is refused before anything is dialled, and the
// pod gets unknown with the reason.
func TestLoopbackRefusedAtAdmission(t *testing.T) {
	ln := registrytest.Listen(t)
	c, err := verdicts.FromPolicy(inspection(), verdicts.Options{})
	if err != nil {
		t.Fatal(err)
	}
	for _, image := range []string{"localhost:" + ln.Port + "/app:1", ln.Addr + "/app@sha256:" + strings.Repeat("a", 64)} {
		v, err := c.Detect(context.Background(), libc.Target{Namespace: "ns", Image: image})
		if v.Libc != libc.Unknown || err == nil || !strings.Contains(v.Reason, "refused_address") {
			t.Errorf("%s: %s %q %v, want unknown, refused", image, v.Libc, v.Reason, err)
		}
	}
	c.Wait()
	if n := ln.Conns(); n != 0 {
		t.Errorf("listener accepted %d connections", n)
	}
}

func dockerSecret(ns, name, host, user, pass string) *corev1.Secret {
	auth := base64.StdEncoding.EncodeToString([]byte(user + ":" + pass))
	return &corev1.Secret{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name},
		Type:       corev1.SecretTypeDockerConfigJson,
		Data: map[string][]byte{corev1.DockerConfigJsonKey: fmt.Appendf(nil,
			`{"auths":{%q:{"username":%q,"password":%q,"auth":%q}}}`, host, user, pass, auth)},
	}
}

// syncBuffer collects log lines from concurrent goroutines.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}
func (s *syncBuffer) String() string { s.mu.Lock(); defer s.mu.Unlock(); return s.b.String() }

// An image that needs a pull secret: inspected with the pod's secret, never served to a pod
// that could not pull it, and the secret never appears in logs, reasons or errors.
func TestPullSecrets(t *testing.T) {
	const password = "Very-Secret-Registry-Password-42"
	host := imagetest.AuthRegistry(t, "robot", password)
	img := imagetest.Build(t, imagetest.GlibcDynamic)
	ref := imagetest.Push(t, host, "private/app:1", img, remote.WithAuth(&authn.Basic{Username: "robot", Password: password}))
	digest, err := img.Digest()
	if err != nil {
		t.Fatal(err)
	}
	byDigest := ref.Context().Digest(digest.String()).String()

	client := fake.NewClientset(
		dockerSecret("team-a", "regcred", host, "robot", password),
		dockerSecret("team-c", "regcred", host, "robot", password),
		dockerSecret("team-d", "stale", host, "robot", "old-"+password),
		&corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Namespace: "team-c", Name: "deployer"},
			ImagePullSecrets: []corev1.LocalObjectReference{{Name: "regcred"}}},
		&corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: "team-e", Name: "garbled"}, Type: corev1.SecretTypeDockerConfigJson,
			Data: map[string][]byte{corev1.DockerConfigJsonKey: []byte(`{"auths":{"x":{"password":"` + password)}},
	)
	logs := &syncBuffer{}
	log := funcr.New(func(prefix, args string) { fmt.Fprintln(logs, prefix, args) }, funcr.Options{Verbosity: 10})
	ggcrlogs.Warn.SetOutput(logs) // the keychain library logs missing secrets here
	defer ggcrlogs.Warn.SetOutput(bytes.NewBuffer(nil))

	c, err := verdicts.FromPolicy(inspection(host), verdicts.Options{
		Keychain: (&registry.PodKeychains{Client: client}).Keychain,
		Log:      log,
	})
	if err != nil {
		t.Fatal(err)
	}
	var said []string
	for _, s := range []struct {
		name string
		pod  libc.Target
		want libc.Libc
	}{
		{"pod's pull secret", libc.Target{Namespace: "team-a", Image: ref.String(), PullSecrets: []string{"regcred"}}, libc.GLibc},
		{"no secret, same namespace", libc.Target{Namespace: "team-a", Image: ref.String()}, libc.Unknown},
		// The verdict is cached under this digest, but this pod cannot pull it.
		{"no secret, by digest", libc.Target{Namespace: "team-b", Image: byDigest}, libc.Unknown},
		{"secret, by digest", libc.Target{Namespace: "team-a", Image: byDigest, PullSecrets: []string{"regcred"}}, libc.GLibc},
		{"no secret, other namespace", libc.Target{Namespace: "team-b", Image: ref.String()}, libc.Unknown},
		{"secret name of another namespace", libc.Target{Namespace: "team-b", Image: ref.String(), PullSecrets: []string{"regcred"}}, libc.Unknown},
		{"service account's pull secret", libc.Target{Namespace: "team-c", ServiceAccount: "deployer", Image: ref.String()}, libc.GLibc},
		{"stale password", libc.Target{Namespace: "team-d", Image: ref.String(), PullSecrets: []string{"stale"}}, libc.Unknown},
		{"garbled secret", libc.Target{Namespace: "team-e", Image: ref.String(), PullSecrets: []string{"garbled"}}, libc.Unknown},
	} {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		v, err := c.Detect(ctx, s.pod)
		cancel()
		if v.Libc != s.want {
			t.Errorf("%s: %s (%s), want %s", s.name, v.Libc, v.Reason, s.want)
		}
		if s.want == libc.Unknown && (v.Reason == "" || err == nil) {
			t.Errorf("%s: unknown without a reason or error", s.name)
		}
		said = append(said, v.Reason, v.Evidence, fmt.Sprint(err))
	}
	c.Wait()
	all := logs.String() + strings.Join(said, "\n")
	if !strings.Contains(all, "inspection failed") {
		t.Errorf("expected failure logs, got:\n%s", logs.String())
	}
	for _, secret := range []string{password, base64.StdEncoding.EncodeToString([]byte("robot:" + password))} {
		if strings.Contains(all, secret) {
			t.Errorf("a secret leaked into logs, reasons or errors:\n%s", all)
		}
	}
}
