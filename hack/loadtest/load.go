package main

import (
	"context"
	"fmt"
	"math"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/client-go/kubernetes"
	"k8s.io/utils/ptr"

	"github.com/dns-tuner/dns-tuner/internal/mutate"
)

// result is one batch of pod creations.
type result struct {
	lat      []time.Duration // per creation, sorted
	wall     time.Duration
	errs     int
	firstErr error
}

func (r result) podsPerSec() float64 { return float64(len(r.lat)) / r.wall.Seconds() }
func (r result) p(q float64) time.Duration {
	if len(r.lat) == 0 {
		return 0
	}
	return r.lat[max(int(math.Ceil(q*float64(len(r.lat))))-1, 0)]
}

// createPods dry-run creates n pods from conc clients that start together, and measures each
// creation as the client sees it. check judges each created pod (nil: any is fine).
func createPods(ctx context.Context, cs kubernetes.Interface, ns string, n, conc int, pod func(i int) *corev1.Pod, check func(*corev1.Pod) error) result {
	lat := make([]time.Duration, n)
	errs := make([]error, n)
	var next atomic.Int64
	var wg sync.WaitGroup
	start := make(chan struct{})
	for range conc {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			for i := int(next.Add(1) - 1); i < n; i = int(next.Add(1) - 1) {
				p := pod(i)
				t0 := time.Now()
				got, err := cs.CoreV1().Pods(ns).Create(ctx, p, metav1.CreateOptions{DryRun: []string{metav1.DryRunAll}})
				lat[i] = time.Since(t0)
				if err == nil && check != nil {
					err = check(got)
				}
				errs[i] = err
			}
		}()
	}
	t0 := time.Now()
	close(start)
	wg.Wait()
	r := result{lat: lat, wall: time.Since(t0)}
	slices.Sort(r.lat)
	for _, err := range errs {
		if err != nil {
			if r.errs++; r.firstErr == nil {
				r.firstErr = err
			}
		}
	}
	return r
}

func (r result) err(what string) error {
	if r.errs == 0 {
		return nil
	}
	return fmt.Errorf("%s: %d of %d creations failed; first: %v", what, r.errs, len(r.lat), r.firstErr)
}

