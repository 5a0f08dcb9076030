package main

import (
	"testing"
	"time"
)

// TestThrottled: the first update is shown at once; of those given within
// the interval after it, only the last, when the interval ends; nothing
// after stop.
func TestThrottled(t *testing.T) {
	const every = 100 * time.Millisecond
	shown := make(chan int, 10)
	th := newThrottled(every, func(n int) { shown <- n })
	next := func(within time.Duration) (int, bool) {
		if within == 0 { // shown already, by update itself
			select {
			case n := <-shown:
				return n, true
			default:
				return 0, false
			}
		}
		select {
		case n := <-shown:
			return n, true
		case <-time.After(within):
			return 0, false
		}
	}

	th.update(1)
	if n, ok := next(0); !ok || n != 1 {
		t.Fatalf("first update: shown %d, %v; want 1 at once", n, ok)
	}
	start := time.Now()
	th.update(2)
	th.update(3)
	if n, ok := next(10 * every); !ok || n != 3 {
		t.Fatalf("after a burst: shown %d, %v; want the burst's last, 3", n, ok)
	}
	if waited := time.Since(start); waited < every/2 {
		t.Fatalf("the burst's last shown %v after the first, want about %v", waited, every)
	}
	if n, ok := next(3 * every); ok {
		t.Fatalf("shown %d again with nothing new", n)
	}

	th.update(4) // the interval since 3 has passed: at once
	if n, ok := next(0); !ok || n != 4 {
		t.Fatalf("after a quiet interval: shown %d, %v; want 4 at once", n, ok)
	}
	th.update(5)
	th.stop()
	th.update(6)
	if n, ok := next(3 * every); ok {
		t.Fatalf("shown %d after stop", n)
	}
}
