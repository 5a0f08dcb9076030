package intake

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/perkeso/jambatan/adapters"
	"github.com/perkeso/jambatan/adapters/insurerclaim"
	"github.com/perkeso/jambatan/cmd/gateway/internal/events"
	"github.com/perkeso/jambatan/cmd/gateway/internal/problem"
	"github.com/perkeso/jambatan/cmd/gateway/internal/receipt"
	"github.com/perkeso/jambatan/cmd/gateway/internal/store"
	"github.com/perkeso/jambatan/schema"
)

// BatchResult is the 200 body of an insurer batch.
type BatchResult struct {
	Status  string                `json:"status"` // PROCESSED
	BatchID string                `json:"batchId"`
	Receipt string                `json:"receipt"`
	Results []receipt.ClaimResult `json:"results"`
}

// SubmitBatch runs an insurer-claim/v1 batch: verify -> read -> authorise
// the insurer code -> batch rules -> per-claim rules and mapping -> one
// durable transaction (log entry, accepted claims, their events, the batch's
// response for repeats) -> signed batch receipt. It returns the response body.
func (p *Pipeline) SubmitBatch(ctx context.Context, sub Submission) ([]byte, *problem.Error) {
	now := time.Now
	if p.Now != nil {
		now = p.Now
	}
	s := &step{sub: sub, receivedAt: now().UTC()}
	s.entry = &store.Entry{CorrelationID: sub.CorrelationID, PartnerID: sub.Partner.ID, ReceivedAt: s.receivedAt, Route: sub.Route,
		ContentType: sub.ContentType, Body: sub.Body, Signature: sub.DetachedJWS}
	body, perr := p.runBatch(ctx, s)
	if perr == nil {
		p.logOutcome(s, 200, "PROCESSED", nil)
		return body, nil
	}
	return nil, p.refused(ctx, s, perr)
}

func (p *Pipeline) runBatch(ctx context.Context, s *step) ([]byte, *problem.Error) {
	form, perr := mediaType(s.sub)
	if perr != nil {
		return nil, perr
	}
	if perr := p.verify(s, form); perr != nil {
		return nil, perr
	}
	b, perr := readBatch(s)
	if perr != nil {
		return nil, perr
	}
	results, keys, keyIdx, recs, perr := p.mapClaims(s, b)
	if perr != nil {
		return nil, perr
	}
	var conflict bool
	var body []byte
	_, _, err := p.Store.AcceptBatch(ctx, s.entry, b.InsurerCode, b.BatchID, keys, func(e *store.Entry, o store.BatchOutcome) (store.BatchWrite, error) {
		e.Outbox = nil
		if o.Existing {
			if o.ExistingHash == e.PayloadSHA256 {
				e.Status, e.Outcome = 200, store.OutcomeDuplicate
				body = o.ExistingResponse
				return store.BatchWrite{Response: o.ExistingResponse}, nil
			}
			conflict = true
			e.Status, e.Outcome, e.ProblemType = problem.Conflict.Status(), store.OutcomeRejected, problem.Conflict.TypeURI()
			return store.BatchWrite{}, nil
		}
		w := store.BatchWrite{}
		rs := append([]receipt.ClaimResult(nil), results...)
		for k, st := range o.States {
			i := keyIdx[k]
			rs[i].RecordID = keys[k].RecordID
			switch st {
			case store.ClaimNew:
				rs[i].Status = "ACCEPTED"
				w.Accept = append(w.Accept, k)
			case store.ClaimDuplicate:
				rs[i].Status = "DUPLICATE"
			default:
				rs[i].Status, rs[i].RecordID = "REJECTED", ""
				rs[i].Problems = []map[string]string{{"pointer": fmt.Sprintf("/claims/%d/revision", i), "code": adapters.CodeDuplicate,
					"message": "this claim version was accepted with other values"}}
			}
		}
		rc, err := p.Receipts.Sign(receipt.BatchReceipt{Issuer: receipt.Issuer, Status: "PROCESSED", BatchID: b.BatchID, PartnerID: s.sub.Partner.ID,
			Format: insurerclaim.Format, PayloadSHA256: e.PayloadSHA256, ReceivedAt: s.receivedAt.Format(time.RFC3339), CorrelationID: e.CorrelationID, Results: acknowledged(rs)})
		if err != nil {
			return w, err
		}
		if body, err = json.Marshal(BatchResult{Status: "PROCESSED", BatchID: b.BatchID, Receipt: rc, Results: rs}); err != nil {
			return w, err
		}
		w.Response = body
		accepted := make([]int, len(w.Accept))
		for n, k := range w.Accept {
			accepted[n] = keyIdx[k]
		}
		if w.Receipts, e.Outbox, err = p.claimReceipts(s, b, e, accepted, recs); err != nil {
			return w, err
		}
		e.Status, e.Outcome, e.Receipt = 200, store.OutcomeAccepted, rc
		return w, nil
	})
	if errors.Is(err, events.ErrTooLarge) {
		return nil, problem.Wrap(problem.TooLarge, "a claim's event would be too large to publish to the back office; nothing was accepted", err)
	}
	if err != nil {
		return nil, storeProblem(err)
	}
	p.wake(s.entry)
	if conflict {
		return nil, &problem.Error{Kind: problem.Conflict, Detail: "a different batch was already processed under this batchId", Cause: errLogged,
			Problems: []adapters.Problem{{Pointer: "/batchId", Code: adapters.CodeDuplicate, Message: "already processed with different content"}}}
	}
	return body, nil
}

