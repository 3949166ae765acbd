package verdicts

import (
	"context"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

func TestFlight(t *testing.T) {
	var f flight[flightKey, string]
	var runs atomic.Int64
	gate := make(chan struct{})
	key := flightKey{scope: scope{namespace: "ns"}, image: "example.com/app:1"}
	fn := func() (string, error) {
		runs.Add(1)
		<-gate
		return "done", nil
	}
	first := f.start(key, fn)
	second := f.start(key, fn) // joins the first call
	other := f.start(flightKey{scope: scope{namespace: "ns\x00"}, image: "example.com/app:1"}, fn)

	// A caller stops waiting at its deadline; the call goes on.
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Millisecond)
	defer cancel()
	select {
	case <-first:
		t.Fatal("result before the call finished")
	case <-ctx.Done():
	}
	close(gate)
	f.wait()
	if n := runs.Load(); n != 2 {
		t.Errorf("%d runs for two keys, want 2", n)
	}
	if v, err := result[string](<-second); v != "done" || err != nil {
		t.Errorf("joined caller got %q, %v", v, err)
	}
	if v, _ := result[string](<-other); v != "done" {
		t.Errorf("other key got %q", v)
	}

	// A panic becomes an error: singleflight would re-panic it and stop the webhook.
	panicked := f.start(key, func() (string, error) { panic("boom") })
	f.wait()
	if v, err := result[string](<-panicked); v != "" || err == nil || !strings.Contains(err.Error(), "boom") {
		t.Errorf("panicking call gave %q, %v", v, err)
	}
	// And the key is free again.
	if v, _ := result[string](<-f.start(key, func() (string, error) { return "again", nil })); v != "again" {
		t.Errorf("after a panic: %q", v)
	}
	f.wait()
}
