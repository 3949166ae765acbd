package cli

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/google/go-containerregistry/pkg/authn"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/remote"

	"github.com/dns-tuner/dns-tuner/internal/inspect"
	"github.com/dns-tuner/dns-tuner/internal/libc"
	"github.com/dns-tuner/dns-tuner/internal/registry"
)

// Inspect is `dns-tuner inspect IMAGE...`: the verdict admission would reach for each image,
// with its evidence, as a table or JSON. It uses the local docker credentials and the same
// SSRF guard as the webhook.
type Inspect struct {
	asJSON   bool
	platform string
	timeout  time.Duration
	maxBytes int64
	insecure []string
}

// InspectResult is one image's line of output (one element of the --json array).
type InspectResult struct {
	Image string `json:"image"`
	libc.Verdict
	Took  string `json:"took"`            // Duration, for people
	Error string `json:"error,omitempty"` // why the image could not be inspected
}

func (c *Inspect) Info() Info {
	return Info{Name: "inspect", Args: "[flags] IMAGE...", Short: "decide images' libc from their registry, with evidence",
		Long: `Fetches each image's manifest and only the layers needed to decide which libc its
entrypoint uses (glibc, musl, go, static or unknown) and prints the evidence. Registry
credentials come from the docker config ($DOCKER_CONFIG, ~/.docker/config.json).`}
}

func (c *Inspect) BindFlags(fs *flag.FlagSet) {
	fs.BoolVar(&c.asJSON, "json", false, "Print a JSON array instead of a table.")
	fs.StringVar(&c.platform, "platform", "linux/amd64", "Image to pick from a multi-arch index: os/arch[/variant].")
	fs.DurationVar(&c.timeout, "timeout", inspect.DefaultTimeout, "Longest time spent on one image.")
	fs.Int64Var(&c.maxBytes, "max-bytes", inspect.DefaultMaxBytes, "Most compressed bytes fetched for one image.")
	bindInsecureRegistries(fs, &c.insecure)
}

// Run returns an error if any image could not be inspected; every image is still reported.
func (c *Inspect) Run(ctx context.Context, images []string, stdout, _ io.Writer) error {
	if len(images) == 0 {
		return usageErrorf("inspect: no image given")
	}
	plat, err := v1.ParsePlatform(c.platform)
	if err != nil || plat.OS == "" || plat.Architecture == "" {
		return fmt.Errorf("--platform %q: want os/arch[/variant]", c.platform)
	}
	g, err := registry.New(registry.Config{Insecure: c.insecure})
	if err != nil {
		return err
	}
	in := inspect.New(inspect.Options{
		Platform: *plat, MaxBytes: c.maxBytes, Timeout: c.timeout,
		Transport: g.Transport(), RemoteOptions: g.RetryOptions(),
	})

	results := make([]InspectResult, 0, len(images))
	failed := 0
	for _, image := range images {
		r := inspectOne(ctx, g, in, image)
		if r.Error != "" {
			failed++
		}
		results = append(results, r)
	}
	if c.asJSON {
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		if err := enc.Encode(results); err != nil {
			return err
		}
	} else if err := table(stdout, results); err != nil {
		return err
	}
	if failed > 0 {
		return fmt.Errorf("%d of %d images could not be inspected", failed, len(images))
	}
	return nil
}

func inspectOne(ctx context.Context, g *registry.Guard, in *inspect.Inspector, image string) InspectResult {
	r := InspectResult{Image: image}
	ref, err := g.ParseReference(image)
	if err == nil {
		r.Verdict, err = in.Inspect(ctx, ref, nil, nil, remote.WithAuthFromKeychain(authn.DefaultKeychain))
	}
	if err != nil {
		r.Error = err.Error()
		if r.Libc == "" {
			r.Libc, r.Source = libc.Unknown, libc.SourceNone
		}
	}
	r.Took = r.Duration.Round(time.Millisecond).String()
	return r
}

func table(w io.Writer, results []InspectResult) error {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "IMAGE\tLIBC\tVERSION\tSOURCE\tDIGEST\tFETCHED\tTOOK\tEVIDENCE")
	for _, r := range results {
		evidence := r.Evidence
		switch {
		case r.Error != "":
			evidence = "error: " + r.Error
		case r.Libc == libc.Unknown && r.Reason != "":
			evidence = strings.TrimSpace(strings.TrimPrefix(evidence+"; "+r.Reason, "; "))
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n", r.Image, r.Libc, dash(r.Version), r.Source,
			dash(r.Digest), humanBytes(r.Bytes), r.Took, dash(evidence))
	}
	return tw.Flush()
}

func dash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

func humanBytes(n int64) string {
	switch {
	case n >= 1<<20:
		return fmt.Sprintf("%.1f MiB", float64(n)/(1<<20))
	case n >= 1<<10:
		return fmt.Sprintf("%.1f KiB", float64(n)/(1<<10))
	}
	return fmt.Sprintf("%d B", n)
}
