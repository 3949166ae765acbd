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
	resp.Body = &meteredBody{ReadCloser: resp.Body, m: t.m}
	return resp, nil
}

type meteredBody struct {
	io.ReadCloser
	m *meter
}

func (b *meteredBody) Read(p []byte) (int, error) {
	if b.m.bytes() > b.m.max {
		return 0, b.m.tooLarge()
	}
	n, err := b.ReadCloser.Read(p)
	b.m.wire.Add(int64(n))
	return n, err
}

// compressedReader counts consumed compressed layer bytes and enforces the cap without the
// metered transport.
type compressedReader struct {
	r io.Reader
	m *meter
}

func (c *compressedReader) Read(p []byte) (int, error) {
	if c.m.bytes() > c.m.max {
		return 0, c.m.tooLarge()
	}
	n, err := c.r.Read(p)
	c.m.read.Add(int64(n))
	return n, err
}

// uncompressedReader caps decompressed bytes so a gzip bomb ends after maxUnc bytes of work.
type uncompressedReader struct {
	r io.Reader
	m *meter
}

func (u *uncompressedReader) Read(p []byte) (int, error) {
	if u.m.unc.Load() > u.m.maxUnc {
		return 0, &Error{Kind: KindTooLarge, Err: fmt.Errorf("decompressed more than %d bytes", u.m.maxUnc)}
	}
	n, err := u.r.Read(p)
	u.m.unc.Add(int64(n))
	return n, err
}
