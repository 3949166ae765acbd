package libc

import (
	"path"
	"regexp"
	"strconv"
	"strings"
	"time"
)

// Knowledge is what dns-tuner knows about one libc: what its resolver reads and how it
// retries (to decide what to inject and what it ignores), and how to recognise it in an image
// (its loaders in an entrypoint's PT_INTERP, its marker files in the image's base). Adding a
// libc means a constant, an entry in Table and a profile in the default policy.
type Knowledge struct {
	Libc Libc
	// Aliases are other names an operator may write for it (Parse).
	Aliases []string
	// Source names where the resolver facts were read.
	Source string

	// Options are the resolv.conf options the resolver reads; it silently ignores the rest.
	// Nil when dns-tuner cannot tell (static non-Go binaries, unknown): such containers are
	// never reported as ignoring an option.
	Options []Option
	Retry   Retry
	// Ignored is the advice when the resolver ignores an option; Advice overrides it for
	// options by prefix.
	Ignored string
	Advice  []PrefixAdvice

	// Loaders are the dynamic loaders (PT_INTERP) by GOARCH. LoaderNames are path.Match
	// patterns of their file names, so an architecture not listed is still recognised.
	Loaders     []Loader
	LoaderNames []string
	// Markers matches the absolute paths in an image whose presence shows the libc is
	// installed (the base tier). Nil: no markers.
	Markers *regexp.Regexp
	// VersionInName and VersionInContent find the libc's release version in a marker's file
	// name and bytes (group 1). Nil: the version is not looked for.
	VersionInName, VersionInContent *regexp.Regexp

	// StaticNotes and StaticStrings recognise the libc linked into a static ELF (no
	// PT_INTERP): an ELF note its start files add, or a NUL-bounded string of its code that
	// other libcs and runtimes do not have. Any one is enough.
	StaticNotes   []Telltale
	StaticStrings []Telltale
}

// Telltale is one sign of a libc inside a static binary. What names it in the evidence.
// For a note, Name and Type are the ELF note's; for a string, Bytes is searched for.
type Telltale struct {
	What  string
	Name  string
	Type  uint32
	Bytes string
}

// Option is a resolv.conf option a resolver reads, from version Since on ("2.36"; "" for
// every version). Older versions ignore it.
type Option struct {
	Name  string
	Since string
}

// PrefixAdvice is advice for options starting with Prefix.
type PrefixAdvice struct{ Prefix, Text string }

// Loader is the dynamic loader of one architecture.
type Loader struct{ Arch, Path string }

// RetryModel is what a resolver's timeout and attempts mean.
type RetryModel uint8

const (
	RetryUnknown RetryModel = iota
	// RetryPerTry: each try waits timeout for one nameserver before the next; attempts is
	// the number of rounds over the nameservers. A lost reply costs the whole timeout.
	RetryPerTry
	// RetrySpread: timeout bounds the whole lookup; every nameserver is asked in parallel and
	// unanswered queries are sent again every timeout/attempts. A lost reply costs that interval.
	RetrySpread
)

// Retry is how a resolver retries a query, and how its A and AAAA queries share a socket (the
// conntrack race that drops one of two UDP packets sent at once from the same socket).
type Retry struct {
	Model RetryModel
	// Timeout (seconds) and Attempts as resolv.conf sets them: the default when it says
	// nothing, and the range the resolver clamps a value to.
	Timeout, Attempts Limit
	// SharedSocket: A and AAAA leave from one socket, so the conntrack race applies.
	SharedSocket bool
	How          string
}

// Limit is a resolver setting's default and the range it is clamped to (Max 0: no maximum).
type Limit struct{ Default, Min, Max int }

func (l Limit) clamp(v int) int {
	if l.Max > 0 && v > l.Max {
		return l.Max
	}
	return max(v, l.Min)
}

// LostReplyWait is how long one lost reply delays a lookup for resolv.conf's timeout and
// attempts (pass Timeout.Default and Attempts.Default for what resolv.conf does not set).
// Zero when the model is unknown.
func (r Retry) LostReplyWait(timeout, attempts int) time.Duration {
	t := time.Duration(r.Timeout.clamp(timeout)) * time.Second
	switch r.Model {
	case RetryPerTry:
		return t
	case RetrySpread:
		return t / time.Duration(max(r.Attempts.clamp(attempts), 1))
	}
	return 0
}

