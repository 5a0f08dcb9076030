package store

import (
	"context"
	"database/sql"
	"errors"
	"time"
)

// Log appends an entry (and its outbox messages); durable on return.
func (s *DB) Log(ctx context.Context, e *Entry) error {
	if err := e.prepare(); err != nil {
		return err
	}
	return s.write(ctx, func(ctx context.Context, tx wtx) error { return s.appendEntry(ctx, tx, e) })
}

// AcceptResult tells what Accept did.
type AcceptResult struct {
	Outcome string  // ACCEPTED, DUPLICATE, or REJECTED for a conflict
	Record  *Record // the accepted record (the first one, for a duplicate)
}

// Accept logs an accepted submission and records it, atomically, under its
// record id: the UUIDv5 of its source key (canonical-record-v1), so the
// record id stands for the source key, and records are looked up by it.
// When the source key is already recorded, onExisting adjusts the entry
// (DUPLICATE with the first receipt, or a conflict) before it is logged.
// The entry is durable when Accept returns.
func (s *DB) Accept(ctx context.Context, e *Entry, onExisting func(e *Entry, first *Record)) (AcceptResult, error) {
	var res AcceptResult
	if err := e.prepare(); err != nil {
		return res, err
	}
	err := s.writeKeyed(ctx, e.RecordID, func(ctx context.Context, tx wtx) error {
		first, err := s.recordByID(ctx, tx, e.RecordID)
		switch {
		case err == nil:
			onExisting(e, first)
			res = AcceptResult{Outcome: e.Outcome, Record: first}
			return s.appendEntry(ctx, tx, e)
		case !errors.Is(err, ErrNotFound):
			return err
		}
		e.Outcome = OutcomeAccepted
		rec := &Record{RecordID: e.RecordID, SourceKey: e.SourceKey, PartnerID: e.PartnerID, PayloadSHA256: e.PayloadSHA256,
			Receipt: e.Receipt, AcceptedAt: e.ReceivedAt}
		if err := s.appendAccepted(ctx, tx, e, rec); err != nil {
			return err
		}
		rec.Seq = e.Seq
		res = AcceptResult{Outcome: OutcomeAccepted, Record: rec}
		return nil
	})
	return res, err
}

type querier interface {
	QueryRowContext(ctx context.Context, query string, args ...any) *sql.Row
}

// recordBy looks up the record id's record through q.
func (s *DB) recordBy(ctx context.Context, q querier, id string) (*Record, error) {
	r, err := scanRecord(q.QueryRowContext(ctx, s.q(qRecordBy+`record_id = ?`), id))
	if errors.Is(err, sql.ErrNoRows) {
		return nil, ErrNotFound
	}
	return r, err
}

// scanRecord reads one row of qRecordBy's columns.
func scanRecord(row interface{ Scan(...any) error }) (*Record, error) {
	var r Record
	var at string
	if err := row.Scan(&r.RecordID, &r.SourceKey, &r.PartnerID, &r.PayloadSHA256, &r.Receipt, &at, &r.Seq); err != nil {
		return nil, err
	}
	r.AcceptedAt, _ = time.Parse(time.RFC3339Nano, at)
	return &r, nil
}

// RecordByID returns an accepted record.
func (s *DB) RecordByID(ctx context.Context, recordID string) (*Record, error) {
	return s.recordBy(ctx, s.db, recordID)
}
