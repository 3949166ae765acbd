package main

import (
	"fmt"
	"io"
	"runtime"
	"slices"
	"time"

	corev1 "k8s.io/api/core/v1"

	"github.com/dns-tuner/dns-tuner/internal/mutate"
)

func untouched(p *corev1.Pod) error {
	if s, ok := p.Annotations[mutate.AnnotationStatus]; ok {
		return fmt.Errorf("pod has %s=%s without dns-tuner", mutate.AnnotationStatus, s)
	}
	return nil
}

// specOnly judges the replay-spec setup's pods: options injected, no dns-tuner annotation.
func specOnly(p *corev1.Pod) error {
	if p.Spec.DNSConfig == nil || len(p.Spec.DNSConfig.Options) == 0 {
		return fmt.Errorf("no dnsConfig options injected")
	}
	return untouched(p)
}

func injected(p *corev1.Pod) error {
	if s := p.Annotations[mutate.AnnotationStatus]; s != mutate.StatusInjected {
		return fmt.Errorf("dns-tuner did not inject: %s=%q, %s=%q", mutate.AnnotationStatus, s,
			mutate.AnnotationReason, p.Annotations[mutate.AnnotationReason])
	}
	return nil
}

// merge pools the batches of every alternation: latencies together, wall times added.
func merge(rs []result) result {
	var m result
	for _, r := range rs {
		m.lat = append(m.lat, r.lat...)
		m.wall += r.wall
	}
	slices.Sort(m.lat)
	return m
}

func us(d time.Duration) string { return fmt.Sprintf("%.0f µs", float64(d)/float64(time.Microsecond)) }

// cpuMeans are a setup's CPU times under load, means over its alternations.
type cpuMeans struct {
	machine, apiserver, webhook time.Duration
	busy                        float64
}

func meanCPU(rs []runResult) cpuMeans {
	var c cpuMeans
	if len(rs) == 0 {
		return c
	}
	for _, r := range rs {
		c.machine += r.machinePerPod
		c.apiserver += r.apiserverPerPod
		c.webhook += r.cpuPerReview
		c.busy += r.busy
	}
	n := time.Duration(len(rs))
	return cpuMeans{c.machine / n, c.apiserver / n, c.webhook / n, c.busy / float64(n)}
}

func ms(d time.Duration) string { return fmt.Sprintf("%.1f ms", float64(d)/float64(time.Millisecond)) }

