package imagetest

import (
	"fmt"
	"os"
	"testing"
)

// Program lets a program that is not a test (the demo, the load harness) use this package,
// whose API takes a testing.TB: Fatal and Errorf end the function given to Do, which returns
// them as an error. Methods this package does not call are left to the nil embedded TB and
// would panic, which Do also reports.
type Program struct {
	testing.TB
	name     string
	dir      string
	cleanups []func()
}

type fatal struct{ msg string }

// NewProgram builds its temporary files under dir; name appears in errors.
func NewProgram(name, dir string) *Program { return &Program{name: name, dir: dir} }

func (p *Program) Helper()                   {}
func (p *Program) Name() string              { return p.name }
func (p *Program) Logf(string, ...any)       {}
func (p *Program) Log(...any)                {}
func (p *Program) Fatalf(f string, a ...any) { panic(fatal{fmt.Sprintf(f, a...)}) }
func (p *Program) Fatal(a ...any)            { panic(fatal{fmt.Sprint(a...)}) }
func (p *Program) Errorf(f string, a ...any) { panic(fatal{fmt.Sprintf(f, a...)}) }
func (p *Program) Cleanup(f func())          { p.cleanups = append(p.cleanups, f) }

// TempDir is a new directory under the program's dir, removed by Close.
func (p *Program) TempDir() string {
	if err := os.MkdirAll(p.dir, 0o755); err != nil {
		panic(fatal{err.Error()})
	}
	d, err := os.MkdirTemp(p.dir, "img")
	if err != nil {
		panic(fatal{err.Error()})
	}
	p.cleanups = append(p.cleanups, func() { _ = os.RemoveAll(d) })
	return d
}

// Do runs f, turning a Fatal (or any panic) inside it into an error.
func (p *Program) Do(f func()) (err error) {
	defer func() {
		if r := recover(); r != nil {
			if f, ok := r.(fatal); ok {
				err = fmt.Errorf("%s: %s", p.name, f.msg)
				return
			}
			err = fmt.Errorf("%s: %v", p.name, r)
		}
	}()
	f()
	return nil
}

// Close runs the cleanups registered so far, newest first: servers stop, files go.
func (p *Program) Close() {
	for i := len(p.cleanups) - 1; i >= 0; i-- {
		p.cleanups[i]()
	}
	p.cleanups = nil
}
