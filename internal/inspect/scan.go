package inspect

import (
	"archive/tar"
	"bufio"
	"bytes"
	"compress/gzip"
	"errors"
	"fmt"
	"io"
	"path"
	"regexp"
	"sort"
	"strings"

	"github.com/klauspost/compress/zstd"

	"github.com/dns-tuner/dns-tuner/internal/libc"
)

const (
	maxEntries    = 250_000 // filesystem entries indexed per image (~40 MiB worst case)
	maxScripts    = 8       // #! interpreters, wrappers and shells followed
	maxReleaseLen = 4 << 10 // os-release, alpine-release
	maxVersionLen = 8 << 20 // glibc loader/libc bytes scanned for the release version
)

const defaultPath = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

// errDecided ends a layer walk early.
var errDecided = errors.New("decided")

// scanner walks an image's layers newest first and decides its libc.
type scanner struct {
	ix      *fsIndex
	m       *meter
	digests []string // layer digests, manifest order (0 = base)
	pathVar string
	pathEnv []string
	workdir string

	// The program being looked for and how we got to it.
	argv        []string // what runs: argv[0] is label
	label       string   // as written: "python3", "/entrypoint.sh"
	candidates  []string // absolute paths, PATH order
	prefix      string   // evidence so far (scripts, wrappers and shells followed)
	notFollowed string   // why label, a wrapper or shell, was not followed
	scripts     int
	touched     map[string]bool

	verdict  *libc.Verdict // entrypoint tier's result
	static   bool          // the verdict is a static binary's: the base's version is not its
	entryErr string        // why the entrypoint tier gave up ("" while still trying)
	head     []byte
	bufs     contentBufs
}

// newScanner starts with the image's env and working directory; pathEnv, when set, is the
// container's own PATH (the pod's env), which replaces the image's.
func newScanner(m *meter, digests []string, env []string, workdir, pathEnv string) *scanner {
	s := &scanner{ix: newIndex(maxEntries), m: m, digests: digests, workdir: "/",
		head: make([]byte, headSize), touched: map[string]bool{}}
	if workdir != "" {
		s.workdir = path.Clean("/" + workdir)
	}
	pathVar := defaultPath
	for _, e := range env {
		if v, ok := strings.CutPrefix(e, "PATH="); ok {
			pathVar = v
		}
	}
	if pathEnv != "" {
		pathVar = pathEnv
	}
	s.setPath(pathVar)
	return s
}

func (s *scanner) setPath(v string) {
	s.pathVar, s.pathEnv = v, strings.Split(v, ":")
}

// setArgv makes argv what runs, following wrappers and shells by name to the program they
// start (no file is read for that); the first program that is neither is looked for.
func (s *scanner) setArgv(argv []string) {
	s.notFollowed = ""
	for len(argv) > 0 {
		h, ok, err := follow(argv, s.workdir, s.pathVar)
		if !ok {
			break
		}
		if err == nil && s.scripts >= maxScripts {
			err = fmt.Errorf("more than %d scripts and wrappers", maxScripts)
		}
		if err != nil {
			s.notFollowed = err.Error()
			break
		}
		s.scripts++
		s.apply(h)
		argv = h.argv
	}
	s.argv = argv
	if len(argv) == 0 || argv[0] == "" {
		s.fail("no program to run")
		return
	}
	s.setTarget(argv[0])
}

func (s *scanner) apply(h hop) {
	s.prefix += h.note + " → "
	if h.path != "" {
		s.setPath(h.path)
	}
	if h.dir != "" {
		s.workdir = path.Join(s.workdir, h.dir)
		if path.IsAbs(h.dir) {
			s.workdir = path.Clean(h.dir)
		}
	}
}

