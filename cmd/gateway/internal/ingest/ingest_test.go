package ingest_test

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/perkeso/jambatan/cmd/gateway/internal/kafkatest"

	"github.com/lestrrat-go/jwx/v3/jwk"
	"github.com/segmentio/kafka-go"

	"github.com/perkeso/jambatan/cmd/gateway/internal/events"
	"github.com/perkeso/jambatan/cmd/gateway/internal/gatewaytest"
	"github.com/perkeso/jambatan/cmd/gateway/internal/ingest"
	"github.com/perkeso/jambatan/cmd/gateway/internal/pgtest"
	"github.com/perkeso/jambatan/cmd/gateway/internal/receipt"
)

// TestExactlyOnceEffect: records re-delivered (published twice, consumers
// restarted, a rebalance between two consumers) are in the table once each;
// forged ones are quarantined with the reason.
func TestExactlyOnceEffect(t *testing.T) {
	for name, target := range sinks(t) {
		t.Run("ok/"+name, func(t *testing.T) {
			b, f, sink := setUp(t, target(t))
			const n = 600
			var msgs []kafka.Message
			for i := 0; i < n; i++ {
				// Half bound by their receipt (notices), half with an
				// attestation (insurer claims) and their receipt or, as
				// earlier builds wrote them, their batch's.
				form := []string{"", "receipt-bound", "batch-receipt", "receipt-bound"}[i%4]
				msgs = append(msgs, f.message(t, i, form))
			}
			forgeries := []string{"other-key", "record-changed", "receipt-bound-record-changed", "receipt-bound-other-record", "receipt-bound-other-key", "no-attestation", "receipt-bound-other-partner", "attested-other-receipt", "batch-receipt-other-record"}
			for i, forge := range forgeries {
				msgs = append(msgs, f.message(t, n+i, forge))
			}
			produce(t, b.Addr, msgs)

			// First consumer: stops after a few batches (a restart).
			ctx, cancel := context.WithCancel(context.Background())
			c1 := consumer(b.Addr, "bo", sink, f)
			c1.OnBatch = func(p ingest.Progress) {
				if p.Consumed >= 200 {
					cancel()
				}
			}
			if _, err := c1.Run(ctx, false, 0); err != nil {
				t.Fatal(err)
			}
			c1.Reader.Close()

			// At least once: the first 300 are published again.
			produce(t, b.Addr, msgs[:300])

			// Two consumers in the group at once (a rebalance), until caught up.
			var wg sync.WaitGroup
			for i := 0; i < 2; i++ {
				wg.Add(1)
				go func() {
					defer wg.Done()
					c := consumer(b.Addr, "bo", sink, f)
					defer c.Reader.Close()
					if _, err := c.Run(context.Background(), true, 4*time.Second); err != nil {
						t.Error(err)
					}
				}()
			}
			wg.Wait()

			got, err := sink.Counts(context.Background())
			if err != nil {
				t.Fatal(err)
			}
			if got != (ingest.Counts{Records: n, Quarantined: int64(len(forgeries))}) {
				t.Fatalf("%+v, want %d records and %d quarantined", got, n, len(forgeries))
			}
			var redelivered int
			_ = sink.DB().QueryRow(`SELECT count(*) FROM backoffice_records WHERE deliveries > 1`).Scan(&redelivered)
			if redelivered < 300 {
				t.Fatalf("only %d records were delivered more than once; the test did not exercise re-delivery", redelivered)
			}
			var filed int
			_ = sink.DB().QueryRow(`SELECT count(*) FROM backoffice_records WHERE partner = 'p'`).Scan(&filed)
			if filed != n {
				t.Fatalf("%d of %d records filed under the receipts' partner", filed, n)
			}
			reasons := reasons(t, sink, topic)
			// A detached attestation does not say which side changed: a
			// forged signature and an altered record fail the same check.
			want := []string{"attestation signature does not verify", "attestation signature does not verify",
				"record differs from the record the receipt acknowledges", "the receipt acknowledges another record id",
				"receipt: receipt signature does not verify", "envelope lacks an attestation and its receipt names no record",
				"ce_subject does not name the partner of the receipt", "the receipt acknowledges another record id", "the receipt acknowledges another record id"}
			if len(reasons) != len(want) {
				t.Fatalf("quarantine reasons %q", reasons)
			}
			// The forgeries spread over partitions: compare as sorted lists.
			sort.Strings(reasons)
			sort.Strings(want)
			for i := range want {
				if !strings.HasPrefix(reasons[i], want[i]) {
					t.Fatalf("quarantine reasons %q, want %q", reasons, want)
				}
			}
		})
	}
}

