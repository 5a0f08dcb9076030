package store_test

import (
	"bytes"
	"context"
	"database/sql"
	"errors"
	"fmt"
	"maps"
	"os"
	"reflect"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/perkeso/jambatan/cmd/gateway/internal/gatewaytest"
	"github.com/perkeso/jambatan/cmd/gateway/internal/pgtest"
	"github.com/perkeso/jambatan/cmd/gateway/internal/sqldialect"
	"github.com/perkeso/jambatan/cmd/gateway/internal/store"
)

// backends runs a test against SQLite and PostgreSQL: the same suite.
func backends(t *testing.T, f func(t *testing.T, target string)) {
	for name, target := range pgtest.Targets(t) {
		t.Run(name, func(t *testing.T) { f(t, target(t)) })
	}
}

func open(t testing.TB, target string) *store.DB {
	t.Helper()
	s, err := store.Open(target)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func entry(key, sha string) *store.Entry {
	return &store.Entry{CorrelationID: "c-" + key + sha, PartnerID: "p", ReceivedAt: time.Now(), Route: "POST /v1/injury-notices",
		ContentType: "application/jose", Body: []byte("body-" + sha), Verification: "verified", Status: 202,
		SourceKey: key, RecordID: "rid-" + key, PayloadSHA256: sha, Receipt: "receipt-" + key + sha,
		Outbox: []store.Message{{Topic: "t", Key: []byte(key), Value: []byte(sha)}}}
}

func onExisting(e *store.Entry, first *store.Record) {
	e.Outbox = nil
	if first.PayloadSHA256 == e.PayloadSHA256 {
		e.Outcome, e.Status = store.OutcomeDuplicate, 200
	} else {
		e.Outcome, e.Status = store.OutcomeRejected, 409
	}
}

func TestAccept(t *testing.T) {
	backends(t, func(t *testing.T, target string) {
		ctx := context.Background()
		s := open(t, target)
		r, err := s.Accept(ctx, entry("k1", "aa"), onExisting)
		if err != nil || r.Outcome != store.OutcomeAccepted {
			t.Fatalf("first = %+v, %v", r, err)
		}
		r, err = s.Accept(ctx, entry("k1", "aa"), onExisting)
		if err != nil || r.Outcome != store.OutcomeDuplicate || r.Record.Receipt != "receipt-k1aa" {
			t.Fatalf("duplicate = %+v, %v", r, err)
		}
		r, err = s.Accept(ctx, entry("k1", "bb"), onExisting)
		if err != nil || r.Outcome != store.OutcomeRejected {
			t.Fatalf("conflict = %+v, %v", r, err)
		}
		if err := s.Log(ctx, &store.Entry{CorrelationID: "c-x", PartnerID: "p", ReceivedAt: time.Now(), Status: 401, Outcome: store.OutcomeRejected}); err != nil {
			t.Fatal(err)
		}
		if n, _ := s.Entries(ctx); n != 4 {
			t.Fatalf("entries = %d, want 4", n)
		}
		rec, err := s.RecordByID(ctx, "rid-k1")
		if err != nil || rec.Seq != 1 {
			t.Fatalf("RecordByID = %+v, %v", rec, err)
		}
		if _, err := s.RecordByID(ctx, "nope"); err != store.ErrNotFound {
			t.Fatalf("unknown record: %v", err)
		}
		if n, _ := s.OutboxBacklog(ctx); n != 1 {
			t.Fatalf("outbox backlog %d, want 1 (duplicates and conflicts add none)", n)
		}
	})
}

// TestRecordReceipts: a notice's record does not store the receipt its log
// entry holds, and reads it from there; a claim's own receipt is stored
// with its record; a record from an earlier build, which stored every
// receipt, reads its own.
func TestRecordReceipts(t *testing.T) {
	backends(t, func(t *testing.T, target string) {
		ctx := context.Background()
		s := open(t, target)
		if _, err := s.Accept(ctx, entry("k1", "aa"), onExisting); err != nil {
			t.Fatal(err)
		}
		batch := entry("batch", "bb")
		batch.RecordID, batch.SourceKey = "", ""
		claims := []store.ClaimKey{{SourceKey: "c1", RecordID: "rid-c1", Hash: "h1"}, {SourceKey: "c2", RecordID: "rid-c2", Hash: "h2"}}
		if _, _, err := s.AcceptBatch(ctx, batch, "insurer", "B1", claims, func(e *store.Entry, o store.BatchOutcome) (store.BatchWrite, error) {
			return store.BatchWrite{Response: []byte("{}"), Accept: []int{0, 1}, Receipts: []string{"receipt-c1", "receipt-c2"}}, nil
		}); err != nil {
			t.Fatal(err)
		}
		stored := func(id string) string {
			var r string
			if err := s.DB().QueryRow(sqldialect.Rebind(`SELECT receipt FROM records WHERE record_id = ?`, s.Postgres()), id).Scan(&r); err != nil {
				t.Fatal(err)
			}
			return r
		}
		for _, tc := range []struct{ id, stored, read string }{
			{"rid-k1", "", "receipt-k1aa"},
			{"rid-c1", "receipt-c1", "receipt-c1"},
			{"rid-c2", "receipt-c2", "receipt-c2"},
		} {
			if got := stored(tc.id); got != tc.stored {
				t.Errorf("%s: records.receipt %q, want %q", tc.id, got, tc.stored)
			}
			if rec, err := s.RecordByID(ctx, tc.id); err != nil || rec.Receipt != tc.read {
				t.Errorf("%s: RecordByID receipt %+v, %v; want %q", tc.id, rec, err, tc.read)
			}
		}
		// As an earlier build wrote it: the receipt stored with the record.
		if _, err := s.DB().Exec(sqldialect.Rebind(`UPDATE records SET receipt = ? WHERE record_id = ?`, s.Postgres()), "receipt-old", "rid-k1"); err != nil {
			t.Fatal(err)
		}
		r, err := s.Accept(ctx, entry("k1", "aa"), onExisting)
		if err != nil || r.Outcome != store.OutcomeDuplicate || r.Record.Receipt != "receipt-old" {
			t.Fatalf("duplicate of an earlier build's record = %+v, %v", r, err)
		}
	})
}

func TestVerifyChain(t *testing.T) {
	tests := []struct {
		name   string
		tamper string
		broken int64
	}{
		{"ok/intact", "", 0},
		{"fail/edited-body", `UPDATE message_log SET body = 'x' WHERE seq = 3`, 3},
		{"fail/edited-status", `UPDATE message_log SET status = 500 WHERE seq = 2`, 2},
		{"fail/deleted", `DELETE FROM message_log WHERE seq = 4`, 4},
		{"fail/rehashed-but-next-broken", `UPDATE message_log SET verification = 'x', hash = 'f00' WHERE seq = 2`, 2},
		{"fail/received-at-written-otherwise", `UPDATE message_log SET received_at = replace(received_at, 'Z', '+00:00') WHERE seq = 2`, 2}, // the same instant
	}
	backends(t, func(t *testing.T, target string) {
		for _, tc := range tests {
			t.Run(tc.name, func(t *testing.T) {
				ctx := context.Background()
				s := open(t, target)
				if _, err := s.DB().Exec(`DELETE FROM records`); err != nil {
					t.Fatal(err)
				}
				if _, err := s.DB().Exec(`DELETE FROM message_log`); err != nil {
					t.Fatal(err)
				}
				for i := 0; i < 5; i++ {
					if err := s.Log(ctx, entry("k", string(rune('a'+i)))); err != nil {
						t.Fatal(err)
					}
				}
				if tc.tamper != "" {
					if _, err := s.DB().Exec(tc.tamper); err != nil {
						t.Fatal(err)
					}
				}
				rep, err := s.Verify(ctx, nil)
				if err != nil {
					t.Fatal(err)
				}
				if rep.BrokenSeq != tc.broken {
					t.Fatalf("broken = %d (%s), want %d", rep.BrokenSeq, rep.Reason, tc.broken)
				}
			})
		}
	})
}

// TestOpenExclusive: a SQLite store is one gateway process's: a second
// OpenExclusive is refused, naming the holder, while the tools' Open
// shares the store; after Close it is free. Instances share a PostgreSQL
// store.
// TestSQLiteSettings: every connection to a SQLite store is in WAL mode,
// syncs each commit (FULL), and checkpoints at SQLite's default of 1,000
// pages (4,000 doubled a minute's p99; PERFORMANCE.md): the four
// connections of the pool, each read.
func TestSQLiteSettings(t *testing.T) {
	st, err := store.Open(t.TempDir() + "/g.db")
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	ctx := context.Background()
	var conns []*sql.Conn
	for range 4 {
		c, err := st.DB().Conn(ctx)
		if err != nil {
			t.Fatal(err)
		}
		conns = append(conns, c)
	}
	for i, c := range conns {
		var mode string
		var sync, pages int
		if err := c.QueryRowContext(ctx, `SELECT journal_mode, synchronous FROM pragma_journal_mode(), pragma_synchronous()`).Scan(&mode, &sync); err != nil {
			t.Fatal(err)
		}
		if err := c.QueryRowContext(ctx, `PRAGMA wal_autocheckpoint`).Scan(&pages); err != nil { // no table-valued form
			t.Fatal(err)
		}
		if mode != "wal" || sync != 2 || pages != 1000 {
			t.Fatalf("connection %d: journal_mode %s, synchronous %d, wal_autocheckpoint %d; want wal, 2 (FULL), 1000", i, mode, sync, pages)
		}
		c.Close()
	}
}

func TestOpenExclusive(t *testing.T) {
	backends(t, func(t *testing.T, target string) {
		first, err := store.OpenExclusive(target)
		if err != nil {
			t.Fatalf("ok/first: %v", err)
		}
		defer func() { first.Close() }()
		if _, err := first.Accept(context.Background(), entry("k", "1"), onExisting); err != nil {
			t.Fatal(err)
		}
		second, err := store.OpenExclusive(target)
		if store.IsPostgres(target) {
			if err != nil {
				t.Fatalf("ok/postgres-shared: %v", err)
			}
			second.Close()
			return
		}
		if err == nil || !strings.Contains(err.Error(), "held by another process (pid "+strconv.Itoa(os.Getpid())+"): a SQLite store belongs to one gateway process") {
			t.Fatalf("fail/second: %v", err)
		}
		if rep, err := open(t, target).Verify(context.Background(), nil); err != nil || rep.Entries != 1 {
			t.Fatalf("ok/tool-beside: %+v, %v", rep, err)
		}
		first.Close()
		if first, err = store.OpenExclusive(target); err != nil {
			t.Fatalf("ok/after-close: %v", err)
		}
	})
}

// TestConcurrentInstances: several store handles on one database (several
// gateway instances on one PostgreSQL, or concurrent requests on one SQLite
// store) accepting the same notices at once never double-accept, keep one
// intact chain, and their relays never claim the same message twice.
func TestConcurrentInstances(t *testing.T) {
	backends(t, func(t *testing.T, target string) {
		ctx := context.Background()
		instances := []*store.DB{open(t, target)}
		if store.IsPostgres(target) {
			instances = append(instances, open(t, target), open(t, target))
		}
		const keys, senders = 60, 6
		var wg sync.WaitGroup
		var mu sync.Mutex
		accepted := map[string]int{}
		for i := 0; i < senders; i++ {
			wg.Add(1)
			go func(i int) {
				defer wg.Done()
				s := instances[i%len(instances)]
				for k := 0; k < keys; k++ {
					r, err := s.Accept(ctx, entry(fmt.Sprintf("key-%d", k), "same"), onExisting)
					if err != nil {
						t.Error(err)
						return
					}
					if r.Outcome == store.OutcomeAccepted {
						mu.Lock()
						accepted[fmt.Sprintf("key-%d", k)]++
						mu.Unlock()
					}
				}
			}(i)
		}
		wg.Wait()
		for k := 0; k < keys; k++ {
			if n := accepted[fmt.Sprintf("key-%d", k)]; n != 1 {
				t.Fatalf("key-%d accepted %d times", k, n)
			}
		}
		rep, err := instances[0].Verify(ctx, nil)
		if err != nil || rep.BrokenSeq != 0 || rep.Entries != keys*senders {
			t.Fatalf("chain %+v %v, want %d entries intact", rep, err, keys*senders)
		}

		// Relays of every instance drain the outbox concurrently.
		claimed := map[int64]int{}
		for i, s := range instances {
			wg.Add(1)
			go func(i int, s *store.DB) {
				defer wg.Done()
				for idle := 0; idle < 20; {
					c, err := s.ClaimOutbox(ctx, 7)
					if err != nil {
						t.Error(err)
						return
					}
					if len(c.Messages) == 0 {
						idle++
						time.Sleep(5 * time.Millisecond)
						continue
					}
					mu.Lock()
					for _, m := range c.Messages {
						claimed[m.ID]++
					}
					mu.Unlock()
					time.Sleep(2 * time.Millisecond) // producing
					if err := c.Done(ctx); err != nil {
						t.Error(err)
						return
					}
				}
			}(i, s)
		}
		wg.Wait()
		onceEach(t, claimed, keys, "message", "published")
		if n, _ := instances[0].OutboxBacklog(ctx); n != 0 {
			t.Fatalf("backlog %d", n)
		}
	})
}

// BenchmarkAccept measures durable accepts by concurrent callers (group commit).
func BenchmarkAccept(b *testing.B) {
	for _, name := range []string{"sqlite", "postgres"} {
		b.Run(name, func(b *testing.B) {
			var target string
			if name == "sqlite" {
				target = b.TempDir() + "/g.db"
			} else {
				target = pgtest.DSN(b)
			}
			s := open(b, target)
			ctx := context.Background()
			var n sync.Mutex
			i := 0
			b.SetParallelism(16)
			b.ReportAllocs()
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					n.Lock()
					i++
					k := fmt.Sprintf("bench-%d-%d", time.Now().UnixNano(), i)
					n.Unlock()
					if _, err := s.Accept(ctx, entry(k, "aa"), onExisting); err != nil {
						b.Fatal(err)
					}
				}
			})
		})
	}
}

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

