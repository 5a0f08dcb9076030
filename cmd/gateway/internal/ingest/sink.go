package ingest

import (
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"time"

	_ "github.com/jackc/pgx/v5/stdlib" // database/sql driver "pgx"
	"github.com/segmentio/kafka-go"
	_ "modernc.org/sqlite" // database/sql driver "sqlite"

	"github.com/perkeso/jambatan/cmd/gateway/internal/events"
	"github.com/perkeso/jambatan/cmd/gateway/internal/sqldialect"
)

// Sink is the back-office database: SQLite by default, PostgreSQL by DSN.
type Sink struct {
	db       *sql.DB
	postgres bool
}

// Row is one verified record to upsert.
type Row struct {
	RecordID, SourceKey, Partner string
	Record                       []byte
	Receipt, Attestation         string
	Topic                        string
	Partition                    int
	Offset                       int64
}

// CaseRow is one verified case message to upsert: the event as its
// receipt states it.
type CaseRow struct {
	events.CaseMessage
	Topic     string
	Partition int
	Offset    int64
}

// StatusRow is one verified delivery status: the event as its receipt
// states it.
type StatusRow struct {
	events.DeliveryStatus
	Topic     string
	Partition int
	Offset    int64
}

// RejectionRow is one verified rejection: the event as its receipt states
// it.
type RejectionRow struct {
	events.Rejected
	Topic     string
	Partition int
	Offset    int64
}

// Batch is what one transaction writes, each slice in the topic's order.
type Batch struct {
	Records      []Row
	CaseMessages []CaseRow
	Statuses     []StatusRow
	Rejections   []RejectionRow
	Quarantined  []Quarantined
}

// Quarantined is a message that failed verification.
type Quarantined struct {
	Topic     string
	Partition int
	Offset    int64
	Key       []byte
	Reason    string
	Value     []byte
	Headers   []kafka.Header
}

var sinkSchema = []string{
	`CREATE TABLE IF NOT EXISTS backoffice_records (
		record_id    TEXT PRIMARY KEY,
		source_key   TEXT NOT NULL,
		partner      TEXT NOT NULL,
		record       TEXT NOT NULL,
		receipt      TEXT NOT NULL,
		attestation  TEXT NOT NULL,
		topic        TEXT NOT NULL,
		kpartition   INTEGER NOT NULL,
		koffset      BIGINT NOT NULL,
		deliveries   INTEGER NOT NULL DEFAULT 1,
		ingested_at  TEXT NOT NULL
	)`,
	// An agency's RequestInformation, NotifyDecision or InformationReply,
	// once per sender and message id (the gateway's idempotency key);
	// body is the SOAP Body's child in exclusive canonical XML, as the
	// agency signed it.
	`CREATE TABLE IF NOT EXISTS backoffice_case_messages (
		sender       TEXT NOT NULL,
		message_id   TEXT NOT NULL,
		operation    TEXT NOT NULL,
		case_id      TEXT NOT NULL,
		received_at  TEXT NOT NULL,
		request_id   TEXT NOT NULL,
		documents_omitted INTEGER NOT NULL,
		body         TEXT NOT NULL,
		receipt      TEXT NOT NULL,
		topic        TEXT NOT NULL,
		kpartition   INTEGER NOT NULL,
		koffset      BIGINT NOT NULL,
		deliveries   INTEGER NOT NULL DEFAULT 1,
		ingested_at  TEXT NOT NULL,
		PRIMARY KEY (sender, message_id)
	)`,
	`CREATE INDEX IF NOT EXISTS backoffice_case_messages_case ON backoffice_case_messages (case_id)`,
	// Each delivery the back office asked for, at its latest status: a
	// delivery's statuses share a partition (keyed by the delivery's key),
	// so the one at the highest offset is the latest, and a re-delivered
	// older one leaves the row as it is. Once partitions are added to the
	// topic a delivery's later statuses may be keyed to another partition,
	// read before its earlier ones (the consumer reads partitions side by
	// side): between partitions the later status_at (RFC 3339 in UTC to
	// the second, so its text sorts as its time), then the more attempts,
	// is the latest.
	`CREATE TABLE IF NOT EXISTS backoffice_deliveries (
		delivery_key TEXT PRIMARY KEY,
		delivery_id  BIGINT NOT NULL,
		partner      TEXT NOT NULL,
		message_type TEXT NOT NULL,
		case_id      TEXT NOT NULL,
		state        TEXT NOT NULL,
		attempts     INTEGER NOT NULL,
		error        TEXT NOT NULL,
		status_at    TEXT NOT NULL,
		receipt      TEXT NOT NULL,
		topic        TEXT NOT NULL,
		kpartition   INTEGER NOT NULL,
		koffset      BIGINT NOT NULL,
		ingested_at  TEXT NOT NULL
	)`,
	// Each submission the gateway refused, once per correlation id: where
	// and why (pointers and codes; never the document's values), for
	// following up a partner whose notice has not come through.
	`CREATE TABLE IF NOT EXISTS backoffice_rejections (
		correlation_id TEXT PRIMARY KEY,
		partner      TEXT NOT NULL,
		format       TEXT NOT NULL,
		problem_type TEXT NOT NULL,
		status       INTEGER NOT NULL,
		problems     TEXT NOT NULL,
		received_at  TEXT NOT NULL,
		receipt      TEXT NOT NULL,
		topic        TEXT NOT NULL,
		kpartition   INTEGER NOT NULL,
		koffset      BIGINT NOT NULL,
		ingested_at  TEXT NOT NULL
	)`,
	`CREATE INDEX IF NOT EXISTS backoffice_rejections_partner ON backoffice_rejections (partner, received_at)`,
	`CREATE TABLE IF NOT EXISTS backoffice_quarantine (
		topic       TEXT NOT NULL,
		kpartition  INTEGER NOT NULL,
		koffset     BIGINT NOT NULL,
		msg_key     TEXT NOT NULL,
		reason      TEXT NOT NULL,
		value       TEXT NOT NULL,
		quarantined_at TEXT NOT NULL,
		PRIMARY KEY (topic, kpartition, koffset)
	)`,
}