// readBatch reads a verified batch from a partner registered for the
// format and its insurer code; a batch-level problem refuses it whole.
func readBatch(s *step) (*insurerclaim.Batch, *problem.Error) {
	if !s.sub.Partner.Accepts(insurerclaim.Format) {
		return nil, problem.New(problem.NotAuthorised, "partner is not registered for "+insurerclaim.Format,
			adapters.Problem{Pointer: "", Code: adapters.CodeNotAuthorised, Message: "not registered for this format"})
	}
	b, err := insurerclaim.Read(s.verified.Payload)
	if err != nil {
		var ie *adapters.InvalidError
		if errors.As(err, &ie) && ie.Problems[0].Code == adapters.CodeRange {
			return nil, &problem.Error{Kind: problem.TooLarge, Detail: ie.Problems[0].Message, Problems: ie.Problems}
		}
		if errors.As(err, &ie) {
			return nil, &problem.Error{Kind: problem.Invalid, Detail: "the payload is not one readable JSON document", Problems: ie.Problems}
		}
		return nil, problem.Wrap(problem.Internal, "could not read the batch", err)
	}
	if b.InsurerOK && !s.sub.Partner.AuthorisedForInsurer(b.InsurerCode) {
		return nil, problem.New(problem.NotAuthorised, "the signing key is not registered for this insurer code",
			adapters.Problem{Pointer: "/insurerCode", Code: adapters.CodeNotAuthorised, Message: "not authorised for this insurer code"})
	}
	if len(b.Problems) > 0 {
		return nil, &problem.Error{Kind: problem.Invalid, Detail: fmt.Sprintf("%d batch-level problem(s); the batch is rejected", len(b.Problems)), Problems: b.Problems}
	}
	return b, nil
}

// mapClaims checks, maps and schema-checks each claim: results holds every
// claim's result so far (REJECTED with its problems, or to be decided by
// the store), keys the store keys of the others, keyIdx each key's claim
// index, recs their records by claim index.
func (p *Pipeline) mapClaims(s *step, b *insurerclaim.Batch) (results []receipt.ClaimResult, keys []store.ClaimKey, keyIdx []int, recs map[int]*schema.Record, perr *problem.Error) {
	results = make([]receipt.ClaimResult, len(b.Claims))
	recs = map[int]*schema.Record{}
	for i, cl := range b.Claims {
		results[i] = receipt.ClaimResult{Index: i, ClaimNo: cl.ClaimNo, Revision: cl.Revision}
		if len(cl.Problems) > 0 {
			results[i].Status = "REJECTED"
			results[i].Problems = problemsOf(cl.Problems)
			continue
		}
		rec, err := b.Canonical(cl, s.receivedAt, p.Rates)
		if err == nil {
			err = schema.ValidateRecord(rec)
		}
		if err != nil {
			return nil, nil, nil, nil, problem.Wrap(problem.Internal, "a claim could not be mapped", err)
		}
		recs[i] = rec
		keys = append(keys, store.ClaimKey{SourceKey: rec.SourceKey, RecordID: rec.RecordID, Hash: cl.Hash})
		keyIdx = append(keyIdx, i)
	}
	return results, keys, keyIdx, recs, nil
}

