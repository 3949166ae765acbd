package explain

import (
	"encoding/json"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/dns-tuner/dns-tuner/internal/libc"
	"github.com/dns-tuner/dns-tuner/internal/mutate"
)

// PrintJSON writes the reports as one JSON array.
func PrintJSON(w io.Writer, reports []Report) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(reports)
}

// PrintText writes the reports for a person.
func PrintText(w io.Writer, reports []Report) error {
	for i, r := range reports {
		if i > 0 {
			fmt.Fprintln(w)
		}
		printOne(w, r)
	}
	return nil
}

func printOne(w io.Writer, r Report) {
	fmt.Fprintf(w, "%s\n", r.Source)
	fmt.Fprintf(w, "Pod %s/%s\n\n", r.Namespace, r.Pod)

	fmt.Fprintln(w, "Containers:")
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "  NAME\tLIBC\tDECIDED BY\tEVIDENCE")
	for _, c := range r.Containers {
		name := c.Name
		if c.Init {
			name += " (init)"
		}
		fmt.Fprintf(tw, "  %s\t%s\t%s\t%s\n", name, libcLabel(c.Verdict), c.Verdict.Source, evidence(c.Verdict))
	}
	_ = tw.Flush()

	if !r.ClusterDNS {
		fmt.Fprintf(w, "\nNot on the cluster DNS path: %s\n", r.SkipReason)
	}
	fmt.Fprintf(w, "\nresolv.conf as submitted (rendered as kubelet will):\n%s", indent(r.ResolvConf))
	if r.Enforced != r.ResolvConf {
		fmt.Fprintf(w, "\nresolv.conf with dns-tuner in enforce mode:\n%s", indent(r.Enforced))
	}

	fmt.Fprintln(w, "\nWhat each container's resolver reads (enforce mode):")
	for _, c := range r.Containers {
		switch {
		case len(c.Unknowns) > 0 && len(c.Honours) == 0:
			fmt.Fprintf(w, "  %s (%s): cannot tell which options it reads\n", c.Name, c.Verdict.Libc)
		default:
			fmt.Fprintf(w, "  %s (%s): reads %s\n", c.Name, c.Verdict.Libc, orNone(c.Honours))
		}
		for _, ig := range c.Ignores {
			fmt.Fprintf(w, "    ignores %s: %s\n", ig.Option, ig.Advice)
		}
	}

	if hasRetry(r.Containers) {
		fmt.Fprintln(w, "\nRetry per name tried (DNS silent: worst case; one lost reply: what it costs):")
		tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "  CONTAINER\tAS SUBMITTED\tWITH ENFORCE")
		for _, c := range r.Containers {
			if c.Retry == nil {
				continue
			}
			fmt.Fprintf(tw, "  %s (%s)\t%s\t%s\n", c.Name, c.Verdict.Libc, cost(c.Retry.Submitted), cost(c.Retry.Enforced))
		}
		_ = tw.Flush()
	}
	if r.ClusterDNS && r.RaceFix.Applies {
		fmt.Fprintf(w, "\nA/AAAA race fix (policy raceFix %s): %s\n", r.RaceFix.Policy, r.RaceFix.Why)
	}

	if nl := r.NodeLocal; nl != nil {
		fmt.Fprintf(w, "\nNodeLocal DNSCache (policy nodeLocalDNS %s): %s\n", nl.Policy, nl.Why)
		switch nl.Form {
		case mutate.NodeLocalAppend:
			fmt.Fprintln(w, "  dnsPolicy stays; kubelet writes the cache after the cluster DNS, and if the cache is down the cluster DNS still answers")
		case mutate.NodeLocalNone:
			fmt.Fprintln(w, "  dnsPolicy None: kubelet writes only the pod's dnsConfig, so dns-tuner adds kubelet's search list, ndots:5 and timeout:1")
		}
	}

	fmt.Fprintln(w, "\nWhat dns-tuner does in each mode:")
	if r.Applies != nil {
		fmt.Fprintf(w, "  (applies here: %s — %s)\n", r.Applies.Mode, r.Applies.Reason)
	}
	for _, m := range r.Modes {
		fmt.Fprintf(w, "  %-7s %s", m.Mode+":", m.Status)
		if len(m.Adds) > 0 {
			verb := "adds"
			if m.Mode == "audit" {
				verb = "would add (spec unchanged)"
			}
			fmt.Fprintf(w, "; %s %s", verb, strings.Join(m.Adds, " "))
		}
		fmt.Fprintln(w)
		if m.Mode == "off" {
			continue
		}
		for _, wn := range m.Warnings {
			fmt.Fprintf(w, "           warning: %s\n", wn)
		}
	}
	for _, n := range r.Notes {
		fmt.Fprintf(w, "  note: %s\n", n)
	}
}

func hasRetry(cs []Container) bool {
	for _, c := range cs {
		if c.Retry != nil {
			return true
		}
	}
	return false
}

// cost is "6s silent, 2s per lost reply (timeout:2 attempts:3)".
func cost(c mutate.RetryCost) string {
	return fmt.Sprintf("%s silent, %s per lost reply (timeout:%d attempts:%d)", c.WorstCase, c.Retransmit.Round(time.Millisecond), c.Timeout, c.Attempts)
}

func libcLabel(v libc.Verdict) string {
	s := string(v.Libc)
	if v.Version != "" {
		s += " " + v.Version
	}
	if v.CGO != nil && v.Libc != libc.Go {
		if *v.CGO {
			s += " (Go, cgo)"
		}
	}
	return s
}

func evidence(v libc.Verdict) string {
	parts := []string{}
	if v.Evidence != "" {
		parts = append(parts, v.Evidence)
	}
	if v.Reason != "" {
		parts = append(parts, v.Reason)
	}
	if v.Digest != "" {
		parts = append(parts, "digest "+v.Digest)
	}
	if v.Bytes > 0 || v.Duration > 0 {
		parts = append(parts, fmt.Sprintf("%d bytes in %s", v.Bytes, v.Duration.Round(time.Millisecond)))
	}
	if len(parts) == 0 {
		return "-"
	}
	return strings.Join(parts, "; ")
}

func indent(s string) string {
	if s == "" {
		return "  (empty)\n"
	}
	var b strings.Builder
	for _, l := range strings.Split(strings.TrimRight(s, "\n"), "\n") {
		b.WriteString("  " + l + "\n")
	}
	return b.String()
}

func orNone(s []string) string {
	if len(s) == 0 {
		return "none of its options"
	}
	return strings.Join(s, ", ")
}