// Table is every libc dns-tuner knows, in the order profiles are documented and merged.
var Table = []Knowledge{
	{
		Libc:    GLibc,
		Aliases: []string{"gnu"},
		Source:  "glibc resolv/res_init.c, resolv/res_send.c",
		Options: []Option{{Name: "ndots"}, {Name: "timeout"}, {Name: "attempts"}, {Name: "rotate"},
			{Name: "debug"}, {Name: "no-check-names"}, {Name: "edns0"}, {Name: "single-request"},
			{Name: "single-request-reopen"}, {Name: "no-tld-query"}, {Name: "use-vc"},
			{Name: "no-reload", Since: "2.26"}, {Name: "trust-ad", Since: "2.31"},
			{Name: "no-aaaa", Since: "2.36"}, {Name: "inet6"}, {Name: "ip6-bytestring"},
			{Name: "ip6-dotint"}, {Name: "no-ip6-dotint"}},
		// send_dg waits at least a second; attempts:0 means no try at all.
		Retry: Retry{Model: RetryPerTry, Timeout: Limit{5, 1, 30}, Attempts: Limit{2, 0, 5}, SharedSocket: true,
			How: "timeout per try per nameserver, attempts rounds over the nameservers; A and AAAA share a socket"},
		Ignored: "glibc does not read this option",
		Loaders: []Loader{
			{"386", "/lib/ld-linux.so.2"},
			{"amd64", "/lib64/ld-linux-x86-64.so.2"},
			{"arm", "/lib/ld-linux-armhf.so.3"},
			{"arm64", "/lib/ld-linux-aarch64.so.1"},
			{"loong64", "/lib64/ld-linux-loongarch-lp64d.so.1"},
			{"mips", "/lib/ld.so.1"},
			{"mips64", "/lib64/ld.so.1"},
			{"ppc64", "/lib64/ld64.so.1"},
			{"ppc64le", "/lib64/ld64.so.2"},
			{"riscv64", "/lib/ld-linux-riscv64-lp64d.so.1"},
			{"s390x", "/lib/ld64.so.1"},
		},
		// ld-linux*.so.* (x86, arm, aarch64, riscv…), ld64.so.* (ppc64, s390x), ld.so.1 (mips,
		// ppc32) and the versioned file old glibc installs (ld-2.31.so).
		LoaderNames: []string{"ld-linux*", "ld64.so.*", "ld.so.1", "ld-2.*"},
		Markers: regexp.MustCompile(`^/(usr/)?lib(32|64|x32)?/([^/]+-linux-gnu[^/]*/)?` +
			`(ld-linux[^/]*\.so\.[0-9]+|ld64\.so\.[0-9]+|libc\.so\.6|libc-2\.[0-9]+\.so|ld-2\.[0-9]+\.so)$`),
		VersionInName:    regexp.MustCompile(`^(?:libc|ld)-(2\.[0-9]+)\.so$`),
		VersionInContent: regexp.MustCompile(`release version (2\.[0-9]+)`),
		// csu/abi-note.S: every glibc program's crt1.o carries it ("for GNU/Linux 3.2.0").
		StaticNotes: []Telltale{{What: ".note.ABI-tag", Name: "GNU", Type: 1}},
		StaticStrings: []Telltale{
			{What: "GLIBC_TUNABLES", Bytes: "\x00GLIBC_TUNABLES\x00"},
			{What: `"Fatal glibc error"`, Bytes: "Fatal glibc error: "},
		},
	},
	{
		Libc:    Musl,
		Aliases: []string{"alpine"},
		Source:  "musl src/network/resolvconf.c, src/network/res_msend.c",
		Options: []Option{{Name: "ndots"}, {Name: "timeout"}, {Name: "attempts"}},
		// Every query of a lookup leaves from one socket.
		Retry: Retry{Model: RetrySpread, Timeout: Limit{5, 0, 60}, Attempts: Limit{2, 1, 10}, SharedSocket: true,
			How: "timeout is the whole lookup; all nameservers in parallel, unanswered queries resent every timeout/attempts"},
		Ignored: "musl reads only ndots, timeout and attempts; use NodeLocal DNSCache or a glibc-based image if you need this behaviour",
		Advice: []PrefixAdvice{{"single-request", "musl always sends A and AAAA in parallel; keep timeout/attempts short " +
			"(musl retransmits every timeout/attempts), run NodeLocal DNSCache to avoid the conntrack race, or use a glibc-based image"}},
		Loaders: []Loader{
			{"386", "/lib/ld-musl-i386.so.1"},
			{"amd64", "/lib/ld-musl-x86_64.so.1"},
			{"arm", "/lib/ld-musl-armhf.so.1"},
			{"arm64", "/lib/ld-musl-aarch64.so.1"},
			{"loong64", "/lib/ld-musl-loongarch64.so.1"},
			{"mips", "/lib/ld-musl-mips.so.1"},
			{"mipsle", "/lib/ld-musl-mipsel.so.1"},
			{"mips64", "/lib/ld-musl-mips64.so.1"},
			{"ppc64", "/lib/ld-musl-powerpc64.so.1"},
			{"ppc64le", "/lib/ld-musl-powerpc64le.so.1"},
			{"riscv64", "/lib/ld-musl-riscv64.so.1"},
			{"s390x", "/lib/ld-musl-s390x.so.1"},
		},
		LoaderNames: []string{"ld-musl-*"},
		Markers:     regexp.MustCompile(`^/(usr/)?lib/ld-musl-[^/]+\.so\.1$`),
		// The loader is libc.so; src/internal/version.c puts VERSION there as a lone string
		// ("1.2.5", or "1.2.5_git…" in snapshots), printed by `ld-musl-* --version`.
		VersionInContent: regexp.MustCompile(`\x00(1\.[0-9]{1,2}\.[0-9]{1,3})(?:[_+~.-][0-9A-Za-z._+~-]{0,40})?\x00`),
		// musl adds no note. Its strerror table (src/errno/__strerror.h) and the options
		// src/network/resolvconf.c reads, in its order (glibc reads timeout before attempts),
		// are linked into any program that prints an errno or resolves a name: Rust's std,
		// musl-gcc -static, Zig with -lc.
		StaticStrings: []Telltale{
			{What: `strerror "No error information"`, Bytes: "\x00No error information\x00"},
			{What: `resolv.conf options "ndots:", "attempts:", "timeout:"`, Bytes: "\x00ndots:\x00attempts:\x00timeout:\x00"},
		},
	},
	{
		Libc:    Go,
		Aliases: []string{"golang"},
		Source:  "Go src/net/dnsconfig_unix.go, src/net/dnsclient_unix.go",
		Options: []Option{{Name: "ndots"}, {Name: "timeout"}, {Name: "attempts"}, {Name: "rotate"},
			{Name: "single-request"}, {Name: "single-request-reopen"}, {Name: "use-vc"}, {Name: "usevc"},
			{Name: "tcp"}, {Name: "trust-ad"}, {Name: "edns0"}, {Name: "no-reload"}},
		Retry: Retry{Model: RetryPerTry, Timeout: Limit{5, 1, 0}, Attempts: Limit{2, 1, 0},
			How: "timeout per try per nameserver, attempts rounds; every query on its own socket"},
		Ignored: "Go's resolver ignores it (one socket per query, so the A/AAAA race does not apply); " +
			"in a cgo build an option Go does not know makes it use libc's resolver instead",
	},
	{Libc: Static}, // a static binary that is not Go and shows no libc telltale: its resolver is unknown
	{Libc: Unknown},
}

