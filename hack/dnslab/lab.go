package main

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/miekg/dns"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/dns-tuner/dns-tuner/hack/dnslab/probes"
	"github.com/dns-tuner/dns-tuner/hack/dnslab/raceserver"
	"github.com/dns-tuner/dns-tuner/hack/dnslab/topo"
	"github.com/dns-tuner/dns-tuner/internal/libc"
	"github.com/dns-tuner/dns-tuner/internal/mutate"
	"github.com/dns-tuner/dns-tuner/internal/policy"
	"github.com/dns-tuner/dns-tuner/internal/resolvconf"
)

// Lookup is a name looked up as an application in namespace "default" would.
type Lookup struct {
	Kind, Name string
}

// Lookups: a service in the pod's namespace (found at the first search domain), a service in
// another namespace (found at the second), and an external name (three NXDOMAIN search
// misses under ndots:5, then the absolute name).
var Lookups = []Lookup{
	{"short", "web"},
	{"service", "api.payments"},
	{"external", "example.com"},
}

const podNamespace = "default"

// Backend is what stands between the probes and the DNS server.
type Backend string

const (
	// Model is the race model (raceserver) on a loopback address: a node with a kernel
	// before 5.6, where every parallel A/AAAA pair loses its second query.
	Model Backend = "model"
	// Kernel is this machine's kernel: network namespaces, a Service IP DNAT'd by iptables
	// or nftables to one or two DNS backends, A and AAAA processed on different CPUs.
	Kernel Backend = "kernel"
)

// Lab is DNS servers, built probes and the cluster configuration kubelet renders with.
type Lab struct {
	Backend Backend
	Servers []*raceserver.Server
	Probes  *probes.Set
	Cluster resolvconf.ClusterDNS
	Topo    *topo.Topology // the kernel backend's namespaces
	where   probes.Where
	tag     atomic.Uint64
}

// NewLab starts the race server for the lookups above and builds the probes into dir.
func NewLab(ctx context.Context, dir string, cfg raceserver.Config, which []libc.Libc) (*Lab, error) {
	set, err := probes.Build(ctx, dir, which)
	if err != nil {
		return nil, err
	}
	return NewModelLab(set, cfg)
}

func zone(cfg *raceserver.Config) {
	cfg.Services = []string{"web." + podNamespace, "api.payments"}
	cfg.External = []string{"example.com"}
}

// cluster is what kubelet renders with: the node contributes no search domains, so the
// search list is the cluster's three.
func cluster(nameserver string) resolvconf.ClusterDNS {
	return resolvconf.ClusterDNS{Nameservers: []string{nameserver}, ClusterDomain: "cluster.local", NodeResolvConf: &resolvconf.Config{}}
}

// NewModelLab starts the race model on a loopback address.
func NewModelLab(set *probes.Set, cfg raceserver.Config) (*Lab, error) {
	zone(&cfg)
	srv, err := raceserver.Start(cfg)
	if err != nil {
		return nil, fmt.Errorf("starting the race DNS server: %w", err)
	}
	return &Lab{Backend: Model, Servers: []*raceserver.Server{srv}, Probes: set, Cluster: cluster(srv.IP())}, nil
}

// NewKernelLab builds the real-kernel topology and starts a DNS server answering everything
// (the race model off) after delay (0: raceserver.DefaultDelay) in each backend namespace.
// Close tears it down.
func NewKernelLab(ctx context.Context, set *probes.Set, tc topo.Config, delay time.Duration) (*Lab, error) {
	t, err := topo.Create(ctx, tc)
	if err != nil {
		return nil, err
	}
	l := &Lab{Backend: Kernel, Probes: set, Topo: t, Cluster: cluster(topo.ServiceIP),
		where: probes.Where{NetNS: t.Pod, CPU: t.ProbeCPU, Pin: t.ProbeCPU >= 0}}
	for i, ns := range t.Backends {
		cfg := raceserver.Config{Addr: topo.BackendIP(i), Plain: true, Delay: delay,
			InNamespace: func(fn func() error) error { return topo.Do(ns, fn) }}
		zone(&cfg)
		srv, err := raceserver.Start(cfg)
		if err != nil {
			l.Close()
			return nil, fmt.Errorf("starting the DNS server in %s: %w", ns, err)
		}
		l.Servers = append(l.Servers, srv)
	}
	if err := l.ready(ctx); err != nil {
		l.Close()
		return nil, err
	}
	return l, nil
}