// setTarget makes prog (argv[0] or an interpreter) the file to find, resolved as the runtime
// does: a name with a slash against the working directory, a bare name through PATH.
func (s *scanner) setTarget(prog string) {
	s.label = prog
	s.candidates = s.candidates[:0]
	if strings.Contains(prog, "/") {
		s.candidates = append(s.candidates, path.Join(s.workdir, prog))
		if path.IsAbs(prog) {
			s.candidates[0] = path.Clean(prog)
		}
		return
	}
	for _, d := range s.pathEnv {
		if !path.IsAbs(d) {
			d = path.Join(s.workdir, d) // "" and relative PATH entries are relative to the cwd
		}
		s.candidates = append(s.candidates, path.Join(d, prog))
	}
}

func (s *scanner) done() bool { return s.verdict != nil }

func (s *scanner) layerName(l int) string { return fmt.Sprintf("layer %d %s", l, s.digests[l]) }

// resolveTarget finds the first PATH candidate present. A candidate earlier in PATH that a
// lower layer might still add is not waited for: that would cost reading the whole image.
func (s *scanner) resolveTarget(cur int) resolution {
	clear(s.touched)
	touch := func(p string) { s.touched[p] = true }
	allAbsent := true
	var first resolution
	for i, c := range s.candidates {
		r := s.ix.resolve(c, cur, touch)
		if r.state == found {
			return r
		}
		if r.state == pending {
			allAbsent = false
		}
		if i == 0 {
			first = r
		}
	}
	if allAbsent {
		return resolution{state: absent, path: first.path, why: first.why}
	}
	return resolution{state: pending}
}

func (s *scanner) fail(why string) {
	s.entryErr = s.prefix + why
}

// check advances the entrypoint tier after the filesystem changed at a touched path (or a
// layer ended).
func (s *scanner) check(cur int) {
	for s.entryErr == "" && s.verdict == nil && s.label != "" {
		res := s.resolveTarget(cur)
		switch res.state {
		case pending:
			return
		case absent:
			msg := fmt.Sprintf("entrypoint %s not found in the image", s.label)
			if res.why != "not found" {
				msg += " (" + res.path + ": " + res.why + ")"
			}
			s.fail(msg)
			return
		}
		n := res.node
		at := res.path
		if len(res.via) > 0 {
			at = fmt.Sprintf("%s (via %s)", res.path, strings.Join(res.via, ", "))
		}
		where := fmt.Sprintf("%s (%s)", at, s.layerName(n.layer))
		if n.sum == nil {
			s.fail(where + ": not an ELF executable or #! script")
			return
		}
		sum := n.sum
		if sum.kind == sumDynamic || sum.kind == sumStatic {
			// A wrapper reached under another name (/entrypoint -> /usr/bin/tini).
			if name := wrapperName(res.path); name != "" && wrapperName(s.label) == "" && !shells[name] && name != "busybox" {
				if h, ok, err := follow(append([]string{res.path}, s.argv[1:]...), s.workdir, s.pathVar); ok && err == nil && s.scripts < maxScripts {
					s.scripts++
					h.note = where
					s.apply(h)
					s.setArgv(h.argv)
					continue
				}
			}
		}
		switch sum.kind {
		case sumScript:
			argv := shebangArgv(sum.shebang, res.path, s.argv[1:])
			if s.scripts++; s.scripts > maxScripts || argv == nil {
				s.fail(fmt.Sprintf("%s: #!%s: interpreter not followed", where, sum.shebang))
				return
			}
			s.prefix += fmt.Sprintf("%s: #!%s; ", where, sum.shebang)
			s.setArgv(argv)
			continue
		case sumDynamic:
			l := interpLibc(sum.interp)
			if l == libc.Unknown {
				s.fail(fmt.Sprintf("%s: PT_INTERP %s is not a known loader", where, sum.interp))
				return
			}
			v := libc.Verdict{Libc: l, Source: libc.SourceEntrypoint}
			what := "PT_INTERP " + sum.interp
			if sum.goNote {
				cgo, netgo, desc := true, false, ""
				if sum.goinfo != nil {
					var c *bool
					c, netgo, desc = goSettings(sum.goinfo)
					cgo = c == nil || *c
				}
				v.CGO = &cgo
				switch {
				case sum.goinfo == nil:
					what = "go (cgo; build settings not read: " + sum.goErr + "), " + what
				case !cgo || netgo:
					// Go's own resolver: a PIE built with CGO_ENABLED=0, or the netgo tag.
					v.Libc = libc.Go
					what = "dynamic Go binary, build info " + strings.TrimSpace(desc) + ", " + what
				default:
					what = "go (cgo), build info " + strings.TrimSpace(desc) + ", " + what
				}
			}
			s.decide(v, where, what)
		case sumStatic:
			switch {
			case sum.goinfo != nil:
				cgo, netgo, desc := goSettings(sum.goinfo)
				v := libc.Verdict{Libc: libc.Go, Source: libc.SourceEntrypoint, CGO: cgo}
				what := "static Go binary, build info " + strings.TrimSpace(desc)
				if netgo {
					what += " (netgo resolver)"
				}
				s.decide(v, where, what)
			case sum.goNote:
				what := "static Go binary (Go build-ID note; build settings not read"
				if sum.goErr != "" {
					what += ": " + sum.goErr
				}
				s.decide(libc.Verdict{Libc: libc.Go, Source: libc.SourceEntrypoint}, where, what+")")
			case sum.staticLibc != "":
				s.static = true
				s.decide(libc.Verdict{Libc: sum.staticLibc, Source: libc.SourceEntrypoint}, where,
					fmt.Sprintf("static ELF, no PT_INTERP; %s %s", sum.staticLibc, sum.telltale))
			default:
				s.static = true
				what := "static ELF, no PT_INTERP, not Go"
				if sum.scanned > 0 {
					what += fmt.Sprintf(", no libc telltale in its first %s", sizeStr(int(sum.scanned)))
				}
				s.decide(libc.Verdict{Libc: libc.Static, Source: libc.SourceEntrypoint}, where, what)
			}
		default:
			s.fail(where + ": " + sum.err)
		}
		return
	}
}

