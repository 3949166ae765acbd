package deploy

import (
	"context"
	"reflect"
	"sort"
	"strings"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
)

type render struct {
	name string
	ns   string
	objs func(t *testing.T) []*unstructured.Unstructured
}

func renders() []render {
	helm := func(ns string, files ...string) func(*testing.T) []*unstructured.Unstructured {
		return func(t *testing.T) []*unstructured.Unstructured { return helmTemplate(t, ns, files) }
	}
	kust := func(dir string, comps ...string) func(*testing.T) []*unstructured.Unstructured {
		return func(t *testing.T) []*unstructured.Unstructured { return kustomizeBuild(t, dir, comps...) }
	}
	return []render{
		{"helm/defaults", releaseNS, helm(releaseNS)},
		{"helm/self-managed", releaseNS, helm(releaseNS, "ci/self-managed-values.yaml")},
		{"helm/cert-manager", releaseNS, helm(releaseNS, "ci/cert-manager-values.yaml")},
		{"helm/cert-manager-issuer", releaseNS, helm(releaseNS, "ci/cert-manager-issuer-values.yaml")},
		{"helm/provided", releaseNS, helm(releaseNS, "ci/provided-values.yaml")},
		{"helm/full", releaseNS, helm(releaseNS, "ci/full-values.yaml")},
		{"helm/other-namespace", "tuning", helm("tuning")},
		{"kustomize/default", releaseNS, kust("config/default")},
		{"kustomize/default+components", releaseNS, kust("config/default",
			"config/certmanager", "config/prometheus", "config/rbac/inspection", "config/rbac/cache-warming", "config/networkpolicy")},
		{"kustomize/samples", releaseNS, kust("config/samples")},
	}
}

// Every rendered object is accepted by a real kube-apiserver: server-side apply, dry-run,
// strict field validation, with cert-manager's and prometheus-operator's real CRDs.
func TestRenderedObjectsAreAccepted(t *testing.T) {
	ctx := context.Background()
	for _, r := range renders() {
		t.Run(r.name, func(t *testing.T) {
			objs := r.objs(t)
			ensureNamespace(ctx, t, r.ns, nil)
			// Namespaces are created for real: dry-run objects in them need them to exist.
			var namespaces, rest []*unstructured.Unstructured
			for _, o := range objs {
				if o.GetKind() == "Namespace" {
					namespaces = append(namespaces, o)
				} else {
					rest = append(rest, o)
				}
			}
			if err := apply(ctx, namespaces, "deploy-test", true); err != nil {
				t.Fatal(err)
			}
			if err := apply(ctx, rest, "deploy-test", false); err != nil {
				t.Fatalf("the API server rejected rendered objects:\n%v", err)
			}
			t.Logf("%d objects accepted", len(objs))
		})
	}
}

// The acceptance check above can fail: a misspelt field is rejected, not pruned.
func TestStrictValidationRejectsUnknownFields(t *testing.T) {
	objs := helmTemplate(t, releaseNS, nil)
	d := find(t, objs, "Deployment", release).DeepCopy()
	if err := unstructured.SetNestedField(d.Object, int64(2), "spec", "replica"); err != nil {
		t.Fatal(err)
	}
	ensureNamespace(context.Background(), t, releaseNS, nil)
	err := apply(context.Background(), []*unstructured.Unstructured{d}, "deploy-test", false)
	if err == nil || !strings.Contains(err.Error(), "replica") {
		t.Fatalf("want a strict-validation error naming spec.replica, got %v", err)
	}
}

