package explain

import (
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/clientcmd"

	"github.com/dns-tuner/dns-tuner/internal/libc"
	"github.com/dns-tuner/dns-tuner/internal/policy"
	"github.com/dns-tuner/dns-tuner/internal/resolvconf"
)

// DetectorFunc builds the libc detector for a policy's inspection settings.
type DetectorFunc func(ctx context.Context, in policy.Inspection) (libc.Detector, error)

type stringList []string

func (s *stringList) String() string     { return strings.Join(*s, ",") }
func (s *stringList) Set(v string) error { *s = append(*s, v); return nil }

// Run is `dns-tuner explain`.
func Run(ctx context.Context, args []string, stdout, stderr io.Writer, newDetector DetectorFunc) error {
	fs := flag.NewFlagSet("explain", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var (
		file, namespace, name, kubeconfig, configFile, platform string
		clusterDNS, clusterDomain, nodeResolvConf, nodeSearch   string
		asJSON, noInspect                                       bool
		timeout                                                 time.Duration
		insecure                                                stringList
	)
	fs.StringVar(&file, "f", "", "Pod or workload manifest (YAML or JSON, several documents allowed); - for stdin.")
	fs.StringVar(&namespace, "namespace", "", "Namespace of a live pod (--name), or the namespace for manifests that name none (default: default).")
	fs.StringVar(&name, "name", "", "Explain the live pod with this name (through --kubeconfig).")
	fs.StringVar(&kubeconfig, "kubeconfig", "", "Kubeconfig for --name, and to read the namespace's labels (default $KUBECONFIG or ~/.kube/config).")
	fs.StringVar(&configFile, "config", "", "Cluster policy file (default: the embedded default).")
	fs.BoolVar(&asJSON, "json", false, "Print JSON.")
	fs.BoolVar(&noInspect, "no-inspect", false, "Do not contact registries; containers without a dns-tuner.io/libc annotation are unknown.")
	fs.Var(&insecure, "insecure-registry", "HOST:PORT reached over plain HTTP and allowed on loopback/private addresses (repeatable).")
	fs.StringVar(&platform, "platform", "", "os/arch[/variant] to pick from multi-arch images (default: the policy's, linux/amd64).")
	fs.DurationVar(&timeout, "timeout", 30*time.Second, "How long to wait for each pod's image inspections.")
	fs.StringVar(&clusterDNS, "cluster-dns", "10.96.0.10", "kubelet's clusterDNS address, for the rendered resolv.conf.")
	fs.StringVar(&clusterDomain, "cluster-domain", "cluster.local", "kubelet's clusterDomain.")
	fs.StringVar(&nodeResolvConf, "node-resolv-conf", "", "The node's resolv.conf (kubelet's resolvConf): its search domains follow the cluster's in every ClusterFirst pod.")
	fs.StringVar(&nodeSearch, "node-search", "", "The node's search domains, comma-separated (instead of --node-resolv-conf's).")
	fs.Usage = func() {
		fmt.Fprintln(stderr, "Usage: dns-tuner explain (-f FILE | --namespace NS --name POD) [flags]")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		return err
	}
	if (file == "") == (name == "") {
		fs.Usage()
		return fmt.Errorf("give either -f FILE or --name POD")
	}

	p := policy.Default()
	if configFile != "" {
		data, err := os.ReadFile(configFile)
		if err != nil {
			return err
		}
		if p, err = policy.Parse(data); err != nil {
			return err
		}
	}
	in := p.Inspection
	in.Enabled = !noInspect
	in.InsecureRegistries = append(in.InsecureRegistries, insecure...)
	if platform != "" {
		in.Platform = platform
	}
	var det libc.Detector = libc.UnknownDetector{}
	if in.Enabled && newDetector != nil {
		d, err := newDetector(ctx, in)
		if err != nil {
			return err
		}
		det = d
	}

	var inputs []Input
	var cs kubernetes.Interface
	if name != "" || kubeconfig != "" {
		var err error
		if cs, err = clientset(kubeconfig); err != nil {
			return err
		}
	}
	ns := namespace
	if ns == "" {
		ns = "default"
	}
	switch {
	case name != "":
		pod, err := cs.CoreV1().Pods(ns).Get(ctx, name, metav1.GetOptions{})
		if err != nil {
			return err
		}
		inputs = []Input{{Source: "live pod", Pod: pod}}
	default:
		r, src := io.Reader(os.Stdin), "stdin"
		if file != "-" {
			f, err := os.Open(file)
			if err != nil {
				return err
			}
			defer f.Close()
			r, src = f, file
		}
		var err error
		if inputs, err = ReadPods(r, src, ns); err != nil {
			return err
		}
	}
	if cs != nil {
		for i := range inputs {
			n, err := cs.CoreV1().Namespaces().Get(ctx, inputs[i].Pod.Namespace, metav1.GetOptions{})
			if err == nil {
				inputs[i].NamespaceLabels, inputs[i].NamespaceKnown = n.Labels, true
			}
		}
	}

	cluster := resolvconf.ClusterDNS{Nameservers: []string{clusterDNS}, ClusterDomain: clusterDomain}
	if nodeResolvConf != "" {
		data, err := os.ReadFile(nodeResolvConf)
		if err != nil {
			return err
		}
		if cluster.NodeResolvConf, err = resolvconf.Parse(string(data)); err != nil {
			return fmt.Errorf("%s: %w", nodeResolvConf, err)
		}
	}
	if nodeSearch != "" {
		if cluster.NodeResolvConf == nil {
			cluster.NodeResolvConf = &resolvconf.Config{}
		}
		cluster.NodeResolvConf.Searches = strings.Split(nodeSearch, ",")
	}
	reports := make([]Report, 0, len(inputs))
	for _, input := range inputs {
		r, err := Explain(ctx, p, det, timeout, cluster, input)
		if err != nil {
			return fmt.Errorf("%s: %w", input.Source, err)
		}
		if r.ClusterDNS && cluster.NodeResolvConf == nil {
			// kubelet appends the node's search domains, which explain cannot see
			r.Notes = append(r.Notes, "search shown without the node's domains, which kubelet appends: pass --node-resolv-conf or --node-search")
		}
		reports = append(reports, r)
	}
	if asJSON {
		return PrintJSON(stdout, reports)
	}
	return PrintText(stdout, reports)
}

func clientset(kubeconfig string) (kubernetes.Interface, error) {
	rules := clientcmd.NewDefaultClientConfigLoadingRules()
	if kubeconfig != "" {
		rules.ExplicitPath = kubeconfig
	}
	cfg, err := clientcmd.NewNonInteractiveDeferredLoadingClientConfig(rules, nil).ClientConfig()
	if err != nil {
		return nil, fmt.Errorf("loading kubeconfig: %w", err)
	}
	return kubernetes.NewForConfig(cfg)
}
