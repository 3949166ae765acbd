// Package clusterwatch reads the facts of internal/cluster from a live cluster: Source keeps
// a cluster.Snapshot current from narrow informers for serve, and Read lists them once for
// the commands run against a kubeconfig (explain, audit). The rules over the facts stay
// in internal/cluster, which needs no API client.
package clusterwatch

import (
	"context"
	"fmt"
	"strings"
	"sync/atomic"
	"time"

	"github.com/go-logr/logr"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/apimachinery/pkg/labels"
	toolscache "k8s.io/client-go/tools/cache"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/manager"

	"github.com/dns-tuner/dns-tuner/internal/cluster"
	"github.com/dns-tuner/dns-tuner/internal/metrics"
)

// SourceOptions names what Source watches. The zero value is the usual kube-system layout.
type SourceOptions struct {
	// Namespace of kube-proxy's ConfigMap, the cluster DNS Service and NodeLocal DNSCache.
	Namespace string
	// ProxyConfigMap is kube-proxy's ConfigMap (key config.conf, as kubeadm writes it).
	ProxyConfigMap string
	// DNSService is the cluster DNS Service whose EndpointSlices are counted.
	DNSService string
	// NodeLocalDaemonSet is NodeLocal DNSCache's DaemonSet.
	NodeLocalDaemonSet string
	// Refresh bounds how often the facts are rebuilt after a change (a burst of node updates
	// costs one rebuild).
	Refresh time.Duration
	Log     logr.Logger
}

func (o *SourceOptions) defaults() {
	if o.Namespace == "" {
		o.Namespace = "kube-system"
	}
	if o.ProxyConfigMap == "" {
		o.ProxyConfigMap = "kube-proxy"
	}
	if o.DNSService == "" {
		o.DNSService = "kube-dns"
	}
	if o.NodeLocalDaemonSet == "" {
		o.NodeLocalDaemonSet = "node-local-dns"
	}
	if o.Refresh <= 0 {
		o.Refresh = time.Second
	}
}

// Source keeps a Snapshot current from its own narrow informers: nodes stripped to name,
// labels and kernel; one ConfigMap, the DNS Service's EndpointSlices and one DaemonSet, all
// in kube-system and selected by name or label on the server. Until the node informer has
// synced it knows nothing, and every node counts as exposed.
type Source struct {
	o     SourceOptions
	cache cache.Cache
	infs  map[string]cache.Informer
	dirty atomic.Bool
	snap  atomic.Pointer[cluster.Snapshot]
	// kernels caches ParseKernel by string (a cluster runs a handful); logged is the last
	// facts summary logged. Both are rebuild's alone.
	kernels map[string]cluster.Kernel
	logged  string
}

var _ cluster.Facts = &Source{}

