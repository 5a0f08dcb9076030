// Package intake is the pipeline that turns a signed partner document into an
// accepted canonical record, top to bottom in one place:
//
//	media type -> verify JWS -> read -> authorise -> validate -> map ->
//	validate record -> receipt -> log (durable) -> respond
//
// Every submission that reaches the pipeline is logged, accepted or not.
package intake

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"mime"
	"time"

	"github.com/perkeso/jambatan/adapters"
	"github.com/perkeso/jambatan/adapters/jsondoc"
	"github.com/perkeso/jambatan/cmd/gateway/internal/events"
	"github.com/perkeso/jambatan/cmd/gateway/internal/jwsin"
	"github.com/perkeso/jambatan/cmd/gateway/internal/metrics"
	"github.com/perkeso/jambatan/cmd/gateway/internal/partner"
	"github.com/perkeso/jambatan/cmd/gateway/internal/problem"
	"github.com/perkeso/jambatan/cmd/gateway/internal/receipt"
	"github.com/perkeso/jambatan/cmd/gateway/internal/store"
	"github.com/perkeso/jambatan/mapping"
	"github.com/perkeso/jambatan/schema"
)

// Pipeline holds what every submission needs.
type Pipeline struct {
	Store    *store.DB
	Receipts *receipt.Signer
	Rates    mapping.RateTable
	Log      *slog.Logger
	Now      func() time.Time
	// Events builds the outbox messages; nil publishes nothing.
	Events *events.Builder
	// Published, when set, is called after a commit that added outbox
	// messages, to wake the relay.
	Published func()
	// Metrics, when set, counts refused signatures by kind.
	Metrics *metrics.Metrics
}

// Submission is one request as received over mutual TLS.
type Submission struct {
	Partner       *partner.Partner
	Format        string
	Route         string
	ContentType   string
	Body          []byte
	DetachedJWS   string // X-JWS-Signature
	CorrelationID string
}

// Result is a successful response.
type Result struct {
	Status   int    `json:"-"`
	Outcome  string `json:"status"`
	RecordID string `json:"recordId"`
	Receipt  string `json:"receipt"`
}

// step is the state one submission carries down the pipeline.
type step struct {
	sub        Submission
	receivedAt time.Time
	entry      *store.Entry
	verified   *jwsin.Verified
	doc        adapters.Document
	record     *schema.Record
}

// Submit runs the pipeline. The returned error is always a *problem.Error.
func (p *Pipeline) Submit(ctx context.Context, sub Submission) (*Result, *problem.Error) {
	now := time.Now
	if p.Now != nil {
		now = p.Now
	}
	s := &step{sub: sub, receivedAt: now().UTC()}
	s.entry = &store.Entry{
		CorrelationID: sub.CorrelationID, PartnerID: sub.Partner.ID, ReceivedAt: s.receivedAt, Route: sub.Route,
		ContentType: sub.ContentType, Body: sub.Body, Signature: sub.DetachedJWS,
	}
	res, perr := p.run(ctx, s)
	if perr == nil {
		p.logOutcome(s, res.Status, res.Outcome, nil)
		return res, nil
	}
	return nil, p.refused(ctx, s, perr)
}

// refused logs a refusal (with its rejected-topic event) unless the store
// already did or cannot, and returns the error to render.
func (p *Pipeline) refused(ctx context.Context, s *step, perr *problem.Error) *problem.Error {
	switch {
	case errors.Is(perr.Cause, errLogged): // a conflict, logged in the accept transaction
	case errors.Is(perr.Cause, errStore): // the log itself failed: nothing can be written
		p.logOutcome(s, perr.Kind.Status(), "ERROR", perr)
	default:
		s.entry.Status, s.entry.Outcome, s.entry.ProblemType = perr.Kind.Status(), store.OutcomeRejected, perr.Kind.TypeURI()
		if err := p.AddRejected(s.entry, s.sub.Format, perr); err != nil {
			return problem.Wrap(problem.Internal, "could not record the refusal", err)
		}
		if err := p.Store.Log(ctx, s.entry); err != nil {
			perr = problem.Wrap(problem.Unavailable, "the message log is unavailable; try again", fmt.Errorf("%w: %w", errStore, err))
		}
		p.logOutcome(s, perr.Kind.Status(), store.OutcomeRejected, perr)
		p.wake(s.entry)
	}
	return perr
}

