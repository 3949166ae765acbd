package mutate

import (
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"

	"github.com/dns-tuner/dns-tuner/internal/cluster"
	"github.com/dns-tuner/dns-tuner/internal/libc"
	"github.com/dns-tuner/dns-tuner/internal/policy"
	"github.com/dns-tuner/dns-tuner/internal/policy/policytest"
)

var (
	oldNodes = &cluster.Snapshot{Synced: true, Proxy: cluster.ProxyIPTables, DNSEndpoints: 1, Nodes: []cluster.Node{
		{Name: "a", Labels: map[string]string{"pool": "old"}, Kernel: cluster.ParseKernel("4.14.35")},
		{Name: "b", Labels: map[string]string{"pool": "new"}, Kernel: cluster.ParseKernel("6.1.0-25-cloud-amd64")},
	}}
	exposed    = oldNodes.Exposure(cluster.Placement{})
	notExposed = oldNodes.Exposure(cluster.Placement{NodeSelector: map[string]string{"pool": "new"}})
)

// TestDecideRaceFix: with raceFix auto the race fix follows the facts, fast retry is added
// regardless, and the annotation and reason say which facts decided.
func TestDecideRaceFix(t *testing.T) {
	enforce := ModeDecision{Mode: policy.Enforce, Reason: "namespace label dns-tuner.io/mode=enforce"}
	with := func(m policy.RaceFixMode) *policy.Policy {
		p := policytest.Policy()
		p.RaceFix = m
		return p
	}
	tests := []struct {
		name       string
		p          *policy.Policy
		exp        cluster.Exposure
		containers []Container
		inject     string
		raceFix    string // the race-fix annotation; "" for none
		risk       string
	}{
		{"auto, exposed", with(policy.RaceFixAuto), exposed, containers("app", "glibc"), "single-request-reopen,timeout:2,attempts:3",
			"needed: 1 of 2 nodes run 4.14.35 with kube-proxy iptables and 1 DNS endpoint: exposed", RiskProtected},
		{"auto, not exposed", with(policy.RaceFixAuto), notExposed, containers("app", "glibc"), "timeout:2,attempts:3",
			"not needed: all 1 nodes the pod can land on run 6.1.0-25-cloud-amd64", RiskNotExposed},
		{"auto, no facts", with(policy.RaceFixAuto), cluster.Unknown, containers("app", "glibc"), "single-request-reopen,timeout:2,attempts:3",
			"needed: no cluster facts: counted as exposed", RiskProtected},
		{"always, not exposed", with(policy.RaceFixAlways), notExposed, containers("app", "glibc"), "single-request-reopen,timeout:2,attempts:3",
			"needed: policy raceFix always", RiskNotExposed},
		{"never, exposed", with(policy.RaceFixNever), exposed, containers("app", "glibc"), "timeout:2,attempts:3",
			"not needed: policy raceFix never (1 of 2 nodes", RiskExposed},
		{"musl has no race fix to add", with(policy.RaceFixAuto), exposed, containers("app", "musl"), "timeout:2,attempts:10", "", RiskExposed},
		{"go is not affected", with(policy.RaceFixAuto), exposed, containers("app", "go"), "", "", RiskProtected},
		{"unknown libc on exposed nodes", with(policy.RaceFixAuto), exposed, containers("app", "unknown"), "", "", RiskExposed},
		{"mixed, not exposed", with(policy.RaceFixAuto), notExposed, containers("app", "glibc", "sidecar", "musl"), "timeout:2,attempts:3",
			"not needed", RiskNotExposed},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			plan := DecideFor(tt.p, pod(withSidecar), enforce, tt.containers, tt.exp)
			if got := strings.Join(optionStrings(plan.Inject), ","); got != tt.inject {
				t.Errorf("inject = %q, want %q", got, tt.inject)
			}
			got := plan.Annotations[AnnotationRaceFix]
			if (tt.raceFix == "") != (got == "") || !strings.HasPrefix(got, tt.raceFix) {
				t.Errorf("race-fix annotation = %q, want it to start %q", got, tt.raceFix)
			}
			if tt.raceFix != "" && !strings.Contains(plan.Reason, "race fix "+tt.raceFix) {
				t.Errorf("reason %q does not say %q", plan.Reason, tt.raceFix)
			}
			if plan.Risk != tt.risk {
				t.Errorf("risk = %s, want %s", plan.Risk, tt.risk)
			}
			checkWarnings(t, plan.Warnings)
		})
	}
}

// A pod confined by nodeSelector or required node affinity decodes with its placement, and
// only the nodes it can land on decide.
func TestPlacementDecoded(t *testing.T) {
	raw := `{"metadata":{"name":"p"},"spec":{"nodeSelector":{"pool":"new"},"affinity":{"nodeAffinity":{"requiredDuringSchedulingIgnoredDuringExecution":` +
		`{"nodeSelectorTerms":[{"matchExpressions":[{"key":"pool","operator":"In","values":["new"]}]}]}}},"containers":[{"name":"app"}]}}`
	p, err := DecodePod([]byte(raw))
	if err != nil {
		t.Fatal(err)
	}
	pl := p.Placement()
	if pl.NodeSelector["pool"] != "new" || pl.NodeAffinity == nil || pl.NodeAffinity.RequiredDuringSchedulingIgnoredDuringExecution.NodeSelectorTerms[0].MatchExpressions[0].Operator != corev1.NodeSelectorOpIn {
		t.Fatalf("placement = %+v", pl)
	}
	if e := oldNodes.Exposure(pl); e.Exposed || e.Nodes != 1 {
		t.Fatalf("exposure = %+v", e)
	}
}

