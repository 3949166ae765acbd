package webhook

import (
	"context"
	"encoding/json"
	"errors"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/go-logr/logr"
	"gomodules.xyz/jsonpatch/v2"
	admissionv1 "k8s.io/api/admission/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/client/fake"
	"sigs.k8s.io/controller-runtime/pkg/webhook/admission"

	"github.com/dns-tuner/dns-tuner/internal/libc"
	"github.com/dns-tuner/dns-tuner/internal/mutate"
	"github.com/dns-tuner/dns-tuner/internal/policy"
	"github.com/dns-tuner/dns-tuner/internal/policy/policytest"
)

// detectorFunc adapts a function to libc.Detector.
type detectorFunc func(context.Context, libc.Target) (libc.Verdict, error)

func (f detectorFunc) Detect(ctx context.Context, t libc.Target) (libc.Verdict, error) {
	return f(ctx, t)
}

func byImage(m map[string]libc.Libc) libc.Detector {
	return detectorFunc(func(_ context.Context, t libc.Target) (libc.Verdict, error) {
		if l, ok := m[t.Image]; ok {
			return libc.Verdict{Libc: l, Source: libc.SourceEntrypoint}, nil
		}
		return libc.Verdict{Libc: libc.Unknown, Reason: "not in test table"}, nil
	})
}

type failingReader struct{ client.Reader }

func (failingReader) Get(context.Context, client.ObjectKey, client.Object, ...client.GetOption) error {
	return errors.New("cache not synced")
}

func newMutator(t testing.TB, det libc.Detector, p *policy.Policy, reader client.Reader) *PodMutator {
	t.Helper()
	scheme := runtime.NewScheme()
	if err := clientgoscheme.AddToScheme(scheme); err != nil {
		t.Fatal(err)
	}
	if reader == nil {
		reader = fake.NewClientBuilder().WithScheme(scheme).WithObjects(
			&corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "shop", Labels: map[string]string{mutate.LabelMode: "enforce"}}},
			&corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "audited", Labels: map[string]string{mutate.LabelMode: "audit"}}},
			&corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "plain"}},
		).Build()
	}
	if p == nil {
		p = policytest.Policy()
	}
	return &PodMutator{Policy: policy.Static{P: p}, Namespaces: reader, Detector: det, Log: logr.Discard()}
}

func request(t *testing.T, ns string, op admissionv1.Operation, pod *corev1.Pod) admission.Request {
	t.Helper()
	raw, err := json.Marshal(pod)
	if err != nil {
		t.Fatal(err)
	}
	return admission.Request{AdmissionRequest: admissionv1.AdmissionRequest{
		UID: "uid-1", Operation: op, Namespace: ns,
		Kind:   metav1.GroupVersionKind{Version: "v1", Kind: "Pod"},
		Object: runtime.RawExtension{Raw: raw},
	}}
}

func testPod(images ...string) *corev1.Pod {
	p := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{GenerateName: "web-"}}
	for i, img := range images {
		p.Spec.Containers = append(p.Spec.Containers, corev1.Container{Name: []string{"app", "sidecar", "third"}[i], Image: img})
	}
	return p
}

// patchOps returns the response's JSON patch whether it was sent as operations or as
// encoded bytes (the handler encodes its own, so an encoding error cannot become a denial).
func patchOps(resp admission.Response) []jsonpatch.JsonPatchOperation {
	if len(resp.Patches) > 0 || len(resp.Patch) == 0 {
		return resp.Patches
	}
	var ops []jsonpatch.JsonPatchOperation
	if err := json.Unmarshal(resp.Patch, &ops); err != nil {
		panic(err)
	}
	return ops
}

func annotationOps(resp admission.Response) map[string]string {
	out := map[string]string{}
	for _, op := range patchOps(resp) {
		switch {
		case op.Path == "/metadata/annotations":
			for k, v := range op.Value.(map[string]any) {
				out[k] = v.(string)
			}
		case strings.HasPrefix(op.Path, "/metadata/annotations/"):
			k := strings.ReplaceAll(strings.TrimPrefix(op.Path, "/metadata/annotations/"), "~1", "/")
			out[k] = op.Value.(string)
		}
	}
	return out
}

func hasSpecPatch(resp admission.Response) bool {
	for _, op := range patchOps(resp) {
		if strings.HasPrefix(op.Path, "/spec") {
			return true
		}
	}
	return false
}

