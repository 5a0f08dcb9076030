package store

import (
	"context"
	"database/sql"
	"encoding/json"
)

// group is a group commit in progress. On both stores the group's Accepts
// find their records with one query, not one each (known).
//
// On PostgreSQL every statement is a round trip that costs 0.6-1.9 ms of
// wall time under load while the writer holds the chain's lock. commitPG
// sends the group's opening statements (BEGIN, the lock, the chain head,
// the idempotency lookups) as one pipeline, runs the writes, and sends the
// accepted entries' inserts (queued here, one statement) with COMMIT as
// another: two round trips per group, where one statement per write made
// a group of 16 cost 35.
type group struct {
	tx    wtx
	known map[string]*Record // by record id: looked up (nil: absent) or accepted in this group
	// queue (PostgreSQL): the accepted entries' rows are queued for
	// qInsertLogRows, qInsertOutboxRows and qInsertRecordRows.
	queue                           bool
	logRows, outboxRows, recordRows [][]any
	committed                       []*Entry // entries with rendered messages, for fresh once the group commits
}

// newGroup is the group of batch's writes in tx, with the record ids of its
// Accepts, to be looked up, in known.
func newGroup(tx wtx, batch []*writeReq, queue bool) (*group, []string) {
	g := &group{tx: tx, known: map[string]*Record{}, queue: queue}
	keys := []string{}
	for _, r := range batch {
		if r.recordID != "" {
			keys = append(keys, r.recordID)
			g.known[r.recordID] = nil
		}
	}
	return g, keys
}

// lookUp is the group of batch on SQLite, its records found with one query.
func (s *DB) lookUp(ctx context.Context, tx *sql.Tx, batch []*writeReq) (*group, error) {
	g, keys := newGroup(tx, batch, false)
	if len(keys) == 0 {
		return g, nil
	}
	ids, err := json.Marshal(keys)
	if err != nil {
		return nil, err
	}
	st, _ := s.prepared(tx, qRecordsIn)
	rows, err := tx.StmtContext(ctx, st).QueryContext(ctx, string(ids))
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	for rows.Next() {
		r, err := scanRecord(rows)
		if err != nil {
			return nil, err
		}
		g.known[r.RecordID] = r
	}
	return g, rows.Err()
}

// run makes the group's writes in tx, their statements bounded by ctx, the
// group's context.
func run(ctx context.Context, batch []*writeReq, tx wtx) error {
	for _, r := range batch {
		if err := r.fn(ctx, tx); err != nil {
			return err
		}
	}
	return nil
}

// write queues fn for the next group commit and waits until it is durable.
// ctx bounds the wait for a place in the queue only. Once queued, a write
// whose caller has gone is made all the same: it may be an accepted notice,
// and idempotency answers the sender's retry. So fn's statements run under
// the context it is given, the group's (PostgreSQL: the commit timeout),
// never the caller's: a caller's context ending mid-group failed the
// group's statements, the group, then the write retried alone (and each
// statement under a cancellable context cost SQLite's driver a goroutine).
// Name fn's parameter ctx, to hide the caller's.
func (s *DB) write(ctx context.Context, fn func(ctx context.Context, tx wtx) error) error {
	return s.writeKeyed(ctx, "", fn)
}

// writeKeyed is write for an Accept of the record recordID.
func (s *DB) writeKeyed(ctx context.Context, recordID string, fn func(ctx context.Context, tx wtx) error) error {
	return s.submit(&writeReq{ctx: ctx, fn: fn, done: make(chan error, 1), recordID: recordID})
}

// submit queues r and waits for its outcome.
func (s *DB) submit(r *writeReq) error {
	ctx := r.ctx
	select {
	case s.reqs <- r:
	case <-s.closing:
		return ErrClosed
	case <-ctx.Done():
		return ctx.Err()
	}
	// Once queued, wait for the outcome even if ctx ends: the write may
	// already be in a committing transaction. A write queued as the store
	// closed, after the writer's last look at the queue, is never run.
	select {
	case err := <-r.done:
		return err
	case <-s.writerDone:
		select {
		case err := <-r.done:
			return err
		default:
			return ErrClosed
		}
	}
}

// appendAccepted logs an accepted e with its outbox messages and records
// rec. In a PostgreSQL group commit the inserts are queued for the group's
// one statement (see group); on SQLite they run at once.
func (s *DB) appendAccepted(ctx context.Context, tx wtx, e *Entry, rec *Record) error {
	g := s.group
	if g == nil || g.tx != tx || !g.queue || e.Exchange != nil {
		if err := s.appendEntry(ctx, tx, e); err != nil {
			return err
		}
		rec.Seq = e.Seq
		if _, err := s.execTx(ctx, tx, qInsertRecord, recordArgs(rec, e)...); err != nil {
			return err
		}
		if g != nil && g.tx == tx {
			g.known[e.RecordID] = rec
		}
		return nil
	}
	if err := s.chain(ctx, tx, e); err != nil {
		return err
	}
	rec.Seq = e.Seq
	for _, m := range e.Outbox {
		args, err := outboxArgs(e, m)
		if err != nil {
			return err
		}
		g.outboxRows = append(g.outboxRows, args)
	}
	// Inserted with the rest of the group, before COMMIT; a later
	// submission of the same key in this group finds it here.
	g.logRows, g.recordRows = append(g.logRows, logArgs(e)), append(g.recordRows, recordArgs(rec, e))
	g.known[e.RecordID] = rec
	g.rendered(e)
	return nil
}

// recordByID is recordBy for the group's Accepts: the answer was looked
// up with the group's other record ids (or accepted earlier in the group).
func (s *DB) recordByID(ctx context.Context, tx wtx, id string) (*Record, error) {
	if g := s.group; g != nil && g.tx == tx {
		if r, ok := g.known[id]; ok {
			if r == nil {
				return nil, ErrNotFound
			}
			return r, nil
		}
	}
	return s.recordBy(ctx, txQuerier{s, tx}, id)
}
