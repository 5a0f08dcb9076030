// Package ingest is Perkeso's back-office side of the topics the gateway
// publishes (verified notices, case messages, delivery statuses,
// rejections): a consumer group that re-verifies each event's receipt
// against the gateway's JWKS, upserts it (a record by record id, a case
// message by sender and message id, a delivery's latest status by its key,
// a rejection by correlation id), and commits offsets only after the
// database transaction committed. Events that fail verification go to a
// quarantine table with the reason; nothing unverified reaches the other
// tables.
package ingest

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"runtime"
	"slices"
	"sync"
	"time"

	"github.com/lestrrat-go/jwx/v3/jwk"
	"github.com/segmentio/kafka-go"

	"github.com/perkeso/jambatan/cmd/gateway/internal/correlation"
	"github.com/perkeso/jambatan/cmd/gateway/internal/events"
	"github.com/perkeso/jambatan/cmd/gateway/internal/kafkaclient"
	"github.com/perkeso/jambatan/cmd/gateway/internal/receipt"
	"github.com/perkeso/jambatan/cmd/gateway/internal/retry"
	"github.com/perkeso/jambatan/schema"
)

// Consumer ingests the verified topic, and the case-messages,
// delivery-status and rejected topics when its Reader reads them too.
type Consumer struct {
	Reader *kafka.Reader
	Sink   *Sink
	// CaseTopic names the case-messages topic: its events are checked as
	// case messages (VerifyCaseMessage); StatusTopic the delivery-status
	// topic (VerifyDeliveryStatus); RejectedTopic the rejected topic
	// (VerifyRejected). Every other topic's are checked as verified
	// notices (Verify).
	CaseTopic, StatusTopic, RejectedTopic string
	JWKS                                  jwk.Set
	// ReloadJWKS, when set, reads the gateway's JWKS again: called when a
	// batch holds a receipt by a key JWKS lacks, before any is quarantined.
	ReloadJWKS func() (jwk.Set, error)
	Batch      int // messages per transaction (default 500)
	// BatchBytes bounds the values a batch holds (default 16 MiB): an
	// event may be up to a broker's message size (an agency's reply with
	// its documents, a notice with a large document), and 500 of them
	// held at once would be half a gigabyte.
	BatchBytes int
	Linger     time.Duration // how long to wait to fill a batch (default 20ms)
	Log        *slog.Logger
	OnBatch    func(Progress) // called after each committed batch
}

// Progress counts what the consumer did.
type Progress struct {
	Consumed     int64
	Ingested     int64 // records
	CaseMessages int64 // case messages ingested
	Statuses     int64 // delivery statuses ingested
	Rejections   int64 // rejections ingested
	Quarantined  int64
	Lag          int64 // messages behind the high-water marks of the partitions seen
	Started      time.Time
}

// Rate is events consumed per second since start.
func (p Progress) Rate() float64 {
	s := time.Since(p.Started).Seconds()
	if s <= 0 {
		return 0
	}
	return float64(p.Consumed) / s
}

