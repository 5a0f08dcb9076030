package store_test

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/perkeso/jambatan/cmd/gateway/internal/gatewaytest"
	"github.com/perkeso/jambatan/cmd/gateway/internal/sqldialect"
	"github.com/perkeso/jambatan/cmd/gateway/internal/store"
)

// groups reads the group-commit histogram: how many commits, how many writes.
func groups(t *testing.T, reg *prometheus.Registry) (commits uint64, writes float64) {
	t.Helper()
	return gatewaytest.Histogram(t, reg, "jambatan_store_group_commit_size")
}

// TestGroupCommit: a lone caller's writes are committed one by one (it never
// waits for company), and concurrent callers' writes share commits.
func TestGroupCommit(t *testing.T) {
	reg := prometheus.NewRegistry()
	store.Register(reg)
	s := open(t, t.TempDir()+"/g.db")
	ctx := context.Background()
	c0, w0 := groups(t, reg)
	for i := range 20 {
		if _, err := s.Accept(ctx, entry(fmt.Sprintf("lone-%d", i), "aa"), onExisting); err != nil {
			t.Fatal(err)
		}
	}
	c1, w1 := groups(t, reg)
	if c1-c0 != 20 || w1-w0 != 20 {
		t.Fatalf("lone caller: %d commits for %v writes, want 20 for 20", c1-c0, w1-w0)
	}
	var wg sync.WaitGroup
	for g := range 16 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range 25 {
				if _, err := s.Accept(ctx, entry(fmt.Sprintf("c-%d-%d", g, i), "aa"), onExisting); err != nil {
					t.Error(err)
				}
			}
		}()
	}
	wg.Wait()
	c2, w2 := groups(t, reg)
	if w2-w1 != 400 {
		t.Fatalf("%v writes counted, want 400", w2-w1)
	}
	if mean := (w2 - w1) / float64(c2-c1); mean < 2 {
		t.Fatalf("16 concurrent callers: %d commits for 400 writes (%.1f per commit); the writes did not share commits", c2-c1, mean)
	}
	if n, _ := s.Entries(ctx); n != 420 {
		t.Fatalf("entries = %d, want 420", n)
	}
}

// TestSameKeyInOneGroup: submissions of one notice that meet in one group
// commit (PostgreSQL looks a group's keys up at once and inserts its
// accepted entries together) are accepted once; the others are duplicates
// or, with another payload, conflicts; the chain stays intact.
func TestSameKeyInOneGroup(t *testing.T) {
	backends(t, func(t *testing.T, target string) {
		ctx := context.Background()
		s := open(t, target)
		key := fmt.Sprintf("same-%d", time.Now().UnixNano())
		outcomes := make(chan string, 24)
		var wg sync.WaitGroup
		for i := range 24 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				sha := "aa"
				if i%4 == 3 {
					sha = "bb" // another payload under the same key
				}
				e := entry(key, sha)
				e.CorrelationID = fmt.Sprintf("c-%d", i)
				r, err := s.Accept(ctx, e, onExisting)
				if err != nil {
					t.Error(err)
					return
				}
				outcomes <- r.Outcome + "/" + sha
			}()
		}
		wg.Wait()
		close(outcomes)
		count := map[string]int{}
		for o := range outcomes {
			count[o]++
		}
		accepted := count[store.OutcomeAccepted+"/aa"] + count[store.OutcomeAccepted+"/bb"]
		if accepted != 1 {
			t.Fatalf("outcomes %v: %d accepted, want 1", count, accepted)
		}
		// Whichever payload won, the same payload again is a duplicate and
		// the other a conflict.
		winner := "aa"
		if count[store.OutcomeAccepted+"/bb"] == 1 {
			winner = "bb"
		}
		for o, n := range count {
			var sha string
			var outcome string
			fmt.Sscanf(strings.Replace(o, "/", " ", 1), "%s %s", &outcome, &sha)
			want := store.OutcomeRejected
			if sha == winner {
				want = store.OutcomeDuplicate
			}
			if outcome != store.OutcomeAccepted && outcome != want {
				t.Fatalf("outcomes %v: %d × %s, want %s for payload %s", count, n, o, want, sha)
			}
		}
		var records int
		if err := s.DB().QueryRow(sqldialect.Rebind(`SELECT count(*) FROM records WHERE source_key = ?`, s.Postgres()), key).Scan(&records); err != nil || records != 1 {
			t.Fatalf("%d records for the key (%v), want 1", records, err)
		}
		intactChain(t, s)
	})
}

