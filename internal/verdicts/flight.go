package verdicts

import (
	"fmt"
	"sync"

	"golang.org/x/sync/singleflight"
)

// flight runs one call per key at a time, in its own goroutine; later callers for the key
// share its result. Callers wait on a channel (DoChan), so admission can stop waiting at its
// deadline while the call continues for later pods. Wait sees every call.
type flight[K comparable, V any] struct {
	g singleflight.Group
	// active holds the keys whose call runs, changed in step with g under mu, so that Wait
	// counts each call once however many callers join it.
	mu     sync.Mutex
	active map[K]bool
	wg     sync.WaitGroup
}

// start returns the channel that receives the result of k's call, starting fn if none runs.
func (f *flight[K, V]) start(k K, fn func() (V, error)) <-chan singleflight.Result {
	// singleflight keys are strings; %#v quotes every string field, so distinct keys never collide.
	id := fmt.Sprintf("%#v", k)
	f.mu.Lock()
	defer f.mu.Unlock()
	if !f.active[k] {
		if f.active == nil {
			f.active = map[K]bool{}
		}
		f.active[k] = true
		f.wg.Add(1)
	}
	return f.g.DoChan(id, func() (v any, err error) {
		defer func() {
			// singleflight re-panics a DoChan panic on a fresh goroutine, killing the webhook.
			if r := recover(); r != nil {
				v, err = nil, fmt.Errorf("inspection panicked: %v", r)
			}
			f.mu.Lock()
			f.g.Forget(id)
			delete(f.active, k)
			f.mu.Unlock()
			f.wg.Done()
		}()
		return fn()
	})
}

// running is the number of calls running.
func (f *flight[K, V]) running() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return len(f.active)
}

// wait blocks until no call runs.
func (f *flight[K, V]) wait() { f.wg.Wait() }

// result unpacks what start's channel delivered.
func result[V any](r singleflight.Result) (V, error) {
	v, _ := r.Val.(V)
	return v, r.Err
}
