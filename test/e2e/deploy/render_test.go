package deploy

import (
	"bytes"
	"context"
	"errors"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"testing"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	"sigs.k8s.io/controller-runtime/pkg/client"
)

const (
	release   = "dns-tuner"
	releaseNS = "dns-tuner-system"
)

// helmTemplate renders the chart as `helm template dns-tuner -n dns-tuner-system` would be
// installed, with the given values files (relative to the chart) and --set pairs.
func helmTemplate(t *testing.T, ns string, valuesFiles []string, set ...string) []*unstructured.Unstructured {
	t.Helper()
	chart := filepath.Join(root, "charts/dns-tuner")
	args := []string{"template", release, chart, "--namespace", ns}
	for _, f := range valuesFiles {
		args = append(args, "-f", filepath.Join(chart, f))
	}
	for _, s := range set {
		args = append(args, "--set", s)
	}
	return decode(t, command(t, filepath.Join(root, "bin/helm"), args...))
}

// kustomizeBuild renders a kustomization; components are added on top of dir.
func kustomizeBuild(t *testing.T, dir string, components ...string) []*unstructured.Unstructured {
	t.Helper()
	abs, err := filepath.Abs(filepath.Join(root, dir))
	if err != nil {
		t.Fatal(err)
	}
	if len(components) > 0 {
		tmp := t.TempDir()
		rel := func(p string) string {
			a, _ := filepath.Abs(filepath.Join(root, p))
			r, err := filepath.Rel(tmp, a)
			if err != nil {
				t.Fatal(err)
			}
			return r
		}
		y := "apiVersion: kustomize.config.k8s.io/v1beta1\nkind: Kustomization\nresources: [" + rel(dir) + "]\ncomponents:\n"
		for _, c := range components {
			y += "  - " + rel(c) + "\n"
		}
		if err := os.WriteFile(filepath.Join(tmp, "kustomization.yaml"), []byte(y), 0o644); err != nil {
			t.Fatal(err)
		}
		abs = tmp
	}
	return decode(t, command(t, filepath.Join(root, "bin/kustomize"), "build", abs))
}

func command(t *testing.T, name string, args ...string) []byte {
	t.Helper()
	var stderr bytes.Buffer
	cmd := exec.Command(name, args...)
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("%s %v: %v\n%s", filepath.Base(name), args, err, stderr.String())
	}
	return out
}

func decode(t *testing.T, data []byte) []*unstructured.Unstructured {
	t.Helper()
	var objs []*unstructured.Unstructured
	d := utilyaml.NewYAMLOrJSONDecoder(bytes.NewReader(data), 4096)
	for {
		u := &unstructured.Unstructured{}
		if err := d.Decode(&u.Object); err != nil {
			if errors.Is(err, io.EOF) {
				break
			}
			t.Fatalf("decoding rendered YAML: %v", err)
		}
		if len(u.Object) == 0 {
			continue
		}
		objs = append(objs, u)
	}
	if len(objs) == 0 {
		t.Fatal("nothing rendered")
	}
	return objs
}

func find(t *testing.T, objs []*unstructured.Unstructured, kind, name string) *unstructured.Unstructured {
	t.Helper()
	for _, o := range objs {
		if o.GetKind() == kind && o.GetName() == name {
			return o
		}
	}
	t.Fatalf("no %s %s rendered", kind, name)
	return nil
}

// apply server-side applies objs as field manager owner, dry-run unless real.
func apply(ctx context.Context, objs []*unstructured.Unstructured, owner string, real bool) error {
	opts := []client.ApplyOption{client.FieldOwner(owner), client.ForceOwnership}
	if !real {
		opts = append(opts, client.DryRunAll)
	}
	var errs []error
	for _, o := range objs {
		if err := k.Apply(ctx, client.ApplyConfigurationFromUnstructured(o.DeepCopy()), opts...); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

func ensureNamespace(ctx context.Context, t *testing.T, name string, labels map[string]string) {
	t.Helper()
	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: name, Labels: labels}}
	err := k.Create(ctx, ns)
	if apierrors.IsAlreadyExists(err) {
		cur := &corev1.Namespace{}
		if err := k.Get(ctx, client.ObjectKey{Name: name}, cur); err != nil {
			t.Fatal(err)
		}
		if cur.Labels == nil {
			cur.Labels = map[string]string{}
		}
		for k2, v := range labels {
			cur.Labels[k2] = v
		}
		err = k.Update(ctx, cur)
	}
	if err != nil {
		t.Fatalf("namespace %s: %v", name, err)
	}
}
