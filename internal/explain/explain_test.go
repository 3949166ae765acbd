package explain

import (
	"bytes"
	"context"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/dns-tuner/dns-tuner/internal/cluster"
	"github.com/dns-tuner/dns-tuner/internal/libc"
	"github.com/dns-tuner/dns-tuner/internal/policy"
	"github.com/dns-tuner/dns-tuner/internal/policy/policytest"
	"github.com/dns-tuner/dns-tuner/internal/resolvconf"
)

type byImage map[string]libc.Libc

func (m byImage) Detect(_ context.Context, t libc.Target) (libc.Verdict, error) {
	if l, ok := m[t.Image]; ok {
		return libc.Verdict{Libc: l, Source: libc.SourceEntrypoint, Evidence: "test table"}, nil
	}
	return libc.Verdict{Libc: libc.Unknown, Reason: "not in test table"}, nil
}

const manifests = `
apiVersion: apps/v1
kind: Deployment
metadata: {name: web, namespace: shop}
spec:
  template:
    metadata: {labels: {app: web}}
    spec:
      containers:
        - {name: app, image: glibc-app}
        - {name: proxy, image: musl-app}
---
apiVersion: batch/v1
kind: CronJob
metadata: {name: report}
spec:
  schedule: "@daily"
  jobTemplate:
    spec:
      template:
        spec:
          restartPolicy: Never
          containers: [{name: job, image: go-app}]
---
apiVersion: v1
kind: Pod
metadata: {name: hostnet, namespace: shop}
spec:
  hostNetwork: true
  containers: [{name: app, image: glibc-app}]
`

func TestReadPods(t *testing.T) {
	ins, err := ReadPods(strings.NewReader(manifests), "test.yaml", "default")
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"test.yaml: Deployment shop/web", "test.yaml: CronJob default/report", "test.yaml: Pod shop/hostnet"}
	if len(ins) != len(want) {
		t.Fatalf("got %d pods, want %d", len(ins), len(want))
	}
	for i, w := range want {
		if ins[i].Source != w {
			t.Errorf("source %d = %q, want %q", i, ins[i].Source, w)
		}
	}
	if ins[0].Pod.Labels["app"] != "web" || len(ins[0].Pod.Spec.Containers) != 2 {
		t.Errorf("template not read: %+v", ins[0].Pod)
	}

	bad := []struct{ doc, err string }{
		{"kind: Service\nmetadata: {name: x}\n", `kind "Service" has no pod template`},
		{"kind: Deployment\nmetadata: {name: x}\nspec: {}\n", "no [spec template]"},
		{"kind: Pod\nmetadata: {name: x}\nspec: {containers: []}\n", "no containers"},
		{"kind: Pod\nspec: {containers: 3}\n", "pod template"},
		{"", "no pod or pod template"},
		{"{not yaml", "document 1"},
	}
	for _, b := range bad {
		if _, err := ReadPods(strings.NewReader(b.doc), "bad.yaml", "default"); err == nil || !strings.Contains(err.Error(), b.err) {
			t.Errorf("ReadPods(%q) error = %v, want %q", b.doc, err, b.err)
		}
	}
}

