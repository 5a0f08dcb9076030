// Package store is the gateway's durable message log and idempotency table.
//
// Every request that passed mutual TLS is logged, accepted or not, with its
// raw body, signature, verification outcome and correlation id. Entries are
// hash-chained: each stores the hash of the previous entry, so an edit or a
// deletion anywhere is found by Verify. A submission counts as accepted only
// once the transaction that logs it and records its source key has committed
// (SQLite in WAL mode with synchronous=FULL).
package store

import (
	"context"
	"crypto/sha256"
	"database/sql"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"sync"
	"time"

	_ "modernc.org/sqlite" // database/sql driver "sqlite"
)

// Outcomes of a logged request.
const (
	OutcomeAccepted  = "ACCEPTED"
	OutcomeDuplicate = "DUPLICATE"
	OutcomeRejected  = "REJECTED"
)

// Entry is one logged request.
type Entry struct {
	Seq           int64
	CorrelationID string
	PartnerID     string
	ReceivedAt    time.Time
	Route         string // e.g. "POST /v1/injury-notices"
	ContentType   string
	Body          []byte
	Signature     string // detached JWS header value; empty when the body is the JWS
	Verification  string // "verified alg=ES256 kid=..." or the refusal reason
	Status        int
	Outcome       string
	ProblemType   string
	SourceKey     string
	RecordID      string
	PayloadSHA256 string
	Canonical     []byte
	Receipt       string
	PrevHash      string
	Hash          string
	// Outbox holds messages to publish; they are written in the same
	// transaction as the entry, so an accepted notice is never without its
	// event and an event never without its accepted notice.
	Outbox []Message
}

// Message is one outbox message: what the relay will produce to Kafka.
type Message struct {
	ID        int64
	Topic     string
	Key       []byte
	Headers   []Header
	Value     []byte
	CreatedAt time.Time
}

// Header is a Kafka record header.
type Header struct {
	Key   string `json:"k"`
	Value string `json:"v"`
}

// Record is an accepted submission, found by record id or source key.
type Record struct {
	RecordID      string
	SourceKey     string
	PartnerID     string
	PayloadSHA256 string
	Receipt       string
	AcceptedAt    time.Time
	Seq           int64
}

// ErrNotFound is returned for an unknown record.
var ErrNotFound = errors.New("store: not found")

// SQLite is the embedded store.
type SQLite struct {
	db *sql.DB
	mu sync.Mutex // serialises writers: the hash chain is a sequence
}

const schemaSQL = `
CREATE TABLE IF NOT EXISTS message_log (
  seq            INTEGER PRIMARY KEY,
  correlation_id TEXT NOT NULL,
  partner_id     TEXT NOT NULL,
  received_at    TEXT NOT NULL,
  route          TEXT NOT NULL,
  content_type   TEXT NOT NULL,
  body           BLOB NOT NULL,
  signature      TEXT NOT NULL,
  verification   TEXT NOT NULL,
  status         INTEGER NOT NULL,
  outcome        TEXT NOT NULL,
  problem_type   TEXT NOT NULL,
  source_key     TEXT NOT NULL,
  record_id      TEXT NOT NULL,
  payload_sha256 TEXT NOT NULL,
  canonical      BLOB,
  receipt        TEXT NOT NULL,
  prev_hash      TEXT NOT NULL,
  hash           TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS outbox (
  id           INTEGER PRIMARY KEY AUTOINCREMENT,
  topic        TEXT NOT NULL,
  msg_key      BLOB NOT NULL,
  headers      TEXT NOT NULL,
  value        BLOB NOT NULL,
  created_at   TEXT NOT NULL,
  published_at TEXT
);
CREATE INDEX IF NOT EXISTS outbox_pending ON outbox(id) WHERE published_at IS NULL;
CREATE TABLE IF NOT EXISTS records (
  record_id      TEXT PRIMARY KEY,
  source_key     TEXT NOT NULL UNIQUE,
  partner_id     TEXT NOT NULL,
  payload_sha256 TEXT NOT NULL,
  receipt        TEXT NOT NULL,
  accepted_at    TEXT NOT NULL,
  seq            INTEGER NOT NULL REFERENCES message_log(seq)
);
`

