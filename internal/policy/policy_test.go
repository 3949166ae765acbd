package policy

import (
	"context"
	"errors"
	"go/build"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/go-logr/logr"

	"github.com/dns-tuner/dns-tuner/internal/libc"
)

func TestDefault(t *testing.T) {
	p := Default()
	if p.Mode != Off {
		t.Errorf("default mode = %s; namespaces must opt in", p.Mode)
	}
	for _, ns := range []string{"kube-system", "kube-public", "kube-node-lease"} {
		if !p.Excluded(ns) {
			t.Errorf("%s is not excluded by default", ns)
		}
	}
	for _, l := range libc.All {
		if _, ok := p.Profiles[l]; !ok {
			t.Errorf("no default profile for %s", l)
		}
	}
}

func TestParse(t *testing.T) {
	tests := []struct {
		name, yaml string
		wantErr    string
		check      func(*testing.T, *Policy)
	}{
		{name: "explicit empty mapping keeps defaults", yaml: "{}\n", check: func(t *testing.T, p *Policy) {
			if g := p.Profile(libc.GLibc); p.Mode != Off || p.RaceFix != RaceFixAuto || len(g.FastRetry()) != 2 || len(g.RaceFixOptions()) != 1 {
				t.Errorf("defaults lost: %+v", p)
			}
		}},
		{name: "comments around settings", yaml: "# cluster policy\nmode: enforce # on\n", check: func(t *testing.T, p *Policy) {
			if p.Mode != Enforce {
				t.Errorf("mode = %s", p.Mode)
			}
		}},
		// A reload can read a file while it is being written: none of these may mean "the
		// default" (mode off), which would switch dns-tuner off for the cluster.
		{name: "empty", yaml: "", wantErr: "policy is empty"},
		{name: "white space only", yaml: " \n\t\n", wantErr: "policy is empty"},
		{name: "comments only", yaml: "# dns-tuner cluster policy\n# mode: enforce\n", wantErr: "policy is empty"},
		{name: "document marker only", yaml: "---\n", wantErr: "policy is empty"},
		{name: "null", yaml: "null\n", wantErr: "policy is empty"},
		{name: "truncated in a flow list", yaml: "mode: audit\nexcludedNamespaces: [kube-sys", wantErr: "parsing policy"},
		{name: "truncated in a quoted value", yaml: "mode: \"enf", wantErr: "parsing policy"},
		{name: "truncated after a key", yaml: "mode: enforce\nprofiles:\n  musl:\n    inject: [{name: timeout, val", wantErr: "parsing policy"},
		{name: "truncated before a value", yaml: "excludedNamespaces: [a]\nmode: ", wantErr: "mode has no value"},
		{name: "key without a value", yaml: "excludedNamespaces:\n", wantErr: "excludedNamespaces has no value"},
		{name: "scalar, not a mapping", yaml: "mode\n", wantErr: "parsing policy"},
		{name: "list, not a mapping", yaml: "- mode: audit\n", wantErr: "parsing policy"},
		{name: "binary", yaml: "\x00\x01\xff\xfe", wantErr: "parsing policy"},
		{name: "mode and one profile", yaml: "mode: audit\nprofiles:\n  musl:\n    inject: [{name: timeout, value: \"1\"}]\n", check: func(t *testing.T, p *Policy) {
			if p.Mode != Audit {
				t.Errorf("mode = %s", p.Mode)
			}
			if got := p.Profile(libc.Musl).Inject; len(got) != 1 || *got[0].Value != "1" {
				t.Errorf("musl profile = %+v", got)
			}
			if g := p.Profile(libc.GLibc); len(g.Inject) != 2 || len(g.RaceFix) != 1 {
				t.Errorf("glibc profile not kept from the default")
			}
		}},
		{name: "durations", yaml: "inspection:\n  budget: 500ms\n", check: func(t *testing.T, p *Policy) {
			if p.Inspection.Budget.Duration != 500*time.Millisecond {
				t.Errorf("budget = %s", p.Inspection.Budget)
			}
		}},
		{name: "bad mode", yaml: "mode: on\n", wantErr: "invalid mode"},
		{name: "raceFix never", yaml: "raceFix: never\n", check: func(t *testing.T, p *Policy) {
			if p.RaceFix != RaceFixNever {
				t.Errorf("raceFix = %s", p.RaceFix)
			}
		}},
		{name: "bad raceFix", yaml: "raceFix: sometimes\n", wantErr: "raceFix"},
		{name: "serviceProxy", yaml: "serviceProxy: nftables\n", check: func(t *testing.T, p *Policy) {
			if p.ServiceProxy != "nftables" {
				t.Errorf("serviceProxy = %q", p.ServiceProxy)
			}
		}},
		{name: "bad serviceProxy", yaml: "serviceProxy: ebpf\n", wantErr: "serviceProxy"},
		// Profiles written before raceFix list single-request-reopen under inject: it is
		// still the race fix, gated by raceFix, and the rest is still injected everywhere.
		{name: "race fix under inject", yaml: "profiles:\n  glibc:\n    inject: [{name: single-request-reopen}, {name: timeout, value: \"1\"}]\n", check: func(t *testing.T, p *Policy) {
			g := p.Profile(libc.GLibc)
			if rf := g.RaceFixOptions(); len(rf) != 1 || rf[0].Name != "single-request-reopen" {
				t.Errorf("race fix = %+v", rf)
			}
			if fr := g.FastRetry(); len(fr) != 1 || fr[0].Name != "timeout" {
				t.Errorf("fast retry = %+v", fr)
			}
		}},
		{name: "option under inject and raceFix", yaml: "profiles:\n  glibc:\n    inject: [{name: single-request}]\n    raceFix: [{name: single-request}]\n", wantErr: "listed twice"},
		{name: "unknown field", yaml: "mood: enforce\n", wantErr: "unknown field"},
		{name: "bad libc", yaml: "profiles:\n  windows: {inject: []}\n", wantErr: "unknown libc"},
		{name: "duplicate option", yaml: "profiles:\n  glibc:\n    inject: [{name: rotate}, {name: rotate}]\n", wantErr: "listed twice"},
		{name: "option name with colon", yaml: "profiles:\n  glibc:\n    inject: [{name: \"timeout:2\"}]\n", wantErr: "invalid option name"},
		{name: "ndots out of range", yaml: "ndots: \"20\"\n", wantErr: "ndots"},
		{name: "nodeLocalDNS default off", yaml: "{}\n", check: func(t *testing.T, p *Policy) {
			if n := p.NodeLocalDNS; n.Mode != NodeLocalOff || n.Address != "" || len(n.DNSPolicyNone) != 0 {
				t.Errorf("nodeLocalDNS = %+v, want off", n)
			}
		}},
		// Unquoted on/off are YAML 1.1 booleans; an operator writing them means the mode.
		{name: "nodeLocalDNS unquoted on", yaml: "nodeLocalDNS:\n  mode: on\n  address: 169.254.20.10\n  dnsPolicyNone: [glibc]\n", check: func(t *testing.T, p *Policy) {
			if n := p.NodeLocalDNS; n.Mode != NodeLocalOn || n.Address != "169.254.20.10" || len(n.DNSPolicyNone) != 1 || n.DNSPolicyNone[0] != libc.GLibc {
				t.Errorf("nodeLocalDNS = %+v", n)
			}
		}},
		{name: "nodeLocalDNS unquoted off", yaml: "nodeLocalDNS: {mode: off}\n", check: func(t *testing.T, p *Policy) {
			if p.NodeLocalDNS.Mode != NodeLocalOff {
				t.Errorf("mode = %q", p.NodeLocalDNS.Mode)
			}
		}},
		{name: "nodeLocalDNS auto", yaml: "nodeLocalDNS: {mode: auto}\nclusterDNS: 10.96.0.10\nclusterDomain: corp.local\n", check: func(t *testing.T, p *Policy) {
			if p.NodeLocalDNS.Mode != NodeLocalAuto || p.ClusterDNS != "10.96.0.10" || p.ClusterDomain != "corp.local" {
				t.Errorf("policy = %+v", p)
			}
		}},
		{name: "nodeLocalDNS bad mode", yaml: "nodeLocalDNS: {mode: always}\n", wantErr: "nodeLocalDNS.mode"},
		{name: "nodeLocalDNS bad address", yaml: "nodeLocalDNS: {mode: on, address: node-cache}\n", wantErr: "nodeLocalDNS.address"},
		{name: "nodeLocalDNS bad libc", yaml: "nodeLocalDNS: {dnsPolicyNone: [bionic]}\n", wantErr: "nodeLocalDNS.dnsPolicyNone"},
		{name: "nodeLocalDNS libc twice", yaml: "nodeLocalDNS: {dnsPolicyNone: [glibc, glibc]}\n", wantErr: "listed twice"},
		{name: "nodeLocalDNS unknown field", yaml: "nodeLocalDNS: {enabled: true}\n", wantErr: "unknown field"},
		{name: "bad clusterDNS", yaml: "clusterDNS: kube-dns\n", wantErr: "clusterDNS"},
		{name: "bad clusterDomain", yaml: "clusterDomain: .cluster.local\n", wantErr: "clusterDomain"},
		{name: "bad duration", yaml: "inspection:\n  budget: soon\n", wantErr: "invalid duration"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p, err := Parse([]byte(tt.yaml))
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("err = %v, want %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			tt.check(t, p)
		})
	}
}