// batchJWS is the insurer's JWS over the whole batch as a flattened JSON
// serialization with its payload detached (RFC 7515 appendix F): protected
// header and signature only. Every accepted claim's event carries it, and
// a batch may be 4 MiB: with the payload in each event, a batch of 500
// claims (395 KB) wrote 350 MB of outbox, took the gateway to 722 MB of
// memory and produced events the broker refused as too large. The receipt
// names the batch (payloadSha256); the message log keeps it.
func (s *step) batchJWS() *events.Signed {
	compact := string(s.sub.Body)
	if s.sub.DetachedJWS != "" {
		compact = s.sub.DetachedJWS
	}
	sg := events.SignedFrom(compact, nil, true)
	sg.Payload = ""
	return &sg
}

// claimReceipts signs a receipt for each accepted claim (by its index in
// the batch) naming its record, and builds its event, which carries that
// receipt and the batch's detached JWS.
func (p *Pipeline) claimReceipts(s *step, b *insurerclaim.Batch, e *store.Entry, accepted []int, recs map[int]*schema.Record) ([]string, []store.Message, error) {
	var receipts []string
	var outbox []store.Message
	jws := s.batchJWS()
	for _, i := range accepted {
		rec := recs[i]
		rb, err := json.Marshal(rec)
		if err != nil {
			return nil, nil, err
		}
		rc, err := p.Receipts.Sign(receipt.Receipt{Issuer: receipt.Issuer, Status: store.OutcomeAccepted, RecordID: rec.RecordID,
			PartnerID: s.sub.Partner.ID, Format: insurerclaim.Format, SourceKey: rec.SourceKey, NoticeID: b.Claims[i].ClaimNo,
			BatchID: b.BatchID, PayloadSHA256: e.PayloadSHA256, ReceivedAt: s.receivedAt.Format(time.RFC3339),
			CorrelationID: e.CorrelationID, RecordSHA256: receipt.Digest(rb)})
		if err != nil {
			return nil, nil, err
		}
		receipts = append(receipts, rc)
		if p.Events == nil {
			continue
		}
		m, err := p.Events.VerifiedMessage(rec.RecordID, s.sub.Partner.ID, s.receivedAt, events.Verified{Record: rb, Receipt: rc, JWS: jws})
		if err != nil {
			return nil, nil, err
		}
		if err := p.Events.Check(m, nil); err != nil {
			return nil, nil, err
		}
		outbox = append(outbox, m)
	}
	return receipts, outbox, nil
}

// acknowledged is the batch receipt's view of the results: each claim's
// index, claim number, revision, status and record id, which is what
// insurer-claim/v1 §1 asks the receipt to hold; the problems stay in the
// response, so the receipt stays small whatever the rejected claims hold:
// with the problems, one good claim and 499 made of unknown members gave a
// 54 MB receipt (which the good claim's event then carried; the broker
// refused it and the relay was stuck behind it).
func acknowledged(rs []receipt.ClaimResult) []receipt.ClaimResult {
	out := make([]receipt.ClaimResult, len(rs))
	for i, r := range rs {
		r.Problems = nil
		out[i] = r
	}
	return out
}

func problemsOf(ps []adapters.Problem) []map[string]string {
	out := make([]map[string]string, len(ps))
	for i, p := range ps {
		out[i] = map[string]string{"pointer": p.Pointer, "code": p.Code, "message": p.Message}
	}
	return out
}
