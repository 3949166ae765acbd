package webhook

import (
	"encoding/json"
	"reflect"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	sigsjson "sigs.k8s.io/json"

	"github.com/dns-tuner/dns-tuner/internal/libc"
	"github.com/dns-tuner/dns-tuner/internal/mutate"
	"github.com/dns-tuner/dns-tuner/internal/policy"
)

func ptr(s string) *string { return &s }

// The slim decode must give the decision and patch a full typed decode gives, for pods that
// exercise every field mutate reads.
func TestDecodePodMatchesFullDecode(t *testing.T) {
	full := []*corev1.Pod{
		{
			ObjectMeta: metav1.ObjectMeta{GenerateName: "web-", Namespace: "shop", Labels: map[string]string{"app": "web"},
				Annotations: map[string]string{"team": "a/b", mutate.AnnotationLibc: "app=glibc,sidecar=musl"}},
			Spec: corev1.PodSpec{
				InitContainers:     []corev1.Container{{Name: "init", Image: "busybox", Command: []string{"sh", "-c", "true"}}},
				Containers:         []corev1.Container{{Name: "app", Image: "nginx", Env: []corev1.EnvVar{{Name: "A", Value: "1"}}}, {Name: "sidecar", Image: "envoy", Args: []string{"-c", "x"}}},
				ImagePullSecrets:   []corev1.LocalObjectReference{{Name: "regcred"}},
				ServiceAccountName: "web",
				DNSConfig:          &corev1.PodDNSConfig{Options: []corev1.PodDNSConfigOption{{Name: "timeout", Value: ptr("5")}, {Name: "edns0"}}, Searches: []string{"corp"}},
			},
		},
		{Spec: corev1.PodSpec{HostNetwork: true, DNSPolicy: corev1.DNSClusterFirstWithHostNet, Containers: []corev1.Container{{Name: "a", Image: "x"}}}},
		{Spec: corev1.PodSpec{HostNetwork: true, Containers: []corev1.Container{{Name: "a", Image: "x"}}}},
		{Spec: corev1.PodSpec{DNSPolicy: corev1.DNSNone, DNSConfig: &corev1.PodDNSConfig{Nameservers: []string{"1.1.1.1"}}, Containers: []corev1.Container{{Name: "a", Image: "x"}}}},
		{ObjectMeta: metav1.ObjectMeta{Annotations: map[string]string{mutate.AnnotationStatus: "injected"}}, Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "a", Image: "x"}}}},
	}
	p := policy.Default()
	p.Ndots = "2"
	for i, want := range full {
		raw, err := json.Marshal(want)
		if err != nil {
			t.Fatal(err)
		}
		got, err := decodePod(raw)
		if err != nil {
			t.Fatal(err)
		}
		for _, m := range []policy.Mode{policy.Enforce, policy.Audit} {
			var cs []mutate.Container
			for _, c := range append(append([]corev1.Container{}, want.Spec.InitContainers...), want.Spec.Containers...) {
				cs = append(cs, mutate.Container{Name: c.Name, Verdict: libc.Verdict{Libc: libc.GLibc}})
			}
			md := mutate.ModeDecision{Mode: m, Reason: "test"}
			a, b := mutate.Decide(p, want, md, cs), mutate.Decide(p, got, md, cs)
			if !reflect.DeepEqual(a, b) {
				t.Errorf("pod %d, %s: decision differs:\nfull %+v\nslim %+v", i, m, a, b)
			}
			if pa, pb := mutate.Patch(want, a), mutate.Patch(got, b); !reflect.DeepEqual(pa, pb) {
				t.Errorf("pod %d, %s: patch differs:\nfull %v\nslim %v", i, m, pa, pb)
			}
		}
		for j, c := range want.Spec.Containers {
			g := got.Spec.Containers[j]
			if c.Name != g.Name || c.Image != g.Image || !reflect.DeepEqual(c.Command, g.Command) || !reflect.DeepEqual(c.Args, g.Args) {
				t.Errorf("pod %d container %d: %+v != %+v", i, j, g, c)
			}
		}
		if got.Spec.ServiceAccountName != want.Spec.ServiceAccountName || !reflect.DeepEqual(got.Spec.ImagePullSecrets, want.Spec.ImagePullSecrets) {
			t.Errorf("pod %d: credentials references lost", i)
		}
	}
}

func TestDecodePodRejects(t *testing.T) {
	for _, tt := range []struct{ raw, err string }{
		{"", "no content"},
		{"[]", "decoding pod"},
		{`{"spec": {"containers": "nope"}}`, "spec.containers: want an array"},
		{`{"metadata": {"annotations": {"a": 1}}}`, "metadata.annotations: want a string"},
		{`{"spec": {"dnsConfig": {"options": [{"name": 5}]}}}`, "spec.dnsConfig"},
		{`{"spec": {"hostNetwork": "yes"}}`, "spec.hostNetwork: want a boolean"},
		{`{"spec": {"containers": [{"command": "sh"}]}}`, "spec.containers.command: want an array"},
		{`{"spec": {"containers": [{"name": "a"`, "decoding pod"},
	} {
		if _, err := decodePod([]byte(tt.raw)); err == nil || !strings.Contains(err.Error(), tt.err) {
			t.Errorf("decodePod(%q) = %v, want %q", tt.raw, err, tt.err)
		}
	}
}

