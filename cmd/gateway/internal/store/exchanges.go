package store

import (
	"context"
	"database/sql"
	"errors"
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
