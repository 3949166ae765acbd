// Package imagetest builds real container images at test time — binaries compiled with gcc,
// musl-gcc and go, the host's own glibc and musl loaders — and serves them from
// go-containerregistry's in-process registry, so that inspection is tested over the real
// registry protocol against real ELF files.
//
// Tools: gcc, musl-gcc (Debian: apt-get install gcc musl-tools), go, and apt-get/dpkg-deb for
// the real tini-static and static busybox (debs.go). A missing tool fails the test with how to
// install it: CI installs them, and a skip would hide lost coverage.
package imagetest

import (
	"archive/tar"
	"bytes"
	"io"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"strings"
	"testing"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
)

// Kind names an image Build knows how to make.
type Kind string

const (
	GlibcDynamic  Kind = "glibc-dynamic"   // gcc binary + the host's glibc loader and libc.so.6
	MuslDynamic   Kind = "musl-dynamic"    // musl-gcc binary found through PATH + musl's loader
	MuslStatic    Kind = "musl-static"     // musl-gcc -static binary, nothing else
	GoStatic      Kind = "go-static"       // CGO_ENABLED=0 Go binary, scratch
	GoStaticArm64 Kind = "go-static-arm64" // the same for linux/arm64
	GoCgo         Kind = "go-cgo"          // CGO_ENABLED=1 Go binary reached through a symlink in an upper layer
	ScriptMusl    Kind = "script-musl"     // #!/bin/sh entrypoint; /bin/sh -> busybox (a musl binary)
	ScriptEnv     Kind = "script-env"      // ./run.py from WorkingDir; #!/usr/bin/env python3 -> python3.12 (glibc)
	BaseMusl      Kind = "base-musl"       // no entrypoint: musl loader, alpine-release, os-release
	BaseGlibc     Kind = "base-glibc"      // no entrypoint: glibc loader, libc.so.6, os-release
	ReplacedLibc  Kind = "replaced-libc"   // musl base; upper layer whites out ld-musl and adds glibc
	OpaqueLibc    Kind = "opaque-libc"     // glibc base; upper layer makes lib dirs opaque and adds musl
	NoLibc        Kind = "no-libc"         // entrypoint is a text file, no loader: unknown
	UsrMerge      Kind = "usrmerge"        // /bin/sh with /bin -> usr/bin and /usr/bin/sh -> dash (glibc)
	DeletedEntry  Kind = "deleted-entry"   // the entrypoint is whited out by the top layer; musl base

	GlibcStatic  Kind = "glibc-static"  // gcc -static binary
	MuslResolver Kind = "musl-resolver" // musl-gcc -static -s, calls getaddrinfo and nothing that prints errno
	StaticBare   Kind = "static-bare"   // musl-gcc -static -s of puts("hi"): no libc telltale at all
	GoPIE        Kind = "go-pie"        // CGO_ENABLED=0 -buildmode=pie Go binary (has PT_INTERP)
	Wrappers     Kind = "wrappers"      // ENTRYPOINT [/tini, --] (real tini-static), CMD [app] (musl); busybox, a glibc server
	ShellExec    Kind = "shell-exec"    // real static busybox as /bin/sh -c "exec /opt/app/server --port 80" (glibc)
	WrapperShell Kind = "wrapper-shell" // dumb-init -- bash -c "./migrate.sh && exec gosu app server" (musl, via PATH)
)

// Kinds lists every Kind.
var Kinds = []Kind{GlibcDynamic, MuslDynamic, MuslStatic, GoStatic, GoStaticArm64, GoCgo, ScriptMusl,
	ScriptEnv, BaseMusl, BaseGlibc, ReplacedLibc, OpaqueLibc, NoLibc, UsrMerge, DeletedEntry,
	GlibcStatic, MuslResolver, StaticBare, GoPIE, Wrappers, ShellExec, WrapperShell}

// File is one tar entry of a layer.
type File struct {
	Path string
	Type byte // tar.TypeReg (default), TypeSymlink, TypeDir, TypeLink
	Mode int64
	Data []byte
	Link string
}

// Reg is a regular file; Exe an executable one.
func Reg(p string, data []byte) File { return File{Path: p, Mode: 0o644, Data: data} }
func Exe(p string, data []byte) File { return File{Path: p, Mode: 0o755, Data: data} }

