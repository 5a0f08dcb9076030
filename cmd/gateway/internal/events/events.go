// Package events shapes what the gateway publishes to Kafka: CloudEvents 1.0
// in binary mode (attributes as ce_* headers, the data as the record value).
// Events are built inside the accept transaction and land in the outbox; the
// relay publishes them.
package events

import (
	"bytes"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/lestrrat-go/jwx/v3/jwk"

	"github.com/perkeso/jambatan/adapters"
	"github.com/perkeso/jambatan/cmd/gateway/internal/receipt"
	"github.com/perkeso/jambatan/cmd/gateway/internal/store"
)

// Topics names the Kafka topics.
type Topics struct {
	Verified     string `json:"verified"`
	Rejected     string `json:"rejected"`
	CaseMessages string `json:"case_messages"`
	// Outbound delivery: requests in, status out (named in dev.json).
	Outbound       string `json:"outbound,omitempty"`
	DeliveryStatus string `json:"delivery_status,omitempty"`
}

// DefaultTopics are the topic names unless configured otherwise.
var DefaultTopics = Topics{
	Verified:     "perkeso.injury-notices.verified.v1",
	Rejected:     "perkeso.injury-notices.rejected.v1",
	CaseMessages: "perkeso.case-messages.v1",
}

// CloudEvents types.
const (
	TypeVerified = "my.perkeso.injury-notice.verified.v1"
	TypeRejected = "my.perkeso.injury-notice.rejected.v1"
	TypeCase     = "my.perkeso.case-message.received.v1"
)

// CaseMessage is the value of a case-messages record: an agency's
// RequestInformation or NotifyDecision for the back office.
type CaseMessage struct {
	Operation  string `json:"operation"`
	CaseID     string `json:"caseId"`
	Sender     string `json:"sender"`
	MessageID  string `json:"messageId"`
	ReceivedAt string `json:"receivedAt"`
	Body       string `json:"body"` // the Body child, exclusive canonical XML, as signed by the sender
	// RequestID, on an agency's InformationReply, is the id of the back
	// office's RequestInformation it answers (its Body names it only by
	// the MessageId the gateway derived from that id).
	RequestID string `json:"requestId,omitempty"`
	// DocumentsOmitted: the Body's Document contents were emptied, as the
	// event would otherwise outgrow the broker's message size (an
	// agency's reply may carry megabytes); the message log holds them.
	DocumentsOmitted bool `json:"documentsOmitted,omitempty"`
	// Receipt is the gateway's signed statement of the other members and
	// the body's SHA-256 (receipt.CaseMessage), when the Builder has a
	// signer.
	Receipt string `json:"receipt,omitempty"`
}

// statement is what a case message's receipt states: every member but the
// body, and the body's SHA-256.
func (c *CaseMessage) statement() receipt.CaseMessage {
	sum := sha256.Sum256([]byte(c.Body))
	return receipt.CaseMessage{Issuer: receipt.Issuer, Operation: c.Operation, CaseID: c.CaseID, Sender: c.Sender, MessageID: c.MessageID,
		ReceivedAt: c.ReceivedAt, RequestID: c.RequestID, DocumentsOmitted: c.DocumentsOmitted, BodySHA256: hex.EncodeToString(sum[:])}
}

// CaseMessageMessage is the event of a case message, keyed by case id, with
// its receipt when the Builder has a signer.
func (b *Builder) CaseMessageMessage(partnerID string, at time.Time, c CaseMessage) (store.Message, error) {
	if b.Receipts != nil {
		rc, err := b.Receipts.SignCaseMessage(c.statement())
		if err != nil {
			return store.Message{}, err
		}
		c.Receipt = rc
	}
	val, err := json.Marshal(c)
	if err != nil {
		return store.Message{}, err
	}
	return store.Message{Topic: b.Topics.CaseMessages, Key: []byte(c.CaseID), Headers: b.headers(c.EventID(), TypeCase, partnerID, at), Value: val}, nil
}

// EventID is the event's ce_id: the message's idempotency key in the
// gateway, the sender's institution and its MessageId.
func (c *CaseMessage) EventID() string { return "agency-soap/v1|" + c.Sender + "|" + c.MessageID }