func TestExplain(t *testing.T) {
	ins, err := ReadPods(strings.NewReader(manifests), "test.yaml", "default")
	if err != nil {
		t.Fatal(err)
	}
	det := byImage{"glibc-app": libc.GLibc, "musl-app": libc.Musl, "go-app": libc.Go}
	cluster := resolvconf.ClusterDNS{Nameservers: []string{"10.96.0.10"}, ClusterDomain: "cluster.local"}
	ins[0].NamespaceKnown, ins[0].NamespaceLabels = true, map[string]string{"dns-tuner.io/mode": "audit"}

	var reports []Report
	for _, in := range ins {
		r, err := Explain(context.Background(), policytest.Policy(), det, time.Second, cluster, in)
		if err != nil {
			t.Fatal(err)
		}
		reports = append(reports, r)
	}

	web := reports[0]
	if web.Applies == nil || web.Applies.Mode != policy.Audit {
		t.Errorf("applies = %+v, want audit from the namespace label", web.Applies)
	}
	if !strings.Contains(web.ResolvConf, "search shop.svc.cluster.local svc.cluster.local cluster.local") || !strings.Contains(web.ResolvConf, "options ndots:5\n") {
		t.Errorf("resolv.conf as submitted:\n%s", web.ResolvConf)
	}
	if !strings.Contains(web.Enforced, "options ndots:5 single-request-reopen timeout:2 attempts:3\n") {
		t.Errorf("enforced resolv.conf:\n%s", web.Enforced)
	}
	proxy := web.Containers[1]
	if proxy.Verdict.Libc != libc.Musl || len(proxy.Ignores) != 1 || proxy.Ignores[0].Option != "single-request-reopen" {
		t.Errorf("proxy = %+v", proxy)
	}
	if got := strings.Join(proxy.Honours, ","); got != "ndots,timeout,attempts" {
		t.Errorf("proxy honours %s", got)
	}
	modes := map[policy.Mode]ModeOutcome{}
	for _, m := range web.Modes {
		modes[m.Mode] = m
	}
	if modes[policy.Enforce].Status != "injected" || modes[policy.Audit].Status != "audit" || modes[policy.Off].Status != "untouched" {
		t.Errorf("modes = %+v", web.Modes)
	}

	report := reports[1]
	if report.Containers[0].Verdict.Libc != libc.Go || report.Enforced != report.ResolvConf || report.Namespace != "default" {
		t.Errorf("go cronjob: %+v", report)
	}
	host := reports[2]
	if host.ClusterDNS || !strings.Contains(host.SkipReason, "hostNetwork") {
		t.Errorf("hostNetwork pod: clusterDNS=%v reason=%q", host.ClusterDNS, host.SkipReason)
	}

	var text, js bytes.Buffer
	if err := PrintText(&text, reports); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{
		"Pod shop/web-*", "proxy (musl): reads ndots, timeout, attempts", "ignores single-request-reopen: musl always sends A and AAAA",
		"applies here: audit", "enforce: injected; adds single-request-reopen timeout:2 attempts:3",
		"audit:  audit; would add (spec unchanged)", "Not on the cluster DNS path: hostNetwork",
		// Each container's worst case and lost-reply cost, before and after (glibc per try,
		// musl the total), and which facts decided the race fix.
		"app (glibc)   10s silent, 5s per lost reply (timeout:5 attempts:2)   6s silent, 2s per lost reply (timeout:2 attempts:3)",
		"proxy (musl)  5s silent, 2.5s per lost reply (timeout:5 attempts:2)  2s silent, 667ms per lost reply (timeout:2 attempts:3)",
		"A/AAAA race fix (policy raceFix auto): needed: no cluster facts: counted as exposed",
	} {
		if !strings.Contains(text.String(), want) {
			t.Errorf("text output lacks %q:\n%s", want, text.String())
		}
	}
	if err := PrintJSON(&js, reports); err != nil {
		t.Fatal(err)
	}
	var back []Report
	if err := json.Unmarshal(js.Bytes(), &back); err != nil || len(back) != 3 || back[0].Containers[1].Verdict.Libc != libc.Musl {
		t.Errorf("JSON does not round-trip: %v", err)
	}
}

// explain reads a pod through admission's view: an option written {name: "timeout:1"} is
// the pod's timeout, so enforce adds no timeout beside it and musl is not said to ignore it.
func TestExplainOptionValueInName(t *testing.T) {
	doc := `
kind: Pod
metadata: {name: opt, namespace: shop}
spec:
  dnsConfig: {options: [{name: "timeout:1"}]}
  containers: [{name: app, image: musl-app}]
`
	ins, err := ReadPods(strings.NewReader(doc), "opt.yaml", "default")
	if err != nil {
		t.Fatal(err)
	}
	cluster := resolvconf.ClusterDNS{Nameservers: []string{"10.96.0.10"}, ClusterDomain: "cluster.local"}
	r, err := Explain(context.Background(), policytest.Policy(), byImage{"musl-app": libc.Musl}, time.Second, cluster, ins[0])
	if err != nil {
		t.Fatal(err)
	}
	if got := strings.Join(r.Modes[0].Adds, " "); got != "attempts:10" {
		t.Errorf("enforce adds %q, want attempts:10 only", got)
	}
	if app := r.Containers[0]; len(app.Ignores) != 0 || !strings.Contains(strings.Join(app.Honours, ","), "timeout") {
		t.Errorf("app honours %v, ignores %v", app.Honours, app.Ignores)
	}
}

