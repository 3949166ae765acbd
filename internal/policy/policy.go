// Package policy holds the cluster policy dns-tuner decides with: the default mode, the
// namespaces it never touches, and the resolver options to inject for each libc.
package policy

import (
	"bytes"
	_ "embed"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"net/netip"
	"slices"
	"strconv"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	"sigs.k8s.io/yaml"

	"github.com/dns-tuner/dns-tuner/internal/libc"
)

// Mode is what dns-tuner does with a pod.
type Mode string

const (
	Enforce Mode = "enforce" // inject options, annotate, warn
	Audit   Mode = "audit"   // annotate and warn with what enforce would do; spec unchanged
	Off     Mode = "off"     // leave the pod alone
)

// ParseMode accepts enforce, audit or off (case-insensitive).
func ParseMode(s string) (Mode, error) {
	switch m := Mode(strings.ToLower(strings.TrimSpace(s))); m {
	case Enforce, Audit, Off:
		return m, nil
	}
	return "", fmt.Errorf("invalid mode %q: want enforce, audit or off", s)
}

// rank orders modes from least to most intrusive so "lower" is well defined.
func (m Mode) rank() int {
	switch m {
	case Enforce:
		return 2
	case Audit:
		return 1
	}
	return 0
}

// Lower returns the less intrusive of two modes.
func Lower(a, b Mode) Mode {
	if b.rank() < a.rank() {
		return b
	}
	return a
}

// Option is one resolv.conf option exactly as a pod's dnsConfig spells it.
type Option = corev1.PodDNSConfigOption

// OptionString renders an option as resolv.conf does: "name" or "name:value".
func OptionString(o Option) string {
	if o.Value == nil {
		return o.Name
	}
	return o.Name + ":" + *o.Value
}

// Profile is what dns-tuner injects for one libc. A value the pod already sets wins.
type Profile struct {
	// Inject lists the options added wherever the pod runs: fast retry (timeout, attempts),
	// worth having on every kernel because DNS packets are lost on every kernel. A race-fix
	// option listed here (as profiles did before raceFix) is treated as if under RaceFix.
	Inject []Option `json:"inject"`
	// RaceFix lists the options that serialise A and AAAA (single-request-reopen), added as
	// Policy.RaceFix says: only where the conntrack race exists, with auto.
	RaceFix []Option `json:"raceFix,omitempty"`
}

// IsRaceFix reports whether an option serialises A and AAAA queries: the fix for the
// conntrack race, not for lost packets.
func IsRaceFix(name string) bool {
	return name == "single-request" || name == "single-request-reopen"
}

// FastRetry are the options injected whatever the cluster's kernels.
func (p Profile) FastRetry() []Option {
	var out []Option
	for _, o := range p.Inject {
		if !IsRaceFix(o.Name) {
			out = append(out, o)
		}
	}
	return out
}

// RaceFixOptions are the options injected only as Policy.RaceFix says: RaceFix, then any
// race-fix option listed under Inject.
func (p Profile) RaceFixOptions() []Option {
	out := append([]Option{}, p.RaceFix...)
	for _, o := range p.Inject {
		if IsRaceFix(o.Name) {
			out = append(out, o)
		}
	}
	return out
}

// RaceFixMode is when the race-fix options are injected.
type RaceFixMode string

const (
	// RaceFixAuto injects them when a node the pod can land on is exposed to the conntrack
	// race (its kernel, kube-proxy's mode and the DNS endpoints say so, or are unknown).
	RaceFixAuto   RaceFixMode = "auto"
	RaceFixAlways RaceFixMode = "always"
	RaceFixNever  RaceFixMode = "never"
)