// NewSource builds the Source and adds it to the manager, which starts it on every replica
// (no leader election: every replica answers admissions).
func NewSource(mgr manager.Manager, o SourceOptions) (*Source, error) {
	o.defaults()
	ns := map[string]cache.Config{o.Namespace: {}}
	c, err := cache.New(mgr.GetConfig(), cache.Options{
		Scheme: mgr.GetScheme(), Mapper: mgr.GetRESTMapper(),
		DefaultTransform: cache.TransformStripManagedFields(),
		ByObject: map[client.Object]cache.ByObject{
			&corev1.Node{}:      {Transform: stripNode},
			&corev1.ConfigMap{}: {Namespaces: ns, Field: fields.OneTermEqualSelector("metadata.name", o.ProxyConfigMap)},
			&discoveryv1.EndpointSlice{}: {Namespaces: ns, Transform: stripSlice,
				Label: labels.SelectorFromSet(labels.Set{discoveryv1.LabelServiceName: o.DNSService})},
			&appsv1.DaemonSet{}: {Namespaces: ns, Transform: stripDaemonSet,
				Field: fields.OneTermEqualSelector("metadata.name", o.NodeLocalDaemonSet)},
			// The cluster DNS Service's ClusterIP, for the NodeLocal DNSCache None form.
			&corev1.Service{}: {Namespaces: ns, Transform: stripService,
				Field: fields.OneTermEqualSelector("metadata.name", o.DNSService)},
		},
	})
	if err != nil {
		return nil, fmt.Errorf("cluster facts cache: %w", err)
	}
	s := &Source{o: o, cache: c, infs: map[string]cache.Informer{}, kernels: map[string]cluster.Kernel{}}
	mark := toolscache.ResourceEventHandlerFuncs{
		AddFunc:    func(any) { s.dirty.Store(true) },
		UpdateFunc: func(any, any) { s.dirty.Store(true) },
		DeleteFunc: func(any) { s.dirty.Store(true) },
	}
	for name, obj := range map[string]client.Object{"nodes": &corev1.Node{}, "configmap": &corev1.ConfigMap{},
		"endpointslices": &discoveryv1.EndpointSlice{}, "daemonset": &appsv1.DaemonSet{}, "service": &corev1.Service{}} {
		// Before the cache starts this only registers the informer; it does not wait.
		inf, err := c.GetInformer(context.Background(), obj)
		if err != nil {
			return nil, fmt.Errorf("cluster facts informer for %s: %w", name, err)
		}
		if _, err := inf.AddEventHandler(mark); err != nil {
			return nil, err
		}
		s.infs[name] = inf
	}
	if err := mgr.Add(s); err != nil {
		return nil, err
	}
	return s, nil
}

// NeedLeaderElection: every replica needs the facts.
func (s *Source) NeedLeaderElection() bool { return false }

// Start runs the informers and rebuilds the snapshot after changes until ctx ends.
func (s *Source) Start(ctx context.Context) error {
	done := make(chan error, 1)
	go func() { done <- s.cache.Start(ctx) }()
	t := time.NewTicker(s.o.Refresh)
	defer t.Stop()
	s.dirty.Store(true)
	for {
		select {
		case <-ctx.Done():
			return <-done
		case err := <-done:
			return err
		case <-t.C:
		}
		// Rebuild while an informer has not synced (its fact turns known) or after a change.
		if s.dirty.Swap(false) || !s.allSynced() {
			s.rebuild(ctx)
		}
	}
}

func (s *Source) allSynced() bool {
	for _, inf := range s.infs {
		if !inf.HasSynced() {
			return false
		}
	}
	return true
}

// Snapshot is the current facts; nil before the nodes are known.
func (s *Source) Snapshot() *cluster.Snapshot { return s.snap.Load() }

// Exposure implements Facts over the current snapshot.
func (s *Source) Exposure(p cluster.Placement) cluster.Exposure { return s.snap.Load().Exposure(p) }

