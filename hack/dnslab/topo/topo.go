// Package topo builds the lab's real-kernel topology: network namespaces joined by veth pairs,
// a "node" that DNATs the cluster DNS Service IP to one or two DNS backends as kube-proxy does
// (iptables -m statistic, or nftables numgen), and a "pod" whose A and AAAA queries the node
// processes on different CPUs, so that the kernel's conntrack insert race really happens.
//
// Everything lives in namespaces named dnslab-<pid>-<n>-<role>, created here and deleted on
// Close. Nothing is added to the root namespace (no link, address, route or rule): the veths
// are created inside the namespaces, and no namespace has a way off the machine. Namespaces
// left by a process that died are deleted by the next Create.
package topo

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"regexp"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"

	"golang.org/x/sys/unix"
)

// DNAT is how the node translates the Service IP to a backend.
type DNAT string

const (
	// IPTables is kube-proxy's iptables mode: KUBE-SVC chain, -m statistic --mode random.
	IPTables DNAT = "iptables"
	// NFTables is kube-proxy's nftables mode: numgen random mod N vmap to endpoint chains.
	NFTables DNAT = "nftables"
)

// DNATs are the modes the lab builds.
var DNATs = []DNAT{IPTables, NFTables}

// Addresses, all private and used only inside the lab's namespaces.
const (
	ServiceIP = "10.96.0.10" // the cluster DNS Service (kube-dns)
	PodIP     = "10.244.1.2"
	nodePodIP = "10.244.1.1"
	// The second link pod→node carries the queries steered to the other CPU.
	podSteerIP  = "10.244.101.2"
	nodeSteerIP = "10.244.101.1"
)

// BackendIP is the address of DNS backend i (0-based).
func BackendIP(i int) string { return fmt.Sprintf("10.244.%d.2", 11+i) }

func backendGW(i int) string { return fmt.Sprintf("10.244.%d.1", 11+i) }

// Config chooses the topology.
type Config struct {
	Backends int  // DNS backends behind the Service: 1 or 2
	DNAT     DNAT // iptables or nftables
}

// Topology is a built topology.
type Topology struct {
	Config
	Name     string   // dnslab-<pid>-<n>
	Pod      string   // namespace of the client ("pod")
	Node     string   // namespace doing the Service DNAT
	Backends []string // namespaces of the DNS backends
	// ProbeCPU is the CPU the probes are pinned to (-1: not pinned, one CPU only). The first
	// query of each pair is processed on OtherCPU, the second on ProbeCPU.
	ProbeCPU, OtherCPU int
	// Steering says how A and AAAA reach different CPUs, or why they cannot.
	Steering string
}

const prefix = "dnslab-"

var (
	seq      atomic.Uint64
	stale    sync.Once
	nsNameRE = regexp.MustCompile(`^dnslab-([0-9]+)-[0-9]+-[a-z0-9]+$`)
)

// Tools are the programs Create runs, with the Debian package that has them.
var Tools = [][2]string{{"ip", "iproute2"}, {"iptables-restore", "iptables"}, {"nft", "nftables"}}

// CheckHost reports what this machine lacks to build a topology.
func CheckHost() error {
	var missing []string
	if os.Geteuid() != 0 {
		missing = append(missing, "root (network namespaces)")
	}
	for _, t := range Tools {
		if _, err := exec.LookPath(t[0]); err != nil {
			missing = append(missing, fmt.Sprintf("%s (apt-get install %s)", t[0], t[1]))
		}
	}
	if _, err := os.Stat("/proc/net/stat/nf_conntrack"); err != nil {
		missing = append(missing, "conntrack statistics (/proc/net/stat/nf_conntrack: CONFIG_NF_CONNTRACK_PROCFS)")
	}
	if len(missing) > 0 {
		return fmt.Errorf("the real-kernel lab needs: %s", strings.Join(missing, ", "))
	}
	return nil
}

