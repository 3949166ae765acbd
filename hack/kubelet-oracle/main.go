//go:build ignore

// Command kubelet-oracle records what the real kubelet (k8s.io/kubernetes
// pkg/kubelet/network/dns) gives a pod as its resolver configuration, for thousands of
// generated cases, so internal/resolvconf is tested against kubelet itself rather than
// against a reading of its source.
//
// It imports k8s.io/kubernetes, which dns-tuner's go.mod must not require, so it is built in a
// throwaway module by run.sh next to it:
//
//	hack/kubelet-oracle/run.sh                 # rewrites internal/resolvconf/testdata/kubelet.json
//	hack/kubelet-oracle/run.sh -out /tmp/k.json -n 500
//
// Each case goes through kubelet's real path: a temporary file as kubelet's resolvConf,
// dns.NewConfigurer, GetPodDNS on a pod, and a fake event recorder for the DNSConfigForming and
// MissingClusterDNS events. The cases come from a fixed seed, and kubelet's option order (a Go
// map's) is sorted away, so a rerun at the same kubelet version rewrites the same file.
package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"log"
	"math/rand/v2"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/go-logr/logr"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/tools/record"
	"k8s.io/klog/v2"
	"k8s.io/kubernetes/pkg/kubelet/network/dns"
)

// Case is one kubelet input and what kubelet made of it. internal/resolvconf's
// TestKubeletParity reads the same shape.
type Case struct {
	Name string `json:"name,omitempty"` // hand-written cases only
	// Node is the node's resolv.conf; null means kubelet runs with resolvConf "".
	Node          *string              `json:"node"`
	NodeIPs       []string             `json:"nodeIPs,omitempty"`
	ClusterDNS    []string             `json:"clusterDNS,omitempty"`
	ClusterDomain string               `json:"clusterDomain,omitempty"`
	Namespace     string               `json:"namespace"`
	DNSPolicy     corev1.DNSPolicy     `json:"dnsPolicy"`
	HostNetwork   bool                 `json:"hostNetwork,omitempty"`
	DNSConfig     *corev1.PodDNSConfig `json:"dnsConfig,omitempty"`
	Want          Result               `json:"want"`
}

// Result is GetPodDNS's answer.
type Result struct {
	Err         bool     `json:"err,omitempty"` // GetPodDNS failed: the pod does not start
	Nameservers []string `json:"nameservers,omitempty"`
	Searches    []string `json:"searches,omitempty"`
	// Options are sorted: kubelet builds them through a map, so its order differs per call.
	Options []string `json:"options,omitempty"`
	// Events are the fake recorder's lines, "Warning <reason> <message>", in order.
	Events []string `json:"events,omitempty"`
}

func main() {
	out := flag.String("out", "", "file to write (default stdout)")
	n := flag.Int("n", 3000, "number of generated cases, after the hand-written ones")
	seed := flag.Uint64("seed", 8, "generator seed")
	version := flag.String("version", "", "kubelet version recorded in the file")
	flag.Parse()

	dir, err := os.MkdirTemp("", "kubelet-oracle")
	if err != nil {
		log.Fatal(err)
	}
	defer os.RemoveAll(dir)

	g := gen{r: rand.New(rand.NewPCG(*seed, 0))}
	cases := handWritten()
	for range *n {
		cases = append(cases, g.randomCase())
	}
	lines := make([]string, len(cases))
	for i := range cases {
		cases[i].Want = run(dir, &cases[i])
		b, err := json.Marshal(cases[i])
		if err != nil {
			log.Fatal(err)
		}
		lines[i] = string(b)
	}
	head, _ := json.Marshal(map[string]any{"kubelet": *version, "seed": *seed, "generator": "hack/kubelet-oracle"})
	doc := fmt.Sprintf("{\"meta\": %s,\n\"cases\": [\n%s\n]}\n", head, strings.Join(lines, ",\n"))
	if *out == "" {
		fmt.Print(doc)
		return
	}
	if err := os.WriteFile(*out, []byte(doc), 0o644); err != nil {
		log.Fatal(err)
	}
	log.Printf("wrote %d cases to %s", len(cases), *out)
}

