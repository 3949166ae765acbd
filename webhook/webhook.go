// Package webhook is the admission adapter: it decodes a Pod, gathers what the pure decision
// package needs (policy, namespace labels, libc verdicts), and answers with an add-only JSON
// patch and warnings. It never blocks a pod because of its own trouble: it fails open and
// says why in an annotation, a log line and a metric.
package webhook

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"time"

	"github.com/go-logr/logr"
	admissionv1 "k8s.io/api/admission/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/webhook/admission"

	"github.com/dns-tuner/dns-tuner/internal/cluster"
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
	// Facts says whether the nodes a pod can land on are exposed to the A/AAAA conntrack
	// race (clusterwatch.Source). Nil: nothing known, every node counts as exposed.
	Facts cluster.Facts
	Log   logr.Logger
}

var _ admission.Handler = &PodMutator{}

// Handle implements admission.Handler. Every trouble of dns-tuner's own ends in failOpen:
// the pod is allowed with its spec unchanged.
func (m *PodMutator) Handle(ctx context.Context, req admission.Request) admission.Response {
	return m.handle(ctx, req, nil)
}

// handle decides req; pod is its object when the caller decoded it already (ServeHTTP reads
// it in the same pass as the review), nil to decode req.Object.Raw here.
func (m *PodMutator) handle(ctx context.Context, req admission.Request, pod *mutate.Pod) (resp admission.Response) {
	if req.Operation != admissionv1.Create || req.Kind.Kind != "Pod" || req.SubResource != "" {
		return admission.Allowed("dns-tuner only acts on pod creation")
	}
	defer func() {
		if r := recover(); r != nil {
			resp = m.failOpen(req, pod, "panic", fmt.Errorf("panic: %v", r))
		}
	}()

	p := m.Policy.Current()
	if p.Excluded(req.Namespace) {
		metrics.Admissions.WithLabelValues(string(policy.Off), "off", "none").Inc()
		return admission.Allowed("namespace excluded by dns-tuner policy")
	}
	var err error
	if pod == nil {
		if pod, err = mutate.DecodePod(req.Object.Raw); err != nil {
			return m.failOpen(req, nil, "decode", err)
		}
	}
	namespace := req.Namespace
	if namespace == "" {
		namespace = pod.Metadata.Namespace
	}
	if p.Excluded(namespace) {
		metrics.Admissions.WithLabelValues(string(policy.Off), "off", "none").Inc()
		return admission.Allowed("namespace excluded by dns-tuner policy")
	}
	nsLabels, err := m.namespaceLabels(ctx, namespace)
	if err != nil {
		return m.failOpen(req, pod, "namespace_lookup", fmt.Errorf("could not read namespace %s: %w", namespace, err))
	}
	md := mutate.ResolveMode(p, namespace, nsLabels, pod)
	if md.Mode == policy.Off {
		metrics.Admissions.WithLabelValues(string(policy.Off), "off", "none").Inc()
		return admission.Allowed(md.Reason).WithWarnings(md.Warnings...)
	}

	lim := verdicts.Limits{Budget: p.Inspection.Budget.Duration, MaxImages: p.Inspection.MaxImagesPerPod}
	if lim.Budget <= 0 {
		lim.Budget = DefaultBudget
	}
	containers, warnings := verdicts.DetectContainers(ctx, m.Detector, lim, namespace, pod)
	plan := mutate.DecideFor(p, pod, md, containers, mutate.ExposureOf(p, pod, m.Facts))
	warnings = append(warnings, plan.Warnings...)
	var patch []byte
	if ops := mutate.Patch(pod, plan); len(ops) > 0 {
		// Encoded here rather than by controller-runtime, which answers an encoding error
		// with Errored: a denial.
		if patch, err = json.Marshal(ops); err != nil {
			return m.failOpen(req, pod, "patch", fmt.Errorf("encoding the patch: %w", err))
		}
	}

	for _, l := range distinctLibcs(containers) {
		metrics.Admissions.WithLabelValues(string(plan.Mode), plan.Status, string(l)).Inc()
	}
	if plan.Risk != "" {
		metrics.RaceRisk.WithLabelValues(plan.Risk).Inc()
	}
	if l := m.Log.V(1); l.Enabled() {
		l.Info("decided", "namespace", namespace, "pod", mutate.PodName(pod), "uid", string(req.UID),
			"mode", plan.Mode, "status", plan.Status, "reason", plan.Reason,
			"inject", len(plan.Inject), "ignored", len(plan.Ignored), "notes", plan.Notes, "raceFix", plan.RaceFix.Why, "risk", plan.Risk)
	}
	resp = admission.Allowed(plan.Reason).WithWarnings(warnings...)
	if patch != nil {
		pt := admissionv1.PatchTypeJSONPatch
		resp.Patch, resp.PatchType = patch, &pt
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

// failOpen lets the pod through with its spec unchanged after trouble of dns-tuner's own:
// one log line, the fail-open metric by reason, a short warning, and annotations saying why
// when the pod's metadata could be read (pod is nil when the object did not decode).
func (m *PodMutator) failOpen(req admission.Request, pod *mutate.Pod, reason string, err error) admission.Response {
	metrics.FailOpen.WithLabelValues(reason).Inc()
	metrics.Admissions.WithLabelValues("unknown", mutate.StatusError, "none").Inc()
	var meta mutate.PodMeta
	readable := pod != nil
	if readable {
		meta = pod.Metadata
	} else {
		meta, readable = mutate.DecodeMeta(req.Object.Raw)
	}
	m.Log.Error(err, "dns-tuner trouble; pod admitted unchanged", "reason", reason,
		"namespace", req.Namespace, "pod", mutate.PodName(&mutate.Pod{Metadata: meta}), "uid", string(req.UID))

	message := "dns-tuner internal error (" + reason + "): " + err.Error()
	resp := admission.Allowed(mutate.ClipWarning(message)).WithWarnings(mutate.ClipWarning("dns-tuner admitted the pod unchanged: " + err.Error()))
	if !readable {
		return resp
	}
	own := map[string]string{mutate.AnnotationStatus: mutate.StatusError, mutate.AnnotationReason: message}
	own, _ = mutate.FitAnnotations(meta.Annotations, own)
	ops := mutate.Patch(&mutate.Pod{Metadata: meta}, mutate.Plan{Annotations: own})
	if len(ops) == 0 {
		return resp
	}
	patch, perr := json.Marshal(ops)
	if perr != nil {
		return resp
	}
	pt := admissionv1.PatchTypeJSONPatch
	resp.Patch, resp.PatchType = patch, &pt
	return resp
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