// Create builds a topology. On error, whatever was built is deleted.
func Create(ctx context.Context, cfg Config) (t *Topology, err error) {
	if cfg.Backends < 1 || cfg.Backends > 2 {
		return nil, fmt.Errorf("backends must be 1 or 2, not %d", cfg.Backends)
	}
	if cfg.DNAT != IPTables && cfg.DNAT != NFTables {
		return nil, fmt.Errorf("dnat must be %s or %s, not %q", IPTables, NFTables, cfg.DNAT)
	}
	if err := CheckHost(); err != nil {
		return nil, err
	}
	stale.Do(func() { _ = RemoveStale(ctx) })

	name := fmt.Sprintf("%s%d-%d", prefix, os.Getpid(), seq.Add(1))
	t = &Topology{Config: cfg, Name: name, Pod: name + "-pod", Node: name + "-node", ProbeCPU: -1, OtherCPU: -1}
	for i := range cfg.Backends {
		t.Backends = append(t.Backends, fmt.Sprintf("%s-dns%d", name, i+1))
	}
	defer func() {
		if err != nil {
			t.Close()
			t = nil
		}
	}()
	for _, ns := range t.namespaces() {
		if err := run(ctx, nil, "ip", "netns", "add", ns); err != nil {
			return t, err
		}
	}
	if err := t.links(ctx); err != nil {
		return t, err
	}
	if err := t.steer(ctx); err != nil {
		return t, err
	}
	if err := t.SetDNAT(ctx, cfg.DNAT); err != nil {
		return t, err
	}
	return t, nil
}

func (t *Topology) namespaces() []string { return append([]string{t.Pod, t.Node}, t.Backends...) }

// links creates the veths inside the namespaces (never in the root one), addresses and routes.
func (t *Topology) links(ctx context.Context) error {
	// The veths are created from the pod's and the backends' side; the node's commands run
	// once its ends exist.
	var b, node batch
	// pod eth0 <-> node vpod0: the default path; pod eth1 <-> node vpod1: the steered path.
	b.ip(t.Pod, "link", "add", "eth0", "type", "veth", "peer", "name", "vpod0", "netns", t.Node)
	b.ip(t.Pod, "link", "add", "eth1", "type", "veth", "peer", "name", "vpod1", "netns", t.Node)
	b.ip(t.Pod, "addr", "add", PodIP+"/24", "dev", "eth0")
	b.ip(t.Pod, "addr", "add", podSteerIP+"/30", "dev", "eth1")
	for _, dev := range []string{"lo", "eth0", "eth1"} {
		b.ip(t.Pod, "link", "set", dev, "up")
	}
	b.ip(t.Pod, "route", "add", "default", "via", nodePodIP)
	// The steered queries keep the pod's source address on the second link.
	b.ip(t.Pod, "route", "add", "default", "via", nodeSteerIP, "dev", "eth1", "table", "100")
	b.ip(t.Pod, "rule", "add", "fwmark", "1", "lookup", "100")
	node.ip(t.Node, "addr", "add", nodePodIP+"/24", "dev", "vpod0")
	node.ip(t.Node, "addr", "add", nodeSteerIP+"/30", "dev", "vpod1")
	for _, dev := range []string{"lo", "vpod0", "vpod1"} {
		node.ip(t.Node, "link", "set", dev, "up")
	}
	for i, ns := range t.Backends {
		dev := fmt.Sprintf("vdns%d", i+1)
		b.ip(ns, "link", "add", "eth0", "type", "veth", "peer", "name", dev, "netns", t.Node)
		b.ip(ns, "addr", "add", BackendIP(i)+"/24", "dev", "eth0")
		b.ip(ns, "link", "set", "lo", "up")
		b.ip(ns, "link", "set", "eth0", "up")
		b.ip(ns, "route", "add", "default", "via", backendGW(i))
		node.ip(t.Node, "addr", "add", backendGW(i)+"/24", "dev", dev)
		node.ip(t.Node, "link", "set", dev, "up")
	}
	if err := b.run(ctx); err != nil {
		return err
	}
	if err := node.run(ctx); err != nil {
		return err
	}
	// The node forwards (inside its namespace only) and accepts the pod's address on either
	// link; the pod counts packets per conntrack entry (for the steering below).
	return t.sysctl(ctx, map[string][]string{
		t.Node: {"net.ipv4.ip_forward=1", "net.ipv4.conf.all.rp_filter=0", "net.ipv4.conf.default.rp_filter=0",
			"net.ipv4.conf.vpod0.rp_filter=0", "net.ipv4.conf.vpod1.rp_filter=0"},
		t.Pod: {"net.netfilter.nf_conntrack_acct=1"},
	})
}

