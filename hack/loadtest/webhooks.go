package main

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"crypto/rsa"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"math/big"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"time"

	admissionv1 "k8s.io/api/admission/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
)

// writeServingCert writes tls.crt and tls.key for 127.0.0.1 into dir and returns the PEM
// certificate, which is also the CA bundle (self-signed). RSA 2048, as cert-controller
// (--cert-mode=self-managed) and cert-manager's default issue, so the TLS handshakes cost
// what they cost in a cluster. Both webhooks serve this same certificate.
func writeServingCert(dir string) ([]byte, error) {
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		return nil, err
	}
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: "dns-tuner-loadtest"},
		IPAddresses:           []net.IP{net.IPv4(127, 0, 0, 1)},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(24 * time.Hour),
		KeyUsage:              x509.KeyUsageDigitalSignature | x509.KeyUsageKeyEncipherment | x509.KeyUsageCertSign,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		BasicConstraintsValid: true,
		IsCA:                  true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return nil, err
	}
	certPEM := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
	keyPEM := pem.EncodeToMemory(&pem.Block{Type: "RSA PRIVATE KEY", Bytes: x509.MarshalPKCS1PrivateKey(key)})
	if err := os.WriteFile(filepath.Join(dir, "tls.crt"), certPEM, 0o600); err != nil {
		return nil, err
	}
	return certPEM, os.WriteFile(filepath.Join(dir, "tls.key"), keyPEM, 0o600)
}

// serveNoop is the no-op webhook (`loadtest noop-webhook`): stdlib net/http over TLS, decode
// the AdmissionReview, allow it unchanged. It is the floor any webhook pays: the API server's
// call, TLS, HTTP and one JSON decode and encode. GET /count says how many reviews it allowed,
// so the harness can check that the API server called it.
func serveNoop(args []string) error {
	if len(args) != 2 && len(args) != 3 {
		return errors.New("usage: loadtest noop-webhook ADDR CERT_DIR [RESPONSE_FILE]")
	}
	addr, dir := args[0], args[1]
	// With a response file it is the replay webhook: every review gets that response (patch
	// and warnings), so the API server does the work of a mutation without dns-tuner's.
	answer := admissionv1.AdmissionResponse{Allowed: true}
	if len(args) == 3 {
		b, err := os.ReadFile(args[2])
		if err != nil {
			return err
		}
		if err := json.Unmarshal(b, &answer); err != nil {
			return err
		}
	}
	var n, conns atomic.Int64
	mux := http.NewServeMux()
	mux.HandleFunc("POST /", func(w http.ResponseWriter, r *http.Request) {
		var ar admissionv1.AdmissionReview
		if err := json.NewDecoder(r.Body).Decode(&ar); err != nil || ar.Request == nil {
			http.Error(w, "bad review", http.StatusBadRequest)
			return
		}
		n.Add(1)
		resp := answer
		resp.UID = ar.Request.UID
		ar.Response = &resp
		ar.Request = nil
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(&ar)
	})
	mux.HandleFunc("GET /count", func(w http.ResponseWriter, _ *http.Request) { fmt.Fprint(w, n.Load(), conns.Load()) })
	srv := &http.Server{Addr: addr, Handler: mux, ReadHeaderTimeout: 10 * time.Second,
		ConnState: func(_ net.Conn, s http.ConnState) {
			if s == http.StateNew {
				conns.Add(1)
			}
		}}
	return srv.ListenAndServeTLS(filepath.Join(dir, "tls.crt"), filepath.Join(dir, "tls.key"))
}

// process is a webhook server the harness started as a child process.
type process struct {
	cmd  *exec.Cmd
	done chan error
	// ready answers nil once the server takes reviews.
	ready func(context.Context) error
}

func startProcess(name string, args []string, logPath string) (*process, error) {
	logFile, err := os.Create(logPath)
	if err != nil {
		return nil, err
	}
	cmd := exec.Command(name, args...)
	cmd.Stdout, cmd.Stderr = logFile, logFile
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL} // never outlive the harness
	if err := cmd.Start(); err != nil {
		logFile.Close()
		return nil, err
	}
	p := &process{cmd: cmd, done: make(chan error, 1)}
	go func() { p.done <- cmd.Wait(); logFile.Close() }()
	return p, nil
}

