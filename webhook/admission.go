package webhook

import (
	"net/http"

	"github.com/dns-tuner/dns-tuner/internal/server"
)

// Admission is what `serve` registers: the pod mutator's reviews at Path, built on the
// policy source, readers and detector the server wired. The adapter depends on the server's
// wiring, never the other way round, so no library imports this package.
var Admission = server.Admission{Path: Path, New: func(d server.Deps) http.Handler {
	m := &PodMutator{Policy: d.Policy, Namespaces: d.Namespaces, APIReader: d.APIReader, Detector: d.Detector, Facts: d.Facts, Log: d.Log}
	return Reviews(m, d.Log)
}}