// TestCaseMessagesIngested: the case-messages events the consumer reads
// beside the verified topic's are checked against the gateway's receipt and
// upserted once per sender and message id, as signed; forged ones are
// quarantined with the reason, and the notices' records are ingested as
// before.
func TestCaseMessagesIngested(t *testing.T) {
	for name, target := range sinks(t) {
		t.Run("ok/"+name, func(t *testing.T) {
			b, f, sink := setUp(t, target(t))
			const n, notices = 60, 20
			var msgs []kafka.Message
			for i := 0; i < n; i++ {
				msgs = append(msgs, f.caseMessage(t, i, ""))
			}
			msgs = append(msgs, msgs[:30]...) // published twice (at least once)
			forgeries := map[string]string{
				"other-key":    "case message receipt signature does not verify",
				"unsigned":     "case message without a receipt",
				"body-altered": "case message differs from what its receipt states",
				"other-case":   "key does not match the case id",
				"other-id":     "ce_id does not match the sender and message id",
			}
			msgs = append(msgs, forged(t, forgeries, n, f.caseMessage)...)
			msgs = append(msgs, f.messages(t, 0, notices)...)
			produce(t, b.Addr, msgs)

			c := consumer(b.Addr, "bo", sink, f)
			defer c.Reader.Close()
			p, err := c.Run(context.Background(), true, 2*time.Second)
			if err != nil {
				t.Fatal(err)
			}
			want := ingest.Counts{Records: notices, CaseMessages: n, Quarantined: int64(len(forgeries))}
			got, err := sink.Counts(context.Background())
			if err != nil {
				t.Fatal(err)
			}
			if got != want || p.CaseMessages != n+30 || p.Ingested != notices || p.Consumed != int64(len(msgs)) {
				t.Fatalf("tables %+v, progress %+v; want %+v, %d case messages consumed", got, p, want, n+30)
			}
			var redelivered int
			_ = sink.DB().QueryRow(`SELECT count(*) FROM backoffice_case_messages WHERE deliveries = 2`).Scan(&redelivered)
			if redelivered != 30 {
				t.Fatalf("%d case messages counted as delivered twice, want 30", redelivered)
			}
			// A row holds the message as signed.
			var op, caseID, requestID, body, rc string
			var omitted int
			if err := sink.DB().QueryRow(`SELECT operation, case_id, request_id, documents_omitted, body, receipt FROM backoffice_case_messages
				WHERE sender = 'TH:SSO' AND message_id = 'urn:uuid:m-4'`).Scan(&op, &caseID, &requestID, &omitted, &body, &rc); err != nil {
				t.Fatal(err)
			}
			st, err := receipt.VerifyCaseMessage(rc, f.signer.JWKS())
			sum := sha256.Sum256([]byte(body))
			if err != nil || op != "InformationReply" || caseID != "MY:PERKESO:XB-2026-000004" || requestID != "ri-4" || omitted != 1 ||
				st.BodySHA256 != hex.EncodeToString(sum[:]) || st.MessageID != "urn:uuid:m-4" {
				t.Fatalf("row %s %s %s %d %q (%v)", op, caseID, requestID, omitted, body, err)
			}
			quarantinedFor(t, sink, caseTopic, forgeries)
		})
	}
}

