package store_test

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

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