// Symlink is p -> target.
func Symlink(p, target string) File { return File{Path: p, Type: tar.TypeSymlink, Link: target} }

// Whiteout deletes p from lower layers; Opaque hides everything lower layers have under dir.
func Whiteout(p string) File {
	d, b := path.Split(p)
	return File{Path: d + ".wh." + b, Mode: 0o644}
}
func Opaque(dir string) File { return File{Path: path.Join(dir, ".wh..wh..opq"), Mode: 0o644} }

// Tar returns files as an uncompressed tar stream, with parent directories as docker adds them.
func Tar(files ...File) []byte {
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	dirs := map[string]bool{}
	mtime := time.Unix(1700000000, 0)
	for _, f := range files {
		name := strings.TrimPrefix(f.Path, "/")
		for d := path.Dir(name); d != "." && !dirs[d]; d = path.Dir(d) {
			dirs[d] = true
			must(tw.WriteHeader(&tar.Header{Name: d + "/", Typeflag: tar.TypeDir, Mode: 0o755, ModTime: mtime}))
		}
		h := &tar.Header{Name: name, Mode: f.Mode, ModTime: mtime, Typeflag: f.Type, Linkname: f.Link}
		switch f.Type {
		case 0, tar.TypeReg:
			h.Typeflag, h.Size = tar.TypeReg, int64(len(f.Data))
		case tar.TypeSymlink:
			h.Mode = 0o777
		case tar.TypeDir:
			dirs[strings.TrimSuffix(name, "/")] = true
		}
		must(tw.WriteHeader(h))
		if h.Typeflag == tar.TypeReg {
			_, err := tw.Write(f.Data)
			must(err)
		}
	}
	must(tw.Close())
	return buf.Bytes()
}

func must(err error) {
	if err != nil {
		panic(err) // writing to a bytes.Buffer
	}
}

// Layer is a gzip layer of files.
func Layer(t testing.TB, files ...File) v1.Layer {
	t.Helper()
	b := Tar(files...)
	l, err := tarball.LayerFromOpener(func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(b)), nil })
	if err != nil {
		t.Fatalf("layer: %v", err)
	}
	return l
}

// Image stacks layers (base first) under cfg for linux/arch.
func Image(t testing.TB, arch string, cfg v1.Config, layers ...v1.Layer) v1.Image {
	t.Helper()
	img, err := mutate.AppendLayers(empty.Image, layers...)
	if err != nil {
		t.Fatalf("append layers: %v", err)
	}
	cf, err := img.ConfigFile()
	if err != nil {
		t.Fatalf("config: %v", err)
	}
	cf = cf.DeepCopy()
	cf.OS, cf.Architecture, cf.Config = "linux", arch, cfg
	if img, err = mutate.ConfigFile(img, cf); err != nil {
		t.Fatalf("config: %v", err)
	}
	return img
}

// Builder compiles the binaries once per Builder and assembles images from them.
type Builder struct {
	t    testing.TB
	dir  string
	bins map[string][]byte
}

// NewBuilder skips the test under -short: compiling the binaries takes seconds, and
// `make unit` (go test -short ./...) is the fast loop; `make test` runs them.
func NewBuilder(t testing.TB) *Builder {
	if testing.Testing() && testing.Short() { // programs (demo, load harness) are never short
		t.Skip("builds real images with gcc, musl-gcc and go: skipped under -short")
	}
	return &Builder{t: t, dir: t.TempDir(), bins: map[string][]byte{}}
}

// Build makes one image of kind with a fresh Builder.
func Build(t testing.TB, kind Kind) v1.Image { return NewBuilder(t).Image(kind) }

const helloC = `#include <stdio.h>
#include <netdb.h>
int main(int argc, char **argv) {
	struct addrinfo *res;
	int rc = getaddrinfo(argc > 1 ? argv[1] : "localhost", "53", 0, &res);
	printf("getaddrinfo: %d\n", rc);
	return rc != 0;
}
`

