package ingest_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/segmentio/kafka-go"

	"github.com/perkeso/jambatan/cmd/gateway/internal/events"
	"github.com/perkeso/jambatan/cmd/gateway/internal/ingest"
)

// TestQuarantineTakesAnyBytes: a record whose key, value or headers are not
// UTF-8 or hold NUL is quarantined like any other, and ingestion goes on
// past it. PostgreSQL's TEXT refuses such bytes: the batch that held one
// failed, and the consumer tried it again for ever, so one record written
// to a topic stopped the back office's ingestion. The quarantine keeps the
// message's bytes and headers as they came, and its text readable.
func TestQuarantineTakesAnyBytes(t *testing.T) {
	for name, target := range sinks(t) {
		t.Run("ok/"+name, func(t *testing.T) {
			b, f, sink := setUp(t, target(t))
			junk := kafka.Message{Topic: topic, Key: []byte{0xff, 0x00, 'k'}, Value: []byte("{\"a\":\"\xff\x00\"}"),
				Headers: []kafka.Header{{Key: "ce_id", Value: []byte{0x00, 0xfe}}}}
			produce(t, b.Addr, []kafka.Message{junk, f.message(t, 1, "receipt-bound")})
			c := consumer(b.Addr, "bo", sink, f, topic)
			catchUp(t, c)
			got, err := sink.Counts(context.Background())
			if err != nil {
				t.Fatal(err)
			}
			if got.Records != 1 || got.Quarantined != 1 {
				t.Fatalf("%+v, want the record after the junk ingested and the junk quarantined", got)
			}
			var key, value, text, headers, reason string
			var rawKey, rawValue []byte
			if err := sink.DB().QueryRow(`SELECT msg_key, value, reason, raw_key, raw_value, headers FROM backoffice_quarantine`).
				Scan(&key, &text, &reason, &rawKey, &rawValue, &headers); err != nil {
				t.Fatal(err)
			}
			value = string(rawValue)
			var hs []kafka.Header
			if err := json.Unmarshal([]byte(headers), &hs); err != nil || len(hs) != 1 || !bytes.Equal(hs[0].Value, junk.Headers[0].Value) {
				t.Fatalf("headers %s (%v), want the record's", headers, err)
			}
			if !bytes.Equal(rawKey, junk.Key) || value != string(junk.Value) {
				t.Fatalf("raw key %q, value %q: not the record's bytes", rawKey, value)
			}
			for _, s := range []string{key, text, reason} {
				if !utf8.ValidString(s) || bytes.IndexByte([]byte(s), 0) >= 0 {
					t.Fatalf("text column %q is not UTF-8 without NUL", s)
				}
			}
		})
	}
}

// TestEventTextStored: a verified delivery status whose error text holds a
// NUL or bytes that are not UTF-8 (the text of what a partner answered) is
// ingested, as U+FFFD there, and the events behind it too. On PostgreSQL
// its row failed its batch again and again, and nothing after it was
// ingested.
func TestEventTextStored(t *testing.T) {
	for name, target := range sinks(t) {
		t.Run("ok/"+name, func(t *testing.T) {
			b, f, sink := setUp(t, target(t))
			st := events.DeliveryStatus{DeliveryID: 1, Key: "k-1", Partner: "th-sso", MessageType: "NotifyDecision", CaseID: "TH:SSO:C-1",
				State: "retrying", Attempts: 1, Error: "fault \x00 \x00", At: "2026-03-20T02:00:00Z"}
			produce(t, b.Addr, []kafka.Message{f.status(t, st, ""), f.message(t, 1, "receipt-bound")})
			c := consumer(b.Addr, "bo", sink, f)
			catchUp(t, c)
			got, err := sink.Counts(context.Background())
			if err != nil || got.Deliveries != 1 || got.Records != 1 || got.Quarantined != 0 {
				t.Fatalf("%+v (%v), want the status and the record behind it", got, err)
			}
			var text string
			if err := sink.DB().QueryRow(`SELECT error FROM backoffice_deliveries`).Scan(&text); err != nil || text != "fault \uFFFD \uFFFD" {
				t.Fatalf("error %q (%v)", text, err)
			}
		})
	}
}

