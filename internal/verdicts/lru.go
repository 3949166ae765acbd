package verdicts

import (
	"container/list"
	"sync"
)

// lru is a bounded map that evicts the least recently used key. Values are treated as
// immutable: callers replace them rather than mutate them, so a value read outside the lock
// stays consistent.
type lru[K comparable, V any] struct {
	mu      sync.Mutex
	max     int
	ll      *list.List
	items   map[K]*list.Element
	onSize  func(int) // reports the size after a change (metrics)
	evicted int
}

type lruItem[K comparable, V any] struct {
	key K
	val V
}

func newLRU[K comparable, V any](max int, onSize func(int)) *lru[K, V] {
	if max <= 0 {
		max = 1
	}
	return &lru[K, V]{max: max, ll: list.New(), items: map[K]*list.Element{}, onSize: onSize}
}

func (c *lru[K, V]) get(k K) (V, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if e, ok := c.items[k]; ok {
		c.ll.MoveToFront(e)
		return e.Value.(*lruItem[K, V]).val, true
	}
	var zero V
	return zero, false
}

// update sets k to f(old value, present) atomically, so concurrent merges do not lose writes.
func (c *lru[K, V]) update(k K, f func(old V, ok bool) V) V {
	c.mu.Lock()
	defer c.mu.Unlock()
	if e, ok := c.items[k]; ok {
		it := e.Value.(*lruItem[K, V])
		it.val = f(it.val, true)
		c.ll.MoveToFront(e)
		return it.val
	}
	var zero V
	v := f(zero, false)
	c.items[k] = c.ll.PushFront(&lruItem[K, V]{key: k, val: v})
	for c.ll.Len() > c.max {
		old := c.ll.Back()
		c.ll.Remove(old)
		delete(c.items, old.Value.(*lruItem[K, V]).key)
		c.evicted++
	}
	c.size()
	return v
}

func (c *lru[K, V]) add(k K, v V) { c.update(k, func(V, bool) V { return v }) }

func (c *lru[K, V]) remove(k K) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if e, ok := c.items[k]; ok {
		c.ll.Remove(e)
		delete(c.items, k)
		c.size()
	}
}

func (c *lru[K, V]) len() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.ll.Len()
}

func (c *lru[K, V]) size() {
	if c.onSize != nil {
		c.onSize(c.ll.Len())
	}
}