// stop sends SIGTERM (graceful, as kubelet does) and kills after 10 s.
func (p *process) stop() {
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.done: //nolint:errcheck // the exit status of a process told to stop says nothing new
	case <-time.After(10 * time.Second):
		_ = p.cmd.Process.Kill()
		<-p.done //nolint:errcheck // killed: its exit status is known
	}
}

func (p *process) pid() int { return p.cmd.Process.Pid }

// waitReady polls check every 10 ms until it answers nil, the process exits or ctx ends.
func (p *process) waitReady(ctx context.Context, timeout time.Duration) error {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	for {
		err := p.ready(ctx)
		if err == nil {
			return nil
		}
		select {
		case e := <-p.done:
			p.done <- e
			return fmt.Errorf("%s exited: %v", filepath.Base(p.cmd.Path), e)
		case <-ctx.Done():
			return fmt.Errorf("%s not ready: %v", filepath.Base(p.cmd.Path), err)
		case <-time.After(10 * time.Millisecond):
		}
	}
}

func httpGet(ctx context.Context, c *http.Client, url string) (string, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return "", err
	}
	resp, err := c.Do(req)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err == nil && resp.StatusCode != http.StatusOK {
		err = fmt.Errorf("%s: HTTP %d: %s", url, resp.StatusCode, strings.TrimSpace(string(b)))
	}
	return string(b), err
}

// startNoop runs this program again as the no-op webhook (extra: the replay's response file), so that it is a process of its own
// like dns-tuner, and the harness's load generation does not share its CPU budget.
func startNoop(ctx context.Context, addr, certDir, logPath string, ca *x509.CertPool, extra ...string) (*process, error) {
	self, err := os.Executable()
	if err != nil {
		return nil, err
	}
	p, err := startProcess(self, append([]string{"noop-webhook", addr, certDir}, extra...), logPath)
	if err != nil {
		return nil, err
	}
	c := tlsClient(ca)
	p.ready = func(ctx context.Context) error {
		_, err := httpGet(ctx, c, "https://"+addr+"/count")
		return err
	}
	if err := p.waitReady(ctx, 30*time.Second); err != nil {
		p.stop()
		return nil, err
	}
	c.CloseIdleConnections() // the API server must open its own connection, as after a restart
	return p, nil
}

func tlsClient(ca *x509.CertPool) *http.Client {
	return &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{
		TLSClientConfig: &tls.Config{RootCAs: ca}, ForceAttemptHTTP2: true}}
}

// dnsTuner is `dns-tuner serve` as the chart runs it, with loopback addresses.
type dnsTuner struct {
	*process
	metricsURL string
}

type dnsTunerConfig struct {
	binary, kubeconfig, certDir, policy, logPath string
	webhookPort                                  int
	extraArgs                                    []string
}

func startDNSTuner(ctx context.Context, c dnsTunerConfig) (*dnsTuner, error) {
	metricsAddr, healthAddr := "127.0.0.1:"+strconv.Itoa(freePort()), "127.0.0.1:"+strconv.Itoa(freePort())
	args := append([]string{"serve",
		"--kubeconfig", c.kubeconfig,
		"--cert-mode", "external", "--cert-dir", c.certDir,
		"--webhook-host", "127.0.0.1", "--webhook-port", strconv.Itoa(c.webhookPort),
		"--config", c.policy,
		"--metrics-bind-address", metricsAddr, "--health-probe-bind-address", healthAddr,
		"--namespace", "dns-tuner-system",
	}, c.extraArgs...)
	p, err := startProcess(c.binary, args, c.logPath)
	if err != nil {
		return nil, err
	}
	hc := &http.Client{Timeout: 5 * time.Second}
	// /readyz is what the chart's readiness probe asks, so what puts the pod in the Service.
	p.ready = func(ctx context.Context) error {
		_, err := httpGet(ctx, hc, "http://"+healthAddr+"/readyz")
		return err
	}
	if err := p.waitReady(ctx, 60*time.Second); err != nil {
		p.stop()
		return nil, fmt.Errorf("%w (log: %s)", err, c.logPath)
	}
	return &dnsTuner{process: p, metricsURL: "http://" + metricsAddr + "/metrics"}, nil
}