// TestDeliveryStatusesIngested: each delivery's row holds its latest
// verified status, and keeps it when older statuses are read again (a
// consumer group reading the topic from the start into the same tables);
// forged statuses are quarantined.
func TestDeliveryStatusesIngested(t *testing.T) {
	for name, target := range sinks(t) {
		t.Run("ok/"+name, func(t *testing.T) {
			b, f, sink := setUp(t, target(t))
			at := "2026-03-20T02:00:00Z"
			ni := events.DeliveryStatus{DeliveryID: 1, Key: "ni-001", Partner: "th-sso", MessageType: "NotifyInjury", State: "retrying", Attempts: 1, Error: "timeout", At: at}
			dec := events.DeliveryStatus{DeliveryID: 2, Key: "dec-001", Partner: "th-sso", MessageType: "NotifyDecision", CaseID: "TH:SSO:C-1", State: "retrying", Attempts: 1, At: at}
			var msgs []kafka.Message
			for i := 1; i <= 3; i++ {
				ni.Attempts, dec.Attempts = i, i
				if i == 3 {
					ni.State, ni.CaseID, ni.Error = "delivered", "TH:SSO:C-9", "" // the case the agency assigned
					dec.State, dec.Error = "dead-lettered", "soap fault client.case.unknown"
				}
				msgs = append(msgs, f.status(t, ni, ""), f.status(t, dec, ""))
			}
			refused := events.DeliveryStatus{DeliveryID: 3, Key: "dec-002", Partner: "th-sso", MessageType: "NotifyDecision", State: "retrying", Attempts: 1, At: at}
			forgeries := map[string]string{
				"unsigned":      "delivery status without a receipt",
				"state-altered": "delivery status differs from what its receipt states",
				"other-key":     "key does not match the delivery's key",
			}
			msgs = append(msgs, forged(t, forgeries, 0, func(t testing.TB, _ int, forge string) kafka.Message { return f.status(t, refused, forge) })...)
			produce(t, b.Addr, msgs)
			for _, group := range []string{"bo", "bo-again"} { // the second reads every status again
				c := consumer(b.Addr, group, sink, f)
				p, err := c.Run(context.Background(), true, 2*time.Second)
				c.Reader.Close()
				if err != nil || p.Statuses != 6 {
					t.Fatalf("%s: %+v: %v", group, p, err)
				}
			}
			got, err := sink.Counts(context.Background())
			if err != nil || got != (ingest.Counts{Deliveries: 2, Quarantined: int64(len(forgeries))}) {
				t.Fatalf("tables %+v: %v", got, err)
			}
			// The first status, written again after the latest (as a
			// consumer that lost its partition in a rebalance may): the row
			// keeps the latest.
			first := msgs[0]
			var part int
			_ = sink.DB().QueryRow(`SELECT kpartition FROM backoffice_deliveries WHERE delivery_key = 'ni-001'`).Scan(&part)
			row, verr := ingest.VerifyDeliveryStatus(first, f.signer.JWKS())
			row.Partition, row.Offset = part, 0
			if err := sink.Write(context.Background(), ingest.Batch{Statuses: []ingest.StatusRow{row}}); verr != nil || err != nil {
				t.Fatalf("%v %v", verr, err)
			}
			for _, want := range []events.DeliveryStatus{ni, dec} {
				var st events.DeliveryStatus
				if err := sink.DB().QueryRow(`SELECT delivery_id, partner, message_type, case_id, state, attempts, error, status_at, receipt
					FROM backoffice_deliveries WHERE delivery_key = '`+want.Key+`'`).Scan(&st.DeliveryID, &st.Partner, &st.MessageType, &st.CaseID,
					&st.State, &st.Attempts, &st.Error, &st.At, &st.Receipt); err != nil {
					t.Fatal(err)
				}
				st.Key = want.Key
				value, _ := json.Marshal(st) // the row's status and receipt, as an event
				if _, err := events.VerifyDeliveryStatus(value, f.signer.JWKS()); err != nil {
					t.Fatalf("row %+v: %v", st, err)
				}
				if st.Receipt = ""; st != want {
					t.Fatalf("row %+v, want the latest status %+v", st, want)
				}
			}
			quarantinedFor(t, sink, statusTopic, forgeries)
		})
	}
}