var byLibc = func() map[Libc]*Knowledge {
	m := make(map[Libc]*Knowledge, len(Table))
	for i := range Table {
		m[Table[i].Libc] = &Table[i]
	}
	return m
}()

// About returns what is known of a libc; the zero Knowledge for one not in Table.
func About(l Libc) Knowledge {
	if k := byLibc[l]; k != nil {
		return *k
	}
	return Knowledge{Libc: l}
}

// option returns the option's entry, if the resolver reads it at some version.
func (k *Knowledge) option(name string) (Option, bool) {
	for _, o := range k.Options {
		if o.Name == name {
			return o, true
		}
	}
	return Option{}, false
}

// Honours reports whether a libc's resolver reads an option. known is false where dns-tuner
// cannot tell (static non-Go binaries, unknown libc). version is the libc version when known
// ("2.36"); an option newer than it is not honoured.
func Honours(l Libc, option, version string) (honours, known bool) {
	k := byLibc[l]
	if k == nil || k.Options == nil {
		return false, false
	}
	o, ok := k.option(option)
	if !ok {
		return false, true
	}
	if version != "" && o.Since != "" && versionLess(version, o.Since) {
		return false, true
	}
	return true, true
}

// Advice says what to do instead when a libc ignores an option.
func Advice(l Libc, option string) string {
	k := byLibc[l]
	if k == nil {
		return ""
	}
	if o, ok := k.option(option); ok && o.Since != "" {
		return "needs " + string(l) + " " + o.Since + " or newer; upgrade the base image"
	}
	for _, a := range k.Advice {
		if strings.HasPrefix(option, a.Prefix) {
			return a.Text
		}
	}
	return k.Ignored
}

// versionLess reports whether v ("2.31", "2.35-0ubuntu3") is older than min ("2.36"),
// comparing major and minor. A version it cannot read is not older.
func versionLess(v, min string) bool {
	maj, mnr, ok := majorMinor(v)
	minMaj, minMnr, ok2 := majorMinor(min)
	if !ok || !ok2 {
		return false
	}
	return maj < minMaj || (maj == minMaj && mnr < minMnr)
}

func majorMinor(v string) (maj, mnr int, ok bool) {
	parts := strings.SplitN(v, ".", 3)
	if len(parts) < 2 {
		return 0, 0, false
	}
	maj, err1 := strconv.Atoi(parts[0])
	mnr, err2 := strconv.Atoi(strings.TrimFunc(parts[1], func(r rune) bool { return r < '0' || r > '9' }))
	return maj, mnr, err1 == nil && err2 == nil
}

// ByLoader maps a PT_INTERP to its libc by the loader's file name; Unknown when no libc in
// Table has a loader of that name.
func ByLoader(interp string) Libc {
	b := path.Base(interp)
	for _, k := range Table {
		for _, pat := range k.LoaderNames {
			if ok, _ := path.Match(pat, b); ok {
				return k.Libc
			}
		}
	}
	return Unknown
}
