// Command dnslab measures how real resolvers (glibc and musl getaddrinfo, Go's pure resolver)
// fare against a DNS server that models the conntrack insert race, with the resolv.conf
// kubelet renders for the Kubernetes default, for each dns-tuner profile and for single
// options. It prints p50/p99 lookup latency and queries per lookup. Needs root (a private
// mount namespace per batch, port 53 on a loopback address), gcc and musl-gcc.
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
	"strings"
	"text/tabwriter"
	"time"

	"github.com/dns-tuner/dns-tuner/hack/dnslab/raceserver"
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

func main() {
	n := flag.Int("n", 100, "lookups per libc, profile and name")
	delay := flag.Duration("delay", raceserver.DefaultDelay, "time the DNS server takes to answer")
	window := flag.Duration("window", raceserver.DefaultWindow, "longest time a new conntrack entry stays unconfirmed (a same-socket query arriving before the first is answered, within this window, is dropped)")
	spacing := flag.Duration("spacing", 5*time.Millisecond, "time between the starts of two lookups (each has its own thread, so stalled lookups overlap)")
	format := flag.String("format", "text", "text or markdown")
	libcs := flag.String("libc", "glibc,musl,go", "resolvers to measure")
	addr := flag.String("addr", raceserver.DefaultAddr, "loopback address for the DNS server (the next free one is used if taken)")
	config := flag.String("config", "", "policy file whose profiles are measured (default: the embedded default policy)")
	flag.Parse()
	if *format != "text" && *format != "markdown" {
		fail(fmt.Errorf("-format must be text or markdown"))
	}
	if *n < 1 {
		fail(fmt.Errorf("-n must be at least 1"))
	}

	pol := policy.Default()
	if *config != "" {
		b, err := os.ReadFile(*config)
		if err != nil {
			fail(err)
		}
		if pol, err = policy.Parse(b); err != nil {
			fail(err)
		}
	}
	var which []libc.Libc
	for _, s := range strings.Split(*libcs, ",") {
		l, err := libc.Parse(s)
		if err != nil {
			fail(err)
		}
		which = append(which, l)
	}

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	dir, err := os.MkdirTemp("", "dnslab-")
	if err != nil {
		fail(err)
	}
	defer os.RemoveAll(dir)
	lab, err := NewLab(ctx, dir, raceserver.Config{Addr: *addr, Delay: *delay, Window: *window}, which)
	if err != nil {
		fail(err)
	}
	defer lab.Close()

	profiles, err := Profiles(pol)
	if err != nil {
		fail(err)
	}
	var rows []row
	for _, l := range which {
		for _, p := range profiles {
			conf, err := lab.Render(p)
			if err != nil {
				fail(err)
			}
			r := row{libc: l, profile: p.Name, conf: conf}
			for _, lk := range Lookups {
				fmt.Fprintf(os.Stderr, "dnslab: %s, %s, %s…\n", l, p.Name, lk.Name)
				c, err := lab.Measure(ctx, l, conf, lk.Name, *n, *spacing)
				if err != nil {
					fail(err)
				}
				r.cells = append(r.cells, c)
			}
			rows = append(rows, r)
		}
	}
	header := fmt.Sprintf("%d lookups per cell, one starting every %s; DNS answers after %s; race window %s; p50 / p99 (queries per lookup)", *n, *spacing, *delay, *window)
	if *format == "markdown" {
		markdown(os.Stdout, header, rows)
	} else {
		text(os.Stdout, header, rows)
	}
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

type row struct {
	libc    libc.Libc
	profile string
	conf    resolvconf.Config
	cells   []Cell
}

func (r row) options() string { return options(r.conf) }

// options is resolv.conf's options line without "options".
func options(conf resolvconf.Config) string {
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

func markdown(w io.Writer, header string, rows []row) {
	fmt.Fprintf(w, "%s.\n\n", header)
	fmt.Fprint(w, "| libc | profile | resolv.conf options |")
	for _, lk := range Lookups {
		fmt.Fprintf(w, " %s `%s` |", lk.Kind, lk.Name)
	}
	fmt.Fprint(w, "\n|---|---|---|")
	for range Lookups {
		fmt.Fprint(w, "---|")
	}
	fmt.Fprintln(w)
	for _, r := range rows {
		fmt.Fprintf(w, "| %s | %s | `%s` |", r.libc, r.profile, r.options())
		for _, c := range r.cells {
			fmt.Fprintf(w, " %s |", cell(c))
		}
		fmt.Fprintln(w)
	}
}

func text(w io.Writer, header string, rows []row) {
	fmt.Fprintln(w, header)
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprint(tw, "LIBC\tPROFILE\tOPTIONS")
	for _, lk := range Lookups {
		fmt.Fprintf(tw, "\t%s (%s)", strings.ToUpper(lk.Kind), lk.Name)
	}
	fmt.Fprintln(tw)
	for _, r := range rows {
		fmt.Fprintf(tw, "%s\t%s\t%s", r.libc, r.profile, r.options())
		for _, c := range r.cells {
			fmt.Fprintf(tw, "\t%s", cell(c))
		}
		fmt.Fprintln(tw)
	}
	tw.Flush()
}

func fail(err error) {
	fmt.Fprintln(os.Stderr, "dnslab:", err)
	os.Exit(1)
}
