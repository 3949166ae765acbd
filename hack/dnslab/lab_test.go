package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/dns-tuner/dns-tuner/hack/dnslab/probes"
	"github.com/dns-tuner/dns-tuner/hack/dnslab/raceserver"
	"github.com/dns-tuner/dns-tuner/hack/dnslab/topo"
	"github.com/dns-tuner/dns-tuner/internal/libc"
	"github.com/dns-tuner/dns-tuner/internal/policy"
	"github.com/dns-tuner/dns-tuner/internal/resolvconf"
)

// These tests run the real resolvers against the race model. They need root, util-linux,
// gcc and musl-gcc (Debian: gcc, musl-tools); without them they fail, so CI cannot pass by
// skipping. -short skips them on a workstation.

var (
	lab    *Lab
	labErr error
)

func TestMain(m *testing.M) {
	flag.Parse()
	if testing.Short() {
		os.Exit(m.Run())
	}
	dir, err := os.MkdirTemp("", "dnslab-test-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	lab, labErr = NewLab(context.Background(), dir, raceserver.Config{}, probes.Libcs)
	code := m.Run()
	if lab != nil {
		lab.Close()
	}
	os.RemoveAll(dir)
	// Every namespace the kernel tests built is gone (their veths and rules with them).
	if left, err := topo.Ours(); err != nil || len(left) > 0 {
		fmt.Fprintf(os.Stderr, "network namespaces left behind: %v %v\n", left, err)
		code = 1
	}
	os.Exit(code)
}

func needLab(t *testing.T) *Lab {
	t.Helper()
	if testing.Short() {
		t.Skip("runs real resolvers as root; skipped with -short")
	}
	if labErr != nil {
		t.Fatalf("the DNS race lab cannot run here: %v", labErr)
	}
	return lab
}

func render(t *testing.T, l *Lab, p Profile) resolvconf.Config {
	t.Helper()
	conf, err := l.Render(p)
	if err != nil {
		t.Fatal(err)
	}
	return conf
}

// The shipped profiles, as the webhook injects them, meet the targets under the race.
func TestShippedProfilesUnderRace(t *testing.T) {
	l := needLab(t)
	for _, lc := range probes.Libcs {
		p, err := Shipped(policy.Default(), lc)
		if err != nil {
			t.Fatal(err)
		}
		conf := render(t, l, p)
		for _, lk := range Lookups {
			t.Run(fmt.Sprintf("%s/%s", lc, lk.Kind), func(t *testing.T) {
				t.Parallel()
				c, err := l.Measure(context.Background(), lc, conf, lk.Name, 20, 10*time.Millisecond)
				if err != nil {
					t.Fatal(err)
				}
				if bad := Check(lc, conf, c); len(bad) > 0 {
					t.Errorf("the shipped %s profile misses its targets for %s with resolv.conf\n%s\n%s",
						lc, lk.Name, conf, strings.Join(bad, "\n"))
				}
				// Keep the gate honest: musl cannot avoid the race, so the model must have
				// raced it; the other two must have avoided it.
				if lc == libc.Musl && c.MeanDropped() == 0 {
					t.Error("no query was lost: the race model did not race")
				}
				t.Logf("p50 %s p99 %s, %.1f queries (%.1f lost) per lookup", dur(c.Percentile(50)), dur(c.Percentile(99)), c.MeanQueries(), c.MeanDropped())
			})
		}
	}
}

// The Kubernetes default stalls for the libc's whole timeout, the bug dns-tuner exists for;
// Go's resolver is unaffected.
func TestKubernetesDefaultStalls(t *testing.T) {
	l := needLab(t)
	conf := render(t, l, KubernetesDefault())
	tests := []struct {
		libc  libc.Libc
		stall time.Duration
	}{
		{libc.GLibc, GlibcTimeout(conf)},
		{libc.Musl, MuslRetransmit(conf)},
		{libc.Go, 0},
	}
	for _, tt := range tests {
		t.Run(string(tt.libc), func(t *testing.T) {
			t.Parallel()
			c, err := l.Measure(context.Background(), tt.libc, conf, "web", 3, 0)
			if err != nil {
				t.Fatal(err)
			}
			if c.Failed > 0 {
				t.Errorf("%d lookups failed", c.Failed)
			}
			raced := 0
			for i, d := range c.Latencies {
				switch {
				case tt.stall == 0 && d > GoTarget:
					t.Errorf("lookup took %s, want under %s", dur(d), GoTarget)
				case tt.stall == 0 || c.Dropped[i] == 0:
					// Not raced: a musl thread preempted between its two sends on a
					// busy machine escapes the race, as it would in a cluster.
				case d < tt.stall || d > tt.stall+slack+100*time.Millisecond:
					t.Errorf("lookup that lost a query took %s, want the %s stall", dur(d), tt.stall)
				default:
					raced++
				}
			}
			if tt.stall > 0 && raced == 0 {
				t.Errorf("no lookup lost a query to the race (%v dropped): the model did not race", c.Dropped)
			}
		})
	}
}

// A wrong profile in the policy fails the same checks that pass the shipped ones.
func TestCheckRejectsBadProfiles(t *testing.T) {
	l := needLab(t)
	bad, err := policy.Parse([]byte(`profiles:
  glibc:
    inject: [{name: timeout, value: "1"}, {name: attempts, value: "3"}]
  musl:
    inject: [{name: timeout, value: "3"}, {name: attempts, value: "2"}]
`))
	if err != nil {
		t.Fatal(err)
	}
	for _, lc := range []libc.Libc{libc.GLibc, libc.Musl} {
		t.Run(string(lc), func(t *testing.T) {
			t.Parallel()
			p, err := Shipped(bad, lc)
			if err != nil {
				t.Fatal(err)
			}
			conf := render(t, l, p)
			c, err := l.Measure(context.Background(), lc, conf, "web", 2, 0)
			if err != nil {
				t.Fatal(err)
			}
			if got := Check(lc, conf, c); len(got) == 0 {
				t.Errorf("no violation for the %s profile (lookup took %s) with resolv.conf\n%s", lc, dur(c.Max()), conf)
			}
		})
	}
}

// The lab measures what the webhook would inject: the shipped profile reaches resolv.conf.
func TestShippedRendersThePolicy(t *testing.T) {
	cluster := resolvconf.ClusterDNS{Nameservers: []string{"127.0.10.10"}, ClusterDomain: "cluster.local", NodeResolvConf: &resolvconf.Config{}}
	pol := policy.Default()
	for _, lc := range libc.All {
		t.Run(string(lc), func(t *testing.T) {
			p, err := Shipped(pol, lc)
			if err != nil {
				t.Fatal(err)
			}
			conf, err := resolvconf.Render(p.Pod, cluster)
			if err != nil {
				t.Fatal(err)
			}
			for _, o := range pol.Profile(lc).Inject {
				v, ok := conf.Option(o.Name)
				if !ok || (o.Value != nil && v != *o.Value) {
					t.Errorf("resolv.conf lacks %s:\n%s", policy.OptionString(o), conf)
				}
			}
			if v, _ := conf.Option("ndots"); v != resolvconf.DefaultNdots {
				t.Errorf("ndots %q, want kubelet's %s", v, resolvconf.DefaultNdots)
			}
		})
	}
}

func TestRetransmitIntervals(t *testing.T) {
	tests := []struct {
		options string
		glibc   time.Duration
		musl    time.Duration
	}{
		{"", 5 * time.Second, 2500 * time.Millisecond},
		{"options timeout:2 attempts:10", 2 * time.Second, 200 * time.Millisecond},
		{"options timeout:90 attempts:50", 30 * time.Second, 6 * time.Second}, // glibc caps 30, musl 60 and 10
		{"options timeout:0", time.Second, 0},
	}
	for _, tt := range tests {
		c, err := resolvconf.Parse(tt.options)
		if err != nil {
			t.Fatal(err)
		}
		if g, m := GlibcTimeout(*c), MuslRetransmit(*c); g != tt.glibc || m != tt.musl {
			t.Errorf("%q: glibc %s musl %s, want %s and %s", tt.options, g, m, tt.glibc, tt.musl)
		}
	}
}