// TestRequeueQuarantined: what a back office quarantined for a receipt key
// it did not have yet (the gateway's key rotated, the new JWKS not yet
// copied) is filed once the key is there, by Requeue, without Kafka: each
// record and status once, out of the quarantine; two forgeries stay, each
// with its new reason; a message quarantined by an earlier build, without its bytes, is
// counted and left. Before, only resetting the consumer group's offsets,
// within Kafka's retention, read them again.
func TestRequeueQuarantined(t *testing.T) {
	for name, target := range sinks(t) {
		t.Run("ok/"+name, func(t *testing.T) {
			b, f, sink := setUp(t, target(t))
			msgs := f.messages(t, 0, 20)
			for i := range 5 {
				msgs = append(msgs, f.status(t, events.DeliveryStatus{DeliveryID: int64(i), Key: fmt.Sprint("k-", i), Partner: "th-sso",
					MessageType: "NotifyDecision", CaseID: "TH:SSO:C-1", State: "delivered", Attempts: 1, At: "2026-03-20T02:00:00Z"}, ""))
			}
			msgs = append(msgs, f.message(t, 98, "receipt-bound-record-changed"), f.message(t, 99, "receipt-bound-record-changed"))
			produce(t, b.Addr, msgs)
			c := consumer(b.Addr, "bo", sink, f)
			c.JWKS = f.other.JWKS() // the back office's copy lacks the gateway's key
			if _, err := c.Run(context.Background(), true, 2*time.Second); err != nil {
				t.Fatal(err)
			}
			c.Reader.Close()
			if got, _ := sink.Counts(context.Background()); got.Quarantined != 27 {
				t.Fatalf("%+v, want all 27 quarantined", got)
			}
			if _, err := sink.DB().Exec(`INSERT INTO backoffice_quarantine (topic, kpartition, koffset, msg_key, reason, value, quarantined_at)
				VALUES ('` + topic + `', 0, 100000, 'k', 'an earlier build''s', '{}', '2026-01-01T00:00:00Z')`); err != nil {
				t.Fatal(err)
			}
			r := &ingest.Consumer{Sink: sink, CaseTopic: caseTopic, StatusTopic: statusTopic, RejectedTopic: rejectedTopic, JWKS: f.signer.JWKS(), Batch: 7}
			var heard int
			rep, err := r.Requeue(context.Background(), func(ingest.RequeueReport) { heard++ })
			if err != nil || rep != (ingest.RequeueReport{Released: 25, Still: 2, WithoutBytes: 1}) || heard != 4 {
				t.Fatalf("%+v (%v), progress heard %d times; want 25 released, 2 still, 1 without bytes, in 4 batches", rep, err, heard)
			}
			got, err := sink.Counts(context.Background())
			if err != nil || got != (ingest.Counts{Records: 20, Deliveries: 5, Quarantined: 3}) {
				t.Fatalf("%+v (%v)", got, err)
			}
			// Again, in one batch: each forgery's reason is written anew.
			if _, err := sink.DB().Exec(`UPDATE backoffice_quarantine SET reason = 'stale' WHERE raw_value IS NOT NULL`); err != nil {
				t.Fatal(err)
			}
			r.Batch = 100
			if rep, err := r.Requeue(context.Background(), nil); err != nil || rep != (ingest.RequeueReport{Still: 2, WithoutBytes: 1}) {
				t.Fatalf("again: %+v (%v)", rep, err)
			}
			rows, err := sink.DB().Query(`SELECT reason FROM backoffice_quarantine WHERE raw_value IS NOT NULL`)
			if err != nil {
				t.Fatal(err)
			}
			var reasons []string
			for rows.Next() {
				var reason string
				if err := rows.Scan(&reason); err != nil {
					t.Fatal(err)
				}
				reasons = append(reasons, reason)
			}
			rows.Close()
			if len(reasons) != 2 || !strings.Contains(reasons[0], "record differs from the record the receipt acknowledges") || reasons[1] != reasons[0] {
				t.Fatalf("the forgeries' reasons %q, want the verdict of the key now there for both", reasons)
			}
		})
	}
}

// catchUp runs c until it has read what its topics hold (30 s at most),
// then closes its reader.
func catchUp(t *testing.T, c *ingest.Consumer) {
	t.Helper()
	defer c.Reader.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if _, err := c.Run(ctx, true, 2*time.Second); err != nil {
		t.Fatal(err)
	}
}