func printLoad(w io.Writer, o options, setups []string, rs map[string][]runResult) {
	if o.alternations == 0 {
		return
	}
	fmt.Fprintf(w, "\n### Pod creations through kube-apiserver (dry-run, %d clients, %d pods per setup and alternation, %d alternations)\n\n",
		o.clients, o.pods, o.alternations)
	fmt.Fprintln(w, "| setup | pods/s | p50 | p99 | cold burst p50 | cold burst max |")
	fmt.Fprintln(w, "|---|---:|---:|---:|---:|---:|")
	warm, cold := map[string]result{}, map[string]result{}
	for _, s := range setups {
		var ws, cs []result
		for _, r := range rs[s] {
			ws, cs = append(ws, r.warm), append(cs, r.cold)
		}
		warm[s], cold[s] = merge(ws), merge(cs)
		fmt.Fprintf(w, "| %s | %.0f | %s | %s | %s | %s |\n", s, warm[s].podsPerSec(), ms(warm[s].p(0.5)), ms(warm[s].p(0.99)),
			ms(cold[s].p(0.5)), ms(cold[s].p(1)))
	}
	for _, s := range setups {
		n := 0
		for _, r := range rs[s] {
			n += r.reviews
		}
		if n > 0 {
			fmt.Fprintf(w, "\n%s answered %.2f reviews per pod.", s, float64(n)/float64(len(rs[s])*(o.cold+o.pods)))
		}
	}
	fmt.Fprintln(w)
	fmt.Fprintf(w, "\nCPU time under load (user and system, mean of the alternations): the whole machine's and kube-apiserver's per pod created, "+
		"and the webhook process's per review (TLS included). On %d cores the load keeps busy, throughput follows the machine's CPU per pod.\n\n", runtime.NumCPU())
	fmt.Fprintln(w, "| setup | cores busy | machine CPU per pod | kube-apiserver CPU per pod | webhook CPU per review |")
	fmt.Fprintln(w, "|---|---:|---:|---:|---:|")
	cpu := map[string]cpuMeans{}
	for _, s := range setups {
		c := meanCPU(rs[s])
		cpu[s] = c
		hook := "-"
		if c.webhook > 0 {
			hook = us(c.webhook)
		}
		fmt.Fprintf(w, "| %s | %.0f %% | %s | %s | %s |\n", s, 100*c.busy, us(c.machine), us(c.apiserver), hook)
	}
	if dt, ok := cpu["dns-tuner"]; ok && cpu["noop"].machine > 0 {
		nw := cpu["noop"]
		fmt.Fprintf(w, "\nWhat dns-tuner costs per pod over the no-op webhook: %s of the machine's CPU, of which kube-apiserver %s and dns-tuner's process %s per review.",
			us(dt.machine-nw.machine), us(dt.apiserver-nw.apiserver), us(dt.webhook-nw.webhook))
		if rs, ok := cpu["replay-spec"]; ok {
			fmt.Fprintf(w, " Applying any patch at all (replay-spec) costs kube-apiserver %s per pod over the no-op", us(rs.apiserver-nw.apiserver))
			if rp, ok := cpu["replay"]; ok {
				fmt.Fprintf(w, "; dns-tuner's annotations and warning (replay over replay-spec) %s more", us(rp.apiserver-rs.apiserver))
			}
			fmt.Fprint(w, ".")
		}
		fmt.Fprintln(w)
	}
	if wh, ok := warm["dns-tuner"]; ok {
		if nw, ok := warm["noop"]; ok {
			fmt.Fprintf(w, "\n| dns-tuner ÷ no-op webhook | measured | target |\n|---|---:|---|\n")
			fmt.Fprintf(w, "| throughput | %.2f× | ≥ 0.9× |\n", wh.podsPerSec()/nw.podsPerSec())
			fmt.Fprintf(w, "| p99 | %.2f× | ≤ 1.2× |\n", float64(wh.p(0.99))/float64(nw.p(0.99)))
			fmt.Fprintf(w, "| cold burst max (first %d concurrent after start) | %.2f× | no cliff (≈ 1×) |\n",
				o.cold, float64(cold["dns-tuner"].p(1))/float64(cold["noop"].p(1)))
		}
		if rp, ok := warm["replay"]; ok {
			fmt.Fprintf(w, "\nThe replay webhook answers every review with dns-tuner's response (same patch, same warnings) "+
				"at the no-op's cost: the API server's share of a mutation. dns-tuner ÷ replay: throughput %.2f×, p99 %.2f×; "+
				"replay ÷ no-op: throughput %.2f×, p99 %.2f×.\n",
				wh.podsPerSec()/rp.podsPerSec(), float64(wh.p(0.99))/float64(rp.p(0.99)),
				rp.podsPerSec()/warm["noop"].podsPerSec(), float64(rp.p(0.99))/float64(warm["noop"].p(0.99)))
		}
		if rs, ok := warm["replay-spec"]; ok {
			fmt.Fprintf(w, "\nThe replay-spec webhook answers with only the /spec part of that patch, no annotations and no warnings: "+
				"what changing a pod's spec at all costs the API server. replay-spec ÷ no-op: throughput %.2f×, p99 %.2f×; "+
				"dns-tuner ÷ replay-spec: throughput %.2f×, p99 %.2f×.\n",
				rs.podsPerSec()/warm["noop"].podsPerSec(), float64(rs.p(0.99))/float64(warm["noop"].p(0.99)),
				wh.podsPerSec()/rs.podsPerSec(), float64(wh.p(0.99))/float64(rs.p(0.99)))
		}
	}
	fmt.Fprintf(w, "\nEach alternation (cold burst: the first %d concurrent creations once the webhook is ready; dns-tuner's own time is the mean of controller-runtime's webhook latency histogram, time spent inside its server after TLS; for the no-op and replay webhooks, how many connections the API server opened for the burst):\n\n", o.cold)
	fmt.Fprintln(w, "| # | setup | pods/s | p50 | p99 | cold burst p50 | cold burst max | dns-tuner's own time in the burst | dns-tuner's own time, load |")
	fmt.Fprintln(w, "|---:|---|---:|---:|---:|---:|---:|---:|---:|")
	for a := range o.alternations {
		for _, s := range setups {
			if a >= len(rs[s]) {
				continue
			}
			r := rs[s][a]
			own, ownWarm := "-", "-"
			switch s {
			case "dns-tuner", "dns-tuner-h2":
				own, ownWarm = ms(r.serverCold), ms(r.serverWarm)
			case "noop", "replay", "replay-spec":
				own = fmt.Sprintf("(%d connections)", r.coldConns)
			}
			fmt.Fprintf(w, "| %d | %s | %.0f | %s | %s | %s | %s | %s | %s |\n", a+1, s, r.warm.podsPerSec(), ms(r.warm.p(0.5)), ms(r.warm.p(0.99)),
				ms(r.cold.p(0.5)), ms(r.cold.p(1)), own, ownWarm)
		}
	}
}

