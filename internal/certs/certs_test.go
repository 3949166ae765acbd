package certs

import (
	"context"
	"os"
	"path/filepath"
	"testing"
	"time"

	"sigs.k8s.io/controller-runtime/pkg/webhook"
)

type fakeServer struct {
	webhook.Server
	started chan struct{}
}

func (f *fakeServer) Start(ctx context.Context) error {
	close(f.started)
	<-ctx.Done()
	return nil
}

// The webhook server must not start (and so /readyz must not pass) before the certificate.
func TestGatedServerWaitsForReady(t *testing.T) {
	ready := make(chan struct{})
	inner := &fakeServer{started: make(chan struct{})}
	g := &GatedServer{Server: inner, Ready: ready}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go func() { _ = g.Start(ctx) }()

	select {
	case <-inner.started:
		t.Fatal("inner server started before the certificate was ready")
	case <-time.After(100 * time.Millisecond):
	}
	close(ready)
	select {
	case <-inner.started:
	case <-time.After(5 * time.Second):
		t.Fatal("inner server did not start after the certificate was ready")
	}
}

func TestExternalModeWaitsForFiles(t *testing.T) {
	dir := t.TempDir()
	ready := make(chan struct{})
	f := &filesPresent{paths: []string{filepath.Join(dir, "tls.crt"), filepath.Join(dir, "tls.key")}, ready: ready}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go func() { _ = f.Start(ctx) }()

	if err := os.WriteFile(filepath.Join(dir, "tls.crt"), []byte("x"), 0o600); err != nil {
		t.Fatal(err)
	}
	select {
	case <-ready:
		t.Fatal("ready with tls.key missing")
	case <-time.After(1500 * time.Millisecond):
	}
	if err := os.WriteFile(filepath.Join(dir, "tls.key"), []byte("x"), 0o600); err != nil {
		t.Fatal(err)
	}
	select {
	case <-ready:
	case <-time.After(5 * time.Second):
		t.Fatal("not ready with both files present")
	}
}

func TestValidateSelfManagedNeedsNamespace(t *testing.T) {
	o := Options{Mode: ModeSelfManaged, SecretName: "s", ServiceName: "svc", WebhookConfigName: "w", CAName: "ca", CertDir: "/d"}
	if err := o.Validate(); err == nil {
		t.Fatal("self-managed without a namespace validated")
	}
	o.Namespace = "ns"
	if err := o.Validate(); err != nil {
		t.Fatal(err)
	}
	if err := (Options{Mode: "cert-manager"}).Validate(); err == nil {
		t.Fatal("unknown mode validated")
	}
}