// shebangArgv is what the kernel runs for a script: the interpreter, the rest of the #! line
// as one argument, the script, its arguments. For env the rest is split into words, as
// `env -S` and BSD kernels do (Linux would pass "-i LANG=C bash" whole, and env would fail).
func shebangArgv(shebang, script string, args []string) []string {
	interp, arg, _ := strings.Cut(strings.TrimSpace(shebang), " ")
	if interp == "" {
		return nil
	}
	argv := []string{interp}
	if path.Base(interp) == "env" {
		argv = append(argv, strings.Fields(arg)...)
	} else if arg = strings.TrimSpace(arg); arg != "" {
		argv = append(argv, arg)
	}
	return append(append(argv, script), args...)
}

func (s *scanner) decide(v libc.Verdict, where, what string) {
	v.Evidence = s.prefix + where + ": " + what
	if s.notFollowed != "" {
		v.Evidence += "; not followed: " + s.notFollowed
	}
	s.verdict = &v
}

// scanLayer streams one layer (index l) and returns errDecided once the entrypoint is decided.
func (s *scanner) scanLayer(l int, compressed io.Reader) error {
	s.check(l) // an opaque dir or whiteout in the layer above may have settled it
	if s.done() {
		return errDecided
	}
	br := bufio.NewReaderSize(&capped{r: compressed, count: &s.m.read, over: s.m.overBytes}, 32<<10)
	var dec io.Reader
	magic, _ := br.Peek(4)
	switch {
	case bytes.HasPrefix(magic, []byte{0x1f, 0x8b}):
		gz, err := gzip.NewReader(br)
		if err != nil {
			return &Error{Kind: KindBadResponse, Err: err}
		}
		defer gz.Close()
		dec = gz
	case bytes.Equal(magic, []byte{0x28, 0xb5, 0x2f, 0xfd}):
		zr, err := zstd.NewReader(br, zstd.WithDecoderConcurrency(1), zstd.WithDecoderLowmem(true),
			zstd.WithDecoderMaxWindow(32<<20))
		if err != nil {
			return &Error{Kind: KindBadResponse, Err: err}
		}
		defer zr.Close()
		dec = zr
	default:
		dec = br // uncompressed tar
	}
	ur := &capped{r: dec, count: &s.m.unc, over: s.m.overUncompressed}
	tr := tar.NewReader(ur)
	for {
		h, err := tr.Next()
		if errors.Is(err, io.EOF) {
			// Read to the blob's end so its digest is verified: a layer read in full must be
			// the one the manifest names. Only tar padding and the compression trailer remain.
			_, err = io.Copy(io.Discard, ur)
			return err
		}
		if err != nil {
			return err
		}
		n, err := s.ix.add(h, l)
		if err != nil {
			return err
		}
		var head []byte
		if n != nil && n.typ == nFile && h.Size > 0 {
			head = s.head[:min(h.Size, headSize)]
			if _, err := io.ReadFull(tr, head); err != nil {
				return err
			}
			n.sum = summarize(head)
			marker, err := s.noteMarker(clean(h.Name), n, head, tr)
			if err != nil {
				return err
			}
			if !marker && n.sum != nil && h.Mode&0o111 != 0 && n.sum.wantsContent() {
				if err := n.sum.readContent(tr, head, h.Size, &s.bufs, s.m.nearCap); err != nil {
					return err
				}
			}
		}
		if key := touchKey(h.Name); s.touched[key] {
			s.check(l)
			if s.done() {
				return errDecided
			}
		}
	}
}

