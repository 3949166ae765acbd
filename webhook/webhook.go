// Package webhook is the admission adapter: it decodes a Pod, gathers what the pure decision
// package needs (policy, namespace labels, libc verdicts), and answers with an add-only JSON
// patch and warnings. It never blocks a pod because of its own trouble: it fails open and
// says why in an annotation, a log line and a metric.
package webhook

import (
	"context"
	"fmt"
	"net/http"
	"slices"
	"sync"
	"time"

	"github.com/go-logr/logr"
	admissionv1 "k8s.io/api/admission/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/webhook/admission"

	"github.com/dns-tuner/dns-tuner/webhook/libc"
	"github.com/dns-tuner/dns-tuner/webhook/metrics"
	"github.com/dns-tuner/dns-tuner/webhook/mutate"
	"github.com/dns-tuner/dns-tuner/webhook/policy"
)

// Path is where the API server sends Pod admission reviews.
const Path = "/mutate-v1-pod"

// DefaultBudget bounds the wait for libc verdicts when the policy sets none; it is well
// inside the webhook's timeoutSeconds.
const DefaultBudget = 2 * time.Second

// PodMutator is the admission.Handler for Pod CREATE.
type PodMutator struct {
	Policy policy.Source
	// Namespaces reads Namespace metadata, normally through the manager's cache.
	Namespaces client.Reader
	// APIReader reads a namespace the cache has not seen yet (created moments before the pod).
	APIReader client.Reader
	Detector  libc.Detector
	Log       logr.Logger

	decisionsOnce sync.Once
	decisions     *decisionCache
}

// decisionCacheSize bounds memoised decisions: one per distinct pod shape, so a few
// thousand cover a large cluster's ReplicaSets.
const decisionCacheSize = 4096

var _ admission.Handler = &PodMutator{}

// Handle implements admission.Handler.
func (m *PodMutator) Handle(ctx context.Context, req admission.Request) (resp admission.Response) {
	if req.Operation != admissionv1.Create || req.Kind.Kind != "Pod" || req.SubResource != "" {
		return admission.Allowed("dns-tuner only acts on pod creation")
	}
	pod, err := decodePod(req.Object.Raw)
	if err != nil {
		return admission.Errored(http.StatusBadRequest, err)
	}
	namespace := req.Namespace
	if namespace == "" {
		namespace = pod.Namespace
	}
	// Built only when something is logged: zap encodes With fields eagerly.
	log := func() logr.Logger {
		return m.Log.WithValues("namespace", namespace, "pod", podName(pod), "uid", string(req.UID))
	}
	defer func() {
		if r := recover(); r != nil {
			log().Error(fmt.Errorf("%v", r), "panic while deciding; allowing the pod unchanged")
			resp = failOpen(pod, "internal", fmt.Sprintf("dns-tuner internal error: %v", r))
		}
	}()

	p := m.Policy.Current()
	if p.Excluded(namespace) {
		metrics.Admissions.WithLabelValues(string(policy.Off), "off", "none").Inc()
		return admission.Allowed("namespace excluded by dns-tuner policy")
	}
	nsLabels, err := m.namespaceLabels(ctx, namespace)
	if err != nil {
		log().Error(err, "reading namespace labels failed; allowing the pod unchanged")
		return failOpen(pod, "namespace_lookup", fmt.Sprintf("could not read namespace %s: %v", namespace, err))
	}
	md := mutate.ResolveMode(p, namespace, nsLabels, pod.Annotations)
	if md.Mode == policy.Off {
		metrics.Admissions.WithLabelValues(string(policy.Off), "off", "none").Inc()
		return admission.Allowed(md.Reason).WithWarnings(md.Warnings...)
	}

	budget := p.Inspection.Budget.Duration
	if budget <= 0 {
		budget = DefaultBudget
	}
	containers, warnings := DetectContainers(ctx, m.Detector, budget, namespace, pod)
	m.decisionsOnce.Do(func() { m.decisions = newDecisionCache(decisionCacheSize) })
	d, err := m.decisions.decide(p, pod, md, containers)
	if err != nil {
		log().Error(err, "encoding the patch failed; allowing the pod unchanged")
		return failOpen(pod, "internal", fmt.Sprintf("dns-tuner internal error: %v", err))
	}
	plan := d.plan
	warnings = append(warnings, plan.Warnings...)

	for _, l := range distinctLibcs(containers) {
		metrics.Admissions.WithLabelValues(string(plan.Mode), plan.Status, string(l)).Inc()
	}
	if l := m.Log.V(1); l.Enabled() {
		log().V(1).Info("decided", "mode", plan.Mode, "status", plan.Status, "reason", plan.Reason,
			"inject", len(plan.Inject), "ignored", len(plan.Ignored), "notes", plan.Notes)
	}
	resp = admission.Allowed(plan.Reason).WithWarnings(warnings...)
	if d.patch != nil {
		pt := admissionv1.PatchTypeJSONPatch
		resp.Patch, resp.PatchType = d.patch, &pt
	}
	return resp
}

func (m *PodMutator) namespaceLabels(ctx context.Context, name string) (map[string]string, error) {
	ns := &metav1.PartialObjectMetadata{}
	ns.SetGroupVersionKind(corev1.SchemeGroupVersion.WithKind("Namespace"))
	err := m.Namespaces.Get(ctx, client.ObjectKey{Name: name}, ns)
	if apierrors.IsNotFound(err) && m.APIReader != nil {
		err = m.APIReader.Get(ctx, client.ObjectKey{Name: name}, ns)
	}
	if apierrors.IsNotFound(err) {
		return nil, nil // the API server will reject the pod itself
	}
	if err != nil {
		return nil, err
	}
	return ns.Labels, nil
}

