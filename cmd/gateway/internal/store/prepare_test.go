package store

import (
	"encoding/json"
	"reflect"
	"testing"
	"time"
)

// TestPrepare: what prepare works out ahead of the writer is what the
// writer would have worked out itself, and what changed or was added after
// it (a conflict's rejected event) is worked out afresh.
func TestPrepare(t *testing.T) {
	at := time.Date(2026, 11, 28, 15, 4, 5, 600700800, time.FixedZone("MYT", 8*3600))
	entry := func() *Entry {
		return &Entry{Seq: 3, ReceivedAt: at, Outbox: []Message{
			{Topic: "t", Headers: []Header{{"ce_id", "a\"b"}, {"ce_type", "x"}}}, {Topic: "u"}}}
	}
	want := func(e *Entry) [][]any {
		var rows [][]any
		for _, m := range e.Outbox {
			rows = append(rows, []any{m.Topic, nonNil(m.Key), mustJSON(t, m.Headers), nonNil(m.Value), formatAt(e.ReceivedAt), e.Seq, m.Render})
		}
		return rows
	}
	for _, tc := range []struct {
		name  string
		after func(e *Entry)
	}{
		{"ok/as-prepared", func(*Entry) {}},
		{"ok/time-changed-after", func(e *Entry) { e.ReceivedAt = e.ReceivedAt.Add(time.Second) }},
		{"ok/same-instant-elsewhere", func(e *Entry) { e.ReceivedAt = e.ReceivedAt.UTC() }},
		{"ok/message-added-after", func(e *Entry) {
			e.Outbox = append(e.Outbox, Message{Topic: "rejected", Headers: []Header{{"ce_type", "rejected"}}})
		}},
		{"ok/messages-replaced-after", func(e *Entry) { e.Outbox = []Message{{Topic: "v", Headers: []Header{{"k", "v"}}}} }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := entry()
			if err := e.prepare(); err != nil {
				t.Fatal(err)
			}
			tc.after(e)
			var got [][]any
			for _, m := range e.Outbox {
				args, err := outboxArgs(e, m)
				if err != nil {
					t.Fatal(err)
				}
				got = append(got, args)
			}
			if w := want(e); !reflect.DeepEqual(got, w) {
				t.Fatalf("outbox rows\n got %q\nwant %q", got, w)
			}
			if got, want := logArgs(e)[3], formatAt(e.ReceivedAt); got != want {
				t.Fatalf("logged at %q, want %q", got, want)
			}
			if got, want := ChainHash(e), chainHash(e, formatAt(e.ReceivedAt)); got != want {
				t.Fatal("chain hash differs from the one of the time as logged")
			}
		})
	}
}

// TestPrepareSparesTheWriter: once prepared, an entry's time is not
// formatted again and its messages' headers not encoded again when the
// writer lays out its rows.
func TestPrepareSparesTheWriter(t *testing.T) {
	e := &Entry{Seq: 3, ReceivedAt: time.Now(), Outbox: []Message{{Topic: "t", Headers: []Header{{"ce_id", "x"}}}}}
	unprepared := testing.AllocsPerRun(50, func() { outboxArgs(e, e.Outbox[0]) })
	if err := e.prepare(); err != nil {
		t.Fatal(err)
	}
	if n := testing.AllocsPerRun(50, func() { e.loggedAt() }); n != 0 {
		t.Errorf("loggedAt of a prepared entry: %v allocations, want 0", n)
	}
	// The time's string is one allocation spared, the headers' encoding
	// (its buffer and its string) at least two more.
	if prepared := testing.AllocsPerRun(50, func() { outboxArgs(e, e.Outbox[0]) }); prepared > unprepared-3 {
		t.Errorf("outboxArgs of a prepared message: %v allocations, unprepared %v", prepared, unprepared)
	}
}

func mustJSON(t *testing.T, v any) string {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}
