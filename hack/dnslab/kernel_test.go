package main

import (
	"context"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/dns-tuner/dns-tuner/hack/dnslab/topo"
	"github.com/dns-tuner/dns-tuner/internal/libc"
	"github.com/dns-tuner/dns-tuner/internal/policy"
	"github.com/dns-tuner/dns-tuner/internal/resolvconf"
)

// These tests run the real glibc and musl resolvers in network namespaces on this machine's
// kernel. Like the race-model tests they need root, gcc, musl-gcc, and here also iproute2,
// iptables and nftables: without them they fail (CI cannot pass by skipping); -short skips.

// loadSlack absorbs a busy machine (go test runs other packages at the same time) when a
// latency is compared with a resolver's computed wait.
const loadSlack = 500 * time.Millisecond

func kernelLab(t *testing.T, cfg topo.Config, delay time.Duration) *Lab {
	t.Helper()
	l := needLab(t)
	kl, err := NewKernelLab(context.Background(), l.Probes, cfg, delay)
	if err != nil {
		t.Fatalf("the real-kernel lab cannot run here: %v", err)
	}
	t.Cleanup(kl.Close)
	return kl
}

// steps is how many search steps name takes under ndots:5 in namespace default.
var steps = map[string]int{"web": 1, "api.payments": 2, "example.com": 4}

// On this kernel (≥ 5.6) the conntrack race between A and AAAA is resolved: the node races
// (clash_resolve counts it) but drops nothing, and the Kubernetes default, which has no
// race fix, never stalls, with one or two DNS backends and either kube-proxy DNAT. This is
// the evidence behind raceFix: auto.
func TestKernelResolvesTheRace(t *testing.T) {
	for _, backends := range []int{1, 2} {
		for _, dnat := range topo.DNATs {
			t.Run(fmt.Sprintf("%s/%d-backends", dnat, backends), func(t *testing.T) {
				l := kernelLab(t, topo.Config{Backends: backends, DNAT: dnat}, 0)
				if l.Topo.ProbeCPU < 0 {
					t.Fatalf("one CPU: A and AAAA cannot race here (%s)", l.Topo.Steering)
				}
				def := KubernetesDefault()
				conf := render(t, l, def)
				var clashes int64
				split := 0
				for _, lc := range []libc.Libc{libc.GLibc, libc.Musl} {
					res, err := l.MeasureRace(context.Background(), Run{Libc: lc, Profile: def.Name, Conf: conf}, InTurn(150), 2*time.Millisecond)
					if err != nil {
						t.Fatal(err)
					}
					c, ct := res.Cell, res.Conntrack
					if ct.InsertFailed != 0 || ct.Drop != 0 {
						t.Errorf("%s: the node dropped packets: insert_failed %d, drop %d", lc, ct.InsertFailed, ct.Drop)
					}
					if c.Failed > 0 || c.Stalls() > 0 {
						t.Errorf("%s: %d lookups failed, %d stalled over %s (max %s)", lc, c.Failed, c.Stalls(), StallAfter, dur(c.Max()))
					}
					// Every query answered the first time: two per search step, no resend.
					for i, q := range c.Queries {
						name := Lookups[i%len(Lookups)].Name
						if want := 2 * steps[name]; q != want {
							t.Errorf("%s: lookup %d of %s sent %d queries, want %d (none lost)", lc, i, name, q, want)
							break
						}
					}
					if ct.ClashResolve < 0 {
						t.Fatalf("this kernel does not report clash_resolve (/proc/net/stat/nf_conntrack clashres)")
					}
					clashes += ct.ClashResolve
					split += c.Split
					t.Logf("%s: %d lookups, p50 %s p99 %s max %s; %d pairs split across backends; clash_resolve %d insert_failed %d drop %d",
						lc, len(c.Latencies), dur(c.Percentile(50)), dur(c.Percentile(99)), dur(c.Max()), c.Split, ct.ClashResolve, ct.InsertFailed, ct.Drop)
				}
				// Keep the gate honest: the lookups must have raced, and with two backends
				// some pairs must have been DNAT'd to different ones (the 5.6 fix).
				if clashes == 0 {
					t.Errorf("clash_resolve stayed 0: A and AAAA never raced (%s)", l.Topo.Steering)
				}
				if backends > 1 && split == 0 {
					t.Error("no A/AAAA pair reached two different backends")
				}
			})
		}
	}
}

