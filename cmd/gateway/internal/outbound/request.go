package outbound

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/perkeso/jambatan/adapters/jsondoc"
	"github.com/perkeso/jambatan/cmd/gateway/internal/partner"
	"github.com/perkeso/jambatan/cmd/gateway/internal/store"
)

// Request is an outbound request as the back office writes it to
// perkeso.outbound.v1 (or posts it to the operator endpoint).
type Request struct {
	ID          string          `json:"id"` // idempotency key; the record's ce_id when absent
	Partner     string          `json:"partner"`
	MessageType string          `json:"messageType"`
	CaseID      string          `json:"caseId"`
	Payload     json.RawMessage `json:"payload"`

	// An InformationReply's items and its agency's institution, which
	// Validate finds for Queue.
	answers     map[string][]byte
	institution string
}

// maxRequestValues bounds the values of a request ParseRequest reads: its
// tree takes about 25 bytes for each byte of small values, and a request
// may be 4 MiB (a record with its documents holds a few thousand).
const maxRequestValues = 100_000

// requestMembers are the members of a request, as written.
var requestMembers = []string{"id", "partner", "messageType", "caseId", "payload"}

// ParseRequest reads an outbound request strictly: one JSON object (no
// member given twice, nothing after it) with only the request's members,
// spelt as they are. encoding/json alone takes the last of a member given
// twice and matches names in any case, so {"partner":"th-sso",
// "Partner":"bn-spk"} went to the second, whatever the back office meant
// and signed; and it passes over a member it does not know ("priority":
// "urgent"), which the gateway would only pretend to honour.
//
// A refused request still comes back as far as encoding/json reads it, so
// that its dead letter names its id and partner, as one Validate refuses
// does.
func ParseRequest(b []byte) (Request, error) {
	var r Request
	lenient := json.Unmarshal(b, &r)
	if lenient != nil {
		r = Request{}
	}
	doc, err := jsondoc.ParseBounded(b, 0, maxRequestValues)
	if errors.Is(err, jsondoc.ErrTooManyValues) {
		return r, fmt.Errorf("the request holds more than %d JSON values", maxRequestValues)
	}
	if err != nil {
		return r, errors.New("the request is not one strict JSON object: " + jsondoc.Reason(err))
	}
	if doc.Kind != jsondoc.Object {
		return r, errors.New("the request is not a JSON object")
	}
	for _, m := range doc.Members {
		if !slices.Contains(requestMembers, m.Name) {
			return r, fmt.Errorf("member %q is not one of a request's (%s)", clip(m.Name, 64), strings.Join(requestMembers, ", "))
		}
	}
	if lenient != nil {
		return r, errors.New("the request's members are not of their types: " + lenient.Error())
	}
	return r, nil
}

// ErrIDReused is Queue's answer when a delivery with the request's id is
// queued already for another partner, type, case or payload: the request
// is not queued.
var ErrIDReused = errors.New("a delivery with this id is queued already with another partner, type, case or payload")

// Queue puts a valid request in the durable queue q. queued is false for a
// repeat of a request queued before; a request that reuses a queued id
// with other content is ErrIDReused, since its content would otherwise be
// lost without a word. The operator API and the topic's consumer share it.
//
// An InformationReply is not queued but held (HoldAnswers), recorded as
// delivered at once, with a status event when status is set; a case not shared with its agency is
// store.ErrCaseNotShared, and so is an agency's message on a case
// registered as another institution's.
func Queue(ctx context.Context, q DeliveryQueue, r *Request, at time.Time, status StatusFunc) (queued bool, err error) {
	d := &store.Delivery{Key: r.ID, PartnerID: r.Partner, MessageType: r.MessageType, CaseID: r.CaseID, Payload: r.Payload}
	switch {
	case r.MessageType == InformationReply:
		queued, err = q.HoldAnswers(ctx, d, r.institution, r.answers, at, heldEntry(at, status))
	case r.institution != "" && r.CaseID != "":
		if err = caseOf(ctx, q, d, r.institution); err == nil {
			queued, err = q.Enqueue(ctx, d, at)
		}
	default:
		queued, err = q.Enqueue(ctx, d, at)
	}
	if err != nil || queued {
		return queued, err
	}
	first, err := q.DeliveryByKey(ctx, r.ID)
	if err != nil {
		return false, err
	}
	if !r.Repeats(first) {
		return false, ErrIDReused
	}
	return false, nil
}

// caseOf is store.ErrCaseNotShared when d's case is registered as shared
// with another institution than the agency's: a message on it would carry
// one institution's case, its person's data among it, to another. A case
// not registered at all passes: one an agency assigned before this build
// registered such cases, or a typing error the agency itself refuses.
func caseOf(ctx context.Context, q interface {
	CaseInstitution(ctx context.Context, caseID string) (string, error)
}, d *store.Delivery, institution string) error {
	inst, err := q.CaseInstitution(ctx, d.CaseID)
	switch {
	case errors.Is(err, store.ErrNotFound):
		return nil
	case err != nil:
		return err
	case inst != institution:
		return fmt.Errorf("caseId %q: %w: it is %s's", d.CaseID, store.ErrCaseNotShared, inst)
	}
	return nil
}

