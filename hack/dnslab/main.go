// Command dnslab measures how real resolvers (glibc and musl getaddrinfo, Go's pure resolver)
// fare with the resolv.conf kubelet renders for the Kubernetes default, for each dns-tuner
// profile and for single options, on two backends:
//
//   - model: a DNS server on a loopback address that models the conntrack insert race of
//     kernels before 5.6 (every parallel A/AAAA pair loses its second query);
//   - kernel: this machine's kernel, in network namespaces the lab creates: a pod, a node
//     that DNATs the Service IP as kube-proxy does (iptables or nftables) to one or two DNS
//     backends, A and AAAA processed on different CPUs; it reports the node's conntrack
//     counters (clash_resolve, insert_failed, drop).
//
// and two loss scenarios on the kernel backend (the DNS server silent for 1 s as in a
// restart; 1 % random loss), which show what fast retry buys each libc on any kernel. Needs
// root, util-linux, gcc, musl-gcc, and for the kernel backend iproute2, iptables and nftables.
//
//	go run ./hack/dnslab -format markdown
package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"text/tabwriter"
	"time"

	"golang.org/x/sys/unix"

	"github.com/dns-tuner/dns-tuner/hack/dnslab/probes"
	"github.com/dns-tuner/dns-tuner/hack/dnslab/raceserver"
	"github.com/dns-tuner/dns-tuner/hack/dnslab/topo"
	"github.com/dns-tuner/dns-tuner/internal/libc"
	"github.com/dns-tuner/dns-tuner/internal/policy"
	"github.com/dns-tuner/dns-tuner/internal/resolvconf"
)

// singleOptions are the options measured on their own on top of the Kubernetes default.
var singleOptions = []policy.Option{
	{Name: "single-request"},
	{Name: "single-request-reopen"},
	{Name: "use-vc"},
	{Name: "no-aaaa"},
}

// Scenarios.
const (
	ScenarioRace   = "race"   // the A/AAAA conntrack race, on each chosen backend
	ScenarioOutage = "outage" // the DNS server silent for a while (kernel backend)
	ScenarioLoss   = "loss"   // random packet loss (kernel backend)
	ScenarioSlow   = "slow"   // DNS answers slower than a clashing conntrack entry lives (kernel backend, two backends)
)

type options struct {
	n, kernelN, outageN, lossN, slowN int
	delay, window, spacing            time.Duration
	outage, kernelSpacing             time.Duration
	loss                              float64
	format, addr, config              string
	libcs, backends, scenarios        []string
	dnats                             []topo.DNAT
	endpoints                         []int
}

func main() {
	var o options
	flag.IntVar(&o.n, "n", 100, "model backend: lookups per libc, profile and name")
	flag.IntVar(&o.kernelN, "kernel-n", 2000, "kernel backend: lookups per libc, profile and topology (the names in turn)")
	flag.IntVar(&o.outageN, "outage-n", 100, "outage scenario: lookups per libc and profile, spread over 2 s around the outage")
	flag.IntVar(&o.lossN, "loss-n", 1000, "loss scenario: lookups per libc and profile")
	flag.IntVar(&o.slowN, "slow-n", 100, "slow scenario: lookups per libc and profile")
	flag.DurationVar(&o.delay, "delay", raceserver.DefaultDelay, "time the DNS server takes to answer")
	flag.DurationVar(&o.window, "window", raceserver.DefaultWindow, "model backend: longest time a new conntrack entry stays unconfirmed (a same-socket query arriving before the first is answered, within this window, is dropped)")
	flag.DurationVar(&o.spacing, "spacing", 5*time.Millisecond, "time between the starts of two lookups (each has its own thread, so stalled lookups overlap)")
	flag.DurationVar(&o.kernelSpacing, "kernel-spacing", 5*time.Millisecond, "kernel backend: time between the starts of two lookups")
	flag.DurationVar(&o.outage, "outage", time.Second, "outage scenario: how long the DNS server is silent")
	flag.Float64Var(&o.loss, "loss", 0.01, "loss scenario: probability that the node drops a UDP packet (each way)")
	flag.StringVar(&o.format, "format", "text", "text or markdown")
	flag.StringVar(&o.addr, "addr", raceserver.DefaultAddr, "model backend: loopback address for the DNS server (the next free one is used if taken)")
	flag.StringVar(&o.config, "config", "", "policy file whose profiles are measured (default: the embedded default policy)")
	libcs := flag.String("libc", "glibc,musl,go", "resolvers to measure")
	backends := flag.String("backend", "model,kernel", "where the race scenario runs: model (the race of kernels before 5.6), kernel (this kernel)")
	scenarios := flag.String("scenarios", "race,slow,outage,loss", "race (on each -backend); slow, outage and loss (always on the kernel backend)")
	dnats := flag.String("dnat", "iptables,nftables", "kernel backend: kube-proxy DNAT modes for the race scenario")
	endpoints := flag.String("backends", "1,2", "kernel backend: DNS backends behind the Service for the race scenario")
	flag.Parse()

	o.libcs, o.backends, o.scenarios = split(*libcs), split(*backends), split(*scenarios)
	for _, d := range split(*dnats) {
		o.dnats = append(o.dnats, topo.DNAT(d))
	}
	for _, e := range split(*endpoints) {
		n, err := strconv.Atoi(e)
		if err != nil {
			fail(fmt.Errorf("-backends: %w", err))
		}
		o.endpoints = append(o.endpoints, n)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, o, os.Stdout); err != nil {
		fail(err)
	}
}

