package store

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"
)

// Claim is a batch of outbox messages held by one relay until Done or Release.
type Claim struct {
	Messages []Message
	s        *DB
	tx       *sql.Tx // PostgreSQL: holds the row locks and the relay lock
}

// ClaimBytes bounds what one claim reads (values, and the log entries of
// events rendered from them): the relay holds a claim and its events in
// memory while it produces them, and 500 events near a broker's 1 MiB
// limit would be 500 MB. A claim stops at the message that reaches it.
const ClaimBytes = 16 << 20

// ClaimOutbox takes up to limit unpublished messages, oldest first, and no
// more than about ClaimBytes of them. On
// PostgreSQL the rows are locked (FOR UPDATE SKIP LOCKED) under a relay
// advisory lock, so of several gateway instances one relays at a time, in
// order, and none publishes a row another holds. An empty claim means
// nothing to do (or another instance is relaying).
func (s *DB) ClaimOutbox(ctx context.Context, limit int) (*Claim, error) {
	c := &Claim{s: s}
	var q rowsQuerier = s.db
	if s.postgres {
		tx, err := s.db.BeginTx(ctx, nil)
		if err != nil {
			return nil, err
		}
		var got bool
		if err := tx.QueryRowContext(ctx, `SELECT pg_try_advisory_xact_lock($1)`, lockRelay).Scan(&got); err != nil || !got {
			tx.Rollback()
			return c, err
		}
		c.tx, q = tx, tx
	}
	lock := ""
	if s.postgres {
		lock = " FOR UPDATE OF o SKIP LOCKED"
	}
	rows, err := q.QueryContext(ctx, s.q(qClaimOutbox+lock), limit)
	if err != nil {
		c.Release()
		return nil, err
	}
	defer rows.Close()
	var unkept []int // the messages whose entries fresh does not hold, to read from the log
	for size := 0; size < ClaimBytes && rows.Next(); {
		var m Message
		var hdr []byte
		var at string
		var seq sql.NullInt64
		var logged int // the size of the log entry's parts
		if err := rows.Scan(&m.ID, &m.Topic, &m.Key, &hdr, &m.Value, &at, &m.Render, &seq, &logged); err != nil {
			c.Release()
			return nil, err
		}
		if m.Render != "" {
			if !seq.Valid {
				c.Release()
				return nil, fmt.Errorf("outbox %d: its log entry is missing", m.ID)
			}
			if m.Logged = s.fresh.get(seq.Int64); m.Logged == nil {
				m.Logged = &Entry{Seq: seq.Int64}
				unkept = append(unkept, len(c.Messages))
			}
		}
		if m.Headers, err = decodeHeaders(hdr); err != nil {
			c.Release()
			return nil, fmt.Errorf("outbox %d: headers: %w", m.ID, err)
		}
		m.CreatedAt, _ = time.Parse(time.RFC3339Nano, at)
		c.Messages = append(c.Messages, m)
		size += len(m.Value) + len(hdr) + logged
	}
	if err := rows.Err(); err != nil {
		c.Release()
		return nil, err
	}
	rows.Close()
	for _, m := range c.Messages {
		if m.Logged != nil {
			s.fresh.forgetBefore(m.Logged.Seq)
			break
		}
	}
	if err := s.readLogged(ctx, q, c.Messages, unkept); err != nil {
		c.Release()
		return nil, err
	}
	if len(c.Messages) == 0 {
		c.Release()
	}
	return c, nil
}

// qClaimOutbox reads pending messages, oldest first, with the size of the
// log entry parts of those rendered from them, for ClaimBytes. The parts
// themselves are read by readLogged, if fresh does not hold them: SQLite's
// octet_length and PostgreSQL's read a value's size without its content.
const qClaimOutbox = `SELECT o.id, o.topic, o.msg_key, o.headers, o.value, o.created_at, o.render, o.log_seq,
	COALESCE(octet_length(l.body) + octet_length(l.signature) + COALESCE(octet_length(l.canonical), 0) + octet_length(l.receipt), 0)
	FROM outbox o LEFT JOIN message_log l ON o.render <> '' AND l.seq = o.log_seq
	WHERE o.published_at IS NULL ORDER BY o.id LIMIT ?`

type rowsQuerier interface {
	QueryContext(ctx context.Context, query string, args ...any) (*sql.Rows, error)
}

