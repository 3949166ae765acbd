package certs

import (
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/go-logr/logr"
	"github.com/go-logr/logr/funcr"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/runtime/schema"
)

// The first real install (two replicas, self-managed certificates) logged the rotator's
// benign Secret write conflict as an error; it must be an info line, and nothing else may be
// demoted.
func TestQuietRotationConflicts(t *testing.T) {
	conflict := apierrors.NewConflict(schema.GroupResource{Resource: "secrets"}, "dns-tuner-webhook-cert",
		errors.New("the object has been modified; please apply your changes to the latest version and try again"))
	wrapped := fmt.Errorf("writing secret: %w", conflict)
	other := errors.New("connection refused")
	tests := []struct {
		name      string
		logger    func(logr.Logger) logr.Logger
		err       error
		wantError bool
	}{
		{"rotator conflict", func(l logr.Logger) logr.Logger { return l.WithName(rotatorLogger) }, conflict, false},
		{"wrapped rotator conflict with values", func(l logr.Logger) logr.Logger {
			return l.WithName(rotatorLogger).WithValues("secret", "x")
		}, wrapped, false},
		{"rotator, other error", func(l logr.Logger) logr.Logger { return l.WithName(rotatorLogger) }, other, true},
		{"conflict elsewhere", func(l logr.Logger) logr.Logger { return l.WithName("webhook") }, conflict, true},
		{"unnamed conflict", func(l logr.Logger) logr.Logger { return l }, conflict, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var lines []string
			base := funcr.New(func(prefix, args string) { lines = append(lines, prefix+" "+args) }, funcr.Options{})
			tt.logger(QuietRotationConflicts(base)).Error(tt.err, "could not refresh CA and server certs")
			if len(lines) != 1 {
				t.Fatalf("logged %d lines, want 1: %q", len(lines), lines)
			}
			isError := strings.Contains(lines[0], `"error"=`)
			if isError != tt.wantError {
				t.Errorf("logged %q; want an error line: %v", lines[0], tt.wantError)
			}
		})
	}
}
