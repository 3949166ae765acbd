package cluster

import (
	"strings"
	"testing"
)

// TestParseKernel: the kernel strings nodes report, upstream and vendor, and which clash fix
// each carries. A vendor kernel below the fix is unknown, never assumed patched.
func TestParseKernel(t *testing.T) {
	tests := []struct {
		kernel       string
		single, diff Fix
		reason       string // a substring of the reason
	}{
		{"5.4.0-1103-aws", Fixed, NotFixed, "5.4: single-backend clash fixed (5.0)"},
		{"5.4.0-216-generic", Fixed, NotFixed, "different backends"},
		{"4.18.0-553.el8_10.x86_64", FixUnknown, NotFixed, "vendor kernel 4.18: unknown backports"},
		{"5.10.226-214.880.amzn2.x86_64", Fixed, Fixed, "5.10 has both"},
		{"6.1.0-25-cloud-amd64", Fixed, Fixed, "6.1 has both"},
		{"6.18.3", Fixed, Fixed, "6.18"},
		{"5.6.0", Fixed, Fixed, "5.6"},
		{"5.5.19", Fixed, NotFixed, "5.5"},
		{"5.0.0", Fixed, NotFixed, "5.0"},
		{"4.9.163+", Fixed, NotFixed, "stable 4.9.163"},
		{"4.9.162+", NotFixed, NotFixed, "before the single-backend clash fix (4.9.163)"},
		{"4.14.106+", Fixed, NotFixed, "stable 4.14.106"},
		{"4.14.105", NotFixed, NotFixed, "4.14.106"},
		{"4.19.29+", Fixed, NotFixed, "stable 4.19.29"},
		{"4.19.28", NotFixed, NotFixed, "4.19.29"},
		{"4.19.0-25-cloud-amd64", FixUnknown, NotFixed, "unknown backports"},  // Debian's ABI name, not the patch level
		{"4.14.355-275.570.amzn2.x86_64", Fixed, NotFixed, "stable 4.14.106"}, // built on upstream 4.14.355
		{"4.14.50-1.el7", FixUnknown, NotFixed, "unknown backports"},
		{"4.15.0-1100-gcp", FixUnknown, NotFixed, "vendor kernel 4.15"},
		{"4.15.18", NotFixed, NotFixed, "4.15.18: before"},
		{"3.10.0-1160.el7.x86_64", FixUnknown, NotFixed, "vendor kernel 3.10"},
		{"3.10.108", NotFixed, NotFixed, "before"},
		{"garbage", FixUnknown, FixUnknown, "not recognised"},
		{"", FixUnknown, FixUnknown, "not recognised"},
		{"v5.10", FixUnknown, FixUnknown, "not recognised"},
	}
	for _, tt := range tests {
		t.Run(tt.kernel, func(t *testing.T) {
			k := ParseKernel(tt.kernel)
			if k.SingleBackend != tt.single || k.DifferentBackends != tt.diff {
				t.Errorf("single=%s diff=%s, want single=%s diff=%s (%s)", k.SingleBackend, k.DifferentBackends, tt.single, tt.diff, k.Reason)
			}
			if !strings.Contains(k.Reason, tt.reason) {
				t.Errorf("reason %q does not say %q", k.Reason, tt.reason)
			}
		})
	}
}
