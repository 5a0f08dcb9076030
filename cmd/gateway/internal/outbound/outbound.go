// Package outbound delivers Perkeso's messages to partners reliably: a
// durable queue in the store, exponential backoff with jitter, a maximum of
// attempts then the dead letter, a circuit breaker and a concurrency limit
// per partner, and status events. It survives restarts: everything it knows
// is in the store.
package outbound

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"slices"
	"strings"
	"sync"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/perkeso/jambatan/adapters/jsondoc"
	"github.com/perkeso/jambatan/cmd/gateway/internal/correlation"
	"github.com/perkeso/jambatan/cmd/gateway/internal/partner"
	"github.com/perkeso/jambatan/cmd/gateway/internal/store"
)

// StatusTopic is the default topic of delivery status events.
const StatusTopic = "perkeso.delivery-status.v1"

// Error classifies a failed attempt.
type Error struct {
	Retry      bool          // worth trying again
	RetryAfter time.Duration // the partner's Retry-After, if any
	Status     int           // HTTP status, when there was one
	Msg        string
}

func (e *Error) Error() string { return e.Msg }

// Sender delivers one message to one partner.
type Sender interface {
	Send(ctx context.Context, d *store.Delivery) (response []byte, status int, err error)
}

// StatusFunc turns a delivery's status change into an outbox message (a
// delivery-status event).
type StatusFunc = func(d *store.Delivery, state string, attempts int, errText string, at time.Time) (store.Message, error)

// Deliverer works the queue.
type Deliverer struct {
	Store    *store.DB
	Partners *partner.Registry
	// SenderFor builds the sender of a partner (called once per partner).
	SenderFor func(p *partner.Partner) (Sender, error)
	// Status, when set, turns a status change into an outbox message.
	Status StatusFunc
	// Reply, when set, turns an agency's answer to a RequestInformation
	// (d.Reply) into an outbox message for the back office (ReplyEvent).
	Reply func(d *store.Delivery, at time.Time) (store.Message, error)
	Log   *slog.Logger
	Now   func() time.Time
	Poll  time.Duration // default 200ms

	mu       sync.Mutex
	senders  map[string]Sender
	breakers map[string]*breaker
	sems     map[string]chan struct{}
	wake     chan struct{} // a round is wanted now (Wake)
	wg       sync.WaitGroup
}

func (dl *Deliverer) now() time.Time {
	if dl.Now != nil {
		return dl.Now()
	}
	return time.Now()
}

// breaker is a per-partner circuit breaker: it opens after consecutive
// failures, lets one probe through after the cooldown (half-open), and
// closes on a success.
type breaker struct {
	failures  int
	openUntil time.Time
	probing   bool
}

func (b *breaker) allow(now time.Time, ep partner.Endpoint) bool {
	if b.failures < ep.BreakerFailures {
		return true
	}
	if now.Before(b.openUntil) || b.probing {
		return false
	}
	b.probing = true // half-open: one probe
	return true
}

func (b *breaker) result(ok bool, now time.Time, ep partner.Endpoint) {
	b.probing = false
	if ok {
		b.failures = 0
		return
	}
	b.failures++
	if b.failures >= ep.BreakerFailures {
		b.openUntil = now.Add(ep.BreakerCooldown)
	}
}

// BreakerOpen reports whether a partner's breaker is open (for health and tests).
func (dl *Deliverer) BreakerOpen(partnerID string) bool {
	dl.mu.Lock()
	defer dl.mu.Unlock()
	b := dl.breakers[partnerID]
	p, ok := dl.Partners.ByID(partnerID)
	if b == nil || !ok || p.Endpoint == nil {
		return false
	}
	return b.failures >= p.Endpoint.WithDefaults().BreakerFailures && dl.now().Before(b.openUntil)
}

func (dl *Deliverer) init() {
	dl.mu.Lock()
	defer dl.mu.Unlock()
	if dl.senders == nil {
		dl.senders, dl.breakers, dl.sems = map[string]Sender{}, map[string]*breaker{}, map[string]chan struct{}{}
		dl.wake = make(chan struct{}, 1)
	}
	if dl.Log == nil {
		dl.Log = slog.Default()
	}
}