// Run consumes until ctx is done or, with untilCaughtUp, until no message
// arrived for idle (every assigned partition is at its end).
//
// Without untilCaughtUp it rides out the cluster's absence (a broker
// restarted, a rolling upgrade): a failed fetch is logged and tried again
// after a pause growing to 5 s, what it fetched before failing written
// first, and a failed offset commit is logged and its offsets are owed:
// committed with the next batch's, or alone once a fetch finds nothing,
// or as the run ends (the rows are written; a record read again is a
// repeat the upsert absorbs, but a batch left uncommitted was read again
// by every later run until another batch came). Earlier builds returned
// the error, and the back office stopped ingesting until someone started
// it again. With untilCaughtUp (a catch-up run, tests) an error still
// ends the run.
func (c *Consumer) Run(ctx context.Context, untilCaughtUp bool, idle time.Duration) (Progress, error) {
	if c.Batch <= 0 {
		c.Batch = 500
	}
	if c.BatchBytes <= 0 {
		c.BatchBytes = DefaultBatchBytes
	}
	if c.Linger <= 0 {
		c.Linger = 20 * time.Millisecond
	}
	if c.Log == nil {
		c.Log = slog.Default()
	}
	p := Progress{Started: time.Now()}
	lag := map[partition]int64{}
	lastMsg := time.Now()
	var fetches fetchRetry
	var owed []kafka.Message // written, their offsets' commit failed
	defer func() { c.settle(owed) }()
	for {
		msgs, err := c.fetchAfter(ctx, untilCaughtUp, &fetches)
		if err != nil || ctx.Err() != nil {
			return p, err // what it fetched is not committed: read again next time
		}
		if len(msgs) == 0 {
			owed, _ = c.commitOwed(ctx, owed) // logged when it first failed; tried again at the next idle fetch
			// Partitions with lag would have answered the fetch; the lag
			// figure itself may be stale after a rebalance moved a partition.
			if untilCaughtUp && time.Since(lastMsg) >= idle {
				return p, nil
			}
			continue
		}
		lastMsg = time.Now()
		batch, _ := c.sort(msgs)
		for _, q := range batch.Quarantined {
			c.Log.Warn("event quarantined", "topic", q.Topic, "partition", q.Partition, "offset", q.Offset, "reason", q.Reason)
		}
		if !c.write(ctx, batch) {
			return p, nil // ended before the batch was written: nothing of it committed
		}
		// Offsets are committed only once the rows are durable: a crash in
		// between re-delivers, and the upsert absorbs the repeat.
		err = c.Reader.CommitMessages(ctx, append(owed, msgs...)...)
		if err == nil {
			owed = nil
		} else {
			owed = kafkaclient.LastOfEach(append(owed, msgs...)) // settle's, if the run ends first
		}
		p.add(msgs, batch, lag)
		if c.OnBatch != nil {
			c.OnBatch(p)
		}
		switch {
		case err == nil:
		case untilCaughtUp:
			return p, fmt.Errorf("commit offsets: %w", err)
		case ctx.Err() != nil:
			return p, nil // stopped while committing: settle commits them
		default:
			c.Log.Warn("committing offsets failed; they are committed with the next batch's, or alone when none comes", "err", err)
		}
	}
}

// commitOwed commits the offsets a failed commit left owed, within
// commitTimeout, and answers what is still owed and why.
func (c *Consumer) commitOwed(ctx context.Context, owed []kafka.Message) ([]kafka.Message, error) {
	if len(owed) == 0 {
		return nil, nil
	}
	// Bounded: with the broker away the commit waits for the group, and
	// the loop's failing fetches are what is logged meanwhile.
	cctx, cancel := context.WithTimeout(ctx, commitTimeout)
	defer cancel()
	if err := c.Reader.CommitMessages(cctx, owed...); err != nil {
		return owed, err
	}
	c.Log.Info("owed offsets committed", "partitions", len(owed))
	return nil, nil
}

// settle commits what is still owed as the run ends, on a context of its
// own: the run's may be done.
func (c *Consumer) settle(owed []kafka.Message) {
	if left, err := c.commitOwed(context.Background(), owed); err != nil {
		c.Log.Warn("owed offsets not committed as the run ended; their records are read again by the next", "partitions", len(left), "err", err)
	}
}

// commitTimeout bounds a commit of owed offsets.
const commitTimeout = 5 * time.Second

// partition names a topic's partition, for the lag.
type partition struct {
	topic string
	n     int
}

// add counts a batch written from msgs, and the partitions' lag.
func (p *Progress) add(msgs []kafka.Message, b Batch, lag map[partition]int64) {
	for _, m := range msgs {
		lag[partition{m.Topic, m.Partition}] = m.HighWaterMark - m.Offset - 1
	}
	p.Lag = 0
	for _, l := range lag {
		p.Lag += l
	}
	p.Consumed += int64(len(msgs))
	p.Ingested += int64(len(b.Records))
	p.CaseMessages += int64(len(b.CaseMessages))
	p.Statuses += int64(len(b.Statuses))
	p.Rejections += int64(len(b.Rejections))
	p.Quarantined += int64(len(b.Quarantined))
}

// fetchRetry is what a running consumer's failed fetches leave for the
// next: the pause before it, and the outage whose id their lines share.
type fetchRetry struct {
	pauses retry.Pauses
	outage correlation.Outage
}

// fetchAfter is fetch after r's pause, which a failed fetch lengthens (to
// 5 s) and a successful one ends. A catch-up run returns the error; a
// running consumer logs it and returns what it fetched before failing.
func (c *Consumer) fetchAfter(ctx context.Context, untilCaughtUp bool, r *fetchRetry) ([]kafka.Message, error) {
	if pause := r.pauses.Last(); pause > 0 {
		select {
		case <-ctx.Done():
			return nil, nil
		case <-time.After(pause):
		}
	}
	msgs, err := c.fetch(ctx, untilCaughtUp)
	switch {
	case err == nil:
		r.pauses.Reset()
		if outage := r.outage.End(); outage != "" {
			c.Log.Info("reading from Kafka again", correlation.LogKey, outage)
		}
	case ctx.Err() != nil:
		return nil, nil
	case untilCaughtUp:
		return nil, err
	default:
		c.Log.Error("reading from Kafka failed; trying again", correlation.LogKey, r.outage.ID(), "err", err, "pause", r.pauses.Next())
	}
	return msgs, nil
}