// OpenSQLite opens (creating if needed) the store at path.
func OpenSQLite(path string) (*SQLite, error) {
	dsn := "file:" + path + "?_pragma=journal_mode(WAL)&_pragma=synchronous(FULL)&_pragma=busy_timeout(10000)&_pragma=foreign_keys(ON)&_txlock=immediate"
	db, err := sql.Open("sqlite", dsn)
	if err != nil {
		return nil, err
	}
	db.SetMaxOpenConns(4)
	if _, err := db.Exec(schemaSQL); err != nil {
		db.Close()
		return nil, fmt.Errorf("store: %s: %w", path, err)
	}
	return &SQLite{db: db}, nil
}

// Close closes the database.
func (s *SQLite) Close() error { return s.db.Close() }

// ChainHash is the hash of an entry given its predecessor's hash: SHA-256
// over the previous hash and every logged field, each length-prefixed so no
// two different entries encode alike.
func ChainHash(e *Entry) string {
	h := sha256.New()
	put := func(b []byte) {
		var n [8]byte
		binary.BigEndian.PutUint64(n[:], uint64(len(b)))
		h.Write(n[:])
		h.Write(b)
	}
	puts := func(s string) { put([]byte(s)) }
	puts(e.PrevHash)
	puts(fmt.Sprint(e.Seq))
	puts(e.CorrelationID)
	puts(e.PartnerID)
	puts(e.ReceivedAt.UTC().Format(time.RFC3339Nano))
	puts(e.Route)
	puts(e.ContentType)
	put(e.Body)
	puts(e.Signature)
	puts(e.Verification)
	puts(fmt.Sprint(e.Status))
	puts(e.Outcome)
	puts(e.ProblemType)
	puts(e.SourceKey)
	puts(e.RecordID)
	puts(e.PayloadSHA256)
	put(e.Canonical)
	puts(e.Receipt)
	return hex.EncodeToString(h.Sum(nil))
}

// appendEntry chains and inserts e inside tx.
func appendEntry(ctx context.Context, tx *sql.Tx, e *Entry) error {
	var prev string
	var last int64
	err := tx.QueryRowContext(ctx, `SELECT seq, hash FROM message_log ORDER BY seq DESC LIMIT 1`).Scan(&last, &prev)
	if err != nil && !errors.Is(err, sql.ErrNoRows) {
		return err
	}
	e.Seq, e.PrevHash = last+1, prev
	e.Hash = ChainHash(e)
	_, err = tx.ExecContext(ctx, `INSERT INTO message_log (seq, correlation_id, partner_id, received_at, route, content_type, body,
		signature, verification, status, outcome, problem_type, source_key, record_id, payload_sha256, canonical, receipt, prev_hash, hash)
		VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)`,
		e.Seq, e.CorrelationID, e.PartnerID, e.ReceivedAt.UTC().Format(time.RFC3339Nano), e.Route, e.ContentType, nonNil(e.Body),
		e.Signature, e.Verification, e.Status, e.Outcome, e.ProblemType, e.SourceKey, e.RecordID, e.PayloadSHA256, e.Canonical, e.Receipt, e.PrevHash, e.Hash)
	if err != nil {
		return err
	}
	for _, m := range e.Outbox {
		hdr, err := json.Marshal(m.Headers)
		if err != nil {
			return err
		}
		if _, err := tx.ExecContext(ctx, `INSERT INTO outbox (topic, msg_key, headers, value, created_at) VALUES (?,?,?,?,?)`,
			m.Topic, nonNil(m.Key), string(hdr), nonNil(m.Value), e.ReceivedAt.UTC().Format(time.RFC3339Nano)); err != nil {
			return err
		}
	}
	return nil
}

