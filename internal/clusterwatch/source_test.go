package clusterwatch

import (
	"strings"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"

	"github.com/dns-tuner/dns-tuner/internal/cluster"
)

// The node informer keeps only name, labels and kernel: the rest of a node (images,
// conditions, addresses) is what makes node objects large.
func TestStripNode(t *testing.T) {
	n := &corev1.Node{}
	n.Name, n.Labels, n.Annotations = "n1", map[string]string{"pool": "a"}, map[string]string{"big": strings.Repeat("x", 1000)}
	n.Status.NodeInfo.KernelVersion = "5.4.0-1103-aws"
	n.Status.NodeInfo.OSImage = "Ubuntu"
	n.Status.Images = []corev1.ContainerImage{{Names: []string{"img"}}}
	n.Status.Conditions = []corev1.NodeCondition{{Type: corev1.NodeReady}}
	out, _ := stripNode(n)
	got := out.(*corev1.Node)
	if got.Name != "n1" || got.Labels["pool"] != "a" || got.Status.NodeInfo.KernelVersion != "5.4.0-1103-aws" {
		t.Fatalf("kept too little: %+v", got)
	}
	if got.Annotations != nil || got.Status.Images != nil || got.Status.Conditions != nil || got.Status.NodeInfo.OSImage != "" {
		t.Fatalf("kept too much: %+v", got)
	}
	if o, _ := stripNode("tombstone"); o != "tombstone" {
		t.Fatal("non-node changed")
	}
}

func TestLocalIP(t *testing.T) {
	for args, want := range map[string]string{
		"-localip 169.254.20.10,10.96.0.10 -conf /etc/Corefile": "169.254.20.10",
		"-localip=169.254.20.25 -conf /etc/Corefile":            "169.254.20.25",
		"--localip=fd00::10":                                    "fd00::10",
		"-conf /etc/Corefile":                                   "",
		"-localip":                                              "",
	} {
		if got := localIP(strings.Fields(args)); got != want {
			t.Errorf("localIP(%s) = %q, want %q", args, got, want)
		}
	}
}

func TestReadyEndpoints(t *testing.T) {
	yes, no := true, false
	ep := func(addr string, ready *bool) discoveryv1.Endpoint {
		return discoveryv1.Endpoint{Addresses: []string{addr}, Conditions: discoveryv1.EndpointConditions{Ready: ready}}
	}
	if got := readyEndpoints(nil); got != -1 {
		t.Errorf("no slices: %d, want -1 (unknown)", got)
	}
	slices := []discoveryv1.EndpointSlice{
		{Endpoints: []discoveryv1.Endpoint{ep("10.0.0.1", &yes), ep("10.0.0.2", nil), ep("10.0.0.3", &no)}},
		{Endpoints: []discoveryv1.Endpoint{ep("10.0.0.1", &yes)}}, // the same pod in a second slice
	}
	if got := readyEndpoints(slices); got != 2 {
		t.Errorf("ready endpoints = %d, want 2", got)
	}
}

func TestProxyFromAndNodeLocal(t *testing.T) {
	cm := func(name string, data map[string]string) corev1.ConfigMap {
		c := corev1.ConfigMap{Data: data}
		c.Name = name
		return c
	}
	for _, tt := range []struct {
		cms  []corev1.ConfigMap
		mode cluster.ProxyMode
		why  string
	}{
		{nil, cluster.ProxyUnknown, "no ConfigMap kube-system/kube-proxy"},
		{[]corev1.ConfigMap{cm("kube-proxy", map[string]string{"kubeconfig.conf": "x"})}, cluster.ProxyUnknown, "has no config.conf"},
		{[]corev1.ConfigMap{cm("kube-proxy", map[string]string{"config.conf": "mode: ipvs"})}, cluster.ProxyIPVS, "ConfigMap kube-system/kube-proxy"},
		{[]corev1.ConfigMap{cm("other", map[string]string{"config.conf": "mode: ipvs"})}, cluster.ProxyUnknown, "no ConfigMap"},
	} {
		m, why := proxyFrom(tt.cms, "kube-proxy", "kube-system/kube-proxy")
		if m != tt.mode || !strings.Contains(why, tt.why) {
			t.Errorf("proxyFrom = %s %q, want %s %q", m, why, tt.mode, tt.why)
		}
	}
	ds := appsv1.DaemonSet{}
	ds.Name = "node-local-dns"
	ds.Status.NumberReady = 2
	ds.Spec.Template.Spec.Containers = []corev1.Container{{Args: []string{"-localip", "169.254.20.10"}}}
	if nl := nodeLocalFrom([]appsv1.DaemonSet{ds}, "node-local-dns"); !nl.Known || !nl.Running || nl.Address != "169.254.20.10" {
		t.Errorf("node-local = %+v", nl)
	}
	if nl := nodeLocalFrom(nil, "node-local-dns"); !nl.Known || nl.Running {
		t.Errorf("absent node-local = %+v", nl)
	}
}
