package outbound

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/lestrrat-go/jwx/v3/jwk"
	"github.com/segmentio/kafka-go"

	"github.com/perkeso/jambatan/cmd/gateway/internal/correlation"
	"github.com/perkeso/jambatan/cmd/gateway/internal/jwsin"
	"github.com/perkeso/jambatan/cmd/gateway/internal/kafkaclient"
	"github.com/perkeso/jambatan/cmd/gateway/internal/partner"
	"github.com/perkeso/jambatan/cmd/gateway/internal/retry"
	"github.com/perkeso/jambatan/cmd/gateway/internal/sqldialect"
	"github.com/perkeso/jambatan/cmd/gateway/internal/store"
)

// Consumer queues the outbound requests of perkeso.outbound.v1: each is
// checked (its signature, with RequestKeys), validated and put in the
// durable queue, and its offset committed only then.
// A request that cannot be delivered (unknown partner, bad payload) is logged
// and stored as a dead letter at once so the operator sees it; one that
// reuses the id of a queued delivery leaves that delivery as it is.
type Consumer struct {
	Reader   *kafka.Reader
	Store    DeliveryQueue
	Partners *partner.Registry
	Log      *slog.Logger
	// Status, when set, publishes the dead-lettered status of a refused request.
	Status StatusFunc
	// RequestKeys, when set, are the back office's signing keys: a request
	// is taken only with exactly one RequestSignatureHeader, a detached JWS
	// by one of them over the record's value (VerifyRequest). Any other
	// record is not a request of the back office's: it is logged (the
	// message log keeps it, REFUSED) and no delivery is made of it, not
	// even a dead letter, which an operator's retry would send. Without
	// RequestKeys, whoever may write to the topic may have Perkeso sign a
	// message to a partner. Set before Run; ReplaceRequestKeys changes
	// them while it runs.
	RequestKeys jwk.Set
	// Refused, when set, hears of each record refused for its signature
	// (the operators' metric, kind VerificationKind).
	Refused func()
	// CommitLinger is how long Run waits for a next record before it
	// commits the offsets of those it queued (DefaultCommitLinger if 0).
	CommitLinger time.Duration
	// Queued, when set, hears of each delivery queued (the deliverer's
	// Wake: it is attempted now, not at the deliverer's next poll).
	Queued func()

	keysMu sync.RWMutex // guards RequestKeys once Run runs
	// owed are records queued whose offsets a Run that ended on a failed
	// commit could not commit: the next Run commits them.
	owed []kafka.Message
}

// ReplaceRequestKeys puts keys in the place of the back office's keys (a
// reload: the back office rotating its key adds the new one to the file).
// Requiring signatures or no longer requiring them takes a restart: it
// reports false, and changes nothing, when keys or the running ones are
// nil and the other not.
func (c *Consumer) ReplaceRequestKeys(keys jwk.Set) bool {
	c.keysMu.Lock()
	defer c.keysMu.Unlock()
	if (keys == nil) != (c.RequestKeys == nil) {
		return false
	}
	c.RequestKeys = keys
	return true
}

func (c *Consumer) requestKeys() jwk.Set {
	c.keysMu.RLock()
	defer c.keysMu.RUnlock()
	return c.RequestKeys
}

// VerificationKind is the jambatan_verification_failures_total kind of an
// outbound record refused for its signature: something other than the back
// office wrote to the outbound topic.
const VerificationKind = "outbound-request"

// OutcomeRefused is the message-log outcome of an outbound record refused
// for its signature: no delivery was made of it.
const OutcomeRefused = "REFUSED"

// RequestSignatureHeader is the Kafka record header that carries the back
// office's signature of an outbound request.
const RequestSignatureHeader = "jws"

// VerifyRequest checks the back office's signature on an outbound request
// record: exactly one RequestSignatureHeader, a detached JWS (RFC 7515
// appendix F: compact, the payload part empty) over the record's value by
// a key of keys, under the rules a partner's notice is held to (jwsin: no
// key taken from the header, one signature, the key's own algorithm).
func VerifyRequest(m kafka.Message, keys jwk.Set) error {
	var sigs []string
	for _, h := range m.Headers {
		if h.Key == RequestSignatureHeader {
			sigs = append(sigs, string(h.Value))
		}
	}
	switch len(sigs) {
	case 0:
		return fmt.Errorf("request signature: none (the record has no %q header)", RequestSignatureHeader)
	case 1:
	default:
		return fmt.Errorf("request signature: %d %q headers; exactly one is taken", len(sigs), RequestSignatureHeader)
	}
	if _, err := jwsin.Verify(jwsin.Message{Form: jwsin.FormDetached, JWS: sigs[0], Body: m.Value}, keys); err != nil {
		return fmt.Errorf("request signature: %w", err)
	}
	return nil
}

