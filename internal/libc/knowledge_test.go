package libc

import (
	"path"
	"slices"
	"strings"
	"testing"
	"time"
)

func TestTableCoversEveryLibcOnce(t *testing.T) {
	want := []Libc{GLibc, Musl, Go, Static, Unknown}
	if !slices.Equal(All, want) {
		t.Errorf("All = %v, want %v (profile order)", All, want)
	}
	names := map[string]Libc{}
	for _, k := range Table {
		for _, n := range append([]string{string(k.Libc)}, k.Aliases...) {
			if other, dup := names[n]; dup {
				t.Errorf("name %q is both %s and %s", n, other, k.Libc)
			}
			names[n] = k.Libc
		}
	}
}

func TestParse(t *testing.T) {
	tests := []struct {
		in      string
		want    Libc
		wantErr bool
	}{
		{in: "glibc", want: GLibc},
		{in: " GNU ", want: GLibc},
		{in: "musl", want: Musl},
		{in: "Alpine", want: Musl},
		{in: "golang", want: Go},
		{in: "static", want: Static},
		{in: "unknown", want: Unknown},
		{in: "uclibc", wantErr: true},
		{in: "", wantErr: true},
	}
	for _, tt := range tests {
		got, err := Parse(tt.in)
		if tt.wantErr {
			if err == nil || !strings.Contains(err.Error(), "want one of glibc, musl, go, static, unknown") {
				t.Errorf("Parse(%q) = %s, %v; want the list of names", tt.in, got, err)
			}
			continue
		}
		if err != nil || got != tt.want {
			t.Errorf("Parse(%q) = %s, %v; want %s", tt.in, got, err, tt.want)
		}
	}
}

// Every loader listed maps back to its libc, and musl's and glibc's lists cover the
// architectures Kubernetes nodes run.
func TestLoadersMapBackToTheirLibc(t *testing.T) {
	for _, k := range Table {
		arches := map[string]bool{}
		for _, ld := range k.Loaders {
			if got := ByLoader(ld.Path); got != k.Libc {
				t.Errorf("%s loader %s (%s) maps to %s", k.Libc, ld.Path, ld.Arch, got)
			}
			if arches[ld.Arch] {
				t.Errorf("%s lists %s twice", k.Libc, ld.Arch)
			}
			arches[ld.Arch] = true
		}
		for _, pat := range k.LoaderNames {
			if _, err := path.Match(pat, "x"); err != nil {
				t.Errorf("%s loader pattern %q: %v", k.Libc, pat, err)
			}
		}
		if k.LoaderNames != nil {
			for _, arch := range []string{"amd64", "arm64", "arm", "ppc64le", "s390x", "riscv64"} {
				if !arches[arch] {
					t.Errorf("%s has no loader for %s", k.Libc, arch)
				}
			}
		}
	}
	for _, interp := range []string{"/system/bin/linker64", "/lib/ld-uClibc.so.0", "", "/"} {
		if got := ByLoader(interp); got != Unknown {
			t.Errorf("ByLoader(%q) = %s, want unknown", interp, got)
		}
	}
}

// A base image shows its libc by these files; the loaders' paths are among them (glibc's
// mips ld.so.1 is not: the base tier has never counted it).
func TestMarkers(t *testing.T) {
	for _, k := range Table {
		for _, ld := range k.Loaders {
			if k.Markers == nil || path.Base(ld.Path) == "ld.so.1" {
				continue
			}
			if !k.Markers.MatchString(ld.Path) {
				t.Errorf("%s loader %s is not a base marker", k.Libc, ld.Path)
			}
		}
	}
	tests := []struct {
		path string
		want Libc // Unknown: a marker of no libc
	}{
		{"/lib/ld-musl-x86_64.so.1", Musl},
		{"/usr/lib/ld-musl-aarch64.so.1", Musl},
		{"/lib/x86_64-linux-gnu/libc.so.6", GLibc},
		{"/usr/lib/aarch64-linux-gnu/ld-linux-aarch64.so.1", GLibc},
		{"/lib64/ld-linux-x86-64.so.2", GLibc},
		{"/lib/libc-2.28.so", GLibc},
		{"/usr/lib64/ld-2.17.so", GLibc},
		{"/lib/libc.musl-x86_64.so.1", Unknown},
		{"/opt/lib/libc.so.6", Unknown},
		{"/lib/ld-musl-x86_64.so.1.bak", Unknown},
	}
	for _, tt := range tests {
		var got []Libc
		for _, k := range Table {
			if k.Markers != nil && k.Markers.MatchString(tt.path) {
				got = append(got, k.Libc)
			}
		}
		switch {
		case tt.want == Unknown && len(got) != 0:
			t.Errorf("%s marks %v, want none", tt.path, got)
		case tt.want != Unknown && !slices.Equal(got, []Libc{tt.want}):
			t.Errorf("%s marks %v, want %s", tt.path, got, tt.want)
		}
	}
}