// AddRejected appends the rejected-topic event of a refusal to its entry.
func (p *Pipeline) AddRejected(e *store.Entry, format string, perr *problem.Error) error {
	if p.Events == nil {
		return nil
	}
	m, err := p.Events.RejectedMessage(events.Rejected{ProblemType: perr.Kind.TypeURI(), Status: perr.Kind.Status(), Problems: perr.Problems,
		CorrelationID: e.CorrelationID, Partner: e.PartnerID, Format: format, ReceivedAt: e.ReceivedAt.UTC().Format(time.RFC3339)}, e.ReceivedAt)
	if err != nil {
		return err
	}
	e.Outbox = append(e.Outbox, m)
	return nil
}

func (p *Pipeline) wake(e *store.Entry) {
	if p.Published != nil && len(e.Outbox) > 0 {
		p.Published()
	}
}

var errStore = errors.New("store")

func (p *Pipeline) run(ctx context.Context, s *step) (*Result, *problem.Error) {
	form, perr := mediaType(s.sub)
	if perr != nil {
		return nil, perr
	}
	if perr := p.verify(s, form); perr != nil {
		return nil, perr
	}
	if perr := p.read(s); perr != nil {
		return nil, perr
	}
	if perr := p.authorise(s); perr != nil {
		return nil, perr
	}
	if perr := p.validate(s); perr != nil {
		return nil, perr
	}
	if perr := p.mapRecord(s); perr != nil {
		return nil, perr
	}
	return p.accept(ctx, s)
}

// mediaType picks the signature form from Content-Type.
func mediaType(sub Submission) (jwsin.Form, *problem.Error) {
	mt, _, err := mime.ParseMediaType(sub.ContentType)
	if err != nil {
		mt = ""
	}
	switch mt {
	case "application/jose":
		if sub.DetachedJWS != "" {
			return "", problem.New(problem.BadRequest, "send X-JWS-Signature only with an application/json body")
		}
		return jwsin.FormCompact, nil
	case "application/json":
		return jwsin.FormDetached, nil
	}
	return "", problem.New(problem.UnsupportedMediaType, "Content-Type must be application/jose (compact JWS) or application/json with X-JWS-Signature")
}

func (p *Pipeline) verify(s *step, form jwsin.Form) *problem.Error {
	msg := jwsin.Message{Form: form, JWS: string(s.sub.Body)}
	if form == jwsin.FormDetached {
		msg = jwsin.Message{Form: form, JWS: s.sub.DetachedJWS, Body: s.sub.Body}
	}
	v, err := jwsin.Verify(msg, s.sub.Partner.Keys)
	if err != nil {
		reason, kind := "signature not accepted", jwsin.KindMalformed
		var je *jwsin.Error
		if errors.As(err, &je) {
			reason, kind = je.Reason, je.Kind
		}
		s.entry.Verification = "refused: " + reason
		p.Metrics.VerificationFailed(string(kind))
		return problem.New(problem.Signature, reason, adapters.Problem{Pointer: "", Code: adapters.CodeSignature, Message: reason})
	}
	s.verified = v
	sum := sha256.Sum256(v.Payload)
	s.entry.PayloadSHA256 = hex.EncodeToString(sum[:])
	s.entry.Verification = fmt.Sprintf("verified alg=%s kid=%s b64=%t", v.Alg, v.Kid, v.B64)
	return nil
}

