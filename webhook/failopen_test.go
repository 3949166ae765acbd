package webhook

import (
	"context"
	"strings"
	"testing"

	jsonpatch "github.com/evanphx/json-patch/v5"
	dto "github.com/prometheus/client_model/go"
	admissionv1 "k8s.io/api/admission/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"sigs.k8s.io/controller-runtime/pkg/webhook/admission"

	"github.com/dns-tuner/dns-tuner/internal/libc"
	"github.com/dns-tuner/dns-tuner/internal/metrics"
	"github.com/dns-tuner/dns-tuner/internal/mutate"
	"github.com/dns-tuner/dns-tuner/internal/policy"
	"github.com/dns-tuner/dns-tuner/internal/policy/policytest"
)

func rawRequest(ns, kind string, raw string) admission.Request {
	return admission.Request{AdmissionRequest: admissionv1.AdmissionRequest{
		UID: "uid-raw", Operation: admissionv1.Create, Namespace: ns,
		Kind:   metav1.GroupVersionKind{Version: "v1", Kind: kind},
		Object: runtime.RawExtension{Raw: []byte(raw)},
	}}
}

// panicSource is a policy source that fails the way a bug would.
type panicSource struct{}

func (panicSource) Current() *policy.Policy { panic("policy source bug") }

// Finding 1: whatever dns-tuner's own trouble, the pod is allowed with its spec unchanged,
// and when the metadata reads the pod says why in its annotations. Before the fix, a decode
// error answered Errored(400), which the API server treats as a denial.
func TestHandleFailsOpen(t *testing.T) {
	const ok = `{"metadata":{"name":"web","annotations":{"team":"shop"}},"spec":{"containers":[{"name":"app","image":"glibc-app"}]}}`
	det := byImage(map[string]libc.Libc{"glibc-app": libc.GLibc})
	tests := []struct {
		name   string
		ns     string // namespace of the request; "shop" enforces, "plain" is off
		kind   string
		raw    string
		source policy.Source
		// wantReason is the fail-open reason; "" means no fail-open (plain allow or a normal decision).
		wantReason string
		wantAnnot  bool // dns-tuner's error annotations are in the patch
		decides    bool // a valid pod decided as usual: its spec may change
	}{
		{name: "truncated JSON", ns: "shop", raw: ok[:40], wantReason: "decode"},
		{name: "not JSON at all", ns: "shop", raw: `<pod/>`, wantReason: "decode"},
		{name: "empty object body", ns: "shop", raw: ``, wantReason: "decode"},
		{name: "containers is a string", ns: "shop", raw: `{"metadata":{"name":"web"},"spec":{"containers":"not a list"}}`, wantReason: "decode", wantAnnot: true},
		{name: "image is a number", ns: "shop", raw: `{"metadata":{"name":"web"},"spec":{"containers":[{"name":"app","image":3}]}}`, wantReason: "decode", wantAnnot: true},
		{name: "hostNetwork is a string", ns: "shop", raw: `{"metadata":{"name":"web"},"spec":{"hostNetwork":"yes","containers":[]}}`, wantReason: "decode", wantAnnot: true},
		{name: "dnsConfig options is an object", ns: "shop", raw: `{"metadata":{"name":"web"},"spec":{"dnsConfig":{"options":{"a":1}}}}`, wantReason: "decode", wantAnnot: true},
		{name: "annotations is a list", ns: "shop", raw: `{"metadata":{"name":"web","annotations":["a"]},"spec":{}}`, wantReason: "decode"},
		{name: "metadata is a string", ns: "shop", raw: `{"metadata":"web","spec":{}}`, wantReason: "decode"},
		{name: "annotation key ending in a backslash, enforce", ns: "shop", raw: `{"metadata":{"name":"web","annotations":{"a\\":"b"}},"spec":{"containers":[{"name":"app","image":"glibc-app"}]}}`, decides: true},
		{name: "annotation key ending in a backslash, mode off", ns: "plain", raw: `{"metadata":{"name":"web","annotations":{"a\\":"b"}},"spec":{"containers":[{"name":"app","image":"glibc-app"}]}}`},
		{name: "null fields, mode off", ns: "plain", raw: `{"metadata":{"name":"web","annotations":null},"spec":{"dnsConfig":null,"containers":[{"name":"app","image":"glibc-app","command":null}],"initContainers":null,"hostNetwork":null}}`},
		{name: "null fields", ns: "shop", decides: true, raw: `{"metadata":{"name":"web","annotations":null},"spec":{"dnsConfig":null,"containers":[{"name":"app","image":"glibc-app","command":null}],"initContainers":null,"hostNetwork":null}}`},
		{name: "null metadata and spec", ns: "shop", raw: `{"metadata":null,"spec":null}`, wantReason: "decode"},
		{name: "null spec", ns: "shop", raw: `{"metadata":{"name":"web"},"spec":null}`, wantReason: "decode", wantAnnot: true},
		{name: "no spec", ns: "shop", raw: `{"metadata":{"name":"web","annotations":{}}}`, wantReason: "decode", wantAnnot: true},
		{name: "JSON null", ns: "shop", raw: `null`, wantReason: "decode"},
		{name: "a list", ns: "shop", raw: `[]`, wantReason: "decode"},
		{name: "a Service sent as a Pod", ns: "shop", raw: `{"kind":"Service","metadata":{"name":"web"},"spec":{"ports":[{"port":80}],"type":"ClusterIP"}}`, decides: true},
		{name: "kind is not Pod", ns: "shop", kind: "Deployment", raw: `{"metadata":{"name":"web"},"spec":{"template":{}}}`},
		{name: "policy source panics", ns: "shop", raw: ok, source: panicSource{}, wantReason: "panic", wantAnnot: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m := newMutator(t, det, policytest.Policy(), nil)
			if tt.source != nil {
				m.Policy = tt.source
			}
			kind := tt.kind
			if kind == "" {
				kind = "Pod"
			}
			before := failOpenCount(t, tt.wantReason)
			var resp admission.Response
			func() {
				defer func() {
					if r := recover(); r != nil {
						t.Fatalf("Handle panicked: %v", r)
					}
				}()
				resp = m.Handle(context.Background(), rawRequest(tt.ns, kind, tt.raw))
			}()
			if !resp.Allowed || (resp.Result != nil && resp.Result.Code >= 400) {
				t.Fatalf("not allowed: %+v", resp.Result)
			}
			checkWarnings(t, resp.Warnings)
			if !tt.decides && hasSpecPatch(resp) {
				t.Errorf("spec changed: %v", patchOps(resp))
			}
			ann := annotationOps(resp)
			if tt.wantReason != "" {
				if got := failOpenCount(t, tt.wantReason) - before; got != 1 {
					t.Errorf("fail-open metric{reason=%s} rose by %v, want 1", tt.wantReason, got)
				}
				if !strings.Contains(strings.Join(resp.Warnings, "|"), "admitted the pod unchanged") {
					t.Errorf("warnings %q, want one saying the pod was admitted unchanged", resp.Warnings)
				}
				if got := ann[mutate.AnnotationStatus] == mutate.StatusError; got != tt.wantAnnot {
					t.Errorf("error annotation = %v, want %v (patch %v)", got, tt.wantAnnot, patchOps(resp))
				}
			}
			// Whatever the patch, it must apply to the object as sent.
			if len(resp.Patch) > 0 {
				patch, err := jsonpatch.DecodePatch(resp.Patch)
				if err != nil {
					t.Fatal(err)
				}
				if _, err := patch.Apply([]byte(tt.raw)); err != nil {
					t.Errorf("patch does not apply to the object: %v", err)
				}
			}
		})
	}
}