// ready waits until a query from the pod reaches every backend through the Service IP. New
// veths can drop packets for a while after they come up (most likely until the kernel's
// link-watch work activates their queues): once, a batch started right away lost every
// first query and stalled 5 s.
func (l *Lab) ready(ctx context.Context) error {
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		if err := ctx.Err(); err != nil {
			return err
		}
		_ = topo.Do(l.Topo.Pod, func() error {
			m := new(dns.Msg)
			m.SetQuestion("web.default.svc.cluster.local.", dns.TypeA)
			c := &dns.Client{Net: "udp", Timeout: 100 * time.Millisecond}
			_, _, err := c.Exchange(m, net.JoinHostPort(topo.ServiceIP, "53"))
			return err
		})
		up := 0
		for _, s := range l.Servers {
			if s.Total().Queries > 0 {
				up++
			}
		}
		if up == len(l.Servers) {
			return nil
		}
	}
	return fmt.Errorf("no DNS answer through %s from namespace %s", topo.ServiceIP, l.Topo.Pod)
}

// Close stops the servers and deletes the kernel backend's namespaces.
func (l *Lab) Close() {
	for _, s := range l.Servers {
		s.Close()
	}
	if l.Topo != nil {
		if err := l.Topo.Close(); err != nil {
			fmt.Fprintln(os.Stderr, "dnslab:", err)
		}
	}
}

// Silence makes every DNS server ignore queries for d (a restart).
func (l *Lab) Silence(d time.Duration) {
	for _, s := range l.Servers {
		s.Silence(d)
	}
}

// Conntrack reads the node's conntrack counters (kernel backend only).
func (l *Lab) Conntrack(ctx context.Context) (topo.Stats, error) {
	if l.Topo == nil {
		return topo.Stats{}, fmt.Errorf("the %s backend has no conntrack", l.Backend)
	}
	return l.Topo.Conntrack(ctx)
}

// Profile is a pod whose resolv.conf is measured.
type Profile struct {
	Name string
	Pod  *corev1.Pod
}

// SamplePod is a ClusterFirst pod with one container, as submitted.
func SamplePod() *corev1.Pod {
	return &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: "lab", Namespace: podNamespace},
		Spec: corev1.PodSpec{
			DNSPolicy:  corev1.DNSClusterFirst,
			Containers: []corev1.Container{{Name: "app", Image: "example.com/app:1"}},
		},
	}
}

// KubernetesDefault is the sample pod untouched: kubelet's ndots:5 and the libc defaults.
func KubernetesDefault() Profile { return Profile{Name: "kubernetes default", Pod: SamplePod()} }

// Shipped is the sample pod after dns-tuner admitted it in enforce mode with its container
// detected as l: the policy's decision (mutate.Decide) applied through the JSON patch the
// webhook returns (mutate.Patch).
func Shipped(p *policy.Policy, l libc.Libc) (Profile, error) {
	pod := SamplePod()
	view, err := mutate.PodFromCore(pod)
	if err != nil {
		return Profile{}, err
	}
	md := mutate.ModeDecision{Mode: policy.Enforce, Reason: "dnslab"}
	plan := mutate.Decide(p, view, md, []mutate.Container{{Name: "app", Verdict: libc.Verdict{Libc: l, Source: libc.SourceAnnotation}}})
	patched, err := applyPatch(pod, mutate.Patch(view, plan))
	if err != nil {
		return Profile{}, fmt.Errorf("applying the %s patch: %w", l, err)
	}
	return Profile{Name: "dns-tuner " + string(l), Pod: patched}, nil
}

// SingleOption is the sample pod with one option in its dnsConfig.
func SingleOption(o policy.Option) Profile {
	pod := SamplePod()
	pod.Spec.DNSConfig = &corev1.PodDNSConfig{Options: []corev1.PodDNSConfigOption{o}}
	return Profile{Name: policy.OptionString(o), Pod: pod}
}

// Cell is the measurement of one resolver, resolv.conf and name.
type Cell struct {
	Latencies []time.Duration
	Queries   []int // queries the server received per lookup, retransmissions included
	Dropped   []int // of those, lost to the race
	Failed    int   // lookups that did not return an address
	// Split counts the search steps whose queries (A and AAAA) reached different DNS
	// backends: the race that only kernels ≥ 5.6 resolve.
	Split int
}

// Percentile returns the p-th percentile latency (nearest rank).
func (c Cell) Percentile(p float64) time.Duration {
	if len(c.Latencies) == 0 {
		return 0
	}
	s := slices.Clone(c.Latencies)
	slices.Sort(s)
	i := int(p/100*float64(len(s))+0.999999) - 1
	return s[min(max(i, 0), len(s)-1)]
}

// Max returns the slowest lookup.
func (c Cell) Max() time.Duration { return c.Percentile(100) }

