package audit

import (
	"encoding/json"
	"fmt"
	"io"
	"strconv"
	"strings"
	"text/tabwriter"
)

// PrintJSON writes the report as indented JSON (field names in the package doc).
func PrintJSON(w io.Writer, r Report) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(r)
}

// PrintText writes the report for a terminal: summary, nodes, DNS path, workloads.
func PrintText(w io.Writer, r Report) error {
	var b strings.Builder
	s := r.Summary
	b.WriteString("SUMMARY\n")
	if s.FactsError != "" {
		fmt.Fprintf(&b, "  cluster facts: unavailable (%s); every node counts as exposed\n", s.FactsError)
	}
	fmt.Fprintf(&b, "  nodes exposed:  %d of %d", s.ExposedNodes, s.Nodes)
	if s.UnknownNodes > 0 {
		fmt.Fprintf(&b, " (%d for an unknown fact)", s.UnknownNodes)
	}
	fmt.Fprintf(&b, " — %s\n", s.Exposure)
	fmt.Fprintf(&b, "  workloads:      %d (%d pods)\n", s.Workloads, s.Pods)
	fmt.Fprintf(&b, "  pods at risk:   %s\n", libcPods(s.AtRisk))
	e := s.Enforce
	if e.Workloads == 0 {
		b.WriteString("  enforce would:  change nothing")
	} else {
		adds := make([]string, len(e.Adds))
		for i, a := range e.Adds {
			adds[i] = fmt.Sprintf("%s (%d)", a.Option, a.Pods)
		}
		fmt.Fprintf(&b, "  enforce would:  change %d workloads (%d pods), adding %s", e.Workloads, e.Pods, strings.Join(adds, ", "))
	}
	fmt.Fprintf(&b, "; %d pods at risk after\n", e.AtRisk)

	b.WriteString("\nNODES\n")
	tw := tabwriter.NewWriter(&b, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "  NAME\tKERNEL\tEXPOSED\tKUBE-PROXY\tWHY")
	for _, n := range r.Nodes {
		exp := "no"
		switch {
		case n.Exposed && n.Unknown:
			exp = "yes (unknown)"
		case n.Exposed:
			exp = "yes"
		}
		fmt.Fprintf(tw, "  %s\t%s\t%s\t%s\t%s\n", n.Name, or(n.Kernel, "-"), exp, r.DNS.KubeProxy, n.Why)
	}
	_ = tw.Flush()
	if len(r.Nodes) == 0 {
		b.WriteString("  (none known)\n")
	}

	d := r.DNS
	b.WriteString("\nCLUSTER DNS PATH\n")
	fmt.Fprintf(&b, "  kube-proxy:     %s", d.KubeProxy)
	if d.KubeProxySource != "" {
		fmt.Fprintf(&b, " (%s)", d.KubeProxySource)
	}
	b.WriteString("\n  DNS endpoints:  ")
	if d.Endpoints < 0 {
		b.WriteString("unknown\n")
	} else {
		fmt.Fprintf(&b, "%d ready\n", d.Endpoints)
	}
	b.WriteString("  NodeLocal DNS:  ")
	switch {
	case !d.NodeLocal.Known:
		b.WriteString("unknown\n")
	case d.NodeLocal.Running:
		fmt.Fprintf(&b, "running on %s\n", or(d.NodeLocal.Address, "an address its args do not say"))
	default:
		b.WriteString("not running\n")
	}

	b.WriteString("\nWORKLOADS\n")
	if len(r.Workloads) == 0 {
		b.WriteString("  (no running pods)\n")
	}
	for _, wl := range r.Workloads {
		fmt.Fprintf(&b, "  %s/%s %s: %d pod%s, mode %s (%s)\n", wl.Namespace, wl.Kind, wl.Name, wl.Pods, plural(wl.Pods), wl.Mode, wl.ModeReason)
		if wl.Variants > 1 {
			fmt.Fprintf(&b, "    %d pod templates running (a rollout?): decided on the newest pod's\n", wl.Variants)
		}
		if wl.Skipped != "" {
			fmt.Fprintf(&b, "    left alone: %s\n", wl.Skipped)
		}
		for _, c := range wl.Containers {
			l := string(c.Libc)
			if c.Version != "" {
				l += " " + c.Version
			}
			init := ""
			if c.Init {
				init = " (init)"
			}
			fmt.Fprintf(&b, "    %s%s: %s  %s\n", c.Name, init, l, c.Image)
			why := c.Evidence
			if why == "" {
				why = c.Reason
			}
			fmt.Fprintf(&b, "      evidence: %s: %s\n", c.Source, or(why, "-"))
			if c.WorstCase > 0 {
				fmt.Fprintf(&b, "      DNS silent: %s a name, a lost reply %s", secs(c.WorstCase), secs(c.LostReply))
				if c.WorstCaseEnforced != c.WorstCase || c.LostReplyEnforced != c.LostReply {
					fmt.Fprintf(&b, " (enforced: %s, %s)", secs(c.WorstCaseEnforced), secs(c.LostReplyEnforced))
				}
				b.WriteString("\n")
			}
		}
		fmt.Fprintf(&b, "    options now:  %s\n", or(strings.Join(wl.Options, " "), "(none)"))
		fmt.Fprintf(&b, "    enforce adds: %s\n", or(strings.Join(wl.WouldAdd, " "), "nothing"))
		if nl := wl.NodeLocal; nl != nil {
			fmt.Fprintf(&b, "    node-local:   %s\n", nl.Why)
			fmt.Fprintf(&b, "                  nameservers %s; search %s\n", strings.Join(nl.Nameservers, " "), strings.Join(nl.Searches, " "))
		}
		if wl.Risk != "" {
			fmt.Fprintf(&b, "    risk:         %s", wl.Risk)
			if wl.RiskEnforced != wl.Risk {
				fmt.Fprintf(&b, " → %s under enforce", wl.RiskEnforced)
			}
			if wl.Exposure != s.Exposure { // confined to some nodes
				fmt.Fprintf(&b, " (%s)", wl.Exposure)
			}
			b.WriteString("\n")
		}
	}
	_, err := io.WriteString(w, b.String())
	return err
}

func libcPods(ls []LibcPods) string {
	if len(ls) == 0 {
		return "none"
	}
	parts := make([]string, len(ls))
	for i, l := range ls {
		parts[i] = fmt.Sprintf("%s %d", l.Libc, l.Pods)
	}
	return strings.Join(parts, ", ") + " (pods counted once per libc they run)"
}

func secs(f float64) string { return strconv.FormatFloat(f, 'f', -1, 64) + "s" }

func or(s, alt string) string {
	if s == "" {
		return alt
	}
	return s
}

func plural(n int) string {
	if n == 1 {
		return ""
	}
	return "s"
}
