package server

import (
	"bufio"
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"io"
	"math/big"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/go-logr/logr"
	"github.com/prometheus/client_golang/prometheus/testutil"
	admissionv1 "k8s.io/api/admission/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	k8sruntime "k8s.io/apimachinery/pkg/runtime"
	ctrllog "sigs.k8s.io/controller-runtime/pkg/log"
	"sigs.k8s.io/controller-runtime/pkg/webhook/admission"

	"github.com/dns-tuner/dns-tuner/internal/metrics"
)

const testPath = "/mutate-v1-pod"

func TestMain(m *testing.M) {
	// certwatcher logs through controller-runtime's global logger, which serve sets.
	ctrllog.SetLogger(logr.Discard())
	os.Exit(m.Run())
}

// lockedBuffer collects log output from many goroutines.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}
func (l *lockedBuffer) Sync() error { return nil }
func (l *lockedBuffer) lines() []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return strings.Split(strings.TrimSpace(l.b.String()), "\n")
}

type allowAll struct{}

func (allowAll) Handle(context.Context, admission.Request) admission.Response {
	return admission.Allowed("test")
}

// testServer runs the webhook server `serve` builds, with production (JSON) logging into a
// buffer, on a certificate for 127.0.0.1.
type testServer struct {
	addr string
	tls  *tls.Config // trusts the server's certificate
	log  *lockedBuffer
}

func startTestServer(t *testing.T, o Options) *testServer {
	t.Helper()
	dir := t.TempDir()
	pool := writeCert(t, dir)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := ln.Addr().(*net.TCPAddr).Port
	ln.Close()
	o.CertDir, o.WebhookHost, o.WebhookPort = dir, "127.0.0.1", port
	buf := &lockedBuffer{}
	log, err := LogOptions{Format: "json", Level: "info"}.logger(buf)
	if err != nil {
		t.Fatal(err)
	}
	srv := newWebhookServer(o, log.WithName("webhook-server"))
	srv.Register(testPath, admissionHandler(&admission.Webhook{Handler: allowAll{}}, o.withServerDefaults().MaxInflightBytes, log.WithName("admission")))
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- srv.Start(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Start: %v", err)
		}
	})
	ready := srv.StartedChecker()
	for deadline := time.Now().Add(10 * time.Second); ready(nil) != nil; time.Sleep(20 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("webhook server not ready: %v", ready(nil))
		}
	}
	return &testServer{addr: net.JoinHostPort("127.0.0.1", strconv.Itoa(port)), tls: &tls.Config{RootCAs: pool}, log: buf}
}

func writeCert(t *testing.T, dir string) *x509.CertPool {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "dns-tuner-test"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1)}, KeyUsage: x509.KeyUsageDigitalSignature,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	keyDER, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	write := func(name, typ string, b []byte) {
		if err := os.WriteFile(filepath.Join(dir, name), pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: b}), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	write("tls.crt", "CERTIFICATE", der)
	write("tls.key", "EC PRIVATE KEY", keyDER)
	cert, _ := x509.ParseCertificate(der)
	pool := x509.NewCertPool()
	pool.AddCert(cert)
	return pool
}

