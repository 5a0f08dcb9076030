package ingest

import (
	"context"
	"database/sql"
	"fmt"
	"time"

	_ "github.com/jackc/pgx/v5/stdlib" // database/sql driver "pgx"
	_ "modernc.org/sqlite"             // database/sql driver "sqlite"

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

// Quarantined is a message that failed verification.
type Quarantined struct {
	Topic     string
	Partition int
	Offset    int64
	Key       []byte
	Reason    string
	Value     []byte
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
	} else {
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
	return s, nil
}

// Close closes the database.
func (s *Sink) Close() error { return s.db.Close() }

// DB exposes the database (tests, reports).
func (s *Sink) DB() *sql.DB { return s.db }

func (s *Sink) rebind(q string) string { return sqldialect.Rebind(q, s.postgres) }

// Write upserts records and quarantines messages in one transaction. The
// upsert by record id makes a re-delivered record a no-op apart from its
// delivery count: the table holds each record exactly once.
func (s *Sink) Write(ctx context.Context, rows []Row, q []Quarantined) error {
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	defer tx.Rollback()
	now := time.Now().UTC().Format(time.RFC3339Nano)
	if len(rows) > 0 {
		up, err := tx.PrepareContext(ctx, s.rebind(`INSERT INTO backoffice_records
			(record_id, source_key, partner, record, receipt, attestation, topic, kpartition, koffset, ingested_at)
			VALUES (?,?,?,?,?,?,?,?,?,?)
			ON CONFLICT (record_id) DO UPDATE SET deliveries = backoffice_records.deliveries + 1`))
		if err != nil {
			return err
		}
		defer up.Close()
		for _, r := range rows {
			if _, err := up.ExecContext(ctx, r.RecordID, r.SourceKey, r.Partner, string(r.Record), r.Receipt, r.Attestation,
				r.Topic, r.Partition, r.Offset, now); err != nil {
				return err
			}
		}
	}
	for _, m := range q {
		if _, err := tx.ExecContext(ctx, s.rebind(`INSERT INTO backoffice_quarantine (topic, kpartition, koffset, msg_key, reason, value, quarantined_at)
			VALUES (?,?,?,?,?,?,?) ON CONFLICT (topic, kpartition, koffset) DO NOTHING`),
			m.Topic, m.Partition, m.Offset, string(m.Key), m.Reason, string(m.Value), now); err != nil {
			return err
		}
	}
	return tx.Commit()
}

// Counts returns the number of records and quarantined messages.
func (s *Sink) Counts(ctx context.Context) (records, quarantined int64, err error) {
	if err = s.db.QueryRowContext(ctx, `SELECT count(*) FROM backoffice_records`).Scan(&records); err != nil {
		return
	}
	err = s.db.QueryRowContext(ctx, `SELECT count(*) FROM backoffice_quarantine`).Scan(&quarantined)
	return
}
