package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/stdlib"
)

// commitPG is commit on PostgreSQL: the group runs on a connection of its
// own, in a transaction it begins and ends itself so that BEGIN and COMMIT
// travel with the group's other statements (pgx batches). A connection
// left inside a transaction is discarded by the driver, not reused.
//
// The whole commit is bounded by the commit timeout: past it, the group's
// writes fail with ErrCommitTimeout and its connection is dropped.
func (s *DB) commitPG(batch []*writeReq) (err error) {
	timeout := time.Duration(s.commitTimeout.Load())
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	defer func() {
		if err != nil && ctx.Err() != nil {
			err = fmt.Errorf("%w (%v): %w", ErrCommitTimeout, timeout, err)
		}
	}()
	conn, err := s.db.Conn(ctx)
	if err != nil {
		return err
	}
	defer conn.Close()
	defer func() {
		if err != nil && ctx.Err() == nil {
			_, _ = conn.ExecContext(ctx, `ROLLBACK`)
		}
	}()
	g, keys := newGroup(conn, batch, true)
	head := &chainHead{tx: conn, valid: true}
	begin := &pgx.Batch{}
	begin.Queue(`BEGIN`)
	begin.Queue(`SELECT pg_advisory_xact_lock($1)`, lockWriter)
	// Read after the lock is held: each statement of the pipeline
	// takes its own snapshot (READ COMMITTED).
	begin.Queue(qChainHead).QueryRow(func(row pgx.Row) error {
		err := row.Scan(&head.seq, &head.hash)
		if errors.Is(err, pgx.ErrNoRows) {
			return nil
		}
		return err
	})
	begin.Queue(qRecordBy+`record_id = ANY($1)`, keys).Query(func(rows pgx.Rows) error {
		for rows.Next() {
			r, err := scanRecord(rows)
			if err != nil {
				return err
			}
			g.known[r.RecordID] = r
		}
		return rows.Err()
	})
	if err = pipeline(ctx, conn, begin); err != nil {
		return err
	}
	s.head, s.group = head, g
	defer func() { s.head, s.group = nil, nil }()
	if err := run(ctx, batch, conn); err != nil {
		return err
	}
	end := &pgx.Batch{}
	for _, t := range []struct {
		query string
		rows  [][]any
	}{{qInsertLogRows, g.logRows}, {qInsertOutboxRows, g.outboxRows}, {qInsertRecordRows, g.recordRows}} {
		if len(t.rows) == 0 {
			continue
		}
		cols, err := columns(t.rows)
		if err != nil {
			return err
		}
		end.Queue(t.query, cols...)
	}
	end.Queue(`COMMIT`)
	if err := commitPipeline(ctx, conn, end); err != nil {
		return err
	}
	s.fresh.add(g.committed)
	return nil
}

// commitPipeline is pipeline for the batch that ends with COMMIT: it reads
// the answers one by one, so that a failure says whether the group may
// have committed (ErrCommitUnknown). It did not if the database refused a
// statement (an ERROR aborts the transaction, at COMMIT too), or ended the
// session (FATAL) before COMMIT's answer: the server answers in order.
// A connection lost any other way after the batch was sent may have lost
// the answers of a group that committed. Once COMMIT's answer has come,
// the group committed, whatever happens to the connection afterwards.
func commitPipeline(ctx context.Context, conn *sql.Conn, b *pgx.Batch) error {
	return onPgx(conn, func(c *pgx.Conn) error {
		br := c.SendBatch(ctx, b)
		defer br.Close()
		for i := range b.Len() {
			if _, err := br.Exec(); err != nil {
				if notCommitted(err, i == b.Len()-1) {
					return err
				}
				return fmt.Errorf("%w: %w", ErrCommitUnknown, err)
			}
		}
		return nil
	})
}

// notCommitted reports whether err, the answer to a statement of the batch
// that ends with COMMIT (atCommit: to COMMIT itself), shows that the group
// did not commit.
func notCommitted(err error, atCommit bool) bool {
	if pgconn.SafeToRetry(err) {
		return true // nothing was sent
	}
	var pe *pgconn.PgError
	if !errors.As(err, &pe) {
		return false // the connection was lost: the answers may have been
	}
	severity := pe.SeverityUnlocalized // PostgreSQL 9.6 on; Severity may be translated
	if severity == "" {
		severity = pe.Severity
	}
	return severity == "ERROR" || !atCommit
}

// The statements that insert a group's accepted entries, their events and
// records: one per table, each column's values as an array (unnest). Three
// fixed statements, prepared once, whatever the group's size; they replaced
// one statement of per-entry CTEs (a statement per group size, 33
// parameters per entry): loadtest on PostgreSQL +8 % (median of 3
// interleaved runs, 1,756 -> 1,891/s).
const (
	qInsertLogRows = `INSERT INTO message_log (seq, correlation_id, partner_id, received_at, route, content_type, body,
		signature, verification, status, outcome, problem_type, source_key, record_id, payload_sha256, canonical, receipt, prev_hash, hash)
		SELECT * FROM unnest($1::bigint[], $2::text[], $3::text[], $4::text[], $5::text[], $6::text[], $7::bytea[], $8::text[],
		$9::text[], $10::int[], $11::text[], $12::text[], $13::text[], $14::text[], $15::text[], $16::bytea[], $17::text[], $18::text[], $19::text[])`
	qInsertOutboxRows = `INSERT INTO outbox (topic, msg_key, headers, value, created_at, log_seq, render)
		SELECT * FROM unnest($1::text[], $2::bytea[], $3::text[], $4::bytea[], $5::text[], $6::bigint[], $7::text[])`
	qInsertRecordRows = `INSERT INTO records (record_id, source_key, partner_id, payload_sha256, receipt, accepted_at, seq)
		SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::text[], $6::text[], $7::bigint[])`
)

// columns turns rows (logArgs, outboxArgs or recordArgs of each entry)
// into one array per column.
func columns(rows [][]any) ([]any, error) {
	cols := make([]any, len(rows[0]))
	for i := range cols {
		switch rows[0][i].(type) {
		case string:
			cols[i] = column[string](rows, i)
		case []byte:
			cols[i] = column[[]byte](rows, i)
		case int64:
			cols[i] = column[int64](rows, i)
		case int:
			cols[i] = column[int](rows, i)
		default:
			return nil, fmt.Errorf("store: no array of %T", rows[0][i]) // a new column type in *Args
		}
	}
	return cols, nil
}

func column[T any](rows [][]any, i int) []T {
	a := make([]T, len(rows))
	for r, row := range rows {
		a[r] = row[i].(T)
	}
	return a
}

// pipeline sends b's statements in one round trip on conn and reads their
// results; the first error stops the rest.
func pipeline(ctx context.Context, conn *sql.Conn, b *pgx.Batch) error {
	return onPgx(conn, func(c *pgx.Conn) error { return c.SendBatch(ctx, b).Close() })
}

// onPgx runs f on conn's pgx connection.
func onPgx(conn *sql.Conn, f func(*pgx.Conn) error) error {
	return conn.Raw(func(dc any) error {
		c, ok := dc.(*stdlib.Conn)
		if !ok {
			return fmt.Errorf("store: not a pgx connection: %T", dc)
		}
		return f(c.Conn())
	})
}
