// Package soapsrv serves the agency-soap/v1 exchange on the gateway's mTLS
// listener: POST /soap/v1/exchange (SOAP 1.1, and SOAP 1.2), the WSDL at
// ?wsdl. It applies the checks of §8.1 in their order, runs NotifyInjury
// through the same durable path as JSON notices (message log, idempotency,
// receipt, outbox to the verified topic), logs and publishes
// RequestInformation and NotifyDecision on the case-messages topic, and signs
// every response, faults included.
package soapsrv

import (
	"context"
	"crypto/sha256"
	"crypto/x509"
	"encoding/hex"
	"encoding/json"
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"mime"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/beevik/etree"
	"github.com/google/uuid"

	"github.com/perkeso/jambatan/adapters"
	"github.com/perkeso/jambatan/adapters/agencysoap"
	"github.com/perkeso/jambatan/cmd/gateway/internal/events"
	"github.com/perkeso/jambatan/cmd/gateway/internal/metrics"
	"github.com/perkeso/jambatan/cmd/gateway/internal/partner"
	"github.com/perkeso/jambatan/cmd/gateway/internal/problem"
	"github.com/perkeso/jambatan/cmd/gateway/internal/receipt"
	"github.com/perkeso/jambatan/cmd/gateway/internal/store"
	"github.com/perkeso/jambatan/cmd/gateway/internal/wssec"
	"github.com/perkeso/jambatan/mapping"
	"github.com/perkeso/jambatan/schema"
	gen "github.com/perkeso/jambatan/schema/agencysoap"
)

const nsXB = gen.Namespace

// Route is the exchange endpoint.
const Route = "/soap/v1/exchange"

// Handler serves the exchange.
type Handler struct {
	Store       *store.DB
	Receipts    *receipt.Signer
	Events      *events.Builder
	Signer      *wssec.Signer // the gateway's WS-Security signing certificate
	Institution string        // this side, e.g. MY:PERKESO
	Skew        time.Duration
	MaxTTL      time.Duration
	Rates       mapping.RateTable
	MaxBytes    int
	Log         *slog.Logger
	Published   func()
	Now         func() time.Time
	Metrics     *metrics.Metrics
}

var actions = map[string]string{
	gen.ActionNotifyInjury:       "NotifyInjury",
	gen.ActionRequestInformation: "RequestInformation",
	gen.ActionNotifyDecision:     "NotifyDecision",
}

func (h *Handler) now() time.Time {
	if h.Now != nil {
		return h.Now()
	}
	return time.Now()
}

// request is one exchange in progress.
type request struct {
	p          *partner.Partner
	cid        string
	raw        []byte
	soapNS     string
	mediaType  string // of the request's Content-Type
	action     string // SOAPAction (SOAP 1.1) or the action parameter (SOAP 1.2), unquoted
	receivedAt time.Time
	entry      *store.Entry
	msgID      string
}

// Serve handles POST /soap/v1/exchange for an authenticated partner.
func (h *Handler) Serve(w http.ResponseWriter, r *http.Request, p *partner.Partner, cid string) {
	rq := h.newRequest(r, p, cid)
	raw, err := io.ReadAll(http.MaxBytesReader(w, r.Body, h.BodyLimit()))
	if err != nil {
		h.fault(w, r, rq, &Fault{Code: wssec.CodeSchema, Reason: "the request body is over the size limit or unreadable"})
		return
	}
	rq.raw, rq.entry.Body = raw, raw
	resp, f := h.handle(r.Context(), r, rq)
	if f != nil {
		h.fault(w, r, rq, f)
		return
	}
	h.respond(w, rq, resp, http.StatusOK)
}

// BodyLimit is the largest request body Serve reads (MaxBytes, or 1 MiB).
func (h *Handler) BodyLimit() int64 {
	if h.MaxBytes <= 0 {
		return 1 << 20
	}
	return int64(h.MaxBytes)
}

// Busy answers a request the gateway will not read now (its in-flight
// budget is spent) with a retryable server fault, logged like any other.
func (h *Handler) Busy(w http.ResponseWriter, r *http.Request, p *partner.Partner, cid, reason string) {
	h.fault(w, r, h.newRequest(r, p, cid), &Fault{Code: "server.unavailable", Reason: reason, Server: true, Retry: 1})
}

