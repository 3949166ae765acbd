package topo

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"regexp"
	"slices"
	"strings"
	"testing"

	"golang.org/x/sys/unix"
)

func TestParseStats(t *testing.T) {
	tests := []struct {
		name, in string
		want     Stats
	}{
		{"6.x, two CPUs summed", `entries  clashres found new invalid ignore delete chainlength insert insert_failed drop early_drop icmp_error  expect_new expect_create expect_delete search_restart
00000004  0000000a 00000000 00000000 00000001 00000000 00000000 00000000 00000000 00000000 00000002 00000000 00000000  00000000 00000000 00000000 00000000
00000004  00000010 00000000 00000000 00000000 00000000 00000000 00000000 00000000 00000003 00000000 00000000 00000000  00000000 00000000 00000000 00000000
`, Stats{ClashResolve: 26, InsertFailed: 3, Drop: 2}},
		{"before clashres (5.4)", `entries  searched found new invalid ignore delete delete_list insert insert_failed drop early_drop icmp_error  expect_new expect_create expect_delete search_restart
00000001  00000000 00000000 00000000 00000000 00000000 00000000 00000000 00000000 00000005 00000005 00000000 00000000  00000000 00000000 00000000 00000000
`, Stats{ClashResolve: -1, InsertFailed: 5, Drop: 5}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := parseStats(tt.in)
			if err != nil {
				t.Fatal(err)
			}
			if got != tt.want {
				t.Errorf("got %+v, want %+v", got, tt.want)
			}
		})
	}
	if _, err := parseStats("entries clashres\n1 2 3\n"); err == nil {
		t.Error("a short line parsed")
	}
}

func TestCPUMask(t *testing.T) {
	for cpu, want := range map[int]string{0: "00000001", 1: "00000002", 31: "80000000", 33: "00000002,00000000"} {
		if got := cpuMask(cpu); got != want {
			t.Errorf("cpu %d: %s, want %s", cpu, got, want)
		}
	}
}

// The DNAT rules are kube-proxy's: with two endpoints the first is chosen with probability
// 1/2 and the last unconditionally (iptables), or numgen picks one of two (nftables).
func TestDNATRules(t *testing.T) {
	two := &Topology{Backends: []string{"a", "b"}}
	ipt := two.iptablesRules()
	for _, want := range []string{
		"-A KUBE-SERVICES -d 10.96.0.10/32 -p udp -m udp --dport 53 -j KUBE-SVC-DNS-UDP",
		"-A KUBE-SVC-DNS-UDP -m statistic --mode random --probability 0.50000000000 -j KUBE-SEP-DNS1-UDP",
		"-A KUBE-SVC-DNS-UDP -j KUBE-SEP-DNS2-UDP",
		"-A KUBE-SEP-DNS2-UDP -p udp -m udp -j DNAT --to-destination 10.244.12.2:53",
	} {
		if !strings.Contains(ipt, want+"\n") {
			t.Errorf("iptables rules lack %q:\n%s", want, ipt)
		}
	}
	if nft := two.nftablesRules(); !strings.Contains(nft, "numgen random mod 2 vmap { 0 : goto endpoint-dns1-udp, 1 : goto endpoint-dns2-udp }") {
		t.Errorf("nftables rules lack the numgen vmap:\n%s", nft)
	}
	one := &Topology{Backends: []string{"a"}}
	if ipt := one.iptablesRules(); strings.Contains(ipt, "statistic") {
		t.Errorf("one endpoint needs no statistic match:\n%s", ipt)
	}
}

func needHost(t *testing.T) {
	t.Helper()
	if testing.Short() {
		t.Skip("builds network namespaces as root; skipped with -short")
	}
	if err := CheckHost(); err != nil {
		t.Fatal(err)
	}
}

var counters = regexp.MustCompile(`\[[0-9]+:[0-9]+\]|counter packets [0-9]+ bytes [0-9]+`)

// rootState is everything of the root namespace the lab must leave alone.
func rootState(t *testing.T) string {
	t.Helper()
	var b strings.Builder
	for _, c := range [][]string{
		{"ip", "-o", "link", "show"}, {"ip", "-o", "addr", "show"}, {"ip", "route", "show", "table", "all"},
		{"ip", "rule", "show"}, {"nft", "list", "ruleset"}, {"iptables-save"},
	} {
		out, err := exec.Command(c[0], c[1:]...).CombinedOutput()
		if err != nil {
			t.Fatalf("%s: %v: %s", strings.Join(c, " "), err, out)
		}
		// iptables-save prints a timestamp; traffic moves chain and rule counters.
		var lines []string
		for _, l := range strings.Split(string(out), "\n") {
			if !strings.HasPrefix(l, "#") {
				lines = append(lines, counters.ReplaceAllString(l, ""))
			}
		}
		fmt.Fprintf(&b, "$ %s\n%s\n", strings.Join(c, " "), strings.Join(lines, "\n"))
	}
	return b.String()
}

// The topology lives in its own namespaces only: the root namespace's links, addresses,
// routes, rules and firewall are the same while it exists, and Close removes every namespace.
func TestTopologyStaysInItsNamespaces(t *testing.T) {
	needHost(t)
	before := rootState(t)
	ctx := context.Background()
	for _, dnat := range DNATs {
		top, err := Create(ctx, Config{Backends: 2, DNAT: dnat})
		if err != nil {
			t.Fatal(err)
		}
		during := rootState(t)
		names, _ := List()
		if err := top.Close(); err != nil {
			t.Error(err)
		}
		if during != before {
			t.Errorf("%s: the root namespace changed while the topology existed:\nbefore:\n%s\nduring:\n%s", dnat, before, during)
		}
		for _, ns := range append([]string{top.Pod, top.Node}, top.Backends...) {
			if !slices.Contains(names, ns) {
				t.Errorf("%s: namespace %s was not created (have %v)", dnat, ns, names)
			}
		}
	}
	if left, _ := Ours(); len(left) > 0 {
		t.Errorf("namespaces left after Close: %v", left)
	}
	if after := rootState(t); after != before {
		t.Errorf("the root namespace changed:\nbefore:\n%s\nafter:\n%s", before, after)
	}
}

// Namespaces of a lab process that died (killed before its cleanup) are removed by the next
// start; a running lab's are kept.
func TestRemoveStale(t *testing.T) {
	needHost(t)
	dead := 0
	for pid := 4194000; pid > 1000; pid-- {
		if unix.Kill(pid, 0) == unix.ESRCH {
			dead = pid
			break
		}
	}
	stale := fmt.Sprintf("dnslab-%d-1-pod", dead)
	live := fmt.Sprintf("dnslab-%d-99-pod", os.Getpid())
	for _, ns := range []string{stale, live} {
		if out, err := exec.Command("ip", "netns", "add", ns).CombinedOutput(); err != nil {
			t.Fatalf("%v: %s", err, out)
		}
	}
	t.Cleanup(func() {
		for _, ns := range []string{stale, live} {
			_ = exec.Command("ip", "netns", "del", ns).Run()
		}
	})
	if err := RemoveStale(context.Background()); err != nil {
		t.Fatal(err)
	}
	names, _ := List()
	if slices.Contains(names, stale) {
		t.Errorf("%s (pid %d is not running) was kept", stale, dead)
	}
	if !slices.Contains(names, live) {
		t.Errorf("%s (this process) was removed", live)
	}
}
