// Command loadtest measures dns-tuner as users feel it: pods created through a real
// kube-apiserver (envtest's, with etcd, all on loopback) by concurrent clients, with no
// webhook, with a minimal no-op webhook and with `dns-tuner serve`, alternating in one run so
// the three share the machine's state. It also runs the memory scenario of issue 8 (finding
// 3) against a fresh dns-tuner process. It prints markdown tables; see README.md.
//
//	KUBEBUILDER_ASSETS=... go run ./hack/loadtest
package main

import (
	"context"
	"crypto/x509"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"runtime"
	"strings"
	"syscall"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
)

type options struct {
	root, binary, setups, dnsTunerArgs string
	apiserverProfiles                  string
	pods, clients, alternations, cold  int
	libcAnnotation, memory             bool
	timeout                            time.Duration
	mem                                memOptions
}

func main() {
	if len(os.Args) > 1 && os.Args[1] == "noop-webhook" {
		if err := serveNoop(os.Args[2:]); err != nil {
			fmt.Fprintln(os.Stderr, "noop-webhook:", err)
			os.Exit(1)
		}
		return
	}
	var o options
	flag.StringVar(&o.root, "root", ".", "Repository root (for cmd/dns-tuner and config/webhook).")
	flag.StringVar(&o.binary, "dns-tuner", "", "A dns-tuner binary to run. Empty: go build ./cmd/dns-tuner from --root.")
	flag.StringVar(&o.dnsTunerArgs, "dns-tuner-args", "", "Extra flags for `dns-tuner serve`, space separated.")
	flag.StringVar(&o.setups, "setups", "none,noop,dns-tuner,replay,replay-spec", "Setups to alternate, in order: none, noop, dns-tuner, dns-tuner-h2 (with --enable-http2), replay (the no-op webhook answering with dns-tuner's patch and warnings; after dns-tuner), replay-spec (the same with only the patch's /spec operations: what changing a pod's spec costs the API server, without annotations or warnings).")
	flag.IntVar(&o.pods, "pods", 1500, "Dry-run pod creations per setup and alternation, after the cold burst.")
	flag.IntVar(&o.clients, "clients", 20, "Concurrent clients.")
	flag.IntVar(&o.alternations, "alternations", 3, "How many times each setup runs.")
	flag.IntVar(&o.cold, "cold", 20, "Concurrent creations measured on their own right after each start (the cold burst).")
	flag.BoolVar(&o.libcAnnotation, "libc-annotation", false, "Give each load pod a dns-tuner.io/libc annotation instead of relying on registry inspection.")
	flag.BoolVar(&o.memory, "memory", true, "Run the memory scenario after the load.")
	flag.IntVar(&o.mem.pods, "mem-pods", 300, "Memory: distinct wide pods created.")
	flag.IntVar(&o.mem.containers, "mem-containers", 2000, "Memory: containers per wide pod.")
	flag.IntVar(&o.mem.clients, "mem-clients", 4, "Memory: concurrent clients creating wide pods.")
	flag.DurationVar(&o.mem.idle, "mem-idle", time.Minute, "Memory: idle time before reading the heap.")
	flag.BoolVar(&o.mem.waitGC, "mem-wait-gc", true, "Memory: after the idle time, wait (at most 2 more minutes) for the first GC after the load to read the live heap.")
	flag.IntVar(&o.mem.peakPods, "peak-pods", 10, "Memory: concurrent huge pods for the peak.")
	flag.IntVar(&o.mem.peakContainers, "peak-containers", 20000, "Memory: containers per huge pod.")
	flag.StringVar(&o.apiserverProfiles, "apiserver-profiles", "", "Directory to save a CPU profile of kube-apiserver per setup and alternation, taken during the load (go tool pprof reads them).")
	flag.DurationVar(&o.timeout, "timeout", 20*time.Minute, "Give up after this long.")
	flag.Parse()

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	ctx, cancel := context.WithTimeout(ctx, o.timeout)
	defer cancel()
	if err := run(ctx, o, os.Stdout, os.Stderr); err != nil {
		fmt.Fprintln(os.Stderr, "loadtest:", err)
		os.Exit(1)
	}
}

const namespace = "loadtest"

