package cli

import (
	"flag"
	"fmt"
	"os"
	"strings"

	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
	ctrl "sigs.k8s.io/controller-runtime"

	"github.com/dns-tuner/dns-tuner/internal/policy"
)

// stringList is a repeatable string flag: each use appends.
type stringList struct{ dst *[]string }

func (l stringList) String() string {
	if l.dst == nil {
		return ""
	}
	return strings.Join(*l.dst, ",")
}
func (l stringList) Set(s string) error { *l.dst = append(*l.dst, s); return nil }

// bindInsecureRegistries is --insecure-registry, the same for every command that reaches
// registries.
func bindInsecureRegistries(fs *flag.FlagSet, dst *[]string) {
	fs.Var(stringList{dst}, "insecure-registry", "HOST[:PORT] of a registry reached over plain HTTP and exempt from the address check, so it may be on loopback or link-local addresses (repeatable; serve and explain add it to the policy's inspection.insecureRegistries).")
}

// bindKubeconfig is --kubeconfig, the same for every command that reaches the API server.
func bindKubeconfig(fs *flag.FlagSet, dst *string) {
	fs.StringVar(dst, "kubeconfig", "", "Path to a kubeconfig. Empty: $KUBECONFIG, then the in-cluster config, then ~/.kube/config.")
}

// restConfig loads the kubeconfig --kubeconfig names, or the first of controller-runtime's
// fallbacks that exists. It is the one kubeconfig loader of every command.
func restConfig(path string) (*rest.Config, error) {
	if path != "" {
		return clientcmd.BuildConfigFromFlags("", path)
	}
	return ctrl.GetConfig()
}

// policyFile is the policy a command decides with: the file at path (--config), or the
// embedded default when path is empty.
func policyFile(path string) (*policy.Policy, error) {
	if path == "" {
		return policy.Default(), nil
	}
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	p, err := policy.Parse(data)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return p, nil
}