func TestParseErrorIsErrEmpty(t *testing.T) {
	if _, err := Parse([]byte("\n# nothing yet\n")); !errors.Is(err, ErrEmpty) {
		t.Fatalf("err = %v, want ErrEmpty", err)
	}
}

// reloads records what a File reports through OnReload.
type reloads struct {
	mu   sync.Mutex
	errs []error
}

func (r *reloads) record(err error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.errs = append(r.errs, err)
}

// counts returns how many reloads succeeded and failed.
func (r *reloads) counts() (ok, failed int) {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, err := range r.errs {
		if err == nil {
			ok++
		} else {
			failed++
		}
	}
	return ok, failed
}

func TestFileLoad(t *testing.T) {
	dir := t.TempDir()
	write := func(name, s string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(s), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	tests := []struct {
		name, path string
		wantMode   Mode
		wantErr    string
	}{
		{name: "no file configured: the embedded default", path: "", wantMode: Off},
		{name: "a file", path: write("audit.yaml", "mode: audit\n"), wantMode: Audit},
		{name: "an empty file is not the default", path: write("empty.yaml", ""), wantErr: "policy is empty"},
		{name: "a missing file", path: filepath.Join(dir, "missing.yaml"), wantErr: "no such file"},
		{name: "an unparsable file", path: write("bad.yaml", "mode: [audit\n"), wantErr: "parsing policy"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var r reloads
			f := &File{Path: tt.path, AlwaysExcluded: []string{"dns-tuner-system"}, Log: logr.Discard(), OnReload: r.record}
			err := f.Load()
			ok, failed := r.counts()
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("err = %v, want %q", err, tt.wantErr)
				}
				if f.Current() != nil || ok != 0 || failed != 1 {
					t.Errorf("after a failed load: policy %v, reported %d ok, %d failed; want none, 0, 1", f.Current(), ok, failed)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if f.Current().Mode != tt.wantMode || !f.Current().Excluded("dns-tuner-system") {
				t.Errorf("loaded mode %s, excluded %v", f.Current().Mode, f.Current().ExcludedNamespaces)
			}
			if ok != 1 || failed != 0 {
				t.Errorf("reported %d ok, %d failed; want 1, 0", ok, failed)
			}
		})
	}
}

