package mutate

import (
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/dns-tuner/dns-tuner/internal/libc"
	"github.com/dns-tuner/dns-tuner/internal/policy"
)

// RetryCost is what one container's resolver does with a resolv.conf's timeout and
// attempts, read from libc.Table: how long one name (one search step) can take when DNS is
// silent, and what one lost reply costs.
type RetryCost struct {
	Container string    `json:"container"`
	Libc      libc.Libc `json:"libc"`
	// Known is false when the libc's retry model is unknown (static, unknown).
	Known bool `json:"known"`
	// Timeout and Attempts as the resolver clamps them.
	Timeout  int `json:"timeout"`
	Attempts int `json:"attempts"`
	// WorstCase: a name with DNS silent (glibc and Go: timeout per try per nameserver,
	// attempts rounds; musl: timeout is the whole lookup).
	WorstCase time.Duration `json:"worstCase"`
	// Retransmit is what one lost reply costs: glibc and Go wait the whole timeout, musl
	// resends every timeout/attempts.
	Retransmit time.Duration `json:"retransmit"`
}

func clampTo(l libc.Limit, v int) int {
	if l.Max > 0 && v > l.Max {
		return l.Max
	}
	return max(v, l.Min)
}

// CostOf is a libc's RetryCost for resolv.conf values (nil: not set, the resolver's default)
// and the number of nameservers.
func CostOf(l libc.Libc, timeout, attempts *int, nameservers int) RetryCost {
	r := libc.About(l).Retry
	c := RetryCost{Libc: l, Known: r.Model != libc.RetryUnknown}
	if !c.Known {
		return c
	}
	c.Timeout, c.Attempts = r.Timeout.Default, r.Attempts.Default
	if timeout != nil {
		c.Timeout = *timeout
	}
	if attempts != nil {
		c.Attempts = *attempts
	}
	c.Timeout, c.Attempts = clampTo(r.Timeout, c.Timeout), clampTo(r.Attempts, c.Attempts)
	t := time.Duration(c.Timeout) * time.Second
	switch r.Model {
	case libc.RetryPerTry:
		c.WorstCase = t * time.Duration(c.Attempts*max(nameservers, 1))
	case libc.RetrySpread:
		c.WorstCase = t
	}
	c.Retransmit = r.LostReplyWait(c.Timeout, c.Attempts)
	return c
}

// RetryCosts is each container's RetryCost under the options of a resolv.conf (the last
// timeout and attempts win, as resolvers read them).
func RetryCosts(containers []Container, opts []policy.Option, nameservers int) []RetryCost {
	timeout, attempts := retryValues(opts)
	out := make([]RetryCost, 0, len(containers))
	for _, c := range containers {
		rc := CostOf(c.Verdict.Libc, timeout, attempts, nameservers)
		rc.Container = c.Name
		out = append(out, rc)
	}
	return out
}

func retryValues(opts []policy.Option) (timeout, attempts *int) {
	for _, o := range opts {
		o = CanonicalOption(o)
		if o.Value == nil {
			continue
		}
		v, err := strconv.Atoi(*o.Value)
		if err != nil {
			continue
		}
		switch o.Name {
		case "timeout":
			timeout = &v
		case "attempts":
			attempts = &v
		}
	}
	return timeout, attempts
}

// retryPair is a timeout and attempts a profile asks for (nil: not set).
type retryPair struct{ timeout, attempts *int }

func (p retryPair) String() string {
	var parts []string
	if p.timeout != nil {
		parts = append(parts, "timeout:"+strconv.Itoa(*p.timeout))
	}
	if p.attempts != nil {
		parts = append(parts, "attempts:"+strconv.Itoa(*p.attempts))
	}
	return strings.Join(parts, " ")
}

// score is the longest worst case and the longest lost-reply cost over the libcs.
func score(libcs []libc.Libc, p retryPair) (worst, retransmit time.Duration) {
	for _, l := range libcs {
		c := CostOf(l, p.timeout, p.attempts, 1)
		worst, retransmit = max(worst, c.WorstCase), max(retransmit, c.Retransmit)
	}
	return worst, retransmit
}