// readLogged reads from the log the parts of the entries of msgs[i] for
// each i of unkept (their Logged holds only the entry's seq).
func (s *DB) readLogged(ctx context.Context, q rowsQuerier, msgs []Message, unkept []int) error {
	if len(unkept) == 0 {
		return nil
	}
	seqs := make([]int64, len(unkept))
	for k, i := range unkept {
		seqs[k] = msgs[i].Logged.Seq
	}
	var rows *sql.Rows
	var err error
	if s.postgres {
		rows, err = q.QueryContext(ctx, qLoggedAny, seqs)
	} else {
		ids, _ := json.Marshal(seqs)
		rows, err = q.QueryContext(ctx, qLoggedIn, string(ids))
	}
	if err != nil {
		return err
	}
	defer rows.Close()
	read := make(map[int64]*Entry, len(seqs))
	for rows.Next() {
		var l Entry
		var sig, receipt sql.NullString
		if err := rows.Scan(&l.Seq, &l.Body, &sig, &l.Canonical, &receipt); err != nil {
			return err
		}
		l.Signature, l.Receipt = sig.String, receipt.String
		read[l.Seq] = &l
	}
	if err := rows.Err(); err != nil {
		return err
	}
	for _, i := range unkept {
		m := &msgs[i]
		l, ok := read[m.Logged.Seq]
		if !ok {
			return fmt.Errorf("outbox %d: its log entry %d is missing", m.ID, m.Logged.Seq)
		}
		m.Logged = l
	}
	return nil
}

const (
	qLogged    = `SELECT seq, body, signature, canonical, receipt FROM message_log WHERE seq `
	qLoggedIn  = qLogged + `IN (SELECT value FROM json_each(?))`
	qLoggedAny = qLogged + `= ANY($1)`
)

// Done removes the claimed messages: the broker acknowledged them, so they
// live on in Kafka, and the message log keeps the audit record. Deleting
// rather than stamping a published_at matters for speed: SQLite rewrites a
// whole row (the event, kilobytes of overflow pages) when a column changes
// size, so the stamp wrote every event a second time. (Rows of stores from
// before this carry published_at and are skipped by their outbox_pending
// index.)
func (c *Claim) Done(ctx context.Context) error {
	if len(c.Messages) == 0 {
		return nil
	}
	// One statement per claim: the ids as a list of placeholders.
	args := make([]any, len(c.Messages))
	marks := make([]string, len(c.Messages))
	for i, m := range c.Messages {
		marks[i] = "?"
		args[i] = m.ID
	}
	query := c.s.q(`DELETE FROM outbox WHERE id IN (` + strings.Join(marks, ",") + `)`)
	mark := func(ctx context.Context, tx wtx) error {
		_, err := tx.ExecContext(ctx, query, args...)
		return err
	}
	var err error
	if c.tx != nil {
		defer func() { c.tx = nil }()
		if err := mark(ctx, c.tx); err != nil {
			c.tx.Rollback()
			return err
		}
		err = c.tx.Commit()
	} else {
		err = c.s.write(ctx, mark)
	}
	if err == nil {
		c.s.fresh.drop(c.Messages)
	}
	return err
}

// Release gives the claim up without marking anything.
func (c *Claim) Release() {
	if c.tx != nil {
		c.tx.Rollback()
		c.tx = nil
	}
}

// OutboxBacklog is the number of unpublished messages, read on every
// /metrics scrape and /readyz probe. count(*) read the whole outbox
// (121-126 ms on SQLite, 67 ms on PostgreSQL, at 1,000,000 pending
// messages), growing exactly while Kafka is away.
//
// On SQLite it is read from their ids, the newest less the oldest plus one:
// two lookups in the primary key. The span is the count because the pending
// ids have no gaps: the relay deletes what it publishes oldest first, a
// claim at a time, and AUTOINCREMENT rolls back with a failed insert. A
// PostgreSQL sequence does not roll back, so a failed group commit leaves a
// gap of its size; there the backlog is the messages queued less those
// published, kept in outbox_counts (countOutbox).
func (s *DB) OutboxBacklog(ctx context.Context) (int64, error) {
	q := qOutboxSpan
	if s.postgres {
		q = `SELECT (SELECT n FROM outbox_counts WHERE side = 'queued') - (SELECT n FROM outbox_counts WHERE side = 'published')`
	}
	var n int64
	err := s.db.QueryRowContext(ctx, q).Scan(&n)
	return n, err
}