// review is an AdmissionReview as the API server sends it, whole and at once.
func review(t *testing.T) []byte {
	t.Helper()
	b, err := json.Marshal(admissionv1.AdmissionReview{
		TypeMeta: metav1.TypeMeta{APIVersion: "admission.k8s.io/v1", Kind: "AdmissionReview"},
		Request: &admissionv1.AdmissionRequest{UID: "u1", Operation: admissionv1.Create, Namespace: "default",
			Object: k8sruntime.RawExtension{Raw: []byte(`{"apiVersion":"v1","kind":"Pod","metadata":{"name":"p"},"spec":{"containers":[{"name":"c","image":"i"}]}}`)}},
	})
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// admit sends one normal review and checks it is answered allowed.
func (s *testServer) admit(t *testing.T, client *http.Client) {
	t.Helper()
	resp, err := client.Post("https://"+s.addr+testPath, "application/json", bytes.NewReader(review(t)))
	if err != nil {
		t.Errorf("normal admission: %v", err)
		return
	}
	defer resp.Body.Close()
	var got admissionv1.AdmissionReview
	if err := json.NewDecoder(resp.Body).Decode(&got); err != nil || resp.StatusCode != http.StatusOK || got.Response == nil || !got.Response.Allowed {
		t.Errorf("normal admission: status %d, %+v, %v", resp.StatusCode, got.Response, err)
	}
}

// slowClient opens a TLS connection and misbehaves on it; it returns how long the server
// kept the connection open.
type slowClient func(conn *tls.Conn) (time.Duration, error)

// trickleBody sends a request's headers promptly, then its body one byte at a time.
func trickleBody(conn *tls.Conn) (time.Duration, error) {
	start := time.Now()
	if _, err := fmt.Fprintf(conn, "POST %s HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 100000\r\n\r\n{", testPath); err != nil {
		return 0, err
	}
	return waitClosed(conn, start, []byte(" "))
}

// trickleHeaders sends the request line, then its headers one byte at a time.
func trickleHeaders(conn *tls.Conn) (time.Duration, error) {
	start := time.Now()
	if _, err := fmt.Fprintf(conn, "POST %s HTTP/1.1\r\n", testPath); err != nil {
		return 0, err
	}
	return waitClosed(conn, start, []byte("X"))
}

// silent completes the TLS handshake (tls.Dial did) and sends nothing.
func silent(conn *tls.Conn) (time.Duration, error) {
	return waitClosed(conn, time.Now(), nil)
}

// waitClosed writes drip every 100 ms (if not nil) until the server closes the connection,
// and returns how long that took.
func waitClosed(conn *tls.Conn, start time.Time, drip []byte) (time.Duration, error) {
	closed := make(chan struct{})
	go func() {
		defer close(closed)
		_, _ = io.Copy(io.Discard, bufio.NewReader(conn)) // the server's 400, then EOF
	}()
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	giveUp := time.After(30 * time.Second)
	for {
		select {
		case <-closed:
			return time.Since(start), nil
		case <-giveUp:
			return time.Since(start), fmt.Errorf("connection still open after 30s")
		case <-tick.C:
			if drip != nil {
				_, _ = conn.Write(drip)
			}
		}
	}
}

// Finding 5: connections that send headers and then trickle the body (or trickle the
// headers, or send nothing) are closed at the server's deadline, while a normal admission
// is answered meanwhile; each aborted request is one log line without a stack trace; and
// goroutines and heap return to where they were.
func TestSlowClientsAreCutOff(t *testing.T) {
	n := 100
	if v, err := strconv.Atoi(os.Getenv("SLOW_CLIENTS")); err == nil && v > 0 {
		n = v
	}
	o := Options{}.withServerDefaults() // as shipped
	srv := startTestServer(t, o)
	client := &http.Client{Transport: &http.Transport{TLSClientConfig: srv.tls, ForceAttemptHTTP2: true}, Timeout: 10 * time.Second}
	defer client.CloseIdleConnections()
	srv.admit(t, client) // warm: the connection pool, TLS, the handler
	client.CloseIdleConnections()
	goroutines, heap := settle()

	kinds := []struct {
		name  string
		run   slowClient
		limit time.Duration // the deadline that must cut it off
		count int
	}{
		{"headers then trickled body", trickleBody, o.ReadTimeout, n},
		{"trickled headers", trickleHeaders, o.ReadHeaderTimeout, 10},
		{"silent after the handshake", silent, o.ReadHeaderTimeout, 10},
	}
	type result struct {
		kind string
		took time.Duration
		err  error
	}
	results := make(chan result, n+20)
	var wg sync.WaitGroup
	dialing := make(chan struct{}, 32) // TLS handshakes at a pace the test machine keeps up with
	for _, k := range kinds {
		for range k.count {
			wg.Go(func() {
				dialing <- struct{}{}
				conn, err := tls.Dial("tcp", srv.addr, &tls.Config{RootCAs: srv.tls.RootCAs, NextProtos: []string{"http/1.1"}})
				<-dialing
				if err != nil {
					results <- result{k.name, 0, err}
					return
				}
				defer conn.Close()
				took, err := k.run(conn)
				results <- result{k.name, took, err}
			})
		}
	}
	time.Sleep(o.ReadHeaderTimeout) // all connected and misbehaving
	peakGoroutines, peakHeap := runtime.NumGoroutine(), heapInUse()
	srv.admit(t, client) // the API server's reviews are still answered
	wg.Wait()
	close(results)

	// Deadlines are checked with slack: the machine running the test may be busy.
	const slack = 2 * time.Second
	limits := map[string]time.Duration{}
	for _, k := range kinds {
		limits[k.name] = k.limit
	}
	var slowest time.Duration
	for r := range results {
		switch {
		case r.err != nil:
			t.Errorf("%s: %v", r.kind, r.err)
		case r.took > limits[r.kind]+slack:
			t.Errorf("%s: connection closed after %v, want within %v", r.kind, r.took, limits[r.kind])
		}
		slowest = max(slowest, r.took)
	}

	client.CloseIdleConnections()
	afterGoroutines, afterHeap := settle()
	t.Logf("%d trickling bodies + 20 others: slowest closed after %v; goroutines %d before, %d while open, %d after; heap in use (clients and server) %.1f MiB before, %.1f MiB while open, %.1f MiB after",
		n, slowest.Round(time.Millisecond), goroutines, peakGoroutines, afterGoroutines, mib(heap), mib(peakHeap), mib(afterHeap))
	if afterGoroutines > goroutines+5 {
		t.Errorf("goroutines: %d before, %d after the slow clients left", goroutines, afterGoroutines)
	}
	if afterHeap > heap+4<<20+uint64(n)<<10 { // the log buffer keeps about 1 KiB per client
		t.Errorf("heap in use: %.1f MiB before, %.1f MiB after the slow clients left", mib(heap), mib(afterHeap))
	}

	aborted := 0
	for _, line := range srv.log.lines() {
		if strings.Contains(line, "stacktrace") || strings.Contains(line, `"level":"error"`) {
			t.Errorf("log line with an error or stack trace: %.300s", line)
		}
		if strings.Contains(line, "admission request aborted while reading its body") {
			aborted++
		}
	}
	if aborted != n {
		t.Errorf("%d aborted-request log lines for %d trickled bodies, want one each", aborted, n)
	}
}

// settle waits for goroutines to finish and returns their number and the heap in use.
func settle() (int, uint64) {
	var prev int
	for i := 0; i < 50; i++ {
		runtime.GC()
		n := runtime.NumGoroutine()
		if n == prev {
			break
		}
		prev = n
		time.Sleep(100 * time.Millisecond)
	}
	return prev, heapInUse()
}

func heapInUse() uint64 {
	runtime.GC()
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return m.HeapInuse
}

func mib(b uint64) float64 { return float64(b) / (1 << 20) }

// A client that keeps sending a body past the read deadline over HTTP/2 has its stream
// ended at the deadline too.
func TestSlowHTTP2BodyIsCutOff(t *testing.T) {
	o := Options{ReadHeaderTimeout: 500 * time.Millisecond, ReadTimeout: time.Second, EnableHTTP2: true}
	srv := startTestServer(t, o)
	client := &http.Client{Transport: &http.Transport{TLSClientConfig: srv.tls, ForceAttemptHTTP2: true}, Timeout: 15 * time.Second}
	defer client.CloseIdleConnections()
	pr, pw := io.Pipe()
	defer pw.Close()
	go func() {
		_, _ = pw.Write([]byte("{"))
		for range time.Tick(100 * time.Millisecond) {
			if _, err := pw.Write([]byte(" ")); err != nil {
				return
			}
		}
	}()
	req, _ := http.NewRequest(http.MethodPost, "https://"+srv.addr+testPath, pr)
	req.Header.Set("Content-Type", "application/json")
	start := time.Now()
	resp, err := client.Do(req)
	took := time.Since(start)
	if err == nil {
		resp.Body.Close()
		if resp.ProtoMajor != 2 || resp.StatusCode == http.StatusOK {
			t.Errorf("got %s %s, want an HTTP/2 error status", resp.Proto, resp.Status)
		}
	}
	if took > o.ReadTimeout+2*time.Second {
		t.Errorf("stream ended after %v, want within %v", took, o.ReadTimeout)
	}
	srv.admit(t, client)
}

// HTTP/2 is served only with --enable-http2: a client that asks for it otherwise speaks
// HTTP/1.1, and reviews are answered either way.
func TestHTTP2OnlyWhenEnabled(t *testing.T) {
	for _, enabled := range []bool{false, true} {
		t.Run(fmt.Sprintf("enable-http2=%v", enabled), func(t *testing.T) {
			srv := startTestServer(t, Options{EnableHTTP2: enabled})
			client := &http.Client{Transport: &http.Transport{TLSClientConfig: srv.tls, ForceAttemptHTTP2: true}, Timeout: 10 * time.Second}
			defer client.CloseIdleConnections()
			resp, err := client.Get("https://" + srv.addr + testPath)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			if got := resp.ProtoMajor == 2; got != enabled {
				t.Errorf("client spoke %s with --enable-http2=%v", resp.Proto, enabled)
			}
			srv.admit(t, client)
		})
	}
}

// Past --webhook-max-connections, a new connection waits to be accepted instead of costing
// memory; it is served once a slot frees (here, when the deadline cuts the silent ones).
func TestConnectionsAreCapped(t *testing.T) {
	o := Options{MaxConnections: 5}.withServerDefaults()
	srv := startTestServer(t, o)
	for range o.MaxConnections {
		conn, err := tls.Dial("tcp", srv.addr, srv.tls)
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
	}
	start := time.Now()
	extra, err := tls.DialWithDialer(&net.Dialer{Timeout: 500 * time.Millisecond}, "tcp", srv.addr, srv.tls)
	if err == nil {
		extra.Close()
		t.Fatal("a connection past the cap was served at once")
	}
	client := &http.Client{Transport: &http.Transport{TLSClientConfig: srv.tls}, Timeout: 10 * time.Second}
	defer client.CloseIdleConnections()
	srv.admit(t, client)
	if took := time.Since(start); took > o.ReadHeaderTimeout+2*time.Second {
		t.Errorf("admission past the cap answered after %v, want once the silent connections are cut (%v)", took, o.ReadHeaderTimeout)
	}
}

// blockingHandler holds every review until release is closed.
type blockingHandler struct{ entered, release chan struct{} }

func (b blockingHandler) Handle(context.Context, admission.Request) admission.Response {
	b.entered <- struct{}{}
	<-b.release
	return admission.Allowed("test")
}

// Reviews in flight are bounded in bytes whatever the connections or HTTP/2 streams: a review
// that finds no room within a second is answered 503 (the API server then admits the pod
// unchanged under failurePolicy Ignore) and counted; once room frees, reviews are decided.
func TestInflightBytesAreBounded(t *testing.T) {
	review := []byte(`{"apiVersion":"admission.k8s.io/v1","kind":"AdmissionReview","request":{"uid":"u1","kind":{"group":"","version":"v1","kind":"Pod"},"resource":{"group":"","version":"v1","resource":"pods"},"operation":"CREATE","object":{"metadata":{"name":"p"},"spec":{}}}}`)
	b := blockingHandler{entered: make(chan struct{}, 1), release: make(chan struct{})}
	h := admissionHandler(&admission.Webhook{Handler: b}, Options{MaxInflightBytes: 1}.withServerDefaults().MaxInflightBytes, logr.Discard())
	post := func(length int64) *httptest.ResponseRecorder {
		r := httptest.NewRequest(http.MethodPost, testPath, bytes.NewReader(review))
		r.Header.Set("Content-Type", "application/json")
		r.ContentLength = length
		w := httptest.NewRecorder()
		h.ServeHTTP(w, r)
		return w
	}
	first := make(chan *httptest.ResponseRecorder, 1)
	go func() { first <- post(-1) }() // unknown length: reserves the largest review, the whole budget
	<-b.entered
	before := testutil.ToFloat64(metrics.FailOpen.WithLabelValues("overloaded"))
	start := time.Now()
	if w := post(int64(len(review))); w.Code != http.StatusServiceUnavailable {
		t.Fatalf("second review while the budget is held: HTTP %d, want 503", w.Code)
	}
	if waited := time.Since(start); waited < inflightWait/2 || waited > 3*inflightWait {
		t.Errorf("turned away after %s, want about %s", waited, inflightWait)
	}
	if got := testutil.ToFloat64(metrics.FailOpen.WithLabelValues("overloaded")) - before; got != 1 {
		t.Errorf("fail-open{overloaded} grew by %v, want 1", got)
	}
	close(b.release)
	if w := <-first; w.Code != http.StatusOK {
		t.Fatalf("first review: HTTP %d", w.Code)
	}
	go func() { <-b.entered }()
	if w := post(int64(len(review))); w.Code != http.StatusOK || !strings.Contains(w.Body.String(), `"allowed":true`) {
		t.Fatalf("review after the budget freed: HTTP %d %s", w.Code, w.Body)
	}
}