// VerifyCaseMessage is what a back office does with a case-messages event
// before it trusts it: the receipt verifies with a key of the gateway's JWKS
// (set), states every member of the event, and names the SHA-256 of its
// body. It returns the event.
func VerifyCaseMessage(value []byte, set jwk.Set) (*CaseMessage, error) {
	var c CaseMessage
	if err := json.Unmarshal(value, &c); err != nil {
		return nil, fmt.Errorf("case message: %w", err)
	}
	if c.Receipt == "" {
		return nil, errors.New("case message without a receipt")
	}
	st, err := receipt.VerifyCaseMessage(c.Receipt, set)
	if err != nil {
		return nil, err
	}
	if *st != c.statement() {
		return nil, errors.New("case message differs from what its receipt states")
	}
	return &c, nil
}

// Renderers of verified events the outbox holds by reference to their log
// entry (store.Message.Render): the entry already holds the signed
// document, the record and the receipt, so the outbox need not hold them
// again; the relay renders the value with Render.
const (
	// RenderVerifiedJWS: the entry's body is the compact JWS, or the
	// document its detached JWS (the entry's signature) signs.
	RenderVerifiedJWS = "verified/jws"
	// RenderVerifiedSOAP: the entry's body is the signed SOAP envelope.
	RenderVerifiedSOAP = "verified/soap"
)

// VerifiedRef is the event of an accepted notice, like VerifiedMessage,
// held by reference: render is RenderVerifiedJWS or RenderVerifiedSOAP.
func (b *Builder) VerifiedRef(recordID, partnerID string, at time.Time, render string) store.Message {
	return store.Message{Topic: b.Topics.Verified, Key: []byte(recordID), Headers: b.headers(recordID, TypeVerified, partnerID, at), Render: render}
}

// Render builds the value of a message held by reference from its log
// entry: byte for byte the value VerifiedMessage builds from the same parts.
func Render(m *store.Message) error {
	e := m.Logged
	if e == nil {
		return errors.New("events: no log entry to render from")
	}
	v := Verified{Record: e.Canonical, Receipt: e.Receipt}
	switch m.Render {
	case RenderVerifiedJWS:
		sg, err := SignedOf(e.Body, e.Signature)
		if err != nil {
			return err
		}
		v.JWS = &sg
	case RenderVerifiedSOAP:
		v.SOAP = string(e.Body)
	default:
		return fmt.Errorf("events: no renderer %q", m.Render)
	}
	m.Value = v.appendJSON(make([]byte, 0, 96+len(e.Canonical)+len(e.Receipt)+len(e.Signature)+len(e.Body)*4/3))
	return nil
}

// appendJSON appends v as json.Marshal writes it (TestRender and FuzzRender
// hold it to that), without json.Marshal's reflection and its second scan
// of the record: the relay renders every accepted notice's event, and that
// scan was most of the cost. The record is appended as it is: it is the
// record as logged, which json.Marshal wrote (compact, HTML-escaped).
func (v *Verified) appendJSON(b []byte) []byte {
	b = append(b, `{"record":`...)
	if len(v.Record) == 0 {
		b = append(b, "null"...)
	} else {
		b = append(b, v.Record...)
	}
	b = appendMember(b, "receipt", v.Receipt)
	if v.JWS != nil {
		b = append(b, `,"jws":{`...)
		b = appendString(append(b, `"protected":`...), v.JWS.Protected)
		if v.JWS.Payload != "" {
			b = appendMember(b, "payload", v.JWS.Payload)
		}
		b = appendMember(b, "signature", v.JWS.Signature)
		b = append(b, '}')
	}
	if v.SOAP != "" {
		b = appendMember(b, "soap", v.SOAP)
	}
	if v.Attestation != "" {
		b = appendMember(b, "attestation", v.Attestation)
	}
	return append(b, '}')
}

// appendMember appends ,"name":"value".
func appendMember(b []byte, name, value string) []byte {
	b = append(append(append(b, ',', '"'), name...), '"', ':')
	return appendString(b, value)
}

// appendString appends s as a JSON string the way encoding/json does. The
// strings of an event are nearly always base64url (JWS parts), which need
// no escaping; anything else goes through json.Marshal.
func appendString(b []byte, s string) []byte {
	for i := 0; i < len(s); i++ {
		if escaped[s[i]] {
			q, _ := json.Marshal(s) // a string always marshals
			return append(b, q...)
		}
	}
	return append(append(append(b, '"'), s...), '"')
}

