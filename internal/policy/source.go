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
// inode. A change applies once two polls in a row read it (so within two intervals); a file
// that is empty or stops parsing keeps the last good policy in force.
type File struct {
	Path     string
	Interval time.Duration
	// AlwaysExcluded are added to every loaded policy's excluded namespaces (dns-tuner's own).
	AlwaysExcluded []string
	Log            logr.Logger
	// OnReload, if set, is told the outcome of every attempt to put new file content in
	// force: nil when the policy was replaced, the error when the last good one was kept.
	// The server counts these in a metric; policy itself knows nothing of metrics.
	OnReload func(err error)

	cur     atomic.Pointer[Policy]
	last    []byte // content of the policy in force
	seen    []byte // changed content read once by a poll, not yet in force
	hasSeen bool   // seen is set (an empty file is content too)
}

// Load reads the file (or, with no Path, the embedded default) and puts it in force; it must
// succeed before serving starts. It must not run concurrently with Start.
func (f *File) Load() error {
	if f.Path == "" {
		return f.apply(DefaultYAML())
	}
	data, err := os.ReadFile(f.Path)
	if err != nil {
		err = fmt.Errorf("reading policy: %w", err)
		f.report(err)
		return err
	}
	return f.apply(data)
}

// apply parses data and, when it is a valid policy, puts it in force.
func (f *File) apply(data []byte) error {
	if f.last != nil && bytes.Equal(data, f.last) {
		return nil
	}
	p, err := Parse(data)
	if err != nil {
		err = fmt.Errorf("%s: %w", f.Path, err)
		f.report(err)
		return err
	}
	for _, ns := range f.AlwaysExcluded {
		if ns != "" && !slices.Contains(p.ExcludedNamespaces, ns) {
			p.ExcludedNamespaces = append(p.ExcludedNamespaces, ns)
		}
	}
	f.cur.Store(p)
	f.last, f.seen, f.hasSeen = data, nil, false
	f.report(nil)
	return nil
}

func (f *File) report(err error) {
	if f.OnReload != nil {
		f.OnReload(err)
	}
}

func (f *File) Current() *Policy { return f.cur.Load() }

// poll re-reads the file and puts new content in force once two polls in a row read it the
// same. A writer that rewrites the file in place (an editor, kubectl cp; not kubelet, which
// swaps a symlink) can leave a valid prefix of the new file for a moment, and a prefix is not
// the policy that was meant: an excludedNamespaces line without the mode line after it would
// mean mode off. The cost is one interval more before a change applies.
func (f *File) poll() error {
	data, err := os.ReadFile(f.Path)
	if err != nil {
		err = fmt.Errorf("reading policy: %w", err)
		f.report(err)
		return err
	}
	if bytes.Equal(data, f.last) {
		f.seen, f.hasSeen = nil, false
		return nil
	}
	if !f.hasSeen || !bytes.Equal(data, f.seen) {
		f.seen, f.hasSeen = data, true
		return nil
	}
	return f.apply(data)
}

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
			if err := f.poll(); err != nil {
				f.Log.Error(err, "policy reload failed; keeping the last good policy")
			} else if f.Current() != before {
				f.Log.Info("policy reloaded", "path", f.Path, "mode", f.Current().Mode)
			}
		}
	}
}