func (s *Source) rebuild(ctx context.Context) {
	snap := &cluster.Snapshot{Proxy: cluster.ProxyUnknown, DNSEndpoints: -1}
	if !s.infs["nodes"].HasSynced() {
		return
	}
	ro := client.UnsafeDisableDeepCopy // read only, and rebuilt from scratch each time
	var nodes corev1.NodeList
	if err := s.cache.List(ctx, &nodes, ro); err != nil {
		s.o.Log.Error(err, "listing nodes for cluster facts")
		return
	}
	snap.Synced = true
	snap.Nodes = make([]cluster.Node, 0, len(nodes.Items))
	for i := range nodes.Items {
		n := &nodes.Items[i]
		snap.Nodes = append(snap.Nodes, cluster.Node{Name: n.Name, Labels: n.Labels, Kernel: s.kernelOf(n.Status.NodeInfo.KernelVersion)})
	}

	where := s.o.Namespace + "/" + s.o.ProxyConfigMap
	snap.ProxyWhy = "ConfigMap " + where + " not readable yet"
	if s.infs["configmap"].HasSynced() {
		var cms corev1.ConfigMapList
		if err := s.cache.List(ctx, &cms, ro, client.InNamespace(s.o.Namespace)); err == nil {
			snap.Proxy, snap.ProxyWhy = proxyFrom(cms.Items, s.o.ProxyConfigMap, where)
		}
	}
	if s.infs["endpointslices"].HasSynced() {
		var slices discoveryv1.EndpointSliceList
		if err := s.cache.List(ctx, &slices, ro, client.InNamespace(s.o.Namespace)); err == nil {
			snap.DNSEndpoints = readyEndpoints(slices.Items)
		}
	}
	if s.infs["daemonset"].HasSynced() {
		var dss appsv1.DaemonSetList
		if err := s.cache.List(ctx, &dss, ro, client.InNamespace(s.o.Namespace)); err == nil {
			snap.NodeLocal = nodeLocalFrom(dss.Items, s.o.NodeLocalDaemonSet)
		}
	}
	if s.infs["service"].HasSynced() {
		var svcs corev1.ServiceList
		if err := s.cache.List(ctx, &svcs, ro, client.InNamespace(s.o.Namespace)); err == nil {
			snap.DNSServiceIP = serviceIP(svcs.Items, s.o.DNSService)
		}
	}
	s.snap.Store(snap)
	counts := setNodeMetrics(snap)
	// One line when what decides changes, not on every node heartbeat.
	summary := fmt.Sprintf("%v|%s|%d|%+v|%s", counts, snap.Proxy, snap.DNSEndpoints, snap.NodeLocal, snap.DNSServiceIP)
	if summary != s.logged {
		s.logged = summary
		s.o.Log.Info("cluster facts", "nodes", len(snap.Nodes), "exposure", counts, "kubeProxy", snap.Proxy, "kubeProxyFrom", snap.ProxyWhy,
			"dnsEndpoints", snap.DNSEndpoints, "nodeLocalDNS", snap.NodeLocal.Running, "nodeLocalAddress", snap.NodeLocal.Address, "dnsServiceIP", snap.DNSServiceIP)
	}
}

func (s *Source) kernelOf(raw string) cluster.Kernel {
	if raw == "" {
		return cluster.Kernel{}
	}
	k, ok := s.kernels[raw]
	if !ok {
		if len(s.kernels) > 1024 { // kernels come and go with node pools
			clear(s.kernels)
		}
		k = cluster.ParseKernel(raw)
		s.kernels[raw] = k
	}
	return k
}

// proxyFrom reads kube-proxy's mode from its ConfigMap; no ConfigMap is unknown (GKE passes
// flags, a kube-proxy replacement has none).
func proxyFrom(cms []corev1.ConfigMap, name, where string) (cluster.ProxyMode, string) {
	for _, cm := range cms {
		if cm.Name != name {
			continue
		}
		conf, ok := cm.Data["config.conf"]
		if !ok {
			return cluster.ProxyUnknown, "ConfigMap " + where + " has no config.conf"
		}
		m, err := cluster.ParseProxyConfig(conf)
		if err != nil {
			return cluster.ProxyUnknown, cluster.Clip(err.Error(), 120)
		}
		return m, "ConfigMap " + where
	}
	return cluster.ProxyUnknown, "no ConfigMap " + where
}

// readyEndpoints counts the distinct ready addresses behind the DNS Service; -1 when it has
// no EndpointSlice (a Service of another name, or none).
func readyEndpoints(slices []discoveryv1.EndpointSlice) int {
	if len(slices) == 0 {
		return -1
	}
	seen := map[string]bool{}
	for _, sl := range slices {
		for _, ep := range sl.Endpoints {
			if ep.Conditions.Ready != nil && !*ep.Conditions.Ready {
				continue
			}
			if len(ep.Addresses) > 0 {
				seen[ep.Addresses[0]] = true
			}
		}
	}
	return len(seen)
}

func nodeLocalFrom(dss []appsv1.DaemonSet, name string) cluster.NodeLocalDNS {
	nl := cluster.NodeLocalDNS{Known: true}
	for _, ds := range dss {
		if ds.Name != name {
			continue
		}
		nl.Running = ds.Status.NumberReady > 0
		for _, c := range ds.Spec.Template.Spec.Containers {
			if a := localIP(c.Args); a != "" {
				nl.Address = a
			}
		}
	}
	return nl
}

