// Package probes builds the resolver probes (getaddrinfo against glibc and musl, and Go's pure
// resolver) and runs batches of lookups with a given resolv.conf in a private mount namespace.
package probes

import (
	"bufio"
	"bytes"
	"context"
	_ "embed"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/dns-tuner/dns-tuner/internal/libc"
)

//go:embed cprobe/probe.c
var cSource []byte

//go:embed goprobe/main.go
var goSource []byte

// Libcs are the resolvers a probe exists for.
var Libcs = []libc.Libc{libc.GLibc, libc.Musl, libc.Go}

// Tools lists, per resolver, the programs the lab runs and the Debian package that has them.
var Tools = map[libc.Libc][][2]string{
	libc.GLibc: {{"gcc", "gcc"}},
	libc.Musl:  {{"musl-gcc", "musl-tools"}},
	libc.Go:    {},
}

// CheckHost reports what the lab needs and this machine lacks: root (for the mount namespace
// and port 53), unshare and mount (util-linux), and each resolver's compiler.
func CheckHost(which []libc.Libc) error {
	var missing []string
	if os.Geteuid() != 0 {
		missing = append(missing, "root (for unshare -m, mount --bind and port 53)")
	}
	need := [][2]string{{"unshare", "util-linux"}, {"mount", "mount"}, {"sh", "dash"}}
	for _, l := range which {
		need = append(need, Tools[l]...)
	}
	for _, t := range need {
		if _, err := exec.LookPath(t[0]); err != nil {
			missing = append(missing, fmt.Sprintf("%s (apt-get install %s)", t[0], t[1]))
		}
	}
	if len(missing) > 0 {
		return fmt.Errorf("dnslab needs: %s", strings.Join(missing, ", "))
	}
	return nil
}

// Set is a set of built probes.
type Set struct {
	dir string
	bin map[libc.Libc]string
}

// Build compiles the probes for the given resolvers into dir.
func Build(ctx context.Context, dir string, which []libc.Libc) (*Set, error) {
	if err := CheckHost(which); err != nil {
		return nil, err
	}
	s := &Set{dir: dir, bin: map[libc.Libc]string{}}
	src := filepath.Join(dir, "probe.c")
	if err := os.WriteFile(src, cSource, 0o644); err != nil {
		return nil, err
	}
	for _, l := range which {
		out := filepath.Join(dir, "probe-"+string(l))
		var cmd *exec.Cmd
		switch l {
		case libc.GLibc:
			cmd = exec.CommandContext(ctx, "gcc", "-O2", "-pthread", "-o", out, src)
		case libc.Musl:
			// Static, so the probe does not depend on where ld-musl is installed.
			cmd = exec.CommandContext(ctx, "musl-gcc", "-O2", "-static", "-pthread", "-o", out, src)
		case libc.Go:
			mod := filepath.Join(dir, "goprobe")
			if err := os.MkdirAll(mod, 0o755); err != nil {
				return nil, err
			}
			if err := os.WriteFile(filepath.Join(mod, "main.go"), goSource, 0o644); err != nil {
				return nil, err
			}
			if err := os.WriteFile(filepath.Join(mod, "go.mod"), []byte("module goprobe\n\ngo 1.22\n"), 0o644); err != nil {
				return nil, err
			}
			cmd = exec.CommandContext(ctx, goTool(), "build", "-o", out, ".")
			cmd.Dir = mod
			cmd.Env = append(os.Environ(), "CGO_ENABLED=0", "GOWORK=off", "GOFLAGS=")
		default:
			return nil, fmt.Errorf("no probe for %s", l)
		}
		if b, err := cmd.CombinedOutput(); err != nil {
			return nil, fmt.Errorf("building the %s probe: %v\n%s", l, err, b)
		}
		s.bin[l] = out
	}
	return s, nil
}

func goTool() string {
	if p, err := exec.LookPath("go"); err == nil {
		return p
	}
	if out, err := exec.Command("go", "env", "GOROOT").Output(); err == nil {
		return filepath.Join(strings.TrimSpace(string(out)), "bin", "go")
	}
	return "go"
}

// Result is one lookup.
type Result struct {
	Latency time.Duration
	Status  string // "ok" or the getaddrinfo error (EAI_NONAME, EAI_AGAIN…)
	Addrs   int
}