// chooseRetry picks one timeout and attempts for a pod's libcs (resolv.conf is per pod).
// glibc's and Go's timeout is per try, musl's the total, so one libc's values can stretch
// another's worst case: musl's timeout:2 attempts:10 makes glibc wait 2s x 5 (its most
// attempts) = 10s per name and Go 20s. The pick keeps every libc's worst case within what
// its own profile gives it alone (its defaults when its profile sets nothing), and among
// such pairs the one where a lost reply costs least, then the lowest worst case. Pairs are
// made of the values the profiles ask for, then of the libcs' defaults too; when none keeps
// every bound, the lowest longest worst case wins. note explains a pick in a pod whose libcs
// ask differently; ok is false when no profile sets timeout or attempts.
func chooseRetry(libcs []libc.Libc, wants map[libc.Libc]retryPair) (best retryPair, note string, ok bool) {
	addTo := func(list []*int, v *int) []*int {
		if v == nil || slices.ContainsFunc(list, func(x *int) bool { return *x == *v }) {
			return list
		}
		return append(list, v)
	}
	var ts, as []*int
	var askers []libc.Libc
	bound := map[libc.Libc]time.Duration{}
	for _, l := range libcs {
		w := wants[l]
		bound[l] = CostOf(l, w.timeout, w.attempts, 1).WorstCase
		if w.timeout != nil || w.attempts != nil {
			askers = append(askers, l)
			ts, as = addTo(ts, w.timeout), addTo(as, w.attempts)
		}
	}
	if len(askers) == 0 {
		return retryPair{}, "", false
	}
	pairs := func(ts, as []*int) []retryPair {
		if len(ts) == 0 {
			ts = []*int{nil}
		}
		if len(as) == 0 {
			as = []*int{nil}
		}
		var out []retryPair
		for _, t := range ts {
			for _, a := range as {
				out = append(out, retryPair{t, a})
			}
		}
		return out
	}
	pick := func(cands []retryPair) (retryPair, bool) {
		var best retryPair
		var bw, br time.Duration
		found := false
		for _, p := range cands {
			feasible := true
			for _, l := range libcs {
				if CostOf(l, p.timeout, p.attempts, 1).WorstCase > bound[l] {
					feasible = false
				}
			}
			if !feasible {
				continue
			}
			w, r := score(libcs, p)
			if !found || r < br || (r == br && w < bw) {
				best, bw, br, found = p, w, r, true
			}
		}
		return best, found
	}
	cands := pairs(ts, as)
	best, ok = pick(cands)
	if !ok {
		wide := slices.Clone(ts)
		wideA := slices.Clone(as)
		for _, l := range libcs {
			if r := libc.About(l).Retry; r.Model != libc.RetryUnknown {
				t, a := r.Timeout.Default, r.Attempts.Default
				wide, wideA = addTo(wide, &t), addTo(wideA, &a)
			}
		}
		cands = pairs(wide, wideA)
		best, ok = pick(cands)
	}
	if !ok { // no pair keeps every bound: the lowest longest worst case
		var bw time.Duration
		for i, p := range cands {
			if w, _ := score(libcs, p); i == 0 || w < bw {
				best, bw = p, w
			}
		}
	}
	if len(askers) == 1 && best.String() == wants[askers[0]].String() && len(libcs) == 1 {
		return best, "", true
	}
	differs := false
	for _, l := range askers {
		differs = differs || wants[l].String() != best.String()
	}
	if !differs {
		return best, "", true
	}
	var asked []string
	for _, l := range askers {
		asked = append(asked, fmt.Sprintf("%s wants %s", l, wants[l]))
	}
	var costs []string
	for _, l := range libcs {
		if c := CostOf(l, best.timeout, best.attempts, 1); c.Known {
			costs = append(costs, fmt.Sprintf("%s %s (a lost reply %s)", l, c.WorstCase, c.Retransmit.Round(time.Millisecond)))
		}
	}
	note = fmt.Sprintf("%s: using %s for the whole pod (resolv.conf is per pod), keeping each libc's worst case per name within its own profile's: %s",
		strings.Join(asked, ", "), best, strings.Join(costs, ", "))
	return best, note, true
}
