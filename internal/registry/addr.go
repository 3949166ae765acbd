// Package registry is how dns-tuner talks to container registries safely: a transport that
// refuses to dial internal addresses (SSRF from a pod spec's image reference, a redirect or a
// token realm), registry allow/deny/insecure lists, retries short enough for an admission
// budget, and per-pod credentials from the pod's pull secrets.
package registry

import (
	"fmt"
	"net/netip"
)

// metadataAddrs are cloud instance-metadata and host-agent endpoints outside the link-local
// ranges: a registry reference must never reach them.
var metadataAddrs = map[netip.Addr]string{
	netip.MustParseAddr("fd00:ec2::254"):   "AWS instance metadata (IPv6)",
	netip.MustParseAddr("fd20:ce::254"):    "GCP instance metadata (IPv6)",
	netip.MustParseAddr("100.100.100.200"): "Alibaba Cloud instance metadata",
	netip.MustParseAddr("168.63.129.16"):   "Azure host agent (WireServer)",
}

var nat64 = netip.MustParsePrefix("64:ff9b::/96")

// CheckAddr reports why dns-tuner refuses to connect to ip, or nil. Refused: loopback,
// link-local (169.254.0.0/16 with the 169.254.169.254 metadata service, fe80::/10),
// unspecified (0.0.0.0 and :: reach the local host), multicast and broadcast, and cloud
// metadata addresses. Private (RFC 1918) addresses are allowed: in-cluster registries live
// there; use DeniedRegistries or network policy to fence them.
func CheckAddr(ip netip.Addr) error {
	ip = ip.Unmap()         // ::ffff:127.0.0.1 is 127.0.0.1
	if nat64.Contains(ip) { // 64:ff9b::a9fe:a9fe is 169.254.169.254 through a NAT64 gateway
		b := ip.As16()
		ip = netip.AddrFrom4([4]byte(b[12:]))
	}
	why := ""
	switch {
	case !ip.IsValid():
		why = "not an IP address"
	case ip.IsLoopback():
		why = "loopback"
	case ip.IsLinkLocalUnicast(), ip.IsLinkLocalMulticast():
		why = "link-local"
	case ip.IsUnspecified(), ip.Is4() && ip.As4()[0] == 0:
		why = "unspecified address (reaches the local host)"
	case ip.IsMulticast(), ip == netip.AddrFrom4([4]byte{255, 255, 255, 255}):
		why = "multicast or broadcast"
	default:
		why = metadataAddrs[ip]
	}
	if why == "" {
		return nil
	}
	return fmt.Errorf("%s is %s", ip, why)
}
