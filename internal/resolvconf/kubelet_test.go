package resolvconf

import (
	"encoding/json"
	"fmt"
	"os"
	"slices"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// kubeletCase is hack/kubelet-oracle's record of one kubelet input and its answer.
type kubeletCase struct {
	Name          string               `json:"name"`
	Node          *string              `json:"node"`
	NodeIPs       []string             `json:"nodeIPs"`
	ClusterDNS    []string             `json:"clusterDNS"`
	ClusterDomain string               `json:"clusterDomain"`
	Namespace     string               `json:"namespace"`
	DNSPolicy     corev1.DNSPolicy     `json:"dnsPolicy"`
	HostNetwork   bool                 `json:"hostNetwork"`
	DNSConfig     *corev1.PodDNSConfig `json:"dnsConfig"`
	Want          kubeletResult        `json:"want"`
}

type kubeletResult struct {
	Err         bool     `json:"err"`
	Nameservers []string `json:"nameservers"`
	Searches    []string `json:"searches"`
	Options     []string `json:"options"`
	Events      []string `json:"events"`
	// Warnings is not in the file: replay fills it from Render, want() from the events.
	Warnings []string `json:"-"`
}

func (r kubeletResult) equal(o kubeletResult) bool {
	return r.Err == o.Err && slices.Equal(r.Nameservers, o.Nameservers) && slices.Equal(r.Searches, o.Searches) &&
		slices.Equal(r.Options, o.Options) && slices.Equal(r.Warnings, o.Warnings)
}

func (r kubeletResult) String() string {
	if r.Err {
		return "error"
	}
	return fmt.Sprintf("nameservers %q\n  searches %q\n  options %q\n  warnings %q", r.Nameservers, r.Searches, r.Options, r.Warnings)
}

// want is what Render must return: kubelet's answer, with its pod events as Warnings. kubelet
// sends MissingClusterDNS twice (to the node and, prefixed "pod: ...", to the pod); Render
// reports it once.
func (c kubeletCase) want() kubeletResult {
	w := c.Want
	for _, e := range w.Events {
		kind, rest, _ := strings.Cut(e, " ")
		reason, msg, _ := strings.Cut(rest, " ")
		if kind == corev1.EventTypeWarning && (reason == "DNSConfigForming" || reason == "MissingClusterDNS" && !strings.HasPrefix(msg, "pod: ")) {
			w.Warnings = append(w.Warnings, msg)
		}
	}
	return w
}

// replay puts the case through Parse and Render as dns-tuner's callers do.
func (c kubeletCase) replay() (kubeletResult, error) {
	cluster := ClusterDNS{Nameservers: c.ClusterDNS, ClusterDomain: c.ClusterDomain, NodeIPs: c.NodeIPs}
	if c.Node != nil {
		node, err := Parse(*c.Node)
		if err != nil { // kubelet fails the pod too: the recorded answer is an error
			return kubeletResult{Err: true}, nil //nolint:nilerr // the error is the expected answer
		}
		cluster.NodeResolvConf = node
	}
	pod := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: "p", Namespace: c.Namespace},
		Spec:       corev1.PodSpec{DNSPolicy: c.DNSPolicy, HostNetwork: c.HostNetwork, DNSConfig: c.DNSConfig},
	}
	conf, err := Render(pod, cluster)
	if err != nil {
		return kubeletResult{}, err
	}
	got := kubeletResult{Nameservers: conf.Nameservers, Searches: conf.Searches, Warnings: conf.Warnings}
	for _, o := range conf.Options {
		got.Options = append(got.Options, OptionString(o))
	}
	// kubelet merges options through a map, so the order it writes them in is random.
	slices.Sort(got.Options)
	return got, nil
}

// TestKubeletParity replays every case the real kubelet answered (testdata/kubelet.json,
// written by hack/kubelet-oracle/run.sh from pkg/kubelet/network/dns) through Parse and Render:
// nameservers and search domains in kubelet's order, options as a multiset, and the same
// DNSConfigForming and MissingClusterDNS warnings; a node file kubelet refuses, Parse refuses.
func TestKubeletParity(t *testing.T) {
	data, err := os.ReadFile("testdata/kubelet.json")
	if err != nil {
		t.Fatal(err)
	}
	var file struct {
		Meta struct {
			Kubelet string `json:"kubelet"`
		} `json:"meta"`
		Cases []kubeletCase `json:"cases"`
	}
	if err := json.Unmarshal(data, &file); err != nil {
		t.Fatal(err)
	}
	if len(file.Cases) < 1000 {
		t.Fatalf("only %d cases in testdata/kubelet.json", len(file.Cases))
	}
	failed := 0
	for i, c := range file.Cases {
		name := c.Name
		if name == "" {
			name = fmt.Sprintf("generated case %d", i)
		}
		got, err := c.replay()
		want := c.want()
		if err == nil && got.equal(want) {
			continue
		}
		if failed++; failed > 15 {
			continue
		}
		node := "(kubelet resolvConf \"\")"
		if c.Node != nil {
			node = fmt.Sprintf("%q", *c.Node)
		}
		dc, _ := json.Marshal(c.DNSConfig)
		t.Errorf("%s: node %s, dnsPolicy %s, hostNetwork %v, clusterDNS %q, clusterDomain %q, dnsConfig %s\n got: %v (err %v)\nwant: %v",
			name, node, c.DNSPolicy, c.HostNetwork, c.ClusterDNS, c.ClusterDomain, dc, got, err, want)
	}
	if failed > 0 {
		t.Errorf("%d of %d cases differ from kubelet %s", failed, len(file.Cases), file.Meta.Kubelet)
	}
}