// DeliveryQueue is the durable queue the consumer writes to: the store.
type DeliveryQueue interface {
	DeliveryByKey(ctx context.Context, key string) (*store.Delivery, error)
	Enqueue(ctx context.Context, d *store.Delivery, at time.Time) (created bool, err error)
	EnqueueRefused(ctx context.Context, d *store.Delivery, reason string, at time.Time, entry func(*store.Delivery) *store.Entry) (created bool, err error)
	Log(ctx context.Context, e *store.Entry) error
	HoldAnswers(ctx context.Context, d *store.Delivery, institution string, items map[string][]byte, at time.Time, entry func(*store.Delivery) *store.Entry) (created bool, err error)
	CaseInstitution(ctx context.Context, caseID string) (string, error)
}

// Run consumes until ctx is done. A record the store cannot take is tried
// again, with a growing pause, until it can: the reader's position has
// moved past it, and committing a later record's offset would commit past
// it too, so moving on would lose it.
//
// Offsets are committed by the group, not record by record: after
// commitEvery queued records, and whenever no record follows within
// CommitLinger (a burst's 2,000 records took 2,000 round trips to the
// broker, a quarter of the consumer's time). A record queued but not yet
// committed when the gateway stops is committed as it stops; after a
// crash it is read again, and its id makes it a repeat (the queued
// delivery stays as it is).
//
// A commit the broker refuses (a rebalance, the broker away) does not stop
// Run: the offsets are owed, the last record of each partition, and
// committed with the next records' or alone once no record follows and a
// pause is over (0.1 s, doubling to 5 s), as the back office's ingest
// does. It stopped Run, which the gateway started again a second later,
// reading nothing meanwhile. Offsets still owed when Run returns are left
// to the next Run on c.
func (c *Consumer) Run(ctx context.Context) error {
	queued := c.owed // queued, their offsets not committed
	c.owed = nil
	defer func() {
		if len(queued) > 0 && c.commit(queued) != nil {
			c.owed = kafkaclient.LastOfEach(queued)
		}
	}()
	var owing owing
	for {
		m, err := c.fetch(ctx, len(queued) > 0)
		if errors.Is(err, errNoneWaiting) {
			if owing.waits() {
				continue
			}
			queued = c.settle(queued, &owing)
			continue
		}
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			return err
		}
		if !retry.Until(ctx, c.Log, queueLines, func() error { return c.Queue(ctx, m) }, "partition", m.Partition, "offset", m.Offset) {
			return nil // the gateway stops: not committed, the record is read again
		}
		if queued = append(queued, m); len(queued) >= commitEvery {
			queued = c.settle(queued, &owing)
		}
	}
}

// queueLines are the lines of a record's failures to be queued.
var queueLines = retry.Lines{Failed: "outbound request not queued; trying again", Succeeded: "outbound request queued after failures"}

// steadyRun is how long a Run must last for its failure to start a new
// spell of restarts (Serve); a variable for the tests.
var steadyRun = time.Minute

// Serve runs c until ctx is done. An error the reader reports ends Run;
// Serve starts it again after pause, which a stopping gateway does not
// wait out. Restarts after Runs of a minute or less are one spell, logged
// under one correlation id; a failure after a longer Run starts another.
// A Run after restarts that lasts the minute ends the spell with a line
// under its id that says so and how many restarts it took: a Run that is
// up has nothing else to tell (an idle topic fetches nothing).
func (c *Consumer) Serve(ctx context.Context, pause time.Duration) {
	var outage correlation.Outage
	restarts := 0 // of the spell on
	for {
		started := time.Now()
		var steady *time.Timer
		if restarts > 0 {
			id, n := outage.ID(), restarts
			steady = time.AfterFunc(steadyRun, func() {
				c.Log.Info("outbound consumer running again", correlation.LogKey, id, "restarts", n)
			})
		}
		err := c.Run(ctx)
		if steady != nil {
			steady.Stop()
		}
		if err == nil || ctx.Err() != nil {
			return
		}
		if time.Since(started) > steadyRun {
			outage.End()
			restarts = 0
		}
		restarts++
		c.Log.Warn("outbound consumer stopped; restarting", correlation.LogKey, outage.ID(), "err", err, "pause", pause)
		select {
		case <-ctx.Done():
			return
		case <-time.After(pause):
		}
	}
}

