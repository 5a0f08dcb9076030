package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"
)

// ExchangeByMessage returns the first reception of (sender, messageID).
func (s *DB) ExchangeByMessage(ctx context.Context, sender, messageID string) (*Exchange, error) {
	x := &Exchange{Sender: sender, MessageID: messageID}
	err := s.db.QueryRowContext(ctx, s.q(`SELECT body_sha256, operation, case_id, response FROM soap_exchanges WHERE sender = ? AND message_id = ?`),
		sender, messageID).Scan(&x.BodySHA256, &x.Operation, &x.CaseID, &x.Response)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, ErrNotFound
	}
	return x, err
}

// CaseInstitution returns the institution a case is shared with.
func (s *DB) CaseInstitution(ctx context.Context, caseID string) (string, error) {
	var inst string
	err := s.db.QueryRowContext(ctx, s.q(`SELECT institution FROM soap_cases WHERE case_id = ?`), caseID).Scan(&inst)
	if errors.Is(err, sql.ErrNoRows) {
		return "", ErrNotFound
	}
	return inst, err
}

// ErrCaseNotShared is HoldAnswers' refusal: the case is unknown, or shared
// with another institution.
var ErrCaseNotShared = errors.New("the case is unknown, or not shared with the partner's institution")

// HoldAnswers records the back office's answers on a case (d, a delivery
// that is held, not sent): each item, keyed by its code, replaces the one
// held before, and is what the gateway answers the agency's next
// RequestInformation for that code with. It writes d as delivered and its
// log entry in the same write. The same key again changes nothing
// (created false); a case not shared with institution is ErrCaseNotShared.
func (s *DB) HoldAnswers(ctx context.Context, d *Delivery, institution string, items map[string][]byte, at time.Time, entry func(*Delivery) *Entry) (created bool, err error) {
	if err := s.caseShared(ctx, d.CaseID, institution); err != nil {
		return false, err
	}
	err = s.write(ctx, func(ctx context.Context, tx wtx) error {
		if created, err = s.insertDelivery(ctx, tx, d, DeliveryDelivered, 0, "", at); err != nil || !created {
			return err
		}
		return s.holdItems(ctx, tx, d, items, at, entry)
	})
	return created, err
}

// HoldClaimed is HoldAnswers for a delivery taken back from dead letter
// (an operator's retry) and claimed by the deliverer: d, still under the
// claim's lease, is recorded delivered with its items held.
func (s *DB) HoldClaimed(ctx context.Context, d *Delivery, institution string, items map[string][]byte, at time.Time, entry func(*Delivery) *Entry) error {
	if err := s.caseShared(ctx, d.CaseID, institution); err != nil {
		return err
	}
	return s.write(ctx, func(ctx context.Context, tx wtx) error {
		res, err := tx.ExecContext(ctx, s.q(`UPDATE deliveries SET state = ?, attempts = attempts + 1, last_error = '', updated_at = ? WHERE id = ? AND state = ? AND next_at = ?`),
			DeliveryDelivered, ts(at), d.ID, DeliveryPending, ts(d.NextAt))
		if err != nil {
			return err
		}
		if n, _ := res.RowsAffected(); n == 0 {
			return nil // another claim took it over, and holds the items itself
		}
		return s.holdItems(ctx, tx, d, items, at, entry)
	})
}

// caseShared is nil when caseID is registered as shared with institution,
// ErrCaseNotShared (naming the case) when not. It reads before the write: a case, once
// registered, is never removed nor given to another institution, and a
// refusal in the write would count against the store's health.
func (s *DB) caseShared(ctx context.Context, caseID, institution string) error {
	inst, err := s.CaseInstitution(ctx, caseID)
	switch {
	case errors.Is(err, ErrNotFound) || err == nil && inst != institution:
		return fmt.Errorf("caseId %q: %w", caseID, ErrCaseNotShared)
	default:
		return err
	}
}

// holdItems upserts d's items, by case and code, and logs entry(d). An
// item held from a request queued after d's stays: d may be an answer
// refused before its case was shared and taken back by a retry after the
// back office answered the item again (requests are queued in the order
// the back office wrote them, so the later delivery id is the later answer).
func (s *DB) holdItems(ctx context.Context, tx wtx, d *Delivery, items map[string][]byte, at time.Time, entry func(*Delivery) *Entry) error {
	var kept []string // items a later answer holds
	for code, item := range items {
		res, err := tx.ExecContext(ctx, s.q(`INSERT INTO case_answers (case_id, code, item, delivery_key, answered_at) VALUES (?,?,?,?,?)
			ON CONFLICT (case_id, code) DO UPDATE SET item = excluded.item, delivery_key = excluded.delivery_key, answered_at = excluded.answered_at
			WHERE coalesce((SELECT id FROM deliveries WHERE delivery_key = case_answers.delivery_key), 0) <= ?`),
			d.CaseID, code, item, d.Key, ts(at), d.ID)
		if err != nil {
			return err
		}
		if n, err := res.RowsAffected(); err == nil && n == 0 {
			kept = append(kept, code)
		}
	}
	e := entry(d)
	if len(kept) > 0 {
		slices.Sort(kept)
		e.Verification += fmt.Sprintf("; %d of %d items not held, a later answer holds them: %s", len(kept), len(items), strings.Join(kept, ", "))
	}
	return s.appendEntry(ctx, tx, e)
}

// CaseAnswers returns the items held for a case, by code.
func (s *DB) CaseAnswers(ctx context.Context, caseID string) (map[string][]byte, error) {
	rows, err := s.db.QueryContext(ctx, s.q(`SELECT code, item FROM case_answers WHERE case_id = ?`), caseID)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	out := map[string][]byte{}
	for rows.Next() {
		var code string
		var item []byte
		if err := rows.Scan(&code, &item); err != nil {
			return nil, err
		}
		out[code] = item
	}
	return out, rows.Err()
}