// OpenSink opens the back-office database: a postgres:// or postgresql://
// DSN, otherwise a SQLite file path.
func OpenSink(target string) (*Sink, error) {
	s := &Sink{}
	var err error
	if sqldialect.IsPostgres(target) {
		s.postgres = true
		s.db, err = sql.Open("pgx", target)
	} else if err = sqldialect.CreateSQLite(target); err == nil {
		s.db, err = sql.Open("sqlite", "file:"+target+"?_pragma=journal_mode(WAL)&_pragma=synchronous(FULL)&_pragma=busy_timeout(10000)&_txlock=immediate")
	}
	if err != nil {
		return nil, err
	}
	for _, q := range sinkSchema {
		if _, err := s.db.Exec(q); err != nil {
			s.db.Close()
			return nil, fmt.Errorf("back-office schema: %w", err)
		}
	}
	blob := "BLOB"
	if s.postgres {
		blob = "BYTEA"
	}
	// The quarantine keeps a message as it came, bytes and headers, beside
	// its text: whatever is written to a topic is quarantined, and
	// PostgreSQL's TEXT takes neither bytes that are not UTF-8 nor NUL.
	if err := sqldialect.AddColumns(s.db, []sqldialect.Column{{Table: "backoffice_quarantine", Name: "raw_key", Def: blob},
		{Table: "backoffice_quarantine", Name: "raw_value", Def: blob}, {Table: "backoffice_quarantine", Name: "headers", Def: "TEXT"}}); err != nil {
		s.db.Close()
		return nil, fmt.Errorf("back-office schema: %w", err)
	}
	return s, nil
}

// Close closes the database.
func (s *Sink) Close() error { return s.db.Close() }

// DB exposes the database (tests, reports).
func (s *Sink) DB() *sql.DB { return s.db }

func (s *Sink) rebind(q string) string { return sqldialect.Rebind(q, s.postgres) }

// Write upserts records, case messages, delivery statuses and rejections,
// and quarantines messages, in one transaction. A record or case message
// delivered again only counts the delivery, a rejection or quarantined
// message delivered again changes nothing: each table holds each event
// once. A delivery's row takes a later status only (backoffice_deliveries).
func (s *Sink) Write(ctx context.Context, b Batch) error {
	return s.inTx(ctx, func(tx *sql.Tx) error { return s.write(ctx, tx, b) })
}

// inTx runs f in a transaction and commits it if f succeeds.
func (s *Sink) inTx(ctx context.Context, f func(*sql.Tx) error) error {
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	defer tx.Rollback()
	if err := f(tx); err != nil {
		return err
	}
	return tx.Commit()
}