// sort verifies msgs and files each in b: a row of its table, or the
// quarantine with its reason; passed[i] tells which for msgs[i].
func (c *Consumer) sort(msgs []kafka.Message) (b Batch, passed []bool) {
	passed = make([]bool, len(msgs))
	for i, v := range c.verifyAll(msgs) {
		if passed[i] = v.reason == ""; passed[i] {
			v.add(&b)
			continue
		}
		m := msgs[i]
		b.Quarantined = append(b.Quarantined, Quarantined{Topic: m.Topic, Partition: m.Partition, Offset: m.Offset, Key: m.Key,
			Reason: v.reason, Value: m.Value, Headers: m.Headers})
	}
	return b, passed
}

// RequeueReport counts what Requeue did.
type RequeueReport struct {
	Released int64 // verified this time: filed in their tables, out of the quarantine
	Still    int64 // refused again, the reason brought up to date
	// WithoutBytes were quarantined by builds that kept their text only:
	// reading them again takes resetting the consumer group's offsets.
	WithoutBytes int64
}

// Requeue verifies the quarantined messages again, as Run would with the
// JWKS as it is now (its topics name their kinds), a batch at a time:
// those that pass are filed as Run files them and leave the quarantine, in
// one transaction a batch. A back office that quarantined what a receipt
// key it did not have yet signed (the gateway's new key, not yet copied)
// gets those messages back this way, past Kafka's retention too. progress,
// when set, hears after each batch.
func (c *Consumer) Requeue(ctx context.Context, progress func(RequeueReport)) (RequeueReport, error) {
	var r RequeueReport
	if c.Batch <= 0 {
		c.Batch = 500
	}
	if c.Log == nil {
		c.Log = slog.Default()
	}
	var after *Quarantined
	for {
		qs, err := c.Sink.Quarantine(ctx, after, c.Batch)
		if err != nil || len(qs) == 0 {
			if err == nil {
				r.WithoutBytes, err = c.Sink.QuarantinedWithoutBytes(ctx)
			}
			return r, err
		}
		after = &qs[len(qs)-1]
		msgs := make([]kafka.Message, len(qs))
		for i, q := range qs {
			msgs[i] = kafka.Message{Topic: q.Topic, Partition: q.Partition, Offset: q.Offset, Key: q.Key, Value: q.Value, Headers: q.Headers}
		}
		batch, passed := c.sort(msgs)
		var released []Quarantined
		for i, ok := range passed {
			if ok {
				released = append(released, qs[i])
			}
		}
		still := batch.Quarantined // with their reasons now
		batch.Quarantined = nil
		if err := c.Sink.Release(ctx, batch, released, still); err != nil {
			return r, err
		}
		r.Released += int64(len(released))
		r.Still += int64(len(still))
		if progress != nil {
			progress(r)
		}
	}
}

// write writes the batch, trying again with a growing pause (to 5 s)
// while the database refuses it: a database restarting or failing over
// holds ingestion up rather than ending it (earlier builds exited). It
// reports false when ctx ended first, with nothing of the batch committed,
// offsets included.
func (c *Consumer) write(ctx context.Context, b Batch) bool {
	return retry.Until(ctx, c.Log, writeLines, func() error { return c.Sink.Write(ctx, b) })
}

// writeLines are the lines of a batch's failures to be written.
var writeLines = retry.Lines{Failed: "back-office write failed; trying again", Succeeded: "back-office write succeeded; ingesting again"}

type verified struct {
	add        func(*Batch) // files the row of a verified event in a batch
	reason     string       // why it is quarantined
	unknownKey bool
}

// verify checks m as an event of its topic.
func (c *Consumer) verify(m kafka.Message, set jwk.Set) verified {
	var add func(*Batch)
	var err error
	switch m.Topic {
	case c.CaseTopic:
		var row CaseRow
		row, err = VerifyCaseMessage(m, set)
		add = func(b *Batch) { b.CaseMessages = append(b.CaseMessages, row) }
	case c.StatusTopic:
		var row StatusRow
		row, err = VerifyDeliveryStatus(m, set)
		add = func(b *Batch) { b.Statuses = append(b.Statuses, row) }
	case c.RejectedTopic:
		var row RejectionRow
		row, err = VerifyRejected(m, set)
		add = func(b *Batch) { b.Rejections = append(b.Rejections, row) }
	default:
		var row Row
		row, err = Verify(m, set)
		add = func(b *Batch) { b.Records = append(b.Records, row) }
	}
	if err != nil {
		return verified{reason: err.Error(), unknownKey: isUnknownKey(err)}
	}
	return verified{add: add}
}