// lossRuns are glibc and musl with the Kubernetes default and with the shipped profile.
func lossRuns(t *testing.T, l *Lab) []Run {
	t.Helper()
	runs, err := KernelRuns(l, policy.Default(), []libc.Libc{libc.GLibc, libc.Musl})
	if err != nil {
		t.Fatal(err)
	}
	if len(runs) != 4 {
		t.Fatalf("want the default and a shipped profile for glibc and musl, got %d runs", len(runs))
	}
	return runs
}

// A DNS server silent for 1 s (a CoreDNS restart) costs each lookup sent into the silence at
// most what its resolver's retry semantics say: the shipped profiles resend sooner than the
// Kubernetes default (glibc per-try timeout, musl timeout/attempts), and the default really
// pays its whole wait.
func TestOutageFastRetry(t *testing.T) {
	l := kernelLab(t, topo.Config{Backends: 1, DNAT: topo.IPTables}, 0)
	o := Outage{At: 500 * time.Millisecond, Duration: time.Second, Window: 2 * time.Second, N: 40}
	runs := lossRuns(t, l)
	cells, err := l.MeasureOutage(context.Background(), runs, o)
	if err != nil {
		t.Fatal(err)
	}
	byLibc := map[libc.Libc]time.Duration{}
	for _, r := range runs {
		if r.Profile == KubernetesDefault().Name {
			byLibc[r.Libc] = OutageWait(r.Libc, r.Conf, o.Duration)
		}
	}
	for i, r := range runs {
		c := cells[i]
		bound := OutageWait(r.Libc, r.Conf, o.Duration)
		t.Logf("%s, %s (%s): p50 %s p99 %s max %s, %d stalls; bound %s", r.Libc, r.Profile, optionsOf(r.Conf), dur(c.Percentile(50)), dur(c.Percentile(99)), dur(c.Max()), c.Stalls(), dur(bound))
		if c.Failed > 0 {
			t.Errorf("%s, %s: %d of %d lookups failed", r.Libc, r.Profile, c.Failed, len(c.Latencies))
		}
		if c.Max() > bound+loadSlack {
			t.Errorf("%s, %s: a lookup took %s, over the %s its retry semantics allow for a %s outage", r.Libc, r.Profile, dur(c.Max()), dur(bound), o.Duration)
		}
		if r.Profile == KubernetesDefault().Name {
			if w := LostReplyWait(r.Libc, r.Conf); c.Max() < w-100*time.Millisecond {
				t.Errorf("%s, Kubernetes default: slowest lookup %s, want the %s wait: the outage did not hit", r.Libc, dur(c.Max()), dur(w))
			}
		} else if def := byLibc[r.Libc]; bound >= def {
			t.Errorf("%s, %s: a %s outage costs up to %s, no better than the Kubernetes default's %s", r.Libc, r.Profile, o.Duration, dur(bound), dur(def))
		}
	}
}

