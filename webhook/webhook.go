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

	"github.com/dns-tuner/dns-tuner/internal/libc"
	"github.com/dns-tuner/dns-tuner/internal/metrics"
	"github.com/dns-tuner/dns-tuner/internal/mutate"
	"github.com/dns-tuner/dns-tuner/internal/policy"
	"github.com/dns-tuner/dns-tuner/internal/verdicts"
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
		return m.Log.WithValues("namespace", namespace, "pod", mutate.PodName(pod), "uid", string(req.UID))
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
	containers, warnings := verdicts.DetectContainers(ctx, m.Detector, budget, namespace, pod)
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