func TestVersionProbes(t *testing.T) {
	g := About(GLibc)
	for _, tt := range []struct{ name, want string }{
		{"libc-2.28.so", "2.28"}, {"ld-2.17.so", "2.17"}, {"libc.so.6", ""}, {"libc-2.28.so.bak", ""},
	} {
		got := ""
		if m := g.VersionInName.FindStringSubmatch(tt.name); m != nil {
			got = m[1]
		}
		if got != tt.want {
			t.Errorf("version in name %s = %q, want %q", tt.name, got, tt.want)
		}
	}
	content := "GNU C Library (Debian GLIBC 2.36-9+deb12u4) stable release version 2.36.\n"
	if m := g.VersionInContent.FindStringSubmatch(content); m == nil || m[1] != "2.36" {
		t.Errorf("version in content = %v, want 2.36", m)
	}
}

func TestHonours(t *testing.T) {
	tests := []struct {
		libc           Libc
		option, ver    string
		honours, known bool
	}{
		{GLibc, "single-request-reopen", "", true, true},
		{GLibc, "no-aaaa", "2.36", true, true},
		{GLibc, "no-aaaa", "2.41", true, true},
		{GLibc, "no-aaaa", "3.0", true, true},
		{GLibc, "no-aaaa", "2.35", false, true},
		{GLibc, "no-aaaa", "", true, true},              // version unknown: assume current
		{GLibc, "no-aaaa", "2.35-0ubuntu3", true, true}, // unreadable minor: assume current
		{GLibc, "no-aaaa", "2", true, true},
		{GLibc, "trust-ad", "2.31", true, true},
		{GLibc, "trust-ad", "2.30", false, true},
		{GLibc, "no-reload", "2.25", false, true},
		{GLibc, "timeout", "2.17", true, true},
		{GLibc, "made-up", "", false, true},
		{Musl, "ndots", "", true, true},
		{Musl, "attempts", "1.2.4", true, true},
		{Musl, "single-request", "", false, true},
		{Musl, "edns0", "", false, true},
		{Go, "use-vc", "", true, true},
		{Go, "tcp", "", true, true},
		{Go, "no-aaaa", "", false, true},
		{Go, "inet6", "", false, true},
		{Static, "timeout", "", false, false},
		{Unknown, "ndots", "", false, false},
		{Libc("bionic"), "ndots", "", false, false},
	}
	for _, tt := range tests {
		h, k := Honours(tt.libc, tt.option, tt.ver)
		if h != tt.honours || k != tt.known {
			t.Errorf("Honours(%s, %s, %q) = %v,%v; want %v,%v", tt.libc, tt.option, tt.ver, h, k, tt.honours, tt.known)
		}
	}
}

func TestAdvice(t *testing.T) {
	tests := []struct {
		libc         Libc
		option, want string
	}{
		{GLibc, "no-aaaa", "needs glibc 2.36 or newer; upgrade the base image"},
		{GLibc, "trust-ad", "needs glibc 2.31 or newer; upgrade the base image"},
		{GLibc, "made-up", "glibc does not read this option"},
		{Musl, "single-request-reopen", "musl always sends A and AAAA in parallel"},
		{Musl, "rotate", "musl reads only ndots, timeout and attempts"},
		{Go, "inet6", "Go's resolver ignores it"},
		{Static, "rotate", ""},
		{Unknown, "rotate", ""},
	}
	for _, tt := range tests {
		got := Advice(tt.libc, tt.option)
		if (tt.want == "" && got != "") || !strings.HasPrefix(got, tt.want) {
			t.Errorf("Advice(%s, %s) = %q, want %q…", tt.libc, tt.option, got, tt.want)
		}
	}
	// Every option a libc ignores gets advice, and every libc that reads options has some.
	for _, k := range Table {
		if k.Options != nil && k.Ignored == "" {
			t.Errorf("%s has no advice for the options it ignores", k.Libc)
		}
	}
}

func TestLostReplyWait(t *testing.T) {
	tests := []struct {
		libc              Libc
		timeout, attempts int
		want              time.Duration
	}{
		{GLibc, 5, 2, 5 * time.Second}, // defaults
		{GLibc, 2, 3, 2 * time.Second}, // the shipped glibc profile
		{GLibc, 0, 3, 1 * time.Second}, // send_dg waits at least a second
		{GLibc, 60, 1, 30 * time.Second},
		{Musl, 5, 2, 2500 * time.Millisecond}, // defaults
		{Musl, 2, 10, 200 * time.Millisecond}, // the shipped musl profile
		{Musl, 2, 20, 200 * time.Millisecond}, // attempts capped at 10
		{Musl, 120, 2, 30 * time.Second},      // timeout capped at 60
		{Musl, 2, 0, 2 * time.Second},
		{Go, 5, 2, 5 * time.Second},
		{Go, 60, 2, 60 * time.Second},
		{Go, 0, 2, 1 * time.Second},
		{Static, 2, 2, 0},
		{Unknown, 2, 2, 0},
	}
	for _, tt := range tests {
		if got := About(tt.libc).Retry.LostReplyWait(tt.timeout, tt.attempts); got != tt.want {
			t.Errorf("%s LostReplyWait(%d, %d) = %s, want %s", tt.libc, tt.timeout, tt.attempts, got, tt.want)
		}
	}
	for _, k := range Table {
		if k.Options != nil && (k.Retry.Model == RetryUnknown || k.Retry.How == "") {
			t.Errorf("%s reads options but its retry model is not described", k.Libc)
		}
	}
}
