// Package libc names the C libraries (and libc-free runtimes) whose resolvers dns-tuner
// tunes, holds what is known about each (Table, in knowledge.go), and the Detector interface
// that decides which one a container uses.
package libc

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"time"
)

// Libc is the resolver implementation a container's entrypoint will use.
type Libc string

const (
	GLibc   Libc = "glibc"
	Musl    Libc = "musl"
	Go      Libc = "go"      // static Go binary: Go's own resolver, one socket per query
	Static  Libc = "static"  // static binary that is not Go: resolver unknown, usually musl or none
	Unknown Libc = "unknown" // not decided; the policy's unknown profile applies
)

// All lists every libc in the order profiles are documented and merged (Table's order).
var All = func() []Libc {
	all := make([]Libc, len(Table))
	for i, k := range Table {
		all[i] = k.Libc
	}
	return all
}()

// Parse accepts a libc name as an operator writes it (case-insensitive, with the aliases in
// Table such as "golang" and "alpine") and rejects anything else.
func Parse(s string) (Libc, error) {
	name := strings.ToLower(strings.TrimSpace(s))
	for _, k := range Table {
		if name == string(k.Libc) || slices.Contains(k.Aliases, name) {
			return k.Libc, nil
		}
	}
	names := make([]string, len(All))
	for i, l := range All {
		names[i] = string(l)
	}
	return "", fmt.Errorf("unknown libc %q: want one of %s", s, strings.Join(names, ", "))
}

// Source says which tier produced a verdict.
type Source string

const (
	SourceAnnotation Source = "annotation" // the pod's dns-tuner.io/libc override
	SourceEntrypoint Source = "entrypoint" // the ELF the container runs
	SourceBase       Source = "base"       // markers of the image's base (loader, release files)
	SourceCache      Source = "cache"      // an earlier inspection of the same digest
	SourceNone       Source = "none"       // nothing decided
)

// Verdict is a decision about one container with the evidence behind it, so an operator can
// check it (annotations, `dns-tuner inspect`, `dns-tuner explain`).
type Verdict struct {
	Libc     Libc          `json:"libc"`
	Source   Source        `json:"source"`
	Evidence string        `json:"evidence,omitempty"` // e.g. "usr/bin/app: PT_INTERP /lib/ld-musl-x86_64.so.1 (layer 3 sha256:…)"
	Version  string        `json:"version,omitempty"`  // libc version when cheap to know
	CGO      *bool         `json:"cgo,omitempty"`      // for Go binaries: built with cgo (falls back to libc on unknown options)
	Digest   string        `json:"digest,omitempty"`   // image digest inspected
	Bytes    int64         `json:"bytesFetched,omitempty"`
	Duration time.Duration `json:"duration,omitempty"`
	// Reason explains an unknown verdict: budget exceeded, registry error, refused address…
	Reason string `json:"reason,omitempty"`
}

// Target is what a detector needs to know about one container of one pod. Credentials are
// referenced by name so that a detector resolves them for this pod only.
type Target struct {
	Namespace      string
	PodName        string // name or generateName, for logs only
	Container      string
	Image          string
	Command        []string // the container's command override, if any (replaces Entrypoint)
	Args           []string // the container's args override, if any (replaces Cmd)
	PullSecrets    []string // the pod's imagePullSecrets names
	ServiceAccount string
	PathEnv        string // the container's own env PATH (literal value), replacing the image's; "" = the image's
	WorkingDir     string // the container's workingDir, where a relative command is found; "" = the image's
}

// Detector decides the libc of one container. Implementations must honour the context's
// deadline: admission waits no longer than its budget and then uses the unknown policy. An
// error means "could not decide"; the verdict returned with it should still carry a Reason.
type Detector interface {
	Detect(ctx context.Context, t Target) (Verdict, error)
}

// MemoryDetector is a Detector that can also answer from memory alone, without blocking.
// Admission asks it first, so cached verdicts cost no goroutine or timer.
type MemoryDetector interface {
	Detector
	// DetectCached returns what Detect would return, when that needs no I/O; ok is false
	// otherwise.
	DetectCached(t Target) (v Verdict, err error, ok bool)
}

// UnknownDetector decides nothing. It is the last tier and the default when no registry
// inspection is configured.
type UnknownDetector struct{}

func (UnknownDetector) Detect(context.Context, Target) (Verdict, error) {
	return Verdict{Libc: Unknown, Source: SourceNone, Reason: "no registry inspection configured"}, nil
}