// Refuse answers a request refused before its body is read for what its
// HTTP headers say (a content coding, a header sent twice), with the client fault
// client.schema.invalid and reason, logged like any refusal.
func (h *Handler) Refuse(w http.ResponseWriter, r *http.Request, p *partner.Partner, cid, reason string) {
	h.fault(w, r, h.newRequest(r, p, cid), &Fault{Code: wssec.CodeSchema, Reason: reason})
}

// newRequest starts a request's state and its log entry (without the body,
// which Serve adds once it has read it whole).
func (h *Handler) newRequest(r *http.Request, p *partner.Partner, cid string) *request {
	rq := &request{p: p, cid: cid, soapNS: wssec.NSSoap11, receivedAt: h.now().UTC()}
	mt, params, _ := mime.ParseMediaType(r.Header.Get("Content-Type"))
	rq.mediaType, rq.action = mt, strings.Trim(r.Header.Get("SOAPAction"), `"`)
	if mt == "application/soap+xml" {
		rq.soapNS = wssec.NSSoap12 // every answer in the caller's SOAP version, a refusal of its headers too
		rq.action = strings.Trim(params["action"], `"`)
	}
	rq.entry = &store.Entry{CorrelationID: cid, PartnerID: p.ID, ReceivedAt: rq.receivedAt, Route: "POST " + Route,
		ContentType: r.Header.Get("Content-Type"), Verification: "not checked"}
	return rq
}

func (h *Handler) handle(ctx context.Context, r *http.Request, rq *request) (*etree.Element, *Fault) {
	if rq.p.Kind != partner.KindAgency {
		return nil, &Fault{Code: wssec.CodeUntrusted, Reason: "the caller is not registered as an agency"}
	}
	// SOAP version and action (read by newRequest).
	action := rq.action
	switch rq.mediaType {
	case "text/xml", "application/soap+xml":
	default:
		return nil, &Fault{Code: wssec.CodeSchema, Reason: "Content-Type must be text/xml (SOAP 1.1) or application/soap+xml (SOAP 1.2)"}
	}
	// 1. Well-formed envelope, Body child matching the action.
	doc, err := wssec.Parse(rq.raw, wssec.Limits{MaxBytes: len(rq.raw) + 1})
	if err != nil {
		return nil, &Fault{Code: wssec.CodeSchema, Reason: strings.TrimPrefix(err.Error(), "wssec: ")}
	}
	env, ferr := wssec.Inspect(doc)
	if ferr != nil {
		return nil, faultFrom(ferr)
	}
	if env.SOAP != rq.soapNS {
		return nil, &Fault{Code: wssec.CodeSchema, Reason: "envelope namespace does not match the Content-Type"}
	}
	if action == "" && rq.soapNS == wssec.NSSoap12 {
		// SOAP 1.2's action parameter is optional: the Body child names the operation.
		action = nsXB + "#" + env.BodyChild.Tag
	}
	op, ok := actions[action]
	if !ok || env.BodyChild.Tag != op || env.BodyChild.NamespaceURI() != nsXB {
		return nil, &Fault{Code: wssec.CodeSchema, Reason: "the Body child is unknown or does not match SOAPAction"}
	}
	if mid := env.BodyChild.FindElement("./Header/MessageId"); mid != nil {
		rq.msgID = mid.Text()
	}
	// 2-5. WS-Security: presence, timestamp, certificate, signature.
	v := &wssec.Verifier{Now: h.now, Skew: h.Skew, MaxTTL: h.MaxTTL,
		Trust: func(c *x509.Certificate) error { return rq.p.TrustSigningCert(c, h.now()) }}
	res, verr := v.Verify(doc)
	if verr != nil {
		rq.entry.Verification = "refused: " + verr.Reason
		h.Metrics.VerificationFailed(VerificationKind(verr.Code))
		return nil, faultFrom(verr)
	}
	rq.entry.Verification = fmt.Sprintf("verified ws-security signer=%q", res.Cert.Subject.CommonName)
	// 6. Schema.
	xs, err := schema.AgencySOAP()
	if err != nil {
		return nil, &Fault{Code: "server.internal", Reason: "schema unavailable", Server: true}
	}
	if serr := xs.Validate(env.BodyChild, "xb"); serr != nil {
		return nil, &Fault{Code: wssec.CodeSchema, Reason: serr.Reason, Location: serr.Path}
	}
	hdr := agencysoap.ReadHeader(env.BodyChild)
	// 7-8. Sender and receiver.
	if hdr.Sender != rq.p.Institution {
		return nil, &Fault{Code: "client.sender.mismatch", Reason: "Header/Sender is not the institution of the certificate", Location: "/xb:" + op + "/xb:Header/xb:Sender"}
	}
	if hdr.Receiver != h.Institution {
		return nil, &Fault{Code: "client.receiver.unknown", Reason: "Header/Receiver is not " + h.Institution, Location: "/xb:" + op + "/xb:Header/xb:Receiver"}
	}
	// 9. Duplicates: the same (Sender, MessageId) with the same Body child
	// gets the first response again.
	c14n, err := wssec.Canonical(env.BodyChild)
	if err != nil {
		return nil, &Fault{Code: "server.internal", Reason: "canonicalization failed", Server: true}
	}
	sum := sha256.Sum256(c14n)
	bodyHash := hex.EncodeToString(sum[:])
	rq.entry.PayloadSHA256 = bodyHash
	if first, err := h.Store.ExchangeByMessage(ctx, hdr.Sender, hdr.MessageID); err == nil {
		if first.BodySHA256 != bodyHash {
			return nil, &Fault{Code: "client.duplicate", Reason: "MessageId already received with a different Body", Location: "/xb:" + op + "/xb:Header/xb:MessageId"}
		}
		return h.duplicate(ctx, rq, first)
	} else if !errors.Is(err, store.ErrNotFound) {
		return nil, &Fault{Code: "server.unavailable", Reason: "message log unavailable", Server: true, Retry: 5}
	}
	switch op {
	case "NotifyInjury":
		return h.notifyInjury(ctx, rq, env, hdr, bodyHash)
	default:
		return h.caseMessage(ctx, rq, env, hdr, op, bodyHash, c14n)
	}
}

