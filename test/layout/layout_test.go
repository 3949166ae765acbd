// Package layout holds the import rules docs/architecture.md promises, so a change that breaks
// the architecture fails a test instead of waiting for a reviewer to notice.
package layout

import (
	"encoding/json"
	"io"
	"os/exec"
	"path"
	"strings"
	"testing"
)

const module = "github.com/dns-tuner/dns-tuner/"

type pkg struct {
	ImportPath string
	Imports    []string
}

func packages(t *testing.T) []pkg {
	t.Helper()
	cmd := exec.Command("go", "list", "-json", module+"...")
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	var all []pkg
	dec := json.NewDecoder(out)
	for {
		var p pkg
		if err := dec.Decode(&p); err == io.EOF {
			break
		} else if err != nil {
			t.Fatal(err)
		}
		p.ImportPath = strings.TrimPrefix(p.ImportPath, module)
		var own []string
		for _, i := range p.Imports {
			if strings.HasPrefix(i, module) {
				own = append(own, strings.TrimPrefix(i, module))
			}
		}
		p.Imports = own
		all = append(all, p)
	}
	if err := cmd.Wait(); err != nil {
		t.Fatal(err)
	}
	if len(all) < 10 {
		t.Fatalf("go list found only %d packages", len(all))
	}
	return all
}

func under(p, dir string) bool { return p == dir || strings.HasPrefix(p, dir+"/") }

func TestImportRules(t *testing.T) {
	for _, p := range packages(t) {
		program := under(p.ImportPath, "cmd") || under(p.ImportPath, "hack") || under(p.ImportPath, "test")
		library := under(p.ImportPath, "internal")
		for _, imp := range p.Imports {
			switch {
			case imp == "webhook" && !program:
				t.Errorf("%s imports the admission adapter webhook: only programs and tests may", p.ImportPath)
			case library && under(imp, "internal/cli"):
				t.Errorf("library %s imports the CLI %s", p.ImportPath, imp)
			case under(p.ImportPath, imp) && !strings.HasSuffix(p.ImportPath, "test"):
				// test helpers (httptest-style: policytest, registrytest) may import their parent
				t.Errorf("%s imports its parent %s", p.ImportPath, imp)
			}
		}
	}
}

// Pairs the redesign separated: each left side must not depend on the right side at all.
func TestForbiddenEdges(t *testing.T) {
	forbidden := map[string][]string{
		"internal/registry": {"internal/inspect"},
		"internal/policy":   {"internal/metrics"},
		"internal/mutate":   {"internal/verdicts", "internal/inspect", "internal/registry", "internal/metrics"},
		"internal/libc":     {"internal/policy", "internal/mutate"},
	}
	for _, p := range packages(t) {
		for _, imp := range p.Imports {
			for _, bad := range forbidden[p.ImportPath] {
				if under(imp, bad) {
					t.Errorf("%s imports %s (%s)", p.ImportPath, imp, path.Base(bad))
				}
			}
		}
	}
}

// The decision packages are pure: what they import, directly or not, holds no API client,
// informer or manager, so a decision cannot reach the network and its tests need no cluster.
// What talks to the cluster lives beside them (internal/clusterwatch, internal/server).
func TestDecisionsNeedNoClient(t *testing.T) {
	pure := []string{"internal/mutate", "internal/cluster", "internal/policy", "internal/libc", "internal/resolvconf"}
	clients := []string{"k8s.io/client-go/", "sigs.k8s.io/controller-runtime"}
	for _, p := range pure {
		out, err := exec.Command("go", "list", "-deps", module+p).Output()
		if err != nil {
			t.Fatalf("go list -deps %s: %v", p, err)
		}
		for _, dep := range strings.Fields(string(out)) {
			for _, c := range clients {
				if strings.HasPrefix(dep, c) {
					t.Errorf("%s depends on %s", p, dep)
				}
			}
		}
	}
}