// settle commits the offsets of queued records and returns those still
// owed: none, or after a refused commit the last record of each partition.
func (c *Consumer) settle(queued []kafka.Message, o *owing) []kafka.Message {
	err := c.commit(queued)
	if err == nil {
		if o.failing() {
			c.Log.Info("outbound offsets committed again")
		}
		*o = owing{}
		return queued[:0]
	}
	if !o.failing() {
		c.Log.Warn("outbound offsets not committed; owed, and committed with the next", "err", err)
	}
	o.failed()
	return kafkaclient.LastOfEach(queued)
}

// owing paces the commits of owed offsets while the broker refuses them.
type owing struct {
	pauses retry.Pauses // of the refused commits; none while commits are taken
	next   time.Time    // no commit of owed offsets alone before
}

// failing reports whether the last commit was refused.
func (o *owing) failing() bool { return o.pauses.Last() > 0 }

// failed notes a refused commit: the next alone waits the next pause
// (0.1 s, doubling to 5 s).
func (o *owing) failed() { o.next = time.Now().Add(o.pauses.Next()) }

// waits reports whether owed offsets are to wait before they are committed
// alone.
func (o *owing) waits() bool { return o.failing() && time.Now().Before(o.next) }

// commitEvery bounds the records queued before their offsets are committed,
// and so the records read again after a crash.
const commitEvery = 100

// DefaultCommitLinger is how long the consumer waits for a next record
// before it commits the offsets of those it queued.
const DefaultCommitLinger = 10 * time.Millisecond

// errNoneWaiting: no record followed within the commit linger.
var errNoneWaiting = errors.New("no record waiting")

// fetch is the next record; with linger, errNoneWaiting if none comes
// within the commit linger.
func (c *Consumer) fetch(ctx context.Context, linger bool) (kafka.Message, error) {
	if !linger {
		return c.Reader.FetchMessage(ctx)
	}
	d := c.CommitLinger
	if d <= 0 {
		d = DefaultCommitLinger
	}
	fctx, cancel := context.WithTimeout(ctx, d)
	defer cancel()
	m, err := c.Reader.FetchMessage(fctx)
	if err != nil && ctx.Err() == nil && errors.Is(err, context.DeadlineExceeded) {
		return m, errNoneWaiting
	}
	return m, err
}

// commit commits the offsets of queued records. It is not cancelled with
// the consumer's context, so that a stopping gateway commits what it
// queued, but bounded, as every call to the broker is.
func (c *Consumer) commit(ms []kafka.Message) error {
	ctx, cancel := context.WithTimeout(context.Background(), commitTimeout)
	defer cancel()
	if err := c.Reader.CommitMessages(ctx, ms...); err != nil {
		return fmt.Errorf("commit offsets: %w", err)
	}
	return nil
}

// commitTimeout bounds one commit of offsets.
const commitTimeout = 10 * time.Second

// refuse logs a record that is not the back office's (its signature
// failed): a message-log entry keeping its value, a log line and the
// metric, each once the entry is written (Run calls Queue again when the
// store refuses it). No delivery is made of it.
func (c *Consumer) refuse(ctx context.Context, m kafka.Message, r *Request, place, reason string, now time.Time) error {
	if err := c.Store.Log(ctx, &store.Entry{CorrelationID: "outbound-" + place, PartnerID: clip(r.Partner, MaxField), ReceivedAt: now,
		Route: "OUTBOUND " + clip(r.MessageType, MaxField), Verification: "refused: " + reason, Outcome: OutcomeRefused,
		SourceKey: place, Body: m.Value}); err != nil {
		return err
	}
	c.Log.Warn("outbound record refused: not signed by the back office; no delivery made", "correlation_id", "outbound-"+place,
		"partition", m.Partition, "offset", m.Offset, "err", reason)
	if c.Refused != nil {
		c.Refused()
	}
	return nil
}

