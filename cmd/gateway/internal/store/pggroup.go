package store

import (
	"context"
	"database/sql"
	"fmt"
	"strings"
	"sync"

	"github.com/perkeso/jambatan/cmd/gateway/internal/sqldialect"
)

// pgGroup is a group commit in progress on PostgreSQL, where every
// statement is a round trip that costs 0.6-1.9 ms of wall time under load
// while the writer holds the chain's lock. The group's idempotency lookups
// are one query before its writes run, and its accepted entries are queued
// and inserted by one statement before COMMIT: a group of 16 notices went
// from 35 round trips to 5.
type pgGroup struct {
	tx     *sql.Tx
	known  map[string]*Record // by source key: looked up (nil: absent) or accepted in this group
	queued [][]any            // per accepted entry: log, outbox and record values
	shape  []byte             // per accepted entry: its number of outbox messages
}

// prefetch looks up the group's source keys in one query.
func (g *pgGroup) prefetch(ctx context.Context, keys []string) error {
	for _, k := range keys {
		g.known[k] = nil
	}
	if len(keys) == 0 {
		return nil
	}
	rows, err := g.tx.QueryContext(ctx, qRecordBy+`source_key = ANY($1)`, keys)
	if err != nil {
		return err
	}
	defer rows.Close()
	for rows.Next() {
		r, err := scanRecord(rows)
		if err != nil {
			return err
		}
		g.known[r.SourceKey] = r
	}
	return rows.Err()
}

// flush inserts the queued entries, their events and records in one
// statement (data-modifying CTEs run to completion whether or not the
// main query reads them; the foreign keys hold at the statement's end).
func (g *pgGroup) flush(ctx context.Context) error {
	if len(g.queued) == 0 {
		return nil
	}
	var args []any
	for _, a := range g.queued {
		args = append(args, a...)
	}
	_, err := g.tx.ExecContext(ctx, groupSQL(g.shape), args...)
	return err
}

var groupSQLs sync.Map // shape -> PostgreSQL statement

// groupSQL is flush's statement for entries with the given numbers of
// outbox messages, rebound to PostgreSQL placeholders once per shape.
func groupSQL(shape []byte) string {
	if q, ok := groupSQLs.Load(string(shape)); ok {
		return q.(string)
	}
	var q strings.Builder
	q.WriteString("WITH ")
	for i, n := range shape {
		if i > 0 {
			q.WriteString(", ")
		}
		fmt.Fprintf(&q, "l%d AS (%s)", i, qInsertLog)
		for j := range int(n) {
			fmt.Fprintf(&q, ", o%d_%d AS (%s)", i, j, qInsertOutbox)
		}
		fmt.Fprintf(&q, ", r%d AS (%s)", i, qInsertRecord)
	}
	q.WriteString(" SELECT 1")
	out := sqldialect.Rebind(q.String(), true)
	groupSQLs.Store(string(shape), out)
	return out
}

// appendAccepted logs an accepted e with its outbox messages and records
// rec. In a PostgreSQL group commit the inserts are queued for the group's
// one statement (see pgGroup); on SQLite they run at once.
func (s *DB) appendAccepted(ctx context.Context, tx *sql.Tx, e *Entry, rec *Record) error {
	g := s.group
	if g == nil || g.tx != tx || e.Exchange != nil || len(e.Outbox) > 255 {
		if err := s.appendEntry(ctx, tx, e); err != nil {
			return err
		}
		rec.Seq = e.Seq
		if _, err := s.execTx(ctx, tx, qInsertRecord, recordArgs(rec)...); err != nil {
			return err
		}
		if g != nil && g.tx == tx {
			g.known[e.SourceKey] = rec
		}
		return nil
	}
	if err := s.chain(ctx, tx, e); err != nil {
		return err
	}
	rec.Seq = e.Seq
	args := logArgs(e)
	for _, m := range e.Outbox {
		oa, err := outboxArgs(e, m)
		if err != nil {
			return err
		}
		args = append(args, oa...)
	}
	args = append(args, recordArgs(rec)...)
	// Inserted with the rest of the group, before COMMIT; a later
	// submission of the same key in this group finds it here.
	g.queued, g.shape = append(g.queued, args), append(g.shape, byte(len(e.Outbox)))
	g.known[e.SourceKey] = rec
	return nil
}

// recordBySourceKey is recordBy for the group's Accepts: on PostgreSQL the
// answer was looked up with the group's other keys (or accepted earlier in
// the group).
func (s *DB) recordBySourceKey(ctx context.Context, tx *sql.Tx, key string) (*Record, error) {
	if g := s.group; g != nil && g.tx == tx {
		if r, ok := g.known[key]; ok {
			if r == nil {
				return nil, ErrNotFound
			}
			return r, nil
		}
	}
	return s.recordBy(ctx, txQuerier{s, tx}, "source_key", key)
}