// run asks kubelet's Configurer, exactly as kubelet does before creating a pod sandbox.
func run(dir string, c *Case) Result {
	resolvConf := ""
	if c.Node != nil {
		resolvConf = filepath.Join(dir, "resolv.conf")
		if err := os.WriteFile(resolvConf, []byte(*c.Node), 0o644); err != nil {
			log.Fatal(err)
		}
	}
	rec := record.NewFakeRecorder(100)
	conf := dns.NewConfigurer(rec, &corev1.ObjectReference{Kind: "Node", Name: "node"}, ips(c.NodeIPs), ips(c.ClusterDNS), c.ClusterDomain, resolvConf)
	pod := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: "p", Namespace: c.Namespace},
		Spec:       corev1.PodSpec{DNSPolicy: c.DNSPolicy, HostNetwork: c.HostNetwork, DNSConfig: c.DNSConfig.DeepCopy()},
	}
	ctx := klog.NewContext(context.Background(), logr.Discard())
	got, err := conf.GetPodDNS(ctx, pod)
	close(rec.Events)
	var res Result
	for e := range rec.Events {
		res.Events = append(res.Events, e)
	}
	if err != nil {
		res.Err = true
		return res
	}
	res.Nameservers, res.Searches = got.Servers, got.Searches
	res.Options = slices.Sorted(slices.Values(got.Options))
	return res
}

func ips(ss []string) []net.IP {
	var out []net.IP
	for _, s := range ss {
		ip := net.ParseIP(s)
		if ip == nil {
			log.Fatalf("bad IP %q", s)
		}
		out = append(out, ip)
	}
	return out
}

func str(s string) *string { return &s }

// handWritten are the cases issue 8 names, kept first so a failure points at them.
func handWritten() []Case {
	resolved := "# This is /run/systemd/resolve/resolv.conf managed by man:systemd-resolved(8).\nnameserver 10.0.0.2\nsearch .\n"
	stub := "nameserver 127.0.0.53\noptions edns0 trust-ad\nsearch .\n"
	cluster := []string{"10.96.0.10"}
	opt := func(name string, value *string) corev1.PodDNSConfigOption {
		return corev1.PodDNSConfigOption{Name: name, Value: value}
	}
	return []Case{
		{Name: "systemd-resolved's search . is no domain", Node: &resolved, Namespace: "shop", DNSPolicy: corev1.DNSDefault},
		{Name: "systemd-resolved stub under ClusterFirst", Node: &stub, ClusterDNS: cluster, ClusterDomain: "cluster.local", Namespace: "shop", DNSPolicy: corev1.DNSClusterFirst},
		{Name: "search . with more domains", Node: str("search . corp.example ..\nnameserver 10.0.0.2\n"), Namespace: "shop", DNSPolicy: corev1.DNSDefault},
		{Name: "options lines merge, last value per name wins", Node: str("nameserver 10.0.0.2\noptions ndots:1 timeout:1\noptions timeout:2 rotate\n"), Namespace: "shop", DNSPolicy: corev1.DNSDefault},
		{Name: "a name repeated in one options line is kept once", Node: str("nameserver 10.0.0.2\noptions ndots:1 ndots:3 ndots:2\n"), Namespace: "shop", DNSPolicy: corev1.DNSDefault},
		{Name: "ndots: with no value keeps its colon", Node: str("nameserver 10.0.0.2\noptions ndots:\n"), Namespace: "shop", DNSPolicy: corev1.DNSDefault},
		{Name: "ndots: loses its colon once the pod has a dnsConfig", Node: str("nameserver 10.0.0.2\noptions ndots: attempts:2\n"), Namespace: "shop", DNSPolicy: corev1.DNSDefault, DNSConfig: &corev1.PodDNSConfig{}},
		{Name: "pod option timeout:1 without a value is its own name", Node: str("nameserver 10.0.0.2\n"), ClusterDNS: cluster, ClusterDomain: "cluster.local", Namespace: "shop", DNSPolicy: corev1.DNSClusterFirst,
			DNSConfig: &corev1.PodDNSConfig{Options: []corev1.PodDNSConfigOption{opt("timeout:1", nil)}}},
		{Name: "pod option timeout:1 next to an injected timeout:2", Node: str("nameserver 10.0.0.2\n"), ClusterDNS: cluster, ClusterDomain: "cluster.local", Namespace: "shop", DNSPolicy: corev1.DNSClusterFirst,
			DNSConfig: &corev1.PodDNSConfig{Options: []corev1.PodDNSConfigOption{opt("timeout:1", nil), opt("timeout", str("2"))}}},
		{Name: "pod option timeout:1 next to the node's timeout:2", Node: str("nameserver 10.0.0.2\noptions timeout:2\n"), Namespace: "shop", DNSPolicy: corev1.DNSDefault,
			DNSConfig: &corev1.PodDNSConfig{Options: []corev1.PodDNSConfigOption{opt("timeout:1", str(""))}}},
		{Name: "pod option ndots:2 does not replace ndots:5", Node: str("nameserver 10.0.0.2\n"), ClusterDNS: cluster, ClusterDomain: "cluster.local", Namespace: "shop", DNSPolicy: corev1.DNSClusterFirst,
			DNSConfig: &corev1.PodDNSConfig{Options: []corev1.PodDNSConfigOption{opt("ndots:2", nil)}}},
		{Name: "pod option with a colon in its name and a value", Node: str("nameserver 10.0.0.2\n"), ClusterDNS: cluster, ClusterDomain: "cluster.local", Namespace: "shop", DNSPolicy: corev1.DNSClusterFirst,
			DNSConfig: &corev1.PodDNSConfig{Options: []corev1.PodDNSConfigOption{opt("timeout:1", str("3")), opt("ndots", str(""))}}},
		{Name: "cluster DNS addresses are written in canonical form", Node: str("nameserver 10.0.0.2\n"), ClusterDNS: []string{"fd00:0:0::a", "::ffff:10.96.0.10", "10.96.0.10"},
			ClusterDomain: "cluster.local", Namespace: "shop", DNSPolicy: corev1.DNSClusterFirst},
		{Name: "an IPv4-mapped node IP gets the IPv4 localhost", NodeIPs: []string{"::ffff:192.0.2.10", "2001:db8::10"}, Namespace: "shop", DNSPolicy: corev1.DNSDefault},
		{Name: "None without a dnsConfig is empty", Node: str("nameserver 10.0.0.2\nsearch corp.example\noptions rotate\n"), Namespace: "shop", DNSPolicy: corev1.DNSNone},
		{Name: "a nameserver line without an address fails the pod, even with dnsPolicy None", Node: str("nameserver\nnameserver 10.0.0.2\n"), Namespace: "shop", DNSPolicy: corev1.DNSNone,
			DNSConfig: &corev1.PodDNSConfig{Nameservers: []string{"192.0.2.1"}}},
	}
}

