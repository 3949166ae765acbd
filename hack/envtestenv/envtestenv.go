// Package envtestenv is what the envtest suites and the demo share: finding the control plane
// that hack/build-envtest.sh builds from the Go module proxy, and waiting for a webhook server
// to serve TLS.
package envtestenv

import (
	"context"
	"crypto/tls"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"
)

// AssetsDir returns $KUBEBUILDER_ASSETS or the folder hack/build-envtest.sh builds into; root
// is the repository root. With build the script first builds what is missing (about 10
// minutes for kube-apiserver the first time); without it a missing kube-apiserver is an error
// that says how to build it.
func AssetsDir(root string, build bool) (string, error) {
	if d := os.Getenv("KUBEBUILDER_ASSETS"); d != "" && !build {
		return d, nil
	}
	args := []string{filepath.Join(root, "hack", "build-envtest.sh")}
	if !build {
		args = append(args, "--print-dir")
	}
	cmd := exec.Command("bash", args...)
	cmd.Stderr = os.Stderr
	out, err := cmd.Output()
	if err != nil {
		return "", fmt.Errorf("hack/build-envtest.sh: %w", err)
	}
	d := strings.TrimSpace(string(out))
	if _, err := os.Stat(filepath.Join(d, "kube-apiserver")); err != nil {
		return "", fmt.Errorf("no kube-apiserver in %s: run hack/build-envtest.sh (make test does)", d)
	}
	return d, nil
}

// WaitForTLS waits until addr completes a TLS handshake. It gives up after timeout, when ctx
// ends, or when done (the server's exit, may be nil) yields.
func WaitForTLS(ctx context.Context, addr string, timeout time.Duration, done <-chan error) error {
	deadline := time.Now().Add(timeout)
	for {
		conn, err := tls.DialWithDialer(&net.Dialer{Timeout: time.Second}, "tcp", addr, &tls.Config{InsecureSkipVerify: true}) //nolint:gosec // readiness probe only
		if err == nil {
			return conn.Close()
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%s not serving TLS after %s: %w", addr, timeout, err)
		}
		select {
		case err := <-done:
			return fmt.Errorf("server stopped: %v", err)
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(100 * time.Millisecond):
		}
	}
}
