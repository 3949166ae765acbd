package policy

import (
	"context"
	"os"
	"path/filepath"
	"strings"
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
		{name: "empty file keeps defaults", yaml: "", check: func(t *testing.T, p *Policy) {
			if p.Mode != Off || len(p.Profile(libc.GLibc).Inject) != 3 {
				t.Errorf("defaults lost: %+v", p)
			}
		}},
		{name: "mode and one profile", yaml: "mode: audit\nprofiles:\n  musl:\n    inject: [{name: timeout, value: \"1\"}]\n", check: func(t *testing.T, p *Policy) {
			if p.Mode != Audit {
				t.Errorf("mode = %s", p.Mode)
			}
			if got := p.Profile(libc.Musl).Inject; len(got) != 1 || *got[0].Value != "1" {
				t.Errorf("musl profile = %+v", got)
			}
			if len(p.Profile(libc.GLibc).Inject) != 3 {
				t.Errorf("glibc profile not kept from the default")
			}
		}},
		{name: "durations", yaml: "inspection:\n  budget: 500ms\n", check: func(t *testing.T, p *Policy) {
			if p.Inspection.Budget.Duration != 500*time.Millisecond {
				t.Errorf("budget = %s", p.Inspection.Budget)
			}
		}},
		{name: "bad mode", yaml: "mode: on\n", wantErr: "invalid mode"},
		{name: "unknown field", yaml: "mood: enforce\n", wantErr: "unknown field"},
		{name: "bad libc", yaml: "profiles:\n  windows: {inject: []}\n", wantErr: "unknown libc"},
		{name: "duplicate option", yaml: "profiles:\n  glibc:\n    inject: [{name: rotate}, {name: rotate}]\n", wantErr: "listed twice"},
		{name: "option name with colon", yaml: "profiles:\n  glibc:\n    inject: [{name: \"timeout:2\"}]\n", wantErr: "invalid option name"},
		{name: "ndots out of range", yaml: "ndots: \"20\"\n", wantErr: "ndots"},
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

func TestFileReloadKeepsLastGoodPolicy(t *testing.T) {
	path := filepath.Join(t.TempDir(), "policy.yaml")
	write := func(s string) {
		if err := os.WriteFile(path, []byte(s), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	write("mode: audit\n")
	f := &File{Path: path, Interval: 10 * time.Millisecond, AlwaysExcluded: []string{"dns-tuner-system"}, Log: logr.Discard()}
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
	write("mode: [broken\n")
	time.Sleep(50 * time.Millisecond)
	if f.Current().Mode != Enforce {
		t.Fatalf("a broken file replaced the policy: %s", f.Current().Mode)
	}
	write("mode: \"off\"\n")
	waitFor(t, func() bool { return f.Current().Mode == Off })
	if !f.Current().Excluded("dns-tuner-system") {
		t.Error("own namespace no longer excluded after reload")
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