// metrics scrapes the Prometheus endpoint and sums each metric over its label sets.
func (d *dnsTuner) metrics(ctx context.Context) (map[string]float64, error) {
	body, err := httpGet(ctx, &http.Client{Timeout: 10 * time.Second}, d.metricsURL)
	if err != nil {
		return nil, err
	}
	out := map[string]float64{}
	sc := bufio.NewScanner(strings.NewReader(body))
	for sc.Scan() {
		line := sc.Text()
		if line == "" || line[0] == '#' {
			continue
		}
		i := strings.LastIndexByte(line, ' ')
		if i < 0 {
			continue
		}
		v, err := strconv.ParseFloat(line[i+1:], 64)
		if err != nil {
			continue
		}
		nameEnd := strings.IndexAny(line, "{ ")
		out[line[:nameEnd]] += v
		out[line[:i]] = v // also keep each series by its full name with labels
	}
	return out, sc.Err()
}

// reviews counts the admission reviews the webhook server answered, whatever their outcome.
func (d *dnsTuner) reviews(ctx context.Context) func() (int, error) {
	return func() (int, error) {
		m, err := d.metrics(ctx)
		return int(m["controller_runtime_webhook_requests_total"]), err
	}
}

// handled is the total time dns-tuner's webhook server spent on the reviews it answered and
// their count, from controller-runtime's latency histogram: time inside the server, after TLS.
func (d *dnsTuner) handled(ctx context.Context) (seconds, reviews float64, err error) {
	m, err := d.metrics(ctx)
	return m[`controller_runtime_webhook_latency_seconds_sum{webhook="/mutate-v1-pod"}`],
		m[`controller_runtime_webhook_latency_seconds_count{webhook="/mutate-v1-pod"}`], err
}

// capture sends dns-tuner a review of pod straight from the harness and saves its response
// to path, for the replay webhook.
func (d *dnsTuner) capture(ctx context.Context, url string, ca *x509.CertPool, pod *corev1.Pod, path string) error {
	raw, err := json.Marshal(pod)
	if err != nil {
		return err
	}
	gvk, gvr := metav1.GroupVersionKind{Version: "v1", Kind: "Pod"}, metav1.GroupVersionResource{Version: "v1", Resource: "pods"}
	body, err := json.Marshal(admissionv1.AdmissionReview{
		TypeMeta: metav1.TypeMeta{APIVersion: "admission.k8s.io/v1", Kind: "AdmissionReview"},
		Request: &admissionv1.AdmissionRequest{UID: "capture", Kind: gvk, Resource: gvr, RequestKind: &gvk, RequestResource: &gvr,
			Namespace: pod.Namespace, Operation: admissionv1.Create, Object: runtime.RawExtension{Raw: raw}},
	})
	if err != nil {
		return err
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, url, bytes.NewReader(body))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := tlsClient(ca).Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	var ar admissionv1.AdmissionReview
	if err := json.NewDecoder(resp.Body).Decode(&ar); err != nil {
		return err
	}
	if ar.Response == nil || len(ar.Response.Patch) == 0 {
		return fmt.Errorf("dns-tuner answered the captured review without a patch: %+v", ar.Response)
	}
	b, err := json.Marshal(ar.Response)
	if err != nil {
		return err
	}
	return os.WriteFile(path, b, 0o600)
}

