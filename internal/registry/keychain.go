package registry

import (
	"context"
	"errors"
	"fmt"
	"net"

	"github.com/google/go-containerregistry/pkg/authn"
	kauth "github.com/google/go-containerregistry/pkg/authn/kubernetes"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/client-go/kubernetes"
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
// kubelet skips them. Errors name objects, never their contents.
func (k *PodKeychains) Keychain(ctx context.Context, namespace, serviceAccount string, pullSecrets []string) (authn.Keychain, error) {
	kc, err := kauth.New(ctx, k.Client, kauth.Options{
		Namespace:          namespace,
		ServiceAccountName: serviceAccount,
		ImagePullSecrets:   pullSecrets,
	})
	if err != nil {
		// Parse errors of a dockerconfigjson could quote its bytes; say which pod's secrets.
		return nil, fmt.Errorf("reading pull credentials of namespace %s (serviceaccount %q, %d pull secrets): %s",
			namespace, serviceAccount, len(pullSecrets), redactedKind(err))
	}
	return kc, nil
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