// TestDeliveryStatusOrder: a delivery's row keeps its latest status
// whatever order its statuses are read in (each case reads its two in
// order). In one partition the higher
// offset is the later; across partitions (the topic's partitions added
// between two statuses, the earlier read last) the later time, then the
// more attempts (earlier builds took whichever came last).
func TestDeliveryStatusOrder(t *testing.T) {
	const first, later = "2026-03-20T02:00:00Z", "2026-03-20T02:00:01Z"
	row := func(partition int, offset int64, state string, attempts int, at string) ingest.StatusRow {
		return ingest.StatusRow{DeliveryStatus: events.DeliveryStatus{DeliveryID: 1, Key: "ni-001", Partner: "th-sso", MessageType: "NotifyInjury",
			State: state, Attempts: attempts, At: at}, Topic: statusTopic, Partition: partition, Offset: offset}
	}
	retrying := row(0, 7, "retrying", 1, first)
	for name, target := range sinks(t) {
		for _, tc := range []struct {
			name      string
			read      []ingest.StatusRow
			wantState string
		}{
			{"ok/same-partition-higher-offset", []ingest.StatusRow{retrying, row(0, 8, "delivered", 2, later)}, "delivered"},
			{"ok/same-partition-lower-offset", []ingest.StatusRow{retrying, row(0, 6, "delivered", 2, later)}, "retrying"}, // the offset decides
			{"ok/other-partition-later", []ingest.StatusRow{retrying, row(2, 0, "delivered", 2, later)}, "delivered"},
			{"ok/other-partition-earlier", []ingest.StatusRow{row(2, 0, "delivered", 2, later), retrying}, "delivered"},
			{"ok/other-partition-same-second-more-attempts", []ingest.StatusRow{retrying, row(2, 0, "delivered", 2, first)}, "delivered"},
			{"ok/other-partition-same-second-fewer-attempts", []ingest.StatusRow{row(2, 0, "delivered", 2, first), retrying}, "delivered"},
		} {
			t.Run(tc.name+"/"+name, func(t *testing.T) {
				sink, err := ingest.OpenSink(target(t))
				if err != nil {
					t.Fatal(err)
				}
				defer sink.Close()
				for _, r := range tc.read {
					if err := sink.Write(context.Background(), ingest.Batch{Statuses: []ingest.StatusRow{r}}); err != nil {
						t.Fatal(err)
					}
				}
				var state string
				if err := sink.DB().QueryRow(`SELECT state FROM backoffice_deliveries WHERE delivery_key = 'ni-001'`).Scan(&state); err != nil {
					t.Fatal(err)
				}
				if state != tc.wantState {
					t.Fatalf("state %q, want %q", state, tc.wantState)
				}
			})
		}
	}
}

// TestWriteRetried: a batch the database refuses for a while is written
// once it takes it, the consumer still running; nothing is skipped. The
// lines of its failures and the one of its write at last share one
// correlation id of their own.
func TestWriteRetried(t *testing.T) {
	b, f, sink := setUp(t, filepath.Join(t.TempDir(), "bo.db"))
	msgs := f.messages(t, 0, 10)
	produce(t, b.Addr, msgs)
	if _, err := sink.DB().Exec(`CREATE TRIGGER down BEFORE INSERT ON backoffice_records BEGIN SELECT RAISE(ABORT, 'database down'); END`); err != nil {
		t.Fatal(err)
	}
	var logged gatewaytest.SyncBuffer
	c := consumer(b.Addr, "bo", sink, f)
	defer c.Reader.Close()
	c.Log = slog.New(slog.NewTextHandler(&logged, nil))
	done := make(chan ingest.Progress)
	go func() {
		p, err := c.Run(context.Background(), true, 2*time.Second)
		if err != nil {
			t.Error(err)
		}
		done <- p
	}()
	deadline := time.Now().Add(20 * time.Second)
	for strings.Count(logged.String(), "database down") < 2 && time.Now().Before(deadline) {
		time.Sleep(50 * time.Millisecond)
	}
	if _, err := sink.DB().Exec(`DROP TRIGGER down`); err != nil {
		t.Fatal(err)
	}
	p := <-done
	got, _ := sink.Counts(context.Background())
	out := logged.String()
	if p.Ingested != 10 || got.Records != 10 || !strings.Contains(out, "back-office write failed; trying again") {
		t.Fatalf("%+v, tables %+v; log:\n%s", p, got, out)
	}
	ids := regexp.MustCompile(`msg="back-office write [^"]*" correlation_id=([0-9a-f]{32})`).FindAllStringSubmatch(out, -1)
	if len(ids) < 3 || !strings.Contains(out, `msg="back-office write succeeded; ingesting again" correlation_id=`+ids[0][1]) {
		t.Fatalf("the failures' and the success's lines: ids %q, want one for all, the last the success's:\n%s", ids, out)
	}
	for _, id := range ids {
		if id[1] != ids[0][1] {
			t.Fatalf("the failures' and the success's lines: ids %q, want one for all:\n%s", ids, out)
		}
	}
}