// MeanQueries returns the average number of queries per lookup.
func (c Cell) MeanQueries() float64 { return mean(c.Queries) }

// MeanDropped returns the average number of dropped queries per lookup.
func (c Cell) MeanDropped() float64 { return mean(c.Dropped) }

func mean(v []int) float64 {
	if len(v) == 0 {
		return 0
	}
	sum := 0
	for _, x := range v {
		sum += x
	}
	return float64(sum) / float64(len(v))
}

// Render renders the profile's resolv.conf as kubelet would for this lab's cluster.
func (l *Lab) Render(p Profile) (resolvconf.Config, error) {
	return resolvconf.Render(p.Pod, l.Cluster)
}

// Measure looks name up n times with resolver lc reading conf, a lookup starting every
// spacing.
func (l *Lab) Measure(ctx context.Context, lc libc.Libc, conf resolvconf.Config, name string, n int, spacing time.Duration) (Cell, error) {
	return l.MeasureNames(ctx, lc, conf, slices.Repeat([]string{name}, n), spacing)
}

// MeasureNames looks each name up once, a lookup starting every spacing.
func (l *Lab) MeasureNames(ctx context.Context, lc libc.Libc, conf resolvconf.Config, lookups []string, spacing time.Duration) (Cell, error) {
	names := make([]string, len(lookups))
	tags := make([]uint64, len(lookups))
	for i, name := range lookups {
		tags[i] = l.tag.Add(1)
		names[i] = raceserver.Tag(name, tags[i])
	}
	res, err := l.Probes.RunIn(ctx, l.where, lc, conf.String(), spacing, names)
	if err != nil {
		return Cell{}, err
	}
	var c Cell
	for i, r := range res {
		var st raceserver.Stats
		for _, srv := range l.Servers {
			s := srv.Stats(tags[i])
			st.Queries += s.Queries
			st.Dropped += s.Dropped
		}
		if len(l.Servers) > 1 {
			backends := map[string]int{}
			for _, srv := range l.Servers {
				for name := range srv.Asked(tags[i]) {
					backends[name]++
				}
			}
			for _, n := range backends {
				if n > 1 {
					c.Split++
				}
			}
		}
		c.Latencies = append(c.Latencies, r.Latency)
		c.Queries = append(c.Queries, st.Queries)
		c.Dropped = append(c.Dropped, st.Dropped)
		if r.Status != "ok" || r.Addrs == 0 {
			c.Failed++
		}
	}
	return c, nil
}

// applyPatch applies the add operations mutate.Patch produces, as the API server would.
func applyPatch(pod *corev1.Pod, ops []mutate.Op) (*corev1.Pod, error) {
	b, err := json.Marshal(pod)
	if err != nil {
		return nil, err
	}
	var doc any
	if err := json.Unmarshal(b, &doc); err != nil {
		return nil, err
	}
	for _, op := range ops {
		if op.Operation != "add" {
			return nil, fmt.Errorf("unexpected %s operation at %s", op.Operation, op.Path)
		}
		vb, err := json.Marshal(op.Value)
		if err != nil {
			return nil, err
		}
		var v any
		if err := json.Unmarshal(vb, &v); err != nil {
			return nil, err
		}
		var toks []string
		for _, t := range strings.Split(strings.TrimPrefix(op.Path, "/"), "/") {
			toks = append(toks, strings.ReplaceAll(strings.ReplaceAll(t, "~1", "/"), "~0", "~"))
		}
		if doc, err = addAt(doc, toks, v); err != nil {
			return nil, fmt.Errorf("%s: %w", op.Path, err)
		}
	}
	out := &corev1.Pod{}
	b, err = json.Marshal(doc)
	if err != nil {
		return nil, err
	}
	return out, json.Unmarshal(b, out)
}

// addAt is RFC 6902 "add": the parent must exist; "-" appends to an array.
func addAt(doc any, toks []string, v any) (any, error) {
	if len(toks) == 0 {
		return v, nil
	}
	switch d := doc.(type) {
	case map[string]any:
		if len(toks) == 1 {
			d[toks[0]] = v
			return d, nil
		}
		child, ok := d[toks[0]]
		if !ok {
			return nil, fmt.Errorf("no %q", toks[0])
		}
		nc, err := addAt(child, toks[1:], v)
		d[toks[0]] = nc
		return d, err
	case []any:
		if len(toks) == 1 && toks[0] == "-" {
			return append(d, v), nil
		}
		i, err := strconv.Atoi(toks[0])
		if err != nil || i < 0 || i > len(d) {
			return nil, fmt.Errorf("bad index %q", toks[0])
		}
		if len(toks) == 1 {
			return slices.Insert(d, i, v), nil
		}
		if i == len(d) {
			return nil, fmt.Errorf("index %d out of range", i)
		}
		nc, err := addAt(d[i], toks[1:], v)
		d[i] = nc
		return d, err
	}
	return nil, fmt.Errorf("cannot add into %T", doc)
}

