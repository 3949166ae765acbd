package server

import (
	"context"
	"reflect"
	"slices"
	"sync"

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
// detector (and starts a fresh cache).
func newDetector(ctx context.Context, o Options, src policy.Source, mgr ctrl.Manager, log logr.Logger) (libc.Detector, error) {
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

	mu   sync.Mutex
	seen *policy.Policy // the policy object det was checked against
	in   policy.Inspection
	det  libc.Detector
}

func (d *policyDetector) Detect(ctx context.Context, t libc.Target) (libc.Verdict, error) {
	det, _ := d.current()
	return det.Detect(ctx, t)
}

func (d *policyDetector) current() (libc.Detector, error) {
	p := d.src.Current()
	d.mu.Lock()
	defer d.mu.Unlock()
	if p == d.seen && d.det != nil { // the common case: same policy object, no comparison
		return d.det, nil
	}
	d.seen = p
	if d.det != nil && reflect.DeepEqual(p.Inspection, d.in) {
		return d.det, nil
	}
	det, err := d.build(p.Inspection)
	if err != nil {
		d.log.Error(err, "inspection settings rejected; keeping the previous ones")
		if d.det == nil {
			d.det = libc.UnknownDetector{}
		}
		return d.det, err
	}
	d.log.Info("registry inspection configured", "enabled", p.Inspection.Enabled, "platform", p.Inspection.Platform,
		"allowed", p.Inspection.AllowedRegistries, "denied", p.Inspection.DeniedRegistries, "insecure", p.Inspection.InsecureRegistries)
	d.in, d.det = p.Inspection, det
	return det, nil
}