func (t *Topology) sysctl(ctx context.Context, by map[string][]string) error {
	for ns, kvs := range by {
		var sh strings.Builder
		for _, kv := range kvs {
			k, v, _ := strings.Cut(kv, "=")
			fmt.Fprintf(&sh, "echo %s > /proc/sys/%s\n", v, strings.ReplaceAll(k, ".", "/"))
		}
		if err := run(ctx, nil, "ip", "netns", "exec", ns, "sh", "-ec", sh.String()); err != nil {
			return err
		}
	}
	return nil
}

// steer sends the first query of each A/AAAA pair over the pod's second link, whose node end
// hands its packets to another CPU (RPS), while the second query is processed on the probe's
// own CPU: the two race to insert their conntrack entries in the node, as on a busy node.
//
// Both queries leave one socket, so they share a flow hash and RPS alone would keep them on
// one CPU. The pod marks the odd packets of each conntrack entry (the pod counts them:
// nf_conntrack_acct), and policy routing sends marked packets over eth1. The probes are pinned
// to ProbeCPU (taskset) and vpod0's RPS keeps the second query there.
func (t *Topology) steer(ctx context.Context) error {
	cpus, err := onlineCPUs()
	if err != nil || len(cpus) < 2 { // no steering possible: measure without it, and say so
		t.Steering = "one CPU only: A and AAAA are processed one after the other"
		return nil //nolint:nilerr // an unreadable CPU list means no second CPU to steer to
	}
	t.ProbeCPU, t.OtherCPU = cpus[len(cpus)-1], cpus[0]
	rules := fmt.Sprintf(`table ip dnslab {
	chain steer {
		type route hook output priority mangle; policy accept;
		ip daddr %s udp dport 53 ct original packets & 1 == 1 meta mark set 1
	}
}
`, ServiceIP)
	if err := run(ctx, strings.NewReader(rules), "ip", "netns", "exec", t.Pod, "nft", "-f", "-"); err != nil {
		return err
	}
	sh := fmt.Sprintf("echo %s > /sys/class/net/vpod1/queues/rx-0/rps_cpus\necho %s > /sys/class/net/vpod0/queues/rx-0/rps_cpus\n",
		cpuMask(t.OtherCPU), cpuMask(t.ProbeCPU))
	if err := run(ctx, nil, "ip", "netns", "exec", t.Node, "sh", "-ec", sh); err != nil {
		return err
	}
	t.Steering = fmt.Sprintf("probes pinned to CPU %d (taskset); in the pod, nftables marks the odd packets of each "+
		"conntrack entry (A, or the first query of a pair) and policy routing sends them over a second veth whose node end "+
		"has RPS to CPU %d; the even ones (AAAA) stay on CPU %d (RPS on the first veth)", t.ProbeCPU, t.OtherCPU, t.ProbeCPU)
	return nil
}

// cpuMask is the sysfs CPU bitmap with only cpu set: comma-separated 32-bit hex groups.
func cpuMask(cpu int) string {
	groups := make([]string, cpu/32+1)
	for i := range groups {
		groups[i] = "00000000"
	}
	groups[len(groups)-1-cpu/32] = fmt.Sprintf("%08x", uint32(1)<<(cpu%32))
	return strings.Join(groups, ",")
}

func onlineCPUs() ([]int, error) {
	var set unix.CPUSet
	if err := unix.SchedGetaffinity(0, &set); err != nil {
		return nil, err
	}
	var cpus []int
	for i := 0; i < runtime.NumCPU()*4+64 && len(cpus) < set.Count(); i++ {
		if set.IsSet(i) {
			cpus = append(cpus, i)
		}
	}
	return cpus, nil
}

// SetDNAT (re)programs the node's Service DNAT.
func (t *Topology) SetDNAT(ctx context.Context, mode DNAT) error {
	flush := "table ip kube-proxy\ndelete table ip kube-proxy\n"
	_ = run(ctx, strings.NewReader(flush), "ip", "netns", "exec", t.Node, "nft", "-f", "-")
	_ = run(ctx, strings.NewReader("*nat\nCOMMIT\n"), "ip", "netns", "exec", t.Node, "iptables-restore")
	var err error
	switch mode {
	case IPTables:
		err = run(ctx, strings.NewReader(t.iptablesRules()), "ip", "netns", "exec", t.Node, "iptables-restore")
	case NFTables:
		err = run(ctx, strings.NewReader(t.nftablesRules()), "ip", "netns", "exec", t.Node, "nft", "-f", "-")
	default:
		err = fmt.Errorf("unknown DNAT mode %q", mode)
	}
	if err == nil {
		t.DNAT = mode
	}
	return err
}