func header(replyTo agencysoap.Header, caseID, self string, at time.Time) *gen.MessageHeader {
	mid := gen.MessageId("urn:uuid:" + uuid.NewString())
	irt := gen.MessageId(replyTo.MessageID)
	sender := gen.InstitutionId(self)
	recv := gen.InstitutionId(replyTo.Sender)
	sent := gen.UtcDateTime(at.UTC().Format("2006-01-02T15:04:05Z"))
	h := &gen.MessageHeader{MessageId: &mid, InReplyTo: &irt, Sender: &sender, Receiver: &recv, SentAt: &sent}
	if caseID != "" {
		c := gen.CaseId(caseID)
		h.CaseId = &c
	}
	return h
}

// marshal turns a generated type into an element.
func marshal(v any) ([]byte, error) { return xml.Marshal(v) }

func toElement(b []byte) (*etree.Element, error) {
	d := etree.NewDocument()
	if err := d.ReadFromBytes(b); err != nil {
		return nil, err
	}
	return d.Root(), nil
}

// storeFault is the answer when the message log could not take a message
// (store.FailureAdvice says what it may have done; sent again unchanged,
// with its MessageId, it is answered once: §8.3).
func storeFault(err error) *Fault {
	return &Fault{Code: "server.unavailable", Reason: store.FailureAdvice(err), Server: true, Retry: 5, Cause: err}
}

// CaseIDFor derives the case id of a notification from its record id: the
// same notification always gets the same case id.
func CaseIDFor(institution, recordID string, at time.Time) string {
	return fmt.Sprintf("%s:XB-%d-%s", institution, at.Year(), strings.ToUpper(strings.ReplaceAll(recordID, "-", "")[:12]))
}

