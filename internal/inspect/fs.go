package inspect

import (
	"archive/tar"
	"fmt"
	"path"
	"strings"
)

// The merged filesystem as known while reading layers newest first. The first (topmost) entry
// for a path wins; whiteouts and opaque directories hide lower layers. Only metadata and small
// per-file summaries are kept, never file contents.

type nodeType uint8

const (
	nFile nodeType = iota
	nDir
	nSymlink
	nHardlink
	nWhiteout
	nOther
)

type node struct {
	layer int
	typ   nodeType
	link  string // symlink target as written, or hardlink target (cleaned, absolute)
	size  int64
	sum   *summary // ELF or #! facts for regular files that start like one
	text  string   // content of small release files (os-release, alpine-release)
	ver   string   // glibc version found in a loader/libc file's content
}

type fsIndex struct {
	nodes      map[string]*node
	opaque     map[string]int // dir → layer whose ".wh..wh..opq" hides its lower-layer children
	maxEntries int
}

func newIndex(maxEntries int) *fsIndex {
	return &fsIndex{nodes: map[string]*node{}, opaque: map[string]int{}, maxEntries: maxEntries}
}

// clean turns a tar name ("./usr/bin/", "usr/bin") into "/usr/bin".
func clean(name string) string {
	return path.Clean("/" + name)
}

// hidden reports whether layer's entry at p is hidden by an upper layer: a non-directory or
// whiteout at an ancestor, or an opaque ancestor.
func (ix *fsIndex) hidden(p string, layer int) bool {
	for a := path.Dir(p); ; a = path.Dir(a) {
		if n := ix.nodes[a]; n != nil && n.layer > layer && n.typ != nDir {
			return true
		}
		if l, ok := ix.opaque[a]; ok && l > layer {
			return true
		}
		if a == "/" {
			return false
		}
	}
}

// add records a tar header of layer and returns the node when the entry is visible in the
// merged filesystem (nil for whiteouts, shadowed and hidden entries).
func (ix *fsIndex) add(h *tar.Header, layer int) (*node, error) {
	p := clean(h.Name)
	if p == "/" {
		return nil, nil
	}
	dir, base := path.Split(p)
	dir = path.Clean(dir)
	if base == ".wh..wh..opq" {
		if _, ok := ix.opaque[dir]; !ok && !ix.hidden(p, layer) {
			ix.opaque[dir] = layer
		}
		return nil, nil
	}
	if len(ix.nodes) >= ix.maxEntries {
		return nil, &Error{Kind: KindTooLarge, Err: fmt.Errorf("more than %d filesystem entries", ix.maxEntries)}
	}
	if strings.HasPrefix(base, ".wh.") {
		t := path.Join(dir, base[len(".wh."):])
		if ix.nodes[t] == nil && !ix.hidden(t, layer) {
			ix.nodes[t] = &node{layer: layer, typ: nWhiteout}
		}
		return nil, nil
	}
	if old := ix.nodes[p]; (old != nil && old.layer != layer) || ix.hidden(p, layer) {
		return nil, nil
	}
	n := &node{layer: layer, size: h.Size}
	switch h.Typeflag {
	case tar.TypeReg, tar.TypeRegA: //nolint:staticcheck // old archives still use TypeRegA
		n.typ = nFile
	case tar.TypeDir:
		n.typ = nDir
	case tar.TypeSymlink:
		n.typ, n.link = nSymlink, h.Linkname
	case tar.TypeLink:
		n.typ, n.link = nHardlink, clean(h.Linkname)
	default:
		n.typ = nOther
	}
	ix.nodes[p] = n // a later duplicate in the same layer wins, as on extraction
	return n, nil
}

type state uint8

const (
	pending state = iota // may still appear in a lower layer
	found
	absent
)

// resolution is where a path leads in the merged filesystem known so far.
type resolution struct {
	state state
	path  string // final path after symlinks
	node  *node  // the regular file (hardlinks followed)
	via   []string
	why   string // for absent
}

const maxSymlinkHops = 40 // as Linux

// resolve follows p through symlinks as the kernel would. cur is the layer being read (entries
// of layers below it are unknown); -1 when every layer has been read. touch is told every path
// looked at, so the caller re-resolves only when one of them appears.
func (ix *fsIndex) resolve(p string, cur int, touch func(string)) resolution {
	comps := split(p)
	dir := "/"
	var via []string
	hops := 0
	for i := 0; i < len(comps); i++ {
		c := comps[i]
		if c == "." || c == "" {
			continue
		}
		if c == ".." {
			dir = path.Dir(dir)
			continue
		}
		next := path.Join(dir, c)
		touch(next)
		last := i == len(comps)-1
		n := ix.nodes[next]
		if n == nil {
			if cur < 0 || ix.opaqueAbove(next, cur) {
				return resolution{state: absent, path: next, why: "not found"}
			}
			if last {
				return resolution{state: pending, path: next}
			}
			dir = next // directories need no entry of their own; a lower layer may yet make it a symlink
			continue
		}
		switch n.typ {
		case nDir:
			dir = next
		case nSymlink:
			if hops++; hops > maxSymlinkHops {
				return resolution{state: absent, path: next, why: "too many symlinks"}
			}
			via = append(via, next+" -> "+n.link)
			target := n.link
			if !path.IsAbs(target) {
				target = path.Join(dir, target)
			}
			comps = append(split(target), comps[i+1:]...)
			dir, i = "/", -1
		case nFile, nHardlink:
			if !last {
				return resolution{state: absent, path: next, why: "not a directory"}
			}
			if n.typ == nHardlink {
				touch(n.link)
				t := ix.nodes[n.link]
				if t == nil || t.typ != nFile {
					if cur < 0 {
						return resolution{state: absent, path: next, why: "dangling hardlink"}
					}
					return resolution{state: pending, path: next}
				}
				n = t
			}
			return resolution{state: found, path: next, node: n, via: via}
		default:
			return resolution{state: absent, path: next, why: "whiteout or special file"}
		}
	}
	return resolution{state: absent, path: dir, why: "is a directory"}
}

// opaqueAbove reports whether an ancestor of p was made opaque in a layer above cur.
func (ix *fsIndex) opaqueAbove(p string, cur int) bool {
	for a := path.Dir(p); ; a = path.Dir(a) {
		if l, ok := ix.opaque[a]; ok && l > cur {
			return true
		}
		if a == "/" {
			return false
		}
	}
}

func split(p string) []string {
	return strings.Split(strings.Trim(p, "/"), "/")
}