// write is Write inside tx.
func (s *Sink) write(ctx context.Context, tx *sql.Tx, b Batch) error {
	now := time.Now().UTC().Format(time.RFC3339Nano)
	if len(b.Records) > 0 {
		up, err := tx.PrepareContext(ctx, s.rebind(`INSERT INTO backoffice_records
			(record_id, source_key, partner, record, receipt, attestation, topic, kpartition, koffset, ingested_at)
			VALUES (?,?,?,?,?,?,?,?,?,?)
			ON CONFLICT (record_id) DO UPDATE SET deliveries = backoffice_records.deliveries + 1`))
		if err != nil {
			return err
		}
		defer up.Close()
		for _, r := range b.Records {
			if _, err := up.ExecContext(ctx, texts(r.RecordID, r.SourceKey, r.Partner, string(r.Record), r.Receipt, r.Attestation,
				r.Topic, r.Partition, r.Offset, now)...); err != nil {
				return err
			}
		}
	}
	for _, c := range b.CaseMessages {
		omitted := 0
		if c.DocumentsOmitted {
			omitted = 1
		}
		if _, err := tx.ExecContext(ctx, s.rebind(`INSERT INTO backoffice_case_messages
			(sender, message_id, operation, case_id, received_at, request_id, documents_omitted, body, receipt, topic, kpartition, koffset, ingested_at)
			VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?)
			ON CONFLICT (sender, message_id) DO UPDATE SET deliveries = backoffice_case_messages.deliveries + 1`),
			texts(c.Sender, c.MessageID, c.Operation, c.CaseID, c.ReceivedAt, c.RequestID, omitted, c.Body, c.Receipt,
				c.Topic, c.Partition, c.Offset, now)...); err != nil {
			return err
		}
	}
	for _, st := range b.Statuses {
		if _, err := tx.ExecContext(ctx, s.rebind(`INSERT INTO backoffice_deliveries
			(delivery_key, delivery_id, partner, message_type, case_id, state, attempts, error, status_at, receipt, topic, kpartition, koffset, ingested_at)
			VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?)
			ON CONFLICT (delivery_key) DO UPDATE SET delivery_id = excluded.delivery_id, partner = excluded.partner,
				message_type = excluded.message_type, case_id = excluded.case_id, state = excluded.state, attempts = excluded.attempts,
				error = excluded.error, status_at = excluded.status_at, receipt = excluded.receipt, topic = excluded.topic,
				kpartition = excluded.kpartition, koffset = excluded.koffset, ingested_at = excluded.ingested_at
			WHERE CASE WHEN excluded.topic = backoffice_deliveries.topic AND excluded.kpartition = backoffice_deliveries.kpartition
				THEN excluded.koffset > backoffice_deliveries.koffset
				ELSE excluded.status_at > backoffice_deliveries.status_at
					OR excluded.status_at = backoffice_deliveries.status_at AND excluded.attempts >= backoffice_deliveries.attempts END`),
			texts(st.Key, st.DeliveryID, st.Partner, st.MessageType, st.CaseID, st.State, st.Attempts, st.Error, st.At, st.Receipt,
				st.Topic, st.Partition, st.Offset, now)...); err != nil {
			return err
		}
	}
	for _, r := range b.Rejections {
		problems, err := json.Marshal(r.Problems)
		if err != nil {
			return err
		}
		if _, err := tx.ExecContext(ctx, s.rebind(`INSERT INTO backoffice_rejections
			(correlation_id, partner, format, problem_type, status, problems, received_at, receipt, topic, kpartition, koffset, ingested_at)
			VALUES (?,?,?,?,?,?,?,?,?,?,?,?) ON CONFLICT (correlation_id) DO NOTHING`),
			texts(r.CorrelationID, r.Partner, r.Format, r.ProblemType, r.Status, string(problems), r.ReceivedAt, r.Receipt,
				r.Topic, r.Partition, r.Offset, now)...); err != nil {
			return err
		}
	}
	for _, m := range b.Quarantined {
		headers, err := json.Marshal(m.Headers)
		if err != nil {
			return err
		}
		if _, err := tx.ExecContext(ctx, s.rebind(`INSERT INTO backoffice_quarantine
			(topic, kpartition, koffset, msg_key, reason, value, quarantined_at, raw_key, raw_value, headers)
			VALUES (?,?,?,?,?,?,?,?,?,?) ON CONFLICT (topic, kpartition, koffset) DO NOTHING`),
			texts(m.Topic, m.Partition, m.Offset, string(m.Key), m.Reason, string(m.Value), now, nonNil(m.Key), nonNil(m.Value), string(headers))...); err != nil {
			return err
		}
	}
	return nil
}

