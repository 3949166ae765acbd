// Package policytest is the policy tests decide with, written out here rather than read from
// the shipped default: changing a default profile then changes what users get, not a dozen
// golden files. Its profiles are a snapshot of the default's when it was written.
package policytest

import (
	"time"

	"github.com/dns-tuner/dns-tuner/internal/libc"
	"github.com/dns-tuner/dns-tuner/internal/policy"
)

// Policy returns a new fixture policy each call, so a test may change it: cluster mode off,
// namespaces may opt in, kube-system and friends excluded, and the profiles below.
func Policy() *policy.Policy {
	return &policy.Policy{
		Mode:                   policy.Off,
		ExcludedNamespaces:     []string{"kube-system", "kube-public", "kube-node-lease"},
		AllowNamespaceOverride: true,
		RaceFix:                policy.RaceFixAuto,
		Profiles: map[libc.Libc]policy.Profile{
			libc.GLibc:   {Inject: []policy.Option{opt("timeout", "2"), opt("attempts", "3")}, RaceFix: []policy.Option{opt("single-request-reopen", "")}},
			libc.Musl:    {Inject: []policy.Option{opt("timeout", "2"), opt("attempts", "10")}},
			libc.Go:      {},
			libc.Static:  {},
			libc.Unknown: {},
		},
		Inspection: policy.Inspection{
			Budget:           policy.Duration{Duration: 2 * time.Second},
			PerImageTimeout:  policy.Duration{Duration: 20 * time.Second},
			MaxBytesPerImage: 64 << 20,
			MaxImagesPerPod:  16,
			Platform:         "linux/amd64",
		},
	}
}

// Enforcing is Policy with cluster mode enforce.
func Enforcing() *policy.Policy {
	p := Policy()
	p.Mode = policy.Enforce
	return p
}

func opt(name, value string) policy.Option {
	if value == "" {
		return policy.Option{Name: name}
	}
	return policy.Option{Name: name, Value: &value}
}
