package mutate

import (
	"fmt"
	"strings"

	"github.com/dns-tuner/dns-tuner/internal/libc"
)

// ParseLibcOverride reads the dns-tuner.io/libc annotation: a bare libc applies to every
// container, "name=libc" pairs (comma separated) to the named ones, "*=libc" to the rest.
// Names that match no container are an error so a typo does not go unnoticed.
func ParseLibcOverride(value string, containers []string) (map[string]libc.Libc, error) {
	value = strings.TrimSpace(value)
	if value == "" {
		return nil, nil
	}
	out := map[string]libc.Libc{}
	if !strings.Contains(value, "=") {
		l, err := libc.Parse(value)
		if err != nil {
			return nil, err
		}
		for _, c := range containers {
			out[c] = l
		}
		return out, nil
	}
	known := set(containers...)
	var fallback libc.Libc
	for _, pair := range strings.Split(value, ",") {
		name, v, ok := strings.Cut(strings.TrimSpace(pair), "=")
		name = strings.TrimSpace(name)
		if !ok || name == "" {
			return nil, fmt.Errorf("%q is not container=libc", pair)
		}
		l, err := libc.Parse(v)
		if err != nil {
			return nil, fmt.Errorf("container %s: %w", name, err)
		}
		switch {
		case name == "*":
			fallback = l
		case !known[name]:
			return nil, fmt.Errorf("no container named %q in this pod", name)
		default:
			out[name] = l
		}
	}
	if fallback != "" {
		for _, c := range containers {
			if _, ok := out[c]; !ok {
				out[c] = fallback
			}
		}
	}
	return out, nil
}
