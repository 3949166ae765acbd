package main

import (
	"github.com/dns-tuner/dns-tuner/internal/inspect/imagetest"
)

// registryImages serves the load pods' two images, built from real binaries by the test
// image builder, from an in-process registry on loopback: an app on glibc and a log shipper
// on musl, as the benchmark pod has. close stops the registry and removes the build files.
type registryImages struct {
	host, app, sidecar string
	close              func()
}

func startRegistry(dir string) (*registryImages, error) {
	t := imagetest.NewProgram("building images", dir)
	var r *registryImages
	err := t.Do(func() {
		srv := imagetest.Serve(t, nil)
		b := imagetest.NewBuilder(t)
		app := imagetest.Push(t, srv.Host, "shop/checkout:1.42.0", b.Image(imagetest.GlibcDynamic))
		sidecar := imagetest.Push(t, srv.Host, "infra/log-shipper:3.1.2", b.Image(imagetest.MuslDynamic))
		r = &registryImages{host: srv.Host, app: app.String(), sidecar: sidecar.String(), close: t.Close}
	})
	if err != nil {
		t.Close()
		return nil, err
	}
	return r, nil
}
