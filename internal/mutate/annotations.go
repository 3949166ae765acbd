package mutate

import (
	"encoding/json"
	"fmt"
	"sort"
	"strings"

	"github.com/dns-tuner/dns-tuner/internal/libc"
)

// MaxAnnotationBytes is the API server's limit on one object's annotations: the sum of
// len(key)+len(value) over all of them (apimachinery's ValidateAnnotationsSize). A patch
// that crosses it makes the API server reject a pod it would otherwise accept.
const MaxAnnotationBytes = 256 << 10

// listCap bounds an annotation that lists containers; past it the value is a summary, so a
// pod with thousands of containers gets a short annotation and `explain` has the details.
const listCap = 4096

// shortCap is what a free-text annotation is shortened to when the pod is near the limit.
const shortCap = 256

// ownPriority orders dns-tuner's annotations from most to least important: near the size
// limit the last ones are shortened first, then dropped first. Status goes last of all.
var ownPriority = []string{
	AnnotationStatus, AnnotationReason, AnnotationInjected, AnnotationWouldInject, AnnotationRaceFix,
	AnnotationDetectedLibc, AnnotationInspectionState, AnnotationIgnored, AnnotationAdvice, AnnotationEvidence,
}

func priority(key string) int {
	for i, k := range ownPriority {
		if k == key {
			return i
		}
	}
	return len(ownPriority)
}

// FitAnnotations returns the annotations of own that keep the pod within
// MaxAnnotationBytes once set over existing (the pod's annotations, never changed): it
// shortens the least important first, then drops them, keeping the status while it fits.
// dropped names what was left out.
func FitAnnotations(existing, own map[string]string) (kept map[string]string, dropped []string) {
	if len(own) == 0 {
		return own, nil
	}
	// Bytes of the annotations own does not replace.
	base := 0
	for k, v := range existing {
		if _, ok := own[k]; !ok {
			base += len(k) + len(v)
		}
	}
	size := base
	for k, v := range own {
		size += len(k) + len(v)
	}
	if size <= MaxAnnotationBytes { // nearly always: nothing to copy
		return own, nil
	}
	kept = make(map[string]string, len(own))
	for k, v := range own {
		kept[k] = v
	}
	// A key dropped from own leaves the pod's existing value in place: count it again.
	drop := func(k string) {
		size -= len(k) + len(kept[k])
		if v, ok := existing[k]; ok {
			size += len(k) + len(v)
		}
		delete(kept, k)
		dropped = append(dropped, k)
	}
	keys := make([]string, 0, len(own))
	for k := range own {
		keys = append(keys, k)
	}
	sort.Slice(keys, func(i, j int) bool { // least important first
		pi, pj := priority(keys[i]), priority(keys[j])
		if pi != pj {
			return pi > pj
		}
		return keys[i] < keys[j]
	})
	for _, k := range keys {
		if size <= MaxAnnotationBytes {
			return kept, dropped
		}
		if s := shorten(k, kept[k]); len(s) < len(kept[k]) {
			size -= len(kept[k]) - len(s)
			kept[k] = s
		}
	}
	for _, k := range keys {
		if size <= MaxAnnotationBytes {
			break
		}
		drop(k)
	}
	return kept, dropped
}

// shorten gives the short form of one of dns-tuner's annotations: a summary for the ones
// that list containers, the value clipped for free text, nothing for advice.
func shorten(key, value string) string {
	switch key {
	case AnnotationAdvice:
		return ""
	case AnnotationDetectedLibc:
		return summarizeDetected(value)
	case AnnotationIgnored:
		return summarizeIgnored(value)
	case AnnotationStatus:
		return value
	}
	return clip(value, shortCap)
}

// summarizeDetected turns "a=glibc,b=musl,c=glibc" into "2 glibc, 1 musl (3 containers)".
func summarizeDetected(value string) string {
	counts := map[string]int{}
	total := 0
	for _, pair := range strings.Split(value, ",") {
		if i := strings.LastIndexByte(pair, '='); i >= 0 {
			counts[pair[i+1:]]++
			total++
		}
	}
	var parts []string
	for _, l := range libc.All {
		if n := counts[string(l)]; n > 0 {
			parts = append(parts, fmt.Sprintf("%d %s", n, l))
		}
	}
	return clip(fmt.Sprintf("%s (%d containers; per container: dns-tuner explain)", strings.Join(parts, ", "), total), shortCap)
}

// summarizeIgnored turns {"a":["x"],"b":["x","y"]} into {"(2 containers)":["x","y"]}.
func summarizeIgnored(value string) string {
	var m map[string][]string
	if err := json.Unmarshal([]byte(value), &m); err != nil {
		return clip(value, shortCap)
	}
	seen := map[string]bool{}
	var opts []string
	for _, os := range m {
		for _, o := range os {
			if !seen[o] {
				seen[o] = true
				opts = append(opts, o)
			}
		}
	}
	sort.Strings(opts)
	b, _ := json.Marshal(map[string][]string{fmt.Sprintf("(%d containers)", len(m)): opts})
	if len(b) > shortCap {
		return ""
	}
	return string(b)
}

// listing is value, or its short form when it is longer than listCap.
func listing(key, value string) string {
	if len(value) > listCap {
		return shorten(key, value)
	}
	return value
}
