package inspect

import (
	"fmt"
	"io"
	"net/http"
	"sync/atomic"
)

// meter counts and caps what one inspection reads. Bytes are counted twice, on the wire (every
// response body through the metered transport, tokens and manifests included) and as consumed
// (manifest, config and compressed layer bytes), because a caller's remote.WithTransport can
// replace the metered transport; the larger count is reported and capped.
type meter struct {
	max, maxUnc int64
	wire, read  atomic.Int64
	unc         atomic.Int64
}

func (m *meter) bytes() int64 { return max(m.wire.Load(), m.read.Load()) }

func (m *meter) tooLarge() error {
	return &Error{Kind: KindTooLarge, Err: fmt.Errorf("read %d bytes, cap is %d", m.bytes(), m.max)}
}

// meteredTransport counts response bodies and fails them once the image's byte cap is passed.
type meteredTransport struct {
	base http.RoundTripper
	m    *meter
}

func (t *meteredTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	resp, err := t.base.RoundTrip(r)
	if err != nil || resp.Body == nil {
		return resp, err
	}
	resp.Body = &meteredBody{capped: capped{r: resp.Body, count: &t.m.wire, over: t.m.overBytes}, Closer: resp.Body}
	return resp, nil
}

// capped counts what r yields into count and, once over reports an error, fails every read
// with it. One type serves the wire, the compressed layer stream and the decompressed one.
type capped struct {
	r     io.Reader
	count *atomic.Int64
	over  func() error
}

func (c *capped) Read(p []byte) (int, error) {
	if err := c.over(); err != nil {
		return 0, err
	}
	n, err := c.r.Read(p)
	c.count.Add(int64(n))
	return n, err
}

// overBytes is the image's cap on registry bytes, wire or consumed.
func (m *meter) overBytes() error {
	if m.bytes() > m.max {
		return m.tooLarge()
	}
	return nil
}

// overUncompressed is the cap on decompressed layer bytes, so a gzip bomb ends after maxUnc
// bytes of work.
func (m *meter) overUncompressed() error {
	if m.unc.Load() > m.maxUnc {
		return &Error{Kind: KindTooLarge, Err: fmt.Errorf("decompressed more than %d bytes", m.maxUnc)}
	}
	return nil
}

// meteredBody is a response body counted on the wire.
type meteredBody struct {
	capped
	io.Closer
}

// nearCap reports whether three quarters of either cap are spent. Reads that only refine a
// verdict (Go build info, libc telltales) stop there, so they never make an image too large.
func (m *meter) nearCap() bool {
	return m.bytes() > m.max/4*3 || m.unc.Load() > m.maxUnc/4*3
}
