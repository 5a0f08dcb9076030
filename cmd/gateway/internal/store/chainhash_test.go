package store_test

import (
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/perkeso/jambatan/cmd/gateway/internal/store"
)

// referenceChainHash is the chain's definition written out plainly (the
// README's "The message log"): SHA-256 over the previous hash and every
// logged field in order, each prefixed by its length as 8 bytes, big-endian.
func referenceChainHash(e *store.Entry) string {
	h := sha256.New()
	for _, f := range []string{e.PrevHash, strconv.FormatInt(e.Seq, 10), e.CorrelationID, e.PartnerID,
		e.ReceivedAt.UTC().Format(time.RFC3339Nano), e.Route, e.ContentType, string(e.Body), e.Signature, e.Verification,
		strconv.Itoa(e.Status), e.Outcome, e.ProblemType, e.SourceKey, e.RecordID, e.PayloadSHA256, string(e.Canonical), e.Receipt} {
		h.Write(binary.BigEndian.AppendUint64(nil, uint64(len(f))))
		h.Write([]byte(f))
	}
	return hex.EncodeToString(h.Sum(nil))
}

// TestChainHash: ChainHash is the definition, for entries small and larger
// than the buffers it pools, one after another in either order (a buffer
// that held a larger entry leaves nothing in a smaller one's hash).
func TestChainHash(t *testing.T) {
	at := time.Date(2026, 11, 28, 7, 30, 0, 123456789, time.FixedZone("MYT", 8*3600))
	small := &store.Entry{Seq: 7, PrevHash: strings.Repeat("ab", 32), CorrelationID: "c-1", PartnerID: "employer-a", ReceivedAt: at,
		Route: "POST /v1/injury-notices", ContentType: "application/jose", Body: []byte("eyJhbGciOiJFUzI1NiJ9.e30.sig"), Verification: "ok",
		Status: 202, Outcome: store.OutcomeAccepted, SourceKey: "k", RecordID: "r", PayloadSHA256: "p", Canonical: []byte(`{"a":1}`), Receipt: "rc"}
	empty := &store.Entry{Seq: 1, ReceivedAt: at}
	large := *small
	large.Seq, large.Body, large.Canonical = 8, []byte(strings.Repeat("x", 200<<10)), []byte(strings.Repeat("y", 70<<10))
	medium := *small
	medium.Seq, medium.Body = 9, []byte(strings.Repeat("z", 20<<10))
	for _, tc := range []struct {
		name string
		e    *store.Entry
	}{{"ok/small", small}, {"ok/empty-fields", empty}, {"ok/past-the-pool", &large}, {"ok/small-after-large", small},
		{"ok/medium", &medium}, {"ok/small-after-medium", small}, {"ok/empty-after-medium", empty}} {
		t.Run(tc.name, func(t *testing.T) {
			if got, want := store.ChainHash(tc.e), referenceChainHash(tc.e); got != want {
				t.Fatalf("ChainHash %s, want %s", got, want)
			}
		})
	}
}

// BenchmarkChainHash hashes an entry the size of an accepted notice's
// (body 1.7 KB, record 1.9 KB, receipt 0.9 KB), as the writer does for
// every entry it logs.
func BenchmarkChainHash(b *testing.B) {
	e := &store.Entry{Seq: 7, PrevHash: strings.Repeat("ab", 32), CorrelationID: "c-1b2c3d4e5f6a7b8c9d0e", PartnerID: "employer-a",
		ReceivedAt: time.Now(), Route: "POST /v1/injury-notices", ContentType: "application/jose", Body: []byte(strings.Repeat("x", 1700)),
		Verification: "ok", Status: 202, Outcome: store.OutcomeAccepted, SourceKey: "sg-employer-notice/v1:employer-a:TPE-2026-0042",
		RecordID: "b0867b30-be3c-5595-a939-c4d47c281950", PayloadSHA256: strings.Repeat("f", 64), Canonical: []byte(strings.Repeat("y", 1900)),
		Receipt: strings.Repeat("r", 900)}
	b.ReportAllocs()
	for b.Loop() {
		store.ChainHash(e)
	}
}
