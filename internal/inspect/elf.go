package inspect

import (
	"bytes"
	"debug/elf"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"runtime/debug"
	"strings"

	"github.com/dns-tuner/dns-tuner/internal/libc"
)

const (
	// headSize is what is kept of every file that starts like an ELF or a script: enough for
	// the ELF and program headers, PT_INTERP and the Go build-ID note, which linkers put first.
	headSize = 16 << 10
	// goWindow is how much of a static Go binary's first writable segment is read for the
	// build info, which the Go linker puts at the segment's start.
	goWindow = 256 << 10
	// maxGoDataOffset bounds how far into a static ELF without a Go note we read looking for
	// build info anyway (Go binaries built with -buildid= have no note).
	maxGoDataOffset = 8 << 20
	// maxStaticScan bounds how much of a static executable is searched for libc telltales,
	// as it streams past (a layer is decompressed through its files anyway).
	maxStaticScan = 32 << 20
	maxRWSegments = 3 // writable segments whose start may hold Go build info (PIE: the second)
)

type sumKind uint8

const (
	sumOther sumKind = iota
	sumScript
	sumDynamic
	sumStatic
)

// summary is what one file's head proves, kept for every ELF and script seen so that a
// symlink resolved later to an already-passed file needs no second read.
type summary struct {
	kind    sumKind
	interp  string // PT_INTERP
	goNote  bool   // ELF note "Go"/4: built by the Go linker
	entry   bool   // has an entry point (an executable, not a shared library)
	rw      []part // file ranges (off, len(b) unused) of the first writable PT_LOADs
	shebang string
	err     string
	goinfo  *debug.BuildInfo
	goErr   string // why Go build info was not read

	// For a static ELF: the libc a telltale shows (note in the head, or string in the
	// content), what the telltale is, and how much was searched.
	staticLibc libc.Libc
	telltale   string
	scanned    int64
}

func summarize(head []byte) *summary {
	switch {
	case bytes.HasPrefix(head, []byte("#!")):
		line := head[2:]
		if i := bytes.IndexByte(line, '\n'); i >= 0 {
			line = line[:i]
		} else if len(line) > 256 {
			line = line[:256]
		}
		return &summary{kind: sumScript, shebang: strings.TrimSpace(string(line))}
	case bytes.HasPrefix(head, []byte(elf.ELFMAG)):
		return summarizeELF(head)
	}
	return nil
}

// headOnly returns a copy of an ELF head with the section header table removed, so that
// debug/elf reads only the program headers, which are in the head.
func headOnly(head []byte) []byte {
	h := bytes.Clone(head)
	if len(h) < 64 {
		return h
	}
	switch elf.Class(h[elf.EI_CLASS]) {
	case elf.ELFCLASS64:
		clear(h[0x28:0x30]) // e_shoff
		clear(h[0x3c:0x40]) // e_shnum, e_shstrndx
	case elf.ELFCLASS32:
		clear(h[0x20:0x24])
		clear(h[0x30:0x34])
	}
	return h
}

func summarizeELF(head []byte) *summary {
	h := headOnly(head)
	f, err := elf.NewFile(bytes.NewReader(h))
	if err != nil {
		return &summary{kind: sumOther, err: "ELF headers unreadable in the first " + sizeStr(headSize) + ": " + err.Error()}
	}
	s := &summary{kind: sumStatic, entry: f.Entry != 0}
	var notes [][]byte
	for _, p := range f.Progs {
		switch p.Type {
		case elf.PT_INTERP:
			b, err := io.ReadAll(io.LimitReader(p.Open(), 4096))
			if err != nil {
				return &summary{kind: sumOther, err: "PT_INTERP unreadable: " + err.Error()}
			}
			s.kind, s.interp = sumDynamic, strings.TrimRight(string(b), "\x00")
		case elf.PT_NOTE:
			if b, err := io.ReadAll(io.LimitReader(p.Open(), 4096)); err == nil {
				notes = append(notes, b)
			}
		case elf.PT_LOAD:
			if len(s.rw) < maxRWSegments && p.Filesz > 0 && p.Flags&(elf.PF_X|elf.PF_W) == elf.PF_W {
				s.rw = append(s.rw, part{off: int64(p.Off), n: int64(p.Filesz)})
			}
		}
	}
	for _, b := range notes {
		eachNote(b, f.ByteOrder, func(name string, typ uint32) {
			if typ == 4 && name == "Go" {
				s.goNote = true
			}
			if s.kind == sumStatic && s.staticLibc == "" {
				for _, t := range staticNotes {
					if t.Name == name && t.Type == typ {
						s.staticLibc, s.telltale = t.libc, t.What
					}
				}
			}
		})
	}
	if f.Type != elf.ET_EXEC && f.Type != elf.ET_DYN {
		return &summary{kind: sumOther, err: "ELF type " + f.Type.String() + " is not executable"}
	}
	return s
}

