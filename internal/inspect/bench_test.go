package inspect_test

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"context"
	"fmt"
	"io"
	"testing"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/tarball"

	"github.com/dns-tuner/dns-tuner/internal/inspect"
	"github.com/dns-tuner/dns-tuner/internal/inspect/imagetest"
	"github.com/dns-tuner/dns-tuner/internal/libc"
)

const (
	benchLayers    = 4        // random layers between the base and the app
	benchFiles     = 3        // files per random layer
	benchFileBytes = 16 << 20 // 4 × 3 × 16 MiB ≈ 200 MB of incompressible data
)

// BenchmarkLargeImage compares the bytes and time to a verdict with pulling the whole image
// as a scanner would, on a ~200 MB image: a musl base, four layers of random data, and a
// small top layer with the entrypoint. The image is built once, here, so that `go test`
// without -bench never builds it.
func BenchmarkLargeImage(b *testing.B) {
	bld := imagetest.NewBuilder(b)
	layers := []v1.Layer{imagetest.Layer(b, bld.MuslLoader())}
	for l := range benchLayers {
		var files []imagetest.File
		for f := range benchFiles {
			files = append(files, imagetest.Reg(fmt.Sprintf("/data/%d/blob%d", l, f), randomBytes(benchFileBytes, uint64(l*benchFiles+f+10))))
		}
		data := imagetest.Tar(files...)
		// Random bytes do not compress; storing them keeps the build fast and the size honest.
		lay, err := tarball.LayerFromOpener(func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(data)), nil },
			tarball.WithCompressionLevel(gzip.NoCompression))
		if err != nil {
			b.Fatal(err)
		}
		layers = append(layers, lay)
	}
	layers = append(layers, imagetest.Layer(b, imagetest.Exe("/usr/local/bin/app", bld.Binary("musl"))))
	img := imagetest.Image(b, "amd64", v1.Config{Entrypoint: []string{"/usr/local/bin/app"}}, layers...)
	srv := imagetest.Serve(b, nil)
	ref := imagetest.Push(b, srv.Host, "bench/big", img)
	mf, err := img.Manifest()
	if err != nil {
		b.Fatal(err)
	}
	var size int64
	for _, l := range mf.Layers {
		size += l.Size
	}
	b.Logf("image: %d layers, %d compressed bytes", len(mf.Layers), size)

	report := func(b *testing.B, fetched, sent int64) {
		b.ReportMetric(float64(fetched)/float64(b.N), "fetched-B/op")
		b.ReportMetric(float64(sent)/float64(b.N), "served-B/op")
		b.ReportMetric(100*float64(fetched)/float64(b.N)/float64(size), "%-of-image")
	}

	b.Run("verdict", func(b *testing.B) {
		in := inspect.New(inspect.Options{})
		var fetched int64
		sent0 := srv.Sent.Load()
		for b.Loop() {
			v, err := in.Inspect(context.Background(), ref, nil, nil)
			if err != nil || v.Libc != libc.Musl {
				b.Fatalf("verdict %+v, %v", v, err)
			}
			fetched += v.Bytes
		}
		report(b, fetched, srv.Sent.Load()-sent0)
		if per := fetched / int64(b.N); per*20 > size {
			b.Errorf("fetched %d of %d bytes: more than 5%%", per, size)
		}
	})
	b.Run("full-pull", func(b *testing.B) {
		var fetched int64
		sent0 := srv.Sent.Load()
		for b.Loop() {
			n, err := fullPull(ref)
			if err != nil {
				b.Fatal(err)
			}
			fetched += n
		}
		report(b, fetched, srv.Sent.Load()-sent0)
	})
	// The worst case: the command names nothing in the image, so every layer is read down to
	// the base until the default 64 MiB cap ends it with an unknown verdict.
	b.Run("missing-entrypoint", func(b *testing.B) {
		in := inspect.New(inspect.Options{})
		var fetched int64
		sent0 := srv.Sent.Load()
		for b.Loop() {
			v, err := in.Inspect(context.Background(), ref, []string{"/missing"}, nil)
			if inspect.KindOf(err) != inspect.KindTooLarge {
				b.Fatalf("verdict %+v, %v; want too_large", v, err)
			}
			fetched += v.Bytes
		}
		report(b, fetched, srv.Sent.Load()-sent0)
	})
}

// fullPull reads every layer completely, decompressing and walking its tar, as an image
// scanner does; it returns the compressed bytes read.
func fullPull(ref name.Reference) (int64, error) {
	img, err := remote.Image(ref)
	if err != nil {
		return 0, err
	}
	layers, err := img.Layers()
	if err != nil {
		return 0, err
	}
	var total int64
	for _, l := range layers {
		rc, err := l.Compressed()
		if err != nil {
			return total, err
		}
		cr := &countReader{r: rc}
		zr, err := gzip.NewReader(cr)
		if err != nil {
			return total, err
		}
		tr := tar.NewReader(zr)
		for {
			if _, err = tr.Next(); err != nil {
				break
			}
		}
		_, _ = io.Copy(io.Discard, zr)
		rc.Close()
		total += cr.n
		if err != io.EOF {
			return total, err
		}
	}
	return total, nil
}

type countReader struct {
	r io.Reader
	n int64
}

func (c *countReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n += int64(n)
	return n, err
}