// resolveC resolves a name and prints no errno text: musl's strerror table is not linked.
const resolveC = `#include <netdb.h>
#include <unistd.h>
int main(int argc, char **argv) {
	struct addrinfo *res;
	int rc = getaddrinfo(argc > 1 ? argv[1] : "localhost", "53", 0, &res);
	write(1, rc ? "n\n" : "y\n", 2);
	return rc != 0;
}
`

const bareC = `#include <stdio.h>
int main(void) { puts("hi"); return 0; }
`

const helloGo = `package main

import (
	"fmt"
	"net"
	"os"
)

func main() {
	host := "localhost"
	if len(os.Args) > 1 {
		host = os.Args[1]
	}
	fmt.Println(net.LookupHost(host))
}
`

func (b *Builder) tool(name, install string) string {
	b.t.Helper()
	p, err := exec.LookPath(name)
	if err != nil {
		b.t.Fatalf("imagetest needs %s to build test images (%v); install it: %s", name, err, install)
	}
	return p
}

func (b *Builder) run(env []string, dir, name string, args ...string) {
	b.t.Helper()
	cmd := exec.Command(name, args...)
	cmd.Dir, cmd.Env = dir, append(os.Environ(), env...)
	if out, err := cmd.CombinedOutput(); err != nil {
		b.t.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, out)
	}
}

// Binary compiles (once per Builder) and returns one of: glibc, musl, musl-static,
// go-static, go-static-arm64, go-cgo (all linux/amd64 but go-static-arm64).
func (b *Builder) Binary(which string) []byte { return b.binary(which) }

func (b *Builder) binary(which string) []byte {
	b.t.Helper()
	if bin, ok := b.bins[which]; ok {
		return bin
	}
	out := filepath.Join(b.dir, which)
	src := filepath.Join(b.dir, "hello.c")
	if err := os.WriteFile(src, []byte(helloC), 0o644); err != nil {
		b.t.Fatal(err)
	}
	switch which {
	case "glibc":
		b.run(nil, b.dir, b.tool("gcc", "apt-get install -y gcc"), "-O1", "-o", out, src)
	case "musl":
		b.run(nil, b.dir, b.tool("musl-gcc", "apt-get install -y musl-tools"), "-O1", "-o", out, src)
	case "musl-static":
		b.run(nil, b.dir, b.tool("musl-gcc", "apt-get install -y musl-tools"), "-O1", "-static", "-o", out, src)
	case "glibc-static":
		b.run(nil, b.dir, b.tool("gcc", "apt-get install -y gcc libc6-dev"), "-O1", "-static", "-o", out, src)
	case "musl-resolver", "static-bare":
		code := map[string]string{"musl-resolver": resolveC, "static-bare": bareC}[which]
		src := filepath.Join(b.dir, which+".c")
		if err := os.WriteFile(src, []byte(code), 0o644); err != nil {
			b.t.Fatal(err)
		}
		b.run(nil, b.dir, b.tool("musl-gcc", "apt-get install -y musl-tools"), "-O1", "-static", "-s", "-o", out, src)
	case "go-static", "go-static-arm64", "go-cgo", "go-pie":
		mod := filepath.Join(b.dir, "gomod")
		if err := os.MkdirAll(mod, 0o755); err != nil {
			b.t.Fatal(err)
		}
		for f, s := range map[string]string{"go.mod": "module hello\n\ngo 1.22\n", "main.go": helloGo} {
			if err := os.WriteFile(filepath.Join(mod, f), []byte(s), 0o644); err != nil {
				b.t.Fatal(err)
			}
		}
		env := []string{"GOWORK=off", "GOFLAGS=-mod=mod", "GOOS=linux", "GOARCH=amd64", "CGO_ENABLED=0"}
		switch which {
		case "go-static-arm64":
			env = append(env, "GOARCH=arm64")
		case "go-cgo":
			b.tool("gcc", "apt-get install -y gcc")
			env = append(env, "CGO_ENABLED=1")
		}
		args := []string{"build", "-trimpath", "-o", out}
		if which == "go-pie" {
			args = append(args, "-buildmode=pie")
		}
		b.run(env, mod, b.tool("go", "https://go.dev/doc/install"), append(args, ".")...)
	default:
		b.t.Fatalf("imagetest: no binary %q", which)
	}
	bin, err := os.ReadFile(out)
	if err != nil {
		b.t.Fatal(err)
	}
	b.bins[which] = bin
	return bin
}