// Run delivers until ctx is done, then waits for attempts in flight. A
// round runs every Poll, and as soon as an attempt ends (Wake): a partner
// at its concurrency limit takes its next delivery when one of its
// attempts ends, not at the next poll (at the default concurrency of 2,
// a round every 200 ms delivered 10 messages a second to a partner that
// answers at once).
func (dl *Deliverer) Run(ctx context.Context) error {
	dl.init()
	poll := dl.Poll
	if poll <= 0 {
		poll = 200 * time.Millisecond
	}
	defer dl.wg.Wait()
	t := time.NewTimer(poll)
	defer t.Stop()
	// A spell of failing rounds (the store away) logs its first failure and
	// each change of error, not every round's (five a second), under one id
	// with the line of the round that succeeds again.
	var outage correlation.Outage
	failed, lastErr := 0, ""
	for {
		err := dl.Round(ctx)
		switch {
		case ctx.Err() != nil:
		case err != nil:
			if failed++; err.Error() != lastErr {
				lastErr = err.Error()
				dl.Log.Warn("delivery round failed; trying again each round", correlation.LogKey, outage.ID(), "err", err)
			}
		default:
			if id := outage.End(); id != "" {
				dl.Log.Info("delivery rounds succeed again", correlation.LogKey, id, "failed_rounds", failed)
				failed, lastErr = 0, ""
			}
		}
		t.Reset(poll)
		select {
		case <-ctx.Done():
			return nil
		case <-dl.wake:
		case <-t.C:
		}
	}
}

// Wake asks Run for a round now (an attempt has ended, a delivery was
// queued); wakes while a round runs ask for one more, not one each.
func (dl *Deliverer) Wake() {
	dl.init()
	select {
	case dl.wake <- struct{}{}:
	default: // one is asked for already
	}
}

// unknownQuota is how many due deliveries a round claims of a partner
// not registered, or without an endpoint: none is sent (each is
// dead-lettered, or held as an answer), so none waits for a slot.
const unknownQuota = 64

// quotas are how many due deliveries a round claims of each registered
// partner with an endpoint: as many as it may start, its free concurrency,
// one probe of a half-open breaker, none while its breaker is open. A
// delivery claimed and not started goes back (Reschedule) in a write.
func (dl *Deliverer) quotas(now time.Time) map[string]int {
	dl.mu.Lock()
	defer dl.mu.Unlock()
	q := map[string]int{}
	for _, p := range dl.Partners.Receivers() {
		ep := p.Endpoint.WithDefaults()
		free := ep.Concurrency
		if sem := dl.sems[p.ID]; sem != nil && cap(sem) == ep.Concurrency {
			free -= len(sem)
		}
		if b := dl.breakers[p.ID]; b != nil && b.failures >= ep.BreakerFailures {
			if now.Before(b.openUntil) || b.probing {
				free = 0
			} else {
				free = min(free, 1)
			}
		}
		q[p.ID] = free
	}
	return q
}

