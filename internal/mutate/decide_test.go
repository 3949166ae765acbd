package mutate

import (
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	jsonpatch "github.com/evanphx/json-patch/v5"
	corev1 "k8s.io/api/core/v1"

	"github.com/dns-tuner/dns-tuner/internal/libc"
	"github.com/dns-tuner/dns-tuner/internal/policy"
	"github.com/dns-tuner/dns-tuner/internal/policy/policytest"
)

var update = flag.Bool("update", false, "rewrite golden files in testdata/")

func ptr(s string) *string { return &s }

func pod(mut ...func(*Pod)) *Pod {
	p := &Pod{}
	p.Metadata.Namespace = "shop"
	p.Metadata.GenerateName = "web-"
	p.Spec.Containers = []PodContainer{{Name: "app", Image: "registry.example/app:1"}}
	for _, m := range mut {
		m(p)
	}
	return p
}

func containers(pairs ...string) []Container {
	var out []Container
	for i := 0; i+1 < len(pairs); i += 2 {
		out = append(out, Container{Name: pairs[i], Verdict: libc.Verdict{Libc: libc.Libc(pairs[i+1]), Source: libc.SourceEntrypoint}})
	}
	return out
}

func withSidecar(p *Pod) {
	p.Spec.Containers = append(p.Spec.Containers, PodContainer{Name: "sidecar", Image: "registry.example/proxy:1"})
}