// escaped marks the bytes encoding/json does not copy as they are: control
// characters, '"', '\\', the HTML characters, and every non-ASCII byte
// (invalid UTF-8, U+2028 and U+2029 are rewritten).
var escaped = func() (t [256]bool) {
	for c := range 256 {
		t[c] = c < 0x20 || c >= 0x80 || c == '"' || c == '\\' || c == '<' || c == '>' || c == '&'
	}
	return t
}()

// SignedOf is the flattened JWS of a notice as logged: body is the compact
// JWS, or with a detached JWS the document it signs (unencoded when its
// protected header says "b64": false, RFC 7797).
func SignedOf(body []byte, detached string) (Signed, error) {
	if detached == "" {
		return SignedFrom(string(body), nil, true), nil
	}
	prot, _, _ := strings.Cut(detached, ".")
	hb, err := base64.RawURLEncoding.DecodeString(prot)
	if err != nil {
		return Signed{}, fmt.Errorf("events: detached JWS header: %w", err)
	}
	var h struct {
		B64 *bool `json:"b64"`
	}
	if err := json.Unmarshal(hb, &h); err != nil {
		return Signed{}, fmt.Errorf("events: detached JWS header: %w", err)
	}
	return SignedFrom(detached, body, h.B64 == nil || *h.B64), nil
}

// Signed is the partner's original JWS in flattened JSON serialization
// (RFC 7515 §7.2.2), whatever form it arrived in, so any JOSE library can
// re-verify it. With "b64": false the payload is the document itself.
//
// An insurer claim's event carries its batch's JWS with the payload left
// out (detached, RFC 7515 appendix F): the batch is signed as a whole and
// may be megabytes; the receipt's payloadSha256 names it.
type Signed struct {
	Protected string `json:"protected"`
	Payload   string `json:"payload,omitempty"`
	Signature string `json:"signature"`
}

// SignedFrom rebuilds the flattened JWS from a compact one, or from a
// detached one and the body it signs.
func SignedFrom(compactOrDetached string, body []byte, b64 bool) Signed {
	p := strings.SplitN(compactOrDetached, ".", 3)
	for len(p) < 3 {
		p = append(p, "")
	}
	s := Signed{Protected: p[0], Payload: p[1], Signature: p[2]}
	if s.Payload == "" && body != nil {
		if b64 {
			s.Payload = base64.RawURLEncoding.EncodeToString(body)
		} else {
			s.Payload = string(body)
		}
	}
	return s
}

// Verified is the value of a verified-topic record.
type Verified struct {
	Record  json.RawMessage `json:"record"`
	Receipt string          `json:"receipt"`
	JWS     *Signed         `json:"jws,omitempty"`
	SOAP    string          `json:"soap,omitempty"` // the signed SOAP envelope as received (agency notifications)
	// Attestation signs Record when Receipt does not. Every receipt in an
	// event now names its record's SHA-256 and stands for both (an
	// insurer's claim has a receipt of its own, besides the batch's); events
	// written by earlier builds carry attestations, which ingestion checks.
	Attestation string `json:"attestation,omitempty"`
}

// Rejected is the value of a rejected-topic record. It carries problem
// types, pointers and codes only: never the document or its text.
type Rejected struct {
	ProblemType   string             `json:"problemType"`
	Status        int                `json:"status"`
	Problems      []adapters.Problem `json:"problems"`
	CorrelationID string             `json:"correlationId"`
	Partner       string             `json:"partner"`
	Format        string             `json:"format,omitempty"`
	ReceivedAt    string             `json:"receivedAt"`
	// Receipt is the gateway's signed statement of every other member
	// (receipt.RejectionType), when the Builder has a signer.
	Receipt string `json:"receipt,omitempty"`
}

// Builder makes outbox messages for one gateway instance.
type Builder struct {
	Topics Topics
	Source string // ce_source: the gateway instance
	// Receipts signs case messages' receipts (none when nil).
	Receipts *receipt.Signer
	// MaxValue is the largest event value Check lets through (default
	// MaxValueBytes; tests lower it).
	MaxValue int
}

// MaxValueBytes is the largest event value the relay can publish: Kafka's
// default message.max.bytes (1 MiB and 12 bytes, the embedded broker's
// too) less room for the key, the headers and the record's framing. The
// broker refuses a larger record, and the relay, publishing in order,
// would stop there for every event behind it.
const MaxValueBytes = 1<<20 - RecordOverhead