// Repeats reports whether a request whose id is queued already as d asks
// for the same delivery: the same partner, type, case and payload (as JSON,
// whatever its spacing). A repeat is answered as queued; anything else is
// another request that reused the id, and is not queued. A NotifyInjury
// names no case: the agency assigns one, which the delivery then holds.
func (r *Request) Repeats(d *store.Delivery) bool {
	assigned := r.MessageType == "NotifyInjury" && r.CaseID == ""
	if r.Partner != d.PartnerID || r.MessageType != d.MessageType || r.CaseID != d.CaseID && !assigned {
		return false
	}
	var a, b bytes.Buffer
	return json.Compact(&a, r.Payload) == nil && json.Compact(&b, d.Payload) == nil && bytes.Equal(a.Bytes(), b.Bytes())
}

// Message types a request may have: agency-soap/v1's requests, which the
// deliverer sends to agencies, InformationReply, which is held (Queue), and
// JSON for JSON partners.
var MessageTypes = map[string]bool{"NotifyInjury": true, "RequestInformation": true, "NotifyDecision": true, "JSON": true, InformationReply: true}

// MaxField bounds a request's id and caseId, which every status event of
// its delivery repeats (the id twice, as the record's key and in its value).
const MaxField = 256

// requestOf is the request d was queued as, to be checked again. A
// NotifyInjury's case is the one its agency assigned, not the request's.
func requestOf(d *store.Delivery) *Request {
	r := &Request{ID: d.Key, Partner: d.PartnerID, MessageType: d.MessageType, CaseID: d.CaseID, Payload: d.Payload}
	if r.MessageType == "NotifyInjury" {
		r.CaseID = ""
	}
	return r
}

// Validate checks a request before it is queued, and a delivery again
// before each attempt (requestOf).
func (r *Request) Validate(reg *partner.Registry) error {
	p, ok := reg.ByID(r.Partner)
	switch {
	case r.ID == "":
		return errors.New("id is required")
	case len(r.ID) > MaxField:
		return fmt.Errorf("id is over %d bytes", MaxField)
	case !plainText(r.ID):
		return errors.New("id must be UTF-8 text without control characters")
	case len(r.CaseID) > MaxField:
		return fmt.Errorf("caseId is over %d bytes", MaxField)
	case !plainText(r.CaseID):
		return errors.New("caseId must be UTF-8 text without control characters")
	case !ok:
		return fmt.Errorf("unknown partner %q", r.Partner)
	case r.MessageType == InformationReply:
		return r.validateReply(p)
	case p.Endpoint == nil:
		return fmt.Errorf("partner %q has no endpoint registered", r.Partner)
	case !MessageTypes[r.MessageType]:
		return fmt.Errorf("unknown messageType %q", r.MessageType)
	case len(r.Payload) == 0 || !json.Valid(r.Payload):
		return errors.New("payload must be JSON")
	case p.Endpoint.Protocol == "soap" && r.CaseID == "" && r.MessageType != "NotifyInjury":
		return errors.New("caseId is required for an agency")
	case p.Endpoint.Protocol == "soap" && r.CaseID != "" && r.MessageType == "NotifyInjury":
		// H1: the receiver of a notification assigns its case, which the
		// delivery then takes; a caseId given here would stand in its way.
		return errors.New("a NotifyInjury has no caseId: the agency assigns it")
	case p.Endpoint.Protocol == "soap" && r.MessageType == "JSON", p.Endpoint.Protocol == "json" && r.MessageType != "JSON":
		return fmt.Errorf("messageType %s does not fit the partner's protocol %s", r.MessageType, p.Endpoint.Protocol)
	}
	if p.Endpoint.Protocol == "soap" {
		r.institution = p.Institution // Queue checks the case is not another's
	}
	return nil
}

// plainText reports whether s is UTF-8 without control characters: an id
// or a case id is a key the store looks up, and PostgreSQL refuses a NUL in
// a query as in a row (a record that held one was tried again for ever, and
// no request behind it was read).
func plainText(s string) bool {
	return utf8.ValidString(s) && !strings.ContainsFunc(s, unicode.IsControl)
}

// validateReply checks an InformationReply, which is held for an agency,
// not sent (so its partner needs no endpoint), and keeps its items.
func (r *Request) validateReply(p *partner.Partner) error {
	switch {
	case p.Kind != partner.KindAgency:
		return fmt.Errorf("an InformationReply is held for an agency, and partner %q is not one", r.Partner)
	case r.CaseID == "":
		return errors.New("caseId is required for an agency")
	}
	answers, err := ReplyItems(p.Institution, r.CaseID, r.Payload)
	if err != nil {
		return err
	}
	r.answers, r.institution = answers, p.Institution
	return nil
}