// Quarantine reads up to limit quarantined messages kept whole (their
// bytes and headers), in (topic, partition, offset) order after the one at
// after (nil: from the first). Messages quarantined by earlier builds,
// which kept their text only, are not among them (QuarantinedWithoutBytes).
func (s *Sink) Quarantine(ctx context.Context, after *Quarantined, limit int) ([]Quarantined, error) {
	q := `SELECT topic, kpartition, koffset, raw_key, raw_value, headers, reason FROM backoffice_quarantine WHERE raw_value IS NOT NULL`
	var args []any
	if after != nil {
		q += ` AND (topic > ? OR topic = ? AND (kpartition > ? OR kpartition = ? AND koffset > ?))`
		args = append(args, after.Topic, after.Topic, after.Partition, after.Partition, after.Offset)
	}
	rows, err := s.db.QueryContext(ctx, s.rebind(q+` ORDER BY topic, kpartition, koffset LIMIT ?`), append(args, limit)...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []Quarantined
	for rows.Next() {
		var m Quarantined
		var headers sql.NullString
		if err := rows.Scan(&m.Topic, &m.Partition, &m.Offset, &m.Key, &m.Value, &headers, &m.Reason); err != nil {
			return nil, err
		}
		if headers.Valid && headers.String != "" && headers.String != "null" {
			if err := json.Unmarshal([]byte(headers.String), &m.Headers); err != nil {
				return nil, fmt.Errorf("quarantined %s/%d/%d: headers: %w", m.Topic, m.Partition, m.Offset, err)
			}
		}
		out = append(out, m)
	}
	return out, rows.Err()
}

// QuarantinedWithoutBytes counts the messages quarantined by builds that
// kept their text only: they cannot be verified again from the table.
func (s *Sink) QuarantinedWithoutBytes(ctx context.Context) (int64, error) {
	var n int64
	err := s.db.QueryRowContext(ctx, `SELECT count(*) FROM backoffice_quarantine WHERE raw_value IS NULL`).Scan(&n)
	return n, err
}

// Release writes the rows of messages verified again (b) and takes them
// out of the quarantine (released), and records the reasons of those still
// refused (still), in one transaction.
func (s *Sink) Release(ctx context.Context, b Batch, released, still []Quarantined) error {
	return s.inTx(ctx, func(tx *sql.Tx) error {
		if err := s.write(ctx, tx, b); err != nil {
			return err
		}
		for _, m := range released {
			if _, err := tx.ExecContext(ctx, s.rebind(`DELETE FROM backoffice_quarantine WHERE topic = ? AND kpartition = ? AND koffset = ?`),
				m.Topic, m.Partition, m.Offset); err != nil {
				return err
			}
		}
		for _, m := range still {
			if _, err := tx.ExecContext(ctx, s.rebind(`UPDATE backoffice_quarantine SET reason = ? WHERE topic = ? AND kpartition = ? AND koffset = ?`),
				texts(m.Reason, m.Topic, m.Partition, m.Offset)...); err != nil {
				return err
			}
		}
		return nil
	})
}

// texts are args with each string made what a TEXT column of both
// databases takes (sqldialect.Text). The quarantine's are whatever was
// written to a topic; a verified event's are the gateway's, signed, but
// carry what partners and the back office wrote (a delivery's error text).
// PostgreSQL refuses bytes that are not UTF-8 and NUL, and a row it
// refused failed its batch again and again: ingestion stopped for good.
func texts(args ...any) []any {
	for i, a := range args {
		if s, ok := a.(string); ok {
			args[i] = sqldialect.Text(s)
		}
	}
	return args
}

// nonNil is b, or no bytes for nil (a record without a key or value is
// not NULL).
func nonNil(b []byte) []byte {
	if b == nil {
		return []byte{}
	}
	return b
}

// Counts are the rows of each table.
type Counts struct {
	Records, CaseMessages, Deliveries, Rejections, Quarantined int64
}

// Counts counts the rows of each table.
func (s *Sink) Counts(ctx context.Context) (Counts, error) {
	var n Counts
	for _, c := range []struct {
		table string
		n     *int64
	}{{"backoffice_records", &n.Records}, {"backoffice_case_messages", &n.CaseMessages},
		{"backoffice_deliveries", &n.Deliveries}, {"backoffice_rejections", &n.Rejections}, {"backoffice_quarantine", &n.Quarantined}} {
		if err := s.db.QueryRowContext(ctx, `SELECT count(*) FROM `+c.table).Scan(c.n); err != nil {
			return Counts{}, err
		}
	}
	return n, nil
}