func (p *Pipeline) read(s *step) *problem.Error {
	if !s.sub.Partner.Accepts(s.sub.Format) {
		return problem.New(problem.NotAuthorised, "partner is not registered for "+s.sub.Format,
			adapters.Problem{Pointer: "", Code: adapters.CodeNotAuthorised, Message: "not registered for this format"})
	}
	a, ok := adapters.Lookup(s.sub.Format)
	if !ok {
		return problem.Wrap(problem.Internal, "format not available", fmt.Errorf("no adapter for %s", s.sub.Format))
	}
	doc, err := a.Read(s.verified.Payload)
	if err != nil {
		var ie *adapters.InvalidError
		if !errors.As(err, &ie) {
			return problem.Wrap(problem.Internal, "could not read the document", err)
		}
		if len(ie.Problems) == 1 && ie.Problems[0].Code == adapters.CodeRange && ie.Problems[0].Pointer == "" {
			return &problem.Error{Kind: problem.TooLarge, Detail: ie.Problems[0].Message, Problems: ie.Problems}
		}
		return &problem.Error{Kind: problem.Invalid, Detail: "the payload is not one readable JSON document", Problems: ie.Problems}
	}
	s.doc = doc
	return nil
}

// authorise checks the partner may report for the document's subject. It
// runs before validation so that an unauthorised sender learns nothing
// about a document it may not send.
func (p *Pipeline) authorise(s *step) *problem.Error {
	subj, ok := s.doc.Subject()
	if !ok || subj.Scheme != "SG_UEN" || s.sub.Partner.AuthorisedFor(subj.ID) {
		return nil
	}
	return problem.New(problem.NotAuthorised, "the signing key is not registered for this employer",
		adapters.Problem{Pointer: subj.Pointer, Code: adapters.CodeNotAuthorised, Message: "not authorised for this UEN"})
}

func (p *Pipeline) validate(s *step) *problem.Error {
	if ps := s.doc.Problems(); len(ps) > 0 {
		return &problem.Error{Kind: problem.Invalid, Detail: fmt.Sprintf("%d problem(s) in the document", len(ps)), Problems: ps}
	}
	// The structural JSON Schema of the format must agree; a document the
	// adapter passes and the schema refuses is a defect, refused all the same.
	// The schema error may quote the document, so it is not kept as the cause.
	var serr error
	if t, ok := s.doc.(interface{ Tree() *jsondoc.Value }); ok {
		serr = schema.ValidateTree(schemaFile(s.sub.Format), t.Tree()) // the tree the adapter read
	} else {
		serr = schema.ValidateJSON(schemaFile(s.sub.Format), s.verified.Payload)
	}
	if serr != nil {
		return &problem.Error{Kind: problem.Invalid, Detail: "the document does not match the format's JSON Schema", Cause: errors.New("adapter passed a document its JSON Schema refuses"),
			Problems: []adapters.Problem{{Pointer: "", Code: adapters.CodeFormat, Message: "does not match the JSON Schema"}}}
	}
	return nil
}

func schemaFile(format string) string {
	if format == "sg-employer-notice/v1" {
		return schema.SGEmployerNoticeSchemaFile
	}
	return ""
}

func (p *Pipeline) mapRecord(s *step) *problem.Error {
	rec, err := s.doc.Canonical(adapters.Meta{ReceivedAt: s.receivedAt, Rates: p.Rates})
	if err != nil {
		return problem.Wrap(problem.Internal, "the document could not be mapped", err)
	}
	b, err := json.Marshal(rec)
	if err != nil {
		return problem.Wrap(problem.Internal, "the document could not be mapped", err)
	}
	// The bytes that are logged and published are the bytes validated.
	if err := schema.ValidateJSON(schema.CanonicalSchemaFile, b); err != nil {
		return problem.Wrap(problem.Internal, "the document could not be mapped", fmt.Errorf("canonical record fails its schema: %w", err))
	}
	s.record = rec
	s.entry.Canonical = b
	s.entry.SourceKey, s.entry.RecordID = rec.SourceKey, rec.RecordID
	return nil
}