// TestRejectionsIngested: rejected events are checked against the gateway's
// receipt and inserted once per correlation id, problems included; forged
// ones are quarantined with the reason.
func TestRejectionsIngested(t *testing.T) {
	for name, target := range sinks(t) {
		t.Run("ok/"+name, func(t *testing.T) {
			b, f, sink := setUp(t, target(t))
			const n = 20
			var msgs []kafka.Message
			for i := 0; i < n; i++ {
				msgs = append(msgs, f.rejection(t, i, ""))
			}
			msgs = append(msgs, msgs[:5]...) // published twice (at least once)
			forgeries := map[string]string{
				"unsigned":        "rejection without a receipt",
				"problem-dropped": "rejection differs from what its receipt states",
				"other-partner":   "key does not match the partner",
				"other-id":        "ce_id does not match the correlation id",
			}
			msgs = append(msgs, forged(t, forgeries, n, f.rejection)...)
			produce(t, b.Addr, msgs)
			c := consumer(b.Addr, "bo", sink, f)
			defer c.Reader.Close()
			p, err := c.Run(context.Background(), true, 2*time.Second)
			if err != nil || p.Rejections != n+5 {
				t.Fatalf("%+v: %v", p, err)
			}
			got, err := sink.Counts(context.Background())
			if err != nil || got != (ingest.Counts{Rejections: n, Quarantined: int64(len(forgeries))}) {
				t.Fatalf("tables %+v: %v", got, err)
			}
			var partner, problems string
			var status int
			if err := sink.DB().QueryRow(`SELECT partner, status, problems FROM backoffice_rejections WHERE correlation_id = 'c-3'`).Scan(&partner, &status, &problems); err != nil ||
				partner != "sg-beta" || status != 422 || problems != `[{"pointer":"/injury/occurredAt","code":"format"},{"pointer":"/claims/3","code":"required"}]` {
				t.Fatalf("row %s %d %s: %v", partner, status, problems, err)
			}
			quarantinedFor(t, sink, rejectedTopic, forgeries)
		})
	}
}

// TestBatchBytes: a batch stops growing once its values reach BatchBytes,
// so large events are not held 500 at a time: a bound of three messages'
// bytes (one message of about 300 KB, published 12 times) makes batches of
// three at most.
func TestBatchBytes(t *testing.T) {
	b, f, sink := setUp(t, filepath.Join(t.TempDir(), "bo.db"))
	const n = 12
	m := f.caseMessage(t, 0, "large")
	produce(t, b.Addr, slices.Repeat([]kafka.Message{m}, n))
	c := consumer(b.Addr, "bo", sink, f)
	defer c.Reader.Close()
	c.BatchBytes = 3 * (len(m.Key) + len(m.Value)) // reached exactly by the third
	var sizes []int64
	var last int64
	c.OnBatch = func(p ingest.Progress) {
		sizes = append(sizes, p.Consumed-last)
		last = p.Consumed
	}
	p, err := c.Run(context.Background(), true, 2*time.Second)
	if err != nil || p.Consumed != n {
		t.Fatalf("%+v: %v", p, err)
	}
	if slices.Max(sizes) > 3 {
		t.Fatalf("batches of %v messages, want at most the 3 whose bytes reach the bound", sizes)
	}
}

// TestProgressLag: the progress each batch reports says how far behind the
// topics' ends the consumer is (what a catch-up run's progress line shows):
// never more than is left to read, and nothing once it has read it all.
// No batch is larger than the consumer's Batch.
func TestProgressLag(t *testing.T) {
	b, f, sink := setUp(t, filepath.Join(t.TempDir(), "bo.db"))
	const n = 250
	var msgs []kafka.Message
	for i := range n {
		msgs = append(msgs, f.message(t, i, ""))
	}
	produce(t, b.Addr, msgs)
	c := consumer(b.Addr, "bo", sink, f, topic)
	defer c.Reader.Close()
	behind, last := false, int64(0)
	c.OnBatch = func(p ingest.Progress) {
		if p.Lag < 0 || p.Consumed+p.Lag > n {
			t.Errorf("after %d consumed, lag %d: more than the %d left", p.Consumed, p.Lag, n-p.Consumed)
		}
		if p.Consumed-last > int64(c.Batch) {
			t.Errorf("a batch of %d, over the consumer's %d", p.Consumed-last, c.Batch)
		}
		behind, last = behind || p.Lag > 0, p.Consumed
	}
	p, err := c.Run(context.Background(), true, 2*time.Second)
	if err != nil || p.Consumed != n || p.Ingested != n {
		t.Fatalf("%+v: %v", p, err)
	}
	if p.Lag != 0 || !behind {
		t.Fatalf("lag %d at the end (want 0), behind on the way: %v", p.Lag, behind)
	}
}

