package verdicts

import (
	"sync"

	"github.com/hashicorp/golang-lru/v2/simplelru"
)

// boundedLRU is a least-recently-used map bounded in entries and in estimated bytes: entries
// alone do not bound memory when one verdict can carry long evidence and many scopes. Values
// are treated as immutable (callers replace them), so a value read outside the lock stays
// consistent.
type boundedLRU[K comparable, V any] struct {
	mu       sync.Mutex
	lru      *simplelru.LRU[K, sized[V]]
	size     func(K, V) int64 // conservative estimate of what an entry keeps alive (sizes.go)
	bytes    int64            // sum of size over the entries
	maxBytes int64
	onChange func(entries int) // metrics
}

type sized[V any] struct {
	val   V
	bytes int64
}

func newBoundedLRU[K comparable, V any](entries int, maxBytes int64, size func(K, V) int64, onChange func(int)) *boundedLRU[K, V] {
	c := &boundedLRU[K, V]{size: size, maxBytes: max(maxBytes, 1), onChange: onChange}
	// The callback runs inside Add, Remove and RemoveOldest, under c.mu.
	c.lru, _ = simplelru.NewLRU(max(entries, 1), func(_ K, s sized[V]) { c.bytes -= s.bytes })
	return c
}

func (c *boundedLRU[K, V]) get(k K) (V, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	s, ok := c.lru.Get(k)
	return s.val, ok
}

// update sets k to f(old value, present) atomically, so concurrent merges do not lose writes,
// then evicts the least recently used entries while over the byte budget. A value larger than
// the whole budget is returned but not kept.
func (c *boundedLRU[K, V]) update(k K, f func(old V, ok bool) V) V {
	c.mu.Lock()
	defer c.mu.Unlock()
	old, ok := c.lru.Peek(k)
	v := f(old.val, ok)
	n := c.size(k, v)
	if ok {
		c.lru.Remove(k)
	}
	if n <= c.maxBytes {
		c.lru.Add(k, sized[V]{v, n})
		c.bytes += n
		for c.bytes > c.maxBytes {
			c.lru.RemoveOldest()
		}
	}
	c.changed()
	return v
}

func (c *boundedLRU[K, V]) add(k K, v V) { c.update(k, func(V, bool) V { return v }) }

func (c *boundedLRU[K, V]) remove(k K) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.lru.Remove(k) {
		c.changed()
	}
}

func (c *boundedLRU[K, V]) len() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.lru.Len()
}

// accounted is the estimated size of the entries, never above the budget.
func (c *boundedLRU[K, V]) accounted() int64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.bytes
}

func (c *boundedLRU[K, V]) changed() {
	if c.onChange != nil {
		c.onChange(c.lru.Len())
	}
}
