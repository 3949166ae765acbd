package cli

import (
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"golang.org/x/term"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"

	"github.com/dns-tuner/dns-tuner/internal/audit"
	"github.com/dns-tuner/dns-tuner/internal/clusterwatch"
	"github.com/dns-tuner/dns-tuner/internal/libc"
	"github.com/dns-tuner/dns-tuner/internal/policy"
	"github.com/dns-tuner/dns-tuner/internal/resolvconf"
)

// Audit is `dns-tuner audit`: what dns-tuner would do to a cluster's running workloads, and
// where DNS can stall, before enforce is turned on. The report itself is package audit's.
type Audit struct {
	// NewDetector builds the registry inspector; nil means the local docker credentials with
	// --concurrency registry operations at once.
	NewDetector DetectorFunc
	// Terminal reports whether stderr is a terminal (for the progress bar); nil checks.
	Terminal func(w io.Writer) bool

	kubeconfig, namespace, configFile, platform string
	clusterDNS, clusterDomain                   string
	asJSON, noInspect                           bool
	concurrency                                 int
	timeout                                     time.Duration
	insecure                                    []string
}

func (c *Audit) Info() Info {
	return Info{Name: "audit", Args: "[flags]", Short: "what enforce would change in a running cluster, and where DNS can stall",
		Long: "Reads nodes, kube-proxy's mode, the DNS path and every running pod through the kubeconfig, inspects each distinct image once,\n" +
			"and reports per workload (grouped by Deployment, StatefulSet, DaemonSet, CronJob, ...) each container's libc, the options it\n" +
			"runs with now, what enforce would add and its risk. Installed as kubectl-dns_tuner it runs as `kubectl dns-tuner audit`."}
}

func (c *Audit) BindFlags(fs *flag.FlagSet) {
	bindKubeconfig(fs, &c.kubeconfig)
	fs.StringVar(&c.namespace, "namespace", "", "Audit only this namespace (default: all namespaces; nodes and the DNS path are always read).")
	fs.StringVar(&c.configFile, "config", "", "Cluster policy file (default: the embedded default).")
	fs.BoolVar(&c.asJSON, "json", false, "Print JSON (field names documented in the README).")
	fs.BoolVar(&c.noInspect, "no-inspect", false, "Do not contact registries; containers without a dns-tuner.io/libc annotation are unknown.")
	bindInsecureRegistries(fs, &c.insecure)
	fs.StringVar(&c.platform, "platform", "", "os/arch[/variant] to pick from multi-arch images (default: the policy's, linux/amd64).")
	fs.IntVar(&c.concurrency, "concurrency", 8, "Images inspected at once.")
	fs.DurationVar(&c.timeout, "timeout", 30*time.Second, "How long to wait for each image's inspection.")
	fs.StringVar(&c.clusterDNS, "cluster-dns", "10.96.0.10", "kubelet's clusterDNS address, for the rendered resolv.conf.")
	fs.StringVar(&c.clusterDomain, "cluster-domain", "cluster.local", "kubelet's clusterDomain.")
}