func TestHandle(t *testing.T) {
	det := byImage(map[string]libc.Libc{"glibc-app": libc.GLibc, "musl-app": libc.Musl, "go-app": libc.Go})
	tests := []struct {
		name       string
		ns         string
		op         admissionv1.Operation
		pod        *corev1.Pod
		reader     client.Reader
		det        libc.Detector
		wantSpec   bool
		wantStatus string // "" means no annotations at all
		wantWarn   string
	}{
		{name: "enforce namespace injects", ns: "shop", op: admissionv1.Create, pod: testPod("glibc-app"), wantSpec: true, wantStatus: "injected"},
		{name: "audit namespace annotates only", ns: "audited", op: admissionv1.Create, pod: testPod("glibc-app"), wantStatus: "audit", wantWarn: "would add dnsConfig options"},
		{name: "unlabelled namespace untouched", ns: "plain", op: admissionv1.Create, pod: testPod("glibc-app")},
		{name: "excluded namespace untouched", ns: "kube-system", op: admissionv1.Create, pod: testPod("glibc-app")},
		{name: "update ignored", ns: "shop", op: admissionv1.Update, pod: testPod("glibc-app")},
		{name: "mixed pod warns about musl", ns: "shop", op: admissionv1.Create, pod: testPod("glibc-app", "musl-app"), wantSpec: true, wantStatus: "injected", wantWarn: `musl in container "sidecar" ignores option single-request-reopen`},
		{name: "annotation override beats detection", ns: "shop", op: admissionv1.Create, pod: func() *corev1.Pod {
			p := testPod("unknown-app")
			p.Annotations = map[string]string{mutate.AnnotationLibc: "musl"}
			return p
		}(), wantSpec: true, wantStatus: "injected"},
		{name: "bad override warns and falls back", ns: "shop", op: admissionv1.Create, pod: func() *corev1.Pod {
			p := testPod("glibc-app")
			p.Annotations = map[string]string{mutate.AnnotationLibc: "nosuch=musl"}
			return p
		}(), wantSpec: true, wantStatus: "injected", wantWarn: "annotation dns-tuner.io/libc ignored"},
		{name: "namespace read fails open", ns: "shop", op: admissionv1.Create, pod: testPod("glibc-app"), reader: failingReader{}, wantStatus: "error", wantWarn: "admitted the pod unchanged"},
		{name: "detector panic is unknown", ns: "shop", op: admissionv1.Create, pod: testPod("glibc-app"), det: detectorFunc(func(context.Context, libc.Target) (libc.Verdict, error) {
			panic("boom")
		}), wantStatus: "unchanged", wantWarn: "detector panic: boom"},
		{name: "detector error is unknown", ns: "shop", op: admissionv1.Create, pod: testPod("glibc-app"), det: detectorFunc(func(context.Context, libc.Target) (libc.Verdict, error) {
			return libc.Verdict{}, errors.New("registry unreachable")
		}), wantStatus: "unchanged", wantWarn: "registry unreachable"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d := tt.det
			if d == nil {
				d = det
			}
			m := newMutator(t, d, nil, tt.reader)
			resp := m.Handle(context.Background(), request(t, tt.ns, tt.op, tt.pod))
			if !resp.Allowed {
				t.Fatalf("pod denied: %+v", resp.Result)
			}
			if got := hasSpecPatch(resp); got != tt.wantSpec {
				t.Errorf("spec patched = %v, want %v (%v)", got, tt.wantSpec, patchOps(resp))
			}
			ann := annotationOps(resp)
			if ann[mutate.AnnotationStatus] != tt.wantStatus {
				t.Errorf("status annotation = %q, want %q", ann[mutate.AnnotationStatus], tt.wantStatus)
			}
			if tt.wantStatus == "" && len(patchOps(resp)) != 0 {
				t.Errorf("untouched pod got patches %v", patchOps(resp))
			}
			checkWarnings(t, resp.Warnings)
			warnings := strings.Join(resp.Warnings, "|")
			if tt.wantWarn != "" && !strings.Contains(warnings, tt.wantWarn) {
				t.Errorf("warnings %q, want one containing %q", warnings, tt.wantWarn)
			}
		})
	}
}

// A detector that ignores its deadline must not hold the pod past the budget.
func TestHandleBudget(t *testing.T) {
	p := policytest.Policy()
	p.Inspection.Budget = policy.Duration{Duration: 100 * time.Millisecond}
	release := make(chan struct{})
	defer close(release)
	hang := detectorFunc(func(context.Context, libc.Target) (libc.Verdict, error) {
		<-release
		return libc.Verdict{Libc: libc.GLibc}, nil
	})
	m := newMutator(t, hang, p, nil)
	start := time.Now()
	resp := m.Handle(context.Background(), request(t, "shop", admissionv1.Create, testPod("glibc-app", "musl-app")))
	if took := time.Since(start); took > 2*time.Second {
		t.Fatalf("admission took %s with a 100ms budget", took)
	}
	ann := annotationOps(resp)
	if !strings.Contains(ann[mutate.AnnotationInspectionState], "exceeded the 100ms admission budget") {
		t.Errorf("inspection annotation = %q", ann[mutate.AnnotationInspectionState])
	}
	if ann[mutate.AnnotationDetectedLibc] != "app=unknown,sidecar=unknown" {
		t.Errorf("detected = %q", ann[mutate.AnnotationDetectedLibc])
	}
}

// checkWarnings holds every warning to admission/v1's advice: 120 characters or fewer.
func checkWarnings(t *testing.T, warnings []string) {
	t.Helper()
	for _, w := range warnings {
		if len(w) > mutate.MaxWarning {
			t.Errorf("warning of %d bytes (max %d): %q", len(w), mutate.MaxWarning, w)
		}
	}
}

// The policy's inspection.maxImagesPerPod bounds what one admission sends to the detector.
func TestHandleBoundsImagesPerPod(t *testing.T) {
	var calls atomic.Int64
	det := detectorFunc(func(context.Context, libc.Target) (libc.Verdict, error) {
		calls.Add(1)
		return libc.Verdict{Libc: libc.GLibc}, nil
	})
	p := policytest.Policy()
	p.Inspection.MaxImagesPerPod = 2
	m := newMutator(t, det, p, nil)
	pod := testPod("a", "b", "c")
	pod.Spec.Containers = append(pod.Spec.Containers, corev1.Container{Name: "fourth", Image: "a"})
	resp := m.Handle(context.Background(), request(t, "shop", admissionv1.Create, pod))
	if n := calls.Load(); n != 2 {
		t.Errorf("detector called %d times, want 2", n)
	}
	if got := annotationOps(resp)[mutate.AnnotationDetectedLibc]; got != "app=glibc,sidecar=glibc,third=unknown,fourth=glibc" {
		t.Errorf("detected-libc = %q", got)
	}
	checkWarnings(t, resp.Warnings)
}