// TestCatchUpWaitsIdle: a catch-up run ends once no message has come for
// idle, not at its first empty fetch: events published a second after it
// started, on topics empty until then, are ingested by it.
func TestCatchUpWaitsIdle(t *testing.T) {
	b, f, sink := setUp(t, filepath.Join(t.TempDir(), "bo.db"))
	const n = 5
	c := consumer(b.Addr, "bo", sink, f, topic)
	defer c.Reader.Close()
	var msgs []kafka.Message
	for i := range n {
		msgs = append(msgs, f.message(t, i, ""))
	}
	produced := make(chan error, 1)
	go func() {
		time.Sleep(time.Second)
		w := &kafka.Writer{Addr: kafka.TCP(b.Addr), RequiredAcks: kafka.RequireAll, BatchTimeout: 2 * time.Millisecond}
		defer w.Close()
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		produced <- w.WriteMessages(ctx, msgs...)
	}()
	p, err := c.Run(context.Background(), true, 5*time.Second)
	if perr := <-produced; perr != nil {
		t.Fatal(perr)
	}
	if err != nil || p.Ingested != n {
		t.Fatalf("%+v: %v; want the %d records published a second in", p, err, n)
	}
}

// BenchmarkIngest measures records/s from the topic into the back-office table.
func BenchmarkIngest(b *testing.B) {
	for _, name := range []string{"sqlite", "postgres"} {
		b.Run(name, func(b *testing.B) {
			var target string
			if name == "sqlite" {
				target = filepath.Join(b.TempDir(), "bo.db")
			} else {
				target = pgtest.DSN(b)
			}
			br := kafkatest.Broker(b, "", topic, caseTopic, statusTopic, rejectedTopic)
			f := newFixture(b)
			const n = 20000
			var msgs []kafka.Message
			for i := 0; i < n; i++ {
				msgs = append(msgs, f.message(b, i, ""))
			}
			produce(b, br.Addr, msgs)
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				sink, err := ingest.OpenSink(target)
				if err != nil {
					b.Fatal(err)
				}
				c := consumer(br.Addr, fmt.Sprintf("bench-%d", i), sink, f)
				c.Batch = 500
				p, err := c.Run(context.Background(), true, 500*time.Millisecond)
				if err != nil || p.Consumed != n {
					b.Fatalf("%v: consumed %d", err, p.Consumed)
				}
				c.Reader.Close()
				sink.Close()
			}
			b.ReportMetric(float64(n*b.N)/b.Elapsed().Seconds(), "records/s")
		})
	}
}