// eachNote calls fn with the name (NUL padding removed) and type of every ELF note in b.
func eachNote(b []byte, bo binary.ByteOrder, fn func(name string, typ uint32)) {
	for len(b) >= 12 {
		namesz, descsz, typ := bo.Uint32(b), bo.Uint32(b[4:]), bo.Uint32(b[8:])
		b = b[12:]
		nlen, dlen := align4(namesz), align4(descsz)
		if nlen+dlen > uint64(len(b)) || uint64(namesz) > nlen {
			return
		}
		fn(strings.TrimRight(string(b[:namesz]), "\x00"), typ) // the Go linker pads "Go" to 4
		b = b[nlen+dlen:]
	}
}

// telltale is a libc.Telltale with its libc.
type telltale struct {
	libc.Telltale
	libc libc.Libc
}

// staticNotes and staticStrings are every libc's telltales, from libc.Table.
var staticNotes, staticStrings = func() (notes, strs []telltale) {
	for _, k := range libc.Table {
		for _, t := range k.StaticNotes {
			notes = append(notes, telltale{t, k.Libc})
		}
		for _, t := range k.StaticStrings {
			strs = append(strs, telltale{t, k.Libc})
		}
	}
	return notes, strs
}()

const maxTelltale = 128 // longest telltale string; chunks overlap by this much

func align4(n uint32) uint64 { return (uint64(n) + 3) &^ 3 }

// wantsContent reports whether an executable's content past the head is read as it streams
// past: a static one's for Go build info or libc telltales, a dynamic Go one's for its build
// settings (a PIE built with CGO_ENABLED=0 uses Go's resolver).
func (s *summary) wantsContent() bool {
	switch s.kind {
	case sumDynamic:
		return s.goNote
	case sumStatic:
		return s.entry || s.goNote
	}
	return false
}

// readContent reads a file of size bytes, positioned after head, as far as it needs: the start
// of its writable segments for Go build info, and for a static non-Go file up to
// maxStaticScan bytes for a libc telltale. Memory is bounded by the windows and one chunk.
// It stops early, leaving what it did not find unknown, once stop says the budget is nearly
// spent.
func (s *summary) readContent(r io.Reader, head []byte, size int64, bufs *contentBufs, stop func() bool) error {
	// Without a Go note, Go build info is looked for only in a static ELF no libc note claims
	// (Go built with -buildid= has no note; a libc's note means its resolver, even under cgo).
	wantGo := s.goNote || (s.kind == sumStatic && s.staticLibc == "" && len(s.rw) > 0 && s.rw[0].off <= maxGoDataOffset)
	wantLibc := s.kind == sumStatic && !s.goNote && s.staticLibc == ""
	var wins []part
	goEnd := int64(0)
	if wantGo {
		for _, g := range s.rw {
			if s.kind == sumDynamic && g.off > maxStaticScan {
				// A dynamic Go binary's build info only tells cgo from a CGO_ENABLED=0 PIE; past
				// this much of it the head's verdict (cgo) stands.
				continue
			}
			if n := min(g.n, goWindow, size-g.off); n > 0 {
				k := len(wins)
				if int64(cap(bufs.wins[k])) < n {
					bufs.wins[k] = make([]byte, goWindow)
				}
				wins = append(wins, part{off: g.off, b: bufs.wins[k][:n]})
				goEnd = max(goEnd, g.off+n)
			}
		}
	}
	scanEnd := int64(0)
	if wantLibc {
		scanEnd = min(size, maxStaticScan)
	}
	fill := func(off int64, b []byte) {
		for _, w := range wins {
			if lo, hi := max(off, w.off), min(off+int64(len(b)), w.off+int64(len(w.b))); lo < hi {
				copy(w.b[lo-w.off:], b[lo-off:hi-off])
			}
		}
	}
	fill(0, head)
	search := func(b []byte) {
		for _, t := range staticStrings {
			if bytes.Contains(b, []byte(t.Bytes)) {
				s.staticLibc, s.telltale = t.libc, t.What
				return
			}
		}
	}
	if wantLibc {
		search(head)
	}
	pos := int64(len(head))
	if bufs.chunk == nil {
		bufs.chunk = make([]byte, 0, 64<<10)
	}
	buf := append(bufs.chunk[:0], head[max(0, len(head)-maxTelltale):]...)
	for {
		end := goEnd
		if s.staticLibc == "" {
			end = max(end, scanEnd)
		}
		if pos >= end {
			break
		}
		if stop() {
			s.goErr = "the inspection's byte budget is nearly spent"
			break
		}
		keep := len(buf)
		n, err := io.ReadFull(r, buf[keep:cap(buf)][:min(int64(cap(buf)-keep), end-pos)])
		buf = buf[:keep+n]
		fill(pos, buf[keep:])
		if s.staticLibc == "" && pos < scanEnd {
			search(buf)
		}
		pos += int64(n)
		buf = append(buf[:0], buf[max(0, len(buf)-maxTelltale):]...)
		if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
			break
		}
		if err != nil {
			return err
		}
	}
	if wantLibc {
		s.scanned = min(pos, scanEnd)
	}
	if wantGo && len(wins) == 0 {
		s.goErr = fmt.Sprintf("build info lies past the first %s", sizeStr(maxStaticScan))
	}
	if wantGo && pos >= goEnd && len(wins) > 0 {
		for _, w := range wins {
			bi, err := findBuildInfo(w.b)
			if err == nil {
				s.goinfo, s.goErr = bi, ""
				break
			}
			s.goErr = err.Error()
		}
	}
	return nil
}