// Round claims due deliveries and starts those their partner's breaker and
// concurrency limit allow.
func (dl *Deliverer) Round(ctx context.Context) error {
	dl.init()
	now := dl.now()
	quotas := dl.quotas(now)
	due, err := dl.Store.ClaimDueOf(ctx, now, dl.lease(), func(partnerID string) int {
		if q, ok := quotas[partnerID]; ok {
			return q
		}
		return unknownQuota
	})
	if err != nil {
		return err
	}
	// Those skipped for their partner's breaker or concurrency limit come
	// back later, all in one write; those the gateway's stopping leaves
	// unstarted, at once.
	var skipped []*store.Delivery
	var later []time.Time
	defer func() {
		if len(skipped) == 0 {
			return // most rounds: no write, and no timer for one
		}
		wctx, cancel := outliving(ctx)
		defer cancel()
		if err := dl.Store.Reschedule(wctx, skipped, later); err != nil {
			dl.Log.Warn("rescheduling skipped deliveries failed; their leases end them", "deliveries", len(skipped), "err", err)
		}
	}()
	for _, d := range due {
		if ctx.Err() != nil {
			skipped, later = append(skipped, d), append(later, now)
			continue
		}
		// Checked again as when it was queued: a request refused then is
		// a dead letter an operator may take back (its partner fixed by a
		// reload, its case shared since), and a reload may have changed
		// its partner since it was queued.
		r := requestOf(d)
		verr := r.Validate(dl.Partners)
		if d.MessageType == InformationReply { // a refused one an operator took back
			dl.hold(ctx, d, r, verr)
			continue
		}
		p, ok := dl.Partners.ByID(d.PartnerID)
		if !ok || p.Endpoint == nil {
			dl.finish(ctx, d, nil, 0, &Error{Msg: "partner " + d.PartnerID + " has no endpoint registered"})
			continue
		}
		if verr != nil {
			dl.finish(ctx, d, nil, 0, &Error{Msg: verr.Error()})
			continue
		}
		ep := p.Endpoint.WithDefaults()
		// Checked again when sent: a refused message an operator took
		// back, or one queued before its case was registered as another's.
		if ep.Protocol == "soap" && d.CaseID != "" && d.MessageType != "NotifyInjury" {
			if err := caseOf(ctx, dl.Store, d, p.Institution); err != nil {
				dl.finish(ctx, d, nil, 0, &Error{Retry: !errors.Is(err, store.ErrCaseNotShared), Msg: err.Error()})
				continue
			}
		}
		sem, retryAt, ok := dl.admit(p, ep, now)
		if !ok {
			skipped, later = append(skipped, d), append(later, retryAt)
			continue
		}
		dl.wg.Add(1)
		go func(d *store.Delivery, p *partner.Partner, ep partner.Endpoint) {
			defer dl.wg.Done()
			defer dl.Wake() // its slot is free: the partner's next may start
			defer func() { <-sem }()
			dl.attempt(ctx, d, p, ep)
		}(d, p, ep)
	}
	return nil
}

// admit takes a slot of p's concurrency for a claimed delivery, if p's
// breaker lets it start now: the attempt gives sem's slot back when it
// ends. Otherwise it says when the delivery should come back: when the
// breaker half-opens (it opened after the round asked for p's quota,
// another attempt failing meanwhile), or shortly, p being at its limit.
func (dl *Deliverer) admit(p *partner.Partner, ep partner.Endpoint, now time.Time) (sem chan struct{}, retryAt time.Time, ok bool) {
	dl.mu.Lock()
	defer dl.mu.Unlock()
	b := dl.breakers[p.ID]
	if b == nil {
		b = &breaker{}
		dl.breakers[p.ID] = b
	}
	sem = dl.sems[p.ID]
	// A reload may change the partner's concurrency. Attempts under
	// way release the semaphore they took, so for one attempt's time
	// the old and new limits may overlap.
	if sem == nil || cap(sem) != ep.Concurrency {
		sem = make(chan struct{}, ep.Concurrency)
		dl.sems[p.ID] = sem
	}
	if !b.allow(now, ep) {
		return nil, maxTime(b.openUntil, now.Add(10*time.Millisecond)), false
	}
	select {
	case sem <- struct{}{}:
		return sem, time.Time{}, true
	default:
		b.probing = false // the probe did not start
		return nil, now.Add(20 * time.Millisecond), false
	}
}

// lease is how long a claim holds a delivery: longer than any endpoint
// lets an attempt take, so that no second claim starts a second attempt
// beside one still under way (a fixed 30 s did, at a 60 s timeout).
func (dl *Deliverer) lease() time.Duration {
	l := 30 * time.Second
	for _, p := range dl.Partners.Receivers() {
		l = max(l, p.Endpoint.WithDefaults().Timeout+10*time.Second)
	}
	return l
}

