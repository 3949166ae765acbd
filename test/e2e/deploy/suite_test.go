// Package deploy proves dns-tuner's deployment objects against a real kube-apiserver
// (envtest): every object the Helm chart and config/ render is accepted (server-side apply,
// strict field validation), the webhook configuration's selectors really keep kube-system and
// the release namespace away from the webhook, and with the chart's objects and self-managed
// certificates pods keep being mutated across certificate renewal, upgrade and restart.
//
// Needs bin/helm, bin/kustomize and bin/crds (hack/tools.sh) and the envtest control plane
// (hack/build-envtest.sh).
package deploy

import (
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"testing"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/envtest"

	"github.com/dns-tuner/dns-tuner/test/e2e/envtestenv"
)

const root = "../../.."

var (
	cfg *rest.Config
	// k writes with strict field validation: an unknown or misspelt field is an error, as
	// `kubectl apply` reports it, not silently pruned.
	k client.Client
)

func TestMain(m *testing.M) {
	flag.Parse()
	for _, tool := range []string{"bin/helm", "bin/kustomize", "bin/crds"} {
		if _, err := os.Stat(filepath.Join(root, tool)); err != nil && !testing.Short() {
			fmt.Fprintf(os.Stderr, "deploy: %s missing: run hack/tools.sh (make tools)\n", tool)
			os.Exit(1)
		}
	}
	env := &envtest.Environment{
		// cert-manager's and prometheus-operator's own CRDs, so their objects meet real schemas.
		CRDInstallOptions: envtest.CRDInstallOptions{Paths: []string{filepath.Join(root, "bin/crds")}, ErrorIfPathMissing: true},
	}
	os.Exit(envtestenv.Main(m, "deploy", env, func(c *rest.Config, _ func(func())) error {
		cfg = c
		scheme := runtime.NewScheme()
		if err := clientgoscheme.AddToScheme(scheme); err != nil {
			return err
		}
		cl, err := client.New(cfg, client.Options{Scheme: scheme})
		if err != nil {
			return err
		}
		k = client.WithFieldValidation(cl, metav1.FieldValidationStrict)
		return nil
	}))
}