// TestRotatedKeyIngested: a consumer started before the gateway's receipt
// key was rotated reads its JWKS file again on meeting the new key, and
// ingests the records signed with it (they were all quarantined until a
// restart); a receipt by a key the file never held is still quarantined.
func TestRotatedKeyIngested(t *testing.T) {
	b := kafkatest.Broker(t, "", topic, caseTopic, statusTopic, rejectedTopic)
	dir := t.TempDir()
	keyFile, public := filepath.Join(dir, "receipt.jwk.json"), filepath.Join(dir, "gateway-jwks.json")
	if err := receipt.GenerateKeyFile(keyFile, "gw-1"); err != nil {
		t.Fatal(err)
	}
	if err := receipt.WritePublicJWKS(keyFile, public); err != nil {
		t.Fatal(err)
	}
	readPublic := func() (jwk.Set, error) {
		b, err := os.ReadFile(public)
		if err != nil {
			return nil, err
		}
		return jwk.Parse(b)
	}
	before, err := readPublic() // what the consumer holds: the key before the rotation
	if err != nil {
		t.Fatal(err)
	}
	f := newFixture(t)
	f.signer, _ = receipt.LoadSigner(keyFile)
	msgs := []kafka.Message{f.message(t, 0, "receipt-bound")}
	if _, _, err := receipt.RotateKeyFile(keyFile); err != nil {
		t.Fatal(err)
	}
	if err := receipt.WritePublicJWKS(keyFile, public); err != nil { // as certs rotate-receipt-key does
		t.Fatal(err)
	}
	f.signer, _ = receipt.LoadSigner(keyFile)
	f.b.Receipts = f.signer // the case message's and the status's receipts too
	msgs = append(msgs, f.message(t, 1, "receipt-bound"), f.caseMessage(t, 1, ""), f.rejection(t, 1, ""),
		f.status(t, events.DeliveryStatus{DeliveryID: 1, Key: "ni-001", Partner: "th-sso", MessageType: "NotifyInjury", State: "delivered", Attempts: 1, At: "x"}, ""))
	f.signer = gatewaytest.NewSigner(t, "gw-stranger")
	msgs = append(msgs, f.message(t, 2, "receipt-bound"))
	produce(t, b.Addr, msgs)

	sink, err := ingest.OpenSink(filepath.Join(dir, "backoffice.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer sink.Close()
	c := consumer(b.Addr, "bo", sink, f)
	defer c.Reader.Close()
	c.JWKS, c.ReloadJWKS = before, readPublic
	if _, err := c.Run(context.Background(), true, 2*time.Second); err != nil {
		t.Fatal(err)
	}
	got, err := sink.Counts(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	var reason string
	_ = sink.DB().QueryRow(`SELECT reason FROM backoffice_quarantine`).Scan(&reason)
	if got != (ingest.Counts{Records: 2, CaseMessages: 1, Deliveries: 1, Rejections: 1, Quarantined: 1}) || !strings.Contains(reason, `no key "gw-stranger"`) {
		t.Fatalf("%+v (%q), want 2 records, a case message, a delivery, a rejection and the stranger's quarantined", got, reason)
	}
	// Each kind reads the file again by itself (above, the new key's
	// record may have done it for all in its batch).
	for _, only := range []string{caseTopic, statusTopic, rejectedTopic} {
		sink, err := ingest.OpenSink(filepath.Join(t.TempDir(), "bo.db"))
		if err != nil {
			t.Fatal(err)
		}
		c := consumer(b.Addr, "bo-"+only, sink, f, only)
		c.JWKS, c.ReloadJWKS = before, readPublic
		_, err = c.Run(context.Background(), true, 2*time.Second)
		c.Reader.Close()
		got, _ := sink.Counts(context.Background())
		sink.Close()
		if err != nil || got.Quarantined != 0 || got.CaseMessages+got.Deliveries+got.Rejections != 1 {
			t.Fatalf("%s alone: %+v %v", only, got, err)
		}
	}
}

// TestSinkFilePrivate: the back office's SQLite file, which holds the
// records (names, identity numbers, medical text), is its owner's alone;
// SQLite made it readable by all.
func TestSinkFilePrivate(t *testing.T) {
	path := filepath.Join(t.TempDir(), "backoffice.db")
	sink, err := ingest.OpenSink(path)
	if err != nil {
		t.Fatal(err)
	}
	defer sink.Close()
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm()&0o077 != 0 {
		t.Fatalf("mode %v, want none for group and others", fi.Mode().Perm())
	}
}

// TestDefaults: a consumer given no batch size, batch bytes, linger or
// logger runs with the documented ones (500 messages, DefaultBatchBytes,
// 20 ms, slog's default), and so does a requeue of the quarantine.
func TestDefaults(t *testing.T) {
	b, f, sink := setUp(t, filepath.Join(t.TempDir(), "bo.db"))
	c := consumer(b.Addr, "bo", sink, f, topic)
	defer c.Reader.Close()
	c.Batch, c.Log = 0, nil
	if _, err := c.Run(context.Background(), true, 100*time.Millisecond); err != nil {
		t.Fatal(err)
	}
	if c.Batch != 500 || c.BatchBytes != ingest.DefaultBatchBytes || c.Linger != 20*time.Millisecond || c.Log == nil {
		t.Fatalf("a run's defaults: batch %d, %d bytes, linger %s, log %v", c.Batch, c.BatchBytes, c.Linger, c.Log)
	}
	r := &ingest.Consumer{Sink: sink, JWKS: f.signer.JWKS()}
	if _, err := r.Requeue(context.Background(), nil); err != nil {
		t.Fatal(err)
	}
	if r.Batch != 500 || r.Log == nil {
		t.Fatalf("a requeue's defaults: batch %d, log %v", r.Batch, r.Log)
	}
}