// qOutboxSpan is two subqueries, not max(id) - min(id): SQLite answers a
// lone min or max from the index but reads the table for both at once.
const qOutboxSpan = `SELECT COALESCE(
	(SELECT id FROM outbox WHERE published_at IS NULL ORDER BY id DESC LIMIT 1) -
	(SELECT id FROM outbox WHERE published_at IS NULL ORDER BY id LIMIT 1) + 1, 0)`

// OutboxOldest is the creation time of the oldest unpublished message: the
// next one the relay publishes, first in id order. It is read by id, not as
// min(created_at), which read the whole outbox on every /metrics scrape:
// cheap while the relay keeps up, slow exactly when Kafka is away and the
// outbox grows.
func (s *DB) OutboxOldest(ctx context.Context) (time.Time, bool, error) {
	var at string
	err := s.db.QueryRowContext(ctx, `SELECT created_at FROM outbox WHERE published_at IS NULL ORDER BY id LIMIT 1`).Scan(&at)
	if errors.Is(err, sql.ErrNoRows) {
		return time.Time{}, false, nil
	}
	if err != nil {
		return time.Time{}, false, err
	}
	t, err := time.Parse(time.RFC3339Nano, at)
	return t, err == nil, err
}

// countOutbox (PostgreSQL) makes outbox_counts: the messages queued and
// the messages published since, kept by statement triggers in the
// transaction of each insert and delete. The writer's inserts add to one
// row and the relay's deletes to the other, so the two never wait on each
// other's counts (each already holds its advisory lock, so writers, and
// relays, take their turns anyway). Only messages without published_at
// count: rows an earlier build stamped are neither pending nor counted. A
// store from an earlier build is counted once, when the table is made,
// under both locks, so no message is queued or published in between and
// another process opening the store does not count it too.
func (s *DB) countOutbox() error {
	if !s.postgres {
		return nil
	}
	var n int
	if err := s.db.QueryRow(`SELECT count(*) FROM pg_tables WHERE schemaname = current_schema() AND tablename = 'outbox_counts'`).Scan(&n); err != nil || n > 0 {
		return err
	}
	tx, err := s.db.Begin()
	if err != nil {
		return err
	}
	defer tx.Rollback()
	for _, lock := range []int64{lockWriter, lockRelay} {
		if _, err := tx.Exec(`SELECT pg_advisory_xact_lock($1)`, lock); err != nil {
			return err
		}
	}
	if err := tx.QueryRow(`SELECT count(*) FROM pg_tables WHERE schemaname = current_schema() AND tablename = 'outbox_counts'`).Scan(&n); err != nil || n > 0 {
		return err
	}
	for _, q := range outboxCountsPostgres {
		if _, err := tx.Exec(q); err != nil {
			return err
		}
	}
	return tx.Commit()
}

// outboxCountsPostgres is outbox_counts, its triggers, and the count of
// what an earlier build left pending.
var outboxCountsPostgres = []string{
	`CREATE TABLE outbox_counts (side TEXT PRIMARY KEY, n BIGINT NOT NULL)`,
	// One function for both triggers: each names its side, and its
	// transition table "changed" (a trigger with a transition table serves
	// one event only).
	`CREATE FUNCTION outbox_counted() RETURNS trigger LANGUAGE plpgsql AS $$
	BEGIN
		UPDATE outbox_counts SET n = n + (SELECT count(*) FROM changed WHERE published_at IS NULL) WHERE side = TG_ARGV[0];
		RETURN NULL;
	END $$`,
	`CREATE TRIGGER outbox_queued AFTER INSERT ON outbox REFERENCING NEW TABLE AS changed
		FOR EACH STATEMENT EXECUTE FUNCTION outbox_counted('queued')`,
	`CREATE TRIGGER outbox_published AFTER DELETE ON outbox REFERENCING OLD TABLE AS changed
		FOR EACH STATEMENT EXECUTE FUNCTION outbox_counted('published')`,
	`INSERT INTO outbox_counts (side, n) SELECT 'queued', count(*) FROM outbox WHERE published_at IS NULL`,
	`INSERT INTO outbox_counts (side, n) VALUES ('published', 0)`,
}