// TestFailedWriteInGroup: one write that breaks a constraint fails alone;
// the writes it shared a group with are retried one by one and accepted;
// the store goes on writing afterwards (on PostgreSQL no connection is left
// inside the failed transaction) and the chain is intact. The constraint: a
// new record id under a source key already taken, which the unique
// source_key index of stores from earlier builds refuses (the test adds it).
func TestFailedWriteInGroup(t *testing.T) {
	backends(t, func(t *testing.T, target string) {
		ctx := context.Background()
		s := open(t, target)
		takeSourceKey(t, s, "taken")
		for round := range 3 {
			var wg sync.WaitGroup
			errs := make(chan error, 16)
			for i := range 16 {
				wg.Add(1)
				go func() {
					defer wg.Done()
					e := entry(fmt.Sprintf("r%d-%d", round, i), "aa")
					if i == 7 {
						e.SourceKey = "taken"
					}
					_, err := s.Accept(ctx, e, onExisting)
					errs <- err
				}()
			}
			wg.Wait()
			close(errs)
			failed := 0
			for err := range errs {
				if err != nil {
					failed++
				}
			}
			if failed != 1 {
				t.Fatalf("round %d: %d writes failed, want 1", round, failed)
			}
		}
		if n, _ := s.Entries(ctx); n != 1+3*15 {
			t.Fatalf("entries = %d, want %d", n, 1+3*15)
		}
		intactChain(t, s)
		// On SQLite the backlog is read from the pending ids' span: the
		// failed inserts left no gap in it.
		if b, err := s.OutboxBacklog(ctx); err != nil || b != 1+3*15 {
			t.Fatalf("backlog %d, %v; want %d", b, err, 1+3*15)
		}
	})
}

// takeSourceKey accepts a record under key and adds the unique source_key
// index of stores from earlier builds, so that another record id under the
// same key fails in the database, for what the write holds.
func takeSourceKey(t *testing.T, s *store.DB, key string) {
	t.Helper()
	if _, err := s.Accept(context.Background(), entry(key, "aa"), onExisting); err != nil {
		t.Fatal(err)
	}
	if _, err := s.DB().Exec(`CREATE UNIQUE INDEX records_source_key ON records(source_key)`); err != nil {
		t.Fatal(err)
	}
}

// TestContentFailureAlone: a write refused for what it holds (here a
// unique constraint), alone in its group, fails, but does not report the
// store as failing its writes: readiness would turn every partner away for
// one partner's write.
func TestContentFailureAlone(t *testing.T) {
	backends(t, func(t *testing.T, target string) {
		ctx := context.Background()
		s := open(t, target)
		takeSourceKey(t, s, "taken")
		e := entry("again", "aa")
		e.SourceKey = "taken"
		if _, err := s.Accept(ctx, e, onExisting); err == nil {
			t.Fatal("a write against the unique index committed")
		}
		if err := s.WriteFailure(time.Minute); err != nil {
			t.Fatalf("the store reported failing after a write refused for its content: %v", err)
		}
	})
}

// TestGroupLookupUsesIndex: a SQLite group finds its records through the
// records' primary key, one search per record id, not by reading the table.
func TestGroupLookupUsesIndex(t *testing.T) {
	s := open(t, t.TempDir()+"/g.db")
	p := queryPlan(t, s, store.QRecordsIn, `["a","b"]`)
	if !strings.Contains(p, "SEARCH r USING INDEX sqlite_autoindex_records_1 (record_id=?)") || strings.Contains(p, "SCAN r") {
		t.Fatalf("plan %q, want a search of the records' primary key", p)
	}
}

// queryPlan is SQLite's plan for query, its steps joined by "; ".
func queryPlan(t *testing.T, s *store.DB, query string, args ...any) string {
	t.Helper()
	rows, err := s.DB().Query(`EXPLAIN QUERY PLAN `+query, args...)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	var plan []string
	for rows.Next() {
		var id, parent, unused int
		var detail string
		if err := rows.Scan(&id, &parent, &unused, &detail); err != nil {
			t.Fatal(err)
		}
		plan = append(plan, detail)
	}
	return strings.Join(plan, "; ")
}

// TestWriteOutlivesItsCaller: a write whose caller gives up once it is
// queued is made all the same (it may be an accepted notice; idempotency
// answers the sender's retry), and does not fail the writes grouped with
// it. The caller's context ended the statements once, failing the group
// and then the write alone.
func TestWriteOutlivesItsCaller(t *testing.T) {
	backends(t, func(t *testing.T, target string) {
		s := open(t, target)
		release := s.HoldWriter()
		ctx, cancel := context.WithCancel(context.Background())
		results := make(chan error, 2)
		queue := func(ctx context.Context, key string, n int) {
			go func() {
				_, err := s.Accept(ctx, entry(key, key+"-sha"), onExisting)
				results <- err
			}()
			for s.Queued() < n {
				time.Sleep(time.Millisecond)
			}
		}
		queue(ctx, "gone", 1)
		cancel()
		queue(context.Background(), "stays", 2)
		release()
		for range 2 {
			if err := <-results; err != nil {
				t.Fatalf("a queued write failed: %v", err)
			}
		}
		for _, key := range []string{"gone", "stays"} {
			if _, err := s.RecordByID(context.Background(), "rid-"+key); err != nil {
				t.Errorf("record of %s: %v", key, err)
			}
		}
	})
}