// PendingOutbox returns up to limit unpublished messages, oldest first.
func (s *SQLite) PendingOutbox(ctx context.Context, limit int) ([]Message, error) {
	rows, err := s.db.QueryContext(ctx, `SELECT id, topic, msg_key, headers, value, created_at FROM outbox WHERE published_at IS NULL ORDER BY id LIMIT ?`, limit)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []Message
	for rows.Next() {
		var m Message
		var hdr, at string
		if err := rows.Scan(&m.ID, &m.Topic, &m.Key, &hdr, &m.Value, &at); err != nil {
			return nil, err
		}
		if err := json.Unmarshal([]byte(hdr), &m.Headers); err != nil {
			return nil, fmt.Errorf("outbox %d: headers: %w", m.ID, err)
		}
		m.CreatedAt, _ = time.Parse(time.RFC3339Nano, at)
		out = append(out, m)
	}
	return out, rows.Err()
}

// MarkPublished records that the broker acknowledged these messages.
func (s *SQLite) MarkPublished(ctx context.Context, ids []int64, at time.Time) error {
	if len(ids) == 0 {
		return nil
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	defer tx.Rollback()
	stmt, err := tx.PrepareContext(ctx, `UPDATE outbox SET published_at = ? WHERE id = ? AND published_at IS NULL`)
	if err != nil {
		return err
	}
	defer stmt.Close()
	ts := at.UTC().Format(time.RFC3339Nano)
	for _, id := range ids {
		if _, err := stmt.ExecContext(ctx, ts, id); err != nil {
			return err
		}
	}
	return tx.Commit()
}

// OutboxBacklog counts unpublished messages.
func (s *SQLite) OutboxBacklog(ctx context.Context) (int64, error) {
	var n int64
	err := s.db.QueryRowContext(ctx, `SELECT count(*) FROM outbox WHERE published_at IS NULL`).Scan(&n)
	return n, err
}

func nonNil(b []byte) []byte {
	if b == nil {
		return []byte{}
	}
	return b
}

// Log appends a rejected (or otherwise final) entry.
func (s *SQLite) Log(ctx context.Context, e *Entry) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	defer tx.Rollback()
	if err := appendEntry(ctx, tx, e); err != nil {
		return err
	}
	return tx.Commit()
}

// AcceptResult tells what Accept did.
type AcceptResult struct {
	Outcome string  // ACCEPTED, DUPLICATE, or REJECTED for a conflict
	Record  *Record // the accepted record (the first one, for a duplicate)
}

// Accept logs an accepted submission and records its source key, atomically.
// When the source key is already recorded, it logs the request as a
// DUPLICATE (same payload hash; the first receipt is returned) or as a
// conflict (different payload; outcome REJECTED, status 409), using the
// fields set by onExisting. The entry is durable when Accept returns.
func (s *SQLite) Accept(ctx context.Context, e *Entry, onExisting func(e *Entry, first *Record)) (AcceptResult, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return AcceptResult{}, err
	}
	defer tx.Rollback()

	first, err := recordBy(ctx, tx, "source_key", e.SourceKey)
	switch {
	case err == nil:
		onExisting(e, first)
		if err := appendEntry(ctx, tx, e); err != nil {
			return AcceptResult{}, err
		}
		if err := tx.Commit(); err != nil {
			return AcceptResult{}, err
		}
		return AcceptResult{Outcome: e.Outcome, Record: first}, nil
	case !errors.Is(err, ErrNotFound):
		return AcceptResult{}, err
	}

	e.Outcome = OutcomeAccepted
	if err := appendEntry(ctx, tx, e); err != nil {
		return AcceptResult{}, err
	}
	rec := &Record{RecordID: e.RecordID, SourceKey: e.SourceKey, PartnerID: e.PartnerID, PayloadSHA256: e.PayloadSHA256,
		Receipt: e.Receipt, AcceptedAt: e.ReceivedAt, Seq: e.Seq}
	if _, err := tx.ExecContext(ctx, `INSERT INTO records (record_id, source_key, partner_id, payload_sha256, receipt, accepted_at, seq) VALUES (?,?,?,?,?,?,?)`,
		rec.RecordID, rec.SourceKey, rec.PartnerID, rec.PayloadSHA256, rec.Receipt, rec.AcceptedAt.UTC().Format(time.RFC3339Nano), rec.Seq); err != nil {
		return AcceptResult{}, err
	}
	if err := tx.Commit(); err != nil {
		return AcceptResult{}, err
	}
	return AcceptResult{Outcome: OutcomeAccepted, Record: rec}, nil
}

