package cluster

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"sort"
	"strings"
	"testing"

	"github.com/dns-tuner/dns-tuner/internal/cli"
	"github.com/dns-tuner/dns-tuner/internal/explain"
	"github.com/dns-tuner/dns-tuner/internal/mutate"
	"github.com/dns-tuner/dns-tuner/internal/resolvconf"
)

// TestExplainMatchesContainer: `dns-tuner explain` of a live pod, told the node's search
// domains, predicts the resolv.conf the container really reads (options as a set); without
// them it says the node's domains are missing instead of silently leaving them out.
func TestExplainMatchesContainer(t *testing.T) {
	e := cluster(t)
	imgs := probeImages(t, e)
	ns := namespace(t, e, "explain", "enforce")
	pod := deployment(t, e, ns, "glibc", imgs["glibc"], map[string]string{mutate.AnnotationLibc: "glibc"}, "kubernetes.default")
	r := probeReport(t, e, pod, "kubernetes.default")

	run := func(extra ...string) explain.Report {
		t.Helper()
		var out, errOut bytes.Buffer
		args := append([]string{"--kubeconfig", os.Getenv("KUBECONFIG"), "--namespace", ns, "--name", pod.Name, "--no-inspect", "--json"}, extra...)
		if err := cli.Execute(context.Background(), &cli.Explain{}, args, &out, &errOut); err != nil {
			t.Fatalf("explain %v: %v\n%s", args, err, errOut.String())
		}
		var reps []explain.Report
		if err := json.Unmarshal(out.Bytes(), &reps); err != nil || len(reps) != 1 {
			t.Fatalf("explain --json: %v (%d reports)\n%s", err, len(reps), out.String())
		}
		return reps[0]
	}

	rep := run("--node-search", nodeSearch)
	predicted, err := resolvconf.Parse(rep.ResolvConf)
	if err != nil {
		t.Fatalf("explain's resolv.conf: %v\n%s", err, rep.ResolvConf)
	}
	var opts []string
	for _, o := range predicted.Options {
		if o.Value != nil {
			opts = append(opts, o.Name+":"+*o.Value)
		} else {
			opts = append(opts, o.Name)
		}
	}
	sort.Strings(opts)
	if !equal(predicted.Searches, r.searches) || !equal(predicted.Nameservers, r.nameservers) || !equal(opts, r.options) {
		t.Errorf("explain predicted\n%s\nthe container reads nameserver %v search %v options %v",
			rep.ResolvConf, r.nameservers, r.searches, r.options)
	}

	bare := run()
	if !strings.Contains(strings.Join(bare.Notes, "\n"), "node's domains") {
		t.Errorf("explain without the node's search domains does not say so; notes: %q", bare.Notes)
	}
}
