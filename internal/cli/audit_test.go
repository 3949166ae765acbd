package cli

import (
	"bytes"
	"context"
	"errors"
	"strings"
	"testing"
)

// TestAuditUsage: mistakes in audit's command line are usage errors, before any cluster is
// contacted.
func TestAuditUsage(t *testing.T) {
	for _, tt := range []struct {
		args []string
		want string
	}{
		{[]string{"extra"}, "audit takes no arguments"},
		{[]string{"--concurrency", "0"}, "--concurrency must be at least 1"},
	} {
		var out, errOut bytes.Buffer
		err := Execute(context.Background(), &Audit{}, tt.args, &out, &errOut)
		if ue := (*UsageError)(nil); !errors.As(err, &ue) || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("%q: error %v, want a usage error containing %q", tt.args, err, tt.want)
		}
		if !strings.Contains(errOut.String(), "Usage: dns-tuner audit") {
			t.Errorf("%q: no usage on stderr: %q", tt.args, errOut.String())
		}
	}
}

// TestProgressBar: one line redrawn in place, ended when the last image is inspected; a
// buffer (not a terminal) never gets one.
func TestProgressBar(t *testing.T) {
	var b bytes.Buffer
	for i := 1; i <= 4; i++ {
		progressBar(&b, i, 4)
	}
	got := b.String()
	if strings.Count(got, "\r") != 4 || !strings.HasSuffix(got, "] 4/4\n") || strings.Count(got, "\n") != 1 {
		t.Errorf("progress bar output %q", got)
	}
	if stderrTerminal(&b) {
		t.Error("a buffer counts as a terminal")
	}
}
