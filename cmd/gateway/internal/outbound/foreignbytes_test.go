package outbound_test

import (
	"context"
	"errors"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/segmentio/kafka-go"

	"github.com/perkeso/jambatan/cmd/gateway/internal/outbound"
	"github.com/perkeso/jambatan/cmd/gateway/internal/partner"
	"github.com/perkeso/jambatan/cmd/gateway/internal/pgtest"
	"github.com/perkeso/jambatan/cmd/gateway/internal/store"
)

// TestForeignBytesDeadLettered: an outbound record whose id, case id or
// partner holds a NUL (a JSON \u0000) or, in its ce_id header, bytes that
// are not UTF-8 is dead-lettered (one without an id that can be a key
// under its record's place, as one over 256 bytes is), and the requests
// behind it are queued, on both stores. On PostgreSQL, which
// refuses such text in a row and in a query, the consumer tried the record
// again for ever and read nothing behind it: anyone who could write one
// record to the outbound topic stopped Perkeso's messages to partners.
func TestForeignBytesDeadLettered(t *testing.T) {
	for name, target := range pgtest.Targets(t) {
		t.Run("ok/"+name, func(t *testing.T) {
			st, err := store.Open(target(t))
			if err != nil {
				t.Fatal(err)
			}
			defer st.Close()
			w := newWorld(t)
			c := &outbound.Consumer{Store: st, Log: slog.New(slog.DiscardHandler),
				Partners: partner.NewRegistry([]*partner.Partner{w.partner("https://partner.example/in", "json", partner.Endpoint{})})}
			records := []kafka.Message{
				{Offset: 1, Value: []byte(`{"id":"nul-\u0000-id","partner":"p1","messageType":"JSON","payload":{}}`)},
				{Offset: 2, Value: []byte(`{"id":"nul-\u0000-id","partner":"p1","messageType":"JSON","payload":{}}`)}, // again
				{Offset: 3, Value: []byte(`{"id":"nul-partner","partner":"p1\u0000","messageType":"JSON\u0000","payload":{}}`)},
				{Offset: 4, Value: []byte(`{"id":"nul-case","partner":"p1","messageType":"JSON","caseId":"c\u0000","payload":{}}`)},
				{Offset: 5, Value: []byte(`{"partner":"p1","messageType":"JSON","payload":{}}`), Headers: []kafka.Header{{Key: "ce_id", Value: []byte("ce-\xff\x00")}}},
				{Offset: 6, Value: []byte(`{"id":"behind","partner":"p1","messageType":"JSON","payload":{"n":1}}`)},
			}
			for _, m := range records {
				m.Topic = "perkeso.outbound.v1"
				if err := c.Queue(context.Background(), m); err != nil {
					t.Fatalf("record at offset %d: %v (the consumer would try it again for ever)", m.Offset, err)
				}
			}
			ds, err := st.DeliveriesOf(context.Background(), "", "", 0, 100)
			if err != nil {
				t.Fatal(err)
			}
			var dead, pending []string
			for _, d := range ds {
				if d.State == store.DeliveryDead {
					dead = append(dead, d.Key)
				} else {
					pending = append(pending, d.Key)
				}
			}
			if len(dead) != 5 || len(pending) != 1 || pending[0] != "behind" {
				t.Fatalf("dead %q, pending %q; want the five dead-lettered and the one behind them queued", dead, pending)
			}
			for _, k := range dead {
				if strings.ContainsRune(k, 0) {
					t.Fatalf("dead letter key %q holds a NUL", k)
				}
			}
			// Each holds other than was asked (its id replaced, a field
			// cleaned): refused for good, a retry would send another message.
			ctx := context.Background()
			for _, d := range ds {
				if d.State != store.DeliveryDead {
					continue
				}
				if err := st.RetryDelivery(ctx, d.ID, time.Now()); !d.NoRetry || !errors.Is(err, store.ErrNoRetry) {
					t.Errorf("retry of %q (no retry %v): %v, want ErrNoRetry", d.Key, d.NoRetry, err)
				}
			}
			if n, err := st.RetryDead(ctx, "p1", time.Now()); n != 0 || err != nil {
				t.Errorf("%d dead letters queued again (%v), want none", n, err)
			}
		})
	}
}

// FuzzQueue: whatever an outbound record holds, Queue takes it (queued,
// dead-lettered or a repeat) without an error, which the consumer would
// meet again for ever, reading nothing behind the record. On PostgreSQL
// when JAMBATAN_TEST_POSTGRES names one (its text is the stricter), else
// SQLite.
func FuzzQueue(f *testing.F) {
	target := filepath.Join(f.TempDir(), "g.db")
	if os.Getenv("JAMBATAN_TEST_POSTGRES") != "" {
		target = pgtest.DSN(f)
	}
	st, err := store.Open(target)
	if err != nil {
		f.Fatal(err)
	}
	f.Cleanup(func() { st.Close() })
	w := newWorld(f)
	agency := w.partner("https://agency.example/exchange", "soap", partner.Endpoint{})
	agency.ID, agency.Kind = "ag", partner.KindAgency
	c := &outbound.Consumer{Store: st, Log: slog.New(slog.DiscardHandler),
		Partners: partner.NewRegistry([]*partner.Partner{w.partner("https://partner.example/in", "json", partner.Endpoint{}), agency})}
	f.Add([]byte(`{"id":"a","partner":"p1","messageType":"JSON","payload":{}}`), []byte(""))
	f.Add([]byte(`{"id":"r","partner":"ag","messageType":"InformationReply","caseId":"MY:PERKESO:XB-2026-1","payload":{"items":[{"code":"WAGES_6M","outcome":"TO_FOLLOW"}]}}`), []byte(""))
	f.Add([]byte(`{"id":"d","partner":"ag","messageType":"NotifyDecision","caseId":"MY:PERKESO:XB-2026-1","payload":{"subject":"WORK_RELATEDNESS"}}`), []byte(""))
	f.Add([]byte(`{"id":"a\u0000","partner":"p1\u0000","messageType":"JSON","caseId":"\u0000","payload":{}}`), []byte("ce\xff"))
	f.Add([]byte(`{"partner":"p1","messageType":"NotifyDecision","payload":null}`), []byte("x\x00"))
	var offset atomic.Int64
	f.Fuzz(func(t *testing.T, value, ceID []byte) {
		m := kafka.Message{Topic: "perkeso.outbound.v1", Offset: offset.Add(1), Value: value}
		if ceID != nil {
			m.Headers = []kafka.Header{{Key: "ce_id", Value: ceID}}
		}
		if err := c.Queue(context.Background(), m); err != nil {
			t.Fatalf("Queue(%q, ce_id %q): %v", value, ceID, err)
		}
	})
}
