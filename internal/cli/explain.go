package cli

import (
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"github.com/google/go-containerregistry/pkg/authn"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"

	"github.com/dns-tuner/dns-tuner/internal/clusterwatch"
	"github.com/dns-tuner/dns-tuner/internal/explain"
	"github.com/dns-tuner/dns-tuner/internal/libc"
	"github.com/dns-tuner/dns-tuner/internal/policy"
	"github.com/dns-tuner/dns-tuner/internal/resolvconf"
	"github.com/dns-tuner/dns-tuner/internal/verdicts"
)

// DetectorFunc builds the libc detector for a policy's inspection settings.
type DetectorFunc func(ctx context.Context, in policy.Inspection) (libc.Detector, error)

// Explain is `dns-tuner explain`: what dns-tuner does to a pod, a workload's pod template or
// a live pod, and why. The report itself is package explain's.
type Explain struct {
	// NewDetector builds the registry inspector; nil means commandDetector's default.
	NewDetector DetectorFunc

	file, namespace, name, kubeconfig, configFile, platform string
	clusterDNS, clusterDomain, nodeResolvConf, nodeSearch   string
	asJSON, noInspect                                       bool
	timeout                                                 time.Duration
	insecure                                                []string
}

func (c *Explain) Info() Info {
	return Info{Name: "explain", Args: "(-f FILE | --namespace NS --name POD) [flags]", Short: "what dns-tuner does to a pod or workload, and why"}
}

func (c *Explain) BindFlags(fs *flag.FlagSet) {
	fs.StringVar(&c.file, "f", "", "Pod or workload manifest (YAML or JSON, several documents allowed); - for stdin.")
	fs.StringVar(&c.namespace, "namespace", "", "Namespace of a live pod (--name), or the namespace for manifests that name none (default: default).")
	fs.StringVar(&c.name, "name", "", "Explain the live pod with this name (through --kubeconfig).")
	bindKubeconfig(fs, &c.kubeconfig)
	fs.StringVar(&c.configFile, "config", "", "Cluster policy file (default: the embedded default).")
	fs.BoolVar(&c.asJSON, "json", false, "Print JSON.")
	fs.BoolVar(&c.noInspect, "no-inspect", false, "Do not contact registries; containers without a dns-tuner.io/libc annotation are unknown.")
	bindInsecureRegistries(fs, &c.insecure)
	fs.StringVar(&c.platform, "platform", "", "os/arch[/variant] to pick from multi-arch images (default: the policy's, linux/amd64).")
	fs.DurationVar(&c.timeout, "timeout", 30*time.Second, "How long to wait for each pod's image inspections.")
	fs.StringVar(&c.clusterDNS, "cluster-dns", "10.96.0.10", "kubelet's clusterDNS address, for the rendered resolv.conf.")
	fs.StringVar(&c.clusterDomain, "cluster-domain", "cluster.local", "kubelet's clusterDomain.")
	fs.StringVar(&c.nodeResolvConf, "node-resolv-conf", "", "The node's resolv.conf (kubelet's resolvConf): its search domains follow the cluster's in every ClusterFirst pod.")
	fs.StringVar(&c.nodeSearch, "node-search", "", "The node's search domains, comma-separated (instead of --node-resolv-conf's).")
}