// loadPod is a pod of a typical Deployment (the same shape as webhook's BenchmarkAdmission
// pod): an app container on glibc and a log-shipping sidecar on musl, with env, mounts,
// probes and resources. The API server adds its defaults before admission.
func loadPod(ns, app, sidecar string, libcAnnotation bool) func(int) *corev1.Pod {
	return func(int) *corev1.Pod {
		mounts := []corev1.VolumeMount{{Name: "config", MountPath: "/etc/checkout", ReadOnly: true}}
		p := &corev1.Pod{
			ObjectMeta: metav1.ObjectMeta{
				GenerateName: "checkout-7d9f8c6b5d-", Namespace: ns,
				Labels: map[string]string{"app.kubernetes.io/name": "checkout", "app.kubernetes.io/part-of": "shop", "pod-template-hash": "7d9f8c6b5d"},
				Annotations: map[string]string{
					"kubectl.kubernetes.io/restartedAt": "2026-07-01T09:12:44Z",
					"prometheus.io/scrape":              "true", "prometheus.io/port": "9090",
				},
			},
			Spec: corev1.PodSpec{
				Volumes: []corev1.Volume{
					{Name: "config", VolumeSource: corev1.VolumeSource{ConfigMap: &corev1.ConfigMapVolumeSource{
						LocalObjectReference: corev1.LocalObjectReference{Name: "checkout-config"}}}},
					{Name: "varlog", VolumeSource: corev1.VolumeSource{EmptyDir: &corev1.EmptyDirVolumeSource{}}},
				},
				Containers: []corev1.Container{
					{
						Name: "checkout", Image: app,
						Args:  []string{"--config=/etc/checkout/config.yaml", "--listen=:8080"},
						Ports: []corev1.ContainerPort{{Name: "http", ContainerPort: 8080}, {Name: "metrics", ContainerPort: 9090}},
						Env: []corev1.EnvVar{
							{Name: "PAYMENTS_URL", Value: "http://payments.shop.svc.cluster.local:8080"},
							{Name: "DATABASE_HOST", Value: "checkout-db.shop.svc.cluster.local"},
							{Name: "DATABASE_PASSWORD", ValueFrom: &corev1.EnvVarSource{SecretKeyRef: &corev1.SecretKeySelector{
								LocalObjectReference: corev1.LocalObjectReference{Name: "checkout-db"}, Key: "password"}}},
							{Name: "POD_NAME", ValueFrom: &corev1.EnvVarSource{FieldRef: &corev1.ObjectFieldSelector{FieldPath: "metadata.name"}}},
						},
						Resources: corev1.ResourceRequirements{
							Requests: corev1.ResourceList{corev1.ResourceCPU: resource.MustParse("250m"), corev1.ResourceMemory: resource.MustParse("256Mi")},
							Limits:   corev1.ResourceList{corev1.ResourceCPU: resource.MustParse("1"), corev1.ResourceMemory: resource.MustParse("512Mi")},
						},
						VolumeMounts:   mounts,
						LivenessProbe:  &corev1.Probe{ProbeHandler: corev1.ProbeHandler{HTTPGet: &corev1.HTTPGetAction{Path: "/healthz", Port: intstr.FromString("http")}}},
						ReadinessProbe: &corev1.Probe{ProbeHandler: corev1.ProbeHandler{HTTPGet: &corev1.HTTPGetAction{Path: "/readyz", Port: intstr.FromString("http")}}},
						SecurityContext: &corev1.SecurityContext{RunAsNonRoot: ptr.To(true), AllowPrivilegeEscalation: ptr.To(false),
							ReadOnlyRootFilesystem: ptr.To(true), Capabilities: &corev1.Capabilities{Drop: []corev1.Capability{"ALL"}}},
					},
					{
						Name: "log-shipper", Image: sidecar,
						Env: []corev1.EnvVar{
							{Name: "SHIPPER_OUTPUT", Value: "loki.logging.svc.cluster.local:3100"},
							{Name: "NODE_NAME", ValueFrom: &corev1.EnvVarSource{FieldRef: &corev1.ObjectFieldSelector{FieldPath: "spec.nodeName"}}},
						},
						Resources: corev1.ResourceRequirements{
							Requests: corev1.ResourceList{corev1.ResourceCPU: resource.MustParse("50m"), corev1.ResourceMemory: resource.MustParse("64Mi")},
							Limits:   corev1.ResourceList{corev1.ResourceMemory: resource.MustParse("128Mi")},
						},
						VolumeMounts:  []corev1.VolumeMount{{Name: "varlog", MountPath: "/var/log/app"}},
						LivenessProbe: &corev1.Probe{ProbeHandler: corev1.ProbeHandler{TCPSocket: &corev1.TCPSocketAction{Port: intstr.FromInt32(2020)}}},
					},
				},
				SecurityContext:    &corev1.PodSecurityContext{FSGroup: ptr.To[int64](2000)},
				EnableServiceLinks: ptr.To(false),
			},
		}
		if libcAnnotation {
			// Each container's libc from the annotation, as users of inspection: false write it.
			p.Annotations[mutate.AnnotationLibc] = "checkout=glibc,log-shipper=musl"
		}
		return p
	}
}

// widePod is a pod of n containers named prefix-c00000…, alternating between two
// images; distinct prefixes make distinct pods for every cache keyed on the pod's shape.
func widePod(ns, prefix string, n int, images ...string) *corev1.Pod {
	cs := make([]corev1.Container, n)
	for i := range cs {
		cs[i] = corev1.Container{Name: fmt.Sprintf("%s-c%05d", prefix, i), Image: images[i%len(images)]}
	}
	return &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{GenerateName: prefix + "-", Namespace: ns},
		Spec:       corev1.PodSpec{Containers: cs, EnableServiceLinks: ptr.To(false)},
	}
}
