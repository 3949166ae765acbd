// Package metrics defines dns-tuner's Prometheus metrics on controller-runtime's registry, so
// they are served on --metrics-bind-address next to controller-runtime's own.
package metrics

import (
	"github.com/prometheus/client_golang/prometheus"
	ctrlmetrics "sigs.k8s.io/controller-runtime/pkg/metrics"
)

var (
	// Admissions counts pods handled, by effective mode, outcome (injected, audit, unchanged,
	// skipped, error, off) and libc (one count per distinct libc in the pod).
	Admissions = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "dns_tuner_admissions_total",
		Help: "Pods admitted by dns-tuner, by mode, outcome and libc.",
	}, []string{"mode", "outcome", "libc"})

	// FailOpen counts pods let through unchanged because dns-tuner itself had trouble.
	FailOpen = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "dns_tuner_fail_open_total",
		Help: "Pods allowed unchanged because of an internal error, by reason.",
	}, []string{"reason"})

	// InspectionDuration is the time one image inspection took, by verdict libc.
	InspectionDuration = prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name:    "dns_tuner_inspection_duration_seconds",
		Help:    "Time to a libc verdict for one image, by libc.",
		Buckets: []float64{.005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30},
	}, []string{"libc"})

	// InspectionBytes is the registry bytes read for one image inspection.
	InspectionBytes = prometheus.NewHistogram(prometheus.HistogramOpts{
		Name:    "dns_tuner_inspection_bytes",
		Help:    "Bytes read from the registry to reach one verdict.",
		Buckets: prometheus.ExponentialBuckets(4096, 4, 10),
	})

	// CacheLookups counts verdict cache lookups by result (hit, miss).
	CacheLookups = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "dns_tuner_cache_lookups_total",
		Help: "Verdict cache lookups by result (hit, miss).",
	}, []string{"result"})

	// CacheSize is the number of verdicts cached.
	CacheSize = prometheus.NewGauge(prometheus.GaugeOpts{
		Name: "dns_tuner_cache_entries",
		Help: "Verdicts held in the digest-keyed cache.",
	})

	// RegistryErrors counts failed registry interactions by kind (unreachable, timeout, auth,
	// not_found, refused_address, too_large, bad_response).
	RegistryErrors = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "dns_tuner_registry_errors_total",
		Help: "Registry errors during inspection, by kind.",
	}, []string{"kind"})

	// BudgetExceeded counts admissions that stopped waiting for an inspection.
	BudgetExceeded = prometheus.NewCounter(prometheus.CounterOpts{
		Name: "dns_tuner_budget_exceeded_total",
		Help: "Admissions that used the unknown profile because inspection exceeded its budget.",
	})

	// Nodes is the number of nodes by exposure to the A/AAAA conntrack race: exposed,
	// not_exposed, and unknown (a fact is unknown, so the node counts as exposed).
	Nodes = prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Name: "dns_tuner_nodes",
		Help: "Nodes by exposure to the A/AAAA conntrack race (exposed, not_exposed, unknown).",
	}, []string{"exposure"})

	// RaceRisk counts pods admitted (enforce or audit) by their standing against the race
	// once admitted: not_exposed, protected (exposed, every container safe), exposed.
	RaceRisk = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "dns_tuner_admission_race_risk_total",
		Help: "Pods admitted by risk of A/AAAA conntrack race stalls (not_exposed, protected, exposed).",
	}, []string{"risk"})

	// PolicyReloads counts policy file loads by result (ok, error).
	PolicyReloads = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "dns_tuner_policy_reloads_total",
		Help: "Policy file (re)loads by result.",
	}, []string{"result"})
)

func init() {
	ctrlmetrics.Registry.MustRegister(Admissions, FailOpen, InspectionDuration, InspectionBytes,
		CacheLookups, CacheSize, RegistryErrors, BudgetExceeded, PolicyReloads, Nodes, RaceRisk)
}