// localIP is the first address of node-cache's -localip flag ("169.254.20.10,10.96.0.10").
func localIP(args []string) string {
	for i, a := range args {
		a = strings.TrimLeft(a, "-")
		v, ok := strings.CutPrefix(a, "localip=")
		if !ok && a == "localip" && i+1 < len(args) {
			v, ok = args[i+1], true
		}
		if ok {
			first, _, _ := strings.Cut(v, ",")
			return strings.TrimSpace(first)
		}
	}
	return ""
}

// stripNode keeps a node's name, labels and kernel: a node object is tens of KiB (images,
// conditions), and the informer holds one per node.
func stripNode(obj any) (any, error) {
	n, ok := obj.(*corev1.Node)
	if !ok {
		return obj, nil
	}
	out := &corev1.Node{}
	out.Name, out.Labels, out.ResourceVersion, out.UID = n.Name, n.Labels, n.ResourceVersion, n.UID
	out.Status.NodeInfo.KernelVersion = n.Status.NodeInfo.KernelVersion
	return out, nil
}

func stripSlice(obj any) (any, error) {
	sl, ok := obj.(*discoveryv1.EndpointSlice)
	if !ok {
		return obj, nil
	}
	out := &discoveryv1.EndpointSlice{AddressType: sl.AddressType}
	out.Name, out.Namespace, out.Labels, out.ResourceVersion = sl.Name, sl.Namespace, sl.Labels, sl.ResourceVersion
	for _, ep := range sl.Endpoints {
		out.Endpoints = append(out.Endpoints, discoveryv1.Endpoint{Addresses: ep.Addresses, Conditions: discoveryv1.EndpointConditions{Ready: ep.Conditions.Ready}})
	}
	return out, nil
}

func stripDaemonSet(obj any) (any, error) {
	ds, ok := obj.(*appsv1.DaemonSet)
	if !ok {
		return obj, nil
	}
	out := &appsv1.DaemonSet{}
	out.Name, out.Namespace, out.ResourceVersion = ds.Name, ds.Namespace, ds.ResourceVersion
	out.Status.NumberReady = ds.Status.NumberReady
	for _, c := range ds.Spec.Template.Spec.Containers {
		out.Spec.Template.Spec.Containers = append(out.Spec.Template.Spec.Containers, corev1.Container{Name: c.Name, Args: c.Args})
	}
	return out, nil
}

func stripService(obj any) (any, error) {
	svc, ok := obj.(*corev1.Service)
	if !ok {
		return obj, nil
	}
	out := &corev1.Service{}
	out.Name, out.Namespace, out.ResourceVersion = svc.Name, svc.Namespace, svc.ResourceVersion
	out.Spec.ClusterIP = svc.Spec.ClusterIP
	return out, nil
}

// serviceIP is the ClusterIP of the named Service; "" when it has none (headless) or is absent.
func serviceIP(svcs []corev1.Service, name string) string {
	for _, s := range svcs {
		if s.Name == name && s.Spec.ClusterIP != corev1.ClusterIPNone {
			return s.Spec.ClusterIP
		}
	}
	return ""
}

// setNodeMetrics sets dns_tuner_nodes by exposure: exposed, not_exposed, and unknown (counted
// as exposed because a fact was unknown).
func setNodeMetrics(snap *cluster.Snapshot) map[string]int {
	counts := map[string]int{"exposed": 0, "not_exposed": 0, "unknown": 0}
	for i := range snap.Nodes {
		ne := snap.NodeExposure(&snap.Nodes[i])
		switch {
		case ne.Unknown:
			counts["unknown"]++
		case ne.Exposed:
			counts["exposed"]++
		default:
			counts["not_exposed"]++
		}
	}
	for k, v := range counts {
		metrics.Nodes.WithLabelValues(k).Set(float64(v))
	}
	return counts
}
