// Package cluster holds what dns-tuner knows about the cluster a pod lands in: each node's
// kernel and whether it is exposed to the A/AAAA conntrack race, kube-proxy's mode, the
// endpoints behind the cluster DNS Service and NodeLocal DNSCache. The facts and the rules
// over them are pure, with no API client; internal/clusterwatch reads them from a cluster.
package cluster

import (
	"fmt"
	"regexp"
	"strconv"
)

// Fix is whether a kernel carries one of the conntrack clash fixes.
type Fix uint8

const (
	FixUnknown Fix = iota // cannot tell (unparsable, or a vendor kernel whose backports are unknown)
	Fixed
	NotFixed
)

func (f Fix) String() string {
	switch f {
	case Fixed:
		return "fixed"
	case NotFixed:
		return "not fixed"
	}
	return "unknown"
}

// Kernel is what a node's kernelVersion says about the A/AAAA conntrack race.
//
// Upstream history: ed07d9a021df (4.19) and 4e35c1cb9460 (5.0) resolve the clash of two UDP
// packets of one socket DNAT'd to the same backend (stable backports 4.9.163, 4.14.106,
// 4.19.29); 6a757c07e51f (5.6) resolves the clash when they are DNAT'd to different
// backends, with no known stable backport.
type Kernel struct {
	Raw                 string `json:"kernel"`
	Major, Minor, Patch int    `json:"-"`
	Parsed              bool   `json:"-"`
	// Vendor: the string has a distribution suffix (5.4.0-1103-aws, 4.18.0-553.el8_10), so
	// the patch level is not upstream's and backports cannot be read from it.
	Vendor bool `json:"-"`
	// SingleBackend and DifferentBackends say whether each fix is in this kernel.
	SingleBackend     Fix    `json:"singleBackend"`
	DifferentBackends Fix    `json:"differentBackends"`
	Reason            string `json:"reason"`
}

// Version is "major.minor" ("5.4"), or the raw string when it did not parse.
func (k Kernel) Version() string {
	if !k.Parsed {
		return k.Raw
	}
	return fmt.Sprintf("%d.%d", k.Major, k.Minor)
}

var kernelRE = regexp.MustCompile(`^(\d+)\.(\d+)(?:\.(\d+))?(.*)$`)

// singleBackendStable are the stable series that received the single-backend fix, and the
// first patch level with it.
var singleBackendStable = map[[2]int]int{{4, 9}: 163, {4, 14}: 106, {4, 19}: 29}

// ParseKernel reads a node's status.nodeInfo.kernelVersion and says which clash fixes it
// carries. What it cannot read is FixUnknown, never a guess.
func ParseKernel(s string) Kernel {
	k := Kernel{Raw: s}
	m := kernelRE.FindStringSubmatch(s)
	if m == nil {
		k.Reason = fmt.Sprintf("kernel %q not recognised: fixes unknown", Clip(s, 64))
		return k
	}
	k.Major, _ = strconv.Atoi(m[1])
	k.Minor, _ = strconv.Atoi(m[2])
	if m[3] != "" {
		k.Patch, _ = strconv.Atoi(m[3])
	}
	k.Parsed = true
	// "+" is how COS/GKE mark an upstream stable kernel with local patches (4.14.106+).
	k.Vendor = m[4] != "" && m[4] != "+"
	at := func(maj, mnr int) bool { return k.Major > maj || (k.Major == maj && k.Minor >= mnr) }

	if at(5, 6) {
		k.SingleBackend, k.DifferentBackends = Fixed, Fixed
		k.Reason = fmt.Sprintf("kernel %s has both clash fixes (5.6+)", k.Version())
		return k
	}
	k.DifferentBackends = NotFixed
	const noDiff = "no fix for A and AAAA DNAT'd to different backends (5.6, no known backport)"
	switch first, stable := singleBackendStable[[2]int{k.Major, k.Minor}]; {
	case at(5, 0):
		k.SingleBackend = Fixed
		k.Reason = fmt.Sprintf("kernel %s: single-backend clash fixed (5.0); %s", k.Version(), noDiff)
	// A vendor string with a non-zero patch level (4.14.355-275.570.amzn2) is built on that
	// upstream stable release; x.y.0-N (Debian, Ubuntu, RHEL) says nothing of it.
	case stable && (!k.Vendor || k.Patch > 0) && k.Patch >= first:
		k.SingleBackend = Fixed
		k.Reason = fmt.Sprintf("kernel %s.%d: single-backend clash fixed (stable %d.%d.%d); %s", k.Version(), k.Patch, k.Major, k.Minor, first, noDiff)
	case stable && !k.Vendor:
		k.SingleBackend = NotFixed
		k.Reason = fmt.Sprintf("kernel %s.%d: before the single-backend clash fix (%d.%d.%d); %s", k.Version(), k.Patch, k.Major, k.Minor, first, noDiff)
	case k.Vendor:
		// A distribution kernel (RHEL 8's 4.18, Debian's 4.19.0-N) may carry the backport;
		// nothing in the string says so.
		k.SingleBackend = FixUnknown
		k.Reason = fmt.Sprintf("vendor kernel %s: unknown backports of the single-backend clash fix; %s", k.Version(), noDiff)
	default:
		k.SingleBackend = NotFixed
		k.Reason = fmt.Sprintf("kernel %s.%d: before the single-backend clash fix; %s", k.Version(), k.Patch, noDiff)
	}
	return k
}

// Clip cuts s to n bytes, marking the cut: reasons and facts go into annotations and logs.
func Clip(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "…"
}