// TestRetryCosts: each libc's worst case per name and the cost of one lost reply, from the
// libc table (glibc clamps attempts to 5, musl to 10; glibc and Go wait per try per server).
func TestRetryCosts(t *testing.T) {
	i := func(v int) *int { return &v }
	tests := []struct {
		l                 libc.Libc
		timeout, attempts *int
		servers           int
		worst, lost       time.Duration
	}{
		{libc.GLibc, nil, nil, 1, 10 * time.Second, 5 * time.Second},
		{libc.GLibc, i(2), i(3), 1, 6 * time.Second, 2 * time.Second},
		{libc.GLibc, i(2), i(10), 1, 10 * time.Second, 2 * time.Second}, // attempts clamped to 5
		{libc.GLibc, i(2), i(3), 2, 12 * time.Second, 2 * time.Second},
		{libc.GLibc, i(0), i(3), 1, 3 * time.Second, time.Second}, // timeout at least 1
		{libc.Musl, nil, nil, 1, 5 * time.Second, 2500 * time.Millisecond},
		{libc.Musl, i(2), i(10), 1, 2 * time.Second, 200 * time.Millisecond},
		{libc.Musl, i(2), i(3), 3, 2 * time.Second, 2 * time.Second / 3},
		{libc.Musl, i(2), i(50), 1, 2 * time.Second, 200 * time.Millisecond}, // attempts clamped to 10
		{libc.Go, i(2), i(3), 1, 6 * time.Second, 2 * time.Second},
		{libc.Unknown, i(2), i(3), 1, 0, 0},
	}
	for _, tt := range tests {
		c := CostOf(tt.l, tt.timeout, tt.attempts, tt.servers)
		if c.WorstCase != tt.worst || c.Retransmit != tt.lost {
			t.Errorf("%s %v/%v x%d: worst %s lost %s, want %s %s", tt.l, tt.timeout, tt.attempts, tt.servers, c.WorstCase, c.Retransmit, tt.worst, tt.lost)
		}
	}
}

// TestChooseRetry: a mixed pod's timeout and attempts keep every libc's worst case bounded.
func TestChooseRetry(t *testing.T) {
	musl := policy.Profile{Inject: []policy.Option{{Name: "timeout", Value: ptr("2")}, {Name: "attempts", Value: ptr("10")}}}
	tests := []struct {
		name       string
		muslProf   policy.Profile
		containers []Container
		want       string
		maxWorst   time.Duration
	}{
		{"glibc+musl", musl, containers("a", "glibc", "b", "musl"), "timeout:2,attempts:3", 6 * time.Second},
		{"glibc+musl+go", musl, containers("a", "glibc", "b", "musl", "c", "go"), "timeout:2,attempts:3", 6 * time.Second},
		{"musl alone keeps its profile", musl, containers("b", "musl"), "timeout:2,attempts:10", 2 * time.Second},
		// musl's attempts:10 would make Go wait 20s per name (twice its default): attempts:2
		// keeps Go at 4s and musl at 2s, retransmitting every second.
		{"musl+go", musl, containers("b", "musl", "c", "go"), "timeout:2,attempts:2", 4 * time.Second},
		{"musl with a shorter timeout", policy.Profile{Inject: []policy.Option{{Name: "timeout", Value: ptr("1")}, {Name: "attempts", Value: ptr("5")}}},
			containers("a", "glibc", "b", "musl"), "timeout:1,attempts:3", 3 * time.Second},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := policytest.Policy()
			p.Profiles[libc.Musl] = tt.muslProf
			opts, _ := WantedOptions(p, tt.containers, false, false)
			if got := strings.Join(optionStrings(opts), ","); got != tt.want {
				t.Fatalf("options = %s, want %s", got, tt.want)
			}
			for _, c := range RetryCosts(tt.containers, opts, 1) {
				if c.WorstCase > tt.maxWorst {
					t.Errorf("%s (%s) waits up to %s, more than %s", c.Container, c.Libc, c.WorstCase, tt.maxWorst)
				}
			}
		})
	}
}

// Audit changes nothing, so a glibc pod on exposed nodes stays exposed; a pod that already
// serialises its queries is protected whatever dns-tuner adds.
func TestRiskAuditAndOwnOptions(t *testing.T) {
	audit := ModeDecision{Mode: policy.Audit, Reason: "audit"}
	if plan := DecideFor(policytest.Policy(), pod(), audit, containers("app", "glibc"), exposed); plan.Risk != RiskExposed {
		t.Errorf("audit, glibc on exposed nodes: risk %s", plan.Risk)
	}
	own := pod(func(p *Pod) {
		p.Spec.DNSConfig = &corev1.PodDNSConfig{Options: []corev1.PodDNSConfigOption{{Name: "single-request"}}}
	})
	if plan := DecideFor(policytest.Policy(), own, audit, containers("app", "glibc"), exposed); plan.Risk != RiskProtected {
		t.Errorf("audit, glibc with its own single-request: risk %s", plan.Risk)
	}
	off := ModeDecision{Mode: policy.Off, Reason: "off"}
	if plan := DecideFor(policytest.Policy(), pod(), off, containers("app", "glibc"), exposed); plan.Risk != "" {
		t.Errorf("off: risk %q, want none (not counted)", plan.Risk)
	}
}