// TestDecide covers every dnsPolicy, each libc, mixed pods, user-set options and
// reinvocation. Patches and warnings are golden files: go test ./internal/mutate -update.
func TestDecide(t *testing.T) {
	def := policytest.Policy()
	ndots := policytest.Policy()
	ndots.Ndots = "2"
	enforce := ModeDecision{Mode: policy.Enforce, Reason: "namespace label dns-tuner.io/mode=enforce"}
	audit := ModeDecision{Mode: policy.Audit, Reason: "namespace label dns-tuner.io/mode=audit"}

	tests := []struct {
		name       string
		p          *policy.Policy
		pod        *Pod
		mode       ModeDecision
		containers []Container
		status     string
		inject     string // comma-joined injected options
	}{
		{"glibc-clusterfirst", def, pod(), enforce, containers("app", "glibc"), StatusInjected, "single-request-reopen,timeout:2,attempts:3"},
		{"musl-clusterfirst", def, pod(), enforce, containers("app", "musl"), StatusInjected, "timeout:2,attempts:10"},
		{"go-static-needs-nothing", def, pod(), enforce, containers("app", "go"), StatusUnchanged, ""},
		{"unknown-warns", def, pod(), enforce, []Container{{Name: "app", Verdict: libc.Verdict{Libc: libc.Unknown, Reason: "registry unreachable"}}}, StatusUnchanged, ""},
		// glibc's timeout is per try, musl's the total: glibc's attempts:3 keeps glibc at 6s per
		// name (musl's attempts:10 would make it 10s) and musl at 2s.
		{"mixed-glibc-musl", def, pod(withSidecar), enforce, containers("app", "glibc", "sidecar", "musl"), StatusInjected, "single-request-reopen,timeout:2,attempts:3"},
		{"mixed-glibc-go", def, pod(withSidecar), enforce, containers("app", "glibc", "sidecar", "go"), StatusInjected, "single-request-reopen,timeout:2,attempts:3"},
		{"user-values-win", def, pod(func(p *Pod) {
			p.Spec.DNSConfig = &corev1.PodDNSConfig{Options: []corev1.PodDNSConfigOption{{Name: "timeout", Value: ptr("5")}, {Name: "edns0"}}}
		}), enforce, containers("app", "glibc"), StatusInjected, "single-request-reopen,attempts:3"},
		{"user-single-request-is-enough", def, pod(func(p *Pod) {
			p.Spec.DNSConfig = &corev1.PodDNSConfig{Options: []corev1.PodDNSConfigOption{{Name: "single-request"}}}
		}), enforce, containers("app", "glibc"), StatusInjected, "timeout:2,attempts:3"},
		{"dnsconfig-without-options", def, pod(func(p *Pod) {
			p.Spec.DNSConfig = &corev1.PodDNSConfig{Searches: []string{"corp.example"}}
		}), enforce, containers("app", "glibc"), StatusInjected, "single-request-reopen,timeout:2,attempts:3"},
		{"all-set-already", def, pod(func(p *Pod) {
			p.Spec.DNSConfig = &corev1.PodDNSConfig{Options: []corev1.PodDNSConfigOption{{Name: "single-request-reopen"}, {Name: "timeout", Value: ptr("1")}, {Name: "attempts", Value: ptr("2")}}}
		}), enforce, containers("app", "glibc"), StatusUnchanged, ""},
		{"audit-glibc", def, pod(), audit, containers("app", "glibc"), StatusAudit, "single-request-reopen,timeout:2,attempts:3"},
		{"audit-mixed", def, pod(withSidecar), audit, containers("app", "glibc", "sidecar", "musl"), StatusAudit, "single-request-reopen,timeout:2,attempts:3"},
		{"hostnetwork-clusterfirst-falls-back", def, pod(func(p *Pod) { p.Spec.HostNetwork = true }), enforce, containers("app", "glibc"), StatusSkipped, ""},
		{"hostnetwork-clusterfirstwithhostnet", def, pod(func(p *Pod) {
			p.Spec.HostNetwork, p.Spec.DNSPolicy = true, corev1.DNSClusterFirstWithHostNet
		}), enforce, containers("app", "glibc"), StatusInjected, "single-request-reopen,timeout:2,attempts:3"},
		{"clusterfirstwithhostnet-no-hostnetwork", def, pod(func(p *Pod) { p.Spec.DNSPolicy = corev1.DNSClusterFirstWithHostNet }), enforce, containers("app", "musl"), StatusInjected, "timeout:2,attempts:10"},
		{"dnspolicy-default", def, pod(func(p *Pod) { p.Spec.DNSPolicy = corev1.DNSDefault }), enforce, containers("app", "glibc"), StatusSkipped, ""},
		{"dnspolicy-none", ndots, pod(func(p *Pod) {
			p.Spec.DNSPolicy = corev1.DNSNone
			p.Spec.DNSConfig = &corev1.PodDNSConfig{Nameservers: []string{"10.96.0.10"}, Options: []corev1.PodDNSConfigOption{{Name: "ndots", Value: ptr("1")}}}
		}), enforce, containers("app", "glibc"), StatusInjected, "single-request-reopen,timeout:2,attempts:3"},
		{"policy-ndots", ndots, pod(), enforce, containers("app", "musl"), StatusInjected, "timeout:2,attempts:10,ndots:2"},
		{"existing-annotations", def, pod(func(p *Pod) { p.Metadata.Annotations = map[string]string{"team": "payments/checkout"} }), enforce, containers("app", "glibc"), StatusInjected, "single-request-reopen,timeout:2,attempts:3"},
		{"init-container-musl", def, pod(func(p *Pod) {
			p.Spec.InitContainers = []PodContainer{{Name: "migrate", Image: "alpine"}}
			// musl's attempts:10 would make Go wait 2s x 10 = 20s per name; attempts:2 keeps Go at 4s.
		}), enforce, []Container{{Name: "migrate", Init: true, Verdict: libc.Verdict{Libc: libc.Musl}}, {Name: "app", Verdict: libc.Verdict{Libc: libc.Go}}}, StatusInjected, "timeout:2,attempts:2"},
		// The API accepts {name: "timeout:1"}; kubelet writes it as timeout:1, so it is the
		// pod's timeout and must not get a timeout:2 beside it (kubelet's map order would pick).
		{"option-value-in-name", def, pod(func(p *Pod) {
			p.Spec.DNSConfig = &corev1.PodDNSConfig{Options: []corev1.PodDNSConfigOption{{Name: "timeout:1"}, {Name: "attempts:5", Value: ptr("")}}}
		}), enforce, containers("app", "musl"), StatusUnchanged, ""},
		{"old-glibc-ignores-no-aaaa", def, pod(func(p *Pod) {
			p.Spec.DNSConfig = &corev1.PodDNSConfig{Options: []corev1.PodDNSConfigOption{{Name: "no-aaaa"}}}
		}), enforce, []Container{{Name: "app", Verdict: libc.Verdict{Libc: libc.GLibc, Version: "2.31"}}}, StatusInjected, "single-request-reopen,timeout:2,attempts:3"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			plan := Decide(tt.p, tt.pod, tt.mode, tt.containers)
			if plan.Status != tt.status {
				t.Errorf("status = %s, want %s (reason %q)", plan.Status, tt.status, plan.Reason)
			}
			if got := strings.Join(optionStrings(plan.Inject), ","); got != tt.inject {
				t.Errorf("inject = %q, want %q", got, tt.inject)
			}
			ops := Patch(tt.pod, plan)
			for _, op := range ops {
				if op.Operation != "add" {
					t.Errorf("patch has a %s op at %s; only add is allowed", op.Operation, op.Path)
				}
				if tt.mode.Mode == policy.Audit && strings.HasPrefix(op.Path, "/spec") {
					t.Errorf("audit mode changed the spec: %s", op.Path)
				}
			}
			golden(t, map[string]any{"patch": ops, "warnings": plan.Warnings, "notes": plan.Notes})

			// Finding 7: every warning fits admission/v1's 120 characters, whatever libc each
			// container has and however long its name.
			checkWarnings(t, plan.Warnings)
			for _, l := range libc.All {
				for _, long := range []bool{false, true} {
					cs := make([]Container, len(tt.containers))
					for i, c := range tt.containers {
						c.Verdict = libc.Verdict{Libc: l, Version: c.Verdict.Version, Reason: c.Verdict.Reason}
						if long {
							c.Name = strings.Repeat(c.Name, 63)[:63]
							c.Verdict.Reason = strings.Repeat("registry unreachable ", 20)
						}
						cs[i] = c
					}
					for _, md := range []ModeDecision{enforce, audit} {
						checkWarnings(t, Decide(tt.p, tt.pod, md, cs).Warnings)
					}
				}
			}

			// Apply the patch to the pod as JSON and decide again: a reinvocation must add
			// nothing, and the pod must decode with the options kubelet will render.
			after := applyPatch(t, tt.pod, ops)
			if tt.status == StatusInjected && tt.mode.Mode == policy.Enforce {
				for _, o := range plan.Inject {
					if !hasOption(after, o) {
						t.Errorf("patched pod lacks %s", policy.OptionString(o))
					}
				}
			}
			again := Decide(tt.p, after, tt.mode, tt.containers)
			if ops2 := Patch(after, again); len(ops2) != 0 {
				t.Errorf("second pass is not a no-op: %v", ops2)
			}
		})
	}
}

