package webhook

import (
	"container/list"
	"encoding/json"
	"sort"
	"strconv"
	"strings"
	"sync"

	corev1 "k8s.io/api/core/v1"

	"github.com/dns-tuner/dns-tuner/internal/mutate"
	"github.com/dns-tuner/dns-tuner/internal/policy"
)

// decision is a plan with its patch already encoded, ready to send.
type decision struct {
	plan  mutate.Plan
	patch []byte // JSON patch; nil when there is nothing to change
}

// decide runs mutate.Decide and mutate.Patch. The pods of one ReplicaSet reach it with the
// same inputs, so the result is memoised under a key built from every field Decide and Patch
// read; TestDecisionCacheMatchesDecide holds it to the uncached result.
func (c *decisionCache) decide(p *policy.Policy, pod *corev1.Pod, md mutate.ModeDecision, containers []mutate.Container) (decision, error) {
	key := decisionKey(md, pod, containers)
	if d, ok := c.get(p, key); ok {
		return d, nil
	}
	plan := mutate.Decide(p, pod, md, containers)
	d := decision{plan: plan}
	if ops := mutate.Patch(pod, plan); len(ops) > 0 {
		b, err := json.Marshal(ops)
		if err != nil {
			return decision{}, err
		}
		d.patch = b
	}
	c.put(p, key, d)
	return d, nil
}

// decisionCache is a small LRU of decisions for one policy; a new policy empties it.
type decisionCache struct {
	mu      sync.Mutex
	max     int
	pol     *policy.Policy
	order   *list.List // front: most recent; values are keys
	entries map[string]*list.Element
	values  map[string]decision
}

func newDecisionCache(max int) *decisionCache {
	return &decisionCache{max: max, order: list.New(), entries: map[string]*list.Element{}, values: map[string]decision{}}
}

func (c *decisionCache) get(p *policy.Policy, key string) (decision, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.pol != p {
		return decision{}, false
	}
	e, ok := c.entries[key]
	if !ok {
		return decision{}, false
	}
	c.order.MoveToFront(e)
	return c.values[key], true
}

func (c *decisionCache) put(p *policy.Policy, key string, d decision) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.pol != p { // the policy changed: every cached decision is stale
		c.pol = p
		c.order.Init()
		clear(c.entries)
		clear(c.values)
	}
	if _, ok := c.entries[key]; ok {
		return
	}
	c.entries[key] = c.order.PushFront(key)
	c.values[key] = d
	for c.order.Len() > c.max {
		old := c.order.Remove(c.order.Back()).(string)
		delete(c.entries, old)
		delete(c.values, old)
	}
}

// decisionKey encodes every input of Decide and Patch except the policy (the cache is per
// policy): the mode decision, the pod's DNS settings, whether it has annotations and the
// values of dns-tuner's own, and each container's name and verdict fields that Decide uses.
func decisionKey(md mutate.ModeDecision, pod *corev1.Pod, containers []mutate.Container) string {
	var b strings.Builder
	w := func(parts ...string) {
		for _, s := range parts {
			b.WriteString(strconv.Quote(s))
			b.WriteByte(' ')
		}
	}
	w(string(md.Mode), md.Reason)
	w(md.Warnings...)
	w("|", pod.Namespace, string(pod.Spec.DNSPolicy), strconv.FormatBool(pod.Spec.HostNetwork))
	if dc := pod.Spec.DNSConfig; dc != nil {
		w("dnsConfig")
		for _, o := range dc.Options {
			w(policy.OptionString(o))
			if o.Value != nil && *o.Value == "" {
				w("(empty)")
			}
		}
		w("|")
		w(dc.Nameservers...)
		w("|")
		w(dc.Searches...)
	}
	w("|", strconv.Itoa(len(pod.Annotations)))
	own := make([]string, 0, 4)
	for k := range pod.Annotations {
		if strings.HasPrefix(k, mutate.Prefix) {
			own = append(own, k)
		}
	}
	sort.Strings(own)
	for _, k := range own {
		w(k, pod.Annotations[k])
	}
	w("|")
	for _, c := range containers {
		v := c.Verdict
		w(c.Name, strconv.FormatBool(c.Init), string(v.Libc), v.Version, v.Reason)
	}
	return b.String()
}