// specOnlyResponse writes, next to the response file at path, the same response with only
// its patch operations on /spec and no warnings, and returns its path.
func specOnlyResponse(path string) (string, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return "", err
	}
	var resp admissionv1.AdmissionResponse
	if err := json.Unmarshal(b, &resp); err != nil {
		return "", err
	}
	var ops []map[string]any
	if err := json.Unmarshal(resp.Patch, &ops); err != nil {
		return "", err
	}
	var spec []map[string]any
	for _, op := range ops {
		if p, _ := op["path"].(string); strings.HasPrefix(p, "/spec/") {
			spec = append(spec, op)
		}
	}
	if len(spec) == 0 {
		return "", fmt.Errorf("dns-tuner's response changes no /spec field: %s", resp.Patch)
	}
	if resp.Patch, err = json.Marshal(spec); err != nil {
		return "", err
	}
	resp.Warnings, resp.Result = nil, nil
	if b, err = json.Marshal(resp); err != nil {
		return "", err
	}
	out := strings.TrimSuffix(path, ".json") + "-spec.json"
	return out, os.WriteFile(out, b, 0o600)
}

// settle waits (at most a minute) until the webhook server has no review in flight: the API
// server stops waiting after the configuration's timeoutSeconds, dns-tuner may not.
func (d *dnsTuner) settle(ctx context.Context) error {
	for deadline := time.Now().Add(time.Minute); ; {
		m, err := d.metrics(ctx)
		if err != nil {
			return err
		}
		if m["controller_runtime_webhook_requests_in_flight"] == 0 || time.Now().After(deadline) {
			return nil
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// cpuTime is the CPU time the process has used, user and system (utime and stime in
// /proc/PID/stat, in clock ticks of 10 ms: Linux's USER_HZ is 100).
func cpuTime(pid int) (time.Duration, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, err
	}
	// The command name (field 2) may hold spaces; the fields after its closing parenthesis
	// start with field 3, so utime (14) and stime (15) are the 12th and 13th there.
	f := strings.Fields(string(b[bytes.LastIndexByte(b, ')')+1:]))
	if len(f) < 13 {
		return 0, fmt.Errorf("/proc/%d/stat: too few fields", pid)
	}
	var ticks int64
	for _, s := range f[11:13] {
		n, err := strconv.ParseInt(s, 10, 64)
		if err != nil {
			return 0, fmt.Errorf("/proc/%d/stat: %w", pid, err)
		}
		ticks += n
	}
	return time.Duration(ticks) * 10 * time.Millisecond, nil
}

// machineBusy is the CPU time all cores have spent on anything but idling and waiting for
// I/O since boot (/proc/stat, in clock ticks of 10 ms).
func machineBusy() (time.Duration, error) {
	b, err := os.ReadFile("/proc/stat")
	if err != nil {
		return 0, err
	}
	line, _, _ := strings.Cut(string(b), "\n")
	f := strings.Fields(line) // cpu user nice system idle iowait irq softirq steal ...
	if len(f) < 8 || f[0] != "cpu" {
		return 0, fmt.Errorf("/proc/stat: unexpected first line %q", line)
	}
	var ticks int64
	for i, v := range f[1:] {
		if i == 3 || i == 4 || i >= 8 { // idle, iowait; guest time is inside user already
			continue
		}
		n, err := strconv.ParseInt(v, 10, 64)
		if err != nil {
			return 0, fmt.Errorf("/proc/stat: %w", err)
		}
		ticks += n
	}
	return time.Duration(ticks) * 10 * time.Millisecond, nil
}

// processByExe is the PID of the running process whose executable is path.
func processByExe(path string) (int, error) {
	entries, err := os.ReadDir("/proc")
	if err != nil {
		return 0, err
	}
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		if exe, err := os.Readlink(fmt.Sprintf("/proc/%d/exe", pid)); err == nil && exe == path {
			return pid, nil
		}
	}
	return 0, fmt.Errorf("no process runs %s", path)
}

// vmHWM is the process's peak resident set (VmHWM in /proc/PID/status), in bytes.
func vmHWM(pid int) (int64, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, err
	}
	for _, line := range strings.Split(string(b), "\n") {
		if f := strings.Fields(line); len(f) == 3 && f[0] == "VmHWM:" && f[2] == "kB" {
			kb, err := strconv.ParseInt(f[1], 10, 64)
			return kb * 1024, err
		}
	}
	return 0, fmt.Errorf("no VmHWM in /proc/%d/status", pid)
}

func freePort() int {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		panic(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}
