package store

import (
	"context"
	"database/sql"
	"errors"
)

// ClaimKey identifies one claim version of a batch.
type ClaimKey struct {
	SourceKey, RecordID, Hash string
}

// Claim states found by AcceptBatch.
const (
	ClaimNew       = "NEW"
	ClaimDuplicate = "DUPLICATE" // same version, same values: already accepted
	ClaimConflict  = "CONFLICT"  // same version, other values
)

// BatchOutcome is what AcceptBatch found before writing.
type BatchOutcome struct {
	// ExistingHash and ExistingResponse are set when the batch id was seen.
	ExistingHash     string
	ExistingResponse []byte
	Existing         bool
	States           []string // per claim key, when the batch is new
}

// BatchWrite is what the caller decided to write.
type BatchWrite struct {
	Response []byte   // the response body to keep for a repeated batch
	Accept   []int    // indexes into the claim keys to record as accepted
	Receipts []string // each accepted claim's own receipt, in Accept's order
}

// AcceptBatch logs a batch, records its new claims, and keeps its response,
// in one transaction. decide sees what already exists (the whole batch, or
// per claim) and says what to write; it may set e's outbox and status.
func (s *DB) AcceptBatch(ctx context.Context, e *Entry, sender, batchID string, claims []ClaimKey, decide func(e *Entry, o BatchOutcome) (BatchWrite, error)) (BatchOutcome, BatchWrite, error) {
	var out BatchOutcome
	var w BatchWrite
	err := s.write(ctx, func(ctx context.Context, tx wtx) error {
		out, w = BatchOutcome{}, BatchWrite{}
		err := tx.QueryRowContext(ctx, s.q(`SELECT payload_sha256, response FROM batches WHERE sender = ? AND batch_id = ?`), sender, batchID).
			Scan(&out.ExistingHash, &out.ExistingResponse)
		switch {
		case err == nil:
			out.Existing = true
		case !errors.Is(err, sql.ErrNoRows):
			return err
		default:
			for _, c := range claims {
				first, err := s.recordBy(ctx, txQuerier{s, tx}, c.RecordID)
				switch {
				case errors.Is(err, ErrNotFound):
					out.States = append(out.States, ClaimNew)
				case err != nil:
					return err
				case first.PayloadSHA256 == c.Hash:
					out.States = append(out.States, ClaimDuplicate)
				default:
					out.States = append(out.States, ClaimConflict)
				}
			}
		}
		if w, err = decide(e, out); err != nil {
			return err
		}
		if err := s.appendEntry(ctx, tx, e); err != nil {
			return err
		}
		if out.Existing {
			return nil
		}
		for k, i := range w.Accept {
			c := claims[i]
			rec := &Record{RecordID: c.RecordID, SourceKey: c.SourceKey, PartnerID: e.PartnerID, PayloadSHA256: c.Hash,
				Receipt: w.Receipts[k], AcceptedAt: e.ReceivedAt, Seq: e.Seq}
			if _, err := s.execTx(ctx, tx, qInsertRecord, recordArgs(rec, e)...); err != nil {
				return err
			}
		}
		_, err = tx.ExecContext(ctx, s.q(`INSERT INTO batches (sender, batch_id, payload_sha256, response, seq) VALUES (?,?,?,?,?)`),
			sender, batchID, e.PayloadSHA256, w.Response, e.Seq)
		return err
	})
	return out, w, err
}
