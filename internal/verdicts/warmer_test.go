package verdicts

import (
	"context"
	"sync"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	toolscache "k8s.io/client-go/tools/cache"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/cache/informertest"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/dns-tuner/dns-tuner/internal/libc"
)

type recorder struct {
	mu   sync.Mutex
	seen []libc.Target
}

func (r *recorder) Detect(_ context.Context, t libc.Target) (libc.Verdict, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.seen = append(r.seen, t)
	return libc.Verdict{Libc: libc.Musl}, nil
}

func (r *recorder) snapshot() []libc.Target {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]libc.Target(nil), r.seen...)
}

func (r *recorder) images() map[string]libc.Target {
	r.mu.Lock()
	defer r.mu.Unlock()
	m := map[string]libc.Target{}
	for _, t := range r.seen {
		m[t.Image] = t
	}
	return m
}

func TestWarmer(t *testing.T) {
	scheme := runtime.NewScheme()
	if err := clientgoscheme.AddToScheme(scheme); err != nil {
		t.Fatal(err)
	}
	infs := &informertest.FakeInformers{Scheme: scheme}
	// The fake is not safe for concurrent use: create its informers before Start.
	for _, kind := range WarmedKinds {
		if _, err := infs.FakeInformerFor(context.Background(), kind); err != nil {
			t.Fatal(err)
		}
	}
	var registered sync.WaitGroup
	registered.Add(len(WarmedKinds))
	rec := &recorder{}
	w := &Warmer{Informers: signalling{infs, &registered}, Detector: rec, Wanted: func(_ context.Context, ns string) bool { return ns != "off" }}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error)
	go func() { done <- w.Start(ctx) }()

	tpl := func(image string) corev1.PodTemplateSpec {
		return corev1.PodTemplateSpec{Spec: corev1.PodSpec{
			ServiceAccountName: "builder",
			ImagePullSecrets:   []corev1.LocalObjectReference{{Name: "regcred"}},
			InitContainers:     []corev1.Container{{Name: "init", Image: image + "-init"}},
			Containers:         []corev1.Container{{Name: "app", Image: image, Command: []string{"/app"}}},
		}}
	}
	meta := func(ns, name string) metav1.ObjectMeta { return metav1.ObjectMeta{Namespace: ns, Name: name} }
	dep := &appsv1.Deployment{ObjectMeta: meta("shop", "web"), Spec: appsv1.DeploymentSpec{Template: tpl("deploy")}}
	waitFor := func(image string) {
		t.Helper()
		deadline := time.Now().Add(5 * time.Second)
		for time.Now().Before(deadline) {
			if _, ok := rec.images()[image]; ok {
				return
			}
			time.Sleep(5 * time.Millisecond)
		}
		t.Fatalf("%s never warmed; saw %v", image, rec.images())
	}
	registered.Wait() // Add before a handler is registered would be lost
	for _, obj := range []client.Object{
		dep,
		&appsv1.StatefulSet{ObjectMeta: meta("shop", "db"), Spec: appsv1.StatefulSetSpec{Template: tpl("sts")}},
		&appsv1.DaemonSet{ObjectMeta: meta("shop", "agent"), Spec: appsv1.DaemonSetSpec{Template: tpl("ds")}},
		&batchv1.Job{ObjectMeta: meta("shop", "migrate"), Spec: batchv1.JobSpec{Template: tpl("job")}},
		&batchv1.CronJob{ObjectMeta: meta("shop", "nightly"), Spec: batchv1.CronJobSpec{JobTemplate: batchv1.JobTemplateSpec{Spec: batchv1.JobSpec{Template: tpl("cron")}}}},
		&appsv1.Deployment{ObjectMeta: meta("off", "ignored"), Spec: appsv1.DeploymentSpec{Template: tpl("off-ns")}},
	} {
		inf, err := infs.FakeInformerFor(ctx, obj)
		if err != nil {
			t.Fatal(err)
		}
		inf.Add(obj)
	}
	for _, image := range []string{"deploy", "deploy-init", "sts", "ds", "job", "cron"} {
		waitFor(image)
	}
	got := rec.images()["deploy"]
	if got.Namespace != "shop" || got.ServiceAccount != "builder" || len(got.PullSecrets) != 1 || got.PullSecrets[0] != "regcred" ||
		got.Container != "app" || len(got.Command) != 1 {
		t.Errorf("target %+v does not carry the template's credentials and command", got)
	}

	// A template change warms the new image; a status-only update does nothing.
	inf, err := infs.FakeInformerFor(ctx, dep)
	if err != nil {
		t.Fatal(err)
	}
	status := dep.DeepCopy()
	status.Status.Replicas = 3
	inf.Update(dep, status)
	changed := dep.DeepCopy()
	changed.Spec.Template = tpl("deploy-v2")
	inf.Update(status, changed)
	waitFor("deploy-v2")

	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if _, ok := rec.images()["off-ns"]; ok {
		t.Error("warmed a namespace that is not wanted")
	}
	n := 0
	for _, t := range rec.snapshot() {
		if t.Image == "deploy" {
			n++
		}
	}
	if n != 1 {
		t.Errorf("deploy warmed %d times, want 1 (status updates do not re-warm)", n)
	}
}

// signalling tells the test when the warmer has registered its handler on an informer.
type signalling struct {
	*informertest.FakeInformers
	wg *sync.WaitGroup
}

func (s signalling) GetInformer(ctx context.Context, obj client.Object, opts ...cache.InformerGetOption) (cache.Informer, error) {
	inf, err := s.FakeInformers.GetInformer(ctx, obj, opts...)
	return signallingInformer{inf, s.wg}, err
}

type signallingInformer struct {
	cache.Informer
	wg *sync.WaitGroup
}

func (s signallingInformer) AddEventHandler(h toolscache.ResourceEventHandler) (toolscache.ResourceEventHandlerRegistration, error) {
	defer s.wg.Done()
	return s.Informer.AddEventHandler(h)
}