// TestOutboxByReference: a message written with Render holds no value; the
// claim brings the parts of the entry it was logged with, whether the store
// kept them from the commit (ok/kept), read them from the log (ok/from-log:
// another instance claims, or this one after a restart), or kept some and
// read the others (ok/kept-until-full). A message with its own value brings
// no entry. Once published, nothing is kept.
func TestOutboxByReference(t *testing.T) {
	backends(t, func(t *testing.T, target string) {
		for _, tc := range []struct {
			name       string
			room       int  // entries the store has room to keep (0: the default room)
			otherStore bool // claim through a second store on the same database
			kept       int  // entries the writing store keeps
		}{
			{name: "ok/kept", kept: 3},
			{name: "ok/from-log", otherStore: true, kept: 3},
			{name: "ok/kept-until-full", room: 2, kept: 2},
		} {
			t.Run(tc.name, func(t *testing.T) {
				ctx := context.Background()
				s := open(t, target)
				var byRef []*store.Entry
				for _, k := range []string{"k1", "k2", "k3"} {
					e := entry(tc.name+k, "aa")
					e.Signature, e.Canonical = "hdr..sig", []byte(`{"record":"`+k+`"}`)
					e.Outbox = []store.Message{{Topic: "t", Key: []byte(k), Render: "verified/jws"}}
					if tc.room > 0 {
						s.SetFreshBytes(tc.room * (len(e.Body) + len(e.Signature) + len(e.Canonical) + len(e.Receipt)))
					}
					if _, err := s.Accept(ctx, e, onExisting); err != nil {
						t.Fatal(err)
					}
					byRef = append(byRef, e)
				}
				if _, err := s.Accept(ctx, entry(tc.name+"k4", "bb"), onExisting); err != nil {
					t.Fatal(err)
				}
				if n, _ := s.Fresh(); n != tc.kept {
					t.Fatalf("kept %d entries, want %d", n, tc.kept)
				}
				claimer := s
				if tc.otherStore {
					claimer = open(t, target)
				}
				c := claim(t, claimer, 10)
				if len(c.Messages) != 4 {
					t.Fatalf("claimed %d messages, want 4", len(c.Messages))
				}
				for i, e := range byRef {
					m := c.Messages[i]
					l := m.Logged
					if m.Render != "verified/jws" || len(m.Value) != 0 || l == nil {
						t.Fatalf("by reference: render %q, value %q, logged %v", m.Render, m.Value, l)
					}
					if l.Seq != e.Seq || string(l.Body) != "body-aa" || l.Signature != "hdr..sig" ||
						string(l.Canonical) != string(e.Canonical) || l.Receipt != e.Receipt {
						t.Fatalf("logged parts = %+v", l)
					}
				}
				if m := c.Messages[3]; m.Render != "" || m.Logged != nil || string(m.Value) != "bb" {
					t.Fatalf("by value: render %q, logged %v, value %q", m.Render, m.Logged, m.Value)
				}
				if err := c.Done(ctx); err != nil {
					t.Fatal(err)
				}
				if n, size := claimer.Fresh(); n != 0 || size != 0 {
					t.Fatalf("after publishing, %d entries (%d bytes) kept", n, size)
				}
				if c := claimOnce(t, claimer, 10); len(c.Messages) != 0 {
					t.Fatalf("claimed %d messages after publishing", len(c.Messages))
				}
			})
		}
	})
}

// TestFreshForgetsPublished: an entry kept after its messages were
// published (a relay on PostgreSQL can publish a group from the log in the
// moment between its commit and the writer keeping it) is forgotten by the
// next claim, which starts after it.
func TestFreshForgetsPublished(t *testing.T) {
	backends(t, func(t *testing.T, target string) {
		ctx := context.Background()
		s := open(t, target)
		accept := func(key string) *store.Entry {
			e := entry(key, "aa")
			e.Outbox = []store.Message{{Topic: "t", Key: []byte(key), Render: "verified/jws"}}
			if _, err := s.Accept(ctx, e, onExisting); err != nil {
				t.Fatal(err)
			}
			return e
		}
		published := accept("published")
		if err := claim(t, s, 10).Done(ctx); err != nil {
			t.Fatal(err)
		}
		s.KeepFresh(published)
		accept("pending")
		if n, _ := s.Fresh(); n != 2 {
			t.Fatalf("kept %d entries, want 2", n)
		}
		if c := claim(t, s, 10); len(c.Messages) != 1 {
			t.Fatalf("claimed %d messages, want 1", len(c.Messages))
		}
		if n, _ := s.Fresh(); n != 1 {
			t.Fatalf("after the claim, kept %d entries, want only the pending one", n)
		}
	})
}

// TestFreshOnlyCommitted: an entry whose write failed is not kept for the
// relay (its group failed, and it failed again alone), while those grouped
// with it, which committed, are.
func TestFreshOnlyCommitted(t *testing.T) {
	backends(t, func(t *testing.T, target string) {
		s := open(t, target)
		takeSourceKey(t, s, "taken")
		release := s.HoldWriter()
		results := make(chan error, 3)
		for i, key := range []string{"one", "taken", "two"} {
			e := entry(key+"-id", "aa")
			e.SourceKey = key
			e.Outbox = []store.Message{{Topic: "t", Key: []byte(key), Render: "verified/jws"}}
			go func() {
				_, err := s.Accept(context.Background(), e, onExisting)
				results <- err
			}()
			for s.Queued() < i+1 {
				time.Sleep(time.Millisecond)
			}
		}
		release()
		failed := 0
		for range 3 {
			if err := <-results; err != nil {
				failed++
			}
		}
		if n, _ := s.Fresh(); failed != 1 || n != 2 {
			t.Fatalf("%d writes failed, %d entries kept; want 1 and 2", failed, n)
		}
	})
}

// TestAddedColumns opens a store whose outbox predates log_seq and render:
// the columns are added, and its pending rows are still published by value.
func TestAddedColumns(t *testing.T) {
	backends(t, func(t *testing.T, target string) {
		ctx := context.Background()
		driver, blob, id := "sqlite", "BLOB", "INTEGER PRIMARY KEY AUTOINCREMENT"
		if sqldialect.IsPostgres(target) {
			driver, blob, id = "pgx", "BYTEA", "BIGSERIAL PRIMARY KEY"
		}
		old, err := sql.Open(driver, target)
		if err != nil {
			t.Fatal(err)
		}
		for _, q := range []string{
			`CREATE TABLE outbox (id ` + id + `, topic TEXT NOT NULL, msg_key ` + blob + ` NOT NULL, headers TEXT NOT NULL,
  value ` + blob + ` NOT NULL, created_at TEXT NOT NULL, published_at TEXT)`,
			`INSERT INTO outbox (topic, msg_key, headers, value, created_at) VALUES ('t', 'k', '[]', 'old', '2026-01-01T00:00:00Z')`,
			// A row an earlier build published and stamped, and its index of pending rows.
			`INSERT INTO outbox (topic, msg_key, headers, value, created_at, published_at) VALUES ('t', 'k', '[]', 'stamped', '2026-01-01T00:00:00Z', '2026-01-01T00:00:01Z')`,
			`CREATE INDEX outbox_pending ON outbox(id) WHERE published_at IS NULL`,
		} {
			if _, err := old.Exec(q); err != nil {
				t.Fatal(err)
			}
		}
		old.Close()
		s := open(t, target)
		if _, err := s.Accept(ctx, entry("k1", "aa"), onExisting); err != nil {
			t.Fatal(err)
		}
		c := claim(t, s, 10)
		if len(c.Messages) != 2 || string(c.Messages[0].Value) != "old" || c.Messages[0].Logged != nil || string(c.Messages[1].Value) != "aa" {
			t.Fatalf("claimed %+v", c.Messages)
		}
		c.Release()
		s.Close()
		open(t, target) // a second open finds the columns there
	})
}

// TestNewStoreIndexes: a new store indexes its outbox and records by their
// keys alone; each further index costs every accepted notice a page write
// (see the comment on schemaSQLite).
func TestNewStoreIndexes(t *testing.T) {
	backends(t, func(t *testing.T, target string) {
		s := open(t, target)
		q := `SELECT name FROM sqlite_master WHERE type = 'index' AND tbl_name IN ('outbox', 'records') AND sql IS NOT NULL`
		if sqldialect.IsPostgres(target) {
			q = `SELECT indexname FROM pg_indexes WHERE schemaname = current_schema() AND tablename IN ('outbox', 'records') AND indexname NOT LIKE '%_pkey'`
		}
		rows, err := s.DB().Query(q)
		if err != nil {
			t.Fatal(err)
		}
		defer rows.Close()
		for rows.Next() {
			var name string
			if err := rows.Scan(&name); err != nil {
				t.Fatal(err)
			}
			t.Errorf("index %s", name)
		}
		if err := rows.Err(); err != nil {
			t.Fatal(err)
		}
	})
}

// claim claims up to n outbox messages, released when the test ends.
func claim(t *testing.T, s *store.DB, n int) *store.Claim {
	t.Helper()
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		c := claimOnce(t, s, n)
		// On PostgreSQL an empty claim may also mean that another relay
		// holds the relay lock, which is the database's, not the schema's:
		// other packages' tests relay on the same database meanwhile (CI
		// once found TestClaimBytes's second claim empty so). A claim
		// expected to hold messages is tried again.
		if len(c.Messages) > 0 || !s.Postgres() || time.Now().After(deadline) {
			return c
		}
	}
}

// claimOnce is one claim, for a test that expects it to be empty.
func claimOnce(t *testing.T, s *store.DB, n int) *store.Claim {
	t.Helper()
	c, err := s.ClaimOutbox(context.Background(), n)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Release)
	return c
}

