package admission

import (
	"bytes"
	"context"
	"path/filepath"
	"strings"
	"testing"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/tools/clientcmd"
	clientcmdapi "k8s.io/client-go/tools/clientcmd/api"

	"github.com/dns-tuner/dns-tuner/internal/cli"
	"github.com/dns-tuner/dns-tuner/internal/mutate"
)

// TestExplainLivePod runs `dns-tuner explain --namespace --name` against a pod the API server
// admitted: it reads the pod and its namespace's label through a kubeconfig.
func TestExplainLivePod(t *testing.T) {
	ensureNamespace(t, "e2e-explain", map[string]string{mutate.LabelMode: "audit"})
	p := newPod("explained", sidecar, libcAnnotation("app=glibc,sidecar=musl"))
	if _, err := clientset.CoreV1().Pods("e2e-explain").Create(context.Background(), p, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	kc := clientcmdapi.NewConfig()
	kc.Clusters["e2e"] = &clientcmdapi.Cluster{Server: cfg.Host, CertificateAuthorityData: cfg.CAData}
	kc.AuthInfos["e2e"] = &clientcmdapi.AuthInfo{ClientCertificateData: cfg.CertData, ClientKeyData: cfg.KeyData, Token: cfg.BearerToken}
	kc.Contexts["e2e"] = &clientcmdapi.Context{Cluster: "e2e", AuthInfo: "e2e"}
	kc.CurrentContext = "e2e"
	path := filepath.Join(t.TempDir(), "kubeconfig")
	if err := clientcmd.WriteToFile(*kc, path); err != nil {
		t.Fatal(err)
	}

	var out, errOut bytes.Buffer
	err := cli.Execute(context.Background(), &cli.Explain{}, []string{"--kubeconfig", path, "--namespace", "e2e-explain", "--name", "explained", "--no-inspect"}, &out, &errOut)
	if err != nil {
		t.Fatalf("explain: %v\n%s", err, errOut.String())
	}
	for _, want := range []string{
		"live pod", "Pod e2e-explain/explained",
		"applies here: audit — namespace label dns-tuner.io/mode=audit",
		"search e2e-explain.svc.cluster.local svc.cluster.local cluster.local",
		"sidecar (musl): reads ndots, timeout, attempts",
		"enforce: injected; adds single-request-reopen timeout:2 attempts:3",
	} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("explain output lacks %q:\n%s", want, out.String())
		}
	}
}