// With 1 % of packets lost each way, the shipped profiles keep p99 within one of their own
// (short) waits, where the Kubernetes default waits its whole timeout.
func TestRandomLossP99(t *testing.T) {
	l := kernelLab(t, topo.Config{Backends: 1, DNAT: topo.IPTables}, 0)
	runs := lossRuns(t, l)
	cells, err := l.MeasureLoss(context.Background(), runs, 0.01, 300, 5*time.Millisecond)
	if err != nil {
		t.Fatal(err)
	}
	for i, r := range runs {
		c := cells[i]
		w := LostReplyWait(r.Libc, r.Conf)
		p99 := c.Percentile(99)
		t.Logf("%s, %s: p50 %s p99 %s max %s, %d stalls, %d failed; one wait %s", r.Libc, r.Profile, dur(c.Percentile(50)), dur(p99), dur(c.Max()), c.Stalls(), c.Failed, dur(w))
		if r.Profile == KubernetesDefault().Name {
			// musl's default tries twice in 5 s: a query or reply lost twice fails the
			// lookup, which the shipped profile's ten tries avoid.
			if c.Max() < w-100*time.Millisecond {
				t.Errorf("%s, Kubernetes default: slowest lookup %s, want at least one %s wait: nothing was lost", r.Libc, dur(c.Max()), dur(w))
			}
			continue
		}
		if c.Failed > 0 {
			t.Errorf("%s, %s: %d of %d lookups failed", r.Libc, r.Profile, c.Failed, len(c.Latencies))
		}
		if p99 > w+loadSlack {
			t.Errorf("%s, %s: p99 %s under 1%% loss, over one wait (%s)", r.Libc, r.Profile, dur(p99), dur(w))
		}
		if def := LostReplyWait(r.Libc, defaultConf(runs, r.Libc)); w >= def {
			t.Errorf("%s, %s: a lost packet costs %s, no better than the Kubernetes default's %s", r.Libc, r.Profile, dur(w), dur(def))
		}
	}
}

// The kernel keeps the conntrack entry of a query that raced to a different backend for about
// a second only: a DNS answer slower than that is not translated back and is lost, so glibc's
// default stalls even on this kernel, with two backends. The shipped glibc profile sends A
// and AAAA one after the other (single-request-reopen), so nothing races and nothing is lost.
func TestSlowAnswersOnTwoBackends(t *testing.T) {
	l := kernelLab(t, topo.Config{Backends: 2, DNAT: topo.IPTables}, SlowAnswer)
	runs, err := KernelRuns(l, policy.Default(), []libc.Libc{libc.GLibc})
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range runs {
		res, err := l.MeasureRace(context.Background(), r, slices.Repeat([]string{LossName}, 30), 20*time.Millisecond)
		if err != nil {
			t.Fatal(err)
		}
		c := res.Cell
		t.Logf("%s: p50 %s max %s, %d stalls, %d pairs split, %d replies with no socket; clash_resolve %d insert_failed %d drop %d",
			r.Profile, dur(c.Percentile(50)), dur(c.Max()), c.Stalls(), c.Split, res.Losses.NoSocket, res.Conntrack.ClashResolve, res.Conntrack.InsertFailed, res.Conntrack.Drop)
		if r.Profile == KubernetesDefault().Name {
			if c.Split == 0 {
				t.Fatal("no A/AAAA pair reached two different backends")
			}
			if want := SlowAnswer + LostReplyWait(r.Libc, r.Conf) - 100*time.Millisecond; c.Max() < want || res.Losses.NoSocket == 0 {
				t.Errorf("Kubernetes default: slowest lookup %s, %d replies with no socket: want a lost reply (over %s)", dur(c.Max()), res.Losses.NoSocket, dur(want))
			}
			continue
		}
		if limit := 2*SlowAnswer + loadSlack; c.Max() > limit || c.Failed > 0 {
			t.Errorf("%s: slowest lookup %s (%d failed), want both queries answered in turn within %s", r.Profile, dur(c.Max()), c.Failed, dur(limit))
		}
	}
}

// defaultConf is the Kubernetes default's resolv.conf for lc among runs.
func defaultConf(runs []Run, lc libc.Libc) resolvconf.Config {
	for _, r := range runs {
		if r.Libc == lc && r.Profile == KubernetesDefault().Name {
			return r.Conf
		}
	}
	return resolvconf.Config{}
}