type gen struct{ r *rand.Rand }

func (g gen) chance(p float64) bool { return g.r.Float64() < p }

func pick[T any](g gen, s []T) T { return s[g.r.IntN(len(s))] }

var (
	nodeServers = []string{"10.0.0.2", "10.0.0.3", "192.168.1.1", "127.0.0.53", "1.1.1.1", "8.8.8.8", "::1", "fd00::10", "2001:db8::1"}
	domains     = []string{"ec2.internal", "corp.example", "example.com", "cluster.local", "svc.cluster.local",
		"shop.svc.cluster.local", "lan", "home.arpa", "a.b.c.d", "us-east-1.compute.internal", "x"}
	optNames  = []string{"ndots", "timeout", "attempts", "rotate", "edns0", "single-request", "single-request-reopen", "use-vc", "no-aaaa", "trust-ad", "inet6", "debug"}
	optValues = []string{"0", "1", "2", "5", "15", "x", "1:2"}
	// Pod option names as the API admits them: any non-empty string, colons included.
	podOptNames = []string{"ndots", "timeout", "attempts", "rotate", "edns0", "single-request-reopen", "use-vc",
		"timeout:1", "ndots:2", "attempts:3", "a:b", "ndots:", "timeout:"}
	podServers = []string{"10.96.0.10", "192.0.2.1", "1.1.1.1", "10.0.0.2", "fd00::a", "2001:db8::53"}
	clusterDNS = [][]string{nil, {"10.96.0.10"}, {"10.96.0.10"}, {"10.96.0.10"}, {"10.96.0.10", "10.96.0.11"}, {"fd00::a"}, {"10.96.0.10", "fd00::a"}}
	policies   = []corev1.DNSPolicy{corev1.DNSClusterFirst, corev1.DNSClusterFirst, corev1.DNSClusterFirstWithHostNet, corev1.DNSDefault, corev1.DNSDefault, corev1.DNSNone}
)

// domain is a search domain, sometimes in a spelling kubelet treats specially: a trailing dot,
// a lone dot, two dots, or longer than the 253 characters a search path may have.
func (g gen) domain() string {
	d := pick(g, domains)
	switch g.r.IntN(20) {
	case 0, 1, 2:
		return d + "."
	case 3, 4:
		return "."
	case 5:
		return d + ".."
	case 6:
		return ".."
	case 7:
		if g.chance(0.3) {
			return strings.Repeat("l", 240+g.r.IntN(20)) + ".example"
		}
		return "svc." + d
	case 8:
		return fmt.Sprintf("d%d.%s", g.r.IntN(100), d)
	}
	return d
}