// oraclePod is what decodePod must agree with: the same fields through a case-sensitive
// encoding/json decode, as the API server reads JSON.
type oraclePod struct {
	Metadata struct {
		Name         string            `json:"name"`
		GenerateName string            `json:"generateName"`
		Namespace    string            `json:"namespace"`
		Annotations  map[string]string `json:"annotations"`
	} `json:"metadata"`
	Spec struct {
		DNSPolicy          corev1.DNSPolicy              `json:"dnsPolicy"`
		HostNetwork        bool                          `json:"hostNetwork"`
		DNSConfig          *corev1.PodDNSConfig          `json:"dnsConfig"`
		InitContainers     []oracleContainer             `json:"initContainers"`
		Containers         []oracleContainer             `json:"containers"`
		ImagePullSecrets   []corev1.LocalObjectReference `json:"imagePullSecrets"`
		ServiceAccountName string                        `json:"serviceAccountName"`
	} `json:"spec"`
}

type oracleContainer struct {
	Name    string   `json:"name"`
	Image   string   `json:"image"`
	Command []string `json:"command"`
	Args    []string `json:"args"`
}

func oracleDecode(raw []byte) (*corev1.Pod, error) {
	var in oraclePod
	if err := sigsjson.UnmarshalCaseSensitivePreserveInts(raw, &in); err != nil {
		return nil, err
	}
	pod := &corev1.Pod{}
	pod.Name, pod.GenerateName, pod.Namespace, pod.Annotations = in.Metadata.Name, in.Metadata.GenerateName, in.Metadata.Namespace, in.Metadata.Annotations
	s := &pod.Spec
	s.DNSPolicy, s.HostNetwork, s.DNSConfig, s.ImagePullSecrets, s.ServiceAccountName = in.Spec.DNSPolicy, in.Spec.HostNetwork, in.Spec.DNSConfig, in.Spec.ImagePullSecrets, in.Spec.ServiceAccountName
	conv := func(cs []oracleContainer) []corev1.Container {
		var out []corev1.Container
		for _, c := range cs {
			out = append(out, corev1.Container{Name: c.Name, Image: c.Image, Command: c.Command, Args: c.Args})
		}
		return out
	}
	s.InitContainers, s.Containers = conv(in.Spec.InitContainers), conv(in.Spec.Containers)
	return pod, nil
}

// FuzzDecodePod: for any well-formed JSON the API server could send, decodePod gives what a
// case-sensitive encoding/json decode gives, and fails where it fails.
func FuzzDecodePod(f *testing.F) {
	seeds := []string{
		`{"metadata":{"name":"a","annotations":{"dns-tuner.io/libc":"musl","k":"v\"q"}},"spec":{"containers":[{"name":"app","image":"x","command":["sh","-c"],"env":[{"name":"A","value":"{]"}]}]}}`,
		`{"spec":{"hostNetwork":true,"dnsPolicy":"ClusterFirstWithHostNet","dnsConfig":{"options":[{"name":"ndots","value":"2"}],"nameservers":["1.1.1.1"]},"imagePullSecrets":[{"name":"r"}],"serviceAccountName":"sa"}}`,
		`{"metadata":null,"spec":{"containers":null,"initContainers":[{"name":"i","args":[]}]}}`,
		`{"metadata":{"name":"\u00e9\ud83d\ude00","annotations":null},"spec":{"hostNetwork":false}}`,
		`{"spec":{"containers":"nope"}}`, `[]`, `null`, `{"spec":{"hostNetwork":1}}`,
		`{"metadata":{"name":"a","name":"b"},"Spec":{"hostNetwork":true}}`,
	}
	for _, s := range seeds {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, raw []byte) {
		if !json.Valid(raw) {
			t.Skip("the API server only sends well-formed JSON")
		}
		want, werr := oracleDecode(raw)
		got, gerr := decodePod(raw)
		if (werr == nil) != (gerr == nil) {
			t.Fatalf("%s: oracle err %v, decodePod err %v", raw, werr, gerr)
		}
		if werr == nil && !reflect.DeepEqual(normalizePod(want), normalizePod(got)) {
			t.Fatalf("%s:\noracle    %+v\ndecodePod %+v", raw, want, got)
		}
	})
}

// normalizePod treats empty and nil slices and maps alike: both mean "not set" to dns-tuner.
func normalizePod(p *corev1.Pod) *corev1.Pod {
	p = p.DeepCopy()
	if len(p.Annotations) == 0 {
		p.Annotations = nil
	}
	if len(p.Spec.ImagePullSecrets) == 0 {
		p.Spec.ImagePullSecrets = nil
	}
	if len(p.Spec.Containers) == 0 {
		p.Spec.Containers = nil
	}
	if len(p.Spec.InitContainers) == 0 {
		p.Spec.InitContainers = nil
	}
	for _, cs := range [][]corev1.Container{p.Spec.Containers, p.Spec.InitContainers} {
		for i := range cs {
			if len(cs[i].Command) == 0 {
				cs[i].Command = nil
			}
			if len(cs[i].Args) == 0 {
				cs[i].Args = nil
			}
		}
	}
	return p
}