func maxTime(a, b time.Time) time.Time {
	if a.After(b) {
		return a
	}
	return b
}

// ResetSenders drops the cached senders (after a reload, which may bring a
// new registry or client certificate) and closes their idle kept-alive
// connections, which would otherwise stay open, unused, until they time
// out. An attempt under way finishes on its connection.
func (dl *Deliverer) ResetSenders() {
	dl.mu.Lock()
	old := dl.senders
	dl.senders = map[string]Sender{}
	dl.mu.Unlock()
	for _, s := range old {
		if c, ok := s.(interface{ CloseIdleConnections() }); ok {
			c.CloseIdleConnections()
		}
	}
}

func (dl *Deliverer) sender(p *partner.Partner) (Sender, error) {
	dl.mu.Lock()
	defer dl.mu.Unlock()
	if s, ok := dl.senders[p.ID]; ok {
		return s, nil
	}
	s, err := dl.SenderFor(p)
	if err == nil {
		dl.senders[p.ID] = s
	}
	return s, err
}

func (dl *Deliverer) attempt(ctx context.Context, d *store.Delivery, p *partner.Partner, ep partner.Endpoint) {
	s, err := dl.sender(p)
	if err != nil {
		// Nothing reached the partner, so the breaker learns nothing, but
		// if this was its half-open probe, the next delivery may probe.
		dl.unprobe(p)
		dl.finish(ctx, d, nil, 0, &Error{Msg: err.Error()})
		return
	}
	actx, cancel := context.WithTimeout(ctx, ep.Timeout)
	resp, status, err := s.Send(actx, d)
	cancel()
	var oe *Error
	if err != nil && !errors.As(err, &oe) {
		oe = &Error{Retry: true, Msg: err.Error()}
	}
	if err != nil && ctx.Err() != nil {
		dl.unprobe(p) // cut short by the stopping: it says nothing of the partner
		dl.cutShort(ctx, d, oe)
		return
	}
	// A refused message (4xx, client fault) is the message's fault, not
	// the partner's: it does not count against the breaker.
	dl.mu.Lock()
	dl.breakers[p.ID].result(err == nil || !oe.Retry, dl.now(), ep)
	dl.mu.Unlock()
	dl.finishWith(ctx, d, resp, status, oe, ep)
}

// OutcomeInterrupted is the message-log outcome of an attempt the
// gateway's stopping cut short.
const OutcomeInterrupted = "INTERRUPTED"

// cutShort puts back an attempt the gateway's stopping cut short while it
// was sending, as putBack does, and logs it: the partner may have had the
// message, and has it again, with the same idempotency key, at the next
// start. It does not count towards max_attempts.
func (dl *Deliverer) cutShort(ctx context.Context, d *store.Delivery, oe *Error) {
	id := attemptID(d)
	e := &store.Entry{CorrelationID: id, PartnerID: d.PartnerID, ReceivedAt: dl.now(), Route: "OUTBOUND " + d.MessageType,
		ContentType: "application/json", Body: d.Payload, Outcome: OutcomeInterrupted, SourceKey: d.Key}
	e.Verification = "outbound: cut short as the gateway stopped; sent again at its next start: " + errorText(oe.Msg)
	dl.putBack(ctx, d, id, e)
}

// unprobe lets p's next delivery be the probe of its half-open breaker,
// when an attempt that may have been the probe tells it nothing.
func (dl *Deliverer) unprobe(p *partner.Partner) {
	dl.mu.Lock()
	dl.breakers[p.ID].probing = false
	dl.mu.Unlock()
}

