package clusterwatch

import (
	"context"
	"fmt"

	discoveryv1 "k8s.io/api/discovery/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/client-go/kubernetes"

	"github.com/dns-tuner/dns-tuner/internal/cluster"
)

// Read lists the facts once, for commands run against a kubeconfig (explain, audit), with the
// same narrow reads as Source. Without nodes there are no facts (error); any other fact the
// caller may not read is unknown and says why.
func Read(ctx context.Context, cs kubernetes.Interface, o SourceOptions) (*cluster.Snapshot, error) {
	o.defaults()
	nodes, err := cs.CoreV1().Nodes().List(ctx, metav1.ListOptions{})
	if err != nil {
		return nil, fmt.Errorf("listing nodes: %w", err)
	}
	snap := &cluster.Snapshot{Synced: true, Proxy: cluster.ProxyUnknown, DNSEndpoints: -1}
	for i := range nodes.Items {
		n := &nodes.Items[i]
		snap.Nodes = append(snap.Nodes, cluster.Node{Name: n.Name, Labels: n.Labels, Kernel: kernelOrNone(n.Status.NodeInfo.KernelVersion)})
	}
	byName := func(name string) metav1.ListOptions {
		return metav1.ListOptions{FieldSelector: fields.OneTermEqualSelector("metadata.name", name).String()}
	}
	where := o.Namespace + "/" + o.ProxyConfigMap
	if cms, err := cs.CoreV1().ConfigMaps(o.Namespace).List(ctx, byName(o.ProxyConfigMap)); err != nil {
		snap.ProxyWhy = "ConfigMap " + where + ": " + reason(err)
	} else {
		snap.Proxy, snap.ProxyWhy = proxyFrom(cms.Items, o.ProxyConfigMap, where)
	}
	sel := labels.SelectorFromSet(labels.Set{discoveryv1.LabelServiceName: o.DNSService}).String()
	if sl, err := cs.DiscoveryV1().EndpointSlices(o.Namespace).List(ctx, metav1.ListOptions{LabelSelector: sel}); err == nil {
		snap.DNSEndpoints = readyEndpoints(sl.Items)
	}
	if dss, err := cs.AppsV1().DaemonSets(o.Namespace).List(ctx, byName(o.NodeLocalDaemonSet)); err == nil {
		snap.NodeLocal = nodeLocalFrom(dss.Items, o.NodeLocalDaemonSet)
	}
	if svcs, err := cs.CoreV1().Services(o.Namespace).List(ctx, byName(o.DNSService)); err == nil {
		snap.DNSServiceIP = serviceIP(svcs.Items, o.DNSService)
	}
	return snap, nil
}

func kernelOrNone(raw string) cluster.Kernel {
	if raw == "" {
		return cluster.Kernel{}
	}
	return cluster.ParseKernel(raw)
}

// reason says why a fact is unknown, in at most about 120 bytes.
func reason(err error) string {
	if apierrors.IsForbidden(err) {
		return "not allowed to read it"
	}
	return cluster.Clip(err.Error(), 120)
}