// hostFile reads a file of the build machine, following symlinks.
func (b *Builder) hostFile(p, install string) []byte {
	b.t.Helper()
	data, err := os.ReadFile(p)
	if err != nil {
		b.t.Fatalf("imagetest needs %s from the build machine (%v); install it: %s", p, err, install)
	}
	return data
}

// Loader paths as the binaries name them in PT_INTERP (x86-64 hosts).
const (
	GlibcLoader = "/lib64/ld-linux-x86-64.so.2"
	MuslLoader  = "/lib/ld-musl-x86_64.so.1"
)

// glibcFiles are the host's loader and libc.so.6 at the paths the binaries expect.
func (b *Builder) glibcFiles() []File {
	b.t.Helper()
	libcPath := filepath.Join("/lib/x86_64-linux-gnu", "libc.so.6")
	if out, err := exec.Command(b.tool("gcc", "apt-get install -y gcc"), "-print-file-name=libc.so.6").Output(); err == nil {
		if p := strings.TrimSpace(string(out)); filepath.IsAbs(p) {
			libcPath = p
		}
	}
	libcDir := "/lib/x86_64-linux-gnu"
	return []File{
		Exe(GlibcLoader, b.hostFile(GlibcLoader, "apt-get install -y libc6")),
		Exe(libcDir+"/libc.so.6", b.hostFile(libcPath, "apt-get install -y libc6-dev")),
	}
}

// HostGlibcVersion is the build machine's glibc version ("2.36"), whose libc.so.6 the glibc
// images carry.
func (b *Builder) HostGlibcVersion() string {
	b.t.Helper()
	out, err := exec.Command("getconf", "GNU_LIBC_VERSION").Output()
	if err != nil {
		b.t.Fatalf("getconf GNU_LIBC_VERSION: %v (is this a glibc machine?)", err)
	}
	return strings.TrimPrefix(strings.TrimSpace(string(out)), "glibc ")
}

// GlibcFiles are the build machine's glibc loader and libc.so.6, at the paths the glibc
// binaries expect; MuslLoader is musl's loader.
func (b *Builder) GlibcFiles() []File { return b.glibcFiles() }
func (b *Builder) MuslLoader() File   { return b.muslLoader() }

// HostMuslVersion is the version of the build machine's musl ("1.2.3"), whose loader the
// musl images carry, as the loader itself prints it.
func (b *Builder) HostMuslVersion() string {
	b.t.Helper()
	out, _ := exec.Command(MuslLoader, "--version").CombinedOutput() // exits 1 after printing
	for _, line := range strings.Split(string(out), "\n") {
		if v, ok := strings.CutPrefix(line, "Version "); ok {
			return strings.TrimSpace(v)
		}
	}
	b.t.Fatalf("%s --version printed no version: %q", MuslLoader, out)
	return ""
}

// Tini is Debian's tini-static; Busybox is busybox-static's busybox. Both link glibc statically.
func (b *Builder) Tini() []byte    { return b.debFile("tini", "usr/bin/tini-static") }
func (b *Builder) Busybox() []byte { return b.debFile("busybox-static", "bin/busybox") }

func (b *Builder) muslLoader() File {
	b.t.Helper()
	return Exe(MuslLoader, b.hostFile(MuslLoader, "apt-get install -y musl"))
}

const (
	debianRelease = "PRETTY_NAME=\"Debian GNU/Linux 12 (bookworm)\"\nNAME=\"Debian GNU/Linux\"\nVERSION_ID=\"12\"\nID=debian\n"
	alpineRelease = "NAME=\"Alpine Linux\"\nID=alpine\nVERSION_ID=3.20.3\nPRETTY_NAME=\"Alpine Linux v3.20\"\n"
	scratchPath   = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
)