// TestFileReloadHalfWritten polls by hand what a reload can read while a writer rewrites the
// file in place: the policy in force must never pass through it.
func TestFileReloadHalfWritten(t *testing.T) {
	const good, next = "mode: enforce\n", "excludedNamespaces: [team-a]\nmode: audit\n"
	tests := []struct {
		name, mid string
		failed    bool // reported as a failed reload when read twice
	}{
		{name: "truncated to nothing", mid: "", failed: true},
		{name: "cut inside a value", mid: "excludedNamespaces: [tea", failed: true},
		{name: "cut after a whole line (valid, but not the file meant)", mid: "excludedNamespaces: [team-a]\n"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "policy.yaml")
			write := func(s string) {
				if err := os.WriteFile(path, []byte(s), 0o600); err != nil {
					t.Fatal(err)
				}
			}
			write(good)
			var r reloads
			f := &File{Path: path, Log: logr.Discard(), OnReload: r.record}
			if err := f.Load(); err != nil {
				t.Fatal(err)
			}
			write(tt.mid)
			_ = f.poll()
			if got := f.Current().Mode; got != Enforce {
				t.Fatalf("one read of a half-written file put mode %s in force", got)
			}
			write(next)
			_ = f.poll()
			_ = f.poll()
			if got := f.Current(); got.Mode != Audit || !got.Excluded("team-a") {
				t.Fatalf("the finished file was not put in force: mode %s, excluded %v", got.Mode, got.ExcludedNamespaces)
			}
			if ok, failed := r.counts(); ok != 2 || failed != 0 {
				t.Errorf("reported %d ok, %d failed; want 2, 0", ok, failed)
			}

			// A file that stays half-written is read the same twice: an error, never the default.
			write(tt.mid)
			err1, err2 := f.poll(), f.poll()
			if got := f.Current().Mode; tt.failed && got != Audit {
				t.Fatalf("a half-written file put mode %s in force", got)
			}
			if _, failed := r.counts(); tt.failed && (err1 != nil || err2 == nil || failed != 1) {
				t.Errorf("polls returned %v, %v and reported %d failures; want nil, an error, 1", err1, err2, failed)
			}
		})
	}
}