// iptablesRules are kube-proxy's iptables-mode rules for the kube-dns Service: each endpoint
// but the last is chosen with probability 1/(endpoints left), as kube-proxy writes them.
func (t *Topology) iptablesRules() string {
	var b strings.Builder
	b.WriteString("*nat\n:PREROUTING ACCEPT [0:0]\n:KUBE-SERVICES - [0:0]\n")
	protos := []string{"udp", "tcp"}
	for _, p := range protos {
		fmt.Fprintf(&b, ":KUBE-SVC-DNS-%s - [0:0]\n", strings.ToUpper(p))
		for i := range t.Backends {
			fmt.Fprintf(&b, ":KUBE-SEP-DNS%d-%s - [0:0]\n", i+1, strings.ToUpper(p))
		}
	}
	b.WriteString("-A PREROUTING -m comment --comment \"kubernetes service portals\" -j KUBE-SERVICES\n")
	for _, p := range protos {
		P := strings.ToUpper(p)
		fmt.Fprintf(&b, "-A KUBE-SERVICES -d %s/32 -p %s -m %s --dport 53 -j KUBE-SVC-DNS-%s\n", ServiceIP, p, p, P)
		n := len(t.Backends)
		for i := range t.Backends {
			if left := n - i; left > 1 {
				fmt.Fprintf(&b, "-A KUBE-SVC-DNS-%s -m statistic --mode random --probability %.11f -j KUBE-SEP-DNS%d-%s\n", P, 1/float64(left), i+1, P)
			} else {
				fmt.Fprintf(&b, "-A KUBE-SVC-DNS-%s -j KUBE-SEP-DNS%d-%s\n", P, i+1, P)
			}
			fmt.Fprintf(&b, "-A KUBE-SEP-DNS%d-%s -p %s -m %s -j DNAT --to-destination %s:53\n", i+1, P, p, p, BackendIP(i))
		}
	}
	b.WriteString("COMMIT\n")
	return b.String()
}

// nftablesRules are kube-proxy's nftables-mode rules, reduced to the kube-dns Service.
func (t *Topology) nftablesRules() string {
	var b strings.Builder
	b.WriteString("table ip kube-proxy {\n")
	for _, p := range []string{"udp", "tcp"} {
		for i := range t.Backends {
			fmt.Fprintf(&b, "\tchain endpoint-dns%d-%s {\n\t\tmeta l4proto %s dnat to %s:53\n\t}\n", i+1, p, p, BackendIP(i))
		}
		var vm []string
		for i := range t.Backends {
			vm = append(vm, fmt.Sprintf("%d : goto endpoint-dns%d-%s", i, i+1, p))
		}
		fmt.Fprintf(&b, "\tchain service-dns-%s {\n\t\tnumgen random mod %d vmap { %s }\n\t}\n", p, len(t.Backends), strings.Join(vm, ", "))
	}
	fmt.Fprintf(&b, `	map service-ips {
		type ipv4_addr . inet_proto . inet_service : verdict
		elements = { %[1]s . udp . 53 : goto service-dns-udp, %[1]s . tcp . 53 : goto service-dns-tcp }
	}
	chain services {
		ip daddr . meta l4proto . th dport vmap @service-ips
	}
	chain nat-prerouting {
		type nat hook prerouting priority dstnat; policy accept;
		jump services
	}
}
`, ServiceIP)
	return b.String()
}

// Loss drops each packet the node forwards (queries and replies) with probability p, until
// the returned function is called.
func (t *Topology) Loss(ctx context.Context, p float64) (func(), error) {
	if p <= 0 || p >= 1 {
		return nil, fmt.Errorf("loss must be between 0 and 1, not %g", p)
	}
	// numgen random mod 10000 < p*10000: p in steps of 0.01 %.
	rules := fmt.Sprintf(`table ip dnslab-loss {
	chain forward {
		type filter hook forward priority filter; policy accept;
		meta l4proto udp numgen random mod 10000 < %d drop
	}
}
`, int(p*10000+0.5))
	if err := run(ctx, strings.NewReader(rules), "ip", "netns", "exec", t.Node, "nft", "-f", "-"); err != nil {
		return nil, err
	}
	return func() {
		_ = run(context.Background(), nil, "ip", "netns", "exec", t.Node, "nft", "delete", "table", "ip", "dnslab-loss")
	}, nil
}

