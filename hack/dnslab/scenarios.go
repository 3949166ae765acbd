package main

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/dns-tuner/dns-tuner/hack/dnslab/topo"
	"github.com/dns-tuner/dns-tuner/internal/libc"
	"github.com/dns-tuner/dns-tuner/internal/policy"
	"github.com/dns-tuner/dns-tuner/internal/resolvconf"
)

// StallAfter is what counts as a stalled lookup.
const StallAfter = time.Second

// Stalls counts the lookups slower than StallAfter.
func (c Cell) Stalls() int {
	n := 0
	for _, d := range c.Latencies {
		if d > StallAfter {
			n++
		}
	}
	return n
}

// Run is one resolver with one profile's resolv.conf.
type Run struct {
	Libc    libc.Libc
	Profile string
	Conf    resolvconf.Config
}

// KernelRuns are the resolvers measured on the real kernel, each with the Kubernetes default
// and with the profile dns-tuner gives it (when that profile injects something).
func KernelRuns(l *Lab, pol *policy.Policy, which []libc.Libc) ([]Run, error) {
	var runs []Run
	for _, lc := range which {
		profiles := []Profile{KubernetesDefault()}
		if len(pol.Profile(lc).Inject) > 0 {
			p, err := Shipped(pol, lc)
			if err != nil {
				return nil, err
			}
			profiles = append(profiles, p)
		}
		for _, p := range profiles {
			conf, err := l.Render(p)
			if err != nil {
				return nil, err
			}
			runs = append(runs, Run{Libc: lc, Profile: p.Name, Conf: conf})
		}
	}
	return runs, nil
}

// RaceResult is one run on the real kernel with the node's conntrack counters around it.
type RaceResult struct {
	Run
	Cell      Cell
	Conntrack topo.Stats
	Losses    topo.Losses
}

// InTurn is n lookups of the Lookups in turn.
func InTurn(n int) []string {
	names := make([]string, n)
	for i := range names {
		names[i] = Lookups[i%len(Lookups)].Name
	}
	return names
}

// MeasureRace looks the names up and reads the node's conntrack counters and the other
// losses before and after.
func (l *Lab) MeasureRace(ctx context.Context, r Run, names []string, spacing time.Duration) (RaceResult, error) {
	before, err := l.Conntrack(ctx)
	if err != nil {
		return RaceResult{}, err
	}
	lostBefore, err := l.Topo.Losses(ctx)
	if err != nil {
		return RaceResult{}, err
	}
	c, err := l.MeasureNames(ctx, r.Libc, r.Conf, names, spacing)
	if err != nil {
		return RaceResult{}, err
	}
	after, err := l.Conntrack(ctx)
	if err != nil {
		return RaceResult{}, err
	}
	lostAfter, err := l.Topo.Losses(ctx)
	if err != nil {
		return RaceResult{}, err
	}
	return RaceResult{Run: r, Cell: c, Conntrack: after.Sub(before), Losses: lostAfter.Sub(lostBefore)}, nil
}

// SlowAnswer is slower than the kernel keeps the conntrack entry of a query that lost the
// race to a different backend (nf_ct_resolve_clash_harder gives it a short fixed timeout;
// measured here: answers after 0.9 s come back, after 1.1 s they are lost): a slower answer
// finds it gone, is not translated back to the Service IP, and is lost. CoreDNS forwarding an
// uncached name upstream can take that long.
const SlowAnswer = 1200 * time.Millisecond

// LossName is looked up in the loss scenarios: one search step, so one lost query or reply
// costs one wait.
const LossName = "web"

// Outage is the DNS server silent for Duration, starting At after the lookups start, as a
// CoreDNS restart leaves the queries sent to it unanswered. The lookups are spread over
// Window, so some start before, during and after it.
type Outage struct {
	At, Duration, Window time.Duration
	N                    int // lookups per run
}

// MeasureOutage runs every run at once through one outage.
func (l *Lab) MeasureOutage(ctx context.Context, runs []Run, o Outage) ([]Cell, error) {
	spacing := o.Window / time.Duration(max(o.N, 1))
	t := time.AfterFunc(o.At, func() { l.Silence(o.Duration) })
	defer t.Stop()
	return l.concurrently(ctx, runs, o.N, spacing)
}

// MeasureLoss runs every run at once while the node drops each forwarded UDP packet with
// probability p.
func (l *Lab) MeasureLoss(ctx context.Context, runs []Run, p float64, n int, spacing time.Duration) ([]Cell, error) {
	if l.Topo == nil {
		return nil, fmt.Errorf("random loss needs the %s backend", Kernel)
	}
	undo, err := l.Topo.Loss(ctx, p)
	if err != nil {
		return nil, err
	}
	defer undo()
	return l.concurrently(ctx, runs, n, spacing)
}

func (l *Lab) concurrently(ctx context.Context, runs []Run, n int, spacing time.Duration) ([]Cell, error) {
	cells := make([]Cell, len(runs))
	errs := make([]error, len(runs))
	var wg sync.WaitGroup
	for i, r := range runs {
		wg.Go(func() {
			cells[i], errs[i] = l.Measure(ctx, r.Libc, r.Conf, LossName, n, spacing)
		})
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			return nil, fmt.Errorf("%s, %s: %w", runs[i].Libc, runs[i].Profile, err)
		}
	}
	return cells, nil
}