func (c *Audit) Run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	if len(args) > 0 {
		return usageErrorf("audit takes no arguments, got %q", args)
	}
	if c.concurrency < 1 {
		return usageErrorf("--concurrency must be at least 1")
	}
	p, err := policyFile(c.configFile)
	if err != nil {
		return err
	}
	cfg, err := restConfig(c.kubeconfig)
	if err != nil {
		return fmt.Errorf("loading kubeconfig: %w", err)
	}
	cs, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		return err
	}

	o := audit.Options{Policy: p, Timeout: c.timeout,
		DNS: resolvconf.ClusterDNS{Nameservers: []string{c.clusterDNS}, ClusterDomain: c.clusterDomain}}
	if o.Facts, err = clusterwatch.Read(ctx, cs, clusterwatch.SourceOptions{}); err != nil {
		o.Facts, o.FactsError = nil, err.Error()
	}
	pods, err := cs.CoreV1().Pods(c.namespace).List(ctx, metav1.ListOptions{})
	if err != nil {
		return fmt.Errorf("listing pods: %w", err)
	}
	if o.Namespaces, err = namespaceLabels(ctx, cs, c.namespace); err != nil {
		return err
	}
	parents := parentsOf(ctx, cs, c.namespace)

	det, err := c.detector(ctx, p.Inspection)
	if err != nil {
		return err
	}
	groups := audit.GroupPods(pods.Items, parents)
	var progress func(done, total int)
	isTerm := c.Terminal
	if isTerm == nil {
		isTerm = stderrTerminal
	}
	if !c.noInspect && isTerm(stderr) {
		progress = func(done, total int) { progressBar(stderr, done, total) }
	}
	o.Detector = audit.Inspect(ctx, det, audit.Targets(groups), c.concurrency, c.timeout, progress)
	r, err := audit.Build(ctx, o, pods.Items, parents)
	if err != nil {
		return err
	}
	if c.asJSON {
		return audit.PrintJSON(stdout, r)
	}
	return audit.PrintText(stdout, r)
}

func (c *Audit) detector(ctx context.Context, in policy.Inspection) (libc.Detector, error) {
	return commandDetector(ctx, in, c.noInspect, c.insecure, c.platform, c.NewDetector, c.concurrency)
}

// namespaceLabels reads the labels that decide each namespace's mode. One namespace is read
// with get; without the right to list namespaces, every namespace reads as unlabelled.
func namespaceLabels(ctx context.Context, cs kubernetes.Interface, only string) (map[string]map[string]string, error) {
	out := map[string]map[string]string{}
	if only != "" {
		n, err := cs.CoreV1().Namespaces().Get(ctx, only, metav1.GetOptions{})
		if err != nil {
			return nil, fmt.Errorf("namespace %s: %w", only, err)
		}
		out[n.Name] = n.Labels
		return out, nil
	}
	l, err := cs.CoreV1().Namespaces().List(ctx, metav1.ListOptions{})
	if err != nil {
		return nil, fmt.Errorf("listing namespaces: %w", err)
	}
	for _, n := range l.Items {
		out[n.Name] = n.Labels
	}
	return out, nil
}

// parentsOf maps ReplicaSets to their Deployments and Jobs to their CronJobs. What cannot be
// listed stays unresolved: its pods are grouped by the ReplicaSet or Job itself.
func parentsOf(ctx context.Context, cs kubernetes.Interface, ns string) audit.Parents {
	ps := audit.Parents{}
	add := func(kind, namespace, name string, refs []metav1.OwnerReference) {
		for _, r := range refs {
			if r.Controller != nil && *r.Controller {
				ps[audit.ParentKey(kind, namespace, name)] = audit.Owner{Kind: r.Kind, Name: r.Name}
			}
		}
	}
	if rss, err := cs.AppsV1().ReplicaSets(ns).List(ctx, metav1.ListOptions{}); err == nil {
		for _, rs := range rss.Items {
			add("ReplicaSet", rs.Namespace, rs.Name, rs.OwnerReferences)
		}
	}
	if jobs, err := cs.BatchV1().Jobs(ns).List(ctx, metav1.ListOptions{}); err == nil {
		for _, j := range jobs.Items {
			add("Job", j.Namespace, j.Name, j.OwnerReferences)
		}
	}
	return ps
}

func stderrTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	return ok && term.IsTerminal(int(f.Fd()))
}

// progressBar redraws one line on a terminal; the last call ends the line.
func progressBar(w io.Writer, done, total int) {
	const width = 30
	fill := width * done / max(total, 1)
	fmt.Fprintf(w, "\rinspecting images [%s%s] %d/%d", strings.Repeat("#", fill), strings.Repeat(".", width-fill), done, total)
	if done == total {
		fmt.Fprintln(w)
	}
}
