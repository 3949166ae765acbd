// Package inspectcmd is `dns-tuner inspect IMAGE...`: the verdict admission would reach for
// each image, with its evidence, as a table or JSON. It uses the local docker credentials
// and the same SSRF guard as the webhook.
package inspectcmd

import (
	"context"
	"encoding/json"
	"errors"
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

const usage = `Usage: dns-tuner inspect [flags] IMAGE...

Fetches each image's manifest and only the layers needed to decide which libc its
entrypoint uses (glibc, musl, go, static or unknown) and prints the evidence. Registry
credentials come from the docker config ($DOCKER_CONFIG, ~/.docker/config.json).

Flags:
`

// Result is one image's line of output (one element of the --json array).
type Result struct {
	Image string `json:"image"`
	libc.Verdict
	Took  string `json:"took"`            // Duration, for people
	Error string `json:"error,omitempty"` // why the image could not be inspected
}

// Run executes `dns-tuner inspect` with args (without the command name). It returns an error
// if the flags are wrong or any image could not be inspected; every image is still reported.
func Run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("inspect", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprint(fs.Output(), usage)
		fs.PrintDefaults()
	}
	asJSON := fs.Bool("json", false, "Print a JSON array instead of a table.")
	platform := fs.String("platform", "linux/amd64", "Image to pick from a multi-arch index: os/arch[/variant].")
	timeout := fs.Duration("timeout", inspect.DefaultTimeout, "Longest time spent on one image.")
	maxBytes := fs.Int64("max-bytes", inspect.DefaultMaxBytes, "Most compressed bytes fetched for one image.")
	var insecure listFlag
	fs.Var(&insecure, "insecure-registry", "HOST:PORT reached over plain HTTP and allowed on loopback or link-local addresses (repeatable).")

	// Flags may follow images: `dns-tuner inspect nginx --json`.
	var images []string
	for rest := args; ; {
		if err := fs.Parse(rest); err != nil {
			return err
		}
		if rest = fs.Args(); len(rest) == 0 {
			break
		}
		images, rest = append(images, rest[0]), rest[1:]
	}
	if len(images) == 0 {
		fs.Usage()
		return errors.New("inspect: no image given")
	}
	plat, err := v1.ParsePlatform(*platform)
	if err != nil || plat.OS == "" || plat.Architecture == "" {
		return fmt.Errorf("--platform %q: want os/arch[/variant]", *platform)
	}
	g, err := registry.New(registry.Config{Insecure: insecure})
	if err != nil {
		return err
	}
	in := inspect.New(inspect.Options{
		Platform: *plat, MaxBytes: *maxBytes, Timeout: *timeout,
		Transport: g.Transport(), RemoteOptions: g.RetryOptions(),
	})

	results := make([]Result, 0, len(images))
	failed := 0
	for _, image := range images {
		r := inspectOne(ctx, g, in, image)
		if r.Error != "" {
			failed++
		}
		results = append(results, r)
	}
	if *asJSON {
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

func inspectOne(ctx context.Context, g *registry.Guard, in *inspect.Inspector, image string) Result {
	r := Result{Image: image}
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

func table(w io.Writer, results []Result) error {
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

// listFlag is a repeatable string flag.
type listFlag []string

func (l *listFlag) String() string     { return strings.Join(*l, ",") }
func (l *listFlag) Set(s string) error { *l = append(*l, s); return nil }
