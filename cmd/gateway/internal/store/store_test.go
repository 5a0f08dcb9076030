package store

import (
	"context"
	"path/filepath"
	"testing"
	"time"
)

func open(t *testing.T) *SQLite {
	t.Helper()
	s, err := OpenSQLite(filepath.Join(t.TempDir(), "gateway.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func entry(key, sha string) *Entry {
	return &Entry{CorrelationID: "c-" + key + sha, PartnerID: "p", ReceivedAt: time.Now(), Route: "POST /v1/injury-notices",
		ContentType: "application/jose", Body: []byte("body-" + sha), Verification: "verified", Status: 202,
		SourceKey: key, RecordID: "rid-" + key, PayloadSHA256: sha, Receipt: "receipt-" + key + sha}
}

func TestAccept(t *testing.T) {
	ctx := context.Background()
	s := open(t)
	onExisting := func(e *Entry, first *Record) {
		if first.PayloadSHA256 == e.PayloadSHA256 {
			e.Outcome, e.Status = OutcomeDuplicate, 200
		} else {
			e.Outcome, e.Status = OutcomeRejected, 409
		}
	}
	r, err := s.Accept(ctx, entry("k1", "aa"), onExisting)
	if err != nil || r.Outcome != OutcomeAccepted {
		t.Fatalf("first = %+v, %v", r, err)
	}
	r, err = s.Accept(ctx, entry("k1", "aa"), onExisting)
	if err != nil || r.Outcome != OutcomeDuplicate || r.Record.Receipt != "receipt-k1aa" {
		t.Fatalf("duplicate = %+v, %v", r, err)
	}
	r, err = s.Accept(ctx, entry("k1", "bb"), onExisting)
	if err != nil || r.Outcome != OutcomeRejected {
		t.Fatalf("conflict = %+v, %v", r, err)
	}
	if err := s.Log(ctx, &Entry{CorrelationID: "c-x", PartnerID: "p", ReceivedAt: time.Now(), Status: 401, Outcome: OutcomeRejected}); err != nil {
		t.Fatal(err)
	}
	if n, _ := s.Entries(ctx); n != 4 {
		t.Fatalf("entries = %d, want 4", n)
	}
	rec, err := s.RecordByID(ctx, "rid-k1")
	if err != nil || rec.Seq != 1 {
		t.Fatalf("RecordByID = %+v, %v", rec, err)
	}
	if _, err := s.RecordByID(ctx, "nope"); err != ErrNotFound {
		t.Fatalf("unknown record: %v", err)
	}
}

func TestVerifyChain(t *testing.T) {
	ctx := context.Background()
	tests := []struct {
		name   string
		tamper string
		broken int64
	}{
		{"ok/intact", "", 0},
		{"fail/edited-body", `UPDATE message_log SET body = x'00' WHERE seq = 3`, 3},
		{"fail/edited-status", `UPDATE message_log SET status = 500 WHERE seq = 2`, 2},
		{"fail/deleted", `DELETE FROM message_log WHERE seq = 4`, 4},
		{"fail/rehashed-but-next-broken", `UPDATE message_log SET verification = 'x', hash = 'f00' WHERE seq = 2`, 2},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s := open(t)
			for i := 0; i < 5; i++ {
				if err := s.Log(ctx, entry("k", string(rune('a'+i)))); err != nil {
					t.Fatal(err)
				}
			}
			if tc.tamper != "" {
				if _, err := s.DB().Exec(`PRAGMA foreign_keys=OFF; ` + tc.tamper); err != nil {
					t.Fatal(err)
				}
			}
			rep, err := s.Verify(ctx, nil)
			if err != nil {
				t.Fatal(err)
			}
			if rep.BrokenSeq != tc.broken {
				t.Fatalf("broken = %d (%s), want %d", rep.BrokenSeq, rep.Reason, tc.broken)
			}
		})
	}
}

func BenchmarkAccept(b *testing.B) {
	s, err := OpenSQLite(filepath.Join(b.TempDir(), "gateway.db"))
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close()
	ctx := context.Background()
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		i++
		e := entry(time.Now().String()+string(rune(i)), "aa")
		e.RecordID = e.SourceKey
		if _, err := s.Accept(ctx, e, func(*Entry, *Record) {}); err != nil {
			b.Fatal(err)
		}
	}
}
