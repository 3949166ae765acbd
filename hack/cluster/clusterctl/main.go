// Command clusterctl is the Go half of hack/cluster: the node's image registry and a
// Docker-free image builder (go-containerregistry), both run inside the cluster's network
// namespace by hack/cluster/cluster.sh.
//
//	clusterctl registry -addr 10.200.0.1:5000
//	clusterctl image -push 10.200.0.1:5000/dns-tuner:e2e -file /dns-tuner=bin/dns-tuner:0755 \
//	    -entrypoint /dns-tuner -cmd serve -user 65532:65532 -nonroot-etc -ca-certs
package main

import (
	"archive/tar"
	"bytes"
	"errors"
	"flag"
	"fmt"
	"io"
	"log"
	"net/http"
	"os"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/registry"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
)

func main() {
	log.SetFlags(0)
	if len(os.Args) < 2 {
		log.Fatal("usage: clusterctl registry|image [flags]")
	}
	var err error
	switch os.Args[1] {
	case "registry":
		err = serveRegistry(os.Args[2:])
	case "image":
		err = buildImage(os.Args[2:])
	default:
		err = fmt.Errorf("unknown command %q", os.Args[1])
	}
	if err != nil {
		log.Fatalf("clusterctl %s: %v", os.Args[1], err)
	}
}

func serveRegistry(args []string) error {
	fs := flag.NewFlagSet("registry", flag.ExitOnError)
	addr := fs.String("addr", "127.0.0.1:5000", "listen address")
	_ = fs.Parse(args)
	srv := &http.Server{Addr: *addr, Handler: registry.New(registry.Logger(log.New(io.Discard, "", 0))),
		ReadHeaderTimeout: 10 * time.Second}
	log.Printf("registry on %s", *addr)
	return srv.ListenAndServe()
}

// multi is a repeatable string flag.
type multi []string

func (m *multi) String() string     { return strings.Join(*m, ",") }
func (m *multi) Set(s string) error { *m = append(*m, s); return nil }

// file is one entry of the image's single layer.
type file struct {
	path string
	mode int64
	data []byte
	dir  bool
}

func buildImage(args []string) error {
	fs := flag.NewFlagSet("image", flag.ExitOnError)
	push := fs.String("push", "", "reference to push to (plain HTTP registry)")
	var files, entrypoint, cmd, env multi
	fs.Var(&files, "file", "DEST=SRC[:MODE] (octal mode, default 0755), repeatable")
	fs.Var(&entrypoint, "entrypoint", "entrypoint word, repeatable")
	fs.Var(&cmd, "cmd", "cmd word, repeatable")
	fs.Var(&env, "env", "KEY=VALUE, repeatable")
	user := fs.String("user", "", "user[:group] the image runs as")
	nonroot := fs.Bool("nonroot-etc", false, "add /etc/passwd, /etc/group, /home/nonroot and /tmp as distroless nonroot has them (uid 65532)")
	caCerts := fs.String("ca-certs", "", "host CA bundle to add as /etc/ssl/certs/ca-certificates.crt")
	_ = fs.Parse(args)
	if *push == "" {
		return errors.New("-push is required")
	}
	var entries []file
	for _, f := range files {
		dest, src, ok := strings.Cut(f, "=")
		if !ok {
			return fmt.Errorf("-file %q: want DEST=SRC[:MODE]", f)
		}
		mode := int64(0o755)
		if s, m, ok := strings.Cut(src, ":"); ok {
			v, err := strconv.ParseInt(m, 8, 64)
			if err != nil {
				return fmt.Errorf("-file %q: mode: %w", f, err)
			}
			src, mode = s, v
		}
		data, err := os.ReadFile(src)
		if err != nil {
			return err
		}
		entries = append(entries, file{path: dest, mode: mode, data: data})
	}
	if *nonroot {
		entries = append(entries,
			file{path: "/etc/passwd", mode: 0o644, data: []byte("root:x:0:0:root:/root:/sbin/nologin\nnonroot:x:65532:65532:nonroot:/home/nonroot:/sbin/nologin\n")},
			file{path: "/etc/group", mode: 0o644, data: []byte("root:x:0:\nnonroot:x:65532:\n")},
			file{path: "/home/nonroot", mode: 0o700, dir: true},
			file{path: "/tmp", mode: 0o1777, dir: true})
	}
	if *caCerts != "" {
		data, err := os.ReadFile(*caCerts)
		if err != nil {
			return err
		}
		entries = append(entries, file{path: "/etc/ssl/certs/ca-certificates.crt", mode: 0o644, data: data})
	}
	layerTar, err := tarOf(entries)
	if err != nil {
		return err
	}
	layer, err := tarball.LayerFromOpener(func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(layerTar)), nil })
	if err != nil {
		return err
	}
	img, err := mutate.AppendLayers(empty.Image, layer)
	if err != nil {
		return err
	}
	cf, err := img.ConfigFile()
	if err != nil {
		return err
	}
	cf = cf.DeepCopy()
	cf.OS, cf.Architecture = "linux", "amd64"
	cf.Config = v1.Config{Entrypoint: entrypoint, Cmd: cmd, User: *user,
		Env: append([]string{"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"}, env...)}
	if cf.Config.User == "65532:65532" || cf.Config.User == "65532" {
		cf.Config.Env = append(cf.Config.Env, "HOME=/home/nonroot")
	}
	if img, err = mutate.ConfigFile(img, cf); err != nil {
		return err
	}
	ref, err := name.ParseReference(*push, name.Insecure)
	if err != nil {
		return err
	}
	if err := remote.Write(ref, img); err != nil {
		return err
	}
	d, _ := img.Digest()
	fmt.Printf("%s@%s\n", ref.Context().Name(), d)
	return nil
}

// tarOf writes entries with their parent directories, sorted, root-owned unless the entry
// is under /home/nonroot, with a fixed mtime so the same inputs give the same digest.
func tarOf(entries []file) ([]byte, error) {
	dirs := map[string]bool{}
	for _, e := range entries {
		p := strings.TrimPrefix(e.path, "/")
		for i := strings.Index(p, "/"); i >= 0; i = nextSlash(p, i) {
			dirs[p[:i]] = true
		}
	}
	for _, e := range entries {
		if e.dir {
			delete(dirs, strings.TrimPrefix(e.path, "/"))
		}
	}
	var all []file
	for d := range dirs {
		all = append(all, file{path: d, mode: 0o755, dir: true})
	}
	for _, e := range entries {
		e.path = strings.TrimPrefix(e.path, "/")
		all = append(all, e)
	}
	sort.Slice(all, func(i, j int) bool { return all[i].path < all[j].path })
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	epoch := time.Unix(0, 0)
	for _, e := range all {
		h := &tar.Header{Name: e.path, Mode: e.mode, ModTime: epoch, Typeflag: tar.TypeReg, Size: int64(len(e.data))}
		if strings.HasPrefix(e.path, "home/nonroot") {
			h.Uid, h.Gid = 65532, 65532
		}
		if e.dir {
			h.Typeflag, h.Size, h.Name = tar.TypeDir, 0, e.path+"/"
		}
		if err := tw.WriteHeader(h); err != nil {
			return nil, err
		}
		if _, err := tw.Write(e.data); err != nil {
			return nil, err
		}
	}
	if err := tw.Close(); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

func nextSlash(p string, i int) int {
	j := strings.Index(p[i+1:], "/")
	if j < 0 {
		return -1
	}
	return i + 1 + j
}
