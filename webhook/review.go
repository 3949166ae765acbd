package webhook

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"

	"github.com/go-logr/logr"
	admissionv1 "k8s.io/api/admission/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/webhook/admission"
	sigsjson "sigs.k8s.io/json"

	"github.com/dns-tuner/dns-tuner/internal/mutate"
)

// reviewV1 is an admission.k8s.io/v1 AdmissionReview holding a pod, decoded in one pass with
// the pod read straight into its view. Every other field has admissionv1's type, so a review
// that admission.Webhook cannot decode does not decode here either.
//
// Why not only controller-runtime's admission.Webhook: it scans each review four times (its
// universal deserializer validates and reads apiVersion and kind, then validates and decodes
// the review) and the pod's raw bytes are then validated and decoded twice more; plus two
// per-request loggers. Under load through a real API server that was a third of dns-tuner's
// CPU per review, CPU the API server shares (hack/loadtest measures it). Reviews that do not
// decode here still go to admission.Webhook, so every trouble keeps its usual answer.
type reviewV1 struct {
	metav1.TypeMeta `json:",inline"`
	Request         *reviewRequest                 `json:"request,omitempty"`
	Response        *admissionv1.AdmissionResponse `json:"response,omitempty"`
}

// reviewRequest is an AdmissionRequest whose object is decoded as a pod: the shallower
// Object field takes "object" from the embedded request's.
type reviewRequest struct {
	admissionv1.AdmissionRequest
	Object *mutate.PodObject `json:"object"`
}

// Reviews serves admission reviews for m over HTTP. internal/server has read and bounded
// the body already and offers it whole through a Bytes method; any other body is read here.
func Reviews(m *PodMutator, log logr.Logger) http.Handler {
	return &reviews{m: m, general: &admission.Webhook{
		Handler: m,
		LogConstructor: func(_ logr.Logger, req *admission.Request) logr.Logger {
			return admission.DefaultLogConstructor(log, req)
		},
	}}
}

type reviews struct {
	m       *PodMutator
	general *admission.Webhook // every review the one-pass decode does not take
}

func (h *reviews) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	var body []byte
	var err error
	if m, ok := r.Body.(interface{ Bytes() []byte }); ok {
		body = m.Bytes() // read by the server already, no copy
	} else {
		body, err = io.ReadAll(r.Body)
	}
	if err == nil && r.Header.Get("Content-Type") == "application/json" {
		if req, pod, ok := decodeReview(body); ok {
			h.answer(w, r, req, pod)
			return
		}
	}
	r.Body = io.NopCloser(bytes.NewReader(body))
	h.general.ServeHTTP(w, r)
}

// answer decides a decoded review and writes the AdmissionReview response, as
// admission.Webhook writes it.
func (h *reviews) answer(w http.ResponseWriter, r *http.Request, req admission.Request, pod *mutate.Pod) {
	resp := h.m.handle(r.Context(), req, pod)
	_ = resp.Complete(req) // sets the UID and status code; it fails only on resp.Patches, which dns-tuner never sets
	out := admissionv1.AdmissionReview{
		TypeMeta: metav1.TypeMeta{APIVersion: admissionv1.SchemeGroupVersion.String(), Kind: "AdmissionReview"},
		Response: &resp.AdmissionResponse,
	}
	w.Header().Set("Content-Type", "application/json")
	if err := json.NewEncoder(w).Encode(out); err != nil {
		h.m.Log.Info("could not write the admission response", "uid", string(req.UID), "reason", err.Error())
	}
}

// decodeReview reads a v1 review of a pod in one pass; ok is false for anything else (another
// version, a request without an object, a pod that does not decode), which admission.Webhook
// and Handle then answer as they always do.
func decodeReview(body []byte) (admission.Request, *mutate.Pod, bool) {
	var rv reviewV1
	if err := sigsjson.UnmarshalCaseSensitivePreserveInts(body, &rv); err != nil || rv.Request == nil ||
		rv.APIVersion != admissionv1.SchemeGroupVersion.String() || rv.Kind != "AdmissionReview" {
		return admission.Request{}, nil, false
	}
	pod, err := rv.Request.Object.Pod()
	if err != nil {
		return admission.Request{}, nil, false
	}
	return admission.Request{AdmissionRequest: rv.Request.AdmissionRequest}, pod, true
}
