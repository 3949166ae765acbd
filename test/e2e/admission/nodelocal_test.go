package admission

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"

	"github.com/dns-tuner/dns-tuner/internal/mutate"
)

const (
	cacheIP   = "169.254.20.10"
	kubeDNSIP = "10.96.0.10"
)

// ownWebhook serves config/webhook's pods.dns-tuner.io from a second `serve` under its own
// policy, for the pods of namespace ns labelled with own only (the suite's webhook skips them:
// its objectSelector skips pods labelled as dns-tuner's own). It returns once the API server
// sends this namespace's pods to it.
func ownWebhook(t *testing.T, cs *kubernetes.Clientset, ns, policyYAML string, own map[string]string) {
	t.Helper()
	ctx := context.Background()
	ensureNamespace(t, ns, map[string]string{mutate.LabelMode: "enforce"})
	file := filepath.Join(t.TempDir(), "policy.yaml")
	if err := os.WriteFile(file, []byte(policyYAML), 0o600); err != nil {
		t.Fatal(err)
	}
	wh, port := copyWebhook(ctx, t, cs, ns+".pods.dns-tuner.io", ns)
	wh.ObjectSelector = &metav1.LabelSelector{MatchLabels: own}
	mwc := &admissionregistrationv1.MutatingWebhookConfiguration{
		ObjectMeta: metav1.ObjectMeta{Name: "dns-tuner-" + ns},
		Webhooks:   []admissionregistrationv1.MutatingWebhook{*wh},
	}
	if _, err := cs.AdmissionregistrationV1().MutatingWebhookConfigurations().Create(ctx, mwc, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = cs.AdmissionregistrationV1().MutatingWebhookConfigurations().Delete(ctx, mwc.Name, metav1.DeleteOptions{})
	})
	stop, err := startWebhookWith(port, file)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = stop() })
	deadline := time.Now().Add(30 * time.Second)
	for {
		p := newPod("", libcAnnotation("glibc"))
		p.GenerateName, p.Labels = "probe-", own
		got, err := cs.CoreV1().Pods(ns).Create(ctx, p, metav1.CreateOptions{DryRun: []string{metav1.DryRunAll}})
		if err == nil && got.Annotations[mutate.AnnotationStatus] != "" {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("this test's webhook never mutated its pods (last error %v)", err)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// TestNodeLocalDNS creates real pods under three policy forms — nodeLocalDNS off, on (musl
// gets the cache appended) and on with dnsPolicyNone [glibc] — for every dnsPolicy ×
// hostNetwork × libc, and checks what the API server stored: the cache only where the pod
// uses the cluster DNS, never past three nameservers, the None form with kubelet's search
// list, and a second pass through the webhook (what reinvocation does) adding nothing.
func TestNodeLocalDNS(t *testing.T) {
	ctx := context.Background()
	cs, rec := newClient(t)
	own := map[string]string{"app.kubernetes.io/name": "dns-tuner", "e2e.dns-tuner.io/case": "nodelocal"}
	forms := []struct{ name, policy string }{
		{"off", "nodeLocalDNS: {mode: \"off\", dnsPolicyNone: [glibc]}\n"},
		{"append", fmt.Sprintf("nodeLocalDNS: {mode: \"on\", address: %q}\n", cacheIP)},
		{"none", fmt.Sprintf("nodeLocalDNS: {mode: \"on\", address: %q, dnsPolicyNone: [glibc]}\nclusterDNS: %q\n", cacheIP, kubeDNSIP)},
	}
	policies := []corev1.DNSPolicy{"", corev1.DNSClusterFirst, corev1.DNSClusterFirstWithHostNet, corev1.DNSDefault, corev1.DNSNone}
	libcs := []string{"glibc", "musl", "go", "app=glibc,sidecar=musl"}
	for _, form := range forms {
		ns := "e2e-nodelocal-" + form.name
		ownWebhook(t, cs, ns, form.policy, own)
		rec.take()
		for _, dp := range policies {
			for _, host := range []bool{false, true} {
				for _, lc := range libcs {
					name := fmt.Sprintf("%s/%s/host=%t/%s", form.name, orWord(string(dp), "unset"), host, lc)
					t.Run(name, func(t *testing.T) {
						p := newPod("", libcAnnotation(lc))
						p.GenerateName, p.Labels = "nl-", own
						if strings.Contains(lc, "sidecar") {
							sidecar(p)
						}
						p.Spec.DNSPolicy, p.Spec.HostNetwork = dp, host
						if dp == corev1.DNSNone {
							p.Spec.DNSConfig = &corev1.PodDNSConfig{Nameservers: []string{"10.0.0.53"}}
						}
						got, err := cs.CoreV1().Pods(ns).Create(ctx, p, metav1.CreateOptions{})
						if err != nil {
							t.Fatalf("create: %v", err)
						}
						warns := rec.take()
						checkNodeLocal(t, got, warns, form.name, dp, host, lc, nil)
						reinvoke(t, cs, ns, got)
					})
				}
			}
		}
		// kubelet keeps three nameservers: with two of the pod's own there is no room for
		// the cache (append: cluster DNS + 2 + cache; None: cache + kube-dns + 2).
		for _, n := range []int{1, 2} {
			for _, lc := range []string{"musl", "glibc"} {
				t.Run(fmt.Sprintf("%s/limit/%d-own/%s", form.name, n, lc), func(t *testing.T) {
					p := newPod("", libcAnnotation(lc))
					p.GenerateName, p.Labels = "nl-", own
					user := []string{"192.0.2.1", "192.0.2.2"}[:n]
					p.Spec.DNSConfig = &corev1.PodDNSConfig{Nameservers: user, Searches: []string{"corp.example"}}
					got, err := cs.CoreV1().Pods(ns).Create(ctx, p, metav1.CreateOptions{})
					if err != nil {
						t.Fatalf("create: %v", err)
					}
					checkNodeLocal(t, got, rec.take(), form.name, "", false, lc, user)
					reinvoke(t, cs, ns, got)
				})
			}
		}
	}
}

// checkNodeLocal checks a stored pod against the rules, user the nameservers the pod set.
func checkNodeLocal(t *testing.T, got *corev1.Pod, warns []string, form string, dp corev1.DNSPolicy, host bool, lc string, user []string) {
	t.Helper()
	for _, w := range warns {
		if len(w) > 120 {
			t.Errorf("warning of %d bytes: %q", len(w), w)
		}
	}
	var ns, searches []string
	if got.Spec.DNSConfig != nil {
		ns, searches = got.Spec.DNSConfig.Nameservers, got.Spec.DNSConfig.Searches
	}
	clusterDNS := dp == corev1.DNSClusterFirstWithHostNet || (!host && (dp == "" || dp == corev1.DNSClusterFirst))
	glibc, musl := strings.Contains(lc, "glibc"), strings.Contains(lc, "musl")
	want, wantPolicy := "", dp
	if wantPolicy == "" {
		wantPolicy = corev1.DNSClusterFirst // the API server's default
	}
	switch {
	case !clusterDNS || form == "off":
	case form == "none" && glibc && len(user) < 2:
		want, wantPolicy = mutate.NodeLocalNone, corev1.DNSNone
	case musl && len(user) < 2:
		want = mutate.NodeLocalAppend
	}
	if got.Spec.DNSPolicy != wantPolicy {
		t.Errorf("dnsPolicy = %s, want %s", got.Spec.DNSPolicy, wantPolicy)
	}
	if len(ns) > 3 || (got.Spec.DNSPolicy != corev1.DNSNone && len(ns) > 2) {
		t.Errorf("kubelet keeps 3 nameservers; the pod lists %v under %s", ns, got.Spec.DNSPolicy)
	}
	note := got.Annotations[mutate.AnnotationNodeLocal]
	switch want {
	case "":
		if slices.Contains(ns, cacheIP) {
			t.Errorf("nameservers %v: the cache was added", ns)
		}
		if dp != corev1.DNSNone && !slices.Equal(ns, user) {
			t.Errorf("nameservers %v, want the pod's own %v", ns, user)
		}
	case mutate.NodeLocalAppend:
		if w := append(slices.Clone(user), cacheIP); !slices.Equal(ns, w) {
			t.Errorf("nameservers %v, want %v", ns, w)
		}
		if !strings.Contains(note, "in parallel") || !anyContains(warns, "NodeLocal DNSCache address "+cacheIP) {
			t.Errorf("annotation %q, warnings %q: want what was done and why", note, warns)
		}
	case mutate.NodeLocalNone:
		if w := append([]string{cacheIP, kubeDNSIP}, user...); !slices.Equal(ns, w) {
			t.Errorf("nameservers %v, want %v", ns, w)
		}
		kubelet := []string{got.Namespace + ".svc.cluster.local", "svc.cluster.local", "cluster.local"}
		if len(searches) < 3 || !slices.Equal(searches[:3], kubelet) {
			t.Errorf("searches %v, want kubelet's %v first", searches, kubelet)
		}
		if len(user) > 0 && !slices.Contains(searches, "corp.example") {
			t.Errorf("searches %v dropped the pod's corp.example", searches)
		}
		opts := options(got)
		for _, o := range []string{"ndots:5", "timeout:1"} {
			if !slices.Contains(opts, o) {
				t.Errorf("options %v lack %s", opts, o)
			}
		}
		if !strings.Contains(note, "first") || !anyContains(warns, "dnsPolicy None") {
			t.Errorf("annotation %q, warnings %q: want what was done and why", note, warns)
		}
	}
	if want != "" && strings.Contains(got.Annotations[mutate.AnnotationAdvice], "run NodeLocal DNSCache") {
		t.Errorf("advice tells the user to do what dns-tuner did: %q", got.Annotations[mutate.AnnotationAdvice])
	}
}

// reinvoke sends the stored pod through admission again (a dry-run create of the same
// object): dns-tuner must add nothing to its own result.
func reinvoke(t *testing.T, cs *kubernetes.Clientset, ns string, stored *corev1.Pod) {
	t.Helper()
	p := stored.DeepCopy()
	p.ObjectMeta = metav1.ObjectMeta{GenerateName: "again-", Labels: stored.Labels, Annotations: stored.Annotations}
	p.Spec.NodeName = ""
	again, err := cs.CoreV1().Pods(ns).Create(context.Background(), p, metav1.CreateOptions{DryRun: []string{metav1.DryRunAll}})
	if err != nil {
		t.Fatalf("second pass: %v", err)
	}
	if a, b := fmt.Sprint(stored.Spec.DNSPolicy, stored.Spec.DNSConfig), fmt.Sprint(again.Spec.DNSPolicy, again.Spec.DNSConfig); a != b {
		t.Errorf("second pass changed the pod's DNS:\n%s\n%s", a, b)
	}
	if !equalMaps(stored.Annotations, again.Annotations) {
		t.Errorf("second pass changed annotations:\n%v\n%v", stored.Annotations, again.Annotations)
	}
}

func anyContains(list []string, s string) bool {
	for _, x := range list {
		if strings.Contains(x, s) {
			return true
		}
	}
	return false
}

func equalMaps(a, b map[string]string) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if b[k] != v {
			return false
		}
	}
	return true
}

func orWord(s, w string) string {
	if s == "" {
		return w
	}
	return s
}