// touchKey is the path a tar entry changes: the entry's, or the whited-out one.
func touchKey(name string) string {
	p := clean(name)
	dir, base := path.Split(p)
	if t, ok := strings.CutPrefix(base, ".wh."); ok && t != ".wh..opq" {
		return path.Join(dir, t)
	}
	return p
}

// Base markers and version probes come from libc.Table; release files name the distro.
var (
	muslLoaderRE  = libc.About(libc.Musl).Markers
	glibcRE       = libc.About(libc.GLibc).Markers
	releaseFileRE = regexp.MustCompile(`^/(etc/alpine-release|etc/os-release|usr/lib/os-release)$`)
)

// noteMarker keeps the little a base marker needs: release files' text, a libc's version
// from its loader or libc file (scanned while the bytes stream past anyway; no extra reads).
// marker is true when p is a libc's marker file.
func (s *scanner) noteMarker(p string, n *node, head []byte, r io.Reader) (marker bool, err error) {
	if releaseFileRE.MatchString(p) {
		n.text = string(head[:min(len(head), maxReleaseLen)])
		return false, nil
	}
	for _, k := range libc.Table {
		if k.Markers == nil || !k.Markers.MatchString(p) {
			continue
		}
		if k.VersionInName != nil {
			if m := k.VersionInName.FindStringSubmatch(path.Base(p)); m != nil {
				n.ver = m[1]
				return true, nil
			}
		}
		if k.VersionInContent != nil {
			n.ver, err = scanVersion(k.VersionInContent, head, r)
		}
		return true, err
	}
	return false, nil
}

// scanVersion finds re's group 1 in the file r streams (after head), up to maxVersionLen,
// in chunks that overlap so a match across two is not missed.
func scanVersion(re *regexp.Regexp, head []byte, r io.Reader) (string, error) {
	buf := make([]byte, 0, 64<<10)
	buf = append(buf, head...)
	left := int64(maxVersionLen)
	for {
		if m := re.FindSubmatch(buf); m != nil {
			return string(m[1]), nil
		}
		if len(buf) > 64 {
			buf = append(buf[:0], buf[len(buf)-64:]...)
		}
		if left <= 0 {
			return "", nil
		}
		k, err := io.ReadFull(r, buf[len(buf):cap(buf)][:min(int64(cap(buf)-len(buf)), left)])
		left -= int64(k)
		buf = buf[:len(buf)+k]
		if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
			if m := re.FindSubmatch(buf); m != nil {
				return string(m[1]), nil
			}
			return "", nil
		}
		if err != nil {
			return "", err
		}
	}
}

