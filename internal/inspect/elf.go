package inspect

import (
	"bytes"
	"debug/buildinfo"
	"debug/elf"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
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
	dataOff int64  // file range of the first writable PT_LOAD (Go build info lives there)
	dataLen int64
	shebang string
	err     string
	goinfo  *buildinfo.BuildInfo
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
	s := &summary{kind: sumStatic}
	for _, p := range f.Progs {
		switch p.Type {
		case elf.PT_INTERP:
			b, err := io.ReadAll(io.LimitReader(p.Open(), 4096))
			if err != nil {
				return &summary{kind: sumOther, err: "PT_INTERP unreadable: " + err.Error()}
			}
			s.kind, s.interp = sumDynamic, strings.TrimRight(string(b), "\x00")
		case elf.PT_NOTE:
			if b, err := io.ReadAll(io.LimitReader(p.Open(), 4096)); err == nil && hasGoNote(b, f.ByteOrder) {
				s.goNote = true
			}
		case elf.PT_LOAD:
			if s.dataLen == 0 && p.Flags&(elf.PF_X|elf.PF_W) == elf.PF_W {
				s.dataOff, s.dataLen = int64(p.Off), int64(p.Filesz)
			}
		}
	}
	if f.Type != elf.ET_EXEC && f.Type != elf.ET_DYN {
		return &summary{kind: sumOther, err: "ELF type " + f.Type.String() + " is not executable"}
	}
	return s
}

// hasGoNote looks for the Go linker's build-ID note (name "Go", type 4).
func hasGoNote(b []byte, bo binary.ByteOrder) bool {
	for len(b) >= 12 {
		namesz, descsz, typ := bo.Uint32(b), bo.Uint32(b[4:]), bo.Uint32(b[8:])
		b = b[12:]
		nlen, dlen := int(align4(namesz)), int(align4(descsz))
		if nlen < 0 || dlen < 0 || nlen+dlen > len(b) {
			return false
		}
		if typ == 4 && (namesz == 3 || namesz == 4) && string(b[:3]) == "Go\x00" { // the Go linker pads the name to 4
			return true
		}
		b = b[nlen+dlen:]
	}
	return false
}

func align4(n uint32) uint32 { return (n + 3) &^ 3 }

// wantsGoWindow reports whether the data window is worth reading for this positioned file.
func (s *summary) wantsGoWindow(size int64) bool {
	return s.kind == sumStatic && s.dataLen > 0 && s.dataOff < size &&
		(s.goNote || s.dataOff <= maxGoDataOffset)
}

// readGoInfo reads the build info from the start of the first writable segment. r is
// positioned just after head.
func (s *summary) readGoInfo(r io.Reader, head []byte) error {
	headLen := int64(len(head))
	want := min(goWindow, s.dataLen)
	var win []byte
	if s.dataOff < headLen { // small binary: the segment starts inside the head
		win = append(win, head[s.dataOff:min(headLen, s.dataOff+want)]...)
	} else if _, err := io.CopyN(io.Discard, r, s.dataOff-headLen); err != nil {
		return err
	}
	rest := make([]byte, want-int64(len(win)))
	n, err := io.ReadFull(r, rest)
	if err != nil && !errors.Is(err, io.ErrUnexpectedEOF) && !errors.Is(err, io.EOF) {
		return err
	}
	win = append(win, rest[:n]...)
	// The window comes first so that reads inside it are not cut at the head's end.
	bi, err := buildinfo.Read(&sparse{parts: []part{{s.dataOff, win}, {0, headOnly(head)}}})
	if err != nil {
		return err
	}
	s.goinfo = bi
	return nil
}

// sparse is an io.ReaderAt over the parts of a file actually read.
type sparse struct{ parts []part }

type part struct {
	off int64
	b   []byte
}

func (s *sparse) ReadAt(p []byte, off int64) (int, error) {
	for _, pt := range s.parts {
		if off >= pt.off && off < pt.off+int64(len(pt.b)) {
			n := copy(p, pt.b[off-pt.off:])
			if n < len(p) {
				return n, io.EOF
			}
			return n, nil
		}
	}
	return 0, io.EOF
}

// interpLibc maps a PT_INTERP to its libc by the loader's name, for every architecture
// (libc.Table's loader names).
func interpLibc(interp string) libc.Libc { return libc.ByLoader(interp) }

// goSettings describes the resolver-relevant build settings.
func goSettings(bi *buildinfo.BuildInfo) (cgo *bool, netgo bool, desc string) {
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

func sizeStr(n int) string { return fmt.Sprintf("%d KiB", n>>10) }