// domains is a search list: usually short, sometimes over 32 domains or 2048 characters.
func (g gen) domains(max int) []string {
	var n int
	wide := false
	switch g.r.IntN(60) {
	case 0:
		n = 28 + g.r.IntN(12)
	case 1:
		n, wide = 10+g.r.IntN(8), true
	default:
		n = g.r.IntN(max + 1)
	}
	out := make([]string, n)
	for i := range out {
		if wide {
			out[i] = fmt.Sprintf("w%d.%s", i, strings.Repeat("w", 150+g.r.IntN(100)))
			continue
		}
		out[i] = g.domain()
	}
	return out
}

// nodeOption is one word of an options line, in every shape a file can hold.
func (g gen) nodeOption() string {
	name := pick(g, optNames)
	switch g.r.IntN(12) {
	case 0, 1, 2, 3:
		return name
	case 4:
		return name + ":"
	case 5:
		return ":" + pick(g, optValues)
	case 6:
		return ":"
	}
	return name + ":" + pick(g, optValues)
}

// nodeLine is one line of a node resolv.conf, with the noise real files carry.
func (g gen) nodeLine() string {
	var line string
	switch g.r.IntN(20) {
	case 0, 1, 2, 3, 4, 5:
		line = "nameserver " + pick(g, nodeServers)
		if g.chance(0.05) {
			line += " " + pick(g, nodeServers)
		}
	case 6:
		if g.chance(0.3) {
			line = "nameserver" // no address: kubelet fails the pod
		} else {
			line = "# nameserver 10.9.9.9"
		}
	case 7, 8, 9, 10:
		line = "search " + strings.Join(g.domains(4), " ")
	case 11, 12, 13, 14:
		words := make([]string, g.r.IntN(5))
		for i := range words {
			words[i] = g.nodeOption()
		}
		line = strings.TrimSpace("options " + strings.Join(words, " "))
	case 15:
		line = pick(g, []string{"domain corp.example", "sortlist 10.0.0.0/8", "; a comment", "Search upper.example", "options", "search", "lookup file bind"})
	case 16:
		line = "search " + pick(g, domains) + " # trailing comment"
	case 17:
		line = ""
	case 18:
		line = "nameserver\t" + pick(g, nodeServers)
	default:
		line = "options " + g.nodeOption() + " " + g.nodeOption()
	}
	switch g.r.IntN(10) {
	case 0:
		line = "  " + line
	case 1:
		line = "\t" + line + " "
	case 2:
		line += "\r"
	}
	return line
}

func (g gen) podOption() corev1.PodDNSConfigOption {
	o := corev1.PodDNSConfigOption{Name: pick(g, podOptNames)}
	switch g.r.IntN(4) {
	case 0:
		o.Value = str("")
	case 1, 2:
		o.Value = str(pick(g, optValues))
	}
	return o
}

func (g gen) randomCase() Case {
	c := Case{
		Namespace:   pick(g, []string{"default", "shop", "kube-system"}),
		DNSPolicy:   pick(g, policies),
		HostNetwork: g.chance(0.25),
		ClusterDNS:  pick(g, clusterDNS),
	}
	c.ClusterDomain = pick(g, []string{"cluster.local", "cluster.local", "cluster.local", "corp.internal", ""})
	if g.chance(0.1) {
		c.NodeIPs = pick(g, [][]string{nil, {"192.0.2.10"}, {"2001:db8::10"}, {"192.0.2.10", "2001:db8::10"}})
	} else {
		lines := make([]string, g.r.IntN(9))
		for i := range lines {
			lines[i] = g.nodeLine()
		}
		node := strings.Join(lines, "\n")
		if len(lines) > 0 && g.chance(0.8) {
			node += "\n"
		}
		c.Node = &node
	}
	if c.DNSPolicy == corev1.DNSNone || g.chance(0.55) {
		dc := &corev1.PodDNSConfig{}
		for range g.r.IntN(4) {
			dc.Nameservers = append(dc.Nameservers, pick(g, podServers))
		}
		if g.chance(0.6) {
			dc.Searches = g.domains(4)
		}
		for range g.r.IntN(6) {
			dc.Options = append(dc.Options, g.podOption())
		}
		c.DNSConfig = dc
	}
	return c
}