// Inspection bounds registry inspection at admission. Used by the registry-backed detector.
type Inspection struct {
	// Enabled turns registry inspection on. Off, containers are unknown unless annotated.
	Enabled bool `json:"enabled"`
	// Budget is the longest admission waits for verdicts; past it the unknown profile applies
	// and the inspection finishes in the background.
	Budget Duration `json:"budget"`
	// PerImageTimeout and MaxBytesPerImage bound one inspection.
	PerImageTimeout  Duration `json:"perImageTimeout"`
	MaxBytesPerImage int64    `json:"maxBytesPerImage"`
	// MaxImagesPerPod bounds the distinct images (with their command) one admission
	// inspects; containers past it are unknown. 0 means 16.
	MaxImagesPerPod int `json:"maxImagesPerPod,omitempty"`
	// Platform picks the manifest from a multi-arch index (os/arch[/variant]).
	Platform string `json:"platform"`
	// AllowedRegistries, if set, is the only set of registry hosts inspected ("*.example.com"
	// globs). DeniedRegistries always wins.
	AllowedRegistries []string `json:"allowedRegistries,omitempty"`
	DeniedRegistries  []string `json:"deniedRegistries,omitempty"`
	// InsecureRegistries are host:port reached over plain HTTP and allowed even on loopback or
	// private addresses (test and in-cluster registries).
	InsecureRegistries []string `json:"insecureRegistries,omitempty"`
}

// Policy is the cluster policy file (--config).
type Policy struct {
	// Mode is the cluster default for namespaces without a dns-tuner.io/mode label.
	Mode Mode `json:"mode"`
	// ExcludedNamespaces are never touched, whatever their labels say. dns-tuner's own
	// namespace is always added at run time.
	ExcludedNamespaces []string `json:"excludedNamespaces"`
	// AllowNamespaceOverride lets the dns-tuner.io/mode namespace label choose the mode.
	AllowNamespaceOverride bool `json:"allowNamespaceOverride"`
	// Ndots, when set, is injected as ndots:N (kubelet's default is 5, which multiplies
	// queries for external names). Empty leaves ndots alone.
	Ndots string `json:"ndots,omitempty"`
	// RaceFix says when profiles' raceFix options are injected: auto, always or never.
	RaceFix RaceFixMode `json:"raceFix"`
	// ServiceProxy, when set (iptables, nftables or ipvs), is how Service traffic reaches the
	// DNS backends on every node, over what kube-proxy's ConfigMap says or where there is none
	// (flags, a kube-proxy replacement). Empty: detected; ipvs and undetected count as exposed.
	ServiceProxy string `json:"serviceProxy,omitempty"`
	// Profiles maps a libc to what is injected for it.
	Profiles map[libc.Libc]Profile `json:"profiles"`
	// Inspection configures registry-backed libc detection.
	Inspection Inspection `json:"inspection"`
	// NodeLocalDNS points pods at NodeLocal DNSCache, the cache on every node that the
	// conntrack race cannot reach.
	NodeLocalDNS NodeLocalDNS `json:"nodeLocalDNS"`
	// ClusterDomain is kubelet's --cluster-domain, for the search list of the dnsPolicy None
	// form. Empty: cluster.local.
	ClusterDomain string `json:"clusterDomain,omitempty"`
	// ClusterDNS is the cluster DNS Service's ClusterIP, for the dnsPolicy None form, where
	// the cluster facts do not have it. Empty: read from the Service.
	ClusterDNS string `json:"clusterDNS,omitempty"`
	// NodeSearch are the node's search domains, which kubelet appends after the cluster's
	// for ClusterFirst pods: the dnsPolicy None form writes them itself.
	NodeSearch []string `json:"nodeSearch,omitempty"`
}

// NodeLocalMode is when pods are pointed at NodeLocal DNSCache.
type NodeLocalMode string

const (
	NodeLocalOff NodeLocalMode = "off"
	// NodeLocalAuto is on when the cluster facts show a running node-local-dns DaemonSet.
	NodeLocalAuto NodeLocalMode = "auto"
	NodeLocalOn   NodeLocalMode = "on"
)

// UnmarshalJSON reads a YAML 1.1 boolean as the mode it looks like: an unquoted on or off
// in the policy file arrives as true or false.
func (m *NodeLocalMode) UnmarshalJSON(b []byte) error {
	switch string(b) {
	case "true":
		*m = NodeLocalOn
		return nil
	case "false":
		*m = NodeLocalOff
		return nil
	}
	var s string
	if err := json.Unmarshal(b, &s); err != nil {
		return fmt.Errorf("nodeLocalDNS.mode: want off, auto or on: %s", b)
	}
	*m = NodeLocalMode(strings.ToLower(strings.TrimSpace(s)))
	return nil
}

