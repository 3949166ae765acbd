package main

import (
	"fmt"
	"os"
	"testing"

	v1 "github.com/google/go-containerregistry/pkg/v1"
)

// tb lets the demo reuse the test image builder (internal/inspect/imagetest), whose API takes
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