func checkWarnings(t *testing.T, warnings []string) {
	t.Helper()
	for _, w := range warnings {
		if len(w) > MaxWarning {
			t.Errorf("warning of %d bytes (max %d): %q", len(w), MaxWarning, w)
		}
	}
}

func hasOption(p *Pod, want policy.Option) bool {
	if p.Spec.DNSConfig == nil {
		return false
	}
	for _, o := range p.Spec.DNSConfig.Options {
		if o.Name == want.Name && equalValue(o.Value, want.Value) {
			return true
		}
	}
	return false
}

func applyPatch(t *testing.T, p *Pod, ops any) *Pod {
	t.Helper()
	raw, err := json.Marshal(p)
	if err != nil {
		t.Fatal(err)
	}
	patchJSON, err := json.Marshal(ops)
	if err != nil {
		t.Fatal(err)
	}
	patch, err := jsonpatch.DecodePatch(patchJSON)
	if err != nil {
		t.Fatalf("invalid patch %s: %v", patchJSON, err)
	}
	out, err := patch.Apply(raw)
	if err != nil {
		t.Fatalf("patch does not apply: %v\n%s", err, patchJSON)
	}
	res, err := DecodePod(out)
	if err != nil {
		t.Fatal(err)
	}
	return res
}

func golden(t *testing.T, v any) {
	t.Helper()
	got, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		t.Fatal(err)
	}
	got = append(got, '\n')
	path := filepath.Join("testdata", strings.ReplaceAll(t.Name(), "/", "_")+".golden.json")
	if *update {
		if err := os.WriteFile(path, got, 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run go test ./internal/mutate -update to create it)", err)
	}
	if string(want) != string(got) {
		t.Errorf("%s differs from the golden file:\n--- want\n%s\n--- got\n%s", path, want, got)
	}
}

func TestWantedOptionsMixedNotes(t *testing.T) {
	opts, notes := WantedOptions(policytest.Policy(), containers("a", "glibc", "b", "musl"), true, true)
	if got := strings.Join(optionStrings(opts), ","); got != "single-request-reopen,timeout:2,attempts:3" {
		t.Fatalf("options = %s", got)
	}
	want := "glibc wants timeout:2 attempts:3, musl wants timeout:2 attempts:10: using timeout:2 attempts:3 for the whole pod " +
		"(resolv.conf is per pod), keeping each libc's worst case per name within its own profile's: glibc 6s (a lost reply 2s), musl 2s (a lost reply 667ms)"
	if len(notes) != 1 || notes[0] != want {
		t.Fatalf("notes = %q", notes)
	}
	// Without the race fix, only fast retry.
	if opts, _ := WantedOptions(policytest.Policy(), containers("a", "glibc"), true, false); strings.Join(optionStrings(opts), ",") != "timeout:2,attempts:3" {
		t.Fatalf("options without race fix = %s", optionStrings(opts))
	}
}

func TestMergeValue(t *testing.T) {
	tests := []struct{ name, a, b, want string }{
		{"timeout", "2", "1", "1"}, {"timeout", "1", "3", "1"},
		{"attempts", "3", "10", "10"}, {"attempts", "5", "2", "5"},
		{"ndots", "5", "2", "2"}, {"other", "x", "y", "x"}, {"timeout", "2", "bad", "2"},
	}
	for _, tt := range tests {
		if got := *mergeValue(tt.name, &tt.a, &tt.b); got != tt.want {
			t.Errorf("mergeValue(%s, %s, %s) = %s, want %s", tt.name, tt.a, tt.b, got, tt.want)
		}
	}
}