// putBack makes claimed d due at once, its attempts and last error as
// they were: the gateway is stopping, and will take it up again when it
// starts. id is the correlation id of the caller's other lines on d (an
// attempt's, or held answers'); e, when not nil, is logged with it.
func (dl *Deliverer) putBack(ctx context.Context, d *store.Delivery, id string, e *store.Entry) {
	wctx, cancel := outliving(ctx)
	defer cancel()
	var err error
	if e != nil {
		err = dl.Store.PutBack(wctx, d, dl.now(), e)
	} else {
		err = dl.Store.Reschedule(wctx, []*store.Delivery{d}, []time.Time{dl.now()})
	}
	if err != nil {
		dl.Log.Warn("putting back a delivery as the gateway stops failed; its lease ends it", "correlation_id", id, "delivery", d.ID, "partner", d.PartnerID, "err", err)
		return
	}
	dl.Log.Info("delivery put back: the gateway is stopping; it is taken up again when it starts", "correlation_id", id, "delivery", d.ID, "partner", d.PartnerID, "type", d.MessageType)
}

// attemptID is the correlation id of d's next attempt: its message-log
// entry's and its log lines'.
func attemptID(d *store.Delivery) string {
	return fmt.Sprintf("delivery-%d-%d", d.ID, d.Attempts+1)
}

// outliving is ctx for a write that outlives the deliverer's stopping,
// bounded by recordTimeout: a delivery made as the gateway began to stop
// is recorded, and a claim it cut short is put back, not left to its
// lease.
func outliving(ctx context.Context) (context.Context, context.CancelFunc) {
	return context.WithTimeout(context.WithoutCancel(ctx), recordTimeout)
}

// recordTimeout bounds each write outliving makes for.
const recordTimeout = 10 * time.Second

func (dl *Deliverer) finish(ctx context.Context, d *store.Delivery, resp []byte, status int, oe *Error) {
	dl.finishWith(ctx, d, resp, status, oe, partner.Endpoint{}.WithDefaults())
}

// Backoff is the delay before attempt n+1 (n >= 1): exponential from base,
// capped, with full jitter over its upper half. It doubles until the cap
// rather than shifting: a base shifted by n-1 overflowed for a long base
// and many attempts, and could come out short (a base of 98.5 minutes, at
// its 31st attempt, waited under 13).
func Backoff(n int, ep partner.Endpoint) time.Duration {
	d := ep.BaseBackoff
	for i := 1; i < n && d < ep.MaxBackoff; i++ {
		d *= 2
	}
	d = min(d, ep.MaxBackoff)
	return d/2 + time.Duration(rand.Int64N(int64(d/2)+1))
}

// maxErrorText bounds the text of a failed attempt wherever it goes: the
// delivery's last_error, the message log, the delivery-status event and
// the log line. It can quote the partner (an agency's fault reason, a kid
// in its receipt), up to the size of its answer, and an event over Kafka's
// message size would stop the relay for every event behind it.
const maxErrorText = 1024

// errorText is s, cut to maxErrorText bytes with a note of its full length.
func errorText(s string) string {
	if len(s) <= maxErrorText {
		return s
	}
	return fmt.Sprintf("%s… (cut: %d bytes in all)", clip(s, maxErrorText), len(s))
}

// clip is s cut to at most n bytes, at a character's start.
func clip(s string, n int) string {
	if len(s) <= n {
		return s
	}
	for n > 0 && !utf8.RuneStart(s[n]) {
		n--
	}
	return s[:n]
}

