package inspect_test

import (
	"context"
	"strings"
	"testing"

	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/dns-tuner/dns-tuner/internal/inspect"
	"github.com/dns-tuner/dns-tuner/internal/inspect/imagetest"
	"github.com/dns-tuner/dns-tuner/internal/libc"
)

// TestRefiningReadsStopBeforeTheCap: reading a Go binary's build settings (or a static
// binary's libc telltales) only refines a verdict the head already gives; near the byte cap it
// stops, and the image gets that verdict instead of failing as too large.
func TestRefiningReadsStopBeforeTheCap(t *testing.T) {
	b := imagetest.NewBuilder(t)
	bin := b.Binary("go-pie") // PT_INTERP in the head, build info ~75% into the file
	img := imagetest.Image(t, "amd64", v1.Config{Entrypoint: []string{"/app"}}, imagetest.Layer(t, imagetest.Exe("/app", bin)))
	ref := imagetest.Push(t, imagetest.Registry(t), "budget/go-pie", img)

	full, err := inspect.New(inspect.Options{}).Inspect(context.Background(), ref, nil, nil)
	if err != nil || full.Libc != libc.Go {
		t.Fatalf("uncapped: %s, %v; want go", full.Libc, err)
	}
	// A cap the build-info read alone would pass, but not the head.
	capped := full.Bytes * 3 / 4
	v, err := inspect.New(inspect.Options{MaxBytes: capped}).Inspect(context.Background(), ref, nil, nil)
	t.Logf("cap %d (full read %d): %s, %d bytes, %v; evidence %s", capped, full.Bytes, v.Libc, v.Bytes, err, v.Evidence)
	if err != nil {
		t.Fatalf("capped at %d: %v; want a verdict from the head", capped, err)
	}
	if v.Libc != libc.GLibc || v.CGO == nil || !*v.CGO || !strings.Contains(v.Evidence, "byte budget") {
		t.Errorf("capped: %s cgo=%v evidence %q; want glibc, cgo assumed, saying the budget stopped the read", v.Libc, v.CGO, v.Evidence)
	}
}
