package mutate

import (
	"strconv"
	"strings"

	"github.com/dns-tuner/dns-tuner/internal/libc"
)

// honoured lists, per libc, the resolv.conf options its resolver reads. Everything else is
// silently ignored by that resolver. Sources: glibc resolv/res_init.c, musl
// src/network/resolvconf.c, Go src/net/dnsconfig_unix.go.
var honoured = map[libc.Libc]map[string]bool{
	libc.GLibc: set("ndots", "timeout", "attempts", "rotate", "debug", "no-check-names", "edns0",
		"single-request", "single-request-reopen", "no-tld-query", "use-vc", "no-reload",
		"trust-ad", "no-aaaa", "inet6", "ip6-bytestring", "ip6-dotint", "no-ip6-dotint"),
	libc.Musl: set("ndots", "timeout", "attempts"),
	libc.Go: set("ndots", "timeout", "attempts", "rotate", "single-request", "single-request-reopen",
		"use-vc", "usevc", "tcp", "trust-ad", "edns0", "no-reload"),
}

// glibcSince is the first glibc version that reads an option; older ones ignore it.
var glibcSince = map[string][2]int{
	"no-aaaa":   {2, 36},
	"trust-ad":  {2, 31},
	"no-reload": {2, 26},
}

func set(names ...string) map[string]bool {
	m := make(map[string]bool, len(names))
	for _, n := range names {
		m[n] = true
	}
	return m
}

// Honours reports whether a resolver reads an option. known is false where dns-tuner cannot
// tell (static non-Go binaries, unknown libc): such containers are never reported as ignoring.
// version is the libc version when known ("2.36"); an option newer than it is not honoured.
func Honours(l libc.Libc, option, version string) (honours, known bool) {
	opts, ok := honoured[l]
	if !ok {
		return false, false
	}
	if !opts[option] {
		return false, true
	}
	if l == libc.GLibc && version != "" {
		if min, ok := glibcSince[option]; ok && versionLess(version, min) {
			return false, true
		}
	}
	return true, true
}

func versionLess(v string, min [2]int) bool {
	parts := strings.SplitN(v, ".", 3)
	if len(parts) < 2 {
		return false
	}
	maj, err1 := strconv.Atoi(parts[0])
	mnr, err2 := strconv.Atoi(strings.TrimFunc(parts[1], func(r rune) bool { return r < '0' || r > '9' }))
	if err1 != nil || err2 != nil {
		return false
	}
	return maj < min[0] || (maj == min[0] && mnr < min[1])
}

// advice says what to do instead when a libc ignores an option.
func advice(l libc.Libc, option string) string {
	switch l {
	case libc.Musl:
		if strings.HasPrefix(option, "single-request") {
			return "musl always sends A and AAAA in parallel; keep timeout/attempts short (musl retransmits every timeout/attempts), run NodeLocal DNSCache to avoid the conntrack race, or use a glibc-based image"
		}
		return "musl reads only ndots, timeout and attempts; use NodeLocal DNSCache or a glibc-based image if you need this behaviour"
	case libc.Go:
		return "Go's resolver ignores it (one socket per query, so the A/AAAA race does not apply); in a cgo build an option Go does not know makes it use libc's resolver instead"
	case libc.GLibc:
		if min, ok := glibcSince[option]; ok {
			return "needs glibc " + strconv.Itoa(min[0]) + "." + strconv.Itoa(min[1]) + " or newer; upgrade the base image"
		}
		return "glibc does not read this option"
	}
	return ""
}