// RecordOverhead is the room a record needs beyond its value: its key,
// headers and framing. A cluster's message size less this bounds a value.
const RecordOverhead = 8 << 10

// ErrTooLarge is Check's verdict on an event over the limit.
var ErrTooLarge = errors.New("events: the event is larger than a broker accepts")

// Check tells whether the event m, written with entry e, can be published:
// a value is measured; a message held by reference is rendered from e
// when its parts could exceed the limit (each byte of the document becomes
// at most six in the event, so a small document cannot).
func (b *Builder) Check(m store.Message, e *store.Entry) error {
	limit := b.MaxValue
	if limit <= 0 {
		limit = MaxValueBytes
	}
	n := len(m.Value)
	if m.Render != "" {
		if 6*(len(e.Body)+len(e.Signature))+len(e.Canonical)+len(e.Receipt)+256 <= limit {
			return nil
		}
		m.Logged = e
		if err := Render(&m); err != nil {
			return err
		}
		n = len(m.Value)
	}
	if n > limit {
		return fmt.Errorf("%w: %d bytes, at most %d", ErrTooLarge, n, limit)
	}
	return nil
}

func (b *Builder) headers(id, typ, subject string, at time.Time) []store.Header {
	return []store.Header{
		{Key: "ce_specversion", Value: "1.0"},
		{Key: "ce_id", Value: id},
		{Key: "ce_source", Value: b.Source},
		{Key: "ce_type", Value: typ},
		{Key: "ce_time", Value: at.UTC().Format(time.RFC3339Nano)},
		{Key: "ce_subject", Value: subject},
		{Key: "content-type", Value: "application/json"},
	}
}

// VerifiedMessage is the event of an accepted notice, keyed by its case key
// (the record id) so one case's records stay in order.
func (b *Builder) VerifiedMessage(recordID, partnerID string, at time.Time, v Verified) (store.Message, error) {
	val, err := json.Marshal(v)
	if err != nil {
		return store.Message{}, err
	}
	return store.Message{Topic: b.Topics.Verified, Key: []byte(recordID), Headers: b.headers(recordID, TypeVerified, partnerID, at), Value: val}, nil
}

// MaxPointer bounds a problem's place in a rejected event. A pointer is
// made of the refused document's member names, as long as the partner
// made them: an insurer batch of 100 unknown members with names of 30 KB
// made a 3 MB event, which a broker refuses, stopping the relay for every
// event behind it. With at most 101 problems listed (jsonrules.MaxProblems
// and the one that ends a cut list), the problems take 26 KB at most.
const MaxPointer = 256

// Within is pointer, or its longest ancestor of at most n bytes, which
// still holds the problem: "/claims/3/<a long name>" becomes "/claims/3",
// a long top-level name "" (the document). A place without a slash that is
// too long becomes "" too.
func Within(pointer string, n int) string {
	for len(pointer) > n {
		i := strings.LastIndexByte(pointer, '/')
		if i < 0 {
			return ""
		}
		pointer = pointer[:i]
	}
	return pointer
}

// RejectedMessage is the event of a refused submission, keyed by partner.
func (b *Builder) RejectedMessage(r Rejected, at time.Time) (store.Message, error) {
	ps := make([]adapters.Problem, 0, len(r.Problems))
	for _, p := range r.Problems {
		ps = append(ps, adapters.Problem{Pointer: Within(p.Pointer, MaxPointer), Code: p.Code}) // messages stay out
	}
	r.Problems = ps
	val, err := b.signed(&r, receipt.RejectionType)
	if err != nil {
		return store.Message{}, err
	}
	return store.Message{Topic: b.Topics.Rejected, Key: []byte(r.Partner), Headers: b.headers(r.CorrelationID, TypeRejected, r.Partner, at), Value: val}, nil
}

// DeliveryStatus is the value of a delivery-status record.
type DeliveryStatus struct {
	DeliveryID  int64  `json:"deliveryId"`
	Key         string `json:"key"`
	Partner     string `json:"partner"`
	MessageType string `json:"messageType"`
	CaseID      string `json:"caseId,omitempty"`
	State       string `json:"state"` // delivered, retrying, dead-lettered
	Attempts    int    `json:"attempts"`
	Error       string `json:"error,omitempty"`
	At          string `json:"at"`
	// Receipt is the gateway's signed statement of every other member
	// (receipt.DeliveryStatusType), when the Builder has a signer: the
	// back office acts on a status (files later messages under the case
	// an agency assigned, looks at a dead letter), so it must tell the
	// gateway's from anything else written to the topic.
	Receipt string `json:"receipt,omitempty"`
}