func TestFileReloadKeepsLastGoodPolicy(t *testing.T) {
	path := filepath.Join(t.TempDir(), "policy.yaml")
	write := func(s string) {
		if err := os.WriteFile(path, []byte(s), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	write("mode: audit\n")
	var r reloads
	f := &File{Path: path, Interval: 10 * time.Millisecond, AlwaysExcluded: []string{"dns-tuner-system"}, Log: logr.Discard(), OnReload: r.record}
	if err := f.Load(); err != nil {
		t.Fatal(err)
	}
	if f.Current().Mode != Audit || !f.Current().Excluded("dns-tuner-system") {
		t.Fatalf("loaded %+v", f.Current())
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go func() { _ = f.Start(ctx) }()

	write("mode: enforce\n")
	waitFor(t, func() bool { return f.Current().Mode == Enforce })
	for _, bad := range []string{"mode: [broken\n", "", "# emptied\n"} {
		write(bad)
		waitFor(t, func() bool { _, failed := r.counts(); return failed > 0 })
		if f.Current().Mode != Enforce {
			t.Fatalf("file %q replaced the policy: %s", bad, f.Current().Mode)
		}
		r.mu.Lock()
		r.errs = nil
		r.mu.Unlock()
	}
	write("mode: \"off\"\n")
	waitFor(t, func() bool { return f.Current().Mode == Off })
	if !f.Current().Excluded("dns-tuner-system") {
		t.Error("own namespace no longer excluded after reload")
	}
}

// kubelet writes a ConfigMap volume as AtomicWriter does: the file is a symlink through
// ..data, and an update writes a new timestamped directory and renames a new ..data over the
// old one.
func TestFileReloadConfigMapSwap(t *testing.T) {
	dir := t.TempDir()
	version := func(name, content string) {
		if err := os.Mkdir(filepath.Join(dir, name), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, name, "policy.yaml"), []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
		if err := os.Symlink(name, filepath.Join(dir, "..data_tmp")); err != nil {
			t.Fatal(err)
		}
		if err := os.Rename(filepath.Join(dir, "..data_tmp"), filepath.Join(dir, "..data")); err != nil {
			t.Fatal(err)
		}
	}
	version("..2026_11_26_10_00_00.1", "mode: audit\n")
	path := filepath.Join(dir, "policy.yaml")
	if err := os.Symlink("..data/policy.yaml", path); err != nil {
		t.Fatal(err)
	}
	var r reloads
	f := &File{Path: path, Interval: 10 * time.Millisecond, Log: logr.Discard(), OnReload: r.record}
	if err := f.Load(); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go func() { _ = f.Start(ctx) }()

	version("..2026_11_26_10_01_00.2", "mode: enforce\n")
	if err := os.RemoveAll(filepath.Join(dir, "..2026_11_26_10_00_00.1")); err != nil {
		t.Fatal(err)
	}
	waitFor(t, func() bool { return f.Current().Mode == Enforce })
	if ok, failed := r.counts(); ok != 2 || failed != 0 {
		t.Errorf("reported %d ok, %d failed; want 2, 0", ok, failed)
	}
}

// The policy package reports reloads through File.OnReload; the server owns the metric.
func TestPolicyDoesNotImportMetrics(t *testing.T) {
	pkg, err := build.ImportDir(".", 0)
	if err != nil {
		t.Fatal(err)
	}
	for _, imp := range pkg.Imports {
		if strings.HasSuffix(imp, "/internal/metrics") || strings.Contains(imp, "prometheus") {
			t.Errorf("policy imports %s", imp)
		}
	}
}

func waitFor(t *testing.T, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatal("condition not met within 5s")
		}
		time.Sleep(5 * time.Millisecond)
	}
}
