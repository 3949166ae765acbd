package imagetest

import (
	"testing"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/types"

	"github.com/dns-tuner/dns-tuner/internal/libc"
)

// Entry is one pushed image and what inspecting it must conclude.
type Entry struct {
	Name     string
	Ref      name.Reference
	Command  []string     // container command override (nil: the image's)
	Args     []string     // container args override
	PathEnv  string       // the container's own PATH (pod env), "" for the image's
	WorkDir  string       // the container's workingDir, "" for the image's
	Platform *v1.Platform // nil: the default (linux/amd64)
	Auth     *authn.Basic // credentials the registry wants, nil for none

	Libc     libc.Libc
	Source   libc.Source
	CGO      *bool    // nil: not asserted
	Version  string   // "": not asserted
	Evidence []string // substrings the evidence must contain
	MaxBytes int64    // 0: not asserted; else the bytes the verdict may cost
}

// Credentials of the catalog's private registry.
const (
	User     = "dns-tuner"
	Password = "s3cret"
)

// CatalogOf is a pushed catalog: its registries and entries.
type CatalogOf struct {
	Host, AuthHost string
	Entries        []Entry
}

// Catalog builds every kind, pushes them to a fresh registry (and one image to a registry that
// wants basic credentials) and returns what each must be inspected as.
func Catalog(t testing.TB) CatalogOf {
	t.Helper()
	b := NewBuilder(t)
	c := CatalogOf{Host: Registry(t), AuthHost: AuthRegistry(t, User, Password)}
	yes, no := true, false
	push := func(k Kind) name.Reference { return Push(t, c.Host, "catalog/"+string(k), b.Image(k)) }
	add := func(e Entry) { c.Entries = append(c.Entries, e) }

	glibcRef := push(GlibcDynamic)
	add(Entry{Name: "glibc dynamic", Ref: glibcRef, Libc: libc.GLibc, Source: libc.SourceEntrypoint,
		Evidence: []string{"/usr/local/bin/hello", "PT_INTERP " + GlibcLoader, "layer 1 sha256:"}})
	add(Entry{Name: "command override to a static musl binary", Ref: glibcRef, Command: []string{"hello-static"},
		Libc: libc.Musl, Source: libc.SourceEntrypoint, Evidence: []string{"/usr/local/bin/hello-static", "static ELF"}})
	add(Entry{Name: "relative command from the pod's workingDir", Ref: glibcRef, Command: []string{"./hello-static"}, WorkDir: "/usr/local/bin",
		Libc: libc.Musl, Source: libc.SourceEntrypoint, Evidence: []string{"/usr/local/bin/hello-static", "static ELF"}})
	add(Entry{Name: "command override to a missing file falls back to the base", Ref: glibcRef, Command: []string{"/nope"},
		Libc: libc.GLibc, Source: libc.SourceBase, Evidence: []string{"libc.so.6", "entrypoint /nope not found"}})
	add(Entry{Name: "args override keeps the entrypoint", Ref: glibcRef, Args: []string{"example.com"},
		Libc: libc.GLibc, Source: libc.SourceEntrypoint, Evidence: []string{"/usr/local/bin/hello"}})

	muslRef := push(MuslDynamic)
	add(Entry{Name: "musl dynamic via PATH", Ref: muslRef, Libc: libc.Musl, Source: libc.SourceEntrypoint,
		Evidence: []string{"/app/bin/hello", "PT_INTERP " + MuslLoader}})
	add(Entry{Name: "musl static (strerror table)", Ref: push(MuslStatic), Libc: libc.Musl, Source: libc.SourceEntrypoint,
		Evidence: []string{"/hello", "static ELF, no PT_INTERP; musl strerror \"No error information\""}})
	add(Entry{Name: "musl static, stripped, resolver only", Ref: push(MuslResolver), Libc: libc.Musl, Source: libc.SourceEntrypoint,
		Evidence: []string{"/resolve", `musl resolv.conf options "ndots:", "attempts:", "timeout:"`}})
	add(Entry{Name: "glibc static", Ref: push(GlibcStatic), Libc: libc.GLibc, Source: libc.SourceEntrypoint,
		Evidence: []string{"/hello", "static ELF, no PT_INTERP; glibc .note.ABI-tag"}})
	add(Entry{Name: "static without a libc telltale", Ref: push(StaticBare), Libc: libc.Static, Source: libc.SourceEntrypoint,
		Evidence: []string{"/bare", "static ELF, no PT_INTERP, not Go, no libc telltale in its first"}})
	add(Entry{Name: "go PIE without cgo", Ref: push(GoPIE), Libc: libc.Go, Source: libc.SourceEntrypoint, CGO: &no,
		Evidence: []string{"/app", "dynamic Go binary", "CGO_ENABLED=0", "PT_INTERP " + GlibcLoader}})
	add(Entry{Name: "go static", Ref: push(GoStatic), Libc: libc.Go, Source: libc.SourceEntrypoint, CGO: &no,
		Evidence: []string{"/ko-app/hello", "CGO_ENABLED=0"}})
	add(Entry{Name: "go cgo through a symlink", Ref: push(GoCgo), Libc: libc.GLibc, Source: libc.SourceEntrypoint, CGO: &yes,
		Evidence: []string{"/opt/server/server", "/usr/local/bin/server -> ../../../opt/server/server", "go (cgo)", "PT_INTERP " + GlibcLoader}})
	add(Entry{Name: "script to a symlinked musl shell", Ref: push(ScriptMusl), Libc: libc.Musl, Source: libc.SourceEntrypoint,
		Evidence: []string{"/docker-entrypoint.sh", "#!/bin/sh", "/bin/sh -> busybox", "PT_INTERP " + MuslLoader}})
	add(Entry{Name: "env script from the working directory", Ref: push(ScriptEnv), Libc: libc.GLibc, Source: libc.SourceEntrypoint,
		Evidence: []string{"/srv/app/run.py", "#!/usr/bin/env python3", "/usr/local/bin/python3 -> python3.12", "PT_INTERP " + GlibcLoader}})
	add(Entry{Name: "musl base", Ref: push(BaseMusl), Libc: libc.Musl, Source: libc.SourceBase, Version: b.HostMuslVersion(),
		Evidence: []string{MuslLoader, "alpine 3.20.3"}})
	add(Entry{Name: "glibc base", Ref: push(BaseGlibc), Libc: libc.GLibc, Source: libc.SourceBase, Version: b.HostGlibcVersion(),
		Evidence: []string{GlibcLoader, "libc.so.6", "Debian"}})
	add(Entry{Name: "upper layer replaces musl with glibc", Ref: push(ReplacedLibc), Libc: libc.GLibc, Source: libc.SourceBase,
		Evidence: []string{GlibcLoader, "layer 1"}})
	add(Entry{Name: "upper layer hides glibc behind opaque dirs", Ref: push(OpaqueLibc), Libc: libc.Musl, Source: libc.SourceBase,
		Evidence: []string{MuslLoader, "layer 1"}})
	add(Entry{Name: "usrmerge shell, script not followed", Ref: push(UsrMerge), Libc: libc.GLibc, Source: libc.SourceEntrypoint,
		Evidence: []string{"/usr/bin/dash", "/bin -> usr/bin", "/usr/bin/sh -> dash", "PT_INTERP " + GlibcLoader,
			"not followed: /bin/sh -c: uses a pipe"}})
	add(Entry{Name: "entrypoint whited out", Ref: push(DeletedEntry), Libc: libc.Musl, Source: libc.SourceBase,
		Evidence: []string{MuslLoader, "entrypoint hello not found"}})
	add(Entry{Name: "no libc", Ref: push(NoLibc), Libc: libc.Unknown, Source: libc.SourceNone})

	// Wrappers and shells: the verdict is the program they start.
	wrapRef := push(Wrappers)
	appEv := "/usr/local/bin/app (layer 2 sha256:"
	// Following a wrapper reads nothing: only the app's (top) layer is fetched.
	add(Entry{Name: "static tini in front of a musl app", Ref: wrapRef, Libc: libc.Musl, Source: libc.SourceEntrypoint,
		Evidence: []string{"/tini → " + appEv, "PT_INTERP " + MuslLoader}, MaxBytes: 16 << 10})
	add(Entry{Name: "tini reached through a symlink", Ref: wrapRef, Command: []string{"docker-init", "--", "app"},
		Libc: libc.Musl, Source: libc.SourceEntrypoint,
		Evidence: []string{"/tini (via /usr/local/bin/docker-init -> /tini) (layer 1 sha256:", " → " + appEv}})
	add(Entry{Name: "args override: tini, busybox sh -c exec a glibc server", Ref: wrapRef,
		Args: []string{"sh", "-c", "exec /opt/glibc/server --port 80"}, Libc: libc.GLibc, Source: libc.SourceEntrypoint,
		Evidence: []string{"/tini → sh -c → /opt/glibc/server (layer 2 sha256:", "PT_INTERP " + GlibcLoader}, MaxBytes: 16 << 10})
	add(Entry{Name: "command override: env PATH=… with a bare name", Ref: wrapRef,
		Command: []string{"/usr/bin/env", "PATH=/opt/glibc", "server"}, Libc: libc.GLibc, Source: libc.SourceEntrypoint,
		Evidence: []string{"/usr/bin/env → /opt/glibc/server", "PT_INTERP " + GlibcLoader}})
	add(Entry{Name: "command override: gosu user app", Ref: wrapRef, Command: []string{"gosu", "nobody", "app"},
		Libc: libc.Musl, Source: libc.SourceEntrypoint, Evidence: []string{"gosu → " + appEv}})
	add(Entry{Name: "pod PATH finds a bare name", Ref: wrapRef, Command: []string{"server"}, PathEnv: "/opt/glibc:/usr/bin",
		Libc: libc.GLibc, Source: libc.SourceEntrypoint, Evidence: []string{"/opt/glibc/server (layer 2 sha256:"}})
	add(Entry{Name: "unparseable script: the static glibc busybox decides", Ref: wrapRef,
		Command: []string{"sh", "-c", "app | tee /tmp/log"}, Libc: libc.GLibc, Source: libc.SourceEntrypoint,
		Evidence: []string{"/bin/busybox (via /bin/sh -> busybox)", "static ELF, no PT_INTERP; glibc .note.ABI-tag",
			"not followed: sh -c: uses a pipe"}})
	add(Entry{Name: "static tini alone", Ref: wrapRef, Command: []string{"/tini", "--version"}, Args: []string{},
		Libc: libc.GLibc, Source: libc.SourceEntrypoint, Evidence: []string{"/tini (layer 1", "glibc .note.ABI-tag"}})
	add(Entry{Name: "busybox sh -c exec a glibc app", Ref: push(ShellExec), Libc: libc.GLibc, Source: libc.SourceEntrypoint,
		Evidence: []string{"/bin/sh -c → /opt/app/server (layer 1 sha256:", "PT_INTERP " + GlibcLoader}})
	add(Entry{Name: "dumb-init, bash -c chain, gosu, PATH and WorkingDir", Ref: push(WrapperShell), Libc: libc.Musl,
		Source: libc.SourceEntrypoint, Evidence: []string{"/usr/bin/dumb-init → bash -c → gosu → /opt/app/bin/server (layer 1", "PT_INTERP " + MuslLoader}})

	// Multi-arch: amd64 is musl, arm64 is Go; an arm64-only index falls back to "any linux",
	// skipping an attestation manifest (unknown/unknown) listed first.
	arm := b.Image(GoStaticArm64)
	idx := mutate.AppendManifests(empty.Index,
		mutate.IndexAddendum{Add: b.Image(MuslDynamic), Descriptor: v1.Descriptor{Platform: &v1.Platform{OS: "linux", Architecture: "amd64"}}},
		mutate.IndexAddendum{Add: arm, Descriptor: v1.Descriptor{Platform: &v1.Platform{OS: "linux", Architecture: "arm64", Variant: "v8"}}})
	idxRef := PushIndex(t, c.Host, "catalog/multiarch", idx)
	add(Entry{Name: "index picks linux/amd64", Ref: idxRef, Libc: libc.Musl, Source: libc.SourceEntrypoint,
		Evidence: []string{"PT_INTERP " + MuslLoader, "platform linux/amd64"}})
	add(Entry{Name: "index picks the requested linux/arm64", Ref: idxRef, Platform: &v1.Platform{OS: "linux", Architecture: "arm64"},
		Libc: libc.Go, Source: libc.SourceEntrypoint, Evidence: []string{"static Go", "platform linux/arm64/v8"}})
	attest := Image(t, "unknown", v1.Config{}, Layer(t, Reg("/attestation.json", []byte("{}"))))
	armOnly := mutate.AppendManifests(empty.Index,
		mutate.IndexAddendum{Add: attest, Descriptor: v1.Descriptor{Platform: &v1.Platform{OS: "unknown", Architecture: "unknown"}}},
		mutate.IndexAddendum{Add: arm, Descriptor: v1.Descriptor{Platform: &v1.Platform{OS: "linux", Architecture: "arm64", Variant: "v8"}}})
	armOnly = mutate.IndexMediaType(armOnly, types.OCIImageIndex)
	add(Entry{Name: "index without amd64 falls back to any linux", Ref: PushIndex(t, c.Host, "catalog/arm64-only", armOnly),
		Libc: libc.Go, Source: libc.SourceEntrypoint, Evidence: []string{"static Go", "platform linux/arm64/v8"}})

	// Private registry.
	cred := &authn.Basic{Username: User, Password: Password}
	privRef := Push(t, c.AuthHost, "private/musl", b.Image(MuslDynamic), remoteAuth(cred))
	add(Entry{Name: "private registry with credentials", Ref: privRef, Auth: cred, Libc: libc.Musl, Source: libc.SourceEntrypoint,
		Evidence: []string{"PT_INTERP " + MuslLoader}})
	return c
}
