package resolvconf

import (
	"fmt"
	"slices"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

func str(s string) *string { return &s }

func pod(ns string, policy corev1.DNSPolicy, hostNet bool, dc *corev1.PodDNSConfig) *corev1.Pod {
	return &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: "p", Namespace: ns},
		Spec:       corev1.PodSpec{DNSPolicy: policy, HostNetwork: hostNet, DNSConfig: dc},
	}
}

func mustParse(t *testing.T, s string) *Config {
	t.Helper()
	c, err := Parse(s)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func TestRender(t *testing.T) {
	node := mustParse(t, "# node\nnameserver 10.0.0.2\nnameserver 10.0.0.3\nsearch ec2.internal.\noptions timeout:1 attempts:2\n")
	cluster := ClusterDNS{Nameservers: []string{"10.96.0.10"}, ClusterDomain: "cluster.local", NodeResolvConf: node}
	long := strings.Repeat("a", 254)
	many := make([]string, 40)
	for i := range many {
		many[i] = fmt.Sprintf("d%d.example", i)
	}
	// 2048-char cut: ten 250-char domains after the three cluster ones.
	wide := make([]string, 10)
	for i := range wide {
		wide[i] = fmt.Sprintf("%03d%s", i, strings.Repeat("w", 247))
	}

	tests := []struct {
		name     string
		pod      *corev1.Pod
		cluster  ClusterDNS
		want     string
		warnings int
	}{
		{
			name:    "ClusterFirst: cluster DNS, namespace search list then the node's, ndots:5 replaces node options",
			pod:     pod("shop", corev1.DNSClusterFirst, false, nil),
			cluster: cluster,
			want:    "search shop.svc.cluster.local svc.cluster.local cluster.local ec2.internal\nnameserver 10.96.0.10\noptions ndots:5\n",
		},
		{
			name:    "empty dnsPolicy is the API server's default, ClusterFirst",
			pod:     pod("shop", "", false, nil),
			cluster: cluster,
			want:    "search shop.svc.cluster.local svc.cluster.local cluster.local ec2.internal\nnameserver 10.96.0.10\noptions ndots:5\n",
		},
		{
			name: "dnsConfig options merge by name: the pod's value wins in place, new ones follow",
			pod: pod("shop", corev1.DNSClusterFirst, false, &corev1.PodDNSConfig{Options: []corev1.PodDNSConfigOption{
				{Name: "single-request-reopen"}, {Name: "ndots", Value: str("2")}, {Name: "timeout", Value: str("2")},
			}}),
			cluster: cluster,
			want:    "search shop.svc.cluster.local svc.cluster.local cluster.local ec2.internal\nnameserver 10.96.0.10\noptions ndots:2 single-request-reopen timeout:2\n",
		},
		{
			name:    "an empty option value renders as the bare name",
			pod:     pod("shop", corev1.DNSClusterFirst, false, &corev1.PodDNSConfig{Options: []corev1.PodDNSConfigOption{{Name: "ndots", Value: str("")}}}),
			cluster: cluster,
			want:    "search shop.svc.cluster.local svc.cluster.local cluster.local ec2.internal\nnameserver 10.96.0.10\noptions ndots\n",
		},
		{
			name: "dnsConfig nameservers and searches append without duplicates",
			pod: pod("shop", corev1.DNSClusterFirst, false, &corev1.PodDNSConfig{
				Nameservers: []string{"10.96.0.10", "1.1.1.1"},
				Searches:    []string{"cluster.local", "corp.example"},
			}),
			cluster: cluster,
			want:    "search shop.svc.cluster.local svc.cluster.local cluster.local ec2.internal corp.example\nnameserver 10.96.0.10\nnameserver 1.1.1.1\noptions ndots:5\n",
		},
		{
			name:    "node search domains that repeat the cluster's are dropped",
			pod:     pod("shop", corev1.DNSClusterFirst, false, nil),
			cluster: ClusterDNS{Nameservers: []string{"10.96.0.10"}, ClusterDomain: "cluster.local", NodeResolvConf: mustParse(t, "search cluster.local corp.example\n")},
			want:    "search shop.svc.cluster.local svc.cluster.local cluster.local corp.example\nnameserver 10.96.0.10\noptions ndots:5\n",
		},
		{
			name:    "no cluster domain: only the node's search list",
			pod:     pod("shop", corev1.DNSClusterFirst, false, nil),
			cluster: ClusterDNS{Nameservers: []string{"10.96.0.10"}, NodeResolvConf: node},
			want:    "search ec2.internal\nnameserver 10.96.0.10\noptions ndots:5\n",
		},
		{
			name:    "hostNetwork with ClusterFirst falls back to Default: the node's file",
			pod:     pod("shop", corev1.DNSClusterFirst, true, nil),
			cluster: cluster,
			want:    "search ec2.internal\nnameserver 10.0.0.2\nnameserver 10.0.0.3\noptions timeout:1 attempts:2\n",
		},
		{
			name:    "hostNetwork with ClusterFirstWithHostNet gets cluster DNS",
			pod:     pod("shop", corev1.DNSClusterFirstWithHostNet, true, nil),
			cluster: cluster,
			want:    "search shop.svc.cluster.local svc.cluster.local cluster.local ec2.internal\nnameserver 10.96.0.10\noptions ndots:5\n",
		},
		{
			name:    "ClusterFirstWithHostNet without hostNetwork is ClusterFirst",
			pod:     pod("shop", corev1.DNSClusterFirstWithHostNet, false, nil),
			cluster: cluster,
			want:    "search shop.svc.cluster.local svc.cluster.local cluster.local ec2.internal\nnameserver 10.96.0.10\noptions ndots:5\n",
		},
		{
			name:    "Default merges dnsConfig options into the node's",
			pod:     pod("shop", corev1.DNSDefault, false, &corev1.PodDNSConfig{Options: []corev1.PodDNSConfigOption{{Name: "attempts", Value: str("5")}, {Name: "rotate"}}}),
			cluster: cluster,
			want:    "search ec2.internal\nnameserver 10.0.0.2\nnameserver 10.0.0.3\noptions timeout:1 attempts:5 rotate\n",
		},
		{
			name:    "Default keeps the node's ndots: with its colon when the pod has no dnsConfig",
			pod:     pod("shop", corev1.DNSDefault, false, nil),
			cluster: ClusterDNS{NodeResolvConf: mustParse(t, "nameserver 10.0.0.2\noptions ndots: rotate\n")},
			want:    "nameserver 10.0.0.2\noptions ndots: rotate\n",
		},
		{
			name:    "a dnsConfig, even empty, makes kubelet rewrite the node's ndots: as ndots",
			pod:     pod("shop", corev1.DNSDefault, false, &corev1.PodDNSConfig{}),
			cluster: ClusterDNS{NodeResolvConf: mustParse(t, "nameserver 10.0.0.2\noptions ndots: rotate\n")},
			want:    "nameserver 10.0.0.2\noptions ndots rotate\n",
		},
		{
			name: "a pod option named timeout:1 is not timeout: kubelet writes it next to timeout:2",
			pod: pod("shop", corev1.DNSClusterFirst, false, &corev1.PodDNSConfig{Options: []corev1.PodDNSConfigOption{
				{Name: "timeout:1"}, {Name: "timeout", Value: str("2")}, {Name: "ndots:2"},
			}}),
			cluster: cluster,
			want:    "search shop.svc.cluster.local svc.cluster.local cluster.local ec2.internal\nnameserver 10.96.0.10\noptions ndots:5 timeout:1 timeout:2 ndots:2\n",
		},
		{
			name:    "Default with kubelet resolvConf \"\": localhost and search .",
			pod:     pod("shop", corev1.DNSDefault, false, nil),
			cluster: ClusterDNS{Nameservers: []string{"10.96.0.10"}, ClusterDomain: "cluster.local"},
			want:    "search .\nnameserver 127.0.0.1\n",
		},
		{
			name:    "Default with resolvConf \"\" on a dual-stack node: one localhost per family",
			pod:     pod("shop", corev1.DNSDefault, false, nil),
			cluster: ClusterDNS{NodeIPs: []string{"192.0.2.10", "2001:db8::10"}},
			want:    "search .\nnameserver 127.0.0.1\nnameserver ::1\n",
		},
		{
			name: "None: only dnsConfig (the Kubernetes documentation's example)",
			pod: pod("ns1", corev1.DNSNone, false, &corev1.PodDNSConfig{
				Nameservers: []string{"192.0.2.1"},
				Searches:    []string{"ns1.svc.cluster-domain.example", "my.dns.search.suffix"},
				Options:     []corev1.PodDNSConfigOption{{Name: "ndots", Value: str("2")}, {Name: "edns0"}},
			}),
			cluster: cluster,
			want:    "search ns1.svc.cluster-domain.example my.dns.search.suffix\nnameserver 192.0.2.1\noptions ndots:2 edns0\n",
		},
		{
			name:     "ClusterFirst without cluster DNS falls back to Default with a warning",
			pod:      pod("shop", corev1.DNSClusterFirst, false, nil),
			cluster:  ClusterDNS{ClusterDomain: "cluster.local", NodeResolvConf: node},
			want:     "search ec2.internal\nnameserver 10.0.0.2\nnameserver 10.0.0.3\noptions timeout:1 attempts:2\n",
			warnings: 1,
		},
		{
			name:     "more than 3 nameservers are cut to the first 3",
			pod:      pod("shop", corev1.DNSClusterFirst, false, &corev1.PodDNSConfig{Nameservers: []string{"1.1.1.1", "8.8.8.8", "9.9.9.9"}}),
			cluster:  cluster,
			want:     "search shop.svc.cluster.local svc.cluster.local cluster.local ec2.internal\nnameserver 10.96.0.10\nnameserver 1.1.1.1\nnameserver 8.8.8.8\noptions ndots:5\n",
			warnings: 1,
		},
		{
			name:     "more than 32 search domains are cut to the first 32",
			pod:      pod("shop", corev1.DNSNone, false, &corev1.PodDNSConfig{Nameservers: []string{"192.0.2.1"}, Searches: many}),
			cluster:  cluster,
			want:     "search " + strings.Join(many[:32], " ") + "\nnameserver 192.0.2.1\n",
			warnings: 1,
		},
		{
			name:     "a search domain longer than 253 characters is dropped",
			pod:      pod("shop", corev1.DNSClusterFirst, false, &corev1.PodDNSConfig{Searches: []string{long, "corp.example"}}),
			cluster:  cluster,
			want:     "search shop.svc.cluster.local svc.cluster.local cluster.local ec2.internal corp.example\nnameserver 10.96.0.10\noptions ndots:5\n",
			warnings: 1,
		},
		{
			name:     "a search line over 2048 characters loses domains from the end",
			pod:      pod("shop", corev1.DNSClusterFirst, false, &corev1.PodDNSConfig{Searches: wide}),
			cluster:  ClusterDNS{Nameservers: []string{"10.96.0.10"}, ClusterDomain: "cluster.local"},
			want:     "search shop.svc.cluster.local svc.cluster.local cluster.local " + strings.Join(wide[:7], " ") + "\nnameserver 10.96.0.10\noptions ndots:5\n",
			warnings: 1,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			before := tt.pod.DeepCopy()
			got, err := Render(tt.pod, tt.cluster)
			if err != nil {
				t.Fatal(err)
			}
			if got.String() != tt.want {
				t.Errorf("rendered:\n%s\nwant:\n%s", got, tt.want)
			}
			if len(got.Warnings) != tt.warnings {
				t.Errorf("warnings %q, want %d", got.Warnings, tt.warnings)
			}
			if len(strings.Join(got.Searches, " ")) > MaxSearchListChars {
				t.Errorf("search line is %d characters", len(strings.Join(got.Searches, " ")))
			}
			if tt.pod.String() != before.String() {
				t.Error("Render changed the pod")
			}
		})
	}
}

