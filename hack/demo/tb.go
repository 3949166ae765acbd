package main

import (
	"fmt"
	"net"
	"os"
	"strconv"
	"testing"
	"time"

	"context"
	"crypto/tls"

	v1 "github.com/google/go-containerregistry/pkg/v1"
)

// tb lets the demo reuse the test image builder (webhook/inspect/imagetest), whose API takes
// a testing.TB: Fatal becomes an error returned by do. Methods imagetest does not call are
// left to the nil embedded TB and would panic, which do also reports.
type tb struct {
	testing.TB
	dir      string
	cleanups []func()
}

type fatal struct{ msg string }

func newTB(dir string) *tb { return &tb{dir: dir} }

func (t *tb) Helper()                   {}
func (t *tb) Name() string              { return "demo" }
func (t *tb) Logf(string, ...any)       {}
func (t *tb) Log(...any)                {}
func (t *tb) Fatalf(f string, a ...any) { panic(fatal{fmt.Sprintf(f, a...)}) }
func (t *tb) Fatal(a ...any)            { panic(fatal{fmt.Sprint(a...)}) }
func (t *tb) Errorf(f string, a ...any) { panic(fatal{fmt.Sprintf(f, a...)}) }
func (t *tb) Cleanup(f func())          { t.cleanups = append(t.cleanups, f) }

func (t *tb) TempDir() string {
	if err := os.MkdirAll(t.dir, 0o755); err != nil {
		panic(fatal{err.Error()})
	}
	d, err := os.MkdirTemp(t.dir, "img")
	if err != nil {
		panic(fatal{err.Error()})
	}
	t.cleanups = append(t.cleanups, func() { _ = os.RemoveAll(d) })
	return d
}

func (t *tb) cleanup() {
	for i := len(t.cleanups) - 1; i >= 0; i-- {
		t.cleanups[i]()
	}
}

func (t *tb) do(f func() v1.Image) (img v1.Image, err error) {
	defer func() {
		if r := recover(); r != nil {
			if f, ok := r.(fatal); ok {
				err = fmt.Errorf("%s", f.msg)
				return
			}
			err = fmt.Errorf("image builder: %v", r)
		}
	}()
	return f(), nil
}

// waitReady waits until the webhook server answers TLS, or the server fails.
func waitReady(ctx context.Context, host string, port int, done <-chan error) error {
	addr := net.JoinHostPort(host, strconv.Itoa(port))
	deadline := time.Now().Add(60 * time.Second)
	for {
		conn, err := tls.DialWithDialer(&net.Dialer{Timeout: time.Second}, "tcp", addr, &tls.Config{InsecureSkipVerify: true}) //nolint:gosec // readiness probe only
		if err == nil {
			return conn.Close()
		}
		select {
		case err := <-done:
			return fmt.Errorf("dns-tuner stopped: %v", err)
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(100 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("webhook server not ready after 60s: %w", err)
		}
	}
}
