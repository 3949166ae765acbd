package mutate

import (
	"testing"

	"github.com/dns-tuner/dns-tuner/internal/libc"
)

func TestHonours(t *testing.T) {
	tests := []struct {
		libc           libc.Libc
		option, ver    string
		honours, known bool
	}{
		{libc.GLibc, "single-request-reopen", "", true, true},
		{libc.GLibc, "no-aaaa", "2.36", true, true},
		{libc.GLibc, "no-aaaa", "2.31", false, true}, // added in 2.36
		{libc.GLibc, "no-aaaa", "", true, true},      // version unknown: assume current
		{libc.GLibc, "trust-ad", "2.28", false, true},
		{libc.GLibc, "made-up", "", false, true},
		{libc.Musl, "timeout", "", true, true},
		{libc.Musl, "attempts", "1.2.4", true, true},
		{libc.Musl, "single-request-reopen", "", false, true},
		{libc.Musl, "rotate", "", false, true},
		{libc.Go, "single-request", "", true, true},
		{libc.Go, "no-aaaa", "", false, true},
		{libc.Static, "timeout", "", false, false},
		{libc.Unknown, "single-request", "", false, false},
	}
	for _, tt := range tests {
		h, k := Honours(tt.libc, tt.option, tt.ver)
		if h != tt.honours || k != tt.known {
			t.Errorf("Honours(%s, %s, %q) = %v,%v; want %v,%v", tt.libc, tt.option, tt.ver, h, k, tt.honours, tt.known)
		}
	}
}
