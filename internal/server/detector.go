package server

import (
	"context"
	"reflect"
	"slices"
	"sync"
	"sync/atomic"

	"github.com/go-logr/logr"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/dns-tuner/dns-tuner/internal/libc"
	"github.com/dns-tuner/dns-tuner/internal/mutate"
	"github.com/dns-tuner/dns-tuner/internal/policy"
	"github.com/dns-tuner/dns-tuner/internal/registry"
	"github.com/dns-tuner/dns-tuner/internal/verdicts"
)

// newDetector builds the libc detector the policy asks for: registry inspection with the
// pod's own pull credentials when policy.inspection.enabled, else unknown for every container
// not annotated. It follows policy reloads: a changed inspection section rebuilds the
// detector (and starts a fresh cache). It is a MemoryDetector, so admission answers cached
// verdicts without a goroutine or timer per container.
func newDetector(ctx context.Context, o Options, src policy.Source, mgr ctrl.Manager, log logr.Logger) (libc.MemoryDetector, error) {
	keychains, err := registry.NewPodKeychains(mgr.GetConfig())
	if err != nil {
		return nil, err
	}
	d := &policyDetector{src: src, log: log, build: func(in policy.Inspection) (libc.Detector, error) {
		if !in.Enabled {
			return libc.UnknownDetector{}, nil
		}
		in.InsecureRegistries = append(slices.Clone(in.InsecureRegistries), o.InsecureRegistries...)
		return verdicts.FromPolicy(in, verdicts.Options{
			Keychain:    keychains.Keychain,
			Log:         log,
			BaseContext: ctx,
		})
	}}
	// A bad inspection section fails startup; on a later reload it keeps the last good one.
	if _, err := d.current(); err != nil {
		return nil, err
	}
	if o.WarmCache {
		w := &verdicts.Warmer{Informers: mgr.GetCache(), Detector: d, Log: log.WithName("warmer"),
			Wanted: func(ctx context.Context, ns string) bool { return wanted(ctx, src.Current(), mgr.GetCache(), ns) }}
		if err := mgr.Add(w); err != nil {
			return nil, err
		}
	}
	return d, nil
}

// wanted reports whether admission would inspect pods of namespace ns, so the warmer leaves
// other namespaces' images and secrets alone.
func wanted(ctx context.Context, p *policy.Policy, r client.Reader, ns string) bool {
	if !p.Inspection.Enabled || p.Excluded(ns) {
		return false
	}
	meta := &metav1.PartialObjectMetadata{}
	meta.SetGroupVersionKind(corev1.SchemeGroupVersion.WithKind("Namespace"))
	if err := r.Get(ctx, client.ObjectKey{Name: ns}, meta); err != nil {
		return false
	}
	return mutate.ResolveMode(p, ns, meta.Labels, nil).Mode != policy.Off
}

// policyDetector rebuilds its detector when the policy's inspection section changes.
type policyDetector struct {
	src   policy.Source
	build func(policy.Inspection) (libc.Detector, error)
	log   logr.Logger

	// last is read without the lock on every container: admissions must not queue on a
	// mutex for a policy that rarely changes.
	last atomic.Pointer[built]
	mu   sync.Mutex // serialises rebuilds
	in   policy.Inspection
}

// built is the detector in use and the policy object it was checked against.
type built struct {
	seen *policy.Policy
	det  libc.Detector
}

var _ libc.MemoryDetector = (*policyDetector)(nil)

func (d *policyDetector) Detect(ctx context.Context, t libc.Target) (libc.Verdict, error) {
	det, _ := d.current()
	return det.Detect(ctx, t)
}

// DetectCached implements libc.MemoryDetector by asking the current detector. A detector that
// never does I/O (inspection disabled) is answered directly.
func (d *policyDetector) DetectCached(t libc.Target) (libc.Verdict, error, bool) {
	det, _ := d.current()
	switch det := det.(type) {
	case libc.MemoryDetector:
		return det.DetectCached(t)
	case libc.UnknownDetector:
		v, err := det.Detect(context.Background(), t)
		return v, err, true
	}
	return libc.Verdict{}, nil, false
}

func (d *policyDetector) current() (libc.Detector, error) {
	p := d.src.Current()
	if b := d.last.Load(); b != nil && b.seen == p { // the common case: same policy object
		return b.det, nil
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	b := d.last.Load()
	if b != nil && b.seen == p {
		return b.det, nil
	}
	if b != nil && reflect.DeepEqual(p.Inspection, d.in) {
		d.last.Store(&built{seen: p, det: b.det})
		return b.det, nil
	}
	det, err := d.build(p.Inspection)
	if err != nil {
		d.log.Error(err, "inspection settings rejected; keeping the previous ones")
		prev := libc.Detector(libc.UnknownDetector{})
		if b != nil {
			prev = b.det
		}
		d.last.Store(&built{seen: p, det: prev}) // not rebuilt for every pod
		return prev, err
	}
	d.log.Info("registry inspection configured", "enabled", p.Inspection.Enabled, "platform", p.Inspection.Platform,
		"allowed", p.Inspection.AllowedRegistries, "denied", p.Inspection.DeniedRegistries, "insecure", p.Inspection.InsecureRegistries)
	d.in = p.Inspection
	d.last.Store(&built{seen: p, det: det})
	return det, nil
}