func (p *Pipeline) accept(ctx context.Context, s *step) (*Result, *problem.Error) {
	rc, err := p.Receipts.Sign(receipt.Receipt{
		Issuer: receipt.Issuer, Status: store.OutcomeAccepted, RecordID: s.record.RecordID, PartnerID: s.sub.Partner.ID,
		Format: s.sub.Format, SourceKey: s.record.SourceKey, NoticeID: s.doc.MessageID(), PayloadSHA256: s.entry.PayloadSHA256,
		ReceivedAt: s.receivedAt.Format(time.RFC3339), CorrelationID: s.sub.CorrelationID, RecordSHA256: receipt.Digest(s.entry.Canonical),
	})
	if err != nil {
		return nil, problem.Wrap(problem.Internal, "could not issue a receipt", err)
	}
	s.entry.Receipt, s.entry.Status = rc, 202
	if p.Events != nil {
		// The receipt names the record's hash: it is the attestation too.
		// The entry holds the signed notice, the record and the receipt;
		// the relay renders the event from it.
		m := p.Events.VerifiedRef(s.record.RecordID, s.sub.Partner.ID, s.receivedAt, events.RenderVerifiedJWS)
		if err := p.Events.Check(m, s.entry); err != nil {
			s.entry.Receipt = ""
			return nil, problem.Wrap(problem.TooLarge, "the notice is too large to publish to the back office", err)
		}
		s.entry.Outbox = []store.Message{m}
	}
	conflictErr := problem.New(problem.Conflict, "a different notice was already accepted under this noticeId",
		adapters.Problem{Pointer: "/noticeId", Code: adapters.CodeDuplicate, Message: "already accepted with different content"})
	var conflict bool
	var buildErr error
	res, err := p.Store.Accept(ctx, s.entry, func(e *store.Entry, first *store.Record) {
		e.Receipt, e.Outbox = first.Receipt, nil // a duplicate was published the first time
		if first.PayloadSHA256 == e.PayloadSHA256 {
			e.Status, e.Outcome = 200, store.OutcomeDuplicate
			return
		}
		conflict = true
		e.Receipt, e.Canonical = "", nil
		e.Status, e.Outcome, e.ProblemType = problem.Conflict.Status(), store.OutcomeRejected, problem.Conflict.TypeURI()
		buildErr = p.AddRejected(e, s.sub.Format, conflictErr)
	})
	if err == nil && buildErr != nil {
		err = buildErr
	}
	if err != nil {
		return nil, storeProblem(err)
	}
	p.wake(s.entry)
	if conflict {
		// Already logged inside the transaction.
		perr := conflictErr
		perr.Cause = errLogged
		p.logOutcome(s, perr.Kind.Status(), store.OutcomeRejected, perr)
		return nil, perr
	}
	status := 202
	if res.Outcome == store.OutcomeDuplicate {
		status = 200
	}
	return &Result{Status: status, Outcome: res.Outcome, RecordID: res.Record.RecordID, Receipt: res.Record.Receipt}, nil
}

// storeProblem is the answer when the message log could not take a
// submission (store.FailureAdvice says what it may have done).
func storeProblem(err error) *problem.Error {
	return problem.Wrap(problem.Unavailable, store.FailureAdvice(err), fmt.Errorf("%w: %w", errStore, err))
}

// errLogged marks a refusal whose entry the store already wrote.
var errLogged = errors.New("already logged")

// logOutcome writes one line per submission: identifiers and outcome only,
// never names, identity numbers or medical text.
func (p *Pipeline) logOutcome(s *step, status int, outcome string, perr *problem.Error) {
	if p.Log == nil {
		return
	}
	attrs := []any{"correlation_id", s.sub.CorrelationID, "partner", s.sub.Partner.ID, "format", s.sub.Format,
		"status", status, "outcome", outcome}
	if s.entry.RecordID != "" {
		attrs = append(attrs, "record_id", s.entry.RecordID)
	}
	if perr != nil {
		attrs = append(attrs, "problem", perr.Kind.TypeURI(), "problems", len(perr.Problems))
		if perr.Cause != nil && !errors.Is(perr.Cause, errLogged) {
			attrs = append(attrs, "cause", perr.Cause.Error())
		}
		p.Log.Warn("submission refused", attrs...)
		return
	}
	p.Log.Info("submission", attrs...)
}
