package verdicts

import (
	"context"
	"reflect"
	"sync"
	"time"

	"github.com/go-logr/logr"
	appsv1 "k8s.io/api/apps/v1"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	toolscache "k8s.io/client-go/tools/cache"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/dns-tuner/dns-tuner/internal/libc"
)

// Warmer inspects the images of workload pod templates (Deployments, StatefulSets,
// DaemonSets, Jobs, CronJobs) when they appear or their template changes, so the first pod of
// a rollout finds its verdicts cached. It is a controller-runtime Runnable. Its informers hold
// every such workload of the cluster in memory: enable it where that is acceptable (RBAC:
// list/watch on those kinds).
type Warmer struct {
	Informers cache.Informers // normally mgr.GetCache()
	Detector  libc.Detector
	// Wanted reports whether pods of namespace would be inspected at admission (not excluded,
	// mode not off), so warming touches no other namespace's images or secrets. nil: all.
	Wanted  func(ctx context.Context, namespace string) bool
	Workers int           // concurrent warm-ups [2]; the detector bounds registry work anyway
	Queue   int           // pending targets; more are dropped, it is only a warm-up [1024]
	Timeout time.Duration // one target [30s]
	Log     logr.Logger
}

// WarmedKinds are the workload kinds whose pod templates are warmed.
var WarmedKinds = []client.Object{&appsv1.Deployment{}, &appsv1.StatefulSet{}, &appsv1.DaemonSet{}, &batchv1.Job{}, &batchv1.CronJob{}}

// NeedLeaderElection is false: every replica answers admissions from its own cache.
func (w *Warmer) NeedLeaderElection() bool { return false }

// Start watches the workloads and warms until ctx ends.
func (w *Warmer) Start(ctx context.Context) error {
	workers, size, timeout := w.Workers, w.Queue, w.Timeout
	if workers <= 0 {
		workers = 2
	}
	if size <= 0 {
		size = 1024
	}
	if timeout <= 0 {
		timeout = 30 * time.Second
	}
	queue := make(chan libc.Target, size)
	enqueue := func(obj any) {
		o, ok := obj.(client.Object)
		if !ok {
			return
		}
		tpl := podTemplate(o)
		if tpl == nil || (w.Wanted != nil && !w.Wanted(ctx, o.GetNamespace())) {
			return
		}
		for _, t := range targets(o.GetNamespace(), o.GetName(), tpl) {
			select {
			case queue <- t:
			default:
				w.Log.V(1).Info("warm-up queue full; skipping", "namespace", t.Namespace, "workload", t.PodName, "image", t.Image)
			}
		}
	}
	handler := toolscache.ResourceEventHandlerFuncs{
		AddFunc: enqueue,
		UpdateFunc: func(old, obj any) {
			o, _ := old.(client.Object)
			n, _ := obj.(client.Object)
			if o == nil || n == nil || !reflect.DeepEqual(podTemplate(o), podTemplate(n)) {
				enqueue(obj)
			}
		},
	}
	for _, kind := range WarmedKinds {
		inf, err := w.Informers.GetInformer(ctx, kind)
		if err != nil {
			return err
		}
		if _, err := inf.AddEventHandler(handler); err != nil {
			return err
		}
	}
	var wg sync.WaitGroup
	for range workers {
		wg.Go(func() {
			for {
				select {
				case <-ctx.Done():
					return
				case t := <-queue:
					tctx, cancel := context.WithTimeout(ctx, timeout)
					v, err := w.Detector.Detect(tctx, t)
					cancel()
					w.Log.V(1).Info("warmed", "namespace", t.Namespace, "workload", t.PodName, "image", t.Image, "libc", v.Libc, "error", errString(err))
				}
			}
		})
	}
	<-ctx.Done()
	wg.Wait()
	return nil
}

func errString(err error) string {
	if err == nil {
		return ""
	}
	return err.Error()
}

func podTemplate(o client.Object) *corev1.PodTemplateSpec {
	switch w := o.(type) {
	case *appsv1.Deployment:
		return &w.Spec.Template
	case *appsv1.StatefulSet:
		return &w.Spec.Template
	case *appsv1.DaemonSet:
		return &w.Spec.Template
	case *batchv1.Job:
		return &w.Spec.Template
	case *batchv1.CronJob:
		return &w.Spec.JobTemplate.Spec.Template
	}
	return nil
}

// targets are what admission will ask the detector for the template's pods.
func targets(namespace, workload string, tpl *corev1.PodTemplateSpec) []libc.Target {
	secrets := make([]string, 0, len(tpl.Spec.ImagePullSecrets))
	for _, s := range tpl.Spec.ImagePullSecrets {
		secrets = append(secrets, s.Name)
	}
	var out []libc.Target
	for _, cs := range [][]corev1.Container{tpl.Spec.InitContainers, tpl.Spec.Containers} {
		for _, c := range cs {
			out = append(out, libc.Target{
				Namespace: namespace, PodName: workload, Container: c.Name, Image: c.Image,
				Command: c.Command, Args: c.Args, PathEnv: pathEnv(c.Env), WorkingDir: c.WorkingDir, PullSecrets: secrets, ServiceAccount: tpl.Spec.ServiceAccountName,
			})
		}
	}
	return out
}

// pathEnv is the container's own PATH, as admission reads it (mutate.PodContainer.PathEnv).
func pathEnv(env []corev1.EnvVar) string {
	path := ""
	for _, e := range env {
		if e.Name == "PATH" {
			path = e.Value
		}
	}
	return path
}
