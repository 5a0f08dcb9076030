package store_test

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/perkeso/jambatan/cmd/gateway/internal/store"
)

// TestCloseWhileWriting: writes racing a Close each return, accepted or
// ErrClosed; none waits for ever. One queued just after the writer had
// answered the queue's last with ErrClosed and returned used to wait for
// an answer that never came.
func TestCloseWhileWriting(t *testing.T) {
	for round := range 30 {
		s, err := store.Open(filepath.Join(t.TempDir(), "s.db"))
		if err != nil {
			t.Fatal(err)
		}
		var wg sync.WaitGroup
		for w := range 8 {
			wg.Go(func() {
				for i := 0; ; i++ {
					_, err := s.Accept(context.Background(), entry(fmt.Sprintf("r%d-w%d-%d", round, w, i), "x"), onExisting)
					if errors.Is(err, store.ErrClosed) {
						return
					} else if err != nil {
						t.Error(err)
						return
					}
				}
			})
		}
		time.Sleep(time.Millisecond)
		s.Close()
		done := make(chan struct{})
		go func() { wg.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			t.Fatalf("round %d: a write racing Close never returned", round)
		}
	}
}
