// Package envtestenv is what the envtest suites under test/e2e and the demo share: finding
// the control plane that hack/build-envtest.sh provides, running one control plane per test
// binary from TestMain (and always stopping it there), and waiting for a webhook server to
// serve TLS.
package envtestenv

import (
	"context"
	"crypto/tls"
	"errors"
	"flag"
	"fmt"
	"net"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/envtest"
)

// AssetsDir returns $KUBEBUILDER_ASSETS or the folder hack/build-envtest.sh fills; root is
// the repository root. With build the script first provides what is missing; without it a
// missing kube-apiserver is an error that says how to get it.
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
		return "", fmt.Errorf("no kube-apiserver in %s: run hack/build-envtest.sh (make envtest)", d)
	}
	return d, nil
}

// RepoRoot is the directory holding go.mod, found upwards from the working directory (a
// package's directory under go test).
func RepoRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", errors.New("no go.mod above the working directory")
		}
		dir = parent
	}
}

// Main is a suite's TestMain: it starts env (with BinaryAssetsDirectory filled from
// AssetsDir when empty), calls setup, runs the tests, and then runs setup's cleanups in
// reverse order and stops the control plane — also when setup or tests fail, on SIGINT or
// SIGTERM (etcd and kube-apiserver run in their own process groups, so Ctrl-C does not reach
// them), and just before go test's -timeout would kill the binary. Under -short it runs
// nothing: every envtest suite is left to `make test`.
//
//	func TestMain(m *testing.M) { os.Exit(envtestenv.Main(m, "e2e", env, setup)) }
func Main(m *testing.M, name string, env *envtest.Environment, setup func(cfg *rest.Config, cleanup func(func())) error) int {
	flag.Parse()
	if testing.Short() {
		fmt.Printf("%s: skipped under -short (needs a kube-apiserver)\n", name)
		return 0
	}
	fail := func(format string, args ...any) int {
		fmt.Fprintf(os.Stderr, name+": "+format+"\n", args...)
		return 1
	}
	if env.BinaryAssetsDirectory == "" {
		root, err := RepoRoot()
		if err != nil {
			return fail("%v", err)
		}
		if env.BinaryAssetsDirectory, err = AssetsDir(root, false); err != nil {
			return fail("locating envtest binaries: %v", err)
		}
	}

	var (
		mu       sync.Mutex
		cleanups []func()
		stopped  bool
	)
	// stop runs once, from whichever of the normal return, a signal or the timeout guard
	// comes first; the others wait for it.
	stop := func() {
		mu.Lock()
		defer mu.Unlock()
		if stopped {
			return
		}
		stopped = true
		for i := len(cleanups) - 1; i >= 0; i-- {
			cleanups[i]()
		}
		if err := env.Stop(); err != nil {
			fmt.Fprintf(os.Stderr, "%s: stopping the control plane: %v\n", name, err)
		}
	}
	defer stop()
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, os.Interrupt, syscall.SIGTERM)
	defer signal.Stop(sig)
	go func() {
		if s, ok := <-sig; ok {
			fmt.Fprintf(os.Stderr, "%s: %v: stopping the control plane\n", name, s)
			stop()
			os.Exit(1)
		}
	}()
	// go test's -timeout panics in its own goroutine, which skips deferred calls here; stop
	// the control plane a little before so no etcd or kube-apiserver outlives the binary.
	if f := flag.Lookup("test.timeout"); f != nil {
		if d, err := time.ParseDuration(f.Value.String()); err == nil && d > time.Minute {
			t := time.AfterFunc(d-30*time.Second, func() {
				fmt.Fprintf(os.Stderr, "%s: -timeout %v is near: stopping the control plane\n", name, d)
				stop()
			})
			defer t.Stop()
		}
	}

	cfg, err := env.Start()
	if err != nil {
		return fail("starting envtest: %v", err)
	}
	register := func(f func()) {
		mu.Lock()
		defer mu.Unlock()
		cleanups = append(cleanups, f)
	}
	if err := setup(cfg, register); err != nil {
		return fail("%v", err)
	}
	return m.Run()
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