// TestDroppedConnections (PostgreSQL) terminates the store's server
// connections while concurrent accepts run, as a failover or an operator's
// pg_terminate_backend would. Every accept that returned success is in the
// store afterwards, the store goes on accepting (no connection is reused in
// a broken or open transaction), and the chain is intact.
func TestDroppedConnections(t *testing.T) {
	app := fmt.Sprintf("jambatan_drop_%d", time.Now().UnixNano())
	dsn := pgtest.DSN(t)
	s := open(t, dsn+"&application_name="+app) // the connections to terminate
	ctx := context.Background()
	admin, err := sql.Open("pgx", dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer admin.Close()

	var mu sync.Mutex
	var accepted []string
	failed, retried := 0, 0
	stop := make(chan struct{})
	wg := acceptUntil(s, 16, "w", stop, func(key string, r store.AcceptResult, err error) bool {
		mu.Lock()
		defer mu.Unlock()
		switch {
		case err != nil:
			failed++
		case r.Outcome == store.OutcomeAccepted:
			accepted = append(accepted, key)
		default:
			retried++ // a group whose COMMIT was cut off, retried write by write, found it committed
		}
		return true
	})
	killed := 0
	for range 40 {
		time.Sleep(25 * time.Millisecond)
		var n int
		if err := admin.QueryRow(`SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity WHERE application_name = $1`, app).Scan(&n); err != nil {
			t.Fatal(err)
		}
		killed += n
	}
	time.Sleep(150 * time.Millisecond)
	close(stop)
	wg.Wait()
	if killed == 0 {
		t.Fatal("no connection was terminated; the test proved nothing")
	}
	// The store goes on accepting on fresh connections.
	for i := range 10 {
		if _, err := s.Accept(ctx, entry(fmt.Sprintf("after-%d", i), "aa"), onExisting); err != nil {
			t.Fatalf("accept after the terminations: %v", err)
		}
	}
	for _, key := range accepted {
		var n int
		if err := admin.QueryRow(`SELECT count(*) FROM records WHERE source_key = $1`, key).Scan(&n); err != nil || n != 1 {
			t.Fatalf("accepted %s is not in the store (%d rows, %v)", key, n, err)
		}
	}
	intactChain(t, s)
	t.Logf("%d connections terminated; %d accepted, %d duplicates of themselves, %d failed; every accepted one durable", killed, len(accepted), retried, failed)
}

// TestClaimBytes: a claim stops once it holds ClaimBytes, whatever its
// limit in messages; the next claim takes the rest, in order. Events held by
// reference count their log entry's parts, whether the store kept them or
// reads them from the log.
func TestClaimBytes(t *testing.T) {
	backends(t, func(t *testing.T, target string) {
		for _, tc := range []struct {
			name         string
			byRef, other bool // by reference; claimed through another store (from the log)
		}{{"ok/by-value", false, false}, {"ok/by-reference-kept", true, false}, {"ok/by-reference-from-log", true, true}} {
			t.Run(tc.name, func(t *testing.T) {
				ctx := context.Background()
				s := open(t, target)
				s.SetFreshBytes(64 << 20)
				const n, size = 20, 1 << 20
				for i := range n {
					e := entry(fmt.Sprintf("big-%s-%02d", tc.name, i), "aa")
					big := []byte(strings.Repeat(strconv.Itoa(i%10), size))
					if tc.byRef {
						e.Body, e.Outbox[0].Value, e.Outbox[0].Render = big, nil, "verified/jws"
					} else {
						e.Outbox[0].Value = big
					}
					if err := s.Log(ctx, e); err != nil {
						t.Fatal(err)
					}
				}
				claimer := s
				if tc.other {
					claimer = open(t, target)
				}
				first := store.ClaimBytes / size
				c := claim(t, claimer, 500)
				if len(c.Messages) != first {
					t.Fatalf("first claim holds %d messages of 1 MiB, want %d", len(c.Messages), first)
				}
				if err := c.Done(ctx); err != nil {
					t.Fatal(err)
				}
				c = claim(t, claimer, 500)
				firstByte := func(m store.Message) byte {
					if tc.byRef {
						return m.Logged.Body[0]
					}
					return m.Value[0]
				}
				if len(c.Messages) != n-first || firstByte(c.Messages[0]) != byte('0'+first%10) {
					t.Fatalf("second claim holds %d messages, want the remaining %d in order", len(c.Messages), n-first)
				}
				if err := c.Done(ctx); err != nil {
					t.Fatal(err)
				}
			})
		}
	})
}

// intactChain fails the test unless s's hash chain verifies.
func intactChain(t *testing.T, s *store.DB) {
	t.Helper()
	rep, err := s.Verify(context.Background(), nil)
	if err != nil || rep.BrokenSeq != 0 {
		t.Fatalf("chain: %+v, %v", rep, err)
	}
}

// TestCommitTimeout: PostgreSQL group commits that cannot finish (another
// session holds the writer's lock) fail within the commit timeout with
// ErrCommitTimeout, a timed-out group is not retried write by write (each
// retry would wait the timeout out again), and the store accepts again
// once the lock is free.
func TestCommitTimeout(t *testing.T) {
	dsn := pgtest.DSN(t)
	s := open(t, dsn)
	s.SetCommitTimeout(time.Second)
	ctx := context.Background()
	lock := holdWriterLock(t, dsn)

	const n = 8
	start := time.Now()
	errs := make(chan error, n)
	for i := range n {
		go func() {
			_, err := s.Accept(ctx, entry(fmt.Sprintf("t%d", i), "aa"), onExisting)
			errs <- err
		}()
	}
	for range n {
		if err := <-errs; !errors.Is(err, store.ErrCommitTimeout) {
			t.Fatalf("a write behind a held lock: %v, want ErrCommitTimeout", err)
		}
	}
	// The first write commits alone and the other seven as one group: two
	// timeouts. Retried write by write, the seven would take seven more.
	if elapsed := time.Since(start); elapsed > 5*time.Second {
		t.Fatalf("%d writes failed after %v: a timed-out group was retried write by write", n, elapsed)
	}

	if _, err := lock.ExecContext(ctx, `SELECT pg_advisory_unlock($1)`, store.LockWriter); err != nil {
		t.Fatal(err)
	}
	if r, err := s.Accept(ctx, entry("after", "aa"), onExisting); err != nil || r.Outcome != store.OutcomeAccepted {
		t.Fatalf("accept once the lock is free: %+v, %v", r, err)
	}
	intactChain(t, s)
}

// TestCommitLost: a group whose COMMIT's answer never reaches the gateway
// (the connection cut as the server answers it: a database restarting, a
// network failing) fails with ErrCommitUnknown and its sender is told it
// may have been accepted, which it was: the same notice again is a
// duplicate. A group of several is not retried write by write, which
// against a database still away would tell each sender nothing was
// accepted. Before, each was told so: a fast restart of PostgreSQL under
// load left 24 notices accepted whose senders had heard 503 "nothing was
// accepted".
func TestCommitLost(t *testing.T) {
	dsn, arm := pgtest.CutCommits(t, pgtest.DSN(t))
	s := open(t, dsn)
	ctx := context.Background()
	arm(1)
	_, err := s.Accept(ctx, entry("lost-1", "aa"), onExisting)
	if !errors.Is(err, store.ErrCommitUnknown) || !strings.Contains(store.FailureAdvice(err), "may or may not have been accepted") {
		t.Fatalf("ok/lost-alone: %v (%q), want ErrCommitUnknown", err, store.FailureAdvice(err))
	}
	if r, err := s.Accept(ctx, entry("lost-1", "aa"), onExisting); err != nil || r.Outcome != store.OutcomeDuplicate {
		t.Fatalf("ok/lost-alone: sent again: %+v, %v; want a duplicate of the one committed", r, err)
	}

	// A group: another session holds the writer's lock, so that a first
	// write waits in its transaction while the others gather behind it;
	// the second COMMIT, the group's, is cut.
	lock := holdWriterLock(t, dsn)
	const n = 6
	errs := make(chan error, n)
	accept := func(i int) {
		_, err := s.Accept(ctx, entry(fmt.Sprintf("lost-g%d", i), "aa"), onExisting)
		errs <- err
	}
	go accept(0)
	waitForLockWaiter(t, lock)
	for i := 1; i < n; i++ {
		go accept(i)
	}
	gatewaytest.Until(t, 10*time.Second, 5*time.Millisecond, func() error {
		if got := s.QueuedWrites(); got < n-1 {
			return fmt.Errorf("%d of %d writes reached the writer's queue", got, n-1)
		}
		return nil
	})
	arm(2)
	if _, err := lock.ExecContext(ctx, `SELECT pg_advisory_unlock($1)`, store.LockWriter); err != nil {
		t.Fatal(err)
	}
	lost := 0
	for range n {
		if err := <-errs; errors.Is(err, store.ErrCommitUnknown) {
			lost++
		} else if err != nil {
			t.Fatalf("ok/lost-group: %v, want ErrCommitUnknown or success", err)
		}
	}
	if lost != n-1 {
		t.Fatalf("ok/lost-group: %d writes heard of the lost commit, want the group's (retried write by write, each was told nothing was accepted, or that it was a duplicate)", lost)
	}
	for i := range n {
		if r, err := s.Accept(ctx, entry(fmt.Sprintf("lost-g%d", i), "aa"), onExisting); err != nil || r.Outcome != store.OutcomeDuplicate {
			t.Fatalf("ok/lost-group: lost-g%d sent again: %+v, %v; want a duplicate", i, r, err)
		}
	}
	t.Logf("%d of %d writes heard that their group's commit was lost", lost, n)
	intactChain(t, s)
}

// holdWriterLock takes the PostgreSQL writer's lock in a session of its
// own, and returns that session (closed when the test ends): the store's
// group commits wait in their transactions until it is released.
func holdWriterLock(t *testing.T, dsn string) *sql.Conn {
	t.Helper()
	ctx := context.Background()
	holder, err := sql.Open("pgx", dsn)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { holder.Close() })
	lock, err := holder.Conn(ctx)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { lock.Close() })
	if _, err := lock.ExecContext(ctx, `SELECT pg_advisory_lock($1)`, store.LockWriter); err != nil {
		t.Fatal(err)
	}
	return lock
}

// waitForLockWaiter waits until a session waits for the writer's lock,
// which lock's session holds.
func waitForLockWaiter(t *testing.T, lock *sql.Conn) {
	t.Helper()
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(10 * time.Millisecond) {
		var waiting int
		if err := lock.QueryRowContext(context.Background(), `SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND NOT granted
			AND classid::bigint = $1::bigint >> 32 AND objid::bigint = $1::bigint & 4294967295`, store.LockWriter).Scan(&waiting); err != nil {
			t.Fatal(err)
		}
		if waiting > 0 {
			return
		}
	}
	t.Fatal("no session came to wait for the writer's lock")
}

// TestFailureAdvice: a failed write tells its sender that nothing was
// accepted, except after a commit timeout, when it may have been and the
// advice is to send it again unchanged.
func TestFailureAdvice(t *testing.T) {
	for _, tc := range []struct {
		name, want, not string
		err             error
	}{
		{"fail/unavailable", "nothing was accepted", "may or may not", errors.New("connection refused")},
		{"fail/commit-timeout", "may or may not have been accepted: send it again unchanged", "nothing was accepted",
			fmt.Errorf("%w (1s): context deadline exceeded", store.ErrCommitTimeout)},
		{"fail/commit-lost", "lost during the commit, so this submission may or may not have been accepted: send it again unchanged", "nothing was accepted",
			fmt.Errorf("%w: unexpected EOF", store.ErrCommitUnknown)},
		{"fail/commit-timeout-cut", "did not answer in time", "lost during the commit",
			fmt.Errorf("%w (1s): %w", store.ErrCommitTimeout, fmt.Errorf("%w: context deadline exceeded", store.ErrCommitUnknown))},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := store.FailureAdvice(tc.err); !strings.Contains(got, tc.want) || strings.Contains(got, tc.not) {
				t.Fatalf("%q, want %q and not %q", got, tc.want, tc.not)
			}
		})
	}
}

// acceptUntil runs n writers, each accepting distinct notices (keys
// prefix<writer>-<i>) until stop is closed or seen returns false for an
// outcome; wait on the group returned.
func acceptUntil(s *store.DB, n int, prefix string, stop <-chan struct{}, seen func(key string, r store.AcceptResult, err error) bool) *sync.WaitGroup {
	var wg sync.WaitGroup
	for w := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				key := fmt.Sprintf("%s%d-%d", prefix, w, i)
				if r, err := s.Accept(context.Background(), entry(key, "aa"), onExisting); !seen(key, r, err) {
					return
				}
			}
		}()
	}
	return &wg
}

// TestOutboxBacklog: the backlog counts what the relay has yet to publish:
// nothing in an empty outbox, every pending message, none once all are
// published, and not the rows a store from an earlier build stamped as
// published (TestAddedColumns makes such a store).
func TestOutboxBacklog(t *testing.T) {
	backends(t, func(t *testing.T, target string) {
		ctx := context.Background()
		s := open(t, target)
		backlog := func(want int64) {
			t.Helper()
			if n, err := s.OutboxBacklog(ctx); n != want || err != nil {
				t.Fatalf("backlog %d, %v; want %d", n, err, want)
			}
		}
		backlog(0)
		for i := range 5 {
			if _, err := s.Accept(ctx, entry(fmt.Sprint("b", i), "aa"), onExisting); err != nil {
				t.Fatal(err)
			}
		}
		backlog(5)
		c := claim(t, s, 2)
		if err := c.Done(ctx); err != nil {
			t.Fatal(err)
		}
		backlog(3)
		if _, err := s.Accept(ctx, entry("b5", "aa"), onExisting); err != nil {
			t.Fatal(err)
		}
		backlog(4)
		if err := claim(t, s, 10).Done(ctx); err != nil {
			t.Fatal(err)
		}
		backlog(0)
		// Rows an earlier build stamped, which it published oldest first,
		// so they lie below the pending ones.
		for _, v := range []string{"stamped", "stamped", "pending", "pending"} {
			q := `INSERT INTO outbox (topic, msg_key, headers, value, created_at) VALUES ('t', 'k', '[]', 'v', '2026-01-01T00:00:00Z')`
			if v == "stamped" {
				q = `INSERT INTO outbox (topic, msg_key, headers, value, created_at, published_at) VALUES ('t', 'k', '[]', 'v', '2026-01-01T00:00:00Z', '2026-01-01T00:00:01Z')`
			}
			if _, err := s.DB().Exec(q); err != nil {
				t.Fatal(err)
			}
		}
		backlog(2)
	})
}

