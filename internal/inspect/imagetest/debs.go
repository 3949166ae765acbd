package imagetest

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// Real third-party static binaries come from Debian packages, fetched with `apt-get download`
// once and cached under the repository's git-ignored bin/debs: tini-static (tini) and busybox
// (busybox-static), both statically linked against glibc.

// debFile returns the file at member (e.g. "usr/bin/tini-static") of the Debian package pkg.
func (b *Builder) debFile(pkg, member string) []byte {
	b.t.Helper()
	key := "deb:" + pkg + ":" + member
	if bin, ok := b.bins[key]; ok {
		return bin
	}
	deb := fetchDeb(b.t, pkg)
	dir := filepath.Join(b.dir, "deb-"+pkg)
	if _, err := os.Stat(dir); err != nil {
		b.run(nil, b.dir, b.tool("dpkg-deb", "apt-get install -y dpkg"), "-x", deb, dir)
	}
	data, err := os.ReadFile(filepath.Join(dir, member))
	if err != nil {
		b.t.Fatalf("imagetest: %s has no %s: %v", deb, member, err)
	}
	b.bins[key] = data
	return data
}

// fetchDeb returns the path of pkg's .deb in the cache, downloading it when missing. A
// failure is fatal, in CI and out: a skip would hide lost coverage.
func fetchDeb(t testing.TB, pkg string) string {
	t.Helper()
	cache := filepath.Join(repoRoot(t), "bin", "debs")
	if m, _ := filepath.Glob(filepath.Join(cache, pkg+"_*.deb")); len(m) > 0 {
		return m[0]
	}
	apt, err := exec.LookPath("apt-get")
	if err != nil {
		t.Fatalf("imagetest needs the Debian package %s (apt-get download %s into %s): no apt-get: %v", pkg, pkg, cache, err)
	}
	if err := os.MkdirAll(cache, 0o755); err != nil {
		t.Fatal(err)
	}
	tmp, err := os.MkdirTemp(cache, ".download-")
	if err != nil {
		t.Fatal(err)
	}
	defer os.RemoveAll(tmp)
	cmd := exec.Command(apt, "download", "-q", pkg)
	cmd.Dir = tmp
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("imagetest: apt-get download %s: %v\n%s\n(run apt-get update first; needs deb.debian.org)", pkg, err, out)
	}
	m, _ := filepath.Glob(filepath.Join(tmp, pkg+"_*.deb"))
	if len(m) != 1 {
		t.Fatalf("imagetest: apt-get download %s left %v", pkg, m)
	}
	dst := filepath.Join(cache, filepath.Base(m[0]))
	if err := os.Rename(m[0], dst); err != nil { // atomic: parallel test binaries share the cache
		t.Fatal(err)
	}
	return dst
}

// repoRoot is the directory holding go.mod, found from the test's working directory.
func repoRoot(t testing.TB) string {
	t.Helper()
	dir, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	for d := dir; ; d = filepath.Dir(d) {
		if data, err := os.ReadFile(filepath.Join(d, "go.mod")); err == nil && strings.Contains(string(data), "module ") {
			return d
		}
		if filepath.Dir(d) == d {
			t.Fatalf("imagetest: no go.mod above %s", dir)
		}
	}
}