// Warnings stay within 120 characters when what they quote is long: an invalid mode, a
// long option name from the policy, many containers.
func TestWarningsFit(t *testing.T) {
	p := policytest.Enforcing()
	p.Profiles[libc.Musl] = policy.Profile{Inject: []policy.Option{{Name: strings.Repeat("very-long-option-", 8)}, {Name: "timeout", Value: ptr("2")}}}
	md := ResolveMode(p, "shop", map[string]string{LabelMode: strings.Repeat("x", 63)}, &Pod{Metadata: PodMeta{Annotations: map[string]string{AnnotationMode: strings.Repeat("nope", 1000)}}})
	if len(md.Warnings) != 2 {
		t.Fatalf("want 2 mode warnings, got %q", md.Warnings)
	}
	checkWarnings(t, md.Warnings)
	audit := ModeDecision{Mode: policy.Audit, Reason: strings.Repeat("r", 500)}
	for _, n := range []int{1, 2, 50} {
		var cs []Container
		for i := range n {
			cs = append(cs, Container{Name: fmt.Sprintf("%s-%d", strings.Repeat("n", 58), i), Verdict: libc.Verdict{Libc: []libc.Libc{libc.Musl, libc.GLibc, libc.Unknown}[i%3], Reason: "registry unreachable"}})
		}
		for _, m := range []ModeDecision{md, audit} {
			plan := Decide(p, pod(), m, cs)
			if len(plan.Warnings) == 0 {
				t.Errorf("%d containers: no warnings", n)
			}
			checkWarnings(t, plan.Warnings)
		}
	}
}

// Finding 8, admission half: the API accepts an option whose name carries its value
// ({name: "timeout:1"}); kubelet writes it as timeout:1, so it is the pod's timeout.
// Before the fix dns-tuner added timeout:2 beside it, and kubelet's map order decided
// which one the resolver read.
func TestOptionValueInName(t *testing.T) {
	tests := []struct {
		name       string
		opts       []corev1.PodDNSConfigOption
		libc       string
		wantInject string
	}{
		{"timeout in the name", []corev1.PodDNSConfigOption{{Name: "timeout:1"}}, "musl", "attempts:10,ndots:3"},
		{"attempts in the name, empty value", []corev1.PodDNSConfigOption{{Name: "attempts:4", Value: ptr("")}}, "musl", "timeout:2,ndots:3"},
		{"ndots in the name", []corev1.PodDNSConfigOption{{Name: "ndots:2"}}, "glibc", "single-request-reopen,timeout:2,attempts:3"},
		{"all three", []corev1.PodDNSConfigOption{{Name: "timeout:1"}, {Name: "attempts:4"}, {Name: "ndots:1"}}, "musl", ""},
		{"single-request in the name is still single-request", []corev1.PodDNSConfigOption{{Name: "single-request:"}}, "glibc", "timeout:2,attempts:3,ndots:3"},
	}
	p := policytest.Policy()
	p.Ndots = "3"
	enforce := ModeDecision{Mode: policy.Enforce, Reason: "test"}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			pd := pod(func(p *Pod) { p.Spec.DNSConfig = &corev1.PodDNSConfig{Options: tt.opts} })
			plan := Decide(p, pd, enforce, containers("app", tt.libc))
			if got := strings.Join(optionStrings(plan.Inject), ","); got != tt.wantInject {
				t.Errorf("inject = %q, want %q", got, tt.wantInject)
			}
			if len(plan.Ignored) != 0 {
				t.Errorf("the pod's own options reported as ignored: %+v", plan.Ignored)
			}
		})
	}
	for _, tt := range []struct {
		in   corev1.PodDNSConfigOption
		name string
		val  *string
	}{
		{corev1.PodDNSConfigOption{Name: "timeout:1"}, "timeout", ptr("1")},
		{corev1.PodDNSConfigOption{Name: "timeout:1", Value: ptr("")}, "timeout", ptr("1")},
		{corev1.PodDNSConfigOption{Name: "timeout:1", Value: ptr("3")}, "timeout:1", ptr("3")}, // kubelet writes timeout:1:3
		{corev1.PodDNSConfigOption{Name: "ndots:"}, "ndots", ptr("")},
		{corev1.PodDNSConfigOption{Name: "edns0"}, "edns0", nil},
		{corev1.PodDNSConfigOption{Name: "ndots", Value: ptr("2")}, "ndots", ptr("2")},
	} {
		got := CanonicalOption(tt.in)
		if got.Name != tt.name || !equalValue(got.Value, tt.val) {
			t.Errorf("CanonicalOption(%s) = %s", policy.OptionString(tt.in), policy.OptionString(got))
		}
	}
}