// base decides from the image's base markers once every layer has been read.
func (s *scanner) base() libc.Verdict {
	nop := func(string) {}
	var musl, glibc []string
	var version, muslVersion, distro, distroID string
	keys := make([]string, 0, len(s.ix.nodes))
	for p := range s.ix.nodes {
		keys = append(keys, p)
	}
	sort.Strings(keys)
	for _, p := range keys {
		isMusl, isGlibc := muslLoaderRE.MatchString(p), glibcRE.MatchString(p)
		if !isMusl && !isGlibc && !releaseFileRE.MatchString(p) {
			continue
		}
		r := s.ix.resolve(p, -1, nop) // whiteouts, opaque dirs and dangling symlinks count
		if r.state != found {
			continue
		}
		ev := fmt.Sprintf("%s (%s)", p, s.layerName(r.node.layer))
		switch {
		case isMusl:
			musl = append(musl, ev)
			if muslVersion == "" {
				muslVersion = r.node.ver
			}
		case isGlibc:
			glibc = append(glibc, ev)
			if version == "" {
				version = r.node.ver
			}
		case p == "/etc/alpine-release":
			if distro == "" {
				distro, distroID = "alpine "+strings.TrimSpace(r.node.text), "alpine"
			}
		default:
			id, pretty := osRelease(r.node.text)
			if distro == "" {
				distro, distroID = pretty, id
			}
		}
	}
	v := libc.Verdict{Libc: libc.Unknown, Source: libc.SourceNone}
	with := ""
	if distro != "" {
		with = "; " + distro
	}
	switch {
	case len(musl) > 0 && len(glibc) == 0:
		v.Libc, v.Source, v.Evidence, v.Version = libc.Musl, libc.SourceBase, "musl loader "+strings.Join(musl, ", ")+with, muslVersion
	case len(glibc) > 0 && len(musl) == 0:
		v.Libc, v.Source, v.Evidence, v.Version = libc.GLibc, libc.SourceBase, "glibc "+strings.Join(glibc, ", ")+with, version
	case len(glibc) > 0 && distroID == "alpine":
		v.Libc, v.Source, v.Evidence, v.Version = libc.Musl, libc.SourceBase, "musl loader "+strings.Join(musl, ", ")+" and glibc compatibility files on "+distro, muslVersion
	case len(glibc) > 0 && distroID != "":
		v.Libc, v.Source, v.Evidence, v.Version = libc.GLibc, libc.SourceBase, "glibc "+strings.Join(glibc, ", ")+" and musl loader on "+distro, version
	case len(glibc) > 0:
		v.Reason = "both musl (" + strings.Join(musl, ", ") + ") and glibc (" + strings.Join(glibc, ", ") + ") present and no os-release to choose"
	default:
		v.Reason = "no libc loader in the image" + with
	}
	return v
}

// osRelease returns ID and PRETTY_NAME (or NAME VERSION_ID) of an os-release file.
func osRelease(text string) (id, pretty string) {
	kv := map[string]string{}
	for _, line := range strings.Split(text, "\n") {
		if k, v, ok := strings.Cut(strings.TrimSpace(line), "="); ok {
			kv[k] = strings.Trim(v, `"'`)
		}
	}
	pretty = kv["PRETTY_NAME"]
	if pretty == "" {
		pretty = strings.TrimSpace(kv["NAME"] + " " + kv["VERSION_ID"])
	}
	return kv["ID"], pretty
}