type querier interface {
	QueryRowContext(ctx context.Context, query string, args ...any) *sql.Row
}

func recordBy(ctx context.Context, q querier, col, v string) (*Record, error) {
	var r Record
	var at string
	err := q.QueryRowContext(ctx, `SELECT record_id, source_key, partner_id, payload_sha256, receipt, accepted_at, seq FROM records WHERE `+col+` = ?`, v).
		Scan(&r.RecordID, &r.SourceKey, &r.PartnerID, &r.PayloadSHA256, &r.Receipt, &at, &r.Seq)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, ErrNotFound
	}
	if err != nil {
		return nil, err
	}
	r.AcceptedAt, _ = time.Parse(time.RFC3339Nano, at)
	return &r, nil
}

// RecordByID returns an accepted record.
func (s *SQLite) RecordByID(ctx context.Context, recordID string) (*Record, error) {
	return recordBy(ctx, s.db, "record_id", recordID)
}

// ChainReport is the result of Verify.
type ChainReport struct {
	Entries   int64
	BrokenSeq int64 // 0 when the chain is intact
	Reason    string
}

// Verify recomputes the hash chain and names the first broken entry.
func (s *SQLite) Verify(ctx context.Context, progress func(done int64)) (ChainReport, error) {
	rows, err := s.db.QueryContext(ctx, `SELECT seq, correlation_id, partner_id, received_at, route, content_type, body, signature, verification,
		status, outcome, problem_type, source_key, record_id, payload_sha256, canonical, receipt, prev_hash, hash FROM message_log ORDER BY seq`)
	if err != nil {
		return ChainReport{}, err
	}
	defer rows.Close()
	var rep ChainReport
	prev := ""
	var expectSeq int64 = 1
	for rows.Next() {
		var e Entry
		var at string
		if err := rows.Scan(&e.Seq, &e.CorrelationID, &e.PartnerID, &at, &e.Route, &e.ContentType, &e.Body, &e.Signature, &e.Verification,
			&e.Status, &e.Outcome, &e.ProblemType, &e.SourceKey, &e.RecordID, &e.PayloadSHA256, &e.Canonical, &e.Receipt, &e.PrevHash, &e.Hash); err != nil {
			return rep, err
		}
		e.ReceivedAt, _ = time.Parse(time.RFC3339Nano, at)
		rep.Entries++
		switch {
		case e.Seq != expectSeq:
			return ChainReport{Entries: rep.Entries, BrokenSeq: expectSeq, Reason: fmt.Sprintf("entry %d is missing", expectSeq)}, nil
		case e.PrevHash != prev:
			return ChainReport{Entries: rep.Entries, BrokenSeq: e.Seq, Reason: "prev_hash does not match the previous entry's hash"}, nil
		case ChainHash(&e) != e.Hash:
			return ChainReport{Entries: rep.Entries, BrokenSeq: e.Seq, Reason: "content does not match its hash"}, nil
		}
		prev = e.Hash
		expectSeq++
		if progress != nil && rep.Entries%10000 == 0 {
			progress(rep.Entries)
		}
	}
	return rep, rows.Err()
}

// Entries returns the number of logged entries.
func (s *SQLite) Entries(ctx context.Context) (int64, error) {
	var n int64
	err := s.db.QueryRowContext(ctx, `SELECT count(*) FROM message_log`).Scan(&n)
	return n, err
}

// DB exposes the database for tests that tamper with the log.
func (s *SQLite) DB() *sql.DB { return s.db }