// Targets under the race model: a dns-tuner profile must keep lookups this fast. A lost query
// costs glibc and Go at least a second (their minimum timeout), so 100 ms catches any loss
// while leaving room for a loaded CI machine (go test runs packages side by side: measured
// p99 up to 45 ms for lookups that lost nothing).
const (
	GlibcTarget = 100 * time.Millisecond // no lost query: a few round trips
	GoTarget    = 100 * time.Millisecond // one socket per query: nothing to lose
	MuslTarget  = 250 * time.Millisecond // musl cannot avoid the race: per lost query
)

// slack absorbs scheduling noise on a busy machine when comparing with a computed interval.
const slack = 150 * time.Millisecond

func intOption(c resolvconf.Config, name string, def int) int {
	v, ok := c.Option(name)
	if !ok {
		return def
	}
	n, err := strconv.Atoi(v)
	if err != nil {
		return def
	}
	return n
}

// LostReplyWait is what one lost query or reply costs resolver l reading conf: the per-try
// timeout for glibc, the retransmit interval timeout/attempts for musl (internal/libc's retry
// semantics, with each resolver's defaults and clamps).
func LostReplyWait(l libc.Libc, c resolvconf.Config) time.Duration {
	r := libc.About(l).Retry
	return r.LostReplyWait(intOption(c, "timeout", r.Timeout.Default), intOption(c, "attempts", r.Attempts.Default))
}

// GlibcTimeout is how long glibc waits for the first nameserver's answer before it retries:
// the timeout a lost query costs.
func GlibcTimeout(c resolvconf.Config) time.Duration { return LostReplyWait(libc.GLibc, c) }

// MuslRetransmit is musl's retransmit interval, timeout/attempts: what a lost query costs.
func MuslRetransmit(c resolvconf.Config) time.Duration { return LostReplyWait(libc.Musl, c) }

// OutageWait is the longest a one-step lookup waits when every query is lost for o (a DNS
// server restarting): the resolver resends every LostReplyWait, and the first resend after
// the outage is answered.
func OutageWait(l libc.Libc, c resolvconf.Config, o time.Duration) time.Duration {
	w := LostReplyWait(l, c)
	if w <= 0 {
		return 0
	}
	return (o + w - 1) / w * w
}

// Check compares a measurement of a dns-tuner profile with the targets and returns what
// misses them.
func Check(l libc.Libc, conf resolvconf.Config, c Cell) []string {
	var bad []string
	if c.Failed > 0 {
		bad = append(bad, fmt.Sprintf("%d of %d lookups failed", c.Failed, len(c.Latencies)))
	}
	p99 := c.Percentile(99)
	switch l {
	case libc.GLibc:
		if t := GlibcTimeout(conf); c.Max() >= t {
			bad = append(bad, fmt.Sprintf("a lookup took %s: it waited out the %s timeout", dur(c.Max()), t))
		}
		if p99 > GlibcTarget {
			bad = append(bad, fmt.Sprintf("p99 %s is over the glibc target %s", dur(p99), GlibcTarget))
		}
	case libc.Musl:
		interval := MuslRetransmit(conf)
		if interval > MuslTarget {
			bad = append(bad, fmt.Sprintf("musl retransmits every %s (timeout/attempts), over the %s target", interval, MuslTarget))
		}
		worst := 0
		for i, d := range c.Latencies {
			worst = max(worst, c.Dropped[i])
			if limit := time.Duration(c.Dropped[i])*interval + slack; d > limit {
				bad = append(bad, fmt.Sprintf("a lookup took %s for %d lost queries: more than one retransmit interval (%s) each", dur(d), c.Dropped[i], interval))
				break
			}
		}
		if limit := time.Duration(max(worst, 1)) * MuslTarget; p99 > limit {
			bad = append(bad, fmt.Sprintf("p99 %s is over %s (%s per lost query)", dur(p99), limit, MuslTarget))
		}
	case libc.Go:
		if p99 > GoTarget {
			bad = append(bad, fmt.Sprintf("p99 %s is over the Go target %s", dur(p99), GoTarget))
		}
		if d := c.MeanDropped(); d > 0 {
			bad = append(bad, fmt.Sprintf("%.1f queries per lookup lost to the race: Go should use one socket per query", d))
		}
	}
	return bad
}
