package store

import (
	"context"
	"errors"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
	"github.com/prometheus/client_golang/prometheus"
	"modernc.org/sqlite"
	sqlite3 "modernc.org/sqlite/lib"
)

// writeReq is one write waiting for the group commit.
type writeReq struct {
	ctx      context.Context
	fn       func(ctx context.Context, tx wtx) error // given the group's context, not the caller's (see write)
	done     chan error
	recordID string // an Accept's record id (its idempotency key), looked up for the whole group at once (PostgreSQL)
	probe    bool   // Ping's write, which says nothing of whether the others can be made (see writeHealth)
}

// writeHealth is what the writer saw of its last commits, for readiness.
// Ping's own write is not enough: on a full disk it rewrote its page in
// place and committed, while every notice, which needs the files to grow,
// failed. A store whose writes fail fails them all, so a failure that no
// commit has followed is the sign.
type writeHealth struct {
	mu         sync.Mutex
	ok, failed time.Time
	err        error
}

// note records a round's outcome: ok when a write of it committed, else
// err. A round of Ping's write alone is not recorded, nor a failure for
// what the writes held (contentFailure), which says nothing of the store.
func (h *writeHealth) note(batch []*writeReq, ok bool, err error) {
	if !slices.ContainsFunc(batch, func(r *writeReq) bool { return !r.probe }) || !ok && contentFailure(err) {
		return
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	if ok {
		h.ok = time.Now()
	} else {
		h.failed, h.err = time.Now(), err
	}
}

// contentFailure reports whether err refuses a write for what it holds: a
// constraint, a value too big or of the wrong type (SQLite's primary codes,
// PostgreSQL's SQLSTATE classes 22 and 23). Any other failure (a full disk,
// an I/O error, a lost connection, a timeout) is the store's.
func contentFailure(err error) bool {
	var se *sqlite.Error
	if errors.As(err, &se) {
		switch se.Code() & 0xff {
		case sqlite3.SQLITE_CONSTRAINT, sqlite3.SQLITE_TOOBIG, sqlite3.SQLITE_MISMATCH:
			return true
		}
		return false
	}
	var pe *pgconn.PgError
	return errors.As(err, &pe) && (strings.HasPrefix(pe.Code, "22") || strings.HasPrefix(pe.Code, "23"))
}

// WriteFailure is the error of the last write if it failed, no write has
// committed since, and it failed no longer than within ago. Past that it is not
// reported: a store nobody writes to (readiness turned traffic away) may
// have recovered, and only a write can tell.
func (s *DB) WriteFailure(within time.Duration) error {
	h := &s.health
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.err == nil || !h.failed.After(h.ok) || time.Since(h.failed) > within {
		return nil
	}
	return h.err
}

// maxGroup bounds how many writes share one transaction.
const maxGroup = 256

// groupLinger is how long the writer may wait for more writes before it
// commits, while there is load (the previous group held more than one
// write); it stops waiting as soon as the group is as large as the previous
// one. Without it, concurrent callers reach the writer a few at a time: at
// 32 concurrent callers the groups averaged 2 writes, and each commit's
// fixed cost (BEGIN, chain head, the tail pages rewritten, the fsync) was
// paid for every other notice. With it: loadtest 1,991 -> about 2,420
// notices/s, p99 42 -> 32 ms; 32 callers in a loop (BenchmarkAccept) 64-69
// -> 47-57 us per accept. A lone caller (groups of one) never waits.
const groupLinger = time.Millisecond

var groupSize = prometheus.NewHistogram(prometheus.HistogramOpts{Name: "jambatan_store_group_commit_size",
	Help: "Writes committed together in one transaction (group commit).", Buckets: []float64{1, 2, 4, 8, 16, 32, 64, 128, 256}})

// instanceLocksRetaken counts keepInstanceLock's new sessions: each says
// the connection to PostgreSQL was lost while the gateway ran.
var instanceLocksRetaken = prometheus.NewCounter(prometheus.CounterOpts{Name: "jambatan_store_instance_lock_retaken_total",
	Help: "Times this PostgreSQL instance's lock was taken again after the session holding it ended."})

// Register adds the store's metrics to a registry.
func Register(r prometheus.Registerer) { r.MustRegister(groupSize, instanceLocksRetaken) }

// writer runs waiting writes in one transaction per round. If the round
// fails, each write is retried alone so one bad write cannot fail others.
func (s *DB) writer() {
	defer close(s.writerDone)
	linger := time.NewTimer(time.Hour)
	linger.Stop()
	last := 1 // size of the previous group
	for {
		var first *writeReq
		select {
		case first = <-s.reqs:
		case <-s.closing:
			for {
				select {
				case r := <-s.reqs:
					r.done <- ErrClosed
				default:
					return
				}
			}
		}
		batch := []*writeReq{first}
		waiting := last > 1
		if waiting {
			linger.Reset(groupLinger)
		}
	drain:
		for len(batch) < maxGroup {
			select {
			case r := <-s.reqs:
				batch = append(batch, r)
				continue
			default:
			}
			if !waiting || len(batch) >= last {
				break
			}
			select {
			case r := <-s.reqs:
				batch = append(batch, r)
			case <-linger.C:
				waiting = false
				break drain
			}
		}
		linger.Stop() // Go 1.23 timers: no stale tick is left to drain
		last = len(batch)
		groupSize.Observe(float64(len(batch)))
		err := s.commit(batch)
		// A failed group is retried write by write, so that one bad write
		// fails alone; not after a timeout, when the database is not
		// answering and each retry would wait the timeout out again, nor
		// when the group may have committed (a retry failing at once on a
		// database still away would tell its sender nothing was accepted).
		// A write that fails alone while others commit failed for what it
		// holds, not for the store: the round counts as committed.
		if err != nil && len(batch) > 1 && !OutcomeUnknown(err) {
			committed, failed := false, error(nil)
			for _, r := range batch {
				err := s.commit([]*writeReq{r})
				committed = committed || err == nil && !r.probe
				if err != nil && (failed == nil || contentFailure(failed)) {
					failed = err // the store's failure, if any write had one
				}
				r.done <- err
			}
			s.health.note(batch, committed, failed)
			continue
		}
		s.health.note(batch, err == nil, err)
		for _, r := range batch {
			r.done <- err
		}
	}
}

func (s *DB) commit(batch []*writeReq) error {
	if s.postgres {
		return s.commitPG(batch)
	}
	ctx := context.Background()
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	defer tx.Rollback()
	s.head = &chainHead{tx: tx}
	defer func() { s.head, s.group = nil, nil }()
	if s.group, err = s.lookUp(ctx, tx, batch); err != nil {
		return err
	}
	if err := run(ctx, batch, tx); err != nil {
		return err
	}
	if err := tx.Commit(); err != nil {
		return err
	}
	s.fresh.add(s.group.committed)
	return nil
}