// BenchmarkOutboxBacklog reads the backlog of 1,000,000 pending messages,
// as every /metrics scrape and /readyz probe does while Kafka is away.
func BenchmarkOutboxBacklog(b *testing.B) {
	for _, name := range []string{"sqlite", "postgres"} {
		b.Run(name, func(b *testing.B) {
			target, rows := b.TempDir()+"/g.db", `WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c WHERE x < 1000000) SELECT x FROM c`
			if name == "postgres" {
				target, rows = pgtest.DSN(b), `SELECT generate_series(1, 1000000)`
			}
			s := open(b, target)
			if _, err := s.DB().Exec(`INSERT INTO outbox (topic, msg_key, headers, value, created_at, render)
				SELECT 't', 'k', '[]', '', '2026-01-01T00:00:00Z', 'notice' FROM (` + rows + `) r`); err != nil {
				b.Fatal(err)
			}
			ctx := context.Background()
			for b.Loop() {
				if n, err := s.OutboxBacklog(ctx); n != 1000000 || err != nil {
					b.Fatalf("backlog %d, %v", n, err)
				}
			}
		})
	}
}

// TestOutboxOldest: the age gauge's source is the oldest message the relay
// has yet to publish: none in an empty outbox, then the first accepted,
// then, once that is published, the next.
func TestOutboxOldest(t *testing.T) {
	backends(t, func(t *testing.T, target string) {
		ctx := context.Background()
		s := open(t, target)
		if _, ok, err := s.OutboxOldest(ctx); ok || err != nil {
			t.Fatalf("empty outbox: ok %v, %v", ok, err)
		}
		first := time.Date(2026, 3, 4, 2, 40, 12, 0, time.UTC)
		for i, key := range []string{"o1", "o2"} {
			e := entry(key, "aa")
			e.ReceivedAt = first.Add(time.Duration(i) * time.Minute)
			if _, err := s.Accept(ctx, e, onExisting); err != nil {
				t.Fatal(err)
			}
		}
		if at, ok, err := s.OutboxOldest(ctx); !ok || err != nil || !at.Equal(first) {
			t.Fatalf("two pending: %v %v %v, want %v", at, ok, err, first)
		}
		if c := claim(t, s, 1); len(c.Messages) != 1 {
			t.Fatalf("claimed %d messages, want 1", len(c.Messages))
		} else if err := c.Done(ctx); err != nil {
			t.Fatal(err)
		}
		if at, ok, err := s.OutboxOldest(ctx); !ok || err != nil || !at.Equal(first.Add(time.Minute)) {
			t.Fatalf("after publishing the first: %v %v %v, want %v", at, ok, err, first.Add(time.Minute))
		}
	})
}

