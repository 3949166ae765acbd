// Package resolvconf renders the /etc/resolv.conf a pod's containers will read, exactly as
// kubelet composes it and the container runtime writes it. The webhook, the DNS race lab and
// `explain` use it so that what they reason about is what the resolver sees.
//
// Reference: kubernetes/kubernetes pkg/kubelet/network/dns/dns.go (Configurer.GetPodDNS and
// the helpers it calls), with the limits of pkg/apis/core/validation now that
// ExpandedDNSConfig is GA; file layout from containerd and CRI-O (search, nameserver, options).
package resolvconf

import (
	"fmt"
	"net"
	"slices"
	"strings"

	corev1 "k8s.io/api/core/v1"
)

// Limits kubelet applies to the composed configuration (validation.MaxDNSNameservers,
// MaxDNSSearchPathsExpanded, MaxDNSSearchListCharsExpanded and
// utilvalidation.DNS1123SubdomainMaxLength).
const (
	MaxNameservers     = 3
	MaxSearchPaths     = 32
	MaxSearchListChars = 2048
	MaxSearchPathChars = 253
)

// DefaultNdots is kubelet's defaultDNSOptions for ClusterFirst pods.
const DefaultNdots = "5"

// ClusterDNS is the kubelet configuration that shapes a pod's resolv.conf.
type ClusterDNS struct {
	// Nameservers is kubelet's clusterDNS (the kube-dns Service IPs).
	Nameservers []string
	// ClusterDomain is kubelet's clusterDomain, e.g. cluster.local.
	ClusterDomain string
	// NodeResolvConf is the node's resolv.conf as kubelet's resolvConf setting reads it (see
	// Parse). nil means kubelet runs with resolvConf "": Default pods then get a localhost
	// nameserver and search ".".
	NodeResolvConf *Config
	// NodeIPs decide the localhost nameserver(s) when NodeResolvConf is nil: ::1 for an IPv6
	// address, 127.0.0.1 otherwise (and when empty).
	NodeIPs []string
}

// Config is a resolver configuration: a pod's rendered resolv.conf or a node's parsed one.
type Config struct {
	Nameservers []string
	Searches    []string
	Options     []corev1.PodDNSConfigOption
	// Warnings are what kubelet reports as DNSConfigForming / MissingClusterDNS events: limits
	// that cut the configuration, or a fallback to the node's configuration.
	Warnings []string
}

// MaxFileBytes is kubelet's maxResolvConfLength: a node file this long fails every pod.
const MaxFileBytes = 10 << 20

// Parse reads a node resolv.conf as kubelet's parseResolvConf does: nameserver lines
// accumulate; the last search line wins, a lone "." in it (systemd-resolved's "search .") is no
// domain, and one trailing dot is dropped from the others; options lines merge, the last value
// per name winning across and within lines, and "ndots:" keeps its colon (an empty, non-nil
// Value). A nameserver line without an address, or a file of MaxFileBytes or more, is an error:
// kubelet then starts no pod on the node, whatever its dnsPolicy.
func Parse(data string) (*Config, error) {
	if len(data) >= MaxFileBytes {
		return nil, fmt.Errorf("resolv.conf is %d bytes; kubelet reads less than %d", len(data), MaxFileBytes)
	}
	c := &Config{}
	for _, line := range strings.Split(data, "\n") {
		line = strings.TrimSpace(line)
		if strings.HasPrefix(line, "#") {
			continue
		}
		f := strings.Fields(line)
		if len(f) == 0 {
			continue
		}
		switch f[0] {
		case "nameserver":
			if len(f) < 2 {
				return nil, fmt.Errorf("nameserver list is empty")
			}
			c.Nameservers = append(c.Nameservers, f[1])
		case "search":
			c.Searches = nil
			for _, s := range f[1:] {
				if s != "." {
					c.Searches = append(c.Searches, strings.TrimSuffix(s, "."))
				}
			}
		case "options":
			for _, o := range f[1:] {
				c.Options = setOption(c.Options, ParseOption(o))
			}
		}
	}
	return c, nil
}

// ParseOption splits one word of an options line as kubelet's parser, glibc and musl do: the
// name is what precedes the first colon, and "ndots:" has an empty, non-nil Value where "ndots"
// has none (glibc and musl read the first as ndots:0 and ignore the second). A pod option
// written {name: "timeout:1"} reaches the file as "timeout:1", which resolvers read as timeout 1
// although kubelet merged it under a name of its own.
func ParseOption(word string) corev1.PodDNSConfigOption {
	name, value, ok := strings.Cut(word, ":")
	if !ok {
		return corev1.PodDNSConfigOption{Name: name}
	}
	return corev1.PodDNSConfigOption{Name: name, Value: &value}
}