func split(s string) []string {
	var out []string
	for _, f := range strings.Split(s, ",") {
		if f = strings.TrimSpace(f); f != "" {
			out = append(out, f)
		}
	}
	return out
}

// run measures and prints; every namespace it built is deleted when it returns, also on
// error or interrupt.
func run(ctx context.Context, o options, w io.Writer) error {
	if o.format != "text" && o.format != "markdown" {
		return fmt.Errorf("-format must be text or markdown")
	}
	if o.n < 1 || o.kernelN < 1 || o.outageN < 1 || o.lossN < 1 || o.slowN < 1 {
		return fmt.Errorf("-n, -kernel-n, -outage-n, -loss-n and -slow-n must be at least 1")
	}
	for _, b := range o.backends {
		if b != string(Model) && b != string(Kernel) {
			return fmt.Errorf("-backend: %q is neither %s nor %s", b, Model, Kernel)
		}
	}
	for _, s := range o.scenarios {
		if s != ScenarioRace && s != ScenarioSlow && s != ScenarioOutage && s != ScenarioLoss {
			return fmt.Errorf("-scenarios: %q is not %s, %s, %s or %s", s, ScenarioRace, ScenarioSlow, ScenarioOutage, ScenarioLoss)
		}
	}
	pol := policy.Default()
	if o.config != "" {
		b, err := os.ReadFile(o.config)
		if err != nil {
			return err
		}
		if pol, err = policy.Parse(b); err != nil {
			return err
		}
	}
	var which []libc.Libc
	for _, s := range o.libcs {
		l, err := libc.Parse(s)
		if err != nil {
			return err
		}
		which = append(which, l)
	}

	dir, err := os.MkdirTemp("", "dnslab-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	set, err := probes.Build(ctx, dir, which)
	if err != nil {
		return err
	}
	var tables []table
	if slices.Contains(o.scenarios, ScenarioRace) && slices.Contains(o.backends, string(Model)) {
		t, err := modelRace(ctx, o, set, pol, which)
		if err != nil {
			return err
		}
		tables = append(tables, t)
	}
	if slices.Contains(o.scenarios, ScenarioRace) && slices.Contains(o.backends, string(Kernel)) {
		t, err := kernelRace(ctx, o, set, pol, which)
		if err != nil {
			return err
		}
		tables = append(tables, t)
	}
	if slices.Contains(o.scenarios, ScenarioSlow) {
		t, err := slowAnswers(ctx, o, set, pol, which)
		if err != nil {
			return err
		}
		tables = append(tables, t)
	}
	if slices.Contains(o.scenarios, ScenarioOutage) || slices.Contains(o.scenarios, ScenarioLoss) {
		ts, err := lossScenarios(ctx, o, set, pol, which)
		if err != nil {
			return err
		}
		tables = append(tables, ts...)
	}
	for _, t := range tables {
		if o.format == "markdown" {
			t.markdown(w)
		} else {
			t.text(w)
		}
	}
	return nil
}

func progress(format string, args ...any) { fmt.Fprintf(os.Stderr, "dnslab: "+format+"\n", args...) }

// modelRace is the race model table: every libc × profile × name.
func modelRace(ctx context.Context, o options, set *probes.Set, pol *policy.Policy, which []libc.Libc) (table, error) {
	lab, err := NewModelLab(set, raceserver.Config{Addr: o.addr, Delay: o.delay, Window: o.window})
	if err != nil {
		return table{}, err
	}
	defer lab.Close()
	profiles, err := Profiles(pol)
	if err != nil {
		return table{}, err
	}
	t := table{
		title: "Race model: kernels before 5.6",
		note: fmt.Sprintf("%d lookups per cell, one starting every %s; DNS answers after %s; race window %s; p50 / p99 (queries per lookup)",
			o.n, o.spacing, o.delay, o.window),
		head: []string{"libc", "profile", "resolv.conf options"},
	}
	for _, lk := range Lookups {
		t.head = append(t.head, fmt.Sprintf("%s `%s`", lk.Kind, lk.Name))
	}
	for _, l := range which {
		for _, p := range profiles {
			conf, err := lab.Render(p)
			if err != nil {
				return table{}, err
			}
			r := []string{string(l), p.Name, "`" + optionsOf(conf) + "`"}
			for _, lk := range Lookups {
				progress("model: %s, %s, %s…", l, p.Name, lk.Name)
				c, err := lab.Measure(ctx, l, conf, lk.Name, o.n, o.spacing)
				if err != nil {
					return table{}, err
				}
				r = append(r, cell(c))
			}
			t.rows = append(t.rows, r)
		}
	}
	return t, nil
}

var raceHead = []string{"DNAT", "backends", "libc", "profile", "resolv.conf options", "lookups", "stalls > 1 s", "p50", "p99", "max",
	"steps on both backends", "clash_resolve", "insert_failed", "drop", "other losses"}

func raceRow(d topo.DNAT, backends int, res RaceResult) []string {
	c, ct := res.Cell, res.Conntrack
	clash := "unknown"
	if ct.ClashResolve >= 0 {
		clash = strconv.FormatInt(ct.ClashResolve, 10)
	}
	return []string{string(d), strconv.Itoa(backends), string(res.Libc), res.Profile, "`" + optionsOf(res.Conf) + "`",
		strconv.Itoa(len(c.Latencies)), stalls(c), dur(c.Percentile(50)), dur(c.Percentile(99)), dur(c.Max()),
		strconv.Itoa(c.Split), clash, strconv.FormatInt(ct.InsertFailed, 10), strconv.FormatInt(ct.Drop, 10), losses(res.Losses)}
}

// slowAnswers is the race with DNS answers slower than a clashing conntrack entry lives.
func slowAnswers(ctx context.Context, o options, set *probes.Set, pol *policy.Policy, which []libc.Libc) (table, error) {
	progress("kernel: answers after %s, 2 backends…", SlowAnswer)
	lab, err := NewKernelLab(ctx, set, topo.Config{Backends: 2, DNAT: topo.IPTables}, SlowAnswer)
	if err != nil {
		return table{}, err
	}
	defer lab.Close()
	runs, err := KernelRuns(lab, pol, which)
	if err != nil {
		return table{}, err
	}
	t := table{title: fmt.Sprintf("Real kernel %s: DNS answers after %s, two backends", kernelRelease(), SlowAnswer),
		note: fmt.Sprintf("%d lookups of `%s` per row, one starting every 20ms; the DNS servers answer after %s, longer than the "+
			"conntrack entry of a query that raced to a different backend lives (about one second)", o.slowN, LossName, SlowAnswer),
		head: raceHead}
	for _, r := range runs {
		progress("kernel: slow answers, %s, %s…", r.Libc, r.Profile)
		res, err := lab.MeasureRace(ctx, r, slices.Repeat([]string{LossName}, o.slowN), 20*time.Millisecond)
		if err != nil {
			return table{}, err
		}
		t.rows = append(t.rows, raceRow(topo.IPTables, 2, res))
	}
	return t, nil
}

// kernelRace measures each topology × libc × profile on this kernel.
func kernelRace(ctx context.Context, o options, set *probes.Set, pol *policy.Policy, which []libc.Libc) (table, error) {
	t := table{
		title: "Real kernel " + kernelRelease() + ": the A/AAAA race",
		head:  raceHead,
	}
	for _, d := range o.dnats {
		for _, e := range o.endpoints {
			progress("kernel: %s DNAT to %d backends…", d, e)
			lab, err := NewKernelLab(ctx, set, topo.Config{Backends: e, DNAT: d}, o.delay)
			if err != nil {
				return table{}, err
			}
			t.note = fmt.Sprintf("%d lookups per row (web, api.payments, example.com in turn), one starting every %s; DNS answers after %s; "+
				"conntrack counters of the node over the row; other losses: packets dropped because a socket's receive buffer "+
				"(Udp RcvbufErrors of the pod and backends) or a CPU's backlog (softnet_stat, machine-wide) was full, "+
				"and replies with no socket in the pod (Udp NoPorts: not translated back to the Service IP, or after the resolver gave up); "+
				"steps on both backends: search steps whose queries reached both DNS backends (for glibc's default and musl, "+
				"a pair that raced to different backends). Steering: %s", o.kernelN, o.kernelSpacing, o.delay, lab.Topo.Steering)
			runs, err := KernelRuns(lab, pol, which)
			if err == nil {
				for _, r := range runs {
					progress("kernel: %s, %d backends, %s, %s…", d, e, r.Libc, r.Profile)
					var res RaceResult
					if res, err = lab.MeasureRace(ctx, r, InTurn(o.kernelN), o.kernelSpacing); err != nil {
						break
					}
					t.rows = append(t.rows, raceRow(d, e, res))
				}
			}
			lab.Close()
			if err != nil {
				return table{}, err
			}
		}
	}
	return t, nil
}

// lossScenarios measures the outage and random loss on one iptables DNAT to one backend.
func lossScenarios(ctx context.Context, o options, set *probes.Set, pol *policy.Policy, which []libc.Libc) ([]table, error) {
	progress("kernel: loss scenarios…")
	lab, err := NewKernelLab(ctx, set, topo.Config{Backends: 1, DNAT: topo.IPTables}, o.delay)
	if err != nil {
		return nil, err
	}
	defer lab.Close()
	runs, err := KernelRuns(lab, pol, which)
	if err != nil {
		return nil, err
	}
	var tables []table
	head := []string{"libc", "profile", "resolv.conf options", "lookups", "failed", "stalls > 1 s", "p50", "p99", "max"}
	if slices.Contains(o.scenarios, ScenarioOutage) {
		out := Outage{At: 500 * time.Millisecond, Duration: o.outage, Window: 2 * time.Second, N: o.outageN}
		progress("kernel: DNS server silent for %s…", o.outage)
		cells, err := lab.MeasureOutage(ctx, runs, out)
		if err != nil {
			return nil, err
		}
		t := table{title: fmt.Sprintf("Real kernel %s: the DNS server silent for %s (a restart)", kernelRelease(), o.outage),
			note: fmt.Sprintf("%d lookups of `%s` per row, spread over %s, all rows at once; the server ignores every query from %s after the start for %s. "+
				"Worst case from the libc's retry semantics: the first resend after the outage is answered",
				o.outageN, LossName, out.Window, out.At, o.outage),
			head: append(slices.Clone(head), "worst case by retry semantics")}
		for i, r := range runs {
			t.rows = append(t.rows, append(lossRow(r, cells[i]), dur(OutageWait(r.Libc, r.Conf, o.outage))))
		}
		tables = append(tables, t)
	}
	if slices.Contains(o.scenarios, ScenarioLoss) {
		progress("kernel: %g%% random loss…", o.loss*100)
		cells, err := lab.MeasureLoss(ctx, runs, o.loss, o.lossN, o.spacing)
		if err != nil {
			return nil, err
		}
		t := table{title: fmt.Sprintf("Real kernel %s: %g %% random loss", kernelRelease(), o.loss*100),
			note: fmt.Sprintf("%d lookups of `%s` per row, one starting every %s, all rows at once; the node drops %g %% of the UDP packets it forwards, queries and replies",
				o.lossN, LossName, o.spacing, o.loss*100),
			head: append(slices.Clone(head), "one lost packet costs")}
		for i, r := range runs {
			t.rows = append(t.rows, append(lossRow(r, cells[i]), dur(LostReplyWait(r.Libc, r.Conf))))
		}
		tables = append(tables, t)
	}
	return tables, nil
}

func lossRow(r Run, c Cell) []string {
	return []string{string(r.Libc), r.Profile, "`" + optionsOf(r.Conf) + "`", strconv.Itoa(len(c.Latencies)), strconv.Itoa(c.Failed),
		stalls(c), dur(c.Percentile(50)), dur(c.Percentile(99)), dur(c.Max())}
}

// losses names the packets lost outside conntrack (a loaded machine), which also stall.
func losses(l topo.Losses) string {
	var s []string
	if l.RcvbufErrors > 0 {
		s = append(s, fmt.Sprintf("%d socket buffer", l.RcvbufErrors))
	}
	if l.Backlog > 0 {
		s = append(s, fmt.Sprintf("%d CPU backlog", l.Backlog))
	}
	if l.NoSocket > 0 {
		s = append(s, fmt.Sprintf("%d replies with no socket", l.NoSocket))
	}
	if len(s) == 0 {
		return "0"
	}
	return strings.Join(s, ", ")
}

func stalls(c Cell) string { return strconv.Itoa(c.Stalls()) }

func kernelRelease() string {
	var u unix.Utsname
	if err := unix.Uname(&u); err != nil {
		return "(unknown)"
	}
	return unix.ByteSliceToString(u.Release[:])
}

// Profiles lists what is measured: the Kubernetes default, each profile of the policy that
// injects something, and each single option.
func Profiles(pol *policy.Policy) ([]Profile, error) {
	out := []Profile{KubernetesDefault()}
	for _, l := range libc.All {
		if len(pol.Profile(l).Inject) == 0 {
			continue // same resolv.conf as the Kubernetes default
		}
		p, err := Shipped(pol, l)
		if err != nil {
			return nil, err
		}
		out = append(out, p)
	}
	for _, o := range singleOptions {
		out = append(out, SingleOption(o))
	}
	return out, nil
}

// optionsOf is resolv.conf's options line without "options".
func optionsOf(conf resolvconf.Config) string {
	var s []string
	for _, o := range conf.Options {
		s = append(s, resolvconf.OptionString(o))
	}
	return strings.Join(s, " ")
}

func cell(c Cell) string {
	s := fmt.Sprintf("%s / %s (%.1f)", dur(c.Percentile(50)), dur(c.Percentile(99)), c.MeanQueries())
	if c.Failed > 0 {
		s += fmt.Sprintf(" %d failed", c.Failed)
	}
	return s
}

func dur(d time.Duration) string {
	switch {
	case d >= time.Second:
		return fmt.Sprintf("%.2f s", d.Seconds())
	case d >= 10*time.Millisecond:
		return fmt.Sprintf("%.0f ms", float64(d)/float64(time.Millisecond))
	}
	return fmt.Sprintf("%.1f ms", float64(d)/float64(time.Millisecond))
}

type table struct {
	title, note string
	head        []string
	rows        [][]string
}

func (t table) markdown(w io.Writer) {
	fmt.Fprintf(w, "### %s\n\n%s.\n\n| %s |\n|", t.title, t.note, strings.Join(t.head, " | "))
	for range t.head {
		fmt.Fprint(w, "---|")
	}
	fmt.Fprintln(w)
	for _, r := range t.rows {
		fmt.Fprintf(w, "| %s |\n", strings.Join(r, " | "))
	}
	fmt.Fprintln(w)
}

func (t table) text(w io.Writer) {
	fmt.Fprintf(w, "%s\n%s\n", strings.ToUpper(t.title), t.note)
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	var head []string
	for _, h := range t.head {
		head = append(head, strings.ToUpper(h))
	}
	fmt.Fprintln(tw, strings.Join(head, "\t"))
	for _, r := range t.rows {
		fmt.Fprintln(tw, strings.ReplaceAll(strings.Join(r, "\t"), "`", ""))
	}
	tw.Flush()
	fmt.Fprintln(w)
}

func fail(err error) {
	fmt.Fprintln(os.Stderr, "dnslab:", err)
	os.Exit(1)
}
