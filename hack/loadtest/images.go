package main

import (
	"fmt"
	"os"
	"testing"

	"github.com/dns-tuner/dns-tuner/internal/inspect/imagetest"
)

// registryImages serves the load pods' two images, built from real binaries by the test
// image builder, from an in-process registry on loopback: an app on glibc and a log shipper
// on musl, as the benchmark pod has. close stops the registry and removes the build files.
type registryImages struct {
	host, app, sidecar string
	close              func()
}

func startRegistry(dir string) (r *registryImages, err error) {
	t := &tb{dir: dir}
	defer func() {
		if p := recover(); p != nil {
			t.cleanup()
			if f, ok := p.(fatal); ok {
				err = fmt.Errorf("building images: %s", f.msg)
				return
			}
			err = fmt.Errorf("building images: %v", p)
		}
	}()
	srv := imagetest.Serve(t, nil)
	b := imagetest.NewBuilder(t)
	app := imagetest.Push(t, srv.Host, "shop/checkout:1.42.0", b.Image(imagetest.GlibcDynamic))
	sidecar := imagetest.Push(t, srv.Host, "infra/log-shipper:3.1.2", b.Image(imagetest.MuslDynamic))
	return &registryImages{host: srv.Host, app: app.String(), sidecar: sidecar.String(), close: t.cleanup}, nil
}

// tb lets the harness use imagetest, whose API takes a testing.TB: Fatal panics with a
// fatal that startRegistry turns into an error. Methods imagetest does not call are left to
// the nil embedded TB and would panic, which startRegistry also reports.
type tb struct {
	testing.TB
	dir      string
	cleanups []func()
}

type fatal struct{ msg string }

func (t *tb) Helper()                   {}
func (t *tb) Name() string              { return "loadtest" }
func (t *tb) Logf(string, ...any)       {}
func (t *tb) Log(...any)                {}
func (t *tb) Fatalf(f string, a ...any) { panic(fatal{fmt.Sprintf(f, a...)}) }
func (t *tb) Fatal(a ...any)            { panic(fatal{fmt.Sprint(a...)}) }
func (t *tb) Errorf(f string, a ...any) { panic(fatal{fmt.Sprintf(f, a...)}) }
func (t *tb) Cleanup(f func())          { t.cleanups = append(t.cleanups, f) }

func (t *tb) TempDir() string {
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
	t.cleanups = nil
}