// TestDeliveriesDueIndex: the deliverer's queries have their index on
// both stores, and a store from an earlier build keeps that build's index
// (an instance of it may share the store through a rolling upgrade); and
// SQLite's plans search the index instead of reading the table (which
// keeps every delivered row) and sorting.
func TestDeliveriesDueIndex(t *testing.T) {
	backends(t, func(t *testing.T, target string) {
		indexes := func(s *store.DB) []string {
			q := `SELECT name FROM sqlite_master WHERE type = 'index' AND name LIKE 'deliveries%' ORDER BY name`
			if sqldialect.IsPostgres(target) {
				q = `SELECT indexname FROM pg_indexes WHERE schemaname = current_schema() AND indexname LIKE 'deliveries%' ORDER BY indexname`
			}
			rows, err := s.DB().Query(q)
			if err != nil {
				t.Fatal(err)
			}
			defer rows.Close()
			var names []string
			for rows.Next() {
				var n string
				_ = rows.Scan(&n)
				names = append(names, n)
			}
			return names
		}
		s, err := store.Open(target)
		if err != nil {
			t.Fatal(err)
		}
		if names := indexes(s); !slices.Contains(names, "deliveries_partner_due") || slices.Contains(names, "deliveries_due") {
			t.Fatalf("a new store's indexes %q, want deliveries_partner_due and not the earlier build's", names)
		}
		// As an earlier build left it, its index beside this build's.
		if _, err := s.DB().Exec(`CREATE INDEX deliveries_due ON deliveries (state, next_at, id)`); err != nil {
			t.Fatal(err)
		}
		s.Close()
		s = open(t, target)
		if names := indexes(s); !slices.Contains(names, "deliveries_partner_due") || !slices.Contains(names, "deliveries_due") {
			t.Fatalf("an earlier store's indexes %q, want both", names)
		}
		if sqldialect.IsPostgres(target) {
			return
		}
		// The claim searches the partner's due deliveries, and each one's
		// case for an earlier one (the partial index of pending deliveries
		// on a case).
		for _, tc := range []struct {
			query string
			args  []any
			want  []string
		}{
			{store.QClaimDue, []any{store.DeliveryPending, "p1", "2026-01-01T00:00:00Z", 16}, []string{
				"SEARCH deliveries USING INDEX deliveries_partner_due (state=? AND partner_id=? AND next_at<?)",
				"SEARCH e USING COVERING INDEX deliveries_case (partner_id=? AND case_id=?)"}},
			{store.QPendingPartners, []any{store.DeliveryPending}, []string{"SEARCH deliveries USING COVERING INDEX deliveries_partner_due (state=?)"}},
			{store.QPendingPartnerAfter, []any{store.DeliveryPending, "p1"}, []string{"SEARCH deliveries USING COVERING INDEX deliveries_partner_due (state=? AND partner_id>?)"}},
		} {
			p := queryPlan(t, s, tc.query, tc.args...)
			for _, w := range tc.want {
				if !strings.Contains(p, w) || strings.Contains(p, "TEMP B-TREE") {
					t.Errorf("%s: plan %q, want %q without a sort", tc.query, p, w)
				}
			}
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

// deliveryAt is when the delivery tests' deliveries are queued and tried.
var deliveryAt = time.Date(2026, 3, 4, 2, 40, 12, 0, time.UTC)

// deliveryEntry is the log entry of an attempt at, or a refusal of, d.
func deliveryEntry(d *store.Delivery) *store.Entry {
	return &store.Entry{CorrelationID: "outbound-" + d.Key, PartnerID: d.PartnerID, ReceivedAt: deliveryAt, Route: "OUTBOUND JSON",
		Verification: "refused: unknown partner", Outcome: "DEAD_LETTERED", SourceKey: d.Key, Body: d.Payload}
}

// enqueue queues a JSON delivery under key at deliveryAt.
func enqueue(t *testing.T, s *store.DB, key string) {
	t.Helper()
	if _, err := s.Enqueue(context.Background(), &store.Delivery{Key: key, PartnerID: "p1", MessageType: "JSON", Payload: []byte(`{}`)}, deliveryAt); err != nil {
		t.Fatal(err)
	}
}

// TestEnqueueRefused: a refused request is a dead letter from the start,
// logged with it and never claimable; the id of a queued delivery refused
// again leaves that delivery as it was and logs nothing.
func TestEnqueueRefused(t *testing.T) {
	backends(t, func(t *testing.T, target string) {
		ctx := context.Background()
		s := open(t, target)
		at, logged := deliveryAt, deliveryEntry
		refused := &store.Delivery{Key: "bad-1", PartnerID: "nobody", MessageType: "JSON", Payload: []byte(`{}`)}
		created, err := s.EnqueueRefused(ctx, refused, "unknown partner", at, logged)
		if err != nil || !created || refused.ID == 0 {
			t.Fatalf("refused: created %v, id %d, %v", created, refused.ID, err)
		}
		if due, err := s.ClaimDue(ctx, at.Add(time.Hour), time.Minute, 10); err != nil || len(due) != 0 {
			t.Fatalf("a refused request is claimable: %v %v", due, err)
		}
		dead, err := s.DeliveriesOf(ctx, "", store.DeliveryDead, 0, 10)
		if err != nil || len(dead) != 1 || dead[0].Key != "bad-1" || dead[0].LastError != "unknown partner" || dead[0].Attempts != 1 {
			t.Fatalf("dead letters: %+v %v", dead, err)
		}
		if n, err := s.Entries(ctx); err != nil || n != 1 {
			t.Fatalf("log entries %d, %v; want the refusal's", n, err)
		}

		if _, err := s.Enqueue(ctx, &store.Delivery{Key: "good-1", PartnerID: "p1", MessageType: "JSON", Payload: []byte(`{"n":1}`)}, at); err != nil {
			t.Fatal(err)
		}
		again := &store.Delivery{Key: "good-1", PartnerID: "p1", MessageType: "JSON", Payload: []byte(`not json`)}
		if created, err := s.EnqueueRefused(ctx, again, "payload must be JSON", at, logged); err != nil || created {
			t.Fatalf("a queued id refused again: created %v, %v", created, err)
		}
		pending, err := s.DeliveriesOf(ctx, "", store.DeliveryPending, 0, 10)
		if err != nil || len(pending) != 1 || pending[0].Key != "good-1" || pending[0].Attempts != 0 {
			t.Fatalf("the queued delivery changed: %+v %v", pending, err)
		}
		if n, _ := s.Entries(ctx); n != 1 {
			t.Fatalf("log entries %d after a refusal that changed nothing, want 1", n)
		}
		if d, err := s.DeliveryByKey(ctx, "good-1"); err != nil || d.PartnerID != "p1" || string(d.Payload) != `{"n":1}` {
			t.Fatalf("DeliveryByKey: %+v %v", d, err)
		}
		if _, err := s.DeliveryByKey(ctx, "never-queued"); !errors.Is(err, store.ErrNotFound) {
			t.Fatalf("DeliveryByKey of an unknown key: %v, want ErrNotFound", err)
		}
	})
}

// TestDeliveryCounts: the counts by state follow deliveries through their
// lives and agree with a count of the table, also after a key queued again
// and a refusal of an id already queued, which add nothing.
func TestDeliveryCounts(t *testing.T) {
	backends(t, func(t *testing.T, target string) {
		ctx := context.Background()
		s := open(t, target)
		at, logged := deliveryAt, deliveryEntry
		counts := func(want map[string]int64) {
			t.Helper()
			got, err := s.DeliveryCounts(ctx)
			if err != nil || !maps.Equal(got, want) {
				t.Fatalf("counts %v, %v; want %v", got, err, want)
			}
			for st, n := range want {
				var c int64
				if err := s.DB().QueryRow(`SELECT count(*) FROM deliveries WHERE state = '` + st + `'`).Scan(&c); err != nil || c != n {
					t.Fatalf("the table holds %d %s, %v; want %d", c, st, err, n)
				}
			}
		}
		counts(map[string]int64{})
		for _, k := range []string{"d1", "d2", "d3", "d1"} {
			enqueue(t, s, k)
		}
		counts(map[string]int64{store.DeliveryPending: 3})
		for _, k := range []string{"bad", "d2"} {
			if _, err := s.EnqueueRefused(ctx, &store.Delivery{Key: k, PartnerID: "nobody", MessageType: "JSON", Payload: []byte(`{}`)}, "unknown partner", at, logged); err != nil {
				t.Fatal(err)
			}
		}
		counts(map[string]int64{store.DeliveryPending: 3, store.DeliveryDead: 1})
		due, err := s.ClaimDue(ctx, at.Add(time.Hour), time.Minute, 2)
		if err != nil || len(due) != 2 {
			t.Fatalf("claimed %d, %v", len(due), err)
		}
		for i, a := range []store.Attempt{{State: store.DeliveryDelivered}, {State: store.DeliveryDead, Error: "HTTP 400"}} {
			if err := s.RecordAttempt(ctx, due[i], a, logged(due[i])); err != nil {
				t.Fatal(err)
			}
		}
		counts(map[string]int64{store.DeliveryPending: 1, store.DeliveryDelivered: 1, store.DeliveryDead: 2})
		if err := s.RetryDelivery(ctx, due[1].ID, at); err != nil {
			t.Fatal(err)
		}
		enqueue(t, s, "d4")
		counts(map[string]int64{store.DeliveryPending: 3, store.DeliveryDelivered: 1, store.DeliveryDead: 1})
	})
}

// TestDeliveryCountsOfEarlierStore: a store made before the counts were
// kept has its deliveries counted when it is opened, once however many
// processes open it at once, and kept count of from then on.
func TestDeliveryCountsOfEarlierStore(t *testing.T) {
	backends(t, func(t *testing.T, path string) {
		ctx := context.Background()
		s := open(t, path)
		for _, k := range []string{"d1", "d2", "d3"} {
			enqueue(t, s, k)
			if _, err := s.Accept(ctx, entry("e-"+k, "aa"), onExisting); err != nil { // an event in the outbox
				t.Fatal(err)
			}
		}
		// As an earlier build left it: the deliveries (and, on PostgreSQL,
		// the outbox) without their counts.
		drop := []string{`DROP TRIGGER deliveries_inserted`, `DROP TRIGGER deliveries_moved`, `DROP TRIGGER deliveries_deleted`, `DROP TABLE delivery_counts`}
		if sqldialect.IsPostgres(path) {
			drop = []string{`DROP TRIGGER deliveries_counted ON deliveries`, `DROP FUNCTION deliveries_counted`, `DROP TABLE delivery_counts`,
				`DROP TRIGGER outbox_queued ON outbox`, `DROP TRIGGER outbox_published ON outbox`, `DROP FUNCTION outbox_counted`,
				`DROP TABLE outbox_counts`}
		}
		for _, q := range append(drop, `UPDATE deliveries SET state = 'delivered' WHERE delivery_key = 'd2'`) {
			if _, err := s.DB().Exec(q); err != nil {
				t.Fatal(err)
			}
		}
		s.Close()
		// Two processes open it at once (a gateway and an operator's command):
		// one counts, and the other finds the counts made.
		opened := make(chan *store.DB, 2)
		for range 2 {
			go func() {
				s, err := store.Open(path)
				if err != nil {
					t.Error(err)
				}
				opened <- s
			}()
		}
		for range 2 {
			db := <-opened
			if db == nil {
				t.FailNow()
			}
			t.Cleanup(func() { db.Close() })
			s = db
		}
		if c, err := s.DeliveryCounts(ctx); err != nil || !maps.Equal(c, map[string]int64{store.DeliveryPending: 2, store.DeliveryDelivered: 1}) {
			t.Fatalf("counts on opening %v, %v", c, err)
		}
		if n, err := s.OutboxBacklog(ctx); err != nil || n != 3 {
			t.Fatalf("outbox backlog on opening %d, %v; want 3", n, err)
		}
		enqueue(t, s, "d4")
		if c, err := s.DeliveryCounts(ctx); err != nil || !maps.Equal(c, map[string]int64{store.DeliveryPending: 3, store.DeliveryDelivered: 1}) {
			t.Fatalf("counts after one more %v, %v", c, err)
		}
		if _, err := s.Accept(ctx, entry("e-d4", "aa"), onExisting); err != nil {
			t.Fatal(err)
		}
		if n, err := s.OutboxBacklog(ctx); err != nil || n != 4 {
			t.Fatalf("outbox backlog after one more %d, %v; want 4", n, err)
		}
	})
}

// millionDeliveries opens a store of the backend name (sqlite or
// postgres) holding 1,000,000 deliveries, counted, the x-th (from 1) with
// the partner, state and next_at of the SQL expressions over x.
func millionDeliveries(b *testing.B, name, partner, caseID, state, nextAt string) *store.DB {
	target, rows := b.TempDir()+"/g.db", `WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c WHERE x < 1000000) SELECT x FROM c`
	if name == "postgres" {
		target, rows = pgtest.DSN(b), `SELECT generate_series(1, 1000000) AS x`
	}
	s := open(b, target)
	insert := `INSERT INTO deliveries (delivery_key, partner_id, message_type, case_id, payload, state, attempts, next_at, last_error, created_at, updated_at)
		SELECT 'k' || x, ` + partner + `, 'JSON', ` + caseID + `, '{}', ` + state + `, 1, ` + nextAt + `, '', '2026-01-01T00:00:00Z', '2026-01-01T00:00:00Z'
		FROM (` + rows + `) r`
	setup := []string{insert}
	if name == "postgres" {
		// A million deliveries come one transaction at a time; in one
		// statement, PostgreSQL's trigger would update one counts row a
		// million times in one transaction, walking ever longer chains
		// of its versions. So the rows go in without it and are counted.
		setup = []string{`ALTER TABLE deliveries DISABLE TRIGGER deliveries_counted`, insert,
			`UPDATE delivery_counts SET n = (SELECT count(*) FROM deliveries d WHERE d.state = delivery_counts.state)`,
			`ALTER TABLE deliveries ENABLE TRIGGER deliveries_counted`, `ANALYZE deliveries`}
	}
	for _, q := range setup {
		if _, err := s.DB().Exec(q); err != nil {
			b.Fatal(err)
		}
	}
	return s
}

// BenchmarkDeliveryCounts counts the deliveries of a store that has made
// 1,000,000, of which 100 wait, as every /metrics scrape and /healthz does.
func BenchmarkDeliveryCounts(b *testing.B) {
	for _, name := range []string{"sqlite", "postgres"} {
		b.Run(name, func(b *testing.B) {
			s := millionDeliveries(b, name, `'p'`, `''`, `CASE WHEN x % 10000 = 0 THEN 'pending' ELSE 'delivered' END`, `'2026-01-01T00:00:00Z'`)
			ctx := context.Background()
			for b.Loop() {
				if c, err := s.DeliveryCounts(ctx); c[store.DeliveryDelivered] != 999900 || err != nil {
					b.Fatalf("counts %v, %v", c, err)
				}
			}
		})
	}
}

// BenchmarkClaimDueLook: one look of the deliverer (ClaimDueOf, claiming
// nothing) over 1,000,000 deliveries, of which 100,000 are pending: a
// busy partner's 99,990 due (it may start none) and another's 10 not yet
// due. The look reads the partners with pending deliveries and asks each
// for what it may start, never the busy partner's backlog.
func BenchmarkClaimDueLook(b *testing.B) {
	for _, name := range []string{"sqlite", "postgres"} {
		b.Run(name, func(b *testing.B) {
			s := millionDeliveries(b, name, `CASE WHEN x % 10000 = 0 THEN 'quiet' ELSE 'busy' END`, `''`,
				`CASE WHEN x % 10 = 0 THEN 'pending' ELSE 'delivered' END`,
				`CASE WHEN x % 10000 = 0 THEN '2027-01-01T00:00:00.000000000Z' ELSE '2026-01-01T00:00:00.000000000Z' END`)
			ctx := context.Background()
			now := time.Date(2026, 6, 1, 0, 0, 0, 0, time.UTC)
			for b.Loop() {
				asked := 0
				due, err := s.ClaimDueOf(ctx, now, time.Minute, func(p string) int {
					asked++
					return map[string]int{"quiet": 1}[p] // busy: at its limit
				})
				if len(due) != 0 || err != nil || asked != 2 {
					b.Fatalf("claimed %d, %v; %d partners asked", len(due), err, asked)
				}
			}
		})
	}
}

// BenchmarkClaimDueCaseWaits is a look with 100,000 deliveries pending on
// one case (a case's queue after an outage, all due), the first claimed
// and in flight: those behind it keep its lease's time, so the look passes
// none of them and claims nothing.
func BenchmarkClaimDueCaseWaits(b *testing.B) {
	for _, name := range []string{"sqlite", "postgres"} {
		b.Run(name, func(b *testing.B) {
			s := millionDeliveries(b, name, `'p'`, `CASE WHEN x > 900000 THEN 'C-1' ELSE 'C-' || x END`,
				`CASE WHEN x > 900000 THEN 'pending' ELSE 'delivered' END`, `'2026-01-01T00:00:00.000000000Z'`)
			ctx := context.Background()
			now := time.Date(2026, 6, 1, 0, 0, 0, 0, time.UTC)
			if due, err := s.ClaimDue(ctx, now, time.Minute, 2); len(due) != 1 || due[0].Key != "k900001" || err != nil {
				b.Fatalf("first claim %d, %v, want k900001", len(due), err)
			}
			for b.Loop() {
				if due, err := s.ClaimDue(ctx, now, time.Minute, 2); len(due) != 0 || err != nil {
					b.Fatalf("claimed %d, %v", len(due), err)
				}
			}
		})
	}
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

// TestClaimDueExclusive: two instances claiming the same queue at once
// (each claim one transaction) claim every due delivery exactly once.
func TestClaimDueExclusive(t *testing.T) {
	backends(t, func(t *testing.T, target string) {
		ctx := context.Background()
		a, b := open(t, target), open(t, target)
		const n = 200
		for i := 0; i < n; i++ {
			d := &store.Delivery{Key: fmt.Sprintf("claim-%03d", i), PartnerID: "p1", MessageType: "JSON", Payload: []byte(`{}`)}
			if _, err := a.Enqueue(ctx, d, deliveryAt); err != nil {
				t.Fatal(err)
			}
		}
		var mu sync.Mutex
		claimed := map[int64]int{}
		var wg sync.WaitGroup
		for _, s := range []*store.DB{a, b} {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for {
					due, err := s.ClaimDue(ctx, deliveryAt.Add(time.Minute), time.Hour, 16)
					if err != nil {
						t.Error(err)
						return
					}
					if len(due) == 0 {
						return
					}
					mu.Lock()
					for _, d := range due {
						claimed[d.ID]++
					}
					mu.Unlock()
				}
			}()
		}
		wg.Wait()
		onceEach(t, claimed, n, "delivery", "claimed")
	})
}

// onceEach checks that want distinct ids were counted, each once: a
// thing (what) done (done) by several instances at once.
func onceEach(t *testing.T, counts map[int64]int, want int, what, done string) {
	t.Helper()
	if len(counts) != want {
		t.Fatalf("%s: %d distinct ids, want %d", done, len(counts), want)
	}
	for id, n := range counts {
		if n != 1 {
			t.Fatalf("%s %d %s %d times", what, id, done, n)
		}
	}
}

// TestDeliveredNotificationOpensCase: a delivered NotifyInjury registers
// the case its agency assigned as shared with that agency; a second
// notification the agency put in the same case leaves the first
// registration; a delivery that failed registers nothing.
func TestDeliveredNotificationOpensCase(t *testing.T) {
	backends(t, func(t *testing.T, target string) {
		ctx := context.Background()
		s := open(t, target)
		deliver(t, s, []string{"n1", "n2", "n3"}, func(d *store.Delivery) (store.Attempt, string) {
			switch d.Key {
			case "n3":
				return store.Attempt{State: store.DeliveryDead, Error: "HTTP 400"}, "TH:SSO:C-2"
			default: // two notifications the agency put in one case
				return store.Attempt{State: store.DeliveryDelivered}, "TH:SSO:C-1"
			}
		})
		if inst, err := s.CaseInstitution(ctx, "TH:SSO:C-1"); err != nil || inst != "TH:SSO" {
			t.Fatalf("case TH:SSO:C-1: %q, %v", inst, err)
		}
		if _, err := s.CaseInstitution(ctx, "TH:SSO:C-2"); !errors.Is(err, store.ErrNotFound) {
			t.Fatalf("a failed delivery registered its case: %v", err)
		}
	})
}

// deliver queues NotifyInjury deliveries under keys, claims them and
// records the attempt outcome gives each, with the case TH:SSO assigned.
func deliver(t *testing.T, s *store.DB, keys []string, outcome func(*store.Delivery) (store.Attempt, string)) {
	t.Helper()
	for _, k := range keys {
		enqueue(t, s, k)
	}
	due, err := s.ClaimDue(context.Background(), deliveryAt.Add(time.Hour), time.Minute, len(keys))
	if err != nil || len(due) != len(keys) {
		t.Fatalf("claimed %d, %v", len(due), err)
	}
	for _, d := range due {
		a, caseID := outcome(d)
		d.CaseID, d.CaseWith = caseID, "TH:SSO"
		if err := s.RecordAttempt(context.Background(), d, a, deliveryEntry(d)); err != nil {
			t.Fatal(err)
		}
	}
}

// TestDeliveriesOfEarlierStore: a store whose deliveries an earlier build
// made, without no_retry and answer_seq, gets them when it is opened: its
// dead letters stay retryable and its deliveries have no answer to give.
func TestDeliveriesOfEarlierStore(t *testing.T) {
	backends(t, func(t *testing.T, target string) {
		ctx := context.Background()
		s := open(t, target)
		if _, err := s.EnqueueRefused(ctx, &store.Delivery{Key: "old-dead", PartnerID: "p1", MessageType: "JSON", Payload: []byte(`{}`)},
			"HTTP 404", deliveryAt, deliveryEntry); err != nil {
			t.Fatal(err)
		}
		for _, q := range []string{`ALTER TABLE deliveries DROP COLUMN no_retry`, `ALTER TABLE deliveries DROP COLUMN answer_seq`, `ALTER TABLE deliveries DROP COLUMN leased`} {
			if _, err := s.DB().Exec(q); err != nil {
				t.Fatal(err)
			}
		}
		s.Close()
		s = open(t, target)
		d, err := s.DeliveryByKey(ctx, "old-dead")
		if err != nil || d.NoRetry || d.State != store.DeliveryDead {
			t.Fatalf("the earlier build's dead letter: %+v %v", d, err)
		}
		if _, err := s.DeliveryAnswer(ctx, "old-dead"); !errors.Is(err, store.ErrNotFound) {
			t.Fatalf("its answer: %v, want ErrNotFound", err)
		}
		if n, err := s.RetryDead(ctx, "p1", deliveryAt.Add(time.Hour)); err != nil || n != 1 {
			t.Fatalf("retried %d, %v; want 1", n, err)
		}
	})
}

// TestFreeLeases: a SQLite store opened by its one gateway makes due at
// once the deliveries a process gone had claimed (killed mid-delivery),
// with the deliveries behind them on their cases; a delivery waiting for
// its retry keeps its time. A PostgreSQL store, which live instances
// share, frees none: their claims run out with their leases.
func TestFreeLeases(t *testing.T) {
	backends(t, func(t *testing.T, target string) {
		ctx := context.Background()
		s, err := store.OpenExclusive(target)
		if err != nil {
			t.Fatal(err)
		}
		for _, d := range []*store.Delivery{
			{Key: "case-1", PartnerID: "p1", MessageType: "NotifyDecision", CaseID: "C-1"},
			{Key: "case-2", PartnerID: "p1", MessageType: "NotifyDecision", CaseID: "C-1"},
			{Key: "alone", PartnerID: "p1", MessageType: "JSON"},
			{Key: "retrying", PartnerID: "p1", MessageType: "JSON"},
		} {
			d.Payload = []byte(`{}`)
			if _, err := s.Enqueue(ctx, d, deliveryAt); err != nil {
				t.Fatal(err)
			}
		}
		keys := func(ds []*store.Delivery) (ks []string) {
			for _, d := range ds {
				ks = append(ks, d.Key)
			}
			slices.Sort(ks)
			return ks
		}
		due, err := s.ClaimDue(ctx, time.Now(), time.Hour, 10)
		if err != nil || !slices.Equal(keys(due), []string{"alone", "case-1", "retrying"}) {
			t.Fatalf("claimed %v, %v", keys(due), err)
		}
		for _, d := range due {
			if d.Key == "retrying" { // its attempt failed: tried again in an hour
				if err := s.RecordAttempt(ctx, d, store.Attempt{State: store.DeliveryPending, NextAt: time.Now().Add(time.Hour), Error: "HTTP 503"}, deliveryEntry(d)); err != nil {
					t.Fatal(err)
				}
			}
		}
		s.Close() // as a killed gateway's: case-1 and alone claimed, neither recorded

		s, err = store.OpenExclusive(target)
		if err != nil {
			t.Fatal(err)
		}
		defer s.Close()
		due, err = s.ClaimDue(ctx, time.Now(), time.Minute, 10)
		if s.LeasesFreed() != 2 || err != nil || !slices.Equal(keys(due), []string{"alone", "case-1"}) {
			t.Fatalf("after the restart: %d freed, due %v (%v); want 2 freed, due [alone case-1]", s.LeasesFreed(), keys(due), err)
		}
		for _, d := range due {
			if d.Key == "case-1" {
				if err := s.RecordAttempt(ctx, d, store.Attempt{State: store.DeliveryDelivered}, deliveryEntry(d)); err != nil {
					t.Fatal(err)
				}
			}
		}
		if due, err = s.ClaimDue(ctx, time.Now(), time.Minute, 10); err != nil || !slices.Equal(keys(due), []string{"case-2"}) {
			t.Fatalf("after the case's first was delivered, due %v (%v); want its second", keys(due), err)
		}
	})
}

// TestFreeLeasesOfLiveInstance: on PostgreSQL, an instance that starts
// beside a live one leaves the live one's deliveries in flight claimed
// (freeing them would send them twice), and frees them once that instance
// has ended; claims marked by a tool or an earlier build (no instance's)
// are left to their lease.
func TestFreeLeasesOfLiveInstance(t *testing.T) {
	target := pgtest.DSN(t)
	ctx := context.Background()
	a, err := store.OpenExclusive(target)
	if err != nil {
		t.Fatal(err)
	}
	for _, k := range []string{"a-1", "a-2"} {
		enqueue(t, a, k)
	}
	if due, err := a.ClaimDue(ctx, time.Now(), time.Hour, 10); err != nil || len(due) != 2 {
		t.Fatalf("a claimed %d (%v), want 2", len(due), err)
	}
	tool := open(t, target) // Open, not OpenExclusive: no instance's
	enqueue(t, tool, "tool-1")
	if due, err := tool.ClaimDue(ctx, time.Now(), time.Hour, 10); err != nil || len(due) != 1 {
		t.Fatalf("the tool claimed %d (%v), want 1", len(due), err)
	}

	b, err := store.OpenExclusive(target)
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	if due, err := b.ClaimDue(ctx, time.Now(), time.Minute, 10); b.LeasesFreed() != 0 || err != nil || len(due) != 0 {
		t.Fatalf("beside a live instance: %d freed, %d due (%v); want none", b.LeasesFreed(), len(due), err)
	}
	a.Close() // as its process's end: its session, and its lock, are gone

	c, err := store.OpenExclusive(target)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	due, err := c.ClaimDue(ctx, time.Now(), time.Minute, 10)
	var got []string
	for _, d := range due {
		got = append(got, d.Key)
	}
	slices.Sort(got)
	if c.LeasesFreed() != 2 || err != nil || !slices.Equal(got, []string{"a-1", "a-2"}) {
		t.Fatalf("after a ended: %d freed, due %v (%v); want 2 freed, due [a-1 a-2]", c.LeasesFreed(), got, err)
	}
	if n, err := c.FreeLeases(ctx, time.Now()); n != 0 || err != nil { // c's own claims, c being live
		t.Fatalf("c freed %d of its own claims (%v)", n, err)
	}
}

// TestInstanceLockKept: when the session holding an instance's lock ends
// while the instance lives (the database restarted, the connection cut),
// the instance takes its token's lock again on a new session, so that an
// instance starting later does not take it for ended.
func TestInstanceLockKept(t *testing.T) {
	target := pgtest.DSN(t)
	s, err := store.OpenExclusive(target)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	enqueue(t, s, "in-flight-1")
	if due, err := s.ClaimDue(context.Background(), time.Now(), time.Hour, 10); err != nil || len(due) != 1 {
		t.Fatalf("claimed %d (%v)", len(due), err)
	}
	db, err := sql.Open("pgx", target)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	holder := func() (pid int) {
		err := db.QueryRow(`SELECT pid FROM pg_locks WHERE locktype = 'advisory' AND granted AND objsubid = 2
  AND classid::bigint = $1 AND objid::bigint = $2`, store.LockInstances, s.LeaseMark()).Scan(&pid)
		if err != nil && !errors.Is(err, sql.ErrNoRows) {
			t.Fatal(err)
		}
		return pid
	}
	retaken := testutil.ToFloat64(store.InstanceLocksRetaken)
	first := holder()
	if first == 0 {
		t.Fatalf("no session holds the instance's lock (token %d)", s.LeaseMark())
	}
	if _, err := db.Exec(`SELECT pg_terminate_backend($1)`, first); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(3 * store.InstanceLockCheck)
	for {
		if pid := holder(); pid != 0 && pid != first {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the lock was not taken again within %v of its session's end", 3*store.InstanceLockCheck)
		}
		time.Sleep(50 * time.Millisecond)
	}
	if got := testutil.ToFloat64(store.InstanceLocksRetaken) - retaken; got != 1 {
		t.Fatalf("jambatan_store_instance_lock_retaken_total rose by %v, want 1", got)
	}
	later, err := store.OpenExclusive(target)
	if err != nil {
		t.Fatal(err)
	}
	defer later.Close()
	if later.LeasesFreed() != 0 {
		t.Fatalf("an instance started later freed %d of the live one's claims", later.LeasesFreed())
	}
}

// TestDeliveryAnswer: a delivered request's answer is found by its key, as
// its delivering attempt logged it (an event may go without an agency's
// documents); a request still being tried, or dead, has none.
func TestDeliveryAnswer(t *testing.T) {
	backends(t, func(t *testing.T, target string) {
		ctx := context.Background()
		s := open(t, target)
		for _, k := range []string{"ok-1", "down-1"} {
			enqueue(t, s, k)
		}
		due, err := s.ClaimDue(ctx, deliveryAt.Add(time.Hour), time.Minute, 2)
		if err != nil || len(due) != 2 {
			t.Fatalf("claimed %d, %v", len(due), err)
		}
		for _, d := range due {
			a := store.Attempt{State: store.DeliveryDelivered}
			if d.Key == "down-1" {
				a = store.Attempt{State: store.DeliveryDead, Error: "HTTP 404"}
			}
			e := deliveryEntry(d)
			e.Receipt = "<answer-of-" + d.Key + "/>"
			if err := s.RecordAttempt(ctx, d, a, e); err != nil {
				t.Fatal(err)
			}
		}
		for key, want := range map[string]string{"ok-1": "<answer-of-ok-1/>", "down-1": "", "never": ""} {
			got, err := s.DeliveryAnswer(ctx, key)
			if want == "" && !errors.Is(err, store.ErrNotFound) || want != "" && (err != nil || string(got) != want) {
				t.Errorf("%s: %q %v, want %q", key, got, err, want)
			}
		}
	})
}

// TestHoldAnswers: answers are held per case and code, a later answer for
// a code replacing the earlier; the same key again changes nothing; a case
// not shared with the institution is refused before any write, so the
// refusal does not count against the store's health.
func TestHoldAnswers(t *testing.T) {
	backends(t, func(t *testing.T, target string) {
		ctx := context.Background()
		s := open(t, target)
		// The case: one an agency assigned to a delivered NotifyInjury.
		deliver(t, s, []string{"n1"}, func(d *store.Delivery) (store.Attempt, string) {
			return store.Attempt{State: store.DeliveryDelivered}, "TH:SSO:C-1"
		})
		hold := func(key, institution, caseID string, items map[string][]byte) (bool, error) {
			d := &store.Delivery{Key: key, PartnerID: "th-sso", MessageType: "InformationReply", CaseID: caseID, Payload: []byte(`{}`)}
			return s.HoldAnswers(ctx, d, institution, items, deliveryAt, deliveryEntry)
		}
		// a0: an answer refused before the others were written (its case
		// not yet shared, say), taken back by a retry below.
		a0 := &store.Delivery{Key: "a0", PartnerID: "th-sso", MessageType: "InformationReply", CaseID: "TH:SSO:C-1", Payload: []byte(`{}`)}
		if _, err := s.EnqueueRefused(ctx, a0, "not shared", deliveryAt, deliveryEntry); err != nil {
			t.Fatal(err)
		}
		for _, tc := range []struct {
			key   string
			items map[string][]byte
			held  bool
		}{
			{"a1", map[string][]byte{"WAGES_6M": []byte("<w1/>"), "POLICE_REPORT": []byte("<p1/>")}, true},
			{"a2", map[string][]byte{"WAGES_6M": []byte("<w2/>")}, true},
			{"a1", map[string][]byte{"WAGES_6M": []byte("<w3/>")}, false}, // a1 again: nothing changes
		} {
			if held, err := hold(tc.key, "TH:SSO", "TH:SSO:C-1", tc.items); err != nil || held != tc.held {
				t.Fatalf("%s: held %v, %v", tc.key, held, err)
			}
		}
		got, err := s.CaseAnswers(ctx, "TH:SSO:C-1")
		if err != nil || len(got) != 2 || string(got["WAGES_6M"]) != "<w2/>" || string(got["POLICE_REPORT"]) != "<p1/>" {
			t.Fatalf("answers %q, %v", got, err)
		}
		for _, tc := range []struct{ institution, caseID string }{{"BN:SPK", "TH:SSO:C-1"}, {"TH:SSO", "TH:SSO:C-404"}} {
			if _, err := hold("a9", tc.institution, tc.caseID, map[string][]byte{"WAGES_6M": []byte("<x/>")}); !errors.Is(err, store.ErrCaseNotShared) {
				t.Fatalf("%s on %s: %v", tc.institution, tc.caseID, err)
			}
		}
		if err := s.WriteFailure(time.Minute); err != nil {
			t.Fatalf("a refused case counted against the store: %v", err)
		}
		if d, err := s.DeliveryByKey(ctx, "a2"); err != nil || d.State != store.DeliveryDelivered {
			t.Fatalf("held answers' delivery: %+v %v", d, err)
		}
		// Taken back by a retry and claimed: held under its lease. a0 was
		// queued before a1 and a2, and its items do not replace theirs,
		// which the back office wrote later; a3, queued after them, does.
		if err := s.RetryDelivery(ctx, a0.ID, deliveryAt.Add(time.Hour)); err != nil {
			t.Fatal(err)
		}
		enqueue(t, s, "a3")
		due, err := s.ClaimDue(ctx, deliveryAt.Add(2*time.Hour), time.Minute, 2)
		if err != nil || len(due) != 2 || due[0].Key != "a3" || due[1].Key != "a0" {
			t.Fatalf("claim: %v %v", due, err)
		}
		for _, d := range []*store.Delivery{due[1], due[0]} { // a0, then a3
			d.CaseID = "TH:SSO:C-1"
			if err := s.HoldClaimed(ctx, d, "TH:SSO", map[string][]byte{"WAGES_6M": []byte("<" + d.Key + "/>")}, deliveryAt, deliveryEntry); err != nil {
				t.Fatal(err)
			}
			if got, err := s.DeliveryByKey(ctx, d.Key); err != nil || got.State != store.DeliveryDelivered {
				t.Fatalf("claimed answers' delivery: %+v %v", got, err)
			}
			want := map[string]string{"a0": "<w2/>", "a3": "<a3/>"}[d.Key]
			if got, _ := s.CaseAnswers(ctx, "TH:SSO:C-1"); string(got["WAGES_6M"]) != want {
				t.Fatalf("answers after %s's hold: %q, want %s", d.Key, got, want)
			}
			var verification string
			if err := s.DB().QueryRow(`SELECT verification FROM message_log WHERE source_key = '` + d.Key + `' ORDER BY seq DESC LIMIT 1`).Scan(&verification); err != nil ||
				strings.Contains(verification, "not held") != (d.Key == "a0") {
				t.Fatalf("%s's log entry: %q %v", d.Key, verification, err)
			}
		}
	})
}

// TestDeliveredStands: an attempt that fails after another attempt of the
// same delivery delivered it (an operator's retry started the second
// beside the first) leaves it delivered, and adds no status event; its
// log entry is kept.
func TestDeliveredStands(t *testing.T) {
	backends(t, func(t *testing.T, target string) {
		ctx := context.Background()
		s := open(t, target)
		enqueue(t, s, "d-1")
		first, err := s.ClaimDue(ctx, deliveryAt.Add(time.Hour), time.Minute, 1)
		if err != nil || len(first) != 1 {
			t.Fatalf("claim: %v %v", first, err)
		}
		if err := s.RetryDelivery(ctx, first[0].ID, deliveryAt.Add(time.Hour)); err != nil { // the operator, while the first attempt is under way
			t.Fatal(err)
		}
		second, err := s.ClaimDue(ctx, deliveryAt.Add(time.Hour+time.Second), time.Minute, 1)
		if err != nil || len(second) != 1 {
			t.Fatalf("second claim: %v %v", second, err)
		}
		before, _ := s.OutboxBacklog(ctx)
		for _, at := range []struct {
			d *store.Delivery
			a store.Attempt
		}{
			{second[0], store.Attempt{State: store.DeliveryDelivered}},
			{first[0], store.Attempt{State: store.DeliveryPending, Error: "HTTP 503", NextAt: deliveryAt.Add(2 * time.Hour)}},
			{first[0], store.Attempt{State: store.DeliveryDead, Error: "HTTP 400"}},
		} {
			e := deliveryEntry(at.d)
			e.Outbox = []store.Message{{Topic: "status", Key: []byte(at.d.Key), Value: []byte(at.a.State)}}
			if err := s.RecordAttempt(ctx, at.d, at.a, e); err != nil {
				t.Fatal(err)
			}
		}
		if d, err := s.DeliveryByKey(ctx, "d-1"); err != nil || d.State != store.DeliveryDelivered || d.Attempts != 1 || d.LastError != "" {
			t.Fatalf("delivery %+v %v, want delivered once", d, err)
		}
		if n, err := s.OutboxBacklog(ctx); err != nil || n != before+1 {
			t.Fatalf("%d status events, want the delivery's alone (%v)", n-before, err)
		}
		if n, err := s.Entries(ctx); err != nil || n != 3 {
			t.Fatalf("%d log entries, want the three attempts' too (%v)", n, err)
		}

		// Delivered by an attempt whose lease an operator's retry took
		// back, before any other attempt: it stands too.
		enqueue(t, s, "d-2")
		claim, err := s.ClaimDue(ctx, deliveryAt.Add(2*time.Hour), time.Minute, 1)
		if err != nil || len(claim) != 1 {
			t.Fatalf("claim: %v %v", claim, err)
		}
		if err := s.RetryDelivery(ctx, claim[0].ID, deliveryAt.Add(2*time.Hour)); err != nil {
			t.Fatal(err)
		}
		if err := s.RecordAttempt(ctx, claim[0], store.Attempt{State: store.DeliveryDelivered}, deliveryEntry(claim[0])); err != nil {
			t.Fatal(err)
		}
		if d, err := s.DeliveryByKey(ctx, "d-2"); err != nil || d.State != store.DeliveryDelivered {
			t.Fatalf("delivery %+v %v, want delivered", d, err)
		}
	})
}

// TestDeliveriesPages: deliveries are listed newest first, a page at a
// time (oldest first, a busy queue's list never reached its recent ones).
func TestDeliveriesPages(t *testing.T) {
	backends(t, func(t *testing.T, target string) {
		ctx := context.Background()
		s := open(t, target)
		for _, k := range []string{"k1", "k2", "k3", "k4", "k5"} {
			enqueue(t, s, k)
		}
		keys := func(before int64, limit int) (out []string, last int64) {
			ds, err := s.DeliveriesOf(ctx, "", store.DeliveryPending, before, limit)
			if err != nil {
				t.Fatal(err)
			}
			for _, d := range ds {
				out, last = append(out, d.Key), d.ID
			}
			return out, last
		}
		var got []string
		for before, pages := int64(0), 0; pages < 4; pages++ {
			page, last := keys(before, 2)
			if len(page) == 0 {
				break
			}
			got, before = append(got, page...), last
		}
		if want := []string{"k5", "k4", "k3", "k2", "k1"}; !slices.Equal(got, want) {
			t.Fatalf("pages of 2: %v, want %v", got, want)
		}
		// One partner's.
		if _, err := s.Enqueue(ctx, &store.Delivery{Key: "q1", PartnerID: "p2", MessageType: "JSON", Payload: []byte(`{}`)}, deliveryAt); err != nil {
			t.Fatal(err)
		}
		for partner, want := range map[string]int{"p2": 1, "p1": 5, "": 6, "p3": 0} {
			if ds, err := s.DeliveriesOf(ctx, partner, store.DeliveryPending, 0, 100); err != nil || len(ds) != want {
				t.Fatalf("partner %q: %d deliveries, want %d (%v)", partner, len(ds), want, err)
			}
		}
	})
}

// TestRetryDead: a partner's dead letters go back in the queue at once,
// the other partners' stay, and nothing else moves.
func TestRetryDead(t *testing.T) {
	backends(t, func(t *testing.T, target string) {
		ctx := context.Background()
		s := open(t, target)
		enqueue(t, s, "pending-1")
		for _, d := range []*store.Delivery{{Key: "dead-1", PartnerID: "p1"}, {Key: "dead-2", PartnerID: "p1"}, {Key: "dead-3", PartnerID: "p2"},
			{Key: "for-good", PartnerID: "p1", NoRetry: true}} {
			d.MessageType, d.Payload = "JSON", []byte(`{}`)
			if _, err := s.EnqueueRefused(ctx, d, "HTTP 404", deliveryAt, deliveryEntry); err != nil {
				t.Fatal(err)
			}
		}
		if n, err := s.RetryDead(ctx, "p1", deliveryAt.Add(time.Hour)); err != nil || n != 2 {
			t.Fatalf("retried %d, %v; want 2", n, err)
		}
		if n, err := s.DeadForGood(ctx, "p1"); err != nil || n != 1 {
			t.Fatalf("%d left refused for good, %v; want 1", n, err)
		}
		fg, _ := s.DeliveryByKey(ctx, "for-good")
		if err := s.RetryDelivery(ctx, fg.ID, deliveryAt.Add(time.Hour)); !errors.Is(err, store.ErrNoRetry) {
			t.Fatalf("retry of a dead letter refused for good: %v, want ErrNoRetry", err)
		}
		for key, want := range map[string]string{"pending-1": store.DeliveryPending, "dead-1": store.DeliveryPending, "dead-2": store.DeliveryPending, "dead-3": store.DeliveryDead, "for-good": store.DeliveryDead} {
			if d, err := s.DeliveryByKey(ctx, key); err != nil || d.State != want || (key == "dead-1" && (d.Attempts != 0 || d.LastError != "")) {
				t.Fatalf("%s: %+v %v, want %s", key, d, err, want)
			}
		}
		if got, err := s.DeliveryCounts(ctx); err != nil || got[store.DeliveryPending] != 3 || got[store.DeliveryDead] != 2 {
			t.Fatalf("counts %v %v", got, err)
		}
	})
}

// TestClaimDueBytes: a claim holds payloads up to ClaimDueBytes, and always
// one delivery, however large; the others wait for the next claim.
func TestClaimDueBytes(t *testing.T) {
	backends(t, func(t *testing.T, target string) {
		ctx := context.Background()
		s := open(t, target)
		big := bytes.Repeat([]byte("x"), store.ClaimDueBytes*3/8) // two fit, a third does not
		for i, size := range []int{len(big), len(big), len(big), store.ClaimDueBytes + 1, 10} {
			d := &store.Delivery{Key: fmt.Sprint("k", i), PartnerID: "p1", MessageType: "JSON", Payload: big[:min(size, len(big))]}
			if size > len(big) {
				d.Payload = bytes.Repeat([]byte("y"), size)
			}
			if _, err := s.Enqueue(ctx, d, deliveryAt.Add(time.Duration(i)*time.Millisecond)); err != nil {
				t.Fatal(err)
			}
		}
		var rounds [][]string
		for now := deliveryAt.Add(time.Second); len(rounds) < 5; {
			due, err := s.ClaimDue(ctx, now, time.Hour, 64)
			if err != nil {
				t.Fatal(err)
			}
			if len(due) == 0 {
				break
			}
			var keys []string
			for _, d := range due {
				keys = append(keys, d.Key)
			}
			rounds = append(rounds, keys)
		}
		if want := [][]string{{"k0", "k1"}, {"k2"}, {"k3"}, {"k4"}}; !reflect.DeepEqual(rounds, want) {
			t.Fatalf("claims %v, want %v", rounds, want)
		}

		// Two halves fill a claim exactly: both are claimed.
		half := bytes.Repeat([]byte("h"), store.ClaimDueBytes/2)
		for i := range 2 {
			if _, err := s.Enqueue(ctx, &store.Delivery{Key: fmt.Sprint("half", i), PartnerID: "p1", MessageType: "JSON", Payload: half}, deliveryAt); err != nil {
				t.Fatal(err)
			}
		}
		if due, err := s.ClaimDue(ctx, deliveryAt.Add(time.Second), time.Hour, 64); err != nil || len(due) != 2 {
			t.Fatalf("claimed %d of two halves, %v", len(due), err)
		}
	})
}

// TestDeliveriesListBounded: a list reads no payloads (up to 4 MiB each):
// listing 300 deliveries with 64 KiB payloads and 1 MiB answers, as earlier
// builds stored them, allocated 669 MB.
func TestDeliveriesListBounded(t *testing.T) {
	backends(t, func(t *testing.T, target string) {
		ctx := context.Background()
		s := open(t, target)
		payload := bytes.Repeat([]byte("p"), 1<<20)
		for i := 0; i < 50; i++ {
			if _, err := s.Enqueue(ctx, &store.Delivery{Key: fmt.Sprint("k", i), PartnerID: "p1", MessageType: "JSON", Payload: payload}, deliveryAt); err != nil {
				t.Fatal(err)
			}
		}
		var before, after runtime.MemStats
		runtime.GC()
		runtime.ReadMemStats(&before)
		ds, err := s.DeliveriesOf(ctx, "", "", 0, 1000)
		runtime.ReadMemStats(&after)
		if err != nil || len(ds) != 50 {
			t.Fatalf("listed %d: %v", len(ds), err)
		}
		if mb := float64(after.TotalAlloc-before.TotalAlloc) / 1e6; mb > 5 {
			t.Fatalf("listing 50 deliveries of 1 MiB allocated %.1f MB", mb)
		}
	})
}

// TestClaimDueOrder: deliveries are due and claimed by their time, whatever
// its fraction of a second: one due on a whole second is due half a second
// later and comes before one due a millisecond after it (earlier builds
// wrote "…:05Z", which sorts after "…:05.001Z"); a pending row an earlier
// build wrote in that layout is still claimed.
func TestClaimDueOrder(t *testing.T) {
	backends(t, func(t *testing.T, target string) {
		ctx := context.Background()
		s := open(t, target)
		whole := time.Date(2026, 11, 27, 3, 0, 5, 0, time.UTC)
		for i, at := range []time.Time{whole.Add(time.Millisecond), whole, whole.Add(1500 * time.Millisecond)} {
			if _, err := s.Enqueue(ctx, &store.Delivery{Key: fmt.Sprint("k", i), PartnerID: "p1", MessageType: "JSON", Payload: []byte(`{}`)}, at); err != nil {
				t.Fatal(err)
			}
		}
		claim := func(now time.Time) (keys []string) {
			due, err := s.ClaimDue(ctx, now, time.Hour, 64)
			if err != nil {
				t.Fatal(err)
			}
			for _, d := range due {
				keys = append(keys, d.Key)
			}
			return keys
		}
		if got := claim(whole.Add(500 * time.Millisecond)); !slices.Equal(got, []string{"k1", "k0"}) {
			t.Fatalf("due half a second past the whole second: %v, want [k1 k0]", got)
		}
		old, err := s.DeliveryByKey(ctx, "k2")
		if err != nil {
			t.Fatal(err)
		}
		if err := s.SetNextAt(ctx, old.ID, "2026-11-27T03:00:06.5Z"); err != nil {
			t.Fatal(err)
		}
		if got := claim(whole.Add(2 * time.Second)); !slices.Equal(got, []string{"k2"}) {
			t.Fatalf("a row in the earlier layout: %v, want [k2]", got)
		}
	})
}

// claimedPair opens a store at target with deliveries k1 and k2, claimed
// at now for a minute.
func claimedPair(t *testing.T, target string) (s *store.DB, due []*store.Delivery, now time.Time) {
	t.Helper()
	s = open(t, target)
	enqueue(t, s, "k1")
	enqueue(t, s, "k2")
	now = deliveryAt.Add(time.Second)
	due, err := s.ClaimDue(context.Background(), now, time.Minute, 64)
	if err != nil || len(due) != 2 {
		t.Fatalf("claim: %d, %v", len(due), err)
	}
	return s, due, now
}

// TestRescheduleUnderLease: skipped deliveries go back to the queue at their
// times in one write, each only while the round's lease holds: one an
// operator took back meanwhile stays due.
func TestRescheduleUnderLease(t *testing.T) {
	backends(t, func(t *testing.T, target string) {
		ctx := context.Background()
		s, due, now := claimedPair(t, target)
		if err := s.RetryDelivery(ctx, due[1].ID, now); err != nil {
			t.Fatal(err)
		}
		later := now.Add(time.Hour)
		if err := s.Reschedule(ctx, due, []time.Time{later, later}); err != nil {
			t.Fatal(err)
		}
		for _, tc := range []struct {
			at   time.Time
			want []string
		}{{now.Add(time.Second), []string{"k2"}}, {later.Add(time.Second), []string{"k1"}}} {
			got, err := s.ClaimDue(ctx, tc.at, 10*time.Hour, 64)
			if err != nil || len(got) != len(tc.want) || got[0].Key != tc.want[0] {
				t.Fatalf("due at %s: %+v %v, want %v", tc.at, got, err, tc.want)
			}
		}
	})
}

// TestPutBackLogged: an attempt cut short is put back due at once, in the
// same write as its message-log entry; one whose lease an operator took
// back meanwhile is left as it is, and is logged all the same (the partner
// may have had it).
func TestPutBackLogged(t *testing.T) {
	backends(t, func(t *testing.T, target string) {
		ctx := context.Background()
		s, due, now := claimedPair(t, target)
		retried := now.Add(time.Hour)
		if err := s.RetryDelivery(ctx, due[1].ID, retried); err != nil {
			t.Fatal(err)
		}
		for _, d := range due {
			e := &store.Entry{CorrelationID: "cut-" + d.Key, PartnerID: d.PartnerID, ReceivedAt: now, Route: "OUTBOUND " + d.MessageType,
				ContentType: "application/json", Body: d.Payload, Verification: "outbound: cut short", Outcome: "INTERRUPTED", SourceKey: d.Key}
			if err := s.PutBack(ctx, d, now, e); err != nil {
				t.Fatal(err)
			}
		}
		if got, err := s.ClaimDue(ctx, now.Add(time.Second), time.Minute, 64); err != nil || len(got) != 1 || got[0].Key != "k1" || got[0].Attempts != 0 {
			t.Fatalf("due after the put-back: %+v %v, want k1 alone, no attempt counted", got, err)
		}
		if k2, err := s.DeliveryByKey(ctx, "k2"); err != nil || !k2.NextAt.Equal(retried) {
			t.Fatalf("k2: %+v %v, want due at the operator's time, %s", k2, err, retried)
		}
		var n int
		if err := s.DB().QueryRow(`SELECT COUNT(*) FROM message_log WHERE outcome = 'INTERRUPTED' AND correlation_id IN ('cut-k1', 'cut-k2')`).Scan(&n); err != nil || n != 2 {
			t.Fatalf("%d interrupted entries (%v), want 2", n, err)
		}
		if rep, err := s.Verify(ctx, nil); err != nil || rep.BrokenSeq != 0 || rep.Entries != 2 {
			t.Fatalf("chain: %+v %v", rep, err)
		}
	})
}

// TestClaimDueCaseOrder: a delivery on a case is claimed only once no
// earlier delivery on that case to that partner is pending: not while the
// earlier is in flight, nor while it waits for its retry; once it is
// delivered or dead-lettered, the next is. Deliveries without a case, and
// another partner's on a case of the same name, do not wait. Those behind
// keep the first's time (so that a look need not pass them one by one):
// its lease's mark, its retry's time, its time when put back, and the
// time it was done.
func TestClaimDueCaseOrder(t *testing.T) {
	backends(t, func(t *testing.T, target string) {
		ctx := context.Background()
		s := open(t, target)
		for _, d := range []struct{ key, partner, caseID string }{
			{"c1-request", "p1", "C1"}, {"c1-decision", "p1", "C1"}, {"c2-request", "p1", "C2"}, {"c2-decision", "p1", "C2"},
			{"no-case-1", "p1", ""}, {"no-case-2", "p1", ""}, {"p2-c1", "p2", "C1"}, {"c3-request", "p3", "C3"}, {"c3-decision", "p3", "C3"}, {"c4-request", "p3", "C4"}, {"c4-decision", "p3", "C4"},
			{"c5-request", "p4", "C5"}, {"c5-decision", "p4", "C5"},
		} {
			if _, err := s.Enqueue(ctx, &store.Delivery{Key: d.key, PartnerID: d.partner, MessageType: "RequestInformation", CaseID: d.caseID, Payload: []byte(`{}`)}, deliveryAt); err != nil {
				t.Fatal(err)
			}
		}
		claimed := map[string]*store.Delivery{}
		claim := func(now time.Time, quota map[string]int) (keys []string) {
			t.Helper()
			due, err := s.ClaimDueOf(ctx, now, 24*time.Hour, func(p string) int { return quota[p] })
			if err != nil {
				t.Fatal(err)
			}
			for _, d := range due {
				keys, claimed[d.Key] = append(keys, d.Key), d
			}
			slices.Sort(keys)
			return keys
		}
		record := func(key string, a store.Attempt) {
			t.Helper()
			if err := s.RecordAttempt(ctx, claimed[key], a, deliveryEntry(claimed[key])); err != nil {
				t.Fatal(err)
			}
		}
		waitsUntil := func(key string, at time.Time) {
			t.Helper()
			if d, err := s.DeliveryByKey(ctx, key); err != nil || !d.NextAt.Equal(at) {
				t.Fatalf("%s due at %v (%v), want %v", key, d.NextAt, err, at)
			}
		}
		waitsFor := func(key string) (ahead string) {
			t.Helper()
			ds, err := s.DeliveriesOf(ctx, "", "", 0, 100)
			if err != nil {
				t.Fatal(err)
			}
			byID := map[int64]string{}
			for _, d := range ds {
				byID[d.ID] = d.Key
			}
			for _, d := range ds {
				if d.Key == key {
					return byID[d.WaitsFor]
				}
			}
			t.Fatalf("%s not listed", key)
			return ""
		}
		now, both := deliveryAt.Add(time.Second), map[string]int{"p1": 64, "p2": 64}
		if got := waitsFor("c1-decision"); got != "c1-request" {
			t.Fatalf("c1-decision listed as waiting for %q, want c1-request", got)
		}
		for _, k := range []string{"c1-request", "no-case-2", "p2-c1"} {
			if got := waitsFor(k); got != "" {
				t.Fatalf("%s listed as waiting for %q", k, got)
			}
		}
		if got, want := claim(now, both), []string{"c1-request", "c2-request", "no-case-1", "no-case-2", "p2-c1"}; !slices.Equal(got, want) {
			t.Fatalf("first claim %v, want %v", got, want)
		}
		waitsUntil("c1-decision", now.Add(24*time.Hour))
		if got := claim(now.Add(time.Second), both); len(got) != 0 {
			t.Fatalf("with the first of each case in flight: %v, want none", got)
		}
		record("c1-request", store.Attempt{State: store.DeliveryPending, Error: "server.unavailable", NextAt: now.Add(time.Hour)})
		waitsUntil("c1-decision", now.Add(time.Hour))
		// An operator's retry of the one behind does not put it first.
		if d, err := s.DeliveryByKey(ctx, "c1-decision"); err != nil {
			t.Fatal(err)
		} else if err := s.RetryDelivery(ctx, d.ID, now.Add(time.Second)); err != nil {
			t.Fatal(err)
		}
		waitsUntil("c1-decision", now.Add(time.Second))
		record("c2-request", store.Attempt{State: store.DeliveryDelivered})
		waitsUntil("c2-decision", deliveryAt) // the attempt's entry's time
		if got, want := claim(now.Add(2*time.Second), both), []string{"c2-decision"}; !slices.Equal(got, want) {
			t.Fatalf("C1's request waiting for its retry, C2's delivered: %v, want %v", got, want)
		}
		if got, want := claim(now.Add(time.Hour), both), []string{"c1-request"}; !slices.Equal(got, want) {
			t.Fatalf("at C1's retry: %v, want %v", got, want)
		}
		record("c1-request", store.Attempt{State: store.DeliveryDead, Error: "client.content.invalid"})
		if got := waitsFor("c1-decision"); got != "" {
			t.Fatalf("with C1's request dead, c1-decision listed as waiting for %q", got)
		}
		if got, want := claim(now.Add(time.Hour+time.Second), both), []string{"c1-decision"}; !slices.Equal(got, want) {
			t.Fatalf("C1's request dead-lettered: %v, want %v", got, want)
		}
		// The dead letter retried after the decision went: it goes after
		// it, and the delivered decision is listed as waiting for nothing.
		record("c1-decision", store.Attempt{State: store.DeliveryDelivered})
		if err := s.RetryDelivery(ctx, claimed["c1-request"].ID, now.Add(time.Hour+2*time.Second)); err != nil {
			t.Fatal(err)
		}
		if got := waitsFor("c1-decision"); got != "" {
			t.Fatalf("the delivered c1-decision listed as waiting for %q", got)
		}
		if got, want := claim(now.Add(time.Hour+3*time.Second), map[string]int{"p1": 64}), []string{"c1-request"}; !slices.Equal(got, want) {
			t.Fatalf("C1's request retried: %v, want %v", got, want)
		}

		// Waiting for its retry, taken back by an operator: the one behind
		// it moves with it, and goes once it is delivered.
		if got, want := claim(now, map[string]int{"p4": 1}), []string{"c5-request"}; !slices.Equal(got, want) {
			t.Fatalf("p4: %v, want %v", got, want)
		}
		record("c5-request", store.Attempt{State: store.DeliveryPending, Error: "server.unavailable", NextAt: now.Add(time.Hour)})
		if err := s.RetryDelivery(ctx, claimed["c5-request"].ID, now.Add(5*time.Second)); err != nil {
			t.Fatal(err)
		}
		waitsUntil("c5-decision", now.Add(5*time.Second))
		if got, want := claim(now.Add(5*time.Second), map[string]int{"p4": 1}), []string{"c5-request"}; !slices.Equal(got, want) {
			t.Fatalf("p4 retried: %v, want %v", got, want)
		}
		record("c5-request", store.Attempt{State: store.DeliveryDelivered})
		if got, want := claim(now.Add(6*time.Second), map[string]int{"p4": 1}), []string{"c5-decision"}; !slices.Equal(got, want) {
			t.Fatalf("p4's request delivered: %v, want %v", got, want)
		}

		// Claimed and put back unstarted, each with the one behind it.
		if got, want := claim(now, map[string]int{"p3": 2}), []string{"c3-request", "c4-request"}; !slices.Equal(got, want) {
			t.Fatalf("p3: %v, want %v", got, want)
		}
		if err := s.Reschedule(ctx, []*store.Delivery{claimed["c3-request"], claimed["c4-request"]}, []time.Time{now.Add(time.Minute), now.Add(2 * time.Minute)}); err != nil {
			t.Fatal(err)
		}
		waitsUntil("c3-decision", now.Add(time.Minute))
		waitsUntil("c4-request", now.Add(2*time.Minute))
		waitsUntil("c4-decision", now.Add(2*time.Minute))
		if got, want := claim(now.Add(time.Minute), map[string]int{"p3": 2}), []string{"c3-request"}; !slices.Equal(got, want) {
			t.Fatalf("p3 put back: %v, want %v", got, want)
		}
	})
}
