package policy

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"slices"
	"sync/atomic"
	"time"

	"github.com/go-logr/logr"

	"github.com/dns-tuner/dns-tuner/internal/metrics"
)

// Source hands out the current policy. Handlers call Current on every admission, so it must
// be cheap and safe for concurrent use.
type Source interface {
	Current() *Policy
}

// Static is a Source that never changes, for tests and the embedded default.
type Static struct{ P *Policy }

func (s Static) Current() *Policy { return s.P }

// File is a Source backed by a policy file that is re-read when its content changes. A
// ConfigMap volume swaps a symlink, so the file is polled by content rather than watched by
// inode. A file that stops parsing keeps the last good policy in force.
type File struct {
	Path     string
	Interval time.Duration
	// AlwaysExcluded are added to every loaded policy's excluded namespaces (dns-tuner's own).
	AlwaysExcluded []string
	Log            logr.Logger

	cur  atomic.Pointer[Policy]
	last []byte
}

// Load reads the file once; it must succeed before serving starts.
func (f *File) Load() error {
	var data []byte
	if f.Path == "" {
		data = DefaultYAML()
	} else {
		b, err := os.ReadFile(f.Path)
		if err != nil {
			return fmt.Errorf("reading policy: %w", err)
		}
		data = b
	}
	if f.last != nil && bytes.Equal(data, f.last) {
		return nil
	}
	p, err := Parse(data)
	if err != nil {
		metrics.PolicyReloads.WithLabelValues("error").Inc()
		return fmt.Errorf("%s: %w", f.Path, err)
	}
	for _, ns := range f.AlwaysExcluded {
		if ns != "" && !slices.Contains(p.ExcludedNamespaces, ns) {
			p.ExcludedNamespaces = append(p.ExcludedNamespaces, ns)
		}
	}
	f.cur.Store(p)
	f.last = data
	metrics.PolicyReloads.WithLabelValues("ok").Inc()
	return nil
}

func (f *File) Current() *Policy { return f.cur.Load() }

// Start polls for changes until ctx ends; it is a controller-runtime Runnable.
func (f *File) Start(ctx context.Context) error {
	if f.Path == "" {
		<-ctx.Done()
		return nil
	}
	interval := f.Interval
	if interval <= 0 {
		interval = 10 * time.Second
	}
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
			before := f.Current()
			if err := f.Load(); err != nil {
				f.Log.Error(err, "policy reload failed; keeping the last good policy")
			} else if f.Current() != before {
				f.Log.Info("policy reloaded", "path", f.Path, "mode", f.Current().Mode)
			}
		}
	}
}