// helm's defaults and config/default describe the same installation, and so do the chart's
// cert-manager mode and the certmanager component.
func TestChartAndKustomizeRenderTheSameObjects(t *testing.T) {
	cases := []struct {
		name      string
		helm      []*unstructured.Unstructured
		kustomize []*unstructured.Unstructured
	}{
		{name: "self-managed", helm: helmTemplate(t, releaseNS, nil), kustomize: kustomizeBuild(t, "config/default")},
		{name: "cert-manager", helm: helmTemplate(t, releaseNS, []string{"ci/cert-manager-values.yaml"}),
			kustomize: kustomizeBuild(t, "config/default", "config/certmanager")},
		{name: "inspection+warming+monitor", helm: helmTemplate(t, releaseNS, nil,
			"policy.inspection.enabled=true", "rbac.cacheWarming=true", "metrics.serviceMonitor.enabled=true"),
			kustomize: kustomizeBuild(t, "config/default", "config/rbac/inspection", "config/rbac/cache-warming", "config/prometheus")},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			h, kz := index(c.helm), index(c.kustomize)
			delete(kz, "Namespace//"+releaseNS) // helm install --create-namespace makes it
			if hk, kk := keys(h), keys(kz); !reflect.DeepEqual(hk, kk) {
				t.Fatalf("different objects:\nhelm:      %v\nkustomize: %v", hk, kk)
			}
			// What runs and what it may do must match; labels and comments may differ.
			fields := map[string][]string{
				"Deployment":                   {"spec", "template", "spec"},
				"Service":                      {"spec"},
				"PodDisruptionBudget":          {"spec"},
				"ClusterRole":                  {"rules"},
				"Role":                         {"rules"},
				"ClusterRoleBinding":           {"subjects"},
				"RoleBinding":                  {"subjects"},
				"MutatingWebhookConfiguration": {"webhooks"},
				"Certificate":                  {"spec"},
				"Issuer":                       {"spec"},
				"ServiceMonitor":               {"spec", "endpoints"},
				"Secret":                       {"type"},
			}
			for key, ho := range h {
				kind := strings.SplitN(key, "/", 2)[0]
				path := fields[kind]
				if path == nil {
					continue
				}
				hv, _, _ := unstructured.NestedFieldNoCopy(normalize(ho).Object, path...)
				kv, _, _ := unstructured.NestedFieldNoCopy(normalize(kz[key]).Object, path...)
				if !reflect.DeepEqual(hv, kv) {
					t.Errorf("%s %v differs:\nhelm:      %v\nkustomize: %v", key, path, hv, kv)
				}
			}
			hm, km := find(t, c.helm, "MutatingWebhookConfiguration", release), find(t, c.kustomize, "MutatingWebhookConfiguration", release)
			if a, b := hm.GetAnnotations()["cert-manager.io/inject-ca-from"], km.GetAnnotations()["cert-manager.io/inject-ca-from"]; a != b {
				t.Errorf("inject-ca-from: helm %q, kustomize %q", a, b)
			}
		})
	}
}

func index(objs []*unstructured.Unstructured) map[string]*unstructured.Unstructured {
	m := map[string]*unstructured.Unstructured{}
	for _, o := range objs {
		m[o.GetKind()+"/"+o.GetNamespace()+"/"+o.GetName()] = o
	}
	return m
}

func keys(m map[string]*unstructured.Unstructured) []string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

// normalize drops what legitimately differs between the renders (pod template labels added
// by helm) and sorts the namespace exclusion list, whose order carries no meaning.
func normalize(o *unstructured.Unstructured) *unstructured.Unstructured {
	o = o.DeepCopy()
	if o.GetKind() == "MutatingWebhookConfiguration" {
		hooks, _, _ := unstructured.NestedFieldNoCopy(o.Object, "webhooks")
		for _, h := range hooks.([]any) {
			exprs, _, _ := unstructured.NestedFieldNoCopy(h.(map[string]any), "namespaceSelector", "matchExpressions")
			for _, e := range exprs.([]any) {
				if vals, ok := e.(map[string]any)["values"].([]any); ok {
					sort.Slice(vals, func(i, j int) bool { return vals[i].(string) < vals[j].(string) })
				}
			}
		}
	}
	return o
}

// The pods the Deployment creates meet the restricted Pod Security Standard: the API server's
// PodSecurity admission accepts them in a namespace that enforces it.
func TestPodTemplateMeetsRestrictedPodSecurity(t *testing.T) {
	ctx := context.Background()
	const ns = "pss-restricted"
	ensureNamespace(ctx, t, ns, map[string]string{"pod-security.kubernetes.io/enforce": "restricted"})

	// Control: PodSecurity admission is active, so a pod without the settings is refused.
	bare := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "bare", Namespace: ns},
		Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "c", Image: "registry.k8s.io/pause:3.10"}}}}
	if err := k.Create(ctx, bare, client.DryRunAll); !apierrors.IsForbidden(err) {
		t.Fatalf("control pod without a security context: want Forbidden from PodSecurity, got %v", err)
	}

	for name, objs := range map[string][]*unstructured.Unstructured{
		"helm defaults":  helmTemplate(t, releaseNS, nil),
		"helm full":      helmTemplate(t, releaseNS, []string{"ci/full-values.yaml"}),
		"config/default": kustomizeBuild(t, "config/default"),
	} {
		d := &appsv1.Deployment{}
		if err := runtime.DefaultUnstructuredConverter.FromUnstructured(find(t, objs, "Deployment", release).Object, d); err != nil {
			t.Fatal(err)
		}
		pod := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "dns-tuner", Namespace: ns, Labels: d.Spec.Template.Labels},
			Spec: d.Spec.Template.Spec}
		pod.Spec.PriorityClassName = "" // the class need not exist here; it is not a security setting
		if err := k.Create(ctx, pod, client.DryRunAll); err != nil {
			t.Errorf("%s: pod template refused under restricted PodSecurity: %v", name, err)
		}
	}
}
