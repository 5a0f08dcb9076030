package ingest_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/perkeso/jambatan/cmd/gateway/internal/kafkatest"

	"github.com/segmentio/kafka-go"
	"github.com/segmentio/kafka-go/protocol"

	"github.com/perkeso/jambatan/adapters"
	"github.com/perkeso/jambatan/adapters/sgemployer"
	"github.com/perkeso/jambatan/cmd/gateway/internal/broker"
	"github.com/perkeso/jambatan/cmd/gateway/internal/events"
	"github.com/perkeso/jambatan/cmd/gateway/internal/gatewaytest"
	"github.com/perkeso/jambatan/cmd/gateway/internal/ingest"
	"github.com/perkeso/jambatan/cmd/gateway/internal/pgtest"
	"github.com/perkeso/jambatan/cmd/gateway/internal/receipt"
	"github.com/perkeso/jambatan/cmd/gateway/internal/store"
	"github.com/perkeso/jambatan/mapping"
)

// The topics the tests' events are published to and read from.
const (
	topic         = "t.verified"
	caseTopic     = "t.case-messages"
	statusTopic   = "t.delivery-status"
	rejectedTopic = "t.rejected"
)

// fixture makes the events a gateway publishes, signed with its receipt
// key (or, for forgeries, with another key of the same kid), from the
// employer's example notice.
type fixture struct {
	signer *receipt.Signer
	other  *receipt.Signer // a key the back office does not trust, same kid
	b      *events.Builder
	doc    []byte
}

func newFixture(t testing.TB) *fixture {
	s, o := gatewaytest.NewSigner(t, "gw-1"), gatewaytest.NewSigner(t, "gw-1")
	doc, err := os.ReadFile(filepath.Join("..", "..", "..", "..", "adapters", "sgemployer", "testdata", "example-a.in.json"))
	if err != nil {
		t.Fatal(err)
	}
	return &fixture{signer: s, other: o, b: &events.Builder{Topics: events.Topics{Verified: topic, CaseMessages: caseTopic, Rejected: rejectedTopic}, Source: "test", Receipts: s}, doc: doc}
}

// message builds the verified event of notice i; forge selects a defect.
// messages is n of f's notice events, numbered from from, each bound to
// its receipt.
func (f *fixture) messages(t testing.TB, from, n int) []kafka.Message {
	t.Helper()
	msgs := make([]kafka.Message, 0, n)
	for i := from; i < from+n; i++ {
		msgs = append(msgs, f.message(t, i, "receipt-bound"))
	}
	return msgs
}

