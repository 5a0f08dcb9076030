package store

import (
	"context"
	"sync"
)

// HoldWriter keeps the writer busy inside a write of its own until release
// is called, so that a test can queue writes behind it: two copies of one
// submission that both passed their checks before either was logged, which
// only a held writer makes certain (the store's tests, and the SOAP
// route's for two copies of one agency message). release may be called
// more than once, so that a test can defer it for the paths that fail.
func (s *DB) HoldWriter() (release func()) {
	inside, hold := make(chan struct{}), make(chan struct{})
	go s.write(context.Background(), func(context.Context, wtx) error {
		close(inside)
		<-hold
		return nil
	})
	<-inside
	return sync.OnceFunc(func() { close(hold) })
}

// Queued is the number of writes waiting for the writer.
func (s *DB) Queued() int { return len(s.reqs) }
