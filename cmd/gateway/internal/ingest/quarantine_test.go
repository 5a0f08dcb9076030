package ingest_test

import (
	"bytes"
	"context"
	"encoding/json"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/segmentio/kafka-go"
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
			defer c.Reader.Close()
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			if _, err := c.Run(ctx, true, 2*time.Second); err != nil {
				t.Fatal(err)
			}
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
