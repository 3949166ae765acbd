package registry_test

import (
	"context"
	"encoding/base64"
	"fmt"
	"strings"
	"testing"

	"github.com/google/go-containerregistry/pkg/v1/remote"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes/fake"

	"github.com/dns-tuner/dns-tuner/internal/registry"
	"github.com/dns-tuner/dns-tuner/internal/registry/registrytest"
)

const secretPassword = "s3cr3t-Pa55w0rd-do-not-log"

func dockerConfigSecret(namespace, name, host, user, pass string) *corev1.Secret {
	auth := base64.StdEncoding.EncodeToString([]byte(user + ":" + pass))
	return &corev1.Secret{
		ObjectMeta: metav1.ObjectMeta{Namespace: namespace, Name: name},
		Type:       corev1.SecretTypeDockerConfigJson,
		Data: map[string][]byte{corev1.DockerConfigJsonKey: fmt.Appendf(nil,
			`{"auths":{%q:{"username":%q,"password":%q,"auth":%q}}}`, host, user, pass, auth)},
	}
}

func TestPodKeychain(t *testing.T) {
	reg := registrytest.New(t, registrytest.WithBasicAuth("robot", secretPassword))
	_, digest := reg.PushRandom(t, "private/app:1")
	g, err := registry.New(registry.Config{Insecure: []string{reg.Host}})
	if err != nil {
		t.Fatal(err)
	}
	client := fake.NewClientset(
		dockerConfigSecret("team-a", "pull", reg.Host, "robot", secretPassword),
		dockerConfigSecret("team-a", "wrong", reg.Host, "robot", "not-"+secretPassword),
		&corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Namespace: "team-a", Name: "builder"},
			ImagePullSecrets: []corev1.LocalObjectReference{{Name: "pull"}}},
		&corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Namespace: "team-b", Name: "default"}},
		&corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: "team-c", Name: "garbled"}, Type: corev1.SecretTypeDockerConfigJson,
			Data: map[string][]byte{corev1.DockerConfigJsonKey: []byte(`{"auths":` + secretPassword)}},
	)
	pk := &registry.PodKeychains{Client: client}
	ref, err := g.ParseReference(reg.Host + "/private/app:1")
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name, namespace, sa string
		secrets             []string
		pulls               bool
		keychainErr         bool
	}{
		{"pod pull secret", "team-a", "", []string{"pull"}, true, false},
		{"service account pull secret", "team-a", "builder", nil, true, false},
		{"missing secret is skipped", "team-a", "", []string{"absent"}, false, false},
		{"wrong password", "team-a", "", []string{"wrong"}, false, false},
		{"other namespace cannot use team-a's secret", "team-b", "", []string{"pull"}, false, false},
		{"garbled secret", "team-c", "", []string{"garbled"}, false, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			kc, err := pk.Keychain(context.Background(), tc.namespace, tc.sa, tc.secrets)
			if tc.keychainErr {
				if err == nil {
					t.Fatal("want an error for a garbled secret")
				}
				if strings.Contains(err.Error(), secretPassword) {
					t.Fatalf("error leaks the secret: %v", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			desc, err := remote.Head(ref, append(g.RemoteOptions(), remote.WithAuthFromKeychain(kc))...)
			if tc.pulls {
				if err != nil {
					t.Fatal(err)
				}
				if desc.Digest != digest {
					t.Errorf("digest = %s, want %s", desc.Digest, digest)
				}
				return
			}
			if err == nil {
				t.Fatal("pulled a private image without its credentials")
			}
			if strings.Contains(err.Error(), secretPassword) {
				t.Fatalf("error leaks the secret: %v", err)
			}
		})
	}
}

// The verdict cache bounds its memory in bytes; a pod's keychain says how large its secrets
// were (a pull secret may be 1 MiB).
func TestPodKeychainReportsItsSize(t *testing.T) {
	big := dockerConfigSecret("ns", "big", "registry.example.com", "robot", strings.Repeat("p", 512<<10))
	client := fake.NewClientset(big, dockerConfigSecret("ns", "small", "registry.example.com", "robot", "pw"))
	pk := &registry.PodKeychains{Client: client}
	for _, tc := range []struct {
		secrets  []string
		min, max int64
	}{
		{nil, 0, 4 << 10},
		{[]string{"small"}, 100, 4 << 10},
		{[]string{"big"}, 512 << 10, 4 << 20},
		{[]string{"big", "small"}, 512 << 10, 4 << 20},
	} {
		kc, err := pk.Keychain(context.Background(), "ns", "", tc.secrets)
		if err != nil {
			t.Fatal(err)
		}
		s, ok := kc.(interface{ Bytes() int64 })
		if !ok {
			t.Fatalf("keychain %T has no Bytes method", kc)
		}
		if n := s.Bytes(); n < tc.min || n > tc.max {
			t.Errorf("secrets %v: Bytes() = %d, want in [%d, %d]", tc.secrets, n, tc.min, tc.max)
		}
	}
}
