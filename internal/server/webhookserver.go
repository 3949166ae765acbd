package server

import (
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	stdlog "log"
	"net"
	"net/http"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/go-logr/logr"
	"golang.org/x/net/netutil"
	"golang.org/x/sync/semaphore"
	"sigs.k8s.io/controller-runtime/pkg/certwatcher"
	"sigs.k8s.io/controller-runtime/pkg/healthz"
	ctrlwebhook "sigs.k8s.io/controller-runtime/pkg/webhook"

	"github.com/dns-tuner/dns-tuner/internal/certs"
	"github.com/dns-tuner/dns-tuner/internal/metrics"
)

// maxRequestBytes matches controller-runtime's admission limit (two 3 MB objects and the
// rest of the review); a longer body is passed on truncated by one byte so that it answers 413.
const maxRequestBytes = 7 << 20

// webhookServer is controller-runtime's webhook server with the deadlines its http.Server
// lacks. controller-runtime builds that http.Server internally with no read deadline, so a
// client that sends headers and then trickles the body holds a connection (and its
// buffers) forever. Register, the mux and the controller_runtime_webhook_* metrics stay
// controller-runtime's; Start serves that mux from an http.Server configured here, with
// the certificate reloaded from disk by certwatcher as controller-runtime does.
type webhookServer struct {
	*ctrlwebhook.DefaultServer
	o       Options
	log     logr.Logger
	started atomic.Bool
}

// newWebhookServer builds the webhook server, held back by setupCerts until the serving
// certificate exists, so a fresh self-managed install starts unready instead of crashing.
func newWebhookServer(o Options, log logr.Logger) *certs.GatedServer {
	o = o.withServerDefaults()
	inner := ctrlwebhook.NewServer(ctrlwebhook.Options{
		Host: o.WebhookHost, Port: o.WebhookPort, CertDir: o.CertDir, CertName: o.CertName, KeyName: o.KeyName,
		WebhookMux: http.NewServeMux(),
	}).(*ctrlwebhook.DefaultServer)
	return &certs.GatedServer{Server: &webhookServer{DefaultServer: inner, o: o, log: log}}
}

func (s *webhookServer) addr() string {
	return net.JoinHostPort(s.o.WebhookHost, strconv.Itoa(s.o.WebhookPort))
}

// Start serves TLS until ctx ends, then drains in-flight requests.
func (s *webhookServer) Start(ctx context.Context) error {
	cw, err := certwatcher.New(filepath.Join(s.o.CertDir, s.o.CertName), filepath.Join(s.o.CertDir, s.o.KeyName))
	if err != nil {
		return err
	}
	go func() {
		if err := cw.Start(ctx); err != nil {
			s.log.Error(err, "certificate watcher stopped")
		}
	}()
	tcp, err := net.Listen("tcp", s.addr())
	if err != nil {
		return err
	}
	// Past the cap, new connections wait in the kernel's accept queue, costing no memory here.
	protos := []string{"http/1.1"}
	if s.o.EnableHTTP2 {
		protos = []string{"h2", "http/1.1"}
	}
	ln := tls.NewListener(netutil.LimitListener(tcp, s.o.MaxConnections), &tls.Config{
		NextProtos:     protos,
		MinVersion:     tls.VersionTLS12,
		GetCertificate: cw.GetCertificate,
	})
	srv := s.httpServer(ctx)
	if !s.o.EnableHTTP2 {
		srv.TLSNextProto = map[string]func(*http.Server, *tls.Conn, http.Handler){} // no HTTP/2 even if a client asks
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		<-ctx.Done()
		sctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		if err := srv.Shutdown(sctx); err != nil {
			s.log.Error(err, "shutting down the webhook server")
		}
	}()
	s.log.Info("serving webhook", "address", ln.Addr().String(), "readHeaderTimeout", s.o.ReadHeaderTimeout,
		"readTimeout", s.o.ReadTimeout, "idleTimeout", s.o.IdleTimeout, "http2", s.o.EnableHTTP2, "maxHeaderBytes", s.o.MaxHeaderBytes, "maxConnections", s.o.MaxConnections)
	s.started.Store(true)
	if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	<-done
	return nil
}

