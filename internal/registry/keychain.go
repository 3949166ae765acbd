package registry

import (
	"context"
	"errors"
	"fmt"
	"net"
	"sync/atomic"

	"github.com/google/go-containerregistry/pkg/authn"
	kauth "github.com/google/go-containerregistry/pkg/authn/kubernetes"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	corev1client "k8s.io/client-go/kubernetes/typed/core/v1"
	"k8s.io/client-go/rest"
)

// PodKeychains builds the credentials of one pod: its imagePullSecrets and its
// ServiceAccount's, as the kubelet would use them. It only ever GETs secrets and
// serviceaccounts in the pod's namespace (no list or watch: nothing is cached cluster-wide),
// so its RBAC is `get` on `secrets` and `serviceaccounts`.
type PodKeychains struct {
	Client kubernetes.Interface
}

// NewPodKeychains builds PodKeychains on an uncached clientset: a manager's cached client
// would start a cluster-wide watch of every Secret.
func NewPodKeychains(cfg *rest.Config) (*PodKeychains, error) {
	cfg = rest.CopyConfig(cfg)
	cfg.UserAgent = "dns-tuner/pull-secrets"
	c, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		return nil, err
	}
	return &PodKeychains{Client: c}, nil
}

// Keychain returns the pod's keychain. Missing secrets or ServiceAccount are skipped, as the
// kubelet skips them. Errors name objects, never their contents. The keychain's Bytes method
// estimates the memory it holds, for caches bounded in bytes: a pull secret may be 1 MiB.
func (k *PodKeychains) Keychain(ctx context.Context, namespace, serviceAccount string, pullSecrets []string) (authn.Keychain, error) {
	read := &secretBytes{Interface: k.Client}
	kc, err := kauth.New(ctx, read, kauth.Options{
		Namespace:          namespace,
		ServiceAccountName: serviceAccount,
		ImagePullSecrets:   pullSecrets,
	})
	if err != nil {
		// Parse errors of a dockerconfigjson could quote its bytes; say which pod's secrets.
		return nil, fmt.Errorf("reading pull credentials of namespace %s (serviceaccount %q, %d pull secrets): %s",
			namespace, serviceAccount, len(pullSecrets), redactedKind(err))
	}
	// Parsed credentials keep about the secrets' bytes; count them twice for the decoded
	// copies, plus a fixed overhead per secret.
	return &sizedKeychain{Keychain: kc, bytes: 2*read.bytes.Load() + 1024*read.secrets.Load()}, nil
}

// sizedKeychain is a keychain that knows how much memory it holds (verdicts.KeychainFunc).
type sizedKeychain struct {
	authn.Keychain
	bytes int64
}

// Bytes estimates the memory the keychain holds.
func (k *sizedKeychain) Bytes() int64 { return k.bytes }

// secretBytes counts the data of the secrets read through it.
type secretBytes struct {
	kubernetes.Interface
	bytes, secrets atomic.Int64
}

func (c *secretBytes) CoreV1() corev1client.CoreV1Interface {
	return secretBytesCore{c.Interface.CoreV1(), c}
}

type secretBytesCore struct {
	corev1client.CoreV1Interface
	count *secretBytes
}

func (c secretBytesCore) Secrets(namespace string) corev1client.SecretInterface {
	return secretBytesGet{c.CoreV1Interface.Secrets(namespace), c.count}
}

type secretBytesGet struct {
	corev1client.SecretInterface
	count *secretBytes
}

func (s secretBytesGet) Get(ctx context.Context, name string, opts metav1.GetOptions) (*corev1.Secret, error) {
	sec, err := s.SecretInterface.Get(ctx, name, opts)
	if err == nil {
		s.count.secrets.Add(1)
		for _, d := range sec.Data {
			s.count.bytes.Add(int64(len(d)))
		}
	}
	return sec, err
}

// redactedKind keeps API and network errors (forbidden, timeouts: no secret data) and hides
// anything else, which comes from parsing a secret's contents.
func redactedKind(err error) string {
	var status apierrors.APIStatus
	var netErr net.Error
	if errors.As(err, &status) || errors.As(err, &netErr) || errors.Is(err, context.DeadlineExceeded) || errors.Is(err, context.Canceled) {
		return err.Error()
	}
	return "a pull secret is not a valid docker config (contents not shown)"
}