// DetectContainers asks det about every container (init containers first) concurrently and
// waits at most budget; a container without a verdict by then is unknown with the reason.
// The pod's dns-tuner.io/libc annotation wins over detection. Warnings are for the client.
func DetectContainers(ctx context.Context, det libc.Detector, budget time.Duration, namespace string, pod *corev1.Pod) ([]mutate.Container, []string) {
	var warnings []string
	all := make([]mutate.Container, 0, len(pod.Spec.InitContainers)+len(pod.Spec.Containers))
	specs := make([]*corev1.Container, 0, cap(all))
	for i := range pod.Spec.InitContainers {
		all = append(all, mutate.Container{Name: pod.Spec.InitContainers[i].Name, Init: true})
		specs = append(specs, &pod.Spec.InitContainers[i])
	}
	for i := range pod.Spec.Containers {
		all = append(all, mutate.Container{Name: pod.Spec.Containers[i].Name})
		specs = append(specs, &pod.Spec.Containers[i])
	}
	names := make([]string, len(all))
	for i := range all {
		names[i] = all[i].Name
	}
	overrides, err := mutate.ParseLibcOverride(pod.Annotations[mutate.AnnotationLibc], names)
	if err != nil {
		warnings = append(warnings, fmt.Sprintf("dns-tuner: pod annotation %s ignored: %v", mutate.AnnotationLibc, err))
		overrides = nil
	}

	pullSecrets := make([]string, 0, len(pod.Spec.ImagePullSecrets))
	for _, s := range pod.Spec.ImagePullSecrets {
		pullSecrets = append(pullSecrets, s.Name)
	}
	normalize := func(v libc.Verdict, err error) libc.Verdict {
		if err == nil && v.Libc != "" {
			return v
		}
		reason := v.Reason
		if reason == "" && err != nil {
			reason = err.Error()
		}
		return libc.Verdict{Libc: libc.Unknown, Source: libc.SourceNone, Reason: reason, Digest: v.Digest}
	}
	mem, _ := det.(libc.MemoryDetector)
	var waitFor []int
	targets := make([]libc.Target, len(all))
	for i := range all {
		if l, ok := overrides[all[i].Name]; ok {
			all[i].Verdict = libc.Verdict{Libc: l, Source: libc.SourceAnnotation, Evidence: "pod annotation " + mutate.AnnotationLibc}
			continue
		}
		targets[i] = libc.Target{
			Namespace: namespace, PodName: podName(pod), Container: specs[i].Name, Image: specs[i].Image,
			Command: specs[i].Command, Args: specs[i].Args, PullSecrets: pullSecrets, ServiceAccount: pod.Spec.ServiceAccountName,
		}
		if mem != nil { // cached verdicts need no goroutine, channel or timer
			if v, err, ok := mem.DetectCached(targets[i]); ok {
				all[i].Verdict = normalize(v, err)
				continue
			}
		}
		waitFor = append(waitFor, i)
	}
	if len(waitFor) == 0 {
		return all, warnings
	}

	ctx, cancel := context.WithTimeout(ctx, budget)
	defer cancel()
	// Results arrive on a buffered channel so a detector that ignores its deadline can finish
	// late without blocking anyone; admission stops waiting at the budget either way.
	type result struct {
		i int
		v libc.Verdict
	}
	results := make(chan result, len(waitFor))
	pending := len(waitFor)
	for _, i := range waitFor {
		go func(i int) {
			defer func() {
				if r := recover(); r != nil {
					results <- result{i, libc.Verdict{Libc: libc.Unknown, Source: libc.SourceNone, Reason: fmt.Sprintf("detector panic: %v", r)}}
				}
			}()
			results <- result{i, normalize(det.Detect(ctx, targets[i]))}
		}(i)
	}
	got := make([]bool, len(all))
wait:
	for ; pending > 0; pending-- {
		select {
		case r := <-results:
			all[r.i].Verdict, got[r.i] = r.v, true
		case <-ctx.Done():
			break wait
		}
	}
	for drained := false; !drained; { // verdicts that raced the deadline still count
		select {
		case r := <-results:
			all[r.i].Verdict, got[r.i] = r.v, true
		default:
			drained = true
		}
	}
	for i := range all {
		if all[i].Verdict.Libc == "" && !got[i] {
			metrics.BudgetExceeded.Inc()
			all[i].Verdict = libc.Verdict{Libc: libc.Unknown, Source: libc.SourceNone, Reason: fmt.Sprintf("inspection exceeded the %s admission budget; later pods use its result once it finishes", budget)}
		}
	}
	return all, warnings
}

// failOpen lets the pod through unchanged except for annotations that say why.
func failOpen(pod *corev1.Pod, reason, message string) admission.Response {
	metrics.FailOpen.WithLabelValues(reason).Inc()
	metrics.Admissions.WithLabelValues("unknown", mutate.StatusError, "none").Inc()
	plan := mutate.Plan{Annotations: map[string]string{mutate.AnnotationStatus: mutate.StatusError, mutate.AnnotationReason: message}}
	ops := mutate.Patch(pod, plan)
	return admission.Patched(message, ops...).WithWarnings("dns-tuner: " + message + "; pod admitted unchanged")
}

func distinctLibcs(cs []mutate.Container) []libc.Libc {
	out := make([]libc.Libc, 0, len(libc.All))
	for _, l := range libc.All { // a fixed order, no map: this runs on every admission
		if slices.ContainsFunc(cs, func(c mutate.Container) bool { return c.Verdict.Libc == l }) {
			out = append(out, l)
		}
	}
	if len(out) == 0 {
		out = append(out, "none")
	}
	return out
}

func podName(p *corev1.Pod) string {
	if p.Name != "" {
		return p.Name
	}
	return p.GenerateName
}
