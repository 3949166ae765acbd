package mutate

import (
	"strings"
	"testing"

	"github.com/dns-tuner/dns-tuner/internal/policy"
	"github.com/dns-tuner/dns-tuner/internal/policy/policytest"
)

func TestResolveMode(t *testing.T) {
	withOverride := policytest.Policy() // mode off, namespaces may override
	noOverride := policytest.Policy()
	noOverride.AllowNamespaceOverride = false
	noOverride.Mode = policy.Audit
	enforcing := policytest.Enforcing()

	tests := []struct {
		name      string
		p         *policy.Policy
		ns        string
		labels    map[string]string
		annots    map[string]string
		want      policy.Mode
		reason    string // substring
		warnMatch string // substring of a warning, "" for none
	}{
		{"unlabelled namespace gets the cluster default", withOverride, "shop", nil, nil, policy.Off, "cluster default mode off", ""},
		{"namespace opts in", withOverride, "shop", map[string]string{LabelMode: "enforce"}, nil, policy.Enforce, "namespace label", ""},
		{"namespace opts in to audit", withOverride, "shop", map[string]string{LabelMode: "audit"}, nil, policy.Audit, "namespace label", ""},
		{"label is case-insensitive", withOverride, "shop", map[string]string{LabelMode: "Enforce"}, nil, policy.Enforce, "namespace label", ""},
		{"namespace opts out of an enforcing cluster", enforcing, "shop", map[string]string{LabelMode: "off"}, nil, policy.Off, "namespace label", ""},
		{"excluded namespace ignores its label", withOverride, "kube-system", map[string]string{LabelMode: "enforce"}, nil, policy.Off, "excluded", ""},
		{"excluded namespace ignores pod annotation", enforcing, "kube-public", nil, map[string]string{AnnotationMode: "audit"}, policy.Off, "excluded", ""},
		{"invalid label falls back to default with a warning", enforcing, "shop", map[string]string{LabelMode: "yes"}, nil, policy.Enforce, "cluster default", "invalid mode"},
		{"label ignored when policy forbids overrides", noOverride, "shop", map[string]string{LabelMode: "enforce"}, nil, policy.Audit, "does not allow", ""},
		{"pod lowers enforce to audit", withOverride, "shop", map[string]string{LabelMode: "enforce"}, map[string]string{AnnotationMode: "audit"}, policy.Audit, "pod annotation", ""},
		{"pod opts out", withOverride, "shop", map[string]string{LabelMode: "enforce"}, map[string]string{AnnotationMode: "off"}, policy.Off, "pod annotation", ""},
		{"pod cannot raise audit to enforce", withOverride, "shop", map[string]string{LabelMode: "audit"}, map[string]string{AnnotationMode: "enforce"}, policy.Audit, "namespace label", "not raise"},
		{"pod cannot opt in to an off namespace", withOverride, "shop", nil, map[string]string{AnnotationMode: "enforce"}, policy.Off, "cluster default", "not raise"},
		{"pod audit in audit namespace is a no-op", withOverride, "shop", map[string]string{LabelMode: "audit"}, map[string]string{AnnotationMode: "audit"}, policy.Audit, "namespace label", ""},
		{"invalid pod annotation warns", withOverride, "shop", map[string]string{LabelMode: "enforce"}, map[string]string{AnnotationMode: "nope"}, policy.Enforce, "namespace label", "ignored"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := ResolveMode(tt.p, tt.ns, tt.labels, &Pod{Metadata: PodMeta{Annotations: tt.annots}})
			if got.Mode != tt.want {
				t.Errorf("mode = %s, want %s (reason %q)", got.Mode, tt.want, got.Reason)
			}
			if !strings.Contains(got.Reason, tt.reason) {
				t.Errorf("reason = %q, want it to mention %q", got.Reason, tt.reason)
			}
			warned := strings.Join(got.Warnings, "|")
			if tt.warnMatch == "" && warned != "" {
				t.Errorf("unexpected warnings %q", warned)
			}
			if tt.warnMatch != "" && !strings.Contains(warned, tt.warnMatch) {
				t.Errorf("warnings %q, want one mentioning %q", warned, tt.warnMatch)
			}
		})
	}
}

func TestParseLibcOverride(t *testing.T) {
	containers := []string{"app", "sidecar", "init"}
	tests := []struct {
		value   string
		want    map[string]string
		wantErr string
	}{
		{"", nil, ""},
		{"musl", map[string]string{"app": "musl", "sidecar": "musl", "init": "musl"}, ""},
		{"Alpine", map[string]string{"app": "musl", "sidecar": "musl", "init": "musl"}, ""},
		{"app=glibc, sidecar=musl", map[string]string{"app": "glibc", "sidecar": "musl"}, ""},
		{"app=go,*=glibc", map[string]string{"app": "go", "sidecar": "glibc", "init": "glibc"}, ""},
		{"windows", nil, "unknown libc"},
		{"typo=musl", nil, `no container named "typo"`},
		{"app=", nil, "container app"},
		{"=musl", nil, "not container=libc"},
	}
	for _, tt := range tests {
		t.Run(tt.value, func(t *testing.T) {
			got, err := ParseLibcOverride(tt.value, containers)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("err = %v, want %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if len(got) != len(tt.want) {
				t.Fatalf("got %v, want %v", got, tt.want)
			}
			for k, v := range tt.want {
				if string(got[k]) != v {
					t.Errorf("%s = %s, want %s", k, got[k], v)
				}
			}
		})
	}
}
