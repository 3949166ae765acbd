package webhook

import (
	"bytes"
	"fmt"
	"net/http"
	"net/http/httptest"
	"reflect"
	"strings"
	"testing"

	"github.com/go-logr/logr"
	"sigs.k8s.io/controller-runtime/pkg/webhook/admission"

	"github.com/dns-tuner/dns-tuner/internal/libc"
	"github.com/dns-tuner/dns-tuner/internal/mutate"
)

// review is an AdmissionReview body around object (raw JSON) as the API server sends it.
func review(apiVersion, op, ns, object string) string {
	return fmt.Sprintf(`{"apiVersion":%q,"kind":"AdmissionReview","request":{"uid":"u-1",`+
		`"kind":{"group":"","version":"v1","kind":"Pod"},"resource":{"group":"","version":"v1","resource":"pods"},`+
		`"requestKind":{"group":"","version":"v1","kind":"Pod"},"namespace":%q,"operation":%q,`+
		`"userInfo":{"username":"system:serviceaccount:kube-system:replicaset-controller","groups":["system:authenticated"]},`+
		`"object":%s,"oldObject":null,"dryRun":false,"options":{"kind":"CreateOptions","apiVersion":"meta.k8s.io/v1"}}}`,
		apiVersion, ns, op, object)
}

// Reviews reads a pod's review in one pass instead of controller-runtime's four scans plus
// two of the pod. Whatever the body, its answer must be byte for byte what
// controller-runtime's admission.Webhook answers with the same mutator: the one pass may
// only save time. fast says which bodies the one pass takes; the rest fall through to
// admission.Webhook, so a decode trouble keeps its fail-open answer.
func TestReviewsAnswerAsAdmissionWebhook(t *testing.T) {
	const glibcPod = `{"metadata":{"generateName":"web-","namespace":"shop","annotations":{"team":"shop"}},` +
		`"spec":{"dnsPolicy":"ClusterFirst","containers":[{"name":"app","image":"glibc-app","env":[{"name":"SECRET","value":"s3cr3t"},{"name":"PATH","value":"/bin"}]},` +
		`{"name":"sidecar","image":"musl-app"}],"restartPolicy":"Always"}}`
	v1 := "admission.k8s.io/v1"
	tests := []struct {
		name        string
		body        string
		contentType string // "" means application/json
		fast        bool
	}{
		{name: "pod in an enforcing namespace", body: review(v1, "CREATE", "shop", glibcPod), fast: true},
		{name: "pod in an auditing namespace", body: review(v1, "CREATE", "audited", glibcPod), fast: true},
		{name: "pod in a namespace that is off", body: review(v1, "CREATE", "plain", glibcPod), fast: true},
		{name: "excluded namespace", body: review(v1, "CREATE", "kube-system", glibcPod), fast: true},
		{name: "update", body: review(v1, "UPDATE", "shop", glibcPod), fast: true},
		{name: "namespace only in the object", body: review(v1, "CREATE", "", glibcPod), fast: true},
		{name: "user dnsConfig kept", body: review(v1, "CREATE", "shop",
			`{"metadata":{"name":"web"},"spec":{"dnsConfig":{"options":[{"name":"timeout:1"},{"name":"ndots","value":"2"}]},"containers":[{"name":"app","image":"glibc-app"}]}}`), fast: true},
		{name: "v1beta1 review", body: review("admission.k8s.io/v1beta1", "CREATE", "shop", glibcPod)},
		{name: "pod field of the wrong type", body: review(v1, "CREATE", "shop", `{"metadata":{"name":"web"},"spec":{"containers":"not a list"}}`)},
		{name: "pod without spec", body: review(v1, "CREATE", "shop", `{"metadata":{"name":"web"}}`)},
		{name: "object null", body: review(v1, "CREATE", "shop", `null`)},
		{name: "metadata key in another case", body: review(v1, "CREATE", "shop", `{"Metadata":{"name":"web"},"spec":{}}`)},
		{name: "request key in another case", body: strings.Replace(review(v1, "CREATE", "shop", glibcPod), `"request"`, `"Request"`, 1)},
		{name: "no request", body: `{"apiVersion":"admission.k8s.io/v1","kind":"AdmissionReview"}`},
		{name: "truncated review", body: review(v1, "CREATE", "shop", glibcPod)[:200]},
		{name: "not JSON", body: `<review/>`},
		{name: "empty body", body: ``},
		{name: "wrong content type", body: review(v1, "CREATE", "shop", glibcPod), contentType: "application/yaml"},
	}
	det := byImage(map[string]libc.Libc{"glibc-app": libc.GLibc, "musl-app": libc.Musl})
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m := newMutator(t, det, nil, nil)
			post := func(h http.Handler) *httptest.ResponseRecorder {
				r := httptest.NewRequest(http.MethodPost, Path, strings.NewReader(tt.body))
				ct := tt.contentType
				if ct == "" {
					ct = "application/json"
				}
				r.Header.Set("Content-Type", ct)
				w := httptest.NewRecorder()
				h.ServeHTTP(w, r)
				return w
			}
			got := post(Reviews(m, logr.Discard()))
			want := post(&admission.Webhook{Handler: m})
			if got.Code != want.Code || !bytes.Equal(got.Body.Bytes(), want.Body.Bytes()) {
				t.Errorf("one pass answered HTTP %d\n%s\nadmission.Webhook answered HTTP %d\n%s", got.Code, got.Body, want.Code, want.Body)
			}
			if _, _, fast := decodeReview([]byte(tt.body)); fast != tt.fast && tt.contentType == "" {
				t.Errorf("one pass took the body: %v, want %v", fast, tt.fast)
			}
		})
	}
}

