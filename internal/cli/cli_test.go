package cli

import (
	"context"
	"flag"
	"io"
	"slices"
	"testing"
)

// Every command that takes a shared flag takes it with the same meaning and help text.
func TestSharedFlagsAreOneFlag(t *testing.T) {
	cmds := []Command{&Serve{}, &Inspect{}, &Explain{}}
	for _, name := range []string{"insecure-registry", "kubeconfig"} {
		var want string
		for _, c := range cmds {
			fs := flag.NewFlagSet(c.Info().Name, flag.ContinueOnError)
			c.BindFlags(fs)
			f := fs.Lookup(name)
			if f == nil {
				if name == "kubeconfig" && c.Info().Name == "inspect" {
					continue // inspect reaches registries only
				}
				t.Fatalf("%s has no --%s", c.Info().Name, name)
			}
			if want == "" {
				want = f.Usage
			} else if f.Usage != want {
				t.Errorf("%s --%s: %q, want %q", c.Info().Name, name, f.Usage, want)
			}
		}
	}
}

// recorder is a command that keeps what Execute parsed.
type recorder struct {
	insecure []string
	json     bool
	args     []string
}

func (r *recorder) Info() Info { return Info{Name: "rec"} }
func (r *recorder) BindFlags(fs *flag.FlagSet) {
	bindInsecureRegistries(fs, &r.insecure)
	fs.BoolVar(&r.json, "json", false, "")
}
func (r *recorder) Run(_ context.Context, args []string, _, _ io.Writer) error {
	r.args = args
	return nil
}

// --insecure-registry repeats, and flags may follow arguments: `inspect nginx --json`.
func TestExecuteParsesFlagsAnywhere(t *testing.T) {
	r := &recorder{}
	args := []string{"a", "--insecure-registry", "h1:5000", "b", "--insecure-registry=h2:5000", "--json"}
	if err := Execute(context.Background(), r, args, io.Discard, io.Discard); err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(r.insecure, []string{"h1:5000", "h2:5000"}) || !r.json || !slices.Equal(r.args, []string{"a", "b"}) {
		t.Errorf("insecure = %v, json = %v, args = %v", r.insecure, r.json, r.args)
	}
}