// verifyAll verifies a batch on every core; signature checks dominate. A
// receipt by a key the JWKS lacks makes it read the JWKS again
// (ReloadJWKS) and verify the batch once more: after a rotation of the
// gateway's receipt key, the records it signs would otherwise all be
// quarantined until a restart.
func (c *Consumer) verifyAll(msgs []kafka.Message) []verified {
	out := c.verifyWith(msgs, c.JWKS)
	if c.ReloadJWKS == nil || !slices.ContainsFunc(out, func(v verified) bool { return v.unknownKey }) {
		return out
	}
	set, err := c.ReloadJWKS()
	if err != nil {
		c.Log.Warn("a receipt names a key the gateway JWKS lacks, and reading it again failed", "err", err)
		return out
	}
	c.JWKS = set
	return c.verifyWith(msgs, set)
}

func (c *Consumer) verifyWith(msgs []kafka.Message, set jwk.Set) []verified {
	out := make([]verified, len(msgs))
	workers := min(runtime.GOMAXPROCS(0), len(msgs))
	var wg sync.WaitGroup
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func(w int) {
			defer wg.Done()
			for i := w; i < len(msgs); i += workers {
				out[i] = c.verify(msgs[i], set)
			}
		}(w)
	}
	wg.Wait()
	return out
}

// DefaultBatchBytes is Consumer.BatchBytes unless set.
const DefaultBatchBytes = 16 << 20

// fetch gathers up to Batch messages, and stops once their values reach
// BatchBytes, waiting at most Linger after the first.
func (c *Consumer) fetch(ctx context.Context, short bool) ([]kafka.Message, error) {
	var msgs []kafka.Message
	wait := time.Second
	if short {
		wait = 250 * time.Millisecond
	}
	deadline := time.Now().Add(wait)
	size := 0
	for len(msgs) < c.Batch && size < c.BatchBytes {
		fctx, cancel := context.WithDeadline(ctx, deadline)
		m, err := c.Reader.FetchMessage(fctx)
		cancel()
		if err != nil {
			if errors.Is(err, context.DeadlineExceeded) && ctx.Err() == nil {
				return msgs, nil
			}
			return msgs, err
		}
		msgs = append(msgs, m)
		size += len(m.Key) + len(m.Value)
		if len(msgs) == 1 {
			deadline = time.Now().Add(c.Linger)
		}
	}
	return msgs, nil
}

