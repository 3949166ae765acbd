package inspect_test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/v1/remote"

	"github.com/dns-tuner/dns-tuner/internal/inspect"
	"github.com/dns-tuner/dns-tuner/internal/inspect/imagetest"
)

func TestCatalog(t *testing.T) {
	c := imagetest.Catalog(t)
	for _, e := range c.Entries {
		t.Run(e.Name, func(t *testing.T) {
			o := inspect.Options{Timeout: 20 * time.Second}
			if e.Platform != nil {
				o.Platform = *e.Platform
			}
			var extra []remote.Option
			if e.Auth != nil {
				extra = append(extra, remote.WithAuth(e.Auth))
			}
			c := inspect.Container{Command: e.Command, Args: e.Args, PathEnv: e.PathEnv, WorkingDir: e.WorkDir}
			v, err := inspect.New(o).InspectContainer(context.Background(), e.Ref, c, extra...)
			if err != nil {
				t.Fatalf("Inspect: %v", err)
			}
			t.Logf("%s: %s (%s) version=%q bytes=%d in %v\n  evidence: %s\n  reason: %s", e.Ref, v.Libc, v.Source, v.Version, v.Bytes, v.Duration, v.Evidence, v.Reason)
			if v.Libc != e.Libc || v.Source != e.Source {
				t.Errorf("got %s from %s, want %s from %s", v.Libc, v.Source, e.Libc, e.Source)
			}
			for _, want := range e.Evidence {
				if !strings.Contains(v.Evidence, want) {
					t.Errorf("evidence %q lacks %q", v.Evidence, want)
				}
			}
			if e.CGO != nil && (v.CGO == nil || *v.CGO != *e.CGO) {
				t.Errorf("CGO = %v, want %v", v.CGO, *e.CGO)
			}
			if e.MaxBytes > 0 && v.Bytes > e.MaxBytes {
				t.Errorf("read %d bytes, want at most %d", v.Bytes, e.MaxBytes)
			}
			if e.Version != "" && v.Version != e.Version {
				t.Errorf("version %q, want %q", v.Version, e.Version)
			}
			if e.Libc == "unknown" && v.Reason == "" {
				t.Errorf("unknown verdict without a reason")
			}
			if !strings.HasPrefix(v.Digest, "sha256:") || v.Bytes <= 0 || v.Duration <= 0 {
				t.Errorf("digest %q, bytes %d, duration %v: want all set", v.Digest, v.Bytes, v.Duration)
			}
			h, err := inspect.New(o).Resolve(context.Background(), e.Ref, extra...)
			if err != nil || h.String() != v.Digest {
				t.Errorf("Resolve = %v, %v; want %s", h, err, v.Digest)
			}
			if e.Auth != nil {
				_, err := inspect.New(o).Inspect(context.Background(), e.Ref, nil, nil)
				if !errors.Is(err, inspect.ErrAuth) {
					t.Errorf("without credentials: %v, want kind auth", err)
				}
			}
		})
	}
}
