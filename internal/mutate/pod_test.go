package mutate

import (
	"reflect"
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// The view reads keys as the API server does, case-sensitively: a "DNSPolicy" key is not
// the pod's dnsPolicy, whatever encoding/json's case folding would say.
func TestDecodePodIsCaseSensitive(t *testing.T) {
	pod, err := DecodePod([]byte(`{"metadata":{"Name":"x","name":"web"},"spec":{"DNSPolicy":"Default","HostNetwork":true,"containers":[{"Image":"a","image":"b","name":"app"}]}}`))
	if err != nil {
		t.Fatal(err)
	}
	want := &Pod{Metadata: PodMeta{Name: "web"}, Spec: PodSpec{Containers: []PodContainer{{Name: "app", Image: "b"}}}}
	if !reflect.DeepEqual(pod, want) {
		t.Errorf("got %+v, want %+v", pod, want)
	}
	if _, err := DecodePod([]byte(`{"Metadata":{"name":"web"},"Spec":{}}`)); err == nil {
		t.Error("capitalised metadata and spec decoded as the pod's")
	}
}

// explain and admission see the same fields: the view of a typed pod is the view of its
// JSON, and holds every field dns-tuner reads.
func TestPodFromCore(t *testing.T) {
	two := "2"
	core := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: "web", GenerateName: "web-", Namespace: "shop",
			Labels: map[string]string{"app": "web"}, Annotations: map[string]string{"a": "b"}},
		Spec: corev1.PodSpec{
			DNSPolicy: corev1.DNSClusterFirstWithHostNet, HostNetwork: true, ServiceAccountName: "sa",
			DNSConfig:        &corev1.PodDNSConfig{Nameservers: []string{"1.1.1.1"}, Searches: []string{"x"}, Options: []corev1.PodDNSConfigOption{{Name: "ndots", Value: &two}}},
			InitContainers:   []corev1.Container{{Name: "init", Image: "i", Command: []string{"sh"}, Args: []string{"-c"}}},
			Containers:       []corev1.Container{{Name: "app", Image: "a", WorkingDir: "/srv", Env: []corev1.EnvVar{{Name: "SECRET", Value: "s"}, {Name: "PATH", Value: "/opt/bin"}}}},
			ImagePullSecrets: []corev1.LocalObjectReference{{Name: "pull"}},
		},
	}
	got, err := PodFromCore(core)
	if err != nil {
		t.Fatal(err)
	}
	want := &Pod{
		Metadata: PodMeta{Name: "web", GenerateName: "web-", Namespace: "shop", Annotations: map[string]string{"a": "b"}},
		Spec: PodSpec{
			DNSPolicy: corev1.DNSClusterFirstWithHostNet, HostNetwork: true, ServiceAccountName: "sa",
			DNSConfig:        core.Spec.DNSConfig,
			InitContainers:   []PodContainer{{Name: "init", Image: "i", Command: []string{"sh"}, Args: []string{"-c"}}},
			Containers:       []PodContainer{{Name: "app", Image: "a", WorkingDir: "/srv", Env: []PodEnv{{Name: "PATH", Value: "/opt/bin"}}}},
			ImagePullSecrets: []corev1.LocalObjectReference{{Name: "pull"}},
		},
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("got %+v\nwant %+v", got, want)
	}
}