func (c *Explain) Run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	if len(args) > 0 {
		return usageErrorf("explain takes no arguments, got %q (a manifest is -f FILE)", args)
	}
	if (c.file == "") == (c.name == "") {
		return usageErrorf("give either -f FILE or --name POD")
	}
	p, err := policyFile(c.configFile)
	if err != nil {
		return err
	}
	det, err := c.detector(ctx, p.Inspection)
	if err != nil {
		return err
	}

	var cs kubernetes.Interface
	if c.name != "" || c.kubeconfig != "" {
		cfg, err := restConfig(c.kubeconfig)
		if err != nil {
			return fmt.Errorf("loading kubeconfig: %w", err)
		}
		if cs, err = kubernetes.NewForConfig(cfg); err != nil {
			return err
		}
	}
	inputs, err := c.inputs(ctx, cs)
	if err != nil {
		return err
	}
	if cs != nil {
		// The nodes' kernels decide the race fix; without them every node counts as exposed.
		facts, err := clusterwatch.Read(ctx, cs, clusterwatch.SourceOptions{})
		if err != nil {
			fmt.Fprintf(stderr, "dns-tuner explain: cluster facts unavailable, every node counts as exposed: %v\n", err)
		}
		for i := range inputs {
			if facts != nil {
				inputs[i].Facts = facts
			}
			n, err := cs.CoreV1().Namespaces().Get(ctx, inputs[i].Pod.Namespace, metav1.GetOptions{})
			if err == nil {
				inputs[i].NamespaceLabels, inputs[i].NamespaceKnown = n.Labels, true
			}
		}
	}

	cluster := resolvconf.ClusterDNS{Nameservers: []string{c.clusterDNS}, ClusterDomain: c.clusterDomain}
	if c.nodeResolvConf != "" {
		data, err := os.ReadFile(c.nodeResolvConf)
		if err != nil {
			return err
		}
		if cluster.NodeResolvConf, err = resolvconf.Parse(string(data)); err != nil {
			return fmt.Errorf("%s: %w", c.nodeResolvConf, err)
		}
	}
	if c.nodeSearch != "" {
		if cluster.NodeResolvConf == nil {
			cluster.NodeResolvConf = &resolvconf.Config{}
		}
		cluster.NodeResolvConf.Searches = strings.Split(c.nodeSearch, ",")
	}
	reports := make([]explain.Report, 0, len(inputs))
	for _, input := range inputs {
		r, err := explain.Explain(ctx, p, det, c.timeout, cluster, input)
		if err != nil {
			return fmt.Errorf("%s: %w", input.Source, err)
		}
		if r.ClusterDNS && cluster.NodeResolvConf == nil {
			// kubelet appends the node's search domains, which explain cannot see
			r.Notes = append(r.Notes, "search shown without the node's domains, which kubelet appends: pass --node-resolv-conf or --node-search")
		}
		reports = append(reports, r)
	}
	if c.asJSON {
		return explain.PrintJSON(stdout, reports)
	}
	return explain.PrintText(stdout, reports)
}

// detector is the policy's registry inspection with the command line's changes, or unknown
// for every container without an annotation under --no-inspect.
func (c *Explain) detector(ctx context.Context, in policy.Inspection) (libc.Detector, error) {
	return commandDetector(ctx, in, c.noInspect, c.insecure, c.platform, c.NewDetector, 0)
}

// inputs reads the live pod (--name) or the manifests (-f).
func (c *Explain) inputs(ctx context.Context, cs kubernetes.Interface) ([]explain.Input, error) {
	ns := c.namespace
	if ns == "" {
		ns = "default"
	}
	if c.name != "" {
		pod, err := cs.CoreV1().Pods(ns).Get(ctx, c.name, metav1.GetOptions{})
		if err != nil {
			return nil, err
		}
		return []explain.Input{{Source: "live pod", Pod: pod}}, nil
	}
	r, src := io.Reader(os.Stdin), "stdin"
	if c.file != "-" {
		f, err := os.Open(c.file)
		if err != nil {
			return nil, err
		}
		defer f.Close()
		r, src = f, c.file
	}
	return explain.ReadPods(r, src, ns)
}

// commandDetector is what a command inspects images with: unknown for every container under
// --no-inspect; otherwise the policy's inspection with the command's --insecure-registry and
// --platform, through newDetector or, by default, as admission does but with the local docker
// config's credentials instead of a pod's pull secrets. concurrency 0 keeps the default.
func commandDetector(ctx context.Context, in policy.Inspection, noInspect bool, insecure []string, platform string, newDetector DetectorFunc, concurrency int) (libc.Detector, error) {
	if noInspect {
		return libc.UnknownDetector{}, nil
	}
	in.Enabled = true
	in.InsecureRegistries = append(in.InsecureRegistries, insecure...)
	if platform != "" {
		in.Platform = platform
	}
	if newDetector != nil {
		return newDetector(ctx, in)
	}
	o := verdicts.Options{
		BaseContext: ctx,
		Keychain: func(context.Context, string, string, []string) (authn.Keychain, error) {
			return authn.DefaultKeychain, nil
		},
	}
	if concurrency > 0 {
		o.Concurrency, o.MaxPending = concurrency, max(256, 2*concurrency)
	}
	return verdicts.FromPolicy(in, o)
}