// httpServer is the webhook's http.Server: every way a client can hold a connection without
// sending a whole request ends at a deadline, and net/http's own complaints (TLS handshake
// errors, mostly) go to the logger, one line each.
func (s *webhookServer) httpServer(ctx context.Context) *http.Server {
	return &http.Server{
		Handler:           s.Options.WebhookMux,
		BaseContext:       func(net.Listener) context.Context { return ctx },
		ReadHeaderTimeout: s.o.ReadHeaderTimeout,
		ReadTimeout:       s.o.ReadTimeout,
		IdleTimeout:       s.o.IdleTimeout,
		MaxHeaderBytes:    s.o.MaxHeaderBytes,
		ErrorLog:          stdlog.New(logWriter{s.log}, "", 0),
	}
}

// StartedChecker passes once the server accepts TLS connections.
func (s *webhookServer) StartedChecker() healthz.Checker {
	return func(*http.Request) error {
		if !s.started.Load() {
			return errors.New("webhook server has not been started yet")
		}
		d := &net.Dialer{Timeout: 10 * time.Second}
		conn, err := tls.DialWithDialer(d, "tcp", s.addr(), &tls.Config{InsecureSkipVerify: true}) //nolint:gosec // a reachability probe of our own port
		if err != nil {
			return fmt.Errorf("webhook server is not reachable: %w", err)
		}
		return conn.Close()
	}
}

// logWriter turns net/http's ErrorLog lines into log entries.
type logWriter struct{ log logr.Logger }

func (w logWriter) Write(p []byte) (int, error) {
	w.log.Info(strings.TrimSpace(string(p)))
	return len(p), nil
}

// inflightWait is how long a review waits for room under MaxInflightBytes before it is
// turned away: well inside the API server's 5 s webhook timeout.
const inflightWait = time.Second

// admissionHandler serves h, which answers admission reviews, after reading the body
// itself: a request cut by the read deadline or abandoned by its client is one log line
// here, where controller-runtime would log an error (with a stack trace in production
// logging) per request. Such a request never came whole from the API server, so it gets a
// plain HTTP error, not an admission answer. Past maxInflight review bytes in flight, a
// review waits up to inflightWait for room, then gets 503: the API server admits the pod
// unchanged (failurePolicy Ignore).
func admissionHandler(h http.Handler, maxInflight int64, log logr.Logger) http.Handler {
	inflight := semaphore.NewWeighted(maxInflight)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		// Room for the body before reading it: its Content-Length, or the largest review.
		weight := int64(maxRequestBytes + 1)
		if r.ContentLength >= 0 && r.ContentLength < weight {
			weight = r.ContentLength
		}
		ctx, cancel := context.WithTimeout(r.Context(), inflightWait)
		err := inflight.Acquire(ctx, weight)
		cancel()
		if err != nil {
			metrics.FailOpen.WithLabelValues("overloaded").Inc()
			log.Info("admission review turned away: too many review bytes in flight; the API server admits the pod unchanged",
				"remote", r.RemoteAddr, "contentLength", r.ContentLength, "maxInflightBytes", maxInflight)
			http.Error(w, "dns-tuner is overloaded", http.StatusServiceUnavailable)
			return
		}
		defer inflight.Release(weight)
		body, err := readBody(r.Body, r.ContentLength)
		if err != nil {
			log.Info("admission request aborted while reading its body", "remote", r.RemoteAddr,
				"bytesRead", len(body), "contentLength", r.ContentLength, "after", time.Since(start).Round(time.Millisecond).String(), "reason", err.Error())
			http.Error(w, "reading the request body: "+err.Error(), http.StatusBadRequest)
			return
		}
		r.Body = memoryBody{Reader: bytes.NewReader(body), b: body}
		h.ServeHTTP(w, r)
	})
}

// readBody reads a request body whole: into a buffer of its declared length when it has one
// (net/http stops a body at its Content-Length), else growing up to one byte past
// maxRequestBytes, so that a longer body is seen as one.
func readBody(r io.Reader, contentLength int64) ([]byte, error) {
	if contentLength < 0 || contentLength > maxRequestBytes {
		return io.ReadAll(io.LimitReader(r, maxRequestBytes+1))
	}
	b := make([]byte, contentLength)
	n, err := io.ReadFull(r, b)
	return b[:n], err
}

// memoryBody is a request body already in memory. Bytes hands it to a handler that wants it
// whole (webhook.Reviews) without a second copy; others read it as any body.
type memoryBody struct {
	*bytes.Reader
	b []byte
}

func (memoryBody) Close() error    { return nil }
func (m memoryBody) Bytes() []byte { return m.b }