// An annotation key ending in a backslash decodes (it is valid JSON), so the pod is decided
// as any other: injected in an enforcing namespace, untouched in one that is off.
func TestHandleBackslashAnnotationKey(t *testing.T) {
	raw := `{"metadata":{"name":"web","annotations":{"a\\":"b"}},"spec":{"containers":[{"name":"app","image":"glibc-app"}]}}`
	m := newMutator(t, byImage(map[string]libc.Libc{"glibc-app": libc.GLibc}), nil, nil)
	if resp := m.Handle(context.Background(), rawRequest("shop", "Pod", raw)); !hasSpecPatch(resp) {
		t.Errorf("enforcing namespace: no options injected: %+v", resp.Result)
	}
	if resp := m.Handle(context.Background(), rawRequest("plain", "Pod", raw)); len(patchOps(resp)) != 0 {
		t.Errorf("namespace off: patched %v", patchOps(resp))
	}
}

func TestHandleNamespaceLookupErrorCounts(t *testing.T) {
	m := newMutator(t, libc.UnknownDetector{}, nil, failingReader{})
	before := failOpenCount(t, "namespace_lookup")
	resp := m.Handle(context.Background(), request(t, "shop", admissionv1.Create, testPod("glibc-app")))
	if !resp.Allowed || hasSpecPatch(resp) {
		t.Fatalf("allowed=%v spec patched=%v", resp.Allowed, hasSpecPatch(resp))
	}
	if got := failOpenCount(t, "namespace_lookup") - before; got != 1 {
		t.Errorf("fail-open metric rose by %v", got)
	}
	if r := annotationOps(resp)[mutate.AnnotationReason]; !strings.Contains(r, "could not read namespace shop") {
		t.Errorf("reason annotation = %q", r)
	}
}

func failOpenCount(t *testing.T, reason string) float64 {
	t.Helper()
	if reason == "" {
		return 0
	}
	var m dto.Metric
	if err := metrics.FailOpen.WithLabelValues(reason).Write(&m); err != nil {
		t.Fatal(err)
	}
	return m.GetCounter().GetValue()
}