// NodeLocalDNS is the nodeLocalDNS block of the policy.
type NodeLocalDNS struct {
	// Mode: off, auto or on. Empty is off.
	Mode NodeLocalMode `json:"mode"`
	// Address is the cache's address; empty with auto reads it from the DaemonSet, and
	// otherwise is 169.254.20.10, the standard install's.
	Address string `json:"address"`
	// DNSPolicyNone lists the libcs that get the dnsPolicy None form (the cache first, then
	// the cluster DNS): a libc that asks its nameservers in order (glibc) needs it. musl asks
	// all in parallel and gets the cache appended to the cluster DNS instead.
	DNSPolicyNone []libc.Libc `json:"dnsPolicyNone"`
}

// DefaultNodeLocalAddress is NodeLocal DNSCache's link-local address in the standard install.
const DefaultNodeLocalAddress = "169.254.20.10"

//go:embed default.yaml
var defaultYAML []byte

// DefaultYAML is the embedded default policy, as documented in the README.
func DefaultYAML() []byte { return bytes.Clone(defaultYAML) }

// Default returns the embedded default policy: cluster mode off, so namespaces opt in.
func Default() *Policy {
	p, err := parseOnto(&Policy{}, defaultYAML)
	if err != nil {
		panic("embedded default policy is invalid: " + err.Error())
	}
	return p
}

// ErrEmpty is returned for a policy with no settings at all: an empty, white-space or
// comment-only file. That is what a reload sees while a file is being rewritten, so it must
// not silently mean "the default" (mode off). Write {} to ask for the defaults.
var ErrEmpty = errors.New("policy is empty (write {} for the defaults)")

// Parse reads a policy. Fields not given keep the embedded default's values except
// profiles, which are replaced per libc, so a file can change one profile and keep the rest.
// Empty or unparsable data is an error; the default applies only when no file is configured.
func Parse(data []byte) (*Policy, error) {
	return parseOnto(Default(), data)
}

func parseOnto(p *Policy, data []byte) (*Policy, error) {
	if len(bytes.TrimSpace(data)) == 0 {
		return nil, ErrEmpty
	}
	j, err := yaml.YAMLToJSON(data)
	if err != nil {
		return nil, fmt.Errorf("parsing policy: %w", err)
	}
	if string(bytes.TrimSpace(j)) == "null" {
		return nil, ErrEmpty
	}
	// A key without a value would silently keep the default ("mode:" is mode off): that is
	// also what a file cut after a key looks like.
	var top map[string]json.RawMessage
	if err := json.Unmarshal(j, &top); err != nil {
		return nil, fmt.Errorf("parsing policy: %w", err)
	}
	for _, k := range slices.Sorted(maps.Keys(top)) {
		if string(top[k]) == "null" {
			return nil, fmt.Errorf("parsing policy: %s has no value (leave the key out for the default)", k)
		}
	}
	base := p.Profiles
	p.Profiles = nil
	if err := yaml.UnmarshalStrict(data, p); err != nil {
		return nil, fmt.Errorf("parsing policy: %w", err)
	}
	if p.Profiles == nil {
		p.Profiles = map[libc.Libc]Profile{}
	}
	for l, prof := range base {
		if _, ok := p.Profiles[l]; !ok {
			p.Profiles[l] = prof
		}
	}
	if err := p.Validate(); err != nil {
		return nil, err
	}
	return p, nil
}

