package store_test

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/perkeso/jambatan/cmd/gateway/internal/gatewaytest"
	"github.com/perkeso/jambatan/cmd/gateway/internal/store"
)

// TestDiskFull: when the disk refuses to grow the store's files, an accept
// fails and nothing of it is kept: no record, no log entry, no event; Ping
// fails, and WriteFailure (readiness) reports the failure until a write
// commits. Once there is room again the store writes on with its chain
// intact, and the
// refused notice, sent again, is accepted (gatewaytest.FullDisk says how
// the disk is made full).
func TestDiskFull(t *testing.T) {
	ctx := context.Background()
	s := open(t, t.TempDir()+"/g.db")
	for i := range 5 {
		if _, err := s.Accept(ctx, entry(fmt.Sprint("f", i), "aa"), onExisting); err != nil {
			t.Fatal(err)
		}
	}
	var err, ping error
	gatewaytest.FullDisk(t, func() {
		_, err = s.Accept(ctx, entry("f-full", "aa"), onExisting)
		ping = s.Ping(ctx)
	})
	if ping == nil {
		t.Fatal("Ping says the store is writable on a full disk")
	}
	t.Logf("accept on a full disk: %v", err)
	if err == nil {
		t.Fatal("accepted on a full disk")
	}
	if _, err := s.RecordByID(ctx, "rid-f-full"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("the refused notice's record: %v", err)
	}
	if n, err := s.Entries(ctx); n != 5 || err != nil {
		t.Fatalf("%d log entries, %v; want the 5 before", n, err)
	}
	if n, err := s.OutboxBacklog(ctx); n != 5 || err != nil {
		t.Fatalf("%d events, %v; want the 5 before", n, err)
	}
	if err := s.Ping(ctx); err != nil {
		t.Fatalf("Ping with room on the disk: %v", err)
	}
	// Ping's write committed, but no write has since the failed accept.
	if err := s.WriteFailure(time.Minute); err == nil {
		t.Fatal("no write failure reported after the failed accept")
	}
	if err := s.WriteFailure(0); err != nil {
		t.Fatalf("a write failure reported past its window: %v", err)
	}
	if _, err := s.Accept(ctx, entry("f-full", "aa"), onExisting); err != nil {
		t.Fatalf("sent again with room on the disk: %v", err)
	}
	if _, err := s.Accept(ctx, entry("f-after", "aa"), onExisting); err != nil {
		t.Fatal(err)
	}
	if err := s.WriteFailure(time.Minute); err != nil {
		t.Fatalf("a write failure reported after writes committed: %v", err)
	}
	if n, _ := s.Entries(ctx); n != 7 {
		t.Fatalf("%d log entries, want 7", n)
	}
	intactChain(t, s)
}