// Close deletes the namespaces (and with them the veths and rules). Sockets still open in a
// namespace keep it alive until they close: close the servers first.
func (t *Topology) Close() error {
	var errs []error
	for _, ns := range t.namespaces() {
		if _, err := os.Stat("/run/netns/" + ns); err != nil {
			continue
		}
		if err := run(context.Background(), nil, "ip", "netns", "del", ns); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// List returns the lab's namespaces on this machine, of any process.
func List() ([]string, error) {
	ents, err := os.ReadDir("/run/netns")
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	var out []string
	for _, e := range ents {
		if nsNameRE.MatchString(e.Name()) {
			out = append(out, e.Name())
		}
	}
	return out, nil
}

// Ours returns the namespaces this process created and has not deleted.
func Ours() ([]string, error) {
	names, err := List()
	var out []string
	for _, ns := range names {
		if nsNameRE.FindStringSubmatch(ns)[1] == strconv.Itoa(os.Getpid()) {
			out = append(out, ns)
		}
	}
	return out, err
}

// RemoveStale deletes the namespaces of lab processes that are no longer running (killed
// before they could clean up).
func RemoveStale(ctx context.Context) error {
	names, err := List()
	if err != nil {
		return err
	}
	var errs []error
	for _, ns := range names {
		pid, _ := strconv.Atoi(nsNameRE.FindStringSubmatch(ns)[1])
		if pid == os.Getpid() || unix.Kill(pid, 0) == nil {
			continue // ours, or a lab still running
		}
		if err := run(ctx, nil, "ip", "netns", "del", ns); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// Stats are the node's conntrack counters, summed over CPUs (/proc/net/stat/nf_conntrack of
// its namespace; `conntrack -S` prints the same).
type Stats struct {
	// ClashResolve counts the races the kernel resolved (clashres; kernels ≥ 5.10 have it).
	// -1 when the kernel does not report it.
	ClashResolve int64
	InsertFailed int64 // races lost: the packet was dropped
	Drop         int64
}

// Sub returns s - o.
func (s Stats) Sub(o Stats) Stats {
	out := Stats{ClashResolve: s.ClashResolve - o.ClashResolve, InsertFailed: s.InsertFailed - o.InsertFailed,
		Drop: s.Drop - o.Drop}
	if s.ClashResolve < 0 || o.ClashResolve < 0 {
		out.ClashResolve = -1
	}
	return out
}

// Conntrack reads the node's conntrack counters.
func (t *Topology) Conntrack(ctx context.Context) (Stats, error) {
	var out bytes.Buffer
	cmd := exec.CommandContext(ctx, "ip", "netns", "exec", t.Node, "cat", "/proc/net/stat/nf_conntrack")
	cmd.Stdout = &out
	if err := cmd.Run(); err != nil {
		return Stats{}, fmt.Errorf("reading the node's conntrack statistics: %w", err)
	}
	return parseStats(out.String())
}

func parseStats(s string) (Stats, error) {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	if len(lines) < 2 {
		return Stats{}, fmt.Errorf("no conntrack statistics in %q", s)
	}
	cols := strings.Fields(lines[0])
	sum := map[string]int64{}
	for _, l := range lines[1:] {
		f := strings.Fields(l)
		if len(f) != len(cols) {
			return Stats{}, fmt.Errorf("bad conntrack statistics line %q", l)
		}
		for i, v := range f {
			n, err := strconv.ParseInt(v, 16, 64)
			if err != nil {
				return Stats{}, fmt.Errorf("bad conntrack statistics line %q", l)
			}
			sum[cols[i]] += n
		}
	}
	st := Stats{ClashResolve: -1, InsertFailed: sum["insert_failed"], Drop: sum["drop"]}
	if v, ok := sum["clashres"]; ok {
		st.ClashResolve = v
	}
	return st, nil
}

// Losses are packets lost outside the conntrack counters, which also stall lookups: a DNS
// server's or a resolver's socket receive buffer full (Udp RcvbufErrors of the pod and
// backend namespaces), the machine's per-CPU backlog full (/proc/net/softnet_stat, the whole
// machine's), and replies that reach the pod with no socket to take them (Udp NoPorts of the
// pod): either a reply the node did not translate back to the Service IP, which does not
// match glibc's connected socket (a clashing conntrack entry, which the kernel keeps for
// about a second, expired before the answer came; musl's unconnected socket takes such a
// reply and ignores it, so it is not counted), or a reply that came after the resolver gave
// up.
type Losses struct {
	RcvbufErrors, Backlog, NoSocket int64
}

// Sub returns l - o.
func (l Losses) Sub(o Losses) Losses {
	return Losses{RcvbufErrors: l.RcvbufErrors - o.RcvbufErrors, Backlog: l.Backlog - o.Backlog,
		NoSocket: l.NoSocket - o.NoSocket}
}

// Losses reads the counters of packets lost outside conntrack.
func (t *Topology) Losses(ctx context.Context) (Losses, error) {
	var l Losses
	for _, ns := range append([]string{t.Pod}, t.Backends...) {
		out, err := Exec(ctx, ns, "cat", "/proc/net/snmp").Output()
		if err != nil {
			return l, fmt.Errorf("reading UDP statistics of %s: %w", ns, err)
		}
		n, err := snmpUDP(string(out), "RcvbufErrors")
		if err != nil {
			return l, err
		}
		l.RcvbufErrors += n
		if ns == t.Pod {
			if l.NoSocket, err = snmpUDP(string(out), "NoPorts"); err != nil {
				return l, err
			}
		}
	}
	b, err := os.ReadFile("/proc/net/softnet_stat")
	if err != nil {
		return l, err
	}
	for _, line := range strings.Split(strings.TrimSpace(string(b)), "\n") {
		if f := strings.Fields(line); len(f) > 1 {
			n, _ := strconv.ParseInt(f[1], 16, 64)
			l.Backlog += n
		}
	}
	return l, nil
}

// snmpUDP reads one Udp counter of /proc/net/snmp (a header line, then a values line).
func snmpUDP(s, name string) (int64, error) {
	var head []string
	for _, line := range strings.Split(s, "\n") {
		f := strings.Fields(line)
		if len(f) == 0 || f[0] != "Udp:" {
			continue
		}
		if head == nil {
			head = f
			continue
		}
		for i, h := range head {
			if h == name && i < len(f) {
				return strconv.ParseInt(f[i], 10, 64)
			}
		}
	}
	return 0, fmt.Errorf("no Udp %s in /proc/net/snmp", name)
}

// Do runs fn on an OS thread inside namespace ns: sockets fn opens belong to ns. The thread is
// discarded afterwards rather than switched back.
func Do(ns string, fn func() error) error {
	f, err := os.Open("/run/netns/" + ns)
	if err != nil {
		return err
	}
	defer f.Close()
	errc := make(chan error, 1)
	go func() {
		runtime.LockOSThread() // never unlocked: the thread exits with the goroutine
		if err := unix.Setns(int(f.Fd()), unix.CLONE_NEWNET); err != nil {
			errc <- fmt.Errorf("entering namespace %s: %w", ns, err)
			return
		}
		errc <- fn()
	}()
	return <-errc
}

// Exec returns a command run inside namespace ns.
func Exec(ctx context.Context, ns string, name string, args ...string) *exec.Cmd {
	return exec.CommandContext(ctx, "ip", append([]string{"netns", "exec", ns, name}, args...)...)
}

// batch collects ip commands per namespace, run as one `ip -n NS -batch -` per namespace in
// the order the namespaces first appear.
type batch struct {
	order []string
	lines map[string][]string
}

func (b *batch) ip(ns string, args ...string) {
	if b.lines == nil {
		b.lines = map[string][]string{}
	}
	if _, ok := b.lines[ns]; !ok {
		b.order = append(b.order, ns)
	}
	b.lines[ns] = append(b.lines[ns], strings.Join(args, " "))
}

func (b *batch) run(ctx context.Context) error {
	for _, ns := range b.order {
		if err := run(ctx, strings.NewReader(strings.Join(b.lines[ns], "\n")+"\n"), "ip", "-n", ns, "-batch", "-"); err != nil {
			return err
		}
	}
	return nil
}

func run(ctx context.Context, stdin *strings.Reader, name string, args ...string) error {
	cmd := exec.CommandContext(ctx, name, args...)
	if stdin != nil {
		cmd.Stdin = stdin
	}
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("%s %s: %v: %s", name, strings.Join(args, " "), err, strings.TrimSpace(string(out)))
	}
	return nil
}