// contentBufs are readContent's buffers, reused from file to file of one inspection.
type contentBufs struct {
	chunk []byte
	wins  [maxRWSegments][]byte
}

var buildInfoMagic = []byte("\xff Go buildinf:")

// findBuildInfo reads Go build info (Go 1.18+ layout, as debug/buildinfo does) from the start
// of a writable segment: a 32-byte header, then the Go version and the module info as
// length-prefixed strings.
func findBuildInfo(b []byte) (*debug.BuildInfo, error) {
	i := bytes.Index(b, buildInfoMagic)
	if i < 0 || len(b)-i < 32 {
		return nil, errors.New("no Go build info")
	}
	if b[i+15]&2 == 0 {
		return nil, errors.New("build info older than Go 1.18")
	}
	str := func(d []byte) (string, []byte, bool) {
		n, k := binary.Uvarint(d)
		if k <= 0 || n > uint64(len(d)-k) {
			return "", nil, false
		}
		return string(d[k : k+int(n)]), d[k+int(n):], true
	}
	vers, rest, ok := str(b[i+32:])
	mod, _, ok2 := str(rest)
	if !ok || !ok2 {
		return nil, errors.New("build info cut short")
	}
	if len(mod) >= 33 && mod[len(mod)-17] == '\n' {
		mod = mod[16 : len(mod)-16] // the sentinels around the module info
	} else {
		mod = ""
	}
	bi, err := debug.ParseBuildInfo(mod)
	if err != nil {
		return nil, err
	}
	bi.GoVersion = vers
	return bi, nil
}

// part is a range of a file: its bytes b, or for a segment just its size n.
type part struct {
	off int64
	b   []byte
	n   int64
}

// interpLibc maps a PT_INTERP to its libc by the loader's name, for every architecture
// (libc.Table's loader names).
func interpLibc(interp string) libc.Libc { return libc.ByLoader(interp) }

// goSettings describes the resolver-relevant build settings.
func goSettings(bi *debug.BuildInfo) (cgo *bool, netgo bool, desc string) {
	var parts []string
	for _, s := range bi.Settings {
		switch s.Key {
		case "CGO_ENABLED":
			v := s.Value == "1"
			cgo = &v
			parts = append(parts, "CGO_ENABLED="+s.Value)
		case "-tags":
			for _, t := range strings.Split(s.Value, ",") {
				if t == "netgo" {
					netgo = true
					parts = append(parts, "netgo")
				}
			}
		}
	}
	return cgo, netgo, bi.GoVersion + " " + strings.Join(parts, " ")
}

func sizeStr(n int) string {
	if n >= 1<<20 && n%(1<<20) == 0 {
		return fmt.Sprintf("%d MiB", n>>20)
	}
	return fmt.Sprintf("%d KiB", n>>10)
}