// The pod read in the review's pass is the view DecodePod gives for the same object, the
// environment reduced to PATH included.
func TestDecodeReviewReadsThePodAsDecodePod(t *testing.T) {
	const object = `{"metadata":{"name":"web","namespace":"shop","annotations":{"a":"b"}},"spec":{"hostNetwork":true,` +
		`"dnsPolicy":"ClusterFirstWithHostNet","dnsConfig":{"options":[{"name":"ndots","value":"1"}]},"nodeSelector":{"kernel":"old"},` +
		`"imagePullSecrets":[{"name":"pull"}],"serviceAccountName":"sa",` +
		`"initContainers":[{"name":"init","image":"busybox","command":["sh","-c","true"]}],` +
		`"containers":[{"name":"app","image":"glibc-app","args":["--x"],"env":[{"name":"TOKEN","value":"t"},{"name":"PATH","value":"/opt/bin"}]}]}}`
	req, pod, ok := decodeReview([]byte(review("admission.k8s.io/v1", "CREATE", "shop", object)))
	if !ok {
		t.Fatal("the one pass did not take a plain pod review")
	}
	want, err := mutate.DecodePod([]byte(object))
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(pod, want) {
		t.Errorf("one pass read\n%+v\nDecodePod reads\n%+v", pod, want)
	}
	if req.UID != "u-1" || req.Namespace != "shop" || req.Kind.Kind != "Pod" || req.Resource.Resource != "pods" || req.Operation != "CREATE" {
		t.Errorf("request fields: %+v", req.AdmissionRequest)
	}
	if env := pod.Spec.Containers[0].Env; len(env) != 1 || env[0].Name != "PATH" {
		t.Errorf("environment kept beyond PATH: %+v", env)
	}
}

// Whatever bytes arrive, the one pass answers as admission.Webhook does.
func FuzzReviewsAnswerAsAdmissionWebhook(f *testing.F) {
	const pod = `{"metadata":{"name":"web","annotations":{"a":"b"}},"spec":{"containers":[{"name":"app","image":"glibc-app"},{"name":"s","image":"musl-app"}]}}`
	for _, seed := range []string{
		review("admission.k8s.io/v1", "CREATE", "shop", pod),
		review("admission.k8s.io/v1", "CREATE", "audited", pod),
		review("admission.k8s.io/v1beta1", "CREATE", "shop", pod),
		review("admission.k8s.io/v1", "CREATE", "shop", `{"metadata":{"name":"web"},"spec":{"dnsConfig":{"options":[{"name":"timeout:1"}]}}}`),
		review("admission.k8s.io/v1", "CREATE", "shop", `{"metadata":{"name":"web"},"spec":{"containers":"x"}}`),
		`{"apiVersion":"admission.k8s.io/v1","kind":"AdmissionReview","request":null}`,
	} {
		f.Add([]byte(seed))
	}
	m := newMutator(f, byImage(map[string]libc.Libc{"glibc-app": libc.GLibc, "musl-app": libc.Musl}), nil, nil)
	one, general := Reviews(m, logr.Discard()), &admission.Webhook{Handler: m}
	f.Fuzz(func(t *testing.T, body []byte) {
		post := func(h http.Handler) *httptest.ResponseRecorder {
			r := httptest.NewRequest(http.MethodPost, Path, bytes.NewReader(body))
			r.Header.Set("Content-Type", "application/json")
			w := httptest.NewRecorder()
			h.ServeHTTP(w, r)
			return w
		}
		got, want := post(one), post(general)
		if got.Code != want.Code || !bytes.Equal(got.Body.Bytes(), want.Body.Bytes()) {
			t.Errorf("body %q:\none pass answered HTTP %d %s\nadmission.Webhook answered HTTP %d %s", body, got.Code, got.Body, want.Code, want.Body)
		}
	})
}