// errUnsignedID refuses a signed request whose id is not in its value: the
// idempotency key would be the record's ce_id (or its place), which the
// signature does not cover, and a copy of the record under another would be
// delivered again.
var errUnsignedID = errors.New("id is required in a signed request: the record's ce_id is not signed, and a copy with another would be delivered again")

// storedAsAsked reports whether d holds r's id, partner, type and case as r
// has them, not cut or cleaned to be stored.
func storedAsAsked(d *store.Delivery, r *Request) bool {
	for _, f := range [][2]string{{d.Key, r.ID}, {d.PartnerID, r.Partner}, {d.MessageType, r.MessageType}, {d.CaseID, r.CaseID}} {
		if sqldialect.Text(f[0]) != f[1] {
			return false
		}
	}
	return true
}

// Queue turns one record into a delivery.
func (c *Consumer) Queue(ctx context.Context, m kafka.Message) error {
	r, perr := ParseRequest(m.Value)
	signedID := r.ID != ""
	if r.ID == "" {
		for _, h := range m.Headers {
			if h.Key == "ce_id" {
				r.ID = string(h.Value)
			}
		}
	}
	// The record's place names a request without an id, and a refused one
	// whose id is too long to be a key.
	place := fmt.Sprintf("kafka:%s:%d:%d", m.Topic, m.Partition, m.Offset)
	if r.ID == "" {
		r.ID = place
	}
	d := &store.Delivery{Key: r.ID, PartnerID: r.Partner, MessageType: r.MessageType, CaseID: r.CaseID, Payload: r.Payload}
	now := time.Now()
	keys := c.requestKeys()
	if keys != nil {
		if err := VerifyRequest(m, keys); err != nil {
			return c.refuse(ctx, m, &r, place, errorText(err.Error()), now)
		}
	}
	verr := perr
	if verr == nil {
		verr = r.Validate(c.Partners)
	}
	if verr == nil && keys != nil && !signedID {
		verr = errUnsignedID
	}
	if verr == nil {
		queued, err := Queue(ctx, c.Store, &r, now, c.Status)
		if queued && c.Queued != nil {
			c.Queued()
		}
		if errors.Is(err, ErrIDReused) {
			c.Log.Warn("outbound request not queued: "+err.Error(), "correlation_id", "outbound-"+r.ID, "key", r.ID, "partition", m.Partition, "offset", m.Offset)
			return nil
		}
		if !errors.Is(err, store.ErrCaseNotShared) {
			return err
		}
		verr = err // a refusal, dead-lettered below
	}
	// The dead letter and its status event hold the request's fields, cut
	// to a bound (the whole record is in the message log), and the reason,
	// which may quote them.
	if len(d.Key) > MaxField || !plainText(d.Key) {
		d.Key = place
	}
	d.PartnerID, d.MessageType, d.CaseID = clip(d.PartnerID, MaxField), clip(d.MessageType, MaxField), clip(d.CaseID, MaxField)
	// A dead letter that holds other than was asked, or was asked without
	// a signed id, is refused for good: a retry would send another
	// message, or a copy of one.
	d.NoRetry = errors.Is(verr, errUnsignedID) || !storedAsAsked(d, &r)
	reason := errorText(verr.Error())
	created, err := c.Store.EnqueueRefused(ctx, d, reason, now, func(q *store.Delivery) *store.Entry {
		e := &store.Entry{CorrelationID: "outbound-" + d.Key, PartnerID: d.PartnerID, ReceivedAt: now, Route: "OUTBOUND " + d.MessageType,
			Verification: "refused: " + reason, Outcome: "DEAD_LETTERED", SourceKey: d.Key, Body: m.Value}
		if c.Status != nil {
			if sm, err := c.Status(q, "dead-lettered", 1, reason, now); err == nil {
				e.Outbox = []store.Message{sm}
			}
		}
		return e
	})
	switch {
	case err != nil:
		return err
	case created:
		c.Log.Warn("outbound request refused; dead-lettered", "correlation_id", "outbound-"+d.Key, "key", d.Key, "err", reason)
	default:
		// A request may come again (a redelivered record), but one that
		// reuses a queued id with content that cannot be delivered must
		// not take the queued delivery down with it.
		c.Log.Warn("outbound request refused; a delivery with its id is queued already and is left as it is", "correlation_id", "outbound-"+d.Key, "key", d.Key, "err", reason)
	}
	return nil
}
