package store_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"maps"
	"reflect"
	"runtime"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/perkeso/jambatan/cmd/gateway/internal/pgtest"
	"github.com/perkeso/jambatan/cmd/gateway/internal/sqldialect"
	"github.com/perkeso/jambatan/cmd/gateway/internal/store"
)

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
