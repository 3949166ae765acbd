package mutate

import (
	"slices"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"

	"github.com/dns-tuner/dns-tuner/internal/cluster"
	"github.com/dns-tuner/dns-tuner/internal/libc"
	"github.com/dns-tuner/dns-tuner/internal/policy"
	"github.com/dns-tuner/dns-tuner/internal/policy/policytest"
)

func nodeLocalPolicy(mode policy.NodeLocalMode, none ...libc.Libc) *policy.Policy {
	p := policytest.Policy()
	p.NodeLocalDNS = policy.NodeLocalDNS{Mode: mode, DNSPolicyNone: none}
	return p
}

// running is the facts of a cluster with node-local-dns running and kube-dns at 10.96.0.10.
var running = cluster.Exposure{Known: true, Exposed: true, Reason: "test", DNSServiceIP: "10.96.0.10",
	NodeLocal: cluster.NodeLocalDNS{Known: true, Running: true, Address: "169.254.20.10"}}

// TestNodeLocal: musl gets the cache appended under ClusterFirst, the libcs in dnsPolicyNone
// get the None form (cache first, then kube-dns, kubelet's searches, ndots, a short
// timeout); never for the node's resolv.conf, pods that chose None, or past 3 nameservers;
// user nameservers and searches kept; a second pass adds nothing. Patches are golden files.
func TestNodeLocal(t *testing.T) {
	on := nodeLocalPolicy(policy.NodeLocalOn)
	onGlibc := nodeLocalPolicy(policy.NodeLocalOn, libc.GLibc)
	auto := nodeLocalPolicy(policy.NodeLocalAuto, libc.GLibc)
	noIP := nodeLocalPolicy(policy.NodeLocalOn, libc.GLibc)
	enforce := ModeDecision{Mode: policy.Enforce, Reason: "namespace label dns-tuner.io/mode=enforce"}
	audit := ModeDecision{Mode: policy.Audit, Reason: "namespace label dns-tuner.io/mode=audit"}
	cf := func(p *Pod) { p.Spec.DNSPolicy = corev1.DNSClusterFirst }
	userNS := func(n int) func(*Pod) {
		return func(p *Pod) {
			p.Spec.DNSConfig = &corev1.PodDNSConfig{Searches: []string{"corp.example"}}
			for i := range n {
				p.Spec.DNSConfig.Nameservers = append(p.Spec.DNSConfig.Nameservers, "192.0.2."+string(rune('1'+i)))
			}
		}
	}
	tests := []struct {
		name       string
		p          *policy.Policy
		pod        *Pod
		mode       ModeDecision
		containers []Container
		exp        cluster.Exposure
		form       string
		dnsPolicy  corev1.DNSPolicy // after the patch
		ns         []string         // nameservers after the patch
	}{
		{"musl-append", on, pod(cf), enforce, containers("app", "musl"), running, NodeLocalAppend, corev1.DNSClusterFirst, []string{"169.254.20.10"}},
		{"musl-append-no-dnspolicy-field", on, pod(), enforce, containers("app", "musl"), cluster.Unknown, NodeLocalAppend, "", []string{"169.254.20.10"}},
		{"musl-append-after-user-nameserver", on, pod(cf, userNS(1)), enforce, containers("app", "musl"), running, NodeLocalAppend, corev1.DNSClusterFirst, []string{"192.0.2.1", "169.254.20.10"}},
		{"musl-three-nameserver-limit", on, pod(cf, userNS(2)), enforce, containers("app", "musl"), running, "", corev1.DNSClusterFirst, []string{"192.0.2.1", "192.0.2.2"}},
		{"musl-clusterfirstwithhostnet", on, pod(func(p *Pod) { p.Spec.HostNetwork, p.Spec.DNSPolicy = true, corev1.DNSClusterFirstWithHostNet }), enforce, containers("app", "musl"), running, NodeLocalAppend, corev1.DNSClusterFirstWithHostNet, []string{"169.254.20.10"}},
		{"musl-audit", on, pod(cf), audit, containers("app", "musl"), running, NodeLocalAppend, corev1.DNSClusterFirst, nil},
		{"glibc-not-listed-unchanged", on, pod(cf), enforce, containers("app", "glibc"), running, "", corev1.DNSClusterFirst, nil},
		{"glibc-none", onGlibc, pod(cf), enforce, containers("app", "glibc"), running, NodeLocalNone, corev1.DNSNone, []string{"169.254.20.10", "10.96.0.10"}},
		{"glibc-none-keeps-user", onGlibc, pod(cf, userNS(1)), enforce, containers("app", "glibc"), running, NodeLocalNone, corev1.DNSNone, []string{"169.254.20.10", "10.96.0.10", "192.0.2.1"}},
		{"glibc-none-three-nameserver-limit", onGlibc, pod(cf, userNS(2)), enforce, containers("app", "glibc"), running, "", corev1.DNSClusterFirst, []string{"192.0.2.1", "192.0.2.2"}},
		{"glibc-none-no-clusterip", noIP, pod(cf), enforce, containers("app", "glibc"), cluster.Unknown, "", corev1.DNSClusterFirst, nil},
		{"mixed-glibc-musl-none-serves-both", onGlibc, pod(cf, withSidecar), enforce, containers("app", "glibc", "sidecar", "musl"), running, NodeLocalNone, corev1.DNSNone, []string{"169.254.20.10", "10.96.0.10"}},
		{"mixed-glibc-musl-append", on, pod(cf, withSidecar), enforce, containers("app", "glibc", "sidecar", "musl"), running, NodeLocalAppend, corev1.DNSClusterFirst, []string{"169.254.20.10"}},
		{"auto-running", auto, pod(cf), enforce, containers("app", "musl"), running, NodeLocalAppend, corev1.DNSClusterFirst, []string{"169.254.20.10"}},
		{"auto-no-facts-off", auto, pod(cf), enforce, containers("app", "musl"), cluster.Unknown, "", corev1.DNSClusterFirst, nil},
		{"auto-not-running-off", auto, pod(cf), enforce, containers("app", "musl"), cluster.Exposure{Known: true, NodeLocal: cluster.NodeLocalDNS{Known: true}}, "", corev1.DNSClusterFirst, nil},
		{"hostnetwork-clusterfirst-never", onGlibc, pod(func(p *Pod) { p.Spec.HostNetwork, p.Spec.DNSPolicy = true, corev1.DNSClusterFirst }), enforce, containers("app", "musl"), running, "", corev1.DNSClusterFirst, nil},
		{"default-never", onGlibc, pod(func(p *Pod) { p.Spec.DNSPolicy = corev1.DNSDefault }), enforce, containers("app", "glibc"), running, "", corev1.DNSDefault, nil},
		{"pod-chose-none-never", onGlibc, pod(func(p *Pod) {
			p.Spec.DNSPolicy = corev1.DNSNone
			p.Spec.DNSConfig = &corev1.PodDNSConfig{Nameservers: []string{"10.0.0.53"}}
		}), enforce, containers("app", "glibc"), running, "", corev1.DNSNone, []string{"10.0.0.53"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tt.pod.Metadata.Namespace = "shop"
			if tt.name == "glibc-none-no-clusterip" {
				tt.p.ClusterDNS = ""
			}
			plan := DecideFor(tt.p, tt.pod, tt.mode, tt.containers, tt.exp)
			if plan.NodeLocal.Form != tt.form {
				t.Fatalf("form = %q, want %q (why %q)", plan.NodeLocal.Form, tt.form, plan.NodeLocal.Why)
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
			checkWarnings(t, plan.Warnings)
			golden(t, map[string]any{"patch": ops, "warnings": plan.Warnings, "nodeLocal": plan.NodeLocal, "annotations": plan.Annotations})
			after := applyPatch(t, tt.pod, ops)
			if after.Spec.DNSPolicy != tt.dnsPolicy {
				t.Errorf("dnsPolicy = %q, want %q", after.Spec.DNSPolicy, tt.dnsPolicy)
			}
			var got []string
			if after.Spec.DNSConfig != nil {
				got = after.Spec.DNSConfig.Nameservers
			}
			if !slices.Equal(got, tt.ns) {
				t.Errorf("nameservers = %v, want %v", got, tt.ns)
			}
			if len(got) > 3 || (tt.dnsPolicy != corev1.DNSNone && len(got) > 2) {
				t.Errorf("kubelet keeps 3 nameservers; the pod would have %v", got)
			}
			if tt.form == NodeLocalNone {
				dc := after.Spec.DNSConfig
				want := []string{"shop.svc.cluster.local", "svc.cluster.local", "cluster.local"}
				if len(dc.Searches) < 3 || !slices.Equal(dc.Searches[:3], want) {
					t.Errorf("searches = %v, want kubelet's %v first", dc.Searches, want)
				}
				if tt.pod.Spec.DNSConfig != nil && !slices.Contains(dc.Searches, "corp.example") {
					t.Errorf("user search corp.example dropped: %v", dc.Searches)
				}
				for _, w := range []string{"ndots:5", "timeout:1"} {
					if !slices.Contains(optionStrings(dc.Options), w) {
						t.Errorf("options %v lack %s", optionStrings(dc.Options), w)
					}
				}
			}
			if tt.form != "" && tt.mode.Mode == policy.Enforce {
				if plan.Status != StatusInjected || plan.Annotations[AnnotationNodeLocal] == "" {
					t.Errorf("status %s, annotation %q: want injected and the node-local-dns annotation", plan.Status, plan.Annotations[AnnotationNodeLocal])
				}
				if adv := plan.Annotations[AnnotationAdvice]; strings.Contains(adv, "run NodeLocal DNSCache") {
					t.Errorf("advice tells the user to do what dns-tuner did: %q", adv)
				}
			}
			again := DecideFor(tt.p, after, tt.mode, tt.containers, tt.exp)
			if ops2 := Patch(after, again); len(ops2) != 0 {
				t.Errorf("second pass is not a no-op: %v", ops2)
			}
		})
	}
}

// The dnsPolicy None form writes the search list kubelet would have written for ClusterFirst:
// the cluster's domains, then the node's (policy nodeSearch), so names that relied on the
// node's domains keep resolving.
func TestNodeLocalNoneKeepsNodeSearch(t *testing.T) {
	p := nodeLocalPolicy(policy.NodeLocalOn, libc.GLibc)
	p.NodeSearch = []string{"corp.internal"}
	pod := pod(func(p *Pod) { p.Spec.DNSPolicy = corev1.DNSClusterFirst })
	plan := DecideFor(p, pod, ModeDecision{Mode: policy.Enforce, Reason: "test"}, containers("app", "glibc"), running)
	want := []string{"shop.svc.cluster.local", "svc.cluster.local", "cluster.local", "corp.internal"}
	if !slices.Equal(plan.NodeLocal.Searches, want) {
		t.Fatalf("searches %+v, want %q", plan.NodeLocal, want)
	}
}
