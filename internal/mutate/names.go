// Package mutate holds dns-tuner's decisions as pure functions: which mode applies to a pod,
// which resolver options its containers' libcs honour, what to inject, and the JSON patch
// that injects it. Nothing here does I/O, so every rule has a table test.
package mutate

// Labels and annotations, all under dns-tuner.io/.
const (
	Prefix = "dns-tuner.io/"

	// LabelMode on a Namespace opts it in or out: enforce, audit or off.
	LabelMode = Prefix + "mode"
	// AnnotationMode on a Pod opts it out (off) or down to audit; it can never raise the mode.
	AnnotationMode = Prefix + "mode"
	// AnnotationLibc on a Pod overrides detection: "musl" for every container, or
	// "app=musl,sidecar=glibc" per container.
	AnnotationLibc = Prefix + "libc"

	// Written by dns-tuner.
	AnnotationStatus          = Prefix + "status"               // injected, audit, unchanged, skipped, error
	AnnotationReason          = Prefix + "reason"               // why, in words
	AnnotationDetectedLibc    = Prefix + "detected-libc"        // app=glibc,sidecar=musl
	AnnotationInjected        = Prefix + "injected-options"     // options added to spec.dnsConfig
	AnnotationWouldInject     = Prefix + "would-inject-options" // audit: what enforce would add
	AnnotationIgnored         = Prefix + "ignored-options"      // {"sidecar":["single-request-reopen"]}
	AnnotationInspectionState = Prefix + "inspection"           // e.g. "budget exceeded; finishing in background"
	AnnotationAdvice          = Prefix + "advice"               // what to do about ignored options, one line each
	AnnotationEvidence        = Prefix + "evidence"             // {"app":"/tini → /usr/local/bin/app (layer 2 …): PT_INTERP …"}
	AnnotationRaceFix         = Prefix + "race-fix"             // "needed: 3 of 40 nodes run 5.4.0-1103-aws …: exposed (…)"
)

// Status values of AnnotationStatus.
const (
	StatusInjected  = "injected"  // options added
	StatusAudit     = "audit"     // audit mode: nothing changed, see would-inject-options
	StatusUnchanged = "unchanged" // enforce mode, nothing to add
	StatusSkipped   = "skipped"   // the pod does not use the cluster DNS path
	StatusError     = "error"     // dns-tuner failed and let the pod through unchanged
)

// PodName names a pod for logs and reports: its name, or its generateName before the API
// server has chosen one.
func PodName(p *Pod) string {
	if p.Metadata.Name != "" {
		return p.Metadata.Name
	}
	return p.Metadata.GenerateName
}