func (h *Handler) notifyInjury(ctx context.Context, rq *request, env *wssec.Envelope, hdr agencysoap.Header, bodyHash string) (*etree.Element, *Fault) {
	n := agencysoap.ReadNotifyInjury(env.BodyChild)
	if p := n.First(); p != nil {
		return nil, &Fault{Code: p.Code, Reason: p.Reason, Location: p.Location}
	}
	recordID := schema.RecordID(n.SourceKey())
	caseID := CaseIDFor(h.Institution, recordID, rq.receivedAt)
	rec, err := n.Canonical(rq.receivedAt, caseID, h.Rates)
	if err == nil {
		err = schema.ValidateRecord(rec)
	}
	if err != nil {
		h.Log.Error("agency notification could not be mapped", "correlation_id", rq.cid, "err", err)
		return nil, &Fault{Code: "server.internal", Reason: "the notification could not be mapped", Server: true}
	}
	ack := gen.InjuryAcknowledgement{Header: header(hdr, caseID, h.Institution, h.now())}
	ra := gen.UtcDateTime(rq.receivedAt.Format("2006-01-02T15:04:05Z"))
	ack.ReceivedAt = &ra
	respBytes, err := marshal(ack)
	if err != nil {
		return nil, &Fault{Code: "server.internal", Reason: "response could not be built", Server: true}
	}
	recJSON, _ := json.Marshal(rec)
	rc, err := h.Receipts.Sign(receipt.Receipt{Issuer: receipt.Issuer, Status: store.OutcomeAccepted, RecordID: rec.RecordID,
		PartnerID: rq.p.ID, Format: agencysoap.Format, SourceKey: rec.SourceKey, NoticeID: hdr.MessageID, PayloadSHA256: bodyHash,
		ReceivedAt: rq.receivedAt.Format(time.RFC3339), CorrelationID: rq.cid, RecordSHA256: receipt.Digest(recJSON)})
	if err != nil {
		return nil, &Fault{Code: "server.internal", Reason: "receipt could not be issued", Server: true}
	}
	e := rq.entry
	e.Status, e.SourceKey, e.RecordID, e.Canonical, e.Receipt = http.StatusOK, rec.SourceKey, rec.RecordID, recJSON, rc
	e.Exchange = &store.Exchange{Sender: hdr.Sender, MessageID: hdr.MessageID, BodySHA256: bodyHash, Operation: "NotifyInjury",
		CaseID: caseID, Response: respBytes, NewCase: true}
	if h.Events != nil {
		// The receipt names the record's hash: it is the attestation too.
		// The entry holds the envelope, the record and the receipt; the
		// relay renders the event from it.
		m := h.Events.VerifiedRef(rec.RecordID, rq.p.ID, rq.receivedAt, events.RenderVerifiedSOAP)
		if err := h.Events.Check(m, e); err != nil {
			return nil, h.tooLarge(rq, e, err)
		}
		e.Outbox = []store.Message{m}
	}
	res, err := h.Store.Accept(ctx, e, func(e *store.Entry, first *store.Record) {
		// A concurrent copy of the same message got there first.
		e.Outbox, e.Exchange, e.Status, e.Outcome, e.Receipt = nil, nil, http.StatusOK, store.OutcomeDuplicate, first.Receipt
	})
	if err != nil {
		return nil, storeFault(err)
	}
	h.wake(e)
	if res.Outcome == store.OutcomeDuplicate {
		first, err := h.Store.ExchangeByMessage(ctx, hdr.Sender, hdr.MessageID)
		if err != nil {
			return nil, &Fault{Code: "server.unavailable", Reason: "message log unavailable", Server: true, Retry: 5}
		}
		respBytes = first.Response
	}
	h.Log.Info("agency notification", "correlation_id", rq.cid, "partner", rq.p.ID, "outcome", res.Outcome, "record_id", rec.RecordID, "case_id", caseID)
	el, err := toElement(respBytes)
	if err != nil {
		return nil, &Fault{Code: "server.internal", Reason: "response could not be built", Server: true}
	}
	return el, nil
}