// setOption replaces the option of the same name in place, or appends it.
func setOption(opts []corev1.PodDNSConfigOption, o corev1.PodDNSConfigOption) []corev1.PodDNSConfigOption {
	for i := range opts {
		if opts[i].Name == o.Name {
			opts[i] = o
			return opts
		}
	}
	return append(opts, o)
}

// Source is where kubelet takes a pod's resolver configuration from (getPodDNSType).
type Source int

const (
	FromCluster Source = iota // ClusterFirst(WithHostNet): the cluster DNS service, ndots:5
	FromNode                  // Default, or hostNetwork with ClusterFirst: the node's resolv.conf
	FromPod                   // None: only the pod's dnsConfig
)

// SourceOf is kubelet's getPodDNSType: hostNetwork with ClusterFirst falls back to the node's
// configuration, and an empty policy is what the API server defaults to ClusterFirst.
func SourceOf(spec *corev1.PodSpec) (Source, error) {
	switch spec.DNSPolicy {
	case corev1.DNSNone:
		return FromPod, nil
	case corev1.DNSDefault:
		return FromNode, nil
	case corev1.DNSClusterFirstWithHostNet:
		return FromCluster, nil
	case corev1.DNSClusterFirst, "":
		if spec.HostNetwork {
			return FromNode, nil
		}
		return FromCluster, nil
	}
	return 0, fmt.Errorf("invalid dnsPolicy %q", spec.DNSPolicy)
}

// Render composes the resolv.conf kubelet gives the pod (GetPodDNS). TestKubeletParity holds it
// to the real kubelet's answers.
//
// Two deliberate differences: kubelet merges options through a Go map, so their order in its
// file changes from one pod start to the next; Render keeps the base options in order and
// appends the pod's new ones in the pod's order. And an empty dnsPolicy, which kubelet never
// sees because the API server defaults it, is ClusterFirst here (SourceOf).
func Render(pod *corev1.Pod, cluster ClusterDNS) (Config, error) {
	if pod == nil {
		return Config{}, fmt.Errorf("no pod")
	}
	var out Config
	node := cluster.NodeResolvConf
	if node == nil {
		node = &Config{}
	}
	host := func() {
		out.Nameservers = clone(node.Nameservers)
		out.Searches = clone(node.Searches)
		out.Options = cloneOptions(node.Options)
		if cluster.NodeResolvConf == nil {
			// kubelet with resolvConf "": "use the nameserver on the local machine".
			out.Nameservers = nil
			for _, s := range cluster.NodeIPs {
				// utilnet.IsIPv6: an IPv4-mapped address is IPv4.
				if ip := net.ParseIP(s); ip != nil && ip.To4() == nil {
					out.Nameservers = append(out.Nameservers, "::1")
				} else {
					out.Nameservers = append(out.Nameservers, "127.0.0.1")
				}
			}
			if len(out.Nameservers) == 0 {
				out.Nameservers = []string{"127.0.0.1"}
			}
			out.Searches = []string{"."}
		}
	}

	source, err := SourceOf(&pod.Spec)
	if err != nil {
		return Config{}, err
	}
	switch source {
	case FromPod:
		// None starts from nothing: only the pod's dnsConfig.
	case FromNode:
		host()
	case FromCluster:
		if len(cluster.Nameservers) == 0 {
			out.Warnings = append(out.Warnings, fmt.Sprintf("kubelet does not have ClusterDNS IP configured and cannot create Pod using %q policy. Falling back to %q policy.", corev1.DNSClusterFirst, corev1.DNSDefault))
			host()
			break
		}
		// The cluster DNS servers are the only nameservers; the node's search list follows
		// the cluster's; the node's options are dropped for ndots:5.
		// kubelet holds clusterDNS as net.IP and writes ip.String(): the canonical spelling.
		for _, s := range cluster.Nameservers {
			if ip := net.ParseIP(s); ip != nil {
				s = ip.String()
			}
			out.Nameservers = append(out.Nameservers, s)
		}
		out.Searches = clone(node.Searches)
		if cluster.ClusterDomain != "" {
			d := cluster.ClusterDomain
			out.Searches = omitDuplicates(append([]string{pod.Namespace + ".svc." + d, "svc." + d, d}, node.Searches...))
		}
		v := DefaultNdots
		out.Options = []corev1.PodDNSConfigOption{{Name: "ndots", Value: &v}}
	}

	if dc := pod.Spec.DNSConfig; dc != nil {
		out.Nameservers = omitDuplicates(append(out.Nameservers, dc.Nameservers...))
		out.Searches = omitDuplicates(append(out.Searches, dc.Searches...))
		out.Options = mergeOptions(out.Options, dc.Options)
	}
	out.fitLimits()
	return out, nil
}

