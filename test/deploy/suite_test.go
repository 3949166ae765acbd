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

	"github.com/dns-tuner/dns-tuner/hack/envtestenv"
)

const root = "../.."

var (
	cfg *rest.Config
	// k writes with strict field validation: an unknown or misspelt field is an error, as
	// `kubectl apply` reports it, not silently pruned.
	k client.Client
)

func TestMain(m *testing.M) { os.Exit(run(m)) }

func run(m *testing.M) int {
	for _, tool := range []string{"bin/helm", "bin/kustomize", "bin/crds"} {
		if _, err := os.Stat(filepath.Join(root, tool)); err != nil {
			fmt.Fprintf(os.Stderr, "deploy: %s missing: run hack/tools.sh (make tools)\n", tool)
			return 1
		}
	}
	dir, err := envtestenv.AssetsDir(root, false)
	if err != nil {
		fmt.Fprintln(os.Stderr, "deploy: locating envtest binaries:", err)
		return 1
	}
	env := &envtest.Environment{
		BinaryAssetsDirectory: dir,
		// cert-manager's and prometheus-operator's own CRDs, so their objects meet real schemas.
		CRDInstallOptions: envtest.CRDInstallOptions{Paths: []string{filepath.Join(root, "bin/crds")}, ErrorIfPathMissing: true},
	}
	if cfg, err = env.Start(); err != nil {
		fmt.Fprintln(os.Stderr, "deploy: starting envtest (hack/build-envtest.sh builds it):", err)
		return 1
	}
	defer func() { _ = env.Stop() }()
	scheme := runtime.NewScheme()
	_ = clientgoscheme.AddToScheme(scheme)
	c, err := client.New(cfg, client.Options{Scheme: scheme})
	if err != nil {
		fmt.Fprintln(os.Stderr, "deploy:", err)
		return 1
	}
	k = client.WithFieldValidation(c, metav1.FieldValidationStrict)
	return m.Run()
}