// sqliteSink is a new back-office sink in a SQLite file, closed when the
// test ends.
func sqliteSink(t testing.TB) *ingest.Sink {
	t.Helper()
	sink, err := ingest.OpenSink(filepath.Join(t.TempDir(), "bo.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { sink.Close() })
	return sink
}

func (f *fixture) message(t testing.TB, i int, forge string) kafka.Message {
	t.Helper()
	d := bytes.Replace(f.doc, []byte("TPE-2026-0042"), []byte(fmt.Sprintf("N-%06d", i)), 1)
	doc, err := sgemployer.Adapter{}.Read(d)
	if err != nil {
		t.Fatal(err)
	}
	rec, err := doc.Canonical(adapters.Meta{ReceivedAt: time.Now(), Rates: mapping.ExampleRates})
	if err != nil {
		t.Fatal(err)
	}
	rb, _ := json.Marshal(rec)
	att, _ := f.signer.Attest(rb)
	sum := sha256.Sum256(rb)
	named := receipt.Receipt{RecordID: rec.RecordID, PartnerID: "p", RecordSHA256: hex.EncodeToString(sum[:])} // a receipt that names the record
	rc, _ := f.signer.Sign(receipt.Receipt{RecordID: rec.RecordID, PartnerID: "p"})
	subject := "p"
	switch forge {
	case "other-key":
		att, _ = f.other.Attest(rb)
	case "record-changed":
		rb = bytes.Replace(rb, []byte(`"mcDays":21`), []byte(`"mcDays":2`), 1)
	case "receipt-bound": // a notice's event: the receipt stands for the attestation
		att = ""
		rc, _ = f.signer.Sign(named)
	case "receipt-bound-record-changed":
		att = ""
		rc, _ = f.signer.Sign(named)
		rb = bytes.Replace(rb, []byte(`"mcDays":21`), []byte(`"mcDays":2`), 1)
	case "receipt-bound-other-record":
		att = ""
		named.RecordID = "00000000-0000-5000-8000-000000000000"
		rc, _ = f.signer.Sign(named)
	case "receipt-bound-other-key":
		att = ""
		rc, _ = f.other.Sign(named)
	case "no-attestation":
		att = ""
	case "batch-receipt", "batch-receipt-other-record": // an earlier build's insurer event: the batch's receipt
		id := rec.RecordID
		if forge == "batch-receipt-other-record" {
			id = "00000000-0000-5000-8000-000000000000"
		}
		rc, _ = f.signer.Sign(receipt.BatchReceipt{PartnerID: "p", Status: "PROCESSED", Results: []receipt.ClaimResult{
			{Index: 0, Status: "REJECTED", RecordID: rec.RecordID}, {Index: 1, Status: "ACCEPTED", RecordID: id}}})
	case "attested-other-receipt": // another partner's event's receipt beside a true attestation, and its partner in the header
		rc, _ = f.signer.Sign(receipt.Receipt{RecordID: "00000000-0000-5000-8000-000000000000", PartnerID: "q"})
		subject = "q"
	case "receipt-bound-other-partner": // the unsigned header names another partner
		att = ""
		rc, _ = f.signer.Sign(named)
		subject = "q"
	}
	m, err := f.b.VerifiedMessage(rec.RecordID, subject, time.Now(), events.Verified{Record: rb, Receipt: rc, Attestation: att})
	if err != nil {
		t.Fatal(err)
	}
	return kafkaMessage(m)
}

// kafkaMessage is the outbox message m as the relay publishes it.
func kafkaMessage(m store.Message) kafka.Message {
	km := kafka.Message{Topic: m.Topic, Key: m.Key, Value: m.Value}
	for _, h := range m.Headers {
		km.Headers = append(km.Headers, protocol.Header{Key: h.Key, Value: []byte(h.Value)})
	}
	return km
}

// caseMessage builds the case-messages event of an agency's message i
// (decisions, and replies to the back office's requests); forge selects a
// defect.
func (f *fixture) caseMessage(t testing.TB, i int, forge string) kafka.Message {
	t.Helper()
	cm := events.CaseMessage{Operation: "NotifyDecision", CaseID: fmt.Sprintf("MY:PERKESO:XB-2026-%06d", i%7), Sender: "TH:SSO",
		MessageID: fmt.Sprintf("urn:uuid:m-%d", i), ReceivedAt: "2026-03-20T02:00:00Z",
		Body: `<xb:NotifyDecision xmlns:xb="urn:xb-injury:exchange:v1"><xb:Outcome>ACCEPTED</xb:Outcome></xb:NotifyDecision>`}
	if i%3 == 1 {
		cm.Operation, cm.RequestID, cm.DocumentsOmitted = "InformationReply", fmt.Sprintf("ri-%d", i), i%2 == 0
	}
	if forge == "large" { // a reply with its documents: 300 KB
		cm.Body = `<xb:InformationReply xmlns:xb="urn:xb-injury:exchange:v1"><xb:Content>` + strings.Repeat("QUJD", 75<<10) + `</xb:Content></xb:InformationReply>`
	}
	b := f.b
	switch forge {
	case "other-key":
		b = &events.Builder{Topics: f.b.Topics, Source: "test", Receipts: f.other}
	case "unsigned": // as builds before case-message receipts published them
		b = &events.Builder{Topics: f.b.Topics, Source: "test"}
	}
	m, err := b.CaseMessageMessage("th-sso", time.Now(), cm)
	if err != nil {
		t.Fatal(err)
	}
	switch forge {
	case "body-altered":
		m.Value = bytes.Replace(m.Value, []byte("ACCEPTED"), []byte("REJECTED"), 1)
	case "other-case": // the key files it under another case
		m.Key = []byte("MY:PERKESO:XB-2026-999999")
	case "other-id":
		setHeader(&m, "ce_id", "agency-soap/v1|TH:SSO|urn:uuid:m-forged")
	}
	return kafkaMessage(m)
}

// setHeader gives m's header key the value v.
func setHeader(m *store.Message, key, v string) {
	for i, h := range m.Headers {
		if h.Key == key {
			m.Headers[i].Value = v
		}
	}
}

func produce(t testing.TB, addr string, msgs []kafka.Message) {
	t.Helper()
	w := &kafka.Writer{Addr: kafka.TCP(addr), Balancer: &kafka.Murmur2Balancer{}, RequiredAcks: kafka.RequireAll, BatchSize: 500, BatchTimeout: 2 * time.Millisecond}
	defer w.Close()
	for len(msgs) > 0 {
		n := min(500, len(msgs))
		if err := w.WriteMessages(context.Background(), msgs[:n]...); err != nil {
			t.Fatal(err)
		}
		msgs = msgs[n:]
	}
}

// consumer reads the four topics (or those named) as a group's member.
func consumer(addr, group string, sink *ingest.Sink, f *fixture, topics ...string) *ingest.Consumer {
	if len(topics) == 0 {
		topics = []string{topic, caseTopic, statusTopic, rejectedTopic}
	}
	r := kafka.NewReader(kafka.ReaderConfig{Brokers: []string{addr}, GroupID: group, GroupTopics: topics, StartOffset: kafka.FirstOffset,
		MaxWait: 100 * time.Millisecond, MinBytes: 1, MaxBytes: 16 << 20, HeartbeatInterval: 500 * time.Millisecond, SessionTimeout: 6 * time.Second,
		RebalanceTimeout: 6 * time.Second, JoinGroupBackoff: 200 * time.Millisecond})
	return &ingest.Consumer{Reader: r, Sink: sink, CaseTopic: caseTopic, StatusTopic: statusTopic, RejectedTopic: rejectedTopic, JWKS: f.signer.JWKS(), Batch: 100, Log: slog.New(slog.NewTextHandler(io.Discard, nil))}
}

func sinks(t *testing.T) map[string]func(t testing.TB) string { return pgtest.Targets(t) }

// setUp starts a broker with both topics and opens the sink at target.
func setUp(t *testing.T, target string) (*broker.Embedded, *fixture, *ingest.Sink) {
	b := kafkatest.Broker(t, "", topic, caseTopic, statusTopic, rejectedTopic)
	sink, err := ingest.OpenSink(target)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { sink.Close() })
	return b, newFixture(t), sink
}

// forged are the events make builds for each forgery, numbered from first.
func forged(t testing.TB, forgeries map[string]string, first int, make func(testing.TB, int, string) kafka.Message) []kafka.Message {
	var msgs []kafka.Message
	for forge := range forgeries {
		msgs = append(msgs, make(t, first+len(msgs), forge))
	}
	return msgs
}

// quarantinedFor checks that the quarantine holds, for topic, each
// forgery's reason (forgeries maps a forgery to the start of its reason).
func quarantinedFor(t *testing.T, sink *ingest.Sink, topic string, forgeries map[string]string) {
	t.Helper()
	reasons := reasons(t, sink, topic)
	for forge, reason := range forgeries {
		if !slices.ContainsFunc(reasons, func(r string) bool { return strings.HasPrefix(r, reason) }) {
			t.Errorf("%s: no quarantine reason %q in %q", forge, reason, reasons)
		}
	}
}

// reasons are the quarantine's reasons for the messages of topic (one of
// the test's constants, written into the query as either database's SQL).
func reasons(t *testing.T, sink *ingest.Sink, topic string) []string {
	rows, err := sink.DB().Query(`SELECT reason FROM backoffice_quarantine WHERE topic = '` + topic + `' ORDER BY koffset`)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	var out []string
	for rows.Next() {
		var r string
		_ = rows.Scan(&r)
		out = append(out, r)
	}
	return out
}

// status is the delivery-status event of st; forge selects a defect.
func (f *fixture) status(t testing.TB, st events.DeliveryStatus, forge string) kafka.Message {
	t.Helper()
	b := f.b
	if forge == "unsigned" {
		b = &events.Builder{Topics: f.b.Topics, Source: "test"}
	}
	m, err := b.DeliveryStatusMessage(statusTopic, st, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	switch forge {
	case "state-altered":
		m.Value = bytes.Replace(m.Value, []byte(`"state":"retrying"`), []byte(`"state":"delivered"`), 1)
	case "other-key":
		m.Key = []byte("dec-999")
	}
	return kafkaMessage(m)
}

// rejection is the rejected-topic event of refusal i (two partners);
// forge selects a defect.
func (f *fixture) rejection(t testing.TB, i int, forge string) kafka.Message {
	t.Helper()
	r := events.Rejected{ProblemType: "https://perkeso.gov.my/problems/schema-invalid", Status: 422, CorrelationID: fmt.Sprintf("c-%d", i),
		Partner: []string{"sg-acme", "sg-beta"}[i%2], Format: "sg-employer-notice/v1", ReceivedAt: "2026-03-20T02:00:00Z",
		Problems: []adapters.Problem{{Pointer: "/injury/occurredAt", Code: "format"}, {Pointer: fmt.Sprintf("/claims/%d", i), Code: "required"}}}
	b := f.b
	if forge == "unsigned" {
		b = &events.Builder{Topics: f.b.Topics, Source: "test"}
	}
	m, err := b.RejectedMessage(r, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	switch forge {
	case "problem-dropped":
		m.Value = bytes.Replace(m.Value, []byte(`{"pointer":"/injury/occurredAt","code":"format"},`), nil, 1)
	case "other-partner": // the key files it under another partner
		m.Key = []byte("sg-other")
	case "other-id":
		setHeader(&m, "ce_id", "c-forged")
	}
	return kafkaMessage(m)
}

// header is the value of m's header key.
func header(m kafka.Message, key string) string {
	for _, h := range m.Headers {
		if h.Key == key {
			return string(h.Value)
		}
	}
	return ""
}