func TestRenderRejectsUnknownPolicy(t *testing.T) {
	if _, err := Render(pod("shop", "Cluster", false, nil), ClusterDNS{Nameservers: []string{"10.96.0.10"}}); err == nil {
		t.Fatal("want an error for dnsPolicy Cluster")
	}
	if _, err := Render(nil, ClusterDNS{}); err == nil {
		t.Fatal("want an error for a nil pod")
	}
}

func TestParse(t *testing.T) {
	tests := []struct {
		name, in string
		want     string
		wantErr  bool
	}{
		{name: "nameservers accumulate; the last search line wins; options lines merge", in: "search a.example\nnameserver 10.0.0.1\nsearch b.example c.example.\noptions ndots:2\nnameserver 10.0.0.2\noptions rotate timeout:1\n",
			want: "search b.example c.example\nnameserver 10.0.0.1\nnameserver 10.0.0.2\noptions ndots:2 rotate timeout:1\n"},
		{name: "systemd-resolved's search . is no search domain", in: "nameserver 127.0.0.53\noptions edns0 trust-ad\nsearch .\n",
			want: "nameserver 127.0.0.53\noptions edns0 trust-ad\n"},
		{name: "only a lone dot is dropped; one trailing dot is trimmed from the rest", in: "search . corp.example. .. a..\n", want: "search corp.example . a.\n"},
		{name: "an option set again, in the same line or a later one, keeps its last value", in: "options ndots:1 timeout:1 ndots:3\noptions timeout:2\n", want: "options ndots:3 timeout:2\n"},
		{name: "ndots: with no value keeps its colon (glibc reads it as ndots:0)", in: "options ndots: rotate\n", want: "options ndots: rotate\n"},
		{name: "a value is everything after the first colon", in: "options a:b:c :5\n", want: "options a:b:c :5\n"},
		{name: "search domains repeated in the node's line stay, as kubelet keeps them", in: "search a.example a.example\n", want: "search a.example a.example\n"},
		{name: "comments and blank lines are ignored", in: "# generated\n\n  nameserver 10.0.0.1  \n", want: "nameserver 10.0.0.1\n"},
		{name: "a nameserver line without an address fails", in: "nameserver\n", wantErr: true},
		{name: "a file of kubelet's 10 MiB limit fails", in: strings.Repeat("#", MaxFileBytes), wantErr: true},
		{name: "a file just under the limit is read", in: "nameserver 10.0.0.1\n" + strings.Repeat("#", MaxFileBytes-21), want: "nameserver 10.0.0.1\n"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := Parse(tt.in)
			if (err != nil) != tt.wantErr {
				t.Fatalf("err = %v, wantErr %v", err, tt.wantErr)
			}
			if err == nil && c.String() != tt.want {
				t.Errorf("got:\n%s\nwant:\n%s", c, tt.want)
			}
		})
	}
}

