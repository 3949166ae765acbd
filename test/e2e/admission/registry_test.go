package admission

import (
	"context"
	"slices"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/dns-tuner/dns-tuner/internal/inspect/imagetest"
	"github.com/dns-tuner/dns-tuner/internal/mutate"
)

// TestRegistryImages: pods whose images live in a real registry get the profile of the libc
// their entrypoint really uses, decided by inspecting the image at admission.
func TestRegistryImages(t *testing.T) {
	ensureNamespace(t, "e2e-registry", map[string]string{mutate.LabelMode: "enforce"})
	b := imagetest.NewBuilder(t)
	push := func(repo string, kind imagetest.Kind) string {
		return imagetest.Push(t, registryHost, repo+":1", b.Image(kind)).String()
	}
	glibc := push("web", imagetest.GlibcDynamic)
	musl := push("alpine", imagetest.MuslDynamic)
	goStatic := push("api", imagetest.GoStatic)
	script := push("script", imagetest.ScriptMusl)
	wrappers := push("wrappers", imagetest.Wrappers)        // ENTRYPOINT ["/tini","--"] CMD ["app"], a musl app
	shellExec := push("shell-exec", imagetest.ShellExec)    // sh -c "exec /opt/app/server --port 80", a glibc app
	wrapShell := push("wrap-shell", imagetest.WrapperShell) // dumb-init -- bash -c "... && exec gosu app server"
	staticGlibc := push("static-glibc", imagetest.GlibcStatic)

	tests := []struct {
		name       string
		images     []string
		command    []string
		args       []string
		env        []corev1.EnvVar
		workingDir string
		wantLibc   string
		wantOpts   []string
		wantWarn   string
		wantReason string // substring of dns-tuner.io/inspection
	}{
		{name: "glibc binary", images: []string{glibc}, wantLibc: "app=glibc", wantOpts: []string{"single-request-reopen", "timeout:2", "attempts:3"}},
		{name: "musl binary", images: []string{musl}, wantLibc: "app=musl", wantOpts: []string{"timeout:2", "attempts:10"}},
		{name: "static go", images: []string{goStatic}, wantLibc: "app=go"},
		{name: "shell entrypoint on busybox", images: []string{script}, wantLibc: "app=musl", wantOpts: []string{"timeout:2", "attempts:10"}},
		{name: "pod command overrides the entrypoint", images: []string{glibc}, command: []string{"/usr/local/bin/hello-static"}, wantLibc: "app=musl", wantOpts: []string{"timeout:2", "attempts:10"}},
		{
			name: "relative pod command found from the pod's workingDir", images: []string{glibc}, command: []string{"./hello-static"},
			workingDir: "/usr/local/bin", wantLibc: "app=musl", wantOpts: []string{"timeout:2", "attempts:10"},
		},
		// Issue 10: the process that resolves names decides, not the wrapper or shell before it.
		{name: "static tini in front of a musl app", images: []string{wrappers}, wantLibc: "app=musl", wantOpts: []string{"timeout:2", "attempts:10"}},
		{name: "image's sh -c exec of a glibc app", images: []string{shellExec}, wantLibc: "app=glibc", wantOpts: []string{"single-request-reopen", "timeout:2", "attempts:3"}},
		{name: "dumb-init, bash -c, gosu chain", images: []string{wrapShell}, wantLibc: "app=musl", wantOpts: []string{"timeout:2", "attempts:10"}},
		{
			name: "pod args: tini runs sh -c exec of a glibc app", images: []string{wrappers},
			args: []string{"sh", "-c", "exec /opt/glibc/server --port 80"}, wantLibc: "app=glibc", wantOpts: []string{"single-request-reopen", "timeout:2", "attempts:3"},
		},
		{
			name: "pod command: bare name found through the pod's own PATH", images: []string{wrappers}, command: []string{"server"},
			env: []corev1.EnvVar{{Name: "PATH", Value: "/opt/glibc:/usr/bin"}}, wantLibc: "app=glibc", wantOpts: []string{"single-request-reopen", "timeout:2", "attempts:3"},
		},
		{name: "statically linked glibc", images: []string{staticGlibc}, wantLibc: "app=glibc", wantOpts: []string{"single-request-reopen", "timeout:2", "attempts:3"}},
		{
			name: "glibc app with musl sidecar", images: []string{glibc, musl}, wantLibc: "app=glibc,sidecar=musl",
			wantOpts: []string{"single-request-reopen", "timeout:2", "attempts:3"}, wantWarn: `musl in container "sidecar"`,
		},
		{
			name: "loopback registry not allowed by policy", images: []string{"127.0.0.1:1/private/app:1"}, wantLibc: "app=unknown",
			wantReason: "loopback", wantWarn: "unknown",
		},
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			pod := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "reg-" + string(rune('a'+i))}}
			for j, img := range tt.images {
				pod.Spec.Containers = append(pod.Spec.Containers, corev1.Container{Name: []string{"app", "sidecar"}[j], Image: img})
			}
			pod.Spec.Containers[0].Command = tt.command
			pod.Spec.Containers[0].Args = tt.args
			pod.Spec.Containers[0].Env = tt.env
			pod.Spec.Containers[0].WorkingDir = tt.workingDir
			warnings.take()
			got, err := clientset.CoreV1().Pods("e2e-registry").Create(context.Background(), pod, metav1.CreateOptions{})
			if err != nil {
				t.Fatal(err)
			}
			warned := strings.Join(warnings.take(), "\n")
			if a := got.Annotations[mutate.AnnotationDetectedLibc]; a != tt.wantLibc {
				t.Errorf("detected-libc = %q, want %q (inspection: %q)", a, tt.wantLibc, got.Annotations[mutate.AnnotationInspectionState])
			}
			if o := options(got); !slices.Equal(o, tt.wantOpts) {
				t.Errorf("options = %q, want %q", o, tt.wantOpts)
			}
			if tt.wantWarn != "" && !strings.Contains(warned, tt.wantWarn) {
				t.Errorf("warnings %q, want one containing %q", warned, tt.wantWarn)
			}
			if r := got.Annotations[mutate.AnnotationInspectionState]; !strings.Contains(r, tt.wantReason) || (tt.wantReason == "" && r != "") {
				t.Errorf("inspection annotation = %q, want it to mention %q", r, tt.wantReason)
			}
		})
	}
}