func (dl *Deliverer) finishWith(ctx context.Context, d *store.Delivery, resp []byte, status int, oe *Error, ep partner.Endpoint) {
	if oe != nil && ctx.Err() != nil {
		// A failure while the gateway stops is the stopping's (a case
		// lookup cut short, say), not the partner's nor the message's:
		// recorded, it would count towards max_attempts and hide the last
		// real error behind "context canceled" (as it did). Nothing was
		// sent (a send cut short is cutShort's). A refusal that happens to
		// end as the gateway stops is checked again when it starts.
		dl.putBack(ctx, d, attemptID(d), nil)
		return
	}
	if oe != nil {
		oe.Msg = errorText(oe.Msg)
	}
	now := dl.now()
	attempts := d.Attempts + 1
	var a store.Attempt
	state := "delivered"
	switch {
	case oe == nil:
		a.State = store.DeliveryDelivered
	case !oe.Retry || attempts >= ep.MaxAttempts:
		a.State, a.Error, state = store.DeliveryDead, oe.Msg, "dead-lettered"
	default:
		a.State, a.Error, state = store.DeliveryPending, oe.Msg, "retrying"
		// The partner's Retry-After (or an agency's RetryAfterSeconds) is
		// honoured up to max_backoff, which bounds every wait: a partner
		// cannot park its queue for longer than the operator allows.
		wait := Backoff(attempts, ep)
		if oe.RetryAfter > wait {
			wait = min(oe.RetryAfter, ep.MaxBackoff)
		}
		a.NextAt = now.Add(wait)
	}
	e := &store.Entry{CorrelationID: attemptID(d), PartnerID: d.PartnerID, ReceivedAt: now,
		Route: "OUTBOUND " + d.MessageType, ContentType: "application/json", Body: d.Payload, Verification: "outbound",
		Status: status, Outcome: map[string]string{"delivered": "DELIVERED", "retrying": "RETRYING", "dead-lettered": "DEAD_LETTERED"}[state],
		SourceKey: d.Key, Receipt: string(resp)}
	if oe != nil {
		e.Verification = "outbound: " + oe.Msg
	}
	if dl.Status != nil {
		if m, err := dl.Status(d, state, attempts, a.Error, now); err == nil {
			e.Outbox = []store.Message{m}
		}
	}
	if oe == nil && len(d.Reply) > 0 && dl.Reply != nil {
		if m, err := dl.Reply(d, now); err == nil {
			e.Outbox = append(e.Outbox, m)
		} else {
			dl.Log.Error("the agency's reply cannot be published; it is in the message log", "correlation_id", e.CorrelationID, "delivery", d.ID, "err", err)
		}
	}
	wctx, cancel := outliving(ctx)
	defer cancel()
	if err := dl.Store.RecordAttempt(wctx, d, a, e); err != nil {
		dl.Log.Error("recording a delivery attempt failed; it will be retried after its lease", "correlation_id", e.CorrelationID, "delivery", d.ID, "err", err)
		return
	}
	dl.Log.Info("delivery attempt", "correlation_id", e.CorrelationID, "delivery", d.ID, "partner", d.PartnerID, "type", d.MessageType, "state", state, "attempts", attempts, "status", status)
}

// Request is an outbound request as the back office writes it to
// perkeso.outbound.v1 (or posts it to the operator endpoint).
type Request struct {
	ID          string          `json:"id"` // idempotency key; the record's ce_id when absent
	Partner     string          `json:"partner"`
	MessageType string          `json:"messageType"`
	CaseID      string          `json:"caseId"`
	Payload     json.RawMessage `json:"payload"`

	// An InformationReply's items and its agency's institution, which
	// Validate finds for Queue.
	answers     map[string][]byte
	institution string
}

// maxRequestValues bounds the values of a request ParseRequest reads: its
// tree takes about 25 bytes for each byte of small values, and a request
// may be 4 MiB (a record with its documents holds a few thousand).
const maxRequestValues = 100_000

// requestMembers are the members of a request, as written.
var requestMembers = []string{"id", "partner", "messageType", "caseId", "payload"}

// ParseRequest reads an outbound request strictly: one JSON object (no
// member given twice, nothing after it) with only the request's members,
// spelt as they are. encoding/json alone takes the last of a member given
// twice and matches names in any case, so {"partner":"th-sso",
// "Partner":"bn-spk"} went to the second, whatever the back office meant
// and signed; and it passes over a member it does not know ("priority":
// "urgent"), which the gateway would only pretend to honour.
//
// A refused request still comes back as far as encoding/json reads it, so
// that its dead letter names its id and partner, as one Validate refuses
// does.
func ParseRequest(b []byte) (Request, error) {
	var r Request
	lenient := json.Unmarshal(b, &r)
	if lenient != nil {
		r = Request{}
	}
	doc, err := jsondoc.ParseBounded(b, 0, maxRequestValues)
	if errors.Is(err, jsondoc.ErrTooManyValues) {
		return r, fmt.Errorf("the request holds more than %d JSON values", maxRequestValues)
	}
	if err != nil {
		return r, errors.New("the request is not one strict JSON object: " + jsondoc.Reason(err))
	}
	if doc.Kind != jsondoc.Object {
		return r, errors.New("the request is not a JSON object")
	}
	for _, m := range doc.Members {
		if !slices.Contains(requestMembers, m.Name) {
			return r, fmt.Errorf("member %q is not one of a request's (%s)", clip(m.Name, 64), strings.Join(requestMembers, ", "))
		}
	}
	if lenient != nil {
		return r, errors.New("the request's members are not of their types: " + lenient.Error())
	}
	return r, nil
}