func TestOption(t *testing.T) {
	c := mustParse(t, "options ndots:5 rotate\n")
	for _, tt := range []struct {
		name, value string
		ok          bool
	}{{"ndots", "5", true}, {"rotate", "", true}, {"timeout", "", false}} {
		if v, ok := c.Option(tt.name); v != tt.value || ok != tt.ok {
			t.Errorf("Option(%q) = %q, %v; want %q, %v", tt.name, v, ok, tt.value, tt.ok)
		}
	}
}

func TestAmbiguous(t *testing.T) {
	cluster := ClusterDNS{Nameservers: []string{"10.96.0.10"}, ClusterDomain: "cluster.local", NodeResolvConf: mustParse(t, "nameserver 10.0.0.2\noptions timeout:2\n")}
	opts := func(o ...corev1.PodDNSConfigOption) *corev1.PodDNSConfig { return &corev1.PodDNSConfig{Options: o} }
	tests := []struct {
		name   string
		policy corev1.DNSPolicy
		dc     *corev1.PodDNSConfig
		want   []string
	}{
		{"a pod's ndots replaces ndots:5", corev1.DNSClusterFirst, opts(corev1.PodDNSConfigOption{Name: "ndots", Value: str("2")}), nil},
		{"a pod option named ndots:2 is written beside ndots:5", corev1.DNSClusterFirst, opts(corev1.PodDNSConfigOption{Name: "ndots:2"}), []string{"ndots"}},
		{"timeout:1 by name beside the node's timeout:2", corev1.DNSDefault, opts(corev1.PodDNSConfigOption{Name: "timeout:1"}), []string{"timeout"}},
		{"the same word twice is not ambiguous", corev1.DNSDefault, opts(corev1.PodDNSConfigOption{Name: "timeout:2"}), nil},
		{"a pod option named timeout: is written beside timeout:2", corev1.DNSDefault, opts(corev1.PodDNSConfigOption{Name: "timeout:"}), []string{"timeout"}},
		{"timeout with an empty value replaces timeout:2 and is written bare", corev1.DNSDefault, opts(corev1.PodDNSConfigOption{Name: "timeout", Value: str("")}), nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			conf, err := Render(pod("shop", tt.policy, false, tt.dc), cluster)
			if err != nil {
				t.Fatal(err)
			}
			if got := conf.Ambiguous(); !slices.Equal(got, tt.want) {
				t.Errorf("Ambiguous() = %q, want %q (options %s)", got, tt.want, conf)
			}
		})
	}
}

func TestParseOption(t *testing.T) {
	for _, tt := range []struct {
		word, name, value string
		hasValue          bool
	}{
		{"ndots:5", "ndots", "5", true}, {"ndots:", "ndots", "", true}, {"ndots", "ndots", "", false},
		{"timeout:1:3", "timeout", "1:3", true}, {":5", "", "5", true},
	} {
		o := ParseOption(tt.word)
		if o.Name != tt.name || (o.Value != nil) != tt.hasValue || (o.Value != nil && *o.Value != tt.value) {
			t.Errorf("ParseOption(%q) = %s, want name %q value %q (%v)", tt.word, OptionString(o), tt.name, tt.value, tt.hasValue)
		}
		if OptionString(o) != tt.word {
			t.Errorf("OptionString(ParseOption(%q)) = %q", tt.word, OptionString(o))
		}
	}
}
