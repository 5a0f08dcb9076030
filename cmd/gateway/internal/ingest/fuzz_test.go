package ingest_test

import (
	"bytes"
	"encoding/json"
	"testing"

	"github.com/segmentio/kafka-go"
	"github.com/segmentio/kafka-go/protocol"

	"github.com/perkeso/jambatan/cmd/gateway/internal/events"
	"github.com/perkeso/jambatan/cmd/gateway/internal/ingest"
)

// FuzzVerify feeds arbitrary values, under a verified event's key and
// headers, to the back office's check. It never panics, and whatever it
// lets through is a record the gateway signed: the record of a seed (the
// fuzzer can re-encode the envelope, not forge the signature).
func FuzzVerify(f *testing.F) {
	fx := newFixture(f)
	set := fx.signer.JWKS()
	signed := map[string]bool{}
	var key []byte
	var headers []protocol.Header
	for _, forge := range []string{"", "receipt-bound"} { // an attested event and a notice's
		m := fx.message(f, 1, forge)
		row, err := ingest.Verify(m, set)
		if err != nil {
			f.Fatalf("seed %q quarantined: %v", forge, err)
		}
		var b bytes.Buffer
		_ = json.Compact(&b, row.Record)
		signed[b.String()] = true
		key, headers = m.Key, m.Headers // the same record id for both seeds
		f.Add(m.Value)
	}
	f.Fuzz(func(t *testing.T, value []byte) {
		row, err := ingest.Verify(kafka.Message{Topic: topic, Key: key, Headers: headers, Value: value}, set)
		if err != nil {
			return
		}
		var b bytes.Buffer
		if json.Compact(&b, row.Record) != nil || !signed[b.String()] {
			t.Fatalf("let through a record the gateway did not sign: %s", row.Record)
		}
	})
}

// FuzzVerifyCaseMessage feeds arbitrary values, keys and ce_id headers to
// the back office's check of a case-messages event. It never panics, and
// what it lets through is filed under the case, sender and message id the
// gateway signed, with the body it signed.
func FuzzVerifyCaseMessage(f *testing.F) {
	fx := newFixture(f)
	set := fx.signer.JWKS()
	signed := map[string]bool{}
	for _, i := range []int{0, 1, 4} { // a decision, a reply, a reply whose documents were omitted
		m := fx.caseMessage(f, i, "")
		row, err := ingest.VerifyCaseMessage(m, set)
		if err != nil {
			f.Fatalf("seed %d quarantined: %v", i, err)
		}
		signed[row.CaseID+"\x00"+row.EventID()+"\x00"+row.Body] = true
		f.Add(m.Value, m.Key, header(m, "ce_id"))
	}
	f.Fuzz(func(t *testing.T, value, key []byte, ceID string) {
		m := kafka.Message{Topic: caseTopic, Key: key, Value: value, Headers: []protocol.Header{{Key: "ce_id", Value: []byte(ceID)}}}
		row, err := ingest.VerifyCaseMessage(m, set)
		if err != nil {
			return
		}
		if !signed[row.CaseID+"\x00"+row.EventID()+"\x00"+row.Body] || string(key) != row.CaseID || ceID != row.EventID() {
			t.Fatalf("let through a case message the gateway did not sign: %+v", row.CaseMessage)
		}
	})
}

// FuzzVerifyOwnEvent feeds arbitrary values, keys and ce_id headers to the
// back office's checks of delivery-status and rejected events. They never
// panic, and what they let through is an event the gateway signed, filed
// under its key (and a rejection under its correlation id).
func FuzzVerifyOwnEvent(f *testing.F) {
	fx := newFixture(f)
	set := fx.signer.JWKS()
	// filed is what a check lets through, as JSON: the event and where it
	// is filed.
	filed := func(m kafka.Message, rejection bool) (string, error) {
		if rejection {
			row, err := ingest.VerifyRejected(m, set)
			b, _ := json.Marshal([]any{row.Rejected, string(m.Key), header(m, "ce_id")})
			return string(b), err
		}
		row, err := ingest.VerifyDeliveryStatus(m, set)
		b, _ := json.Marshal([]any{row.DeliveryStatus, string(m.Key)})
		return string(b), err
	}
	signed := map[string]bool{}
	for _, st := range []events.DeliveryStatus{
		{DeliveryID: 1, Key: "ni-001", Partner: "th-sso", MessageType: "NotifyInjury", CaseID: "TH:SSO:C-9", State: "delivered", Attempts: 3, At: "2026-03-20T02:00:00Z"},
		{DeliveryID: 2, Key: "dec-001", Partner: "th-sso", MessageType: "NotifyDecision", State: "dead-lettered", Attempts: 8, Error: "soap fault", At: "2026-03-20T02:00:00Z"},
	} {
		m := fx.status(f, st, "")
		seed, err := filed(m, false)
		if err != nil {
			f.Fatalf("seed %s quarantined: %v", st.Key, err)
		}
		signed[seed] = true
		f.Add(m.Value, m.Key, "", false)
	}
	for i := 0; i < 2; i++ {
		m := fx.rejection(f, i, "")
		seed, err := filed(m, true)
		if err != nil {
			f.Fatalf("seed %d quarantined: %v", i, err)
		}
		signed[seed] = true
		f.Add(m.Value, m.Key, header(m, "ce_id"), true)
	}
	f.Fuzz(func(t *testing.T, value, key []byte, ceID string, rejection bool) {
		m := kafka.Message{Key: key, Value: value, Headers: []protocol.Header{{Key: "ce_id", Value: []byte(ceID)}}}
		if got, err := filed(m, rejection); err == nil && !signed[got] {
			t.Fatalf("let through an event the gateway did not sign, or filed it elsewhere: %s", got)
		}
	})
}