func mib(b float64) string { return fmt.Sprintf("%.0f MiB", b/(1<<20)) }

func printMemory(w io.Writer, o options, m memResult) {
	fmt.Fprintf(w, "\n### Memory of one dns-tuner process (issue 8, finding 3)\n\n")
	fmt.Fprintln(w, "| measure | value | target |")
	fmt.Fprintln(w, "|---|---:|---|")
	fmt.Fprintf(w, "| heap in use after %d distinct %d-container pods and %s idle (go_memstats_heap_inuse_bytes) | %s | ≤ 64 MiB |\n",
		o.mem.pods, o.mem.containers, o.mem.idle, mib(m.heapInuse))
	if m.haveLive {
		fmt.Fprintf(w, "| live heap marked by the last GC, %+.0f s from the end of the load (go_gc_heap_live_bytes) | %s | ≤ 64 MiB |\n",
			m.lastGC.Seconds(), mib(m.heapLive))
	}
	fmt.Fprintf(w, "| peak RSS so far (VmHWM) | %s | ≤ 256 MiB |\n", mib(float64(m.rssWide)))
	fmt.Fprintf(w, "| peak RSS after %d concurrent %d-container pods (VmHWM) | %s | ≤ 256 MiB |\n", o.mem.peakPods, o.mem.peakContainers, mib(float64(m.rssPeak)))
	fmt.Fprintf(w, "| heap in use right after them | %s | |\n", mib(m.heapInusePeak))
	fmt.Fprintf(w, "\nWide pods: %d reviews answered, %d pods annotated by dns-tuner, %d of %d creations failed",
		m.wideReviews, m.wideChanged, m.wide.errs, len(m.wide.lat))
	if m.wide.firstErr != nil {
		fmt.Fprintf(w, " (first: %.200s)", m.wide.firstErr)
	}
	fmt.Fprintf(w, ". Huge pods: %d reviews answered, %d pods annotated by dns-tuner, %d of %d creations failed",
		m.peakReviews, m.peakChanged, m.peak.errs, len(m.peak.lat))
	if m.peak.firstErr != nil {
		fmt.Fprintf(w, " (first: %.200s)", m.peak.firstErr)
	}
	fmt.Fprintln(w, ".")
}