// ErrIDReused is Queue's answer when a delivery with the request's id is
// queued already for another partner, type, case or payload: the request
// is not queued.
var ErrIDReused = errors.New("a delivery with this id is queued already with another partner, type, case or payload")

// Queue puts a valid request in the durable queue q. queued is false for a
// repeat of a request queued before; a request that reuses a queued id
// with other content is ErrIDReused, since its content would otherwise be
// lost without a word. The operator API and the topic's consumer share it.
//
// An InformationReply is not queued but held (HoldAnswers), recorded as
// delivered at once, with a status event when status is set; a case not shared with its agency is
// store.ErrCaseNotShared, and so is an agency's message on a case
// registered as another institution's.
func Queue(ctx context.Context, q DeliveryQueue, r *Request, at time.Time, status StatusFunc) (queued bool, err error) {
	d := &store.Delivery{Key: r.ID, PartnerID: r.Partner, MessageType: r.MessageType, CaseID: r.CaseID, Payload: r.Payload}
	switch {
	case r.MessageType == InformationReply:
		queued, err = q.HoldAnswers(ctx, d, r.institution, r.answers, at, heldEntry(at, status))
	case r.institution != "" && r.CaseID != "":
		if err = caseOf(ctx, q, d, r.institution); err == nil {
			queued, err = q.Enqueue(ctx, d, at)
		}
	default:
		queued, err = q.Enqueue(ctx, d, at)
	}
	if err != nil || queued {
		return queued, err
	}
	first, err := q.DeliveryByKey(ctx, r.ID)
	if err != nil {
		return false, err
	}
	if !r.Repeats(first) {
		return false, ErrIDReused
	}
	return false, nil
}

// caseOf is store.ErrCaseNotShared when d's case is registered as shared
// with another institution than the agency's: a message on it would carry
// one institution's case, its person's data among it, to another. A case
// not registered at all passes: one an agency assigned before this build
// registered such cases, or a typing error the agency itself refuses.
func caseOf(ctx context.Context, q interface {
	CaseInstitution(ctx context.Context, caseID string) (string, error)
}, d *store.Delivery, institution string) error {
	inst, err := q.CaseInstitution(ctx, d.CaseID)
	switch {
	case errors.Is(err, store.ErrNotFound):
		return nil
	case err != nil:
		return err
	case inst != institution:
		return fmt.Errorf("caseId %q: %w: it is %s's", d.CaseID, store.ErrCaseNotShared, inst)
	}
	return nil
}

// Repeats reports whether a request whose id is queued already as d asks
// for the same delivery: the same partner, type, case and payload (as JSON,
// whatever its spacing). A repeat is answered as queued; anything else is
// another request that reused the id, and is not queued. A NotifyInjury
// names no case: the agency assigns one, which the delivery then holds.
func (r *Request) Repeats(d *store.Delivery) bool {
	assigned := r.MessageType == "NotifyInjury" && r.CaseID == ""
	if r.Partner != d.PartnerID || r.MessageType != d.MessageType || r.CaseID != d.CaseID && !assigned {
		return false
	}
	var a, b bytes.Buffer
	return json.Compact(&a, r.Payload) == nil && json.Compact(&b, d.Payload) == nil && bytes.Equal(a.Bytes(), b.Bytes())
}

