package server

import (
	"context"
	"errors"
	"sync/atomic"
	"testing"

	"github.com/go-logr/logr"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"sigs.k8s.io/controller-runtime/pkg/client/fake"

	"github.com/dns-tuner/dns-tuner/internal/libc"
	"github.com/dns-tuner/dns-tuner/internal/mutate"
	"github.com/dns-tuner/dns-tuner/internal/policy"
)

type fixedSource struct{ p atomic.Pointer[policy.Policy] }

func (s *fixedSource) Current() *policy.Policy { return s.p.Load() }

type namedDetector string

func (n namedDetector) Detect(context.Context, libc.Target) (libc.Verdict, error) {
	return libc.Verdict{Libc: libc.Unknown, Reason: string(n)}, nil
}

func TestPolicyDetectorFollowsReloads(t *testing.T) {
	src := &fixedSource{}
	builds := 0
	d := &policyDetector{src: src, log: logr.Discard(), build: func(in policy.Inspection) (libc.Detector, error) {
		builds++
		if in.Platform == "bad" {
			return nil, errors.New("bad platform")
		}
		return namedDetector(in.Platform), nil
	}}
	set := func(platform string) {
		p := policy.Default()
		p.Inspection.Platform = platform
		src.p.Store(p)
	}
	for _, s := range []struct {
		platform string // "" keeps the current policy object
		want     string
		builds   int
	}{
		{"linux/amd64", "linux/amd64", 1},
		{"", "linux/amd64", 1},            // same object
		{"linux/amd64", "linux/amd64", 1}, // new object, same inspection section
		{"linux/arm64", "linux/arm64", 2},
		{"bad", "linux/arm64", 3}, // rejected: the last good detector stays
		{"", "linux/arm64", 3},    // and the bad one is not rebuilt on every pod
	} {
		if s.platform != "" {
			set(s.platform)
		}
		v, _ := d.Detect(context.Background(), libc.Target{})
		if v.Reason != s.want || builds != s.builds {
			t.Errorf("after %q: detector %q after %d builds, want %q after %d", s.platform, v.Reason, builds, s.want, s.builds)
		}
	}
}

func TestWarmerWantsOnlyInspectedNamespaces(t *testing.T) {
	scheme := runtime.NewScheme()
	if err := clientgoscheme.AddToScheme(scheme); err != nil {
		t.Fatal(err)
	}
	r := fake.NewClientBuilder().WithScheme(scheme).WithObjects(
		&corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "shop", Labels: map[string]string{mutate.LabelMode: "enforce"}}},
		&corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "audited", Labels: map[string]string{mutate.LabelMode: "audit"}}},
		&corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "plain"}},
		&corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "kube-system", Labels: map[string]string{mutate.LabelMode: "enforce"}}},
	).Build()
	on := policy.Default() // cluster mode off: namespaces opt in
	on.Inspection.Enabled = true
	off := policy.Default()
	for _, tc := range []struct {
		p    *policy.Policy
		ns   string
		want bool
	}{
		{on, "shop", true},
		{on, "audited", true},
		{on, "plain", false},       // not opted in
		{on, "kube-system", false}, // excluded whatever its label says
		{on, "missing", false},
		{off, "shop", false}, // inspection disabled
	} {
		if got := wanted(context.Background(), tc.p, r, tc.ns); got != tc.want {
			t.Errorf("wanted(%s, inspection %v) = %v, want %v", tc.ns, tc.p.Inspection.Enabled, got, tc.want)
		}
	}
}
