package main

import (
	"sync"
	"time"
)

// throttled shows the latest of what it is given at most once an interval:
// the first at once, and one given while the interval since the last
// showing runs is shown when it ends, unless a later one replaced it. A
// progress line therefore always catches up with the work, also when the
// last batch of a burst comes just after a showing and nothing follows it
// (a running ingest had shown nothing at all for the notices of its first
// second, until the next event came).
type throttled[T any] struct {
	show  func(T)
	every time.Duration

	mu      sync.Mutex
	last    time.Time
	pending *T
	timer   *time.Timer
	stopped bool
}

func newThrottled[T any](every time.Duration, show func(T)) *throttled[T] {
	return &throttled[T]{show: show, every: every}
}

func (t *throttled[T]) update(v T) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.stopped {
		return
	}
	if wait := t.every - time.Since(t.last); wait > 0 {
		t.pending = &v
		if t.timer == nil {
			t.timer = time.AfterFunc(wait, t.flush)
		}
		return
	}
	t.last, t.pending = time.Now(), nil
	t.show(v)
}

func (t *throttled[T]) flush() {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.timer = nil
	if t.pending == nil || t.stopped {
		return
	}
	t.last = time.Now()
	t.show(*t.pending)
	t.pending = nil
}

// stop drops what is pending and shows nothing more: the caller's summary
// follows.
func (t *throttled[T]) stop() {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.stopped, t.pending = true, nil
	if t.timer != nil {
		t.timer.Stop()
	}
}
