package webhook_test

import (
	"context"
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/go-logr/logr"
	admissionv1 "k8s.io/api/admission/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"sigs.k8s.io/controller-runtime/pkg/client/fake"
	"sigs.k8s.io/controller-runtime/pkg/webhook/admission"

	"github.com/dns-tuner/dns-tuner/internal/inspect/imagetest"
	"github.com/dns-tuner/dns-tuner/internal/mutate"
	"github.com/dns-tuner/dns-tuner/internal/policy"
	"github.com/dns-tuner/dns-tuner/internal/policy/policytest"
	"github.com/dns-tuner/dns-tuner/internal/verdicts"
	"github.com/dns-tuner/dns-tuner/webhook"
)

// The hostile case through the admission handler: a hanging registry costs the first
// pod no more than the budget (unknown profile, annotated), and once the background inspection
// completes the next pod gets musl's options from the cache.
func TestAdmissionWithHangingRegistry(t *testing.T) {
	release := make(chan struct{})
	srv := imagetest.Serve(t, func(h http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			select {
			case <-release:
			case <-r.Context().Done():
				return
			}
			h.ServeHTTP(w, r)
		})
	})
	close(release)
	ref := imagetest.Push(t, srv.Host, "shop/cart:1", imagetest.Build(t, imagetest.MuslDynamic))
	release = make(chan struct{})

	p := policytest.Policy()
	p.Inspection = inspection(srv.Host)
	p.Inspection.Budget = policy.Duration{Duration: 200 * time.Millisecond}
	det, err := verdicts.FromPolicy(p.Inspection, verdicts.Options{})
	if err != nil {
		t.Fatal(err)
	}
	scheme := runtime.NewScheme()
	if err := clientgoscheme.AddToScheme(scheme); err != nil {
		t.Fatal(err)
	}
	m := &webhook.PodMutator{
		Policy: policy.Static{P: p},
		Namespaces: fake.NewClientBuilder().WithScheme(scheme).WithObjects(&corev1.Namespace{
			ObjectMeta: metav1.ObjectMeta{Name: "shop", Labels: map[string]string{mutate.LabelMode: "enforce"}}}).Build(),
		Detector: det,
		Log:      logr.Discard(),
	}
	admit := func(name string) (string, time.Duration) {
		t.Helper()
		pod := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: "shop"},
			Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "app", Image: ref.String()}}}}
		raw, err := json.Marshal(pod)
		if err != nil {
			t.Fatal(err)
		}
		start := time.Now()
		resp := m.Handle(context.Background(), admission.Request{AdmissionRequest: admissionv1.AdmissionRequest{
			UID: "u", Operation: admissionv1.Create, Namespace: "shop",
			Kind: metav1.GroupVersionKind{Version: "v1", Kind: "Pod"}, Object: runtime.RawExtension{Raw: raw},
		}})
		took := time.Since(start)
		if !resp.Allowed {
			t.Fatalf("%s not allowed: %v", name, resp.Result)
		}
		// The handler sends its patch encoded; accept operations too.
		patches := resp.Patch
		if len(resp.Patches) > 0 {
			if patches, err = json.Marshal(resp.Patches); err != nil {
				t.Fatal(err)
			}
		}
		return string(patches), took
	}

	first, took := admit("first")
	if took > p.Inspection.Budget.Duration+time.Second {
		t.Errorf("first pod took %s with a %s budget", took, p.Inspection.Budget.Duration)
	}
	if !strings.Contains(first, "app=unknown") || !strings.Contains(first, "budget") || strings.Contains(first, `"attempts"`) {
		t.Errorf("first pod: want unknown, annotated as over budget, no musl options; patches %s", first)
	}

	t.Logf("first pod (%s): %s", took, first)
	close(release)
	det.Wait()
	second, _ := admit("second")
	if !strings.Contains(second, "app=musl") || !strings.Contains(second, `"attempts"`) {
		t.Errorf("second pod: want musl options from the cache; patches %s", second)
	}
}

func inspection(insecure ...string) policy.Inspection {
	return policy.Inspection{
		Enabled:            true,
		PerImageTimeout:    policy.Duration{Duration: 10 * time.Second},
		MaxBytesPerImage:   64 << 20,
		Platform:           "linux/amd64",
		InsecureRegistries: insecure,
	}
}