// TypeDeliveryStatus is the CloudEvents type of delivery status events.
const TypeDeliveryStatus = "my.perkeso.delivery.status.v1"

// DeliveryStatusMessage is a status event on topic, keyed by delivery key,
// with its receipt when the Builder has a signer.
func (b *Builder) DeliveryStatusMessage(topic string, st DeliveryStatus, at time.Time) (store.Message, error) {
	val, err := b.signed(&st, receipt.DeliveryStatusType)
	if err != nil {
		return store.Message{}, err
	}
	id := fmt.Sprintf("%s#%d", st.Key, st.Attempts)
	return store.Message{Topic: topic, Key: []byte(st.Key), Headers: b.headers(id, TypeDeliveryStatus, st.Partner, at), Value: val}, nil
}

// VerifyDeliveryStatus is what a back office does with a delivery-status
// event before it acts on it: the receipt verifies with a key of the
// gateway's JWKS (set) and states every member of the event. It returns
// the status.
func VerifyDeliveryStatus(value []byte, set jwk.Set) (*DeliveryStatus, error) {
	var st DeliveryStatus
	if err := verifyOwn(value, &st, set, receipt.DeliveryStatusType, "delivery status"); err != nil {
		return nil, err
	}
	return &st, nil
}

// VerifyRejected is VerifyDeliveryStatus for a rejected-topic event.
func VerifyRejected(value []byte, set jwk.Set) (*Rejected, error) {
	var r Rejected
	if err := verifyOwn(value, &r, set, receipt.RejectionType, "rejection"); err != nil {
		return nil, err
	}
	return &r, nil
}

// ownEvent is an event about the gateway's own doing (a refusal, a
// delivery's status): its receipt states its every other member.
type ownEvent interface {
	receiptMember() *string
}

func (r *Rejected) receiptMember() *string        { return &r.Receipt }
func (st *DeliveryStatus) receiptMember() *string { return &st.Receipt }

// statement is what an own event's receipt signs: iss, then every member
// of the event but the receipt, as the event is written.
func statement(e ownEvent) ([]byte, error) {
	rc := e.receiptMember()
	kept := *rc
	*rc = ""
	b, err := json.Marshal(e)
	*rc = kept
	if err != nil {
		return nil, err
	}
	return append([]byte(`{"iss":"`+receipt.Issuer+`",`), b[1:]...), nil
}

// signed writes e with its receipt of typ when the Builder has a signer.
func (b *Builder) signed(e ownEvent, typ string) ([]byte, error) {
	if b.Receipts != nil {
		// The event as a reader decodes it: text that is not UTF-8 (a
		// partner's answer quoted in a delivery's error) is U+FFFD there,
		// and a statement signed over the text as it was differed from the
		// one the reader computes: the gateway's own event was quarantined.
		raw, err := json.Marshal(e)
		if err == nil {
			err = json.Unmarshal(raw, e)
		}
		if err != nil {
			return nil, err
		}
		st, err := statement(e)
		if err != nil {
			return nil, err
		}
		if *e.receiptMember(), err = b.Receipts.SignEvent(typ, st); err != nil {
			return nil, err
		}
	}
	return json.Marshal(e)
}

// verifyOwn reads value into e and checks its receipt of typ: it verifies
// with a key of set and states exactly the event read (what names the
// event in errors).
func verifyOwn(value []byte, e ownEvent, set jwk.Set, typ, what string) error {
	if err := json.Unmarshal(value, e); err != nil {
		return fmt.Errorf("%s: %w", what, err)
	}
	rc := *e.receiptMember()
	if rc == "" {
		return fmt.Errorf("%s without a receipt", what)
	}
	payload, err := receipt.VerifyEvent(rc, set, typ)
	if err != nil {
		return err
	}
	want, err := statement(e)
	if err != nil {
		return err
	}
	if !bytes.Equal(payload, want) {
		return fmt.Errorf("%s differs from what its receipt states", what)
	}
	return nil
}