// hosts and nsswitch are what a container typically has: /etc/hosts first, then DNS. They
// also keep the lookup away from the host's other name services (mDNS, systemd-resolved).
const (
	hosts    = "127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n"
	nsswitch = "hosts: files dns\n"
)

// script binds the generated files over /etc in the private mount namespace, then runs the
// probe. The binds are invisible outside it (unshare -m makes mounts private).
const script = `set -e
mount --bind "$1" /etc/resolv.conf
mount --bind "$2" /etc/hosts
if [ -e /etc/nsswitch.conf ]; then mount --bind "$3" /etc/nsswitch.conf; fi
shift 3
exec "$@"`

// Where is where a batch of lookups runs.
type Where struct {
	// NetNS is a network namespace (ip netns) the lab created and that has no way off the
	// machine; empty: the host's, where only loopback nameservers are allowed.
	NetNS string
	// CPU is the CPU the probe is pinned to (taskset) when Pin is set.
	CPU int
	Pin bool
}

// Run looks each name up once with the resolver of l reading resolvConf, starting a lookup
// every spacing (each on its own thread, so slow lookups overlap). The resolv.conf must name
// only loopback nameservers, so no lookup can leave the machine.
func (s *Set) Run(ctx context.Context, l libc.Libc, resolvConf string, spacing time.Duration, names []string) ([]Result, error) {
	return s.RunIn(ctx, Where{}, l, resolvConf, spacing, names)
}

// RunIn is Run in a network namespace the lab built (any nameserver: the namespace cannot
// reach outside the machine), optionally pinned to a CPU.
func (s *Set) RunIn(ctx context.Context, w Where, l libc.Libc, resolvConf string, spacing time.Duration, names []string) ([]Result, error) {
	bin, ok := s.bin[l]
	if !ok {
		return nil, fmt.Errorf("no %s probe built", l)
	}
	if w.NetNS == "" {
		if err := loopbackOnly(resolvConf); err != nil {
			return nil, err
		}
	}
	dir, err := os.MkdirTemp(s.dir, "run-")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(dir)
	files := []string{filepath.Join(dir, "resolv.conf"), filepath.Join(dir, "hosts"), filepath.Join(dir, "nsswitch.conf")}
	for i, content := range []string{resolvConf, hosts, nsswitch} {
		if err := os.WriteFile(files[i], []byte(content), 0o644); err != nil {
			return nil, err
		}
	}
	args := append([]string{"unshare", "-m", "--propagation", "private", "sh", "-c", script, "sh"}, files...)
	args = append(append(args, bin, strconv.FormatInt(spacing.Microseconds(), 10)), names...)
	if w.Pin {
		args = append([]string{"taskset", "-c", strconv.Itoa(w.CPU)}, args...)
	}
	if w.NetNS != "" {
		args = append([]string{"ip", "netns", "exec", w.NetNS}, args...)
	}
	cmd := exec.CommandContext(ctx, args[0], args[1:]...)
	cmd.Env = append(os.Environ(), "GODEBUG=netdns=go")
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		return nil, fmt.Errorf("%s probe: %v: %s", l, err, strings.TrimSpace(stderr.String()))
	}
	res := make([]Result, len(names))
	seen := 0
	sc := bufio.NewScanner(&stdout)
	for sc.Scan() {
		var i, addrs int
		var ns int64
		var status string
		if _, err := fmt.Sscanf(sc.Text(), "%d %d %s %d", &i, &ns, &status, &addrs); err != nil || i < 0 || i >= len(names) {
			return nil, fmt.Errorf("%s probe: bad line %q", l, sc.Text())
		}
		res[i] = Result{Latency: time.Duration(ns), Status: status, Addrs: addrs}
		seen++
	}
	if seen != len(names) {
		return nil, fmt.Errorf("%s probe: %d results for %d lookups", l, seen, len(names))
	}
	return res, nil
}

func loopbackOnly(resolvConf string) error {
	for _, line := range strings.Split(resolvConf, "\n") {
		f := strings.Fields(line)
		if len(f) >= 2 && f[0] == "nameserver" && !strings.HasPrefix(f[1], "127.") && f[1] != "::1" {
			return fmt.Errorf("nameserver %s is not a loopback address: the lab never queries the network", f[1])
		}
	}
	return nil
}