// With cluster facts, a pod that can only land on kernels with both clash fixes gets fast
// retry and no race fix, and explain says which facts decided.
func TestExplainWithFacts(t *testing.T) {
	ins, err := ReadPods(strings.NewReader(manifests), "test.yaml", "default")
	if err != nil {
		t.Fatal(err)
	}
	det := byImage{"glibc-app": libc.GLibc, "musl-app": libc.Musl, "go-app": libc.Go}
	dns := resolvconf.ClusterDNS{Nameservers: []string{"10.96.0.10"}, ClusterDomain: "cluster.local"}
	facts := &cluster.Snapshot{Synced: true, Proxy: cluster.ProxyNFTables, DNSEndpoints: 1, Nodes: []cluster.Node{
		{Name: "a", Kernel: cluster.ParseKernel("6.1.0-25-cloud-amd64")}, {Name: "b", Kernel: cluster.ParseKernel("6.1.0-25-cloud-amd64")},
	}}
	in := ins[0]
	in.Facts = facts
	r, err := Explain(context.Background(), policytest.Policy(), det, time.Second, dns, in)
	if err != nil {
		t.Fatal(err)
	}
	if r.RaceFix.Wanted || !strings.HasPrefix(r.RaceFix.Why, "not needed: all 2 nodes run 6.1.0-25-cloud-amd64 with kube-proxy nftables and 1 DNS endpoint") {
		t.Errorf("race fix = %+v", r.RaceFix)
	}
	if !strings.Contains(r.Enforced, "options ndots:5 timeout:2 attempts:3\n") {
		t.Errorf("enforced resolv.conf:\n%s", r.Enforced)
	}
	var text bytes.Buffer
	if err := PrintText(&text, []Report{r}); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(text.String(), "A/AAAA race fix (policy raceFix auto): not needed: all 2 nodes") {
		t.Errorf("text lacks the race-fix decision:\n%s", text.String())
	}
}

// explain shows the resolv.conf each NodeLocal DNSCache form gives and says what was done
// and why: musl gets the cache after the cluster DNS, glibc (dnsPolicyNone) the cache first
// with kubelet's search list, ndots:5 and timeout:1; the musl advice no longer says to run
// NodeLocal DNSCache.
func TestExplainNodeLocal(t *testing.T) {
	doc := `
kind: Pod
metadata: {name: nl, namespace: shop}
spec:
  containers: [{name: app, image: IMAGE}, {name: proxy, image: musl-app}]
`
	det := byImage{"glibc-app": libc.GLibc, "musl-app": libc.Musl}
	dns := resolvconf.ClusterDNS{Nameservers: []string{"10.96.0.10"}, ClusterDomain: "cluster.local"}
	tests := []struct {
		name, image string
		none        []libc.Libc
		enforced    string
		text        []string
	}{
		{"musl appended", "musl-app", nil,
			"search shop.svc.cluster.local svc.cluster.local cluster.local\nnameserver 10.96.0.10\nnameserver 169.254.20.10\noptions ndots:5 timeout:2 attempts:10\n",
			[]string{"NodeLocal DNSCache (policy nodeLocalDNS on): musl: added the NodeLocal DNSCache address 169.254.20.10 as a second nameserver; musl asks both in parallel"}},
		{"glibc none serves musl too", "glibc-app", []libc.Libc{libc.GLibc},
			"search shop.svc.cluster.local svc.cluster.local cluster.local\nnameserver 169.254.20.10\nnameserver 10.96.0.10\noptions single-request-reopen timeout:1 attempts:3 ndots:5\n",
			[]string{"glibc: dnsPolicy None with NodeLocal DNSCache 169.254.20.10 first, then the cluster DNS 10.96.0.10", "musl asks both in parallel",
				"ignores single-request-reopen: musl sends A and AAAA in parallel; dns-tuner added NodeLocal DNSCache 169.254.20.10"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ins, err := ReadPods(strings.NewReader(strings.Replace(doc, "IMAGE", tt.image, 1)), "nl.yaml", "default")
			if err != nil {
				t.Fatal(err)
			}
			p := policytest.Policy()
			p.NodeLocalDNS = policy.NodeLocalDNS{Mode: policy.NodeLocalOn, DNSPolicyNone: tt.none}
			p.ClusterDNS = "10.96.0.10"
			r, err := Explain(context.Background(), p, det, time.Second, dns, ins[0])
			if err != nil {
				t.Fatal(err)
			}
			if r.Enforced != tt.enforced {
				t.Errorf("enforced resolv.conf:\n%s\nwant:\n%s", r.Enforced, tt.enforced)
			}
			var text bytes.Buffer
			if err := PrintText(&text, []Report{r}); err != nil {
				t.Fatal(err)
			}
			for _, w := range tt.text {
				if !strings.Contains(text.String(), w) {
					t.Errorf("text lacks %q:\n%s", w, text.String())
				}
			}
			if strings.Contains(text.String(), "run NodeLocal DNSCache") {
				t.Errorf("advice tells the user to do what dns-tuner did:\n%s", text.String())
			}
		})
	}
}
