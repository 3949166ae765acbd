package inspect

import (
	"testing"

	"github.com/dns-tuner/dns-tuner/internal/libc"
)

func TestInterpLibc(t *testing.T) {
	for _, c := range []struct {
		interp string
		want   libc.Libc
	}{
		{"/lib/ld-musl-x86_64.so.1", libc.Musl},
		{"/lib/ld-musl-aarch64.so.1", libc.Musl},
		{"/lib/ld-musl-armhf.so.1", libc.Musl},
		{"/lib/ld-musl-riscv64.so.1", libc.Musl},
		{"/lib/ld-musl-s390x.so.1", libc.Musl},
		{"/lib/ld-musl-powerpc64le.so.1", libc.Musl},
		{"/lib64/ld-linux-x86-64.so.2", libc.GLibc},
		{"/lib/ld-linux-aarch64.so.1", libc.GLibc},
		{"/lib/ld-linux-armhf.so.3", libc.GLibc},
		{"/lib/ld-linux.so.2", libc.GLibc},
		{"/lib/ld-linux-riscv64-lp64d.so.1", libc.GLibc},
		{"/lib64/ld64.so.2", libc.GLibc}, // ppc64le
		{"/lib/ld64.so.1", libc.GLibc},   // s390x
		{"/lib/ld.so.1", libc.GLibc},     // mips, ppc32
		{"/system/bin/linker64", libc.Unknown},
		{"/lib/ld-uClibc.so.0", libc.Unknown},
	} {
		if got := interpLibc(c.interp); got != c.want {
			t.Errorf("interpLibc(%q) = %s, want %s", c.interp, got, c.want)
		}
	}
}

// TestShebang: the program a #! script leads to, through env as well.
func TestShebang(t *testing.T) {
	for _, c := range []struct {
		shebang, want string
	}{
		{"/bin/sh", "/bin/sh"},
		{"/bin/sh -e", "/bin/sh"},
		{"/usr/bin/env python3", "python3"},
		{"/usr/bin/env -S node --max-old-space-size=100", "node"},
		{"/usr/bin/env -i LANG=C bash", "bash"},
		{"/usr/bin/env", "/x"}, // env runs the script itself (and the scanner gives up after maxScripts)
	} {
		argv := shebangArgv(c.shebang, "/x", []string{"arg"})
		if h, ok, err := follow(argv, "/", defaultPath); ok && err == nil {
			argv = h.argv
		}
		if got := argv[0]; got != c.want {
			t.Errorf("#!%s runs %q, want %q", c.shebang, got, c.want)
		}
	}
}

// TestTelltalesFitTheOverlap: content is searched in chunks that overlap by maxTelltale
// bytes, so a longer telltale could be missed across a chunk boundary.
func TestTelltalesFitTheOverlap(t *testing.T) {
	if len(staticStrings) == 0 || len(staticNotes) == 0 {
		t.Fatal("libc.Table has no static telltales")
	}
	for _, tt := range staticStrings {
		if tt.Bytes == "" || len(tt.Bytes) > maxTelltale || tt.What == "" {
			t.Errorf("%s telltale %q: want 1..%d bytes and a name", tt.libc, tt.Bytes, maxTelltale)
		}
	}
}

// TestMuslVersionInLoader: the lone version string musl's loader carries, in release and
// snapshot forms, and not a longer number or one inside other text.
func TestMuslVersionInLoader(t *testing.T) {
	re := libc.About(libc.Musl).VersionInContent
	for in, want := range map[string]string{
		"/proc/self/fd/\x001.2.3\x00Unsupported request %d": "1.2.3",
		"x\x001.2.5_git20240512\x00y":                       "1.2.5",
		"\x0011.2.3\x00":                                    "",
		"\x00version 1.2.3\x00":                             "",
		"\x001.2\x00":                                       "",
	} {
		got := ""
		if m := re.FindStringSubmatch(in); m != nil {
			got = m[1]
		}
		if got != want {
			t.Errorf("%q: version %q, want %q", in, got, want)
		}
	}
}