// Verify checks one verified-topic message: the envelope, the gateway's
// receipt, its signed statement over the exact record bytes (the receipt's
// recordSha256, or an attestation), the record's schema and the CloudEvents
// id. It returns the row to upsert, or why it is quarantined.
func Verify(m kafka.Message, set jwk.Set) (Row, error) {
	var env events.Verified
	dec := json.NewDecoder(bytes.NewReader(m.Value))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&env); err != nil {
		return Row{}, fmt.Errorf("envelope is not the verified-event JSON: %w", err)
	}
	if len(env.Record) == 0 || env.Receipt == "" {
		return Row{}, errors.New("envelope lacks record or receipt")
	}
	payload, err := receipt.VerifyPayload(env.Receipt, set)
	if err != nil {
		return Row{}, fmt.Errorf("receipt: %w", err)
	}
	// A notice's or a claim's receipt, or (in an earlier build's insurer
	// event) the batch's, which names its claims' records in results.
	var rc struct {
		receipt.Receipt
		Results []receipt.ClaimResult `json:"results"`
	}
	if err := json.Unmarshal(payload, &rc); err != nil {
		return Row{}, fmt.Errorf("receipt: %w", err)
	}
	attested := []byte(env.Record)
	if env.Attestation != "" {
		if attested, err = receipt.VerifyAttestation(env.Attestation, env.Record, set); err != nil {
			return Row{}, err
		}
		var a, b bytes.Buffer
		if json.Compact(&a, attested) != nil || json.Compact(&b, env.Record) != nil || !bytes.Equal(a.Bytes(), b.Bytes()) {
			return Row{}, errors.New("record differs from the attested record")
		}
	} else if rc.RecordSHA256 == "" {
		return Row{}, errors.New("envelope lacks an attestation and its receipt names no record")
	} else if rc.RecordSHA256 != receipt.Digest(env.Record) {
		return Row{}, errors.New("record differs from the record the receipt acknowledges")
	}
	var rec schema.Record
	if err := json.Unmarshal(attested, &rec); err != nil {
		return Row{}, errors.New("attested record is not a canonical record")
	}
	if err := schema.ValidateJSON(schema.CanonicalSchemaFile, attested); err != nil {
		return Row{}, errors.New("attested record fails the canonical schema")
	}
	if header(m, "ce_id") != rec.RecordID || string(m.Key) != rec.RecordID {
		return Row{}, errors.New("ce_id or key does not match the record id")
	}
	// An attested event's receipt must acknowledge its record too: both
	// are the gateway's, and one taken from another event would file the
	// record under that event's partner.
	if !slices.ContainsFunc(rc.Results, func(r receipt.ClaimResult) bool { return r.RecordID == rec.RecordID && r.Status != "REJECTED" }) &&
		rc.RecordID != rec.RecordID {
		return Row{}, errors.New("the receipt acknowledges another record id")
	}
	// The partner a row is filed under is the one the gateway signed for
	// in the receipt; the ce_subject header, which nothing signs, must
	// agree with it.
	if header(m, "ce_subject") != rc.PartnerID {
		return Row{}, errors.New("ce_subject does not name the partner of the receipt")
	}
	return Row{RecordID: rec.RecordID, SourceKey: rec.SourceKey, Partner: rc.PartnerID, Record: attested, Receipt: env.Receipt,
		Attestation: env.Attestation, Topic: m.Topic, Partition: m.Partition, Offset: m.Offset}, nil
}

// VerifyCaseMessage checks one case-messages event: the gateway's receipt
// states every member and the body's SHA-256 (events.VerifyCaseMessage),
// the key is the case id and ce_id the sender's message id. It returns the
// row to upsert, or why it is quarantined.
func VerifyCaseMessage(m kafka.Message, set jwk.Set) (CaseRow, error) {
	c, err := events.VerifyCaseMessage(m.Value, set)
	if err != nil {
		return CaseRow{}, err
	}
	if string(m.Key) != c.CaseID {
		return CaseRow{}, errors.New("key does not match the case id")
	}
	if header(m, "ce_id") != c.EventID() {
		return CaseRow{}, errors.New("ce_id does not match the sender and message id")
	}
	return CaseRow{CaseMessage: *c, Topic: m.Topic, Partition: m.Partition, Offset: m.Offset}, nil
}

// VerifyDeliveryStatus checks one delivery-status event: the gateway's
// receipt states every member (events.VerifyDeliveryStatus), and the key is
// the delivery's. It returns the row to upsert, or why it is
// quarantined.
func VerifyDeliveryStatus(m kafka.Message, set jwk.Set) (StatusRow, error) {
	st, err := events.VerifyDeliveryStatus(m.Value, set)
	if err != nil {
		return StatusRow{}, err
	}
	if string(m.Key) != st.Key {
		return StatusRow{}, errors.New("key does not match the delivery's key")
	}
	return StatusRow{DeliveryStatus: *st, Topic: m.Topic, Partition: m.Partition, Offset: m.Offset}, nil
}

// VerifyRejected checks one rejected-topic event: the gateway's receipt
// states every member (events.VerifyRejected), the key is the partner and
// ce_id the correlation id. It returns the row to insert, or why it is
// quarantined.
func VerifyRejected(m kafka.Message, set jwk.Set) (RejectionRow, error) {
	r, err := events.VerifyRejected(m.Value, set)
	if err != nil {
		return RejectionRow{}, err
	}
	if string(m.Key) != r.Partner {
		return RejectionRow{}, errors.New("key does not match the partner")
	}
	if header(m, "ce_id") != r.CorrelationID {
		return RejectionRow{}, errors.New("ce_id does not match the correlation id")
	}
	return RejectionRow{Rejected: *r, Topic: m.Topic, Partition: m.Partition, Offset: m.Offset}, nil
}

// isUnknownKey tells whether err is a signature by a key the set lacks.
func isUnknownKey(err error) bool {
	var uk *receipt.UnknownKeyError
	return errors.As(err, &uk)
}

// header is the value of m's header key (the last, when repeated), "" when
// it has none.
func header(m kafka.Message, key string) string {
	v := ""
	for _, h := range m.Headers {
		if h.Key == key {
			v = string(h.Value)
		}
	}
	return v
}