// Message types a request may have: agency-soap/v1's requests, which the
// deliverer sends to agencies, InformationReply, which is held (Queue), and
// JSON for JSON partners.
var MessageTypes = map[string]bool{"NotifyInjury": true, "RequestInformation": true, "NotifyDecision": true, "JSON": true, InformationReply: true}

// MaxField bounds a request's id and caseId, which every status event of
// its delivery repeats (the id twice, as the record's key and in its value).
const MaxField = 256

// requestOf is the request d was queued as, to be checked again. A
// NotifyInjury's case is the one its agency assigned, not the request's.
func requestOf(d *store.Delivery) *Request {
	r := &Request{ID: d.Key, Partner: d.PartnerID, MessageType: d.MessageType, CaseID: d.CaseID, Payload: d.Payload}
	if r.MessageType == "NotifyInjury" {
		r.CaseID = ""
	}
	return r
}

// Validate checks a request before it is queued, and a delivery again
// before each attempt (requestOf).
func (r *Request) Validate(reg *partner.Registry) error {
	p, ok := reg.ByID(r.Partner)
	switch {
	case r.ID == "":
		return errors.New("id is required")
	case len(r.ID) > MaxField:
		return fmt.Errorf("id is over %d bytes", MaxField)
	case !plainText(r.ID):
		return errors.New("id must be UTF-8 text without control characters")
	case len(r.CaseID) > MaxField:
		return fmt.Errorf("caseId is over %d bytes", MaxField)
	case !plainText(r.CaseID):
		return errors.New("caseId must be UTF-8 text without control characters")
	case !ok:
		return fmt.Errorf("unknown partner %q", r.Partner)
	case r.MessageType == InformationReply:
		return r.validateReply(p)
	case p.Endpoint == nil:
		return fmt.Errorf("partner %q has no endpoint registered", r.Partner)
	case !MessageTypes[r.MessageType]:
		return fmt.Errorf("unknown messageType %q", r.MessageType)
	case len(r.Payload) == 0 || !json.Valid(r.Payload):
		return errors.New("payload must be JSON")
	case p.Endpoint.Protocol == "soap" && r.CaseID == "" && r.MessageType != "NotifyInjury":
		return errors.New("caseId is required for an agency")
	case p.Endpoint.Protocol == "soap" && r.CaseID != "" && r.MessageType == "NotifyInjury":
		// H1: the receiver of a notification assigns its case, which the
		// delivery then takes; a caseId given here would stand in its way.
		return errors.New("a NotifyInjury has no caseId: the agency assigns it")
	case p.Endpoint.Protocol == "soap" && r.MessageType == "JSON", p.Endpoint.Protocol == "json" && r.MessageType != "JSON":
		return fmt.Errorf("messageType %s does not fit the partner's protocol %s", r.MessageType, p.Endpoint.Protocol)
	}
	if p.Endpoint.Protocol == "soap" {
		r.institution = p.Institution // Queue checks the case is not another's
	}
	return nil
}

// plainText reports whether s is UTF-8 without control characters: an id
// or a case id is a key the store looks up, and PostgreSQL refuses a NUL in
// a query as in a row (a record that held one was tried again for ever, and
// no request behind it was read).
func plainText(s string) bool {
	return utf8.ValidString(s) && !strings.ContainsFunc(s, unicode.IsControl)
}

// validateReply checks an InformationReply, which is held for an agency,
// not sent (so its partner needs no endpoint), and keeps its items.
func (r *Request) validateReply(p *partner.Partner) error {
	switch {
	case p.Kind != partner.KindAgency:
		return fmt.Errorf("an InformationReply is held for an agency, and partner %q is not one", r.Partner)
	case r.CaseID == "":
		return errors.New("caseId is required for an agency")
	}
	answers, err := ReplyItems(p.Institution, r.CaseID, r.Payload)
	if err != nil {
		return err
	}
	r.answers, r.institution = answers, p.Institution
	return nil
}