// Image builds an image of kind for linux/amd64 (GoStaticArm64: linux/arm64).
func (b *Builder) Image(kind Kind) v1.Image {
	t := b.t
	t.Helper()
	env := []string{scratchPath}
	switch kind {
	case GlibcDynamic:
		base := Layer(t, append(b.glibcFiles(), Reg("/etc/os-release", []byte(debianRelease)))...)
		app := Layer(t, Exe("/usr/local/bin/hello", b.binary("glibc")), Exe("/usr/local/bin/hello-static", b.binary("musl-static")))
		return Image(t, "amd64", v1.Config{Env: env, Entrypoint: []string{"/usr/local/bin/hello"}}, base, app)
	case MuslDynamic:
		base := Layer(t, b.muslLoader(), Reg("/etc/alpine-release", []byte("3.20.3\n")), Reg("/etc/os-release", []byte(alpineRelease)))
		app := Layer(t, Exe("/app/bin/hello", b.binary("musl")))
		return Image(t, "amd64", v1.Config{Env: []string{"PATH=/usr/bin:/app/bin"}, Cmd: []string{"hello"}}, base, app)
	case MuslStatic:
		return Image(t, "amd64", v1.Config{Env: env, Entrypoint: []string{"/hello"}}, Layer(t, Exe("/hello", b.binary("musl-static"))))
	case GoStatic:
		return Image(t, "amd64", v1.Config{Env: env, Entrypoint: []string{"/ko-app/hello"}}, Layer(t, Exe("/ko-app/hello", b.binary("go-static"))))
	case GoStaticArm64:
		return Image(t, "arm64", v1.Config{Env: env, Entrypoint: []string{"/ko-app/hello"}}, Layer(t, Exe("/ko-app/hello", b.binary("go-static-arm64"))))
	case GoCgo:
		base := Layer(t, b.glibcFiles()...)
		app := Layer(t, Exe("/opt/server/server", b.binary("go-cgo")))
		link := Layer(t, Symlink("/usr/local/bin/server", "../../../opt/server/server"))
		return Image(t, "amd64", v1.Config{Env: env, Entrypoint: []string{"server"}}, base, app, link)
	case ScriptMusl:
		// busybox sorts before sh: the symlink resolves to a file already streamed past.
		base := Layer(t, Exe("/bin/busybox", b.binary("musl")), Symlink("/bin/sh", "busybox"), b.muslLoader(),
			Reg("/etc/alpine-release", []byte("3.20.3\n")))
		app := Layer(t, Exe("/docker-entrypoint.sh", []byte("#!/bin/sh -e\nexec \"$@\"\n")))
		return Image(t, "amd64", v1.Config{Env: env, Entrypoint: []string{"/docker-entrypoint.sh"}, Cmd: []string{"run"}}, base, app)
	case ScriptEnv:
		base := Layer(t, append(b.glibcFiles(), Exe("/usr/bin/env", b.binary("glibc")))...)
		py := Layer(t, Exe("/usr/local/bin/python3.12", b.binary("glibc")), Symlink("/usr/local/bin/python3", "python3.12"))
		app := Layer(t, Exe("/srv/app/run.py", []byte("#!/usr/bin/env python3\nprint('hi')\n")))
		return Image(t, "amd64", v1.Config{Env: env, WorkingDir: "/srv/app", Entrypoint: []string{"./run.py"}}, base, py, app)
	case BaseMusl:
		return Image(t, "amd64", v1.Config{Env: env}, Layer(t, b.muslLoader(), Symlink("/lib/libc.musl-x86_64.so.1", "ld-musl-x86_64.so.1"),
			Reg("/etc/alpine-release", []byte("3.20.3\n")), Reg("/etc/os-release", []byte(alpineRelease))))
	case BaseGlibc:
		return Image(t, "amd64", v1.Config{Env: env}, Layer(t, append(b.glibcFiles(), Reg("/etc/os-release", []byte(debianRelease)))...))
	case ReplacedLibc:
		base := Layer(t, b.muslLoader(), Reg("/etc/alpine-release", []byte("3.20.3\n")))
		up := Layer(t, append(b.glibcFiles(), Whiteout(MuslLoader), Whiteout("/etc/alpine-release"))...)
		return Image(t, "amd64", v1.Config{Env: env}, base, up)
	case OpaqueLibc:
		base := Layer(t, append(b.glibcFiles(), Reg("/etc/os-release", []byte(debianRelease)))...)
		up := Layer(t, Opaque("/lib64"), Opaque("/lib/x86_64-linux-gnu"), b.muslLoader(),
			Reg("/etc/os-release", []byte(alpineRelease)))
		return Image(t, "amd64", v1.Config{Env: env}, base, up)
	case NoLibc:
		return Image(t, "amd64", v1.Config{Env: env, Entrypoint: []string{"/app/run"}},
			Layer(t, Exe("/app/run", []byte("not a program\n")), Reg("/etc/os-release", []byte("ID=distroless\nPRETTY_NAME=\"Distroless\"\n"))))
	case UsrMerge:
		base := Layer(t, append([]File{Symlink("/bin", "usr/bin"), Exe("/usr/bin/dash", b.binary("glibc")),
			Symlink("/usr/bin/sh", "dash")}, b.glibcFiles()...)...)
		// A script the shell reader does not follow: the shell decides.
		return Image(t, "amd64", v1.Config{Env: env, Entrypoint: []string{"/bin/sh", "-c"}, Cmd: []string{"app | tee /tmp/log"}}, base)
	case DeletedEntry:
		base := Layer(t, b.muslLoader(), Exe("/usr/local/bin/hello", b.binary("glibc")))
		up := Layer(t, Whiteout("/usr/local/bin/hello"))
		return Image(t, "amd64", v1.Config{Env: env, Entrypoint: []string{"hello"}}, base, up)
	case GlibcStatic:
		return Image(t, "amd64", v1.Config{Env: env, Entrypoint: []string{"/hello"}}, Layer(t, Exe("/hello", b.binary("glibc-static"))))
	case MuslResolver:
		return Image(t, "amd64", v1.Config{Env: env, Entrypoint: []string{"/resolve"}}, Layer(t, Exe("/resolve", b.binary("musl-resolver"))))
	case StaticBare:
		return Image(t, "amd64", v1.Config{Env: env, Entrypoint: []string{"/bare"}}, Layer(t, Exe("/bare", b.binary("static-bare"))))
	case GoPIE:
		return Image(t, "amd64", v1.Config{Env: env, Entrypoint: []string{"/app"}}, Layer(t, append(b.glibcFiles(), Exe("/app", b.binary("go-pie")))...))
	case Wrappers:
		base := Layer(t, append(b.glibcFiles(), b.muslLoader())...)
		tools := Layer(t, Exe("/tini", b.Tini()), Exe("/bin/busybox", b.Busybox()), Symlink("/bin/sh", "busybox"),
			Symlink("/usr/local/bin/docker-init", "/tini"))
		app := Layer(t, Exe("/usr/local/bin/app", b.binary("musl")), Exe("/opt/glibc/server", b.binary("glibc")))
		return Image(t, "amd64", v1.Config{Env: env, Entrypoint: []string{"/tini", "--"}, Cmd: []string{"app"}}, base, tools, app)
	case ShellExec:
		base := Layer(t, append(b.glibcFiles(), Exe("/bin/busybox", b.Busybox()), Symlink("/bin/sh", "busybox"))...)
		app := Layer(t, Exe("/opt/app/server", b.binary("glibc")))
		return Image(t, "amd64", v1.Config{Env: env, Entrypoint: []string{"/bin/sh", "-c"}, Cmd: []string{"exec /opt/app/server --port 80"}}, base, app)
	case WrapperShell:
		// dumb-init and bash are stand-ins (any ELF): wrappers and shells are followed by name.
		base := Layer(t, b.muslLoader(), Exe("/usr/bin/dumb-init", b.binary("glibc")), Exe("/bin/bash", b.binary("glibc")))
		app := Layer(t, Exe("/opt/app/bin/server", b.binary("musl")), Exe("/srv/migrate.sh", []byte("#!/bin/sh\necho migrated\n")))
		return Image(t, "amd64", v1.Config{Env: []string{"PATH=/opt/app/bin:/usr/bin:/bin"}, WorkingDir: "/srv",
			Entrypoint: []string{"/usr/bin/dumb-init", "--"}, Cmd: []string{"bash", "-c", "./migrate.sh && exec gosu app server --port 80"}}, base, app)
	}
	t.Fatalf("imagetest: unknown kind %q", kind)
	return nil
}