func (h *Handler) caseMessage(ctx context.Context, rq *request, env *wssec.Envelope, hdr agencysoap.Header, op, bodyHash string, c14n []byte) (*etree.Element, *Fault) {
	loc := "/xb:" + op + "/xb:Header"
	if !hdr.HasCaseID {
		return nil, &Fault{Code: agencysoap.CodeContent, Reason: op + " needs a CaseId", Location: loc}
	}
	inst, err := h.Store.CaseInstitution(ctx, hdr.CaseID)
	if errors.Is(err, store.ErrNotFound) || (err == nil && inst != hdr.Sender) {
		return nil, &Fault{Code: "client.case.unknown", Reason: "CaseId unknown or not shared with the sender", Location: loc + "/xb:CaseId"}
	}
	if err != nil {
		return nil, &Fault{Code: "server.unavailable", Reason: "message log unavailable", Server: true, Retry: 5}
	}
	if hdr.HasInReplyTo {
		return nil, &Fault{Code: agencysoap.CodeContent, Reason: "a request has no InReplyTo", Location: loc + "/xb:InReplyTo"}
	}
	if p := agencysoap.CheckCaseMessage(env.BodyChild); p != nil {
		return nil, &Fault{Code: p.Code, Reason: p.Reason, Location: p.Location}
	}
	var resp any
	var answers map[string][]byte // code -> held xb:Item
	switch op {
	case "NotifyDecision":
		ack := gen.Acknowledgement{Header: header(hdr, hdr.CaseID, h.Institution, h.now())}
		ra := gen.UtcDateTime(rq.receivedAt.Format("2006-01-02T15:04:05Z"))
		ack.ReceivedAt = &ra
		resp = ack
	default:
		// Items the back office holds answers for (an InformationReply
		// request) are answered with them; the others are to follow
		// within 14 days (the back office reads the request from the
		// case-messages topic).
		var err error
		if answers, err = h.Store.CaseAnswers(ctx, hdr.CaseID); err != nil {
			return nil, &Fault{Code: "server.unavailable", Reason: "message log unavailable", Server: true, Retry: 5}
		}
		rep := gen.InformationReplyMsg{Header: header(hdr, hdr.CaseID, h.Institution, h.now()), Reply: &gen.ReplyItems{}}
		by := gen.DateLexical(rq.receivedAt.AddDate(0, 0, 14).Format("2006-01-02"))
		ce := gen.Calendar("CE")
		for _, it := range env.BodyChild.FindElements("./Request/Item") {
			code := gen.ItemCode(it.FindElement("./Code").Text())
			rep.Reply.Item = append(rep.Reply.Item, &gen.ReplyItem{Code: &code, Outcome: "TO_FOLLOW", ExpectedBy: &gen.CalDate{Value: &by, Cal: &ce}})
		}
		resp = rep
	}
	respBytes, err := marshal(resp)
	if err == nil && len(answers) > 0 {
		respBytes, err = withAnswers(respBytes, answers)
	}
	if err != nil {
		return nil, &Fault{Code: "server.internal", Reason: "response could not be built", Server: true}
	}
	e := rq.entry
	e.Status, e.Outcome, e.SourceKey = http.StatusOK, store.OutcomeAccepted, agencysoap.Format+"|"+hdr.Sender+"|"+hdr.MessageID
	e.Exchange = &store.Exchange{Sender: hdr.Sender, MessageID: hdr.MessageID, BodySHA256: bodyHash, Operation: op, CaseID: hdr.CaseID, Response: respBytes}
	if h.Events != nil {
		m, err := h.Events.CaseMessageMessage(rq.p.ID, rq.receivedAt, events.CaseMessage{Operation: op, CaseID: hdr.CaseID, Sender: hdr.Sender,
			MessageID: hdr.MessageID, ReceivedAt: rq.receivedAt.Format(time.RFC3339), Body: string(c14n)})
		if err != nil {
			return nil, &Fault{Code: "server.internal", Reason: "event failed", Server: true}
		}
		if err := h.Events.Check(m, e); err != nil {
			return nil, h.tooLarge(rq, e, err)
		}
		e.Outbox = []store.Message{m}
	}
	if err := h.Store.Log(ctx, e); err != nil {
		return nil, storeFault(err)
	}
	h.wake(e)
	h.Log.Info("agency case message", "correlation_id", rq.cid, "partner", rq.p.ID, "operation", op, "case_id", hdr.CaseID)
	el, err := toElement(respBytes)
	if err != nil {
		return nil, &Fault{Code: "server.internal", Reason: "response could not be built", Server: true}
	}
	return el, nil
}

// withAnswers replaces each reply item of the InformationReply reply
// whose code has a held answer with that answer.
func withAnswers(reply []byte, answers map[string][]byte) ([]byte, error) {
	d := etree.NewDocument()
	if err := d.ReadFromBytes(reply); err != nil {
		return nil, err
	}
	r := d.Root().FindElement("./Reply")
	if r == nil {
		return nil, errors.New("the reply has no Reply")
	}
	for _, it := range r.ChildElements() {
		held, ok := answers[it.FindElement("./Code").Text()]
		if !ok {
			continue
		}
		hd := etree.NewDocument()
		if err := hd.ReadFromBytes(held); err != nil {
			return nil, err
		}
		// Written as the reply around it is when that declares the
		// exchange's namespace as its default (as the generated types do).
		item := hd.Root()
		if d.Root().Space == "" && d.Root().NamespaceURI() == item.NamespaceURI() {
			item.RemoveAttr("xmlns:" + item.Space)
			for _, e := range append(item.FindElements(".//*"), item) {
				e.Space = ""
			}
		}
		r.InsertChildAt(it.Index(), item)
		r.RemoveChild(it)
	}
	return d.WriteToBytes()
}

