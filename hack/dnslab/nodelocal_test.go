package main

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/dns-tuner/dns-tuner/internal/libc"
	"github.com/dns-tuner/dns-tuner/internal/policy"
)

// TestNodeLocalForms gates the NodeLocal DNSCache forms on the real resolvers, with the race
// model as kube-dns and a server that does not race as the cache: musl with the cache
// appended and glibc (and Go, on the same resolv.conf) with the dnsPolicy None form answer
// one-, two- and four-step names within 20 ms at p99; with the cache down (nothing
// listening) glibc falls through to kube-dns within 1.1 s. musl with the cache down is where
// it was without the cache: answered within 20 ms where kube-dns's path does not race, and
// at one retransmit interval per lost query where it does (no cache can answer for it).
func TestNodeLocalForms(t *testing.T) {
	l := needLab(t)
	nl, err := NewNodeLocalLab(l)
	if err != nil {
		t.Fatal(err)
	}
	defer nl.Close()
	cache := nl.Cache.IP()
	// A node whose kube-dns path does not race: the non-racing server as kube-dns.
	plain := nl.KubeDNSNotRacing()
	tests := []struct {
		lab     *Lab
		libc    libc.Libc
		none    bool
		cacheIP string
		state   string
		target  time.Duration // 0: musl's retransmit interval per lost query (Check)
	}{
		{nl.Lab, libc.Musl, false, cache, "cache-up", NodeLocalTarget},
		{nl.Lab, libc.GLibc, true, cache, "cache-up", NodeLocalTarget},
		{nl.Lab, libc.Go, true, cache, "cache-up", NodeLocalTarget},
		{nl.Lab, libc.GLibc, true, DownCacheAddr, "cache-down", NodeLocalDownGlibc},
		{plain, libc.Musl, false, DownCacheAddr, "cache-down-kube-dns-not-racing", NodeLocalDownTarget},
		{nl.Lab, libc.Musl, false, DownCacheAddr, "cache-down-kube-dns-racing", 0},
	}
	for _, tt := range tests {
		p, err := NodeLocalProfile(policy.Default(), tt.libc, tt.lab.Servers[0].IP(), tt.cacheIP, tt.none)
		if err != nil {
			t.Fatal(err)
		}
		conf := render(t, tt.lab, p)
		state := tt.state
		for _, lk := range Lookups {
			t.Run(fmt.Sprintf("%s/%s/%s", tt.libc, state, lk.Kind), func(t *testing.T) {
				c, err := tt.lab.Measure(context.Background(), tt.libc, conf, lk.Name, 20, 10*time.Millisecond)
				if err != nil {
					t.Fatal(err)
				}
				// A millisecond target on two shared cores: a run over it is measured again, up
				// to twice. A resolver that waits for a timeout or a retransmit misses by
				// hundreds of milliseconds every time; a busy machine misses by a few, once.
				for retry := 0; retry < 2 && tt.target > 0 && tt.target < time.Second && c.Percentile(99) > tt.target && c.Failed == 0; retry++ {
					t.Logf("p99 %s over the %s target; measuring again", dur(c.Percentile(99)), tt.target)
					if c, err = tt.lab.Measure(context.Background(), tt.libc, conf, lk.Name, 20, 10*time.Millisecond); err != nil {
						t.Fatal(err)
					}
				}
				p99 := c.Percentile(99)
				t.Logf("%s, %s: p50 %s p99 %s max %s, %.1f queries (%.1f lost) per lookup; resolv.conf:\n%s",
					p.Name, state, dur(c.Percentile(50)), dur(p99), dur(c.Max()), c.MeanQueries(), c.MeanDropped(), conf)
				if c.Failed > 0 {
					t.Errorf("%d of %d lookups failed", c.Failed, len(c.Latencies))
				}
				if tt.target == 0 {
					if bad := Check(tt.libc, conf, c); len(bad) > 0 {
						t.Errorf("%s, %s, %s: %s", p.Name, state, lk.Name, strings.Join(bad, "; "))
					}
					return
				}
				if p99 > tt.target {
					t.Errorf("%s, %s, %s: p99 %s over the %s target", p.Name, state, lk.Name, dur(p99), tt.target)
				}
			})
		}
	}
}
