// Package cli is dns-tuner's command line: every subcommand (serve, inspect, explain,
// version) is a Command with its own flags, run the same way by Main. cmd/dns-tuner only
// adds signal handling and the admission adapter.
package cli

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
)

// Command is one dns-tuner subcommand.
type Command interface {
	Info() Info
	// BindFlags registers the command's flags; they are parsed before Run.
	BindFlags(fs *flag.FlagSet)
	// Run executes the command with the arguments left after the flags.
	Run(ctx context.Context, args []string, stdout, stderr io.Writer) error
}

// Info names and describes a command for help output.
type Info struct {
	Name  string // the word after dns-tuner
	Args  string // what follows the name in the synopsis: "[flags] IMAGE..."
	Short string // one line for dns-tuner's usage
	Long  string // more, for `dns-tuner NAME -h`; may be empty
}

// UsageError is a mistake in a command's arguments; Main prints the command's usage with it.
type UsageError struct{ msg string }

func (e *UsageError) Error() string { return e.msg }

func usageErrorf(format string, args ...any) error {
	return &UsageError{msg: fmt.Sprintf(format, args...)}
}

// Main runs the command args[0] names, with the remaining arguments.
func Main(ctx context.Context, args []string, stdout, stderr io.Writer, cmds []Command) error {
	if len(args) == 0 {
		usage(stderr, cmds)
		return errors.New("no command given")
	}
	switch args[0] {
	case "-h", "--help", "help":
		usage(stdout, cmds)
		return nil
	}
	for _, c := range cmds {
		if c.Info().Name == args[0] {
			return Execute(ctx, c, args[1:], stdout, stderr)
		}
	}
	usage(stderr, cmds)
	return fmt.Errorf("unknown command %q", args[0])
}

// Execute parses c's flags from args (flags may follow arguments: `inspect nginx --json`)
// and runs c. -h prints the command's usage and is not an error.
func Execute(ctx context.Context, c Command, args []string, stdout, stderr io.Writer) error {
	info := c.Info()
	fs := flag.NewFlagSet(info.Name, flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() { commandUsage(fs.Output(), info, fs) }
	c.BindFlags(fs)
	var rest []string
	for {
		if err := fs.Parse(args); err != nil {
			if errors.Is(err, flag.ErrHelp) {
				return nil
			}
			return err
		}
		if args = fs.Args(); len(args) == 0 {
			break
		}
		rest, args = append(rest, args[0]), args[1:]
	}
	err := c.Run(ctx, rest, stdout, stderr)
	if ue := (*UsageError)(nil); errors.As(err, &ue) {
		fs.Usage()
	}
	return err
}

func usage(w io.Writer, cmds []Command) {
	fmt.Fprint(w, "dns-tuner: libc-aware DNS resolver options for Kubernetes pods.\n\nUsage:\n")
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	for _, c := range cmds {
		i := c.Info()
		fmt.Fprintf(tw, "  dns-tuner %s\t%s\n", strings.TrimSpace(i.Name+" "+i.Args), i.Short)
	}
	_ = tw.Flush()
	fmt.Fprint(w, "\nRun \"dns-tuner <command> -h\" for a command's flags.\n")
}

func commandUsage(w io.Writer, i Info, fs *flag.FlagSet) {
	fmt.Fprintf(w, "Usage: dns-tuner %s\n\n%s\n", strings.TrimSpace(i.Name+" "+i.Args), i.Short)
	if i.Long != "" {
		fmt.Fprintf(w, "\n%s\n", strings.TrimSpace(i.Long))
	}
	fmt.Fprint(w, "\nFlags:\n")
	fs.PrintDefaults()
}

// Version is `dns-tuner version`.
type Version struct{ Version string }

func (v *Version) Info() Info {
	return Info{Name: "version", Short: "print the version"}
}
func (v *Version) BindFlags(*flag.FlagSet) {}
func (v *Version) Run(_ context.Context, args []string, stdout, _ io.Writer) error {
	if len(args) > 0 {
		return usageErrorf("version takes no arguments")
	}
	_, err := fmt.Fprintln(stdout, v.Version)
	return err
}