// env is what every setup shares.
type env struct {
	o        options
	dir      string
	cluster  *cluster
	reg      *registryImages
	caPEM    []byte
	ca       *x509.CertPool
	certDir  string
	port     int // the webhook port, the same for the no-op webhook and dns-tuner
	policy   string
	binary   string
	progress io.Writer
	// replay is dns-tuner's response to a load pod, saved by the first dns-tuner run;
	// replaySpec is that response with only its /spec operations and no warnings.
	replay, replaySpec string
	profiles           int // kube-apiserver profiles taken so far
}

func run(ctx context.Context, o options, out, progress io.Writer) error {
	dir, err := os.MkdirTemp("", "dns-tuner-loadtest-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	e := &env{o: o, dir: dir, progress: progress, certDir: filepath.Join(dir, "certs"), port: freePort()}
	if err := os.Mkdir(e.certDir, 0o700); err != nil {
		return err
	}
	if e.caPEM, err = writeServingCert(e.certDir); err != nil {
		return err
	}
	e.ca = x509.NewCertPool()
	e.ca.AppendCertsFromPEM(e.caPEM)

	if e.binary = o.binary; e.binary == "" {
		e.logf("building ./cmd/dns-tuner")
		e.binary = filepath.Join(dir, "dns-tuner")
		cmd := exec.CommandContext(ctx, "go", "build", "-o", e.binary, "./cmd/dns-tuner")
		cmd.Dir, cmd.Stderr = o.root, progress
		if err := cmd.Run(); err != nil {
			return fmt.Errorf("building dns-tuner: %w", err)
		}
	}
	e.logf("building images and starting the registry")
	if e.reg, err = startRegistry(dir); err != nil {
		return err
	}
	defer e.reg.close()
	e.policy = filepath.Join(dir, "policy.yaml")
	// The embedded default (mode off: namespaces opt in with the label, as the load namespace
	// does) with registry inspection on, as production runs it.
	pol := fmt.Sprintf("inspection:\n  enabled: true\n  insecureRegistries: [%q]\n", e.reg.host)
	if err := os.WriteFile(e.policy, []byte(pol), 0o600); err != nil {
		return err
	}

	e.logf("starting kube-apiserver and etcd")
	if e.cluster, err = startCluster(o.root, dir); err != nil {
		return err
	}
	defer e.cluster.stop()
	if err := e.cluster.createNamespace(ctx, namespace); err != nil {
		return err
	}

	fmt.Fprintf(out, "Run %s: %d CPUs, load average at start %s; dns-tuner %s.\n", time.Now().UTC().Format("2006-01-02 15:04 MST"),
		runtime.NumCPU(), loadAvg(), version(o))
	setups := strings.Split(o.setups, ",")
	results := map[string][]runResult{}
	for a := range o.alternations {
		for _, s := range setups {
			e.logf("alternation %d/%d: %s", a+1, o.alternations, s)
			r, err := e.runSetup(ctx, s)
			if err != nil {
				return fmt.Errorf("%s, alternation %d: %w", s, a+1, err)
			}
			results[s] = append(results[s], r)
		}
	}
	if err := e.cluster.unregisterWebhook(ctx); err != nil {
		return err
	}
	printLoad(out, o, setups, results)

	if o.memory {
		m, err := e.runMemory(ctx)
		if err != nil {
			return fmt.Errorf("memory scenario: %w", err)
		}
		printMemory(out, o, m)
	}
	fmt.Fprintf(out, "\nLoad average at the end: %s.\n", loadAvg())
	return nil
}

// version names the dns-tuner measured: the commit it was built from, or the binary given.
func version(o options) string {
	if o.binary != "" {
		return o.binary
	}
	out, err := exec.Command("git", "-C", o.root, "describe", "--always", "--dirty").Output()
	if err != nil {
		return "built from " + o.root
	}
	return "built from commit " + strings.TrimSpace(string(out))
}

// loadAvg is the 1, 5 and 15 minute load averages: other work on the machine skews figures.
func loadAvg() string {
	b, err := os.ReadFile("/proc/loadavg")
	if f := strings.Fields(string(b)); err == nil && len(f) >= 3 {
		return strings.Join(f[:3], " ")
	}
	return "unknown"
}

func (e *env) logf(format string, a ...any) {
	fmt.Fprintf(e.progress, "%s  %s\n", time.Now().Format("15:04:05"), fmt.Sprintf(format, a...))
}

// runResult is one setup's cold burst and load in one alternation.
type runResult struct {
	cold, warm result
	// serverCold is dns-tuner's own mean handling time of the cold burst, from
	// controller-runtime's webhook latency histogram (0 for other setups).
	serverCold time.Duration
	// serverWarm is the same over the load after the burst.
	serverWarm time.Duration
	// coldConns is how many connections the API server opened to the no-op webhook for the
	// cold burst (0 for other setups).
	coldConns int
	// reviews is how many reviews the webhook answered (more than the pods if the API server
	// reinvoked it).
	reviews int
	// cpuPerReview is the webhook process's CPU time (user and system, TLS included) over the
	// load divided by the reviews it answered then: what each review takes from the cores
	// the API server shares (0 for none).
	cpuPerReview time.Duration
	// apiserverPerPod and machinePerPod are kube-apiserver's CPU time and the whole
	// machine's (every process, all cores) over the load, per pod created.
	apiserverPerPod, machinePerPod time.Duration
	// busy is the share of the machine's cores busy during the load: near 1, throughput is
	// bound by CPU, and every microsecond anyone spends on a pod lowers it.
	busy float64
}

func (e *env) startDNSTuner(ctx context.Context, name string, extraArgs ...string) (*dnsTuner, error) {
	return startDNSTuner(ctx, dnsTunerConfig{
		binary: e.binary, kubeconfig: e.cluster.kubeconfig, certDir: e.certDir, policy: e.policy,
		logPath: filepath.Join(e.dir, name+".log"), webhookPort: e.port, extraArgs: append(strings.Fields(e.o.dnsTunerArgs), extraArgs...),
	})
}

// target is a setup's webhook, running.
type target struct {
	check func(*corev1.Pod) error // judges each created pod
	stop  func()
	// reviews counts the reviews the webhook answered; conns the connections the stdlib
	// webhooks accepted. Nil when they do not apply.
	reviews, conns func() (int, error)
	dnsTuner       *dnsTuner
	pid            func() int // the webhook's process, 0 for none
}

// start registers the webhook configuration (none: removes it) and starts the setup's webhook
// server. The configuration comes first, as in a cluster where it outlives each webhook pod:
// the API server calls the server as soon as it is ready.
func (e *env) start(ctx context.Context, setup string) (*target, error) {
	t := &target{check: untouched, stop: func() {}, pid: func() int { return 0 }}
	switch setup {
	case "none":
		return t, e.cluster.unregisterWebhook(ctx)
	case "noop", "replay", "replay-spec", "dns-tuner", "dns-tuner-h2":
	default:
		return nil, fmt.Errorf("unknown setup %q: want none, noop, dns-tuner, dns-tuner-h2, replay or replay-spec", setup)
	}
	if err := e.cluster.registerWebhook(ctx, e.port, e.caPEM); err != nil && !apierrors.IsAlreadyExists(err) {
		return nil, err
	}
	if setup == "dns-tuner" || setup == "dns-tuner-h2" {
		var extra []string
		if setup == "dns-tuner-h2" {
			extra = []string{"--enable-http2"}
		}
		dt, err := e.startDNSTuner(ctx, setup, extra...)
		if err != nil {
			return nil, err
		}
		return &target{check: injected, stop: dt.stop, reviews: dt.reviews(ctx), dnsTuner: dt, pid: dt.pid}, nil
	}
	var extra []string
	if setup == "replay" || setup == "replay-spec" {
		if e.replay == "" {
			return nil, errors.New(setup + " answers with dns-tuner's response: put dns-tuner before it in --setups")
		}
		extra, t.check = []string{e.replay}, injected
		if setup == "replay-spec" {
			extra, t.check = []string{e.replaySpec}, specOnly
		}
	}
	p, err := startNoop(ctx, fmt.Sprintf("127.0.0.1:%d", e.port), e.certDir, filepath.Join(e.dir, setup+".log"), e.ca, extra...)
	if err != nil {
		return nil, err
	}
	t.stop, t.pid = p.stop, p.pid
	c := tlsClient(e.ca)
	counts := func() (reviews, conns int, err error) {
		s, err := httpGet(ctx, c, fmt.Sprintf("https://127.0.0.1:%d/count", e.port))
		if err == nil {
			_, err = fmt.Sscan(s, &reviews, &conns)
		}
		return reviews, conns, err
	}
	t.reviews = func() (int, error) { n, _, err := counts(); return n, err }
	t.conns = func() (int, error) {
		// Less the readiness probe's connection and this one.
		_, n, err := counts()
		return n - 2, err
	}
	return t, nil
}

// usage is how many reviews the webhook has answered and the CPU time its process has used.
func (t *target) usage() (reviews int, cpu time.Duration, err error) {
	if t.reviews == nil || t.pid() == 0 {
		return 0, 0, nil
	}
	if reviews, err = t.reviews(); err != nil {
		return 0, 0, err
	}
	cpu, err = cpuTime(t.pid())
	return reviews, cpu, err
}

// runSetup measures one setup: the webhook (if any) starts, becomes ready, and at once the
// cold burst of concurrent creations goes out; then the load.
func (e *env) runSetup(ctx context.Context, setup string) (runResult, error) {
	t, err := e.start(ctx, setup)
	if err != nil {
		return runResult{}, err
	}
	defer t.stop()
	check, dt := t.check, t.dnsTuner
	pod := loadPod(namespace, e.reg.app, e.reg.sidecar, e.o.libcAnnotation)
	var r runResult
	r.cold = createPods(ctx, e.cluster.cs, namespace, e.o.cold, e.o.cold, pod, check)
	if err = r.cold.err("cold burst"); err != nil {
		return r, err
	}
	if t.conns != nil {
		if r.coldConns, err = t.conns(); err != nil {
			return r, err
		}
	}
	var sum0, n0 float64
	if dt != nil {
		if sum0, n0, err = dt.handled(ctx); err != nil {
			return r, err
		}
		if n0 > 0 {
			r.serverCold = time.Duration(sum0 / n0 * float64(time.Second))
		}
	}
	reviews0, cpu0, err := t.usage()
	if err != nil {
		return r, err
	}
	api0, err := cpuTime(e.cluster.apiserverPID)
	if err != nil {
		return r, err
	}
	machine0, err := machineBusy()
	if err != nil {
		return r, err
	}
	profiled := e.profileAPIServer(ctx, setup)
	r.warm = createPods(ctx, e.cluster.cs, namespace, e.o.pods, e.o.clients, pod, check)
	// CPU is read as soon as the load ends, before waiting for a profile that may outlast it.
	machine1, err := machineBusy()
	if err != nil {
		return r, err
	}
	api1, err := cpuTime(e.cluster.apiserverPID)
	if err != nil {
		return r, err
	}
	if err := <-profiled; err != nil {
		return r, fmt.Errorf("profiling kube-apiserver: %w", err)
	}
	if err := r.warm.err("load"); err != nil {
		return r, err
	}
	r.apiserverPerPod = (api1 - api0) / time.Duration(e.o.pods)
	r.machinePerPod = (machine1 - machine0) / time.Duration(e.o.pods)
	r.busy = float64(machine1-machine0) / float64(r.warm.wall) / float64(runtime.NumCPU())
	reviews1, cpu1, err := t.usage()
	if err != nil {
		return r, err
	}
	if reviews1 > reviews0 {
		r.cpuPerReview = (cpu1 - cpu0) / time.Duration(reviews1-reviews0)
	}
	if dt != nil {
		sum, n, err := dt.handled(ctx)
		if err != nil {
			return r, err
		}
		if n > n0 {
			r.serverWarm = time.Duration((sum - sum0) / (n - n0) * float64(time.Second))
		}
	}
	if t.reviews != nil {
		n, err := t.reviews()
		if err != nil {
			return r, err
		}
		// A multi-container pod may be reviewed twice (reinvocationPolicy: IfNeeded).
		if want := e.o.cold + e.o.pods; n < want {
			return r, fmt.Errorf("the API server called the webhook %d times for %d pods", n, want)
		}
		r.reviews = n
	}
	if dt != nil && e.replay == "" {
		path := filepath.Join(e.dir, "replay.json")
		if err := dt.capture(ctx, fmt.Sprintf("https://127.0.0.1:%d/mutate-v1-pod", e.port), e.ca, pod(0), path); err != nil {
			return r, fmt.Errorf("capturing dns-tuner's response for the replay: %w", err)
		}
		e.replay = path
		if e.replaySpec, err = specOnlyResponse(path); err != nil {
			return r, err
		}
	}
	return r, ctx.Err()
}