func (c *Config) fitLimits() {
	if len(c.Nameservers) > MaxNameservers {
		c.Nameservers = c.Nameservers[:MaxNameservers]
		c.Warnings = append(c.Warnings, "Nameserver limits were exceeded, some nameservers have been omitted, the applied nameserver line is: "+strings.Join(c.Nameservers, " "))
	}
	// formDNSSearchFitsLimits: cut the count, drop over-long domains (glibc 2.28 aborts on
	// them), then cut from the end until the line fits.
	exceeded := false
	s := c.Searches
	if len(s) > MaxSearchPaths {
		s, exceeded = s[:MaxSearchPaths], true
	}
	kept := s[:0:0]
	for _, d := range s {
		if len(d) > MaxSearchPathChars {
			exceeded = true
			continue
		}
		kept = append(kept, d)
	}
	s = kept
	if total := len(strings.Join(s, " ")); total > MaxSearchListChars {
		cut, cutLen := 0, 0
		for i := len(s) - 1; i >= 0; i-- {
			cutLen += len(s[i]) + 1
			cut++
			if total-cutLen <= MaxSearchListChars {
				break
			}
		}
		s, exceeded = s[:len(s)-cut], true
	}
	if exceeded {
		c.Warnings = append(c.Warnings, "Search Line limits were exceeded, some search paths have been omitted, the applied search line is: "+strings.Join(s, " "))
	}
	c.Searches = s
}

// mergeOptions is kubelet's mergeDNSOptions with a stable order. Options are keyed by name
// (a pod's name is taken whole: {name: "timeout:1"} is not timeout, and kubelet writes it next
// to any timeout:n), the pod's value wins, and an empty value, the base's "ndots:" included,
// renders as the bare name.
func mergeOptions(base, pod []corev1.PodDNSConfigOption) []corev1.PodDNSConfigOption {
	var out []corev1.PodDNSConfigOption
	for _, o := range append(cloneOptions(base), cloneOptions(pod)...) {
		if o.Value != nil && *o.Value == "" {
			o.Value = nil
		}
		out = setOption(out, o)
	}
	return out
}

// String renders the file as containerd and CRI-O write it.
func (c Config) String() string {
	var b strings.Builder
	if len(c.Searches) > 0 {
		fmt.Fprintf(&b, "search %s\n", strings.Join(c.Searches, " "))
	}
	for _, ns := range c.Nameservers {
		fmt.Fprintf(&b, "nameserver %s\n", ns)
	}
	if len(c.Options) > 0 {
		opts := make([]string, len(c.Options))
		for i, o := range c.Options {
			opts[i] = OptionString(o)
		}
		fmt.Fprintf(&b, "options %s\n", strings.Join(opts, " "))
	}
	return b.String()
}

// Option returns an option's value and whether the option is set.
func (c Config) Option(name string) (string, bool) {
	for _, o := range c.Options {
		if o.Name == name {
			if o.Value == nil {
				return "", true
			}
			return *o.Value, true
		}
	}
	return "", false
}

// Ambiguous lists, sorted, the options a resolver reads under one name from more than one
// differently spelled word, such as ndots:5 beside a pod's {name: "ndots:2"}. kubelet writes
// options in a map's order and resolvers keep the last, so the value in force changes from one
// pod start to the next.
func (c Config) Ambiguous() []string {
	words := map[string]string{}
	var out []string
	for _, o := range c.Options {
		w := OptionString(o)
		name := ParseOption(w).Name
		if prev, ok := words[name]; ok && prev != w && !slices.Contains(out, name) {
			out = append(out, name)
		}
		words[name] = w
	}
	slices.Sort(out)
	return out
}

// OptionString renders an option of a Config as resolv.conf spells it: "name" without a
// Value, "name:value" with one, and "name:" for an empty one, which only a node file's
// "ndots:" gives (Render turns a pod's empty value into none, as kubelet writes it).
func OptionString(o corev1.PodDNSConfigOption) string {
	if o.Value == nil {
		return o.Name
	}
	return o.Name + ":" + *o.Value
}

func omitDuplicates(s []string) []string {
	seen := map[string]bool{}
	var out []string
	for _, v := range s {
		if !seen[v] {
			seen[v] = true
			out = append(out, v)
		}
	}
	return out
}

func clone(s []string) []string { return append([]string(nil), s...) }

func cloneOptions(opts []corev1.PodDNSConfigOption) []corev1.PodDNSConfigOption {
	var out []corev1.PodDNSConfigOption
	for _, o := range opts {
		out = append(out, *o.DeepCopy())
	}
	return out
}