// duplicate answers a repeated message with the first response (re-signed:
// a fresh Timestamp, the same Body content) and logs the repeat.
func (h *Handler) duplicate(ctx context.Context, rq *request, first *store.Exchange) (*etree.Element, *Fault) {
	e := rq.entry
	e.Status, e.Outcome = http.StatusOK, store.OutcomeDuplicate
	if err := h.Store.Log(ctx, e); err != nil {
		return nil, &Fault{Code: "server.unavailable", Reason: "message log unavailable", Server: true, Retry: 5}
	}
	el, err := toElement(first.Response)
	if err != nil {
		return nil, &Fault{Code: "server.internal", Reason: "stored response unreadable", Server: true}
	}
	return el, nil
}

func (h *Handler) wake(e *store.Entry) {
	if h.Published != nil && len(e.Outbox) > 0 {
		h.Published()
	}
}

// respond signs and writes a response envelope.
func (h *Handler) respond(w http.ResponseWriter, rq *request, child *etree.Element, status int) {
	doc := envelope(rq.soapNS, child)
	if err := h.Signer.Sign(doc); err != nil {
		h.Log.Error("signing the response failed", "correlation_id", rq.cid, "err", err)
		status = http.StatusInternalServerError
	}
	b, _ := doc.WriteToBytes()
	ct := "text/xml; charset=utf-8"
	if rq.soapNS == wssec.NSSoap12 {
		ct = "application/soap+xml; charset=utf-8"
	}
	w.Header().Set("Content-Type", ct)
	problem.WriteWhole(w, status, b)
}

// tooLarge refuses a message whose event a broker would not take (see
// events.Check): accepted, it would stop the relay for every event behind it.
func (h *Handler) tooLarge(rq *request, e *store.Entry, err error) *Fault {
	h.Log.Warn("agency message too large to publish", "correlation_id", rq.cid, "err", err)
	e.Receipt, e.Exchange = "", nil
	return &Fault{Code: wssec.CodeSchema, Reason: "the message is too large to publish to the back office"}
}

// fault logs a refused request (with its rejected-topic event) and answers
// with a signed Fault, with the HTTP status of its SOAP version (faultStatus).
func (h *Handler) fault(w http.ResponseWriter, r *http.Request, rq *request, f *Fault) {
	if f.MessageID == "" {
		f.MessageID = rq.msgID
	}
	e := rq.entry
	if e.Outcome == "" || e.Outcome == store.OutcomeAccepted {
		e.Outcome = store.OutcomeRejected
	}
	status := faultStatus(rq.soapNS, f)
	e.Status, e.ProblemType, e.Exchange, e.Outbox = status, "urn:my:perkeso:jambatan:soap-fault:"+f.Code, nil, nil
	if h.Events != nil && !f.Server {
		if m, err := h.Events.RejectedMessage(events.Rejected{ProblemType: e.ProblemType, Status: e.Status,
			Problems: []adapters.Problem{{Pointer: f.Location, Code: f.Code}}, CorrelationID: rq.cid, Partner: rq.p.ID,
			Format: agencysoap.Format, ReceivedAt: rq.receivedAt.Format(time.RFC3339)}, rq.receivedAt); err == nil {
			e.Outbox = []store.Message{m}
		}
	}
	if err := h.Store.Log(r.Context(), e); err != nil {
		h.Log.Error("message log write failed", "correlation_id", rq.cid, "err", err)
		f = &Fault{Code: "server.unavailable", Reason: "message log unavailable", Server: true, Retry: 5, MessageID: f.MessageID, Cause: err}
	} else {
		h.wake(e)
	}
	attrs := []any{"correlation_id", rq.cid, "partner", rq.p.ID, "code", f.Code, "location", events.Within(f.Location, events.MaxPointer)}
	if f.Cause != nil {
		attrs = append(attrs, "cause", f.Cause.Error())
	}
	h.Log.Warn("agency request refused", attrs...)
	if f.Server && f.Retry > 0 {
		w.Header().Set("Retry-After", strconv.Itoa(f.Retry))
	}
	h.respond(w, rq, faultElement(rq.soapNS, f), status)
}

// faultStatus is a Fault's HTTP status: 500 for every SOAP 1.1 Fault (SOAP
// 1.1 §6.2, the exchange profile §8); in SOAP 1.2, 400 for an env:Sender
// fault and 500 for the others (SOAP 1.2 Part 2 §7.5.2.2).
func faultStatus(soapNS string, f *Fault) int {
	if soapNS == wssec.NSSoap12 && !f.Server && f.Code != "mustUnderstand" {
		return http.StatusBadRequest
	}
	return http.StatusInternalServerError
}

// VerificationKind is the jambatan_verification_failures_total kind of a
// WS-Security refusal with this fault code.
func VerificationKind(code string) string { return "ws-security:" + code }