// Validate reports the first problem that would make the policy misbehave.
func (p *Policy) Validate() error {
	if _, err := ParseMode(string(p.Mode)); err != nil {
		return fmt.Errorf("mode: %w", err)
	}
	if p.Ndots != "" {
		if n, err := strconv.Atoi(p.Ndots); err != nil || n < 0 || n > 15 {
			return fmt.Errorf("ndots: %q is not a number from 0 to 15", p.Ndots)
		}
	}
	switch p.RaceFix {
	case RaceFixAuto, RaceFixAlways, RaceFixNever:
	default:
		return fmt.Errorf("raceFix: %q: want auto, always or never", p.RaceFix)
	}
	switch p.ServiceProxy {
	case "", "iptables", "nftables", "ipvs":
	default:
		return fmt.Errorf("serviceProxy: %q: want iptables, nftables, ipvs or nothing (detect)", p.ServiceProxy)
	}
	for l, prof := range p.Profiles {
		if _, err := libc.Parse(string(l)); err != nil {
			return fmt.Errorf("profiles: %w", err)
		}
		seen := map[string]bool{}
		for _, o := range append(append([]Option{}, prof.Inject...), prof.RaceFix...) {
			if o.Name == "" || strings.ContainsAny(o.Name, " \t\n:") {
				return fmt.Errorf("profiles.%s: invalid option name %q", l, o.Name)
			}
			if seen[o.Name] {
				return fmt.Errorf("profiles.%s: option %q listed twice", l, o.Name)
			}
			seen[o.Name] = true
			if o.Value != nil && strings.ContainsAny(*o.Value, " \t\n") {
				return fmt.Errorf("profiles.%s: option %q has a value with white space", l, o.Name)
			}
		}
	}
	if err := p.NodeLocalDNS.validate(); err != nil {
		return err
	}
	if p.ClusterDNS != "" {
		if _, err := netip.ParseAddr(p.ClusterDNS); err != nil {
			return fmt.Errorf("clusterDNS: %q is not an IP address", p.ClusterDNS)
		}
	}
	if d := p.ClusterDomain; d != "" && (strings.ContainsAny(d, " \t\n/:") || strings.HasPrefix(d, ".") || strings.HasSuffix(d, ".")) {
		return fmt.Errorf("clusterDomain: %q is not a domain such as cluster.local", d)
	}
	in := p.Inspection
	if in.Budget.Duration < 0 || in.PerImageTimeout.Duration < 0 || in.MaxBytesPerImage < 0 || in.MaxImagesPerPod < 0 {
		return fmt.Errorf("inspection: budget, perImageTimeout, maxBytesPerImage and maxImagesPerPod must not be negative")
	}
	return nil
}

func (n NodeLocalDNS) validate() error {
	switch n.Mode {
	case "", NodeLocalOff, NodeLocalAuto, NodeLocalOn:
	default:
		return fmt.Errorf("nodeLocalDNS.mode: %q: want off, auto or on", n.Mode)
	}
	if n.Address != "" {
		if _, err := netip.ParseAddr(n.Address); err != nil {
			return fmt.Errorf("nodeLocalDNS.address: %q is not an IP address", n.Address)
		}
	}
	seen := map[libc.Libc]bool{}
	for _, l := range n.DNSPolicyNone {
		if _, err := libc.Parse(string(l)); err != nil {
			return fmt.Errorf("nodeLocalDNS.dnsPolicyNone: %w", err)
		}
		if seen[l] {
			return fmt.Errorf("nodeLocalDNS.dnsPolicyNone: %s listed twice", l)
		}
		seen[l] = true
	}
	return nil
}

// Excluded reports whether a namespace is never touched.
func (p *Policy) Excluded(namespace string) bool {
	for _, n := range p.ExcludedNamespaces {
		if n == namespace {
			return true
		}
	}
	return false
}

// Profile returns the profile for a libc; a libc without one gets an empty profile.
func (p *Policy) Profile(l libc.Libc) Profile { return p.Profiles[l] }

// Duration is a time.Duration that reads and writes as "2s" in YAML.
type Duration struct{ time.Duration }

func (d Duration) MarshalJSON() ([]byte, error) { return []byte(strconv.Quote(d.String())), nil }

func (d *Duration) UnmarshalJSON(b []byte) error {
	s, err := strconv.Unquote(string(b))
	if err != nil {
		return fmt.Errorf("duration must be a string such as \"2s\": %s", b)
	}
	v, err := time.ParseDuration(s)
	if err != nil {
		return err
	}
	d.Duration = v
	return nil
}
